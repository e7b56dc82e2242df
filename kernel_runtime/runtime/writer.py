"""The write-behind writer: finished runs reach the store after their caller has the answer.

A finished run is kept in memory (:class:`Unsaved`) from the moment it is
recorded until the store has it, so reads never miss it. One task builds each
run's executed notebook (off the event loop) and writes the record; while the
store is down it waits and retries (with backoff, ``settings.store.write_retry``), so no finished
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
        self._writes: asyncio.Queue[_Write] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._waiting: dict[str, asyncio.Future[None]] = {}

    def record(self, run: Run, build_notebook: NotebookBuilder | None, indexed: bool) -> None:
        """Keep the finished run readable now and write it (with its notebook, if any) in the background."""
        self.unsaved[run.run_id] = Unsaved(run)
        self._writes.put_nowait(_Write(run, build_notebook, indexed))

    def runs_of(self, product: str) -> list[Run]:
        """The unsaved runs of ``product``."""
        return [unsaved.run for unsaved in self.unsaved.values() if unsaved.run.product == product]

    async def saved(self, run_id: str) -> None:
        """Wait until the store has the run recorded as ``run_id``; raises if it could not be written."""
        if run_id in self.unsaved:
            await asyncio.shield(self._waiting.setdefault(run_id, asyncio.get_running_loop().create_future()))

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
            write = await self._writes.get()
            run = write.run
            try:
                # Building the notebook copies and parameterizes it: keep that off the event loop.
                notebook = await asyncio.to_thread(write.build_notebook) if write.build_notebook else None
                self.unsaved[run.run_id] = Unsaved(run, notebook)
                await self._save_through_outage(run, notebook, write.indexed)
                self.unsaved.pop(run.run_id, None)
                _settle_waiter(self._waiting.pop(run.run_id, None), None)
            except Exception as exc:  # the one writer must outlive any one record: log it in full, go on
                log.exception("could not save run %s; it stays readable from memory", run.run_id)
                _settle_waiter(self._waiting.pop(run.run_id, None), exc)
            finally:
                self._writes.task_done()

    async def _save_through_outage(self, run: Run, notebook: dict[str, Any] | None, indexed: bool) -> None:
        """While the store is down a finished run waits in memory and is retried, not dropped."""

        def waiting(state: RetryCallState) -> None:
            assert state.outcome is not None
            log.warning("run %s waits for the store: %s", run.run_id, state.outcome.exception())

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_exponential(multiplier=self.retry.first, max=self.retry.max),
            stop=lambda state: self._stopping,  # a stopping runtime does not wait the outage out
            before_sleep=waiting,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await asyncio.to_thread(self.repo.save_run, run, notebook, indexed=indexed)


def _settle_waiter(waiter: asyncio.Future[None] | None, exc: Exception | None) -> None:
    if waiter is None or waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)
