"""kernel_runtime.model.run_errors: every ename the runtime makes is listed, documented and published."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jsonschema
import pytest

from kernel_runtime import errors
from kernel_runtime.model.run_errors import RUNTIME_ENAMES, Ename, RunError, ename_schema

ROOT = Path(__file__).resolve().parents[2]


def runner_enames() -> set[str]:
    """The ename of every error the in-kernel runner builds, read from its source."""
    tree = ast.parse((ROOT / "kernel_runtime/kernels/runner.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_error":
            first = node.args[0]
            if isinstance(first, ast.Constant):
                found.add(first.value)
            else:
                # The only other ename the runner gives is the product's own exception's name.
                assert ast.unparse(first) == "type(exc).__name__", ast.unparse(first)
    return found


def test_every_ename_the_runner_makes_is_listed():
    made = runner_enames()
    assert made == {"OutputLimitExceeded", "ResultNotSerializable", "ChildProcessLeft"}
    assert made <= set(RUNTIME_ENAMES)


def test_every_runtime_ename_is_documented():
    text = (ROOT / "docs/reference/http-api.md").read_text()
    section = text.split("### Run errors", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)} - {"ename"}
    assert set(RUNTIME_ENAMES) == documented


def test_each_constructor_gives_its_ename_and_a_json_shape():
    made = {
        RunError.timed_out("The kernel did not finish within 2 s.", 2): "Timeout",
        RunError.kernel_failed(errors.KernelDied("gone")): "KernelDied",
        RunError.kernel_failed(errors.KernelTampered("changed")): "KernelTampered",
        RunError.kernel_failed(errors.KernelError("shutting down")): "KernelError",
        RunError.broke_contract("'a' is a required property"): "ContractViolation",
        RunError.stopped_while("was running"): "RuntimeStopped",
        RunError.stopped_after_grace(5): "RuntimeStopped",
        RunError.refused(errors.QueueFull("full")): "QueueFull",
        RunError.unexpected(errors.KernelUnavailable("no kernel")): "KernelUnavailable",
        RunError.unexpected(KeyError("x")): "InternalError",
    }
    for error, ename in made.items():
        assert error.ename == ename
        assert error.to_json() == {"ename": ename, "evalue": error.evalue, "traceback": []}
    assert RunError.timed_out("Too slow.", 2.5).evalue == "Too slow. (product timeout 2.5 s)"
    assert RunError.unexpected(KeyError("x")).evalue == "KeyError: 'x'"


def test_a_refused_run_names_every_reason_and_its_nearest_listed_class():
    exc = errors.InvalidParameters("Invalid parameters for product 'p'.", [{"parameter": "n", "message": "Parameter 'n' must be int."}])
    assert RunError.refused(exc).to_json() == {
        "ename": "InvalidParameters",
        "evalue": "Invalid parameters for product 'p'. Parameter 'n' must be int.",
        "traceback": [],
    }
    # A subclass without an ename of its own takes its nearest listed base's.
    assert RunError.refused(errors.VersionConflict("taken")).ename == "StoreError"
    assert RunError.kernel_failed(errors.ExecutionTimeout("slow")).ename == "KernelError"


def test_a_setup_failure_keeps_the_products_exception():
    error = RunError.setup_failed({"ename": "ValueError", "evalue": "no data", "traceback": ["line 1"]})
    assert error.to_json() == {
        "ename": "ValueError",
        "evalue": "A setup cell failed while preparing the kernel: no data",
        "traceback": ["line 1"],
    }


@pytest.mark.parametrize("ename", [*RUNTIME_ENAMES, "ZeroDivisionError"])
def test_the_published_ename_schema_takes_runtime_and_product_enames(ename):
    schema = ename_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(ename, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(3, schema)


def test_every_ename_has_a_meaning():
    assert all(member.meaning.endswith(".") for member in Ename)
    assert len(RUNTIME_ENAMES) == len(Ename)
