"""Output capture inside a kernel: what a run prints and displays, kept for its record within one byte budget.

Part of the in-kernel runner (:mod:`kernel_runtime.kernels.runner`): it may import only the
standard library, IPython and its sibling modules, and the runner checks after each run that
no name here was changed.
"""

from __future__ import annotations

import io
import json
from typing import Any

from IPython.core.displaypub import DisplayPublisher

from .convert import finite


class OutputLimitExceeded(BaseException):
    """Raised from inside print(): a BaseException so that `except Exception` in product code cannot swallow it."""


class CappedStream(io.TextIOBase):
    """A text stream that keeps what is written, up to a shared byte budget."""

    def __init__(self, name: str, budget: list[int]) -> None:
        self.name = name
        self._parts: list[str] = []
        self._budget = budget

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._budget[0] -= len(text)
        if self._budget[0] < 0:
            raise OutputLimitExceeded(f"The run wrote more than its output limit to {self.name}.")
        self._parts.append(text)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self._parts)


def data_size(data: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v, default=str)) for v in data.values())


class CappedDisplay(DisplayPublisher):
    """Keeps what display() shows for the run's record, within the same budget as printed text.

    One per runner, reset per cell by :meth:`start`: building a traitlets object costs ~40 µs.
    """

    def start(self, budget: list[int]) -> "CappedDisplay":
        self.kept: list[dict[str, Any]] = []
        self._budget = budget
        return self

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False) -> None:
        self._budget[0] -= data_size(data)
        if self._budget[0] < 0:
            raise OutputLimitExceeded("The run displayed more than its output limit.")
        self.kept.append({"output_type": "display_data", "data": data, "metadata": metadata or {}})

    def clear_output(self, wait: bool = False) -> None:
        self.kept.clear()


def cell_outputs(stdout: CappedStream, stderr: CappedStream, displays: list) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    for stream in (stdout, stderr):
        text = stream.getvalue()
        if text:
            outputs.append({"output_type": "stream", "name": stream.name, "text": text})
    for shown in displays:
        # display(JSON({"x": nan})) is fine in JupyterLab; in the record NaN is null, as in a result.
        shown["data"] = {mime: v if isinstance(v, str) else finite(v) for mime, v in shown["data"].items()}
    return outputs + displays
