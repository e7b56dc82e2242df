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

from ..errors import StoreError, StoreUnavailable
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


class _Writes(asyncio.Queue):
    """The writer's queue, counting the writes put in and done, so a caller can wait for the ones before it."""

    def __init__(self) -> None:
        super().__init__()
        self.put_in = 0
        self.done = 0
        self.progress = asyncio.Event()

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        self.put_in += 1

    def task_done(self) -> None:
        super().task_done()
        self.done += 1
        self.progress.set()


class Writer:
    def __init__(self, repo: Repository, retry: Backoff) -> None:
        self.repo = repo
        self.retry = retry
        self.unsaved: dict[str, Unsaved] = {}
        self._writes = _Writes()
        self._task: asyncio.Task | None = None
        self._stopping = False

    def record(self, run: Run, build_notebook: NotebookBuilder | None, indexed: bool) -> None:
        """Keep the finished run readable now and write it (with its notebook, if any) in the background."""
        self.unsaved[run.run_id] = Unsaved(run)
        self._writes.put_nowait(_Write(run, build_notebook, indexed))

    async def saved(self, run_id: str) -> None:
        """Wait until every write recorded so far is done (writes are done in order), and the store
        has run ``run_id``; StoreError if its write failed (it stays readable from memory)."""
        before = self._writes.put_in
        while self._writes.done < before:
            self._writes.progress.clear()
            await self._writes.progress.wait()
        if run_id in self.unsaved:
            raise StoreError(f"Run {run_id} could not be written to the store; it stays readable from memory.")

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
            except Exception:  # the one writer must outlive any one batch: log it in full, go on
                log.exception("could not save runs %s; they stay readable from memory", ", ".join(w.run.run_id for w in batch))
            finally:
                for _ in batch:
                    self._writes.task_done()

    def _write_batch(self, writes: list[_Write], saved: list[bool]) -> None:
        """In a thread: build and save each run in turn; ``saved`` gets one entry per run dealt with.

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
            except Exception:
                log.exception("could not save run %s; it stays readable from memory", write.run.run_id)
                saved.append(False)
            else:
                saved.append(True)

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
                saved: list[bool] = []
                try:
                    await asyncio.to_thread(self._write_batch, pending, saved)
                finally:
                    # Forgotten here, on the loop, where reads of `unsaved` iterate it.
                    for write, ok in zip(pending, saved):
                        if ok:
                            self.unsaved.pop(write.run.run_id, None)
                    pending = pending[len(saved):]
