"""What kernels write to their stdout and stderr (file descriptors 1 and 2), into the runtime's log.

Product code that writes to fd 1/2 directly (``os.write(1, ...)``, C libraries, subprocesses)
bypasses the runner's capture. Each kernel gets its own pipes for them; every line read is
logged by ``nbmesh.kernel`` as ``[kernel 3 sales@2 stdout] text``: marked with the kernel, the
product version it serves and the stream, control characters escaped, at most
``settings.pool.log.line_chars`` characters. So a product cannot write a line that reads as the
runtime's own. A flood costs neither memory (the pipe is read in fixed chunks and discarded as it
goes) nor the log's sanity: past ``log.lines`` lines in ``log.window`` seconds a kernel's lines
are counted, not logged, and the count is logged once the window ends.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from typing import Callable

from ..settings import KernelLogSettings

log = logging.getLogger("nbmesh.kernel")


def escape(text: str) -> str:
    """``text`` with every non-printable character (newlines, ESC, NUL, ...) shown as an escape."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Stream(asyncio.Protocol):
    def __init__(self, output: "KernelOutput", name: str) -> None:
        self.output = output
        self.name = name
        self.partial = b""
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > self.output.settings.line_chars * 4:  # a line without end: log what came so far, keep nothing
            lines.append(self.partial)
            self.partial = b""
        for line in lines:
            self.output.line(self.name, line)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.partial:
            self.output.line(self.name, self.partial)
        self.output.flush_dropped()
        if not self.closed.done():
            self.closed.set_result(None)


class KernelOutput:
    """The stdout and stderr pipes of one kernel process, read by the event loop as data arrives."""

    def __init__(self, label: Callable[[], str], settings: KernelLogSettings) -> None:
        self.label = label
        self.settings = settings
        self.tail: collections.deque[str] = collections.deque(maxlen=settings.tail)
        self._window_start = time.monotonic()
        self._logged = 0
        self._dropped = 0
        self._streams: list[_Stream] = []
        self.stdout_w: int | None = None
        self.stderr_w: int | None = None
        self._read_ends: list[tuple[str, int]] = []

    def pipes(self) -> dict[str, int]:
        """The ``stdout``/``stderr`` arguments for the kernel's Popen (write ends of fresh pipes)."""
        out_r, self.stdout_w = os.pipe()
        err_r, self.stderr_w = os.pipe()
        self._read_ends = [("stdout", out_r), ("stderr", err_r)]
        return {"stdout": self.stdout_w, "stderr": self.stderr_w}

    async def attach(self) -> None:
        """Start reading, once the kernel process holds the write ends (which this process then closes)."""
        for fd in (self.stdout_w, self.stderr_w):
            if fd is not None:
                os.close(fd)
        self.stdout_w = self.stderr_w = None
        loop = asyncio.get_running_loop()
        for name, fd in self._read_ends:
            stream = _Stream(self, name)
            await loop.connect_read_pipe(lambda s=stream: s, os.fdopen(fd, "rb", buffering=0))
            self._streams.append(stream)
        self._read_ends = []

    def close_unused(self) -> None:
        """Close the pipes when the kernel process was never started."""
        for fd in [self.stdout_w, self.stderr_w, *(fd for _, fd in self._read_ends)]:
            if fd is not None:
                os.close(fd)
        self.stdout_w = self.stderr_w = None
        self._read_ends = []

    async def closed(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the kernel's last output has been read."""
        if self._streams:
            await asyncio.wait([asyncio.ensure_future(s.closed) for s in self._streams], timeout=timeout)

    def line(self, stream: str, raw: bytes) -> None:
        text = escape(raw.decode("utf-8", "replace"))
        cut = self.settings.line_chars
        if len(text) > cut:
            text = f"{text[:cut]}… ({len(text) - cut} more characters)"
        self.tail.append(text)
        now = time.monotonic()
        if now - self._window_start >= self.settings.window:
            self.flush_dropped()
            self._window_start, self._logged = now, 0
        if self._logged >= self.settings.lines:
            self._dropped += 1
            return
        self._logged += 1
        log.info("[kernel %s %s] %s", self.label(), stream, text)

    def flush_dropped(self) -> None:
        if self._dropped:
            log.warning("[kernel %s] %d more lines of output were not logged (over %d lines in %g s)",
                        self.label(), self._dropped, self.settings.lines, self.settings.window)
            self._dropped = 0
