"""The write-behind writer: finished runs reach the store after their caller has the answer.

A finished run is kept in memory (:class:`Unsaved`) from the moment it is
recorded until the store has it, so reads never miss it. One task takes every
run recorded so far and, in one hop to a thread, builds each one's executed
notebook and writes its record (a thread hop per run, twice, was a measured
share of the runtime's CPU: docs/performance.md); while the store is down it
waits and retries (with backoff, ``settings.store.write_retry``), so no finished
run is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

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
        self._writes: asyncio.Queue[_Write] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._stopping = False

    def record(self, run: Run, build_notebook: NotebookBuilder | None, indexed: bool) -> None:
        """Keep the finished run readable now and write it (with its notebook, if any) in the background."""
        self.unsaved[run.run_id] = Unsaved(run)
        self._writes.put_nowait(_Write(run, build_notebook, indexed))

    async def saved(self, run_id: str) -> None:
        """Wait until the store has the run recorded as ``run_id``; raises if it could not be written."""
        if run_id in self.unsaved:
            await asyncio.shield(self._waiting.setdefault(run_id, asyncio.get_running_loop().create_future()))

    def runs_of(self, product: str) -> list[Run]:
        """The unsaved runs of ``product``."""
        return [unsaved.run for unsaved in self.unsaved.values() if unsaved.run.product == product]

    async def flush(self) -> None:
        """Wait until everything recorded so far is written (or has failed to be)."""
        await self._writes.join()

    # lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._write_forever())

    def begin_stop(self) -> None:
        """From now on a store outage is not waited out: the runtime is stopping."""
        self._stopping = True

    async def stop(self) -> None:
        """Write what is recorded, then end the task."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._writes.get()]
            while not self._writes.empty():
                batch.append(self._writes.get_nowait())
            try:
                await self._save_through_outage(batch)
            except Exception as exc:  # the one writer must outlive any one batch: log it in full, go on
                log.exception("could not save runs %s; they stay readable from memory", ", ".join(w.run.run_id for w in batch))
                for write in batch:
                    _settle_waiter(self._waiting.pop(write.run.run_id, None), exc)
            finally:
                for _ in batch:
                    self._writes.task_done()

    def _write_batch(self, writes: list[_Write], saved: list[Exception | None]) -> None:
        """In a thread: build and save each run in turn; ``saved`` gets one entry per run dealt with
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

    async def _save_through_outage(self, batch: list[_Write]) -> None:
        """While the store is down finished runs wait in memory and are retried, not dropped."""
        pending = list(batch)

        def waiting(state: RetryCallState) -> None:
            assert state.outcome is not None
            log.warning("run %s waits for the store: %s", pending[0].run.run_id, state.outcome.exception())

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_exponential(multiplier=self.retry.first, max=self.retry.max),
            stop=lambda state: self._stopping,  # a stopping runtime does not wait the outage out
            before_sleep=waiting,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                saved: list[Exception | None] = []
                try:
                    await asyncio.to_thread(self._write_batch, pending, saved)
                finally:
                    # Forgotten here, on the loop, where reads of `unsaved` iterate it.
                    for write, error in zip(pending, saved):
                        if error is None:
                            self.unsaved.pop(write.run.run_id, None)
                        _settle_waiter(self._waiting.pop(write.run.run_id, None), error)
                    pending = pending[len(saved):]


def _settle_waiter(waiter: asyncio.Future[None] | None, exc: Exception | None) -> None:
    if waiter is None or waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)
