"""What a data product is: reading a notebook's tags and metadata into a spec.

This module owns the rules of docs/reference/notebook-format.md: which cells play which role,
the product metadata, names and references, and the validation of a run's
parameters and result against the spec. The parameters cell itself is read by
:mod:`.parameters`. It never talks to a kernel or a store.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import jsonschema
import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from .. import jsontext
from ..errors import InvalidNotebook, InvalidParameters, InvalidRequest, MalformedJSON, UnacceptableJSON, quoted
from .parameters import Parameter, ParameterRules, out_of_bounds, parse_parameters, problem

# Matched whole (fullmatch) and as ASCII: "$" alone would let "p\n" through, and str.isdigit() takes "²".
NAME = r"[a-z0-9][a-z0-9-]{0,62}"
NAME_RE = re.compile(f"^{NAME}$", re.ASCII)
VERSION = r"[1-9][0-9]{0,8}"
VERSION_RE = re.compile(VERSION, re.ASCII)
DEFAULT_TIMEOUT = 60.0
MAX_CACHE_TTL = 30 * 86400  # seconds: a month; beyond it a result is a dataset, not a cache
MAX_SCHEMA_DEPTH = 64  # levels of an output_schema, within the same string and item bounds

TAG_PARAMETERS = "parameters"
TAG_SETUP = "setup"
TAG_OUTPUT = "output"


@dataclass(frozen=True)
class Cell:
    """A code cell of the product: its index in the notebook and its Python source."""

    index: int
    source: str
    role: str  # "parameters", "setup", "output" or "body"


@dataclass(frozen=True)
class ProductSpec:
    """A validated notebook: everything the runtime needs to prepare and run it."""

    name: str
    notebook: nbformat.NotebookNode
    parameters: dict[str, Parameter]
    setup_cells: tuple[Cell, ...]
    run_cells: tuple[Cell, ...]
    title: str = ""
    description: str = ""
    owner: str = ""
    timeout: float = DEFAULT_TIMEOUT
    cache_ttl: float = 0.0
    triggers: tuple[dict[str, Any], ...] = ()
    output_schema: dict[str, Any] | None = None
    kernel_name: str = "python3"
    _validator: Any = field(default=None, compare=False, repr=False)
    # Compiled here, once per loaded version: an invocation only runs it.
    parameter_rules: ParameterRules = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameter_rules", ParameterRules(self.parameters))

    def parameters_json(self) -> dict[str, Any]:
        return {name: p.to_json() for name, p in self.parameters.items()}

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON Schema of an invoke body for this product: the one :func:`validate_parameters` enforces."""
        return self.parameter_rules.published()


def is_name(value: Any) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def check_name(name: str) -> str:
    if not is_name(name):
        raise InvalidRequest(
            f"Invalid product name {quoted(name)}: use 1-63 lowercase ASCII letters, digits and dashes, "
            "starting with a letter or digit."
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``name`` or ``name@version`` into its parts, validating both."""
    name, sep, version = ref.partition("@")
    check_name(name)
    if not sep:
        return name, None
    if not VERSION_RE.fullmatch(version):
        raise InvalidRequest(
            f"Invalid version {quoted(version)} in {quoted(ref)}: a version is a positive integer in ASCII digits."
        )
    return name, int(version)


def read_notebook(data: bytes | str) -> nbformat.NotebookNode:
    """Parse notebook JSON; anything but an nbformat 4 notebook object is an InvalidNotebook."""
    try:
        raw = jsontext.loads(data, "The notebook")
    except MalformedJSON as exc:
        raise InvalidNotebook("The body is not a notebook.", [problem(exc.message)]) from None
    except UnacceptableJSON as exc:
        raise InvalidNotebook("The notebook is not a valid product.", [problem(exc.message, _cell_at(exc.details))]) from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise InvalidNotebook("The body is not a notebook.", [problem("A notebook is a JSON object with 'cells'.")])
    if raw.get("nbformat") != 4:
        raise InvalidNotebook(
            "The notebook is not a valid product.",
            [problem(f"Notebook format must be nbformat 4, found {raw.get('nbformat')!r}.")],
        )
    try:
        # reads() rather than from_dict(): it joins multi-line sources into one string.
        return nbformat.reads(data, as_version=nbformat.NO_CONVERT)
    except Exception as exc:  # nbformat raises several unrelated types for malformed notebooks
        raise InvalidNotebook("The body is not a notebook.", [problem(f"Could not read the notebook: {exc}")]) from exc


def _cell_at(details: list[Any]) -> int | None:
    """The index of the cell a JSON problem's pointer (``/cells/2/...``) is in, so the problem names it."""
    pointer = details[0].get("path") if details and isinstance(details[0], dict) else None
    found = re.match(r"/cells/([0-9]+)(?:/|$)", pointer) if isinstance(pointer, str) else None
    return int(found[1]) if found else None


# Problems with ``metadata.nbmesh.triggers``, given the product's name and parameters (the trigger rules).
TriggerCheck = Callable[[Any, str, dict[str, Parameter]], list[dict[str, Any]]]


def load_spec(nb: nbformat.NotebookNode, name: str | None = None, check_triggers: TriggerCheck | None = None) -> ProductSpec:
    """Validate a notebook as a product, raising InvalidNotebook listing every problem.

    ``name`` is the name the caller publishes under (the URL path); the
    notebook's own ``metadata.nbmesh.name`` must agree with it when both exist.
    The trigger rules live above this layer and are passed in as ``check_triggers``
    (the runtime's catalog always passes them); without it triggers are not checked.
    """
    problems: list[dict[str, Any]] = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        problems.append(problem(f"Not a valid nbformat 4 notebook: {exc.message}"))

    meta = nb.get("metadata", {}).get("nbmesh", {})
    if not isinstance(meta, dict):
        problems.append(problem("metadata.nbmesh must be an object."))
        meta = {}
    name = _product_name(meta, name, problems)
    kernel_name = _check_kernel(nb, problems)
    cells = _classify_cells(nb, problems)
    params_cell = next((c for c in cells if c.role == TAG_PARAMETERS), None)
    parameters = parse_parameters(params_cell.source, params_cell.index, problems) if params_cell else {}
    for cell in cells:
        _check_syntax(cell, problems)
    settings = _read_settings(meta, problems)
    if check_triggers is not None:
        problems.extend(check_triggers(meta.get("triggers", []), name, parameters))

    if problems:
        raise InvalidNotebook("The notebook is not a valid product.", problems)
    validator = None
    if settings["output_schema"] is not None:
        cls = jsonschema.validators.validator_for(settings["output_schema"])
        validator = cls(settings["output_schema"])
    return ProductSpec(
        name=name,
        notebook=nb,
        parameters=parameters,
        setup_cells=tuple(c for c in cells if c.role == TAG_SETUP),
        run_cells=tuple(c for c in cells if c.role != TAG_SETUP),
        kernel_name=kernel_name,
        triggers=tuple(meta.get("triggers", [])),
        _validator=validator,
        **settings,
    )


def _product_name(meta: dict[str, Any], name: str | None, problems: list) -> str:
    meta_name = meta.get("name")
    if meta_name is not None and not is_name(meta_name):
        problems.append(problem(f"metadata.nbmesh.name {quoted(meta_name)} is not a valid product name."))
    if name is not None and meta_name is not None and meta_name != name:
        problems.append(
            problem(f"metadata.nbmesh.name is {quoted(meta_name)} but the product is published as {quoted(name)}.")
        )
    final = name or meta_name or ""
    if not is_name(final):
        problems.append(problem(f"Product name {quoted(final)} must match {NAME_RE.pattern} (ASCII)."))
    return final


def _check_kernel(nb: nbformat.NotebookNode, problems: list) -> str:
    md = nb.get("metadata", {})
    kernelspec = md.get("kernelspec", {}) or {}
    language = kernelspec.get("language") or (md.get("language_info") or {}).get("name") or "python"
    if language != "python":
        problems.append(problem(f"Unknown kernel language {language!r}: nbmesh runs Python notebooks."))
    return kernelspec.get("name") or "python3"


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _classify_cells(nb: nbformat.NotebookNode, problems: list) -> list[Cell]:
    cells: list[Cell] = []
    by_role: dict[str, list[int]] = {TAG_PARAMETERS: [], TAG_OUTPUT: [], TAG_SETUP: []}
    for index, cell in enumerate(nb.get("cells", [])):
        tags = _tags(cell)
        roles = [t for t in (TAG_PARAMETERS, TAG_SETUP, TAG_OUTPUT) if t in tags]
        if cell.get("cell_type") != "code":
            for role in roles:
                problems.append(problem(f"Cell {index + 1} is tagged {role!r} but is not a code cell.", index))
            continue
        if len(roles) > 1:
            problems.append(problem(f"Cell {index + 1} has more than one role: {', '.join(roles)}.", index))
        role = roles[0] if roles else "body"
        if role in by_role:
            by_role[role].append(index)
        cells.append(Cell(index=index, source=_source(cell), role=role))
    outputs = by_role[TAG_OUTPUT]
    if not outputs:
        problems.append(problem("No cell is tagged 'output': tag the cell whose last expression is the result."))
    elif len(outputs) > 1:
        problems.append(
            problem(f"Cells {', '.join(str(i + 1) for i in outputs)} are all tagged 'output': exactly one may be.", outputs[1])
        )
    if len(by_role[TAG_PARAMETERS]) > 1:
        extra = by_role[TAG_PARAMETERS][1]
        problems.append(problem(f"Cell {extra + 1} is a second 'parameters' cell: at most one is allowed.", extra))
    return cells


def _source(cell: nbformat.NotebookNode) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def python_source(source: str) -> str:
    """IPython syntax (magics, ``!cmd``) turned into plain Python, as the kernel would."""
    return TransformerManager().transform_cell(source)


def _check_syntax(cell: Cell, problems: list) -> None:
    try:
        tree = ast.parse(python_source(cell.source))
    except SyntaxError as exc:
        problems.append(problem(f"Cell {cell.index + 1} has a syntax error on line {exc.lineno}: {exc.msg}.", cell.index))
        return
    if cell.role == TAG_OUTPUT and not (tree.body and isinstance(tree.body[-1], ast.Expr)):
        problems.append(
            problem(f"The output cell (cell {cell.index + 1}) must end with an expression: its value is the result.", cell.index)
        )


def _read_settings(meta: dict[str, Any], problems: list) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for key in ("title", "description", "owner"):
        value = meta.get(key, "")
        if not isinstance(value, str):
            problems.append(problem(f"metadata.nbmesh.{key} must be a string."))
            value = ""
        settings[key] = value
    timeout = meta.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
        problems.append(problem(f"metadata.nbmesh.timeout must be a number of seconds in (0, 86400], got {quoted(timeout)}."))
        timeout = DEFAULT_TIMEOUT
    settings["timeout"] = float(timeout)
    ttl = meta.get("cache_ttl", 0)
    # isfinite before the comparison: NaN compares false both ways and would pass a bounds check.
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or not 0 <= ttl <= MAX_CACHE_TTL:
        problems.append(problem(f"metadata.nbmesh.cache_ttl must be a number of seconds in [0, {MAX_CACHE_TTL}], got {quoted(ttl)}."))
        ttl = 0
    settings["cache_ttl"] = float(ttl)
    schema = meta.get("output_schema")
    if schema is not None:
        # jsonschema recurses once per level, at publish and on every result: bound the nesting first.
        excess = out_of_bounds(schema, MAX_SCHEMA_DEPTH) if isinstance(schema, (dict, bool)) else "must be a JSON object"
        if excess is None:
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as exc:
                excess = f"is not a valid JSON Schema: {exc.message}"
        if excess is not None:
            problems.append(problem(f"metadata.nbmesh.output_schema {excess}"))
            schema = None
    settings["output_schema"] = schema
    return settings


def validate_parameters(spec: ProductSpec, values: Any) -> dict[str, Any]:
    """The full parameter set of a run: defaults overlaid with checked caller values."""
    if not isinstance(values, dict):
        raise InvalidParameters(
            f"Parameters must be a JSON object, got {type(values).__name__}.",
            [problem("The request body must be an object like {\"region\": \"EU\"}.")],
        )
    problems = spec.parameter_rules.problems(values)
    if problems:
        raise InvalidParameters(f"Invalid parameters for product {spec.name!r}.", problems)
    return spec.parameter_rules.resolve(values)


def contract_violation(spec: ProductSpec, result: Any) -> str | None:
    """The schema's own message when ``result`` breaks the product's output_schema, else None."""
    if spec._validator is None:
        return None
    error = jsonschema.exceptions.best_match(spec._validator.iter_errors(result))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message} (at /{where})" if where else error.message
