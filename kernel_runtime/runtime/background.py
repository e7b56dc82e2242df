"""Background work of :class:`~.runs.Runs`: workers taking runs from the queue, and the runs a finish triggers.

A worker takes a run only when it is free, holds it while it runs, waits until its record is final
in the store, and then lets it go together with the runs its finish triggers (:meth:`Background._let_go`),
so a stop between the two loses no link of a chain. A run no worker holds (an invoke, a refusal)
queues what it triggers after its answer (:meth:`Background._dispatch`). A start settles the runs
the store has unfinished as the queue says.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ..errors import NbmeshError, QueueFull, QueueUnavailable
from ..model.records import FAILED, Run, now_iso
from ..model.run_errors import RunError
from ..store.repository import Repository
from .catalog import Catalog
from .queue import Delivery, RunQueue
from .writer import Writer

log = logging.getLogger("nbmesh.service")


class Events(Protocol):
    """The runs a finished run's event triggers (:class:`kernel_runtime.triggers.engine.Triggers`)."""

    def subscribed(self, run: Run) -> bool: ...

    async def triggered_by(self, run: Run) -> list[Run]: ...


class Background:
    """Mixed into :class:`~.runs.Runs`, which provides the attributes and the execution below."""

    catalog: Catalog
    repo: Repository
    writer: Writer
    queue: RunQueue
    events: Events | None
    grace: float
    _stopping_at: float | None
    _busy: set[asyncio.Task]
    _dispatching: set[asyncio.Task]

    async def _execute(self, run: Run, spec: Any, indexed: bool = False) -> None: ...

    def _finish(self, run: Run, build_notebook: Any, indexed: bool) -> None: ...

    def _refused(self, run: Run, exc: NbmeshError) -> None: ...

    async def settle_unfinished(self) -> None:
        """Of the runs the store has unfinished, those the queue will not run are recorded as failed."""
        unfinished = []
        for run in await asyncio.to_thread(self.repo.pending_runs):
            if run.final:
                # Its final record was written but the process stopped before the marker went.
                await asyncio.to_thread(self.repo.settled, run.run_id)
            else:
                unfinished.append(run)
        for run, reason in await self.queue.settle(unfinished, lambda run: run.product in self.catalog):
            run.status = FAILED
            run.finished_at = now_iso()
            run.error = RunError.stopped_while(reason).to_json()
            await asyncio.to_thread(self.repo.save_run, run, None, indexed=True)

    async def _worker(self) -> None:
        while self._stopping_at is None:
            delivery = await self.queue.take()
            if delivery is None or self._stopping_at is not None:
                continue  # one taken while stopping stays stored as queued, or lapses to another replica
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)
            run = delivery.run
            try:
                async with self.queue.hold(delivery):
                    run, dead = await self._perform(delivery)
                    await self._let_go(delivery, run, dead)
            except asyncio.CancelledError:
                if not run.final:
                    run.status, run.finished_at = FAILED, now_iso()
                    run.error = RunError.stopped_after_grace(self.grace).to_json()
                    self._finish(run, None, indexed=True)
                raise
            except Exception:  # not let go: the queue delivers it again (Redis), or the next start does
                log.exception("background run %s could not be finished", run.run_id)
            finally:
                self._busy.discard(task)

    async def _perform(self, delivery: Delivery) -> tuple[Run, bool]:
        """Run a delivered run unless a redelivery finds it final; True with a run dead-lettered instead."""
        run = delivery.run
        if delivery.entry is not None:  # a shared queue may deliver a run again, or twice
            stored = await asyncio.to_thread(self.repo.get_run, run.run_id)
            if stored is not None and stored.final:
                return stored, False  # its replica stopped between the record and letting it go
            if self.queue.max_deliveries is not None and delivery.deliveries > self.queue.max_deliveries:
                run.status, run.finished_at = FAILED, now_iso()
                run.error = RunError.dead_lettered(delivery.deliveries - 1).to_json()
                self._finish(run, None, indexed=True)
                await self.writer.saved(run.run_id)
                return run, True
        try:
            spec, _ = await self.catalog.resolve(f"{run.product}@{run.version}")
            await self._execute(run, spec, indexed=True)
        except Exception as exc:  # a bad record must not stop the worker
            log.exception("background run %s could not run", run.run_id)
            run.status, run.finished_at = FAILED, now_iso()
            run.error = RunError.unexpected(exc).to_json()
            self._finish(run, None, indexed=True)
        await self.writer.saved(run.run_id)  # final in the store before it is let go
        return run, False

    async def _let_go(self, delivery: Delivery, run: Run, dead: bool) -> None:
        triggered = await self.events.triggered_by(run) if self.events else []
        try:
            await self.queue.done(delivery, triggered, dead)
        except QueueFull as exc:  # the embedded queue: recorded as failed, so no trigger vanishes silently
            for other in triggered:
                self._refused(other, exc)
        except QueueUnavailable:
            pass  # stopping while Redis is down: the run is delivered again, final, and let go with these then

    def _dispatch_soon(self, run: Run) -> None:
        """Queue the runs the finish of a run no worker holds (an invoke, a refusal) triggers."""
        if self.events is None or not self.events.subscribed(run):
            return
        task = asyncio.get_running_loop().create_task(self._dispatch(run))
        self._dispatching.add(task)
        task.add_done_callback(self._dispatching.discard)

    async def _dispatch(self, run: Run) -> None:
        assert self.events is not None
        triggered = await self.events.triggered_by(run)
        try:
            if triggered:
                await self.queue.put(triggered)
        except NbmeshError as exc:
            for other in triggered:
                self._refused(other, exc)
