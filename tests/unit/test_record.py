"""kernel_runtime.kernels.record: the executed notebook built from a per-version template is papermill's."""

from __future__ import annotations

import copy
import json
import time

import nbformat
from papermill.parameterize import parameterize_notebook

from kernel_runtime.kernels import protocol, record
from kernel_runtime.model.product import load_spec, read_notebook
from tests.conftest import make_notebook

CELLS = [("setup", "import math"), ("parameters", "x: int = 3\nname: str = 'a'"), ("", "y = x * 2\nprint(y)"), ("output", "{'y': y}")]


def spec_of(cells):
    return load_spec(read_notebook(json.dumps(make_notebook(cells))), "p")


def report(spec, outputs_text: str) -> protocol.Report:
    now = time.time()
    cells = [
        {"index": c.index, "start": now, "end": now + 0.001, "status": "completed",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": f"{outputs_text} in {c.index}\n"}]}
        for c in spec.run_cells
    ]
    return protocol.Report(cells=cells, error=None, result={"y": 1})


def run_of(n: int) -> dict:
    return {"run_id": f"{n:032x}", "product": "p", "version": 1, "status": "succeeded", "trigger": {"kind": "http"},
            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:01+00:00", "duration_ms": 3}


def without_ids(nb: dict) -> dict:
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        cell.pop("id", None)
    return nb


def test_record_equals_papermills_parameterized_notebook():
    spec = spec_of(CELLS)
    params = {"x": 5, "name": "it's \"quoted\"\n"}
    got = record.record_notebook(spec, params, None, report(spec, "out"), run_of(1))
    # papermill on the same notebook the record starts from: its injected cell, in its place, with its text.
    base = nbformat.from_dict(copy.deepcopy(record._template(spec).notebook))
    base.cells.pop(record._template(spec).injected)
    base.metadata.papermill.pop("parameters")
    expected = parameterize_notebook(base, params, kernel_name=spec.kernel_name, language="python")
    injected = [i for i, c in enumerate(got["cells"]) if "injected-parameters" in c["metadata"]["tags"]]
    assert injected == [2] and got["cells"][2]["source"] == expected.cells[2].source
    assert "x = 5" in got["cells"][2]["source"] and got["cells"][1]["metadata"]["tags"] == ["parameters"]
    for mine, theirs in zip(without_ids(got)["cells"], without_ids(expected)["cells"]):
        if "injected-parameters" not in mine["metadata"]["tags"]:
            assert mine["source"] == theirs["source"] and mine["metadata"]["tags"] == theirs["metadata"]["tags"]
    # Outputs land in the cells the runner named, behind the injected cell.
    body = next(c for c in got["cells"] if c["source"].startswith("y = x"))
    assert body["outputs"][0]["text"] == f"out in {spec.run_cells[1].index}\n"
    assert got["metadata"]["papermill"]["parameters"] == params
    nbformat.validate(nbformat.from_dict(copy.deepcopy(got)))  # a valid notebook, as papermill writes


def test_runs_do_not_share_their_notebooks():
    spec = spec_of(CELLS)
    first = record.record_notebook(spec, {"x": 1}, None, report(spec, "first"), run_of(1))
    second = record.record_notebook(spec, {"x": 2}, None, None, run_of(2))
    assert "x = 1" in first["cells"][2]["source"] and "x = 2" in second["cells"][2]["source"]
    assert all(not c.get("outputs") for c in second["cells"] if c["cell_type"] == "code")
    assert all(c["metadata"]["papermill"]["status"] == "pending" for c in second["cells"] if "papermill" in c["metadata"])
    assert second["metadata"]["papermill"]["parameters"] == {"x": 2}


def test_template_is_forgotten_with_its_version():
    spec = spec_of(CELLS)
    record.record_notebook(spec, {"x": 1}, None, None, run_of(1))
    key = id(spec)
    assert key in record._templates
    del spec
    assert key not in record._templates
