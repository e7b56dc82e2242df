"""The executed notebook of a run: the record kept beside the run, built after the answer.

It is shaped like papermill's output (an ``injected-parameters`` cell and
``metadata.papermill``), from the runner's per-cell reports. The notebook before any run fills it
is built once per loaded product version (papermill's ``parameterize_notebook`` validates the cell
it injects against the notebook schema, ~0.1 ms); a run copies it and writes its parameters into
the injected cell with papermill's Python translator (without its ``black`` pass: where black is
not installed each attempt to import it costs ~0.2 ms, and the record is not code to read).
The template is plain JSON data, and a run's notebook is new dicts only where the run changed it
(its executed cells, the injected cell, the metadata), sharing the rest with the template: a deep
copy of the whole notebook per run was most of the build's time. So a run's notebook is read-only:
it is serialized and served, never changed. docs/performance.md has the figures.
"""

from __future__ import annotations

import copy
import json
import weakref
from datetime import datetime, timezone
from typing import Any

import papermill
from papermill.parameterize import parameterize_notebook
from papermill.translators import PythonTranslator
from papermill.utils import find_first_tagged_cell_index

from ..model.product import ProductSpec
from .protocol import Report


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


class _Template:
    """A product version's executed notebook before a run: cells pending, the injected cell empty."""

    def __init__(self, spec: ProductSpec) -> None:
        nb = copy.deepcopy(spec.notebook)
        nb.metadata.setdefault("papermill", {})
        for cell in nb.cells:
            cell.metadata.setdefault("tags", [])
            cell.metadata["papermill"] = {"status": "pending", "start_time": None, "end_time": None, "duration": None, "exception": None}
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        cells = list(nb.cells)
        parameterized = parameterize_notebook(nb, {}, kernel_name=spec.kernel_name, language="python")
        at = {id(cell): i for i, cell in enumerate(parameterized.cells)}
        # Where each cell of the product's notebook is now (None: an old injected cell it replaced).
        self.position = [at.get(id(cell)) for cell in cells]
        self.injected = find_first_tagged_cell_index(parameterized, "injected-parameters")
        self.notebook: dict[str, Any] = json.loads(json.dumps(parameterized))  # plain dicts, shared by every run


_templates: dict[int, _Template] = {}


def _template(spec: ProductSpec) -> _Template:
    """Built on a loaded version's first run, forgotten with the version (specs are not hashable)."""
    template = _templates.get(id(spec))
    if template is None:
        template = _templates[id(spec)] = _Template(spec)
        weakref.finalize(spec, _templates.pop, id(spec), None)
    return template


def injected_source(params: dict[str, Any]) -> str:
    """The injected cell's text: papermill's Python translation of ``params``."""
    return super(PythonTranslator, PythonTranslator).codify(params, "Parameters")


def record_notebook(
    spec: ProductSpec,
    params: dict[str, Any],
    setup: Report | None,
    report: Report | None,
    run: dict[str, Any],
) -> dict[str, Any]:
    """The executed notebook of a run, as papermill would have written it (read-only: see above)."""
    template = _template(spec)
    cells = list(template.notebook["cells"])
    count = 0
    for rep in (setup, report):
        for rec in rep.cells if rep else []:
            count += 1
            at = template.position[rec["index"]]
            if at is None:
                continue
            cell = cells[at]
            end = rec.get("end", rec["start"])
            papermill_meta = {
                "status": rec["status"],
                "start_time": _iso(rec["start"]),
                "end_time": _iso(end),
                "duration": end - rec["start"],
                "exception": rec["status"] == "failed",
            }
            cells[at] = {
                **cell,
                "execution_count": count,
                "outputs": [_numbered(out, count) for out in rec["outputs"]],
                "metadata": {**cell["metadata"], "papermill": papermill_meta},
            }
    cells[template.injected] = {**cells[template.injected], "source": injected_source(params)}
    error = run.get("error")
    metadata = template.notebook["metadata"]
    papermill_meta = {
        **metadata["papermill"],
        "input_path": f"{spec.name}@{run['version']}",
        "output_path": f"runs/{run['run_id']}.ipynb",
        "parameters": params,
        "default_parameters": {n: p.default for n, p in spec.parameters.items()},
        "start_time": run.get("started_at"),
        "end_time": run.get("finished_at"),
        "duration": (run.get("duration_ms") or 0) / 1000,
        "exception": bool(error),
        "environment_variables": {},
        "version": papermill.__version__,
    }
    nbmesh_run = {k: run[k] for k in ("run_id", "product", "version", "status", "trigger")}
    return {**template.notebook, "cells": cells, "metadata": {**metadata, "papermill": papermill_meta, "nbmesh_run": nbmesh_run}}


def _numbered(output: dict[str, Any], count: int) -> dict[str, Any]:
    """An output as the record keeps it: an ``execute_result`` carries its cell's execution count."""
    if output.get("output_type") == "execute_result":
        return {**output, "execution_count": count}
    return output
