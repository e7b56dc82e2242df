"""The package's shape (docs/design.md, "Where things live"): layers, no import cycle, docstrings, module size.

Every import of every module counts, including those inside functions and under
``if TYPE_CHECKING:``: a lazy import is still a dependency. Data flows one way:

    http > runtime > triggers > kernels, store > model > errors, jsontext, settings, version

A module may import from its own subpackage or from a lower layer, never from a
higher one or a sibling (kernels and store do not know each other). The leaves
(the public API in ``kernel_runtime/__init__``, ``__main__``, cli, client,
widgets, lab) may import anything, and nothing layered imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kernel_runtime"
ROOT = "kernel_runtime"

# Each group with its rank: an import goes to a lower rank or stays in its own group.
GROUPS = {
    "base": 0,
    "model": 1,
    "kernels": 2,
    "store": 2,
    "triggers": 3,
    "runtime": 4,
    "http": 5,
}
BASE = {f"{ROOT}.errors", f"{ROOT}.jsontext", f"{ROOT}.settings", f"{ROOT}.version"}
LEAVES = {ROOT, f"{ROOT}.__main__", f"{ROOT}.cli", f"{ROOT}.client", f"{ROOT}.widgets", f"{ROOT}.lab"}
MAX_LINES = 350


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if "labextension" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, is_package: bool, source: str, known: set[str]) -> set[str]:
    """The package's modules that ``source`` (module ``name``) imports, anywhere in its body."""
    here = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                # "from pkg import mod" imports the module; "from mod import Name" imports mod.
                submodule = f"{module}.{alias.name}"
                targets.add(submodule if submodule in known else module)
    return {t for t in targets if t in known and t != name}


def is_leaf(module: str) -> bool:
    return module in LEAVES or module.startswith((f"{ROOT}.lab.", f"{ROOT}.cli."))


def group_of(module: str) -> str | None:
    if module in BASE:
        return "base"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in GROUPS else None


def graph(files: dict[str, Path]) -> dict[str, set[str]]:
    known = set(files)
    return {name: imports_of(name, path.name == "__init__.py", path.read_text(), known) for name, path in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def wrong_way(edges: dict[str, set[str]]) -> list[str]:
    """Every import against the layer order, as 'importer -> imported'."""
    bad = []
    for importer, targets in sorted(edges.items()):
        if is_leaf(importer):
            continue
        mine = group_of(importer)
        for target in sorted(targets):
            theirs = group_of(target)
            if is_leaf(target) or theirs is None or mine is None:
                bad.append(f"{importer} -> {target}")
            elif theirs != mine and GROUPS[theirs] >= GROUPS[mine]:
                bad.append(f"{importer} -> {target}")
    return bad


# the package --------------------------------------------------------------------------------
FILES = module_files()
EDGES = graph(FILES)


def test_every_module_has_a_place():
    unplaced = [name for name in FILES if not is_leaf(name) and group_of(name) is None]
    assert not unplaced, f"modules in no layer (add them to a subpackage, BASE or LEAVES): {unplaced}"


def test_no_import_cycle():
    cycle = find_cycle(EDGES)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_data_flows_one_way():
    assert wrong_way(EDGES) == []


def test_model_imports_nothing_of_ours_but_the_base():
    model = {name: targets for name, targets in EDGES.items() if group_of(name) == "model"}
    assert model, "no model modules found"
    outside = {f"{name} -> {t}" for name, targets in model.items() for t in targets if group_of(t) not in ("model", "base")}
    assert not outside


def test_settings_import_nothing_of_ours_but_the_errors():
    assert EDGES[f"{ROOT}.settings"] == {f"{ROOT}.errors"}


@pytest.mark.parametrize("name", sorted(FILES))
def test_module_opens_with_a_docstring(name):
    assert ast.get_docstring(ast.parse(FILES[name].read_text())), f"{name} does not say what it owns"


@pytest.mark.parametrize("name", sorted(FILES))
def test_module_size(name):
    lines = len(FILES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


# the checker itself: each rule catches what it is for ------------------------------------------
def synthetic(modules: dict[str, str]) -> dict[str, set[str]]:
    """The graph of made-up modules, given as {dotted name (a package ends in '.__init__'): source}."""
    names = {m.removesuffix(".__init__"): m.endswith(".__init__") for m in modules}
    return {
        name: imports_of(name, is_package, modules[name + (".__init__" if is_package else "")], set(names))
        for name, is_package in names.items()
    }


def test_checker_sees_a_cycle_through_a_lazy_import():
    edges = synthetic({
        f"{ROOT}.runtime.a": "from . import b\n",
        f"{ROOT}.runtime.b": "def f():\n    from .a import thing\n",
    })
    assert find_cycle(edges) == [f"{ROOT}.runtime.a", f"{ROOT}.runtime.b", f"{ROOT}.runtime.a"]


def test_checker_sees_an_upward_import_under_type_checking():
    edges = synthetic({
        f"{ROOT}.triggers.engine": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..runtime.service import Service\n",
        f"{ROOT}.runtime.service": "from ..triggers.engine import Triggers\n",
    })
    assert wrong_way(edges) == [f"{ROOT}.triggers.engine -> {ROOT}.runtime.service"]


def test_checker_sees_siblings_leaves_and_the_model_reaching_up():
    edges = synthetic({
        f"{ROOT}.kernels.pool": "from ..store import local\n",
        f"{ROOT}.store.local": "from ..errors import StoreUnavailable\n",
        f"{ROOT}.store.__init__": "",
        f"{ROOT}.model.product": "import kernel_runtime.triggers.rules\n",
        f"{ROOT}.triggers.rules": "from .. import version\n",
        f"{ROOT}.http.openapi": "from .. import __version__\n",
        f"{ROOT}.errors": "",
        f"{ROOT}.version": "",
        ROOT + ".__init__": "from .version import __version__\n",
    })
    assert wrong_way(edges) == [
        f"{ROOT}.http.openapi -> {ROOT}",
        f"{ROOT}.kernels.pool -> {ROOT}.store.local",
        f"{ROOT}.model.product -> {ROOT}.triggers.rules",
    ]
