"""The write-behind writer: finished runs reach the store after their caller has the answer.

A finished run is kept in memory (:class:`Unsaved`) from the moment it is
recorded until the store has it, so reads never miss it. On a local store the
run's executed notebook is built and its record written on the event loop, on
its next turn after the answer (about 0.1 ms: a few file-system calls); a thread
doing it instead cost more than the write itself, in GIL hand-offs with the loop
(docs/performance.md, change 9). A remote store's writes, and any write that met
a store outage, go to one dedicated thread, which takes every run handed to it
so far, writes them and reports the batch back to the loop in one call; while
the store is down it waits and retries (with backoff, ``settings.store.write_retry``),
so no finished run is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from ..errors import StoreUnavailable
from ..model.records import Run
from ..settings import Backoff
from ..store.repository import Repository

log = logging.getLogger("nbmesh.service")

NotebookBuilder = Callable[[], dict[str, Any]]


@dataclass
class Unsaved:
    """A finished run the store does not have yet, and its executed notebook once built."""

    run: Run
    notebook: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Write:
    run: Run
    build_notebook: NotebookBuilder | None
    indexed: bool  # the run's first write already indexed it under its product (a background run)


class Writer:
    def __init__(self, repo: Repository, retry: Backoff) -> None:
        self.repo = repo
        self.retry = retry
        self.unsaved: dict[str, Unsaved] = {}
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()  # None: the thread ends
        self._outstanding = 0  # recorded and not yet reported back by the thread (on the loop only)
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def record(self, run: Run, build_notebook: NotebookBuilder | None, indexed: bool) -> None:
        """Keep the finished run readable now and write it (with its notebook, if any) in the background."""
        self.unsaved[run.run_id] = Unsaved(run)
        self._outstanding += 1
        self._idle.clear()
        # Written on the loop's next turn, once the answer being built now is sent (a thread woken
        # here would also compete with the answer for the GIL).
        write = _Write(run, build_notebook, indexed)
        asyncio.get_running_loop().call_soon(self._write_here if self.repo.local else self._writes.put, write)

    def _write_here(self, write: _Write) -> None:
        """A local store's write, on the loop; an outage hands the run to the thread, which retries."""
        saved: list[Exception | None] = []
        try:
            self._write_batch([write], saved)
        except StoreUnavailable as exc:
            _waits(write, exc)
            self._writes.put(write)
        else:
            self._settle([write], saved)

    async def saved(self, run_id: str) -> None:
        """Wait until the store has the run recorded as ``run_id``; raises if it could not be written."""
        if run_id in self.unsaved:
            await asyncio.shield(self._waiting.setdefault(run_id, asyncio.get_running_loop().create_future()))

    def runs_of(self, product: str) -> list[Run]:
        """The unsaved runs of ``product``."""
        return [unsaved.run for unsaved in self.unsaved.values() if unsaved.run.product == product]

    async def flush(self) -> None:
        """Wait until everything recorded so far is written (or has failed to be)."""
        await self._idle.wait()

    # lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._write_forever, name="nbmesh-writer", daemon=True)
        self._thread.start()

    def begin_stop(self) -> None:
        """From now on a store outage is not waited out: the runtime is stopping."""
        self._stopping = True

    async def stop(self) -> None:
        """Write what is recorded, then end the thread."""
        await self.flush()
        if self._thread is not None:
            self._writes.put(None)
            await asyncio.to_thread(self._thread.join)

    # the writer's thread ----------------------------------------------------------------
    def _write_forever(self) -> None:
        while True:
            batch = [self._writes.get()]
            while not self._writes.empty():
                batch.append(self._writes.get_nowait())
            writes = [write for write in batch if write is not None]
            if writes:
                self._save_through_outage(writes)
            if None in batch:
                return

    def _write_batch(self, writes: list[_Write], saved: list[Exception | None]) -> None:
        """Build and save each run in turn; ``saved`` gets one entry per run dealt with
        (``None`` once written, else the error).

        A run that cannot be written for any other reason than a store outage is logged and left
        in memory; an outage stops the batch, to be retried from the run it stopped at.
        """
        for write in writes:
            unsaved = self.unsaved[write.run.run_id]
            try:
                if write.build_notebook is not None and unsaved.notebook is None:
                    unsaved.notebook = write.build_notebook()
                self.repo.save_run(write.run, unsaved.notebook, indexed=write.indexed)
            except StoreUnavailable:
                raise
            except Exception as exc:
                log.exception("could not save run %s; it stays readable from memory", write.run.run_id)
                saved.append(exc)
            else:
                saved.append(None)

    def _save_through_outage(self, batch: list[_Write]) -> None:
        """While the store is down finished runs wait in memory and are retried, not dropped."""
        pending = list(batch)

        def waiting(state: RetryCallState) -> None:
            assert state.outcome is not None
            _waits(pending[0], state.outcome.exception())

        def attempt() -> None:
            nonlocal pending
            saved: list[Exception | None] = []
            try:
                self._write_batch(pending, saved)
            finally:
                done, pending = pending[: len(saved)], pending[len(saved) :]
                self._report(done, saved)

        try:
            Retrying(
                retry=retry_if_exception_type(StoreUnavailable),
                wait=wait_exponential(multiplier=self.retry.first, max=self.retry.max),
                stop=lambda state: self._stopping,  # a stopping runtime does not wait the outage out
                before_sleep=waiting,
                reraise=True,
            )(attempt)
        except Exception as exc:  # the one writer must outlive any one batch: log it in full, go on
            log.exception("could not save runs %s; they stay readable from memory", ", ".join(w.run.run_id for w in pending))
            self._report(pending, [exc] * len(pending))

    def _report(self, writes: list[_Write], errors: list[Exception | None]) -> None:
        if writes:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._settle, writes, errors)

    # back on the loop ---------------------------------------------------------------------
    def _settle(self, writes: list[_Write], errors: list[Exception | None]) -> None:
        """Forget what was written (here, on the loop, where reads of `unsaved` iterate it) and wake its waiters."""
        for write, error in zip(writes, errors):
            if error is None:
                self.unsaved.pop(write.run.run_id, None)
            _settle_waiter(self._waiting.pop(write.run.run_id, None), error)
        self._outstanding -= len(writes)
        if self._outstanding == 0:
            self._idle.set()


def _waits(write: _Write, exc: BaseException | None) -> None:
    log.warning("run %s waits for the store: %s", write.run.run_id, exc)


def _settle_waiter(waiter: asyncio.Future[None] | None, exc: Exception | None) -> None:
    if waiter is None or waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)
