"""The executed notebook of a run: the record kept beside the run, built after the answer.

It is shaped like papermill's output (an ``injected-parameters`` cell and
``metadata.papermill``), from the runner's per-cell reports.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import nbformat
import papermill
from papermill.parameterize import parameterize_notebook

from ..model.product import ProductSpec
from .protocol import Report


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def record_notebook(
    spec: ProductSpec,
    params: dict[str, Any],
    setup: Report | None,
    report: Report | None,
    run: dict[str, Any],
) -> dict[str, Any]:
    """The executed notebook of a run, as papermill would have written it."""
    nb = copy.deepcopy(spec.notebook)
    nb.metadata.setdefault("papermill", {})
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
        cell.metadata["papermill"] = {"status": "pending", "start_time": None, "end_time": None, "duration": None, "exception": None}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    count = 0
    for rep in (setup, report):
        for rec in rep.cells if rep else []:
            count += 1
            cell = nb.cells[rec["index"]]
            cell.outputs = [nbformat.from_dict(o) for o in rec["outputs"]]
            cell.execution_count = count
            for out in cell.outputs:
                if out.output_type == "execute_result":
                    out.execution_count = count
            end = rec.get("end", rec["start"])
            cell.metadata.papermill.update(
                status=rec["status"],
                start_time=_iso(rec["start"]),
                end_time=_iso(end),
                duration=end - rec["start"],
                exception=rec["status"] == "failed",
            )
    nb = parameterize_notebook(nb, params, kernel_name=spec.kernel_name, language="python")
    error = run.get("error")
    nb.metadata.papermill.update(
        input_path=f"{spec.name}@{run['version']}",
        output_path=f"runs/{run['run_id']}.ipynb",
        parameters=params,
        default_parameters={n: p.default for n, p in spec.parameters.items()},
        start_time=run.get("started_at"),
        end_time=run.get("finished_at"),
        duration=(run.get("duration_ms") or 0) / 1000,
        exception=bool(error),
        environment_variables={},
        version=papermill.__version__,
    )
    nb.metadata["nbmesh_run"] = {k: run[k] for k in ("run_id", "product", "version", "status", "trigger")}
    return nb
