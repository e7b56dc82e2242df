"""A notebook's publish problems, checked in the Jupyter server by the runtime's own rules, nothing stored."""

from __future__ import annotations

import json
from typing import Any

from ..errors import NbmeshError
from ..model.product import read_notebook
from ..runtime.catalog import load_product


def notebook_problems(name: str | None, notebook: Any) -> list[Any]:
    """Every problem of ``notebook`` as a product named ``name`` (None: its metadata's name), by the runtime's rules."""
    try:
        load_product(read_notebook(json.dumps(notebook)), name)
    except NbmeshError as exc:
        return exc.details or [{"cell": None, "message": exc.message}]
    return []
