"""Runs: invoking now (the hot path), queueing in the background, executing, and reading runs back.

An invocation resolves the product in the in-memory catalog, validates its
parameters, takes a slot of the product's concurrency limit and a warm kernel
from the pool, and runs: one kernel round trip. The finished run goes to the
writer (stored after the answer) and to every run-finished hook. Background
runs are persisted as ``queued`` and put on the run queue (:mod:`.queue`) before
the caller's 202; a worker takes one when it is free, and once the run's record is
final in the store lets it go together with the runs its finish triggers. A start
settles the runs the store has unfinished as the queue says (:meth:`Runs.settle_unfinished`).
Reads merge the runs the writer has not stored yet with the store's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable

from ..errors import ExecutionTimeout, KernelError, KernelUnavailable, NbmeshError, NotFound, QueueFull, quoted
from ..kernels import protocol, record
from ..kernels.pool import KernelPool
from ..model.product import ProductSpec, contract_violation, parse_ref, validate_parameters
from ..model.records import FAILED, RUN_ID_RE, RUNNING, SUCCEEDED, TIMED_OUT, Run, RunTrigger, new_run_id, now_iso
from ..model.run_errors import RunError
from ..settings import RunSettings
from ..store.repository import Repository
from .background import Background, Events
from .cache import ResultCache
from .catalog import Catalog
from .limits import ProductLimiter
from .queue import RunQueue
from .writer import NotebookBuilder, Writer

log = logging.getLogger("nbmesh.service")
runlog = logging.getLogger("nbmesh.runs")

HTTP_TRIGGER = RunTrigger(kind="http")


class Runs(Background):
    """``hooks`` are called with every finished run, on the loop's turn after it (after an invoke's answer): they must be quick."""

    def __init__(
        self,
        catalog: Catalog,
        pool: KernelPool,
        repo: Repository,
        writer: Writer,
        hooks: list[Callable[[Run], None]],
        settings: RunSettings,
        queue: RunQueue,
    ) -> None:
        self.catalog = catalog
        self.pool = pool
        self.repo = repo
        self.writer = writer
        self.hooks = hooks
        self.settings = settings
        self.queue_size = settings.queue_size
        self.grace = settings.grace
        self.cache = ResultCache(settings.cache_size)
        self.limiter = ProductLimiter(settings.concurrency(pool.settings.size), settings.queue_size)
        self.queue = queue
        self.events: Events | None = None  # set once the trigger engine exists
        self._workers: list[asyncio.Task] = []
        self._dispatching: set[asyncio.Task] = set()
        self._busy: set[asyncio.Task] = set()
        self._stopping_at: float | None = None

    # lifecycle ------------------------------------------------------------------------
    def start_workers(self) -> None:
        # By default one kernel stays free of background runs, for interactive calls.
        count = self.settings.worker_count(self.pool.settings.size)
        self._workers = [asyncio.create_task(self._worker()) for _ in range(count)]

    def begin_stop(self) -> None:
        """From now on no background run starts; queued ones stay persisted for the next start."""
        if self._stopping_at is None:
            self._stopping_at = time.monotonic()

    async def stop(self) -> None:
        """Give running background runs what is left of the grace period (counted from
        :meth:`begin_stop`), then stop the workers; runs still running are failed with ``RuntimeStopped``."""
        self.begin_stop()
        assert self._stopping_at is not None
        for task in self._workers:
            if task not in self._busy:
                task.cancel()
        if self._busy:
            remaining = self.grace - (time.monotonic() - self._stopping_at)
            await asyncio.wait(list(self._busy), timeout=max(0.0, remaining))
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    # running --------------------------------------------------------------------------
    async def invoke(self, ref: str, params: Any, trigger: RunTrigger = HTTP_TRIGGER) -> Run:
        """Run now and wait: the hot path. Validates, leases a warm kernel, runs, answers; or, for a
        product with a ``cache_ttl``, answers the earlier run from the result cache."""
        spec, version = await self.catalog.resolve(ref)
        values = validate_parameters(spec, params)
        key = None
        if spec.cache_ttl and trigger["kind"] == "http":
            key = self.cache.key(spec.name, version, values)
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        run = Run(run_id=new_run_id(), product=spec.name, version=version, parameters=values, trigger=dict(trigger))
        await self._execute(run, spec)
        if key is not None and run.status == SUCCEEDED:
            self.cache.put(key, run, spec.cache_ttl)
        return run

    async def submit(self, ref: str, params: Any, trigger: RunTrigger = HTTP_TRIGGER) -> Run:
        """Queue a background run; it is stored and queued before this returns so no stop loses it."""
        name, version, values = await self.validated(ref, params)
        if self.queue.room() < 1:
            raise QueueFull(f"The background queue is full ({self.queue_size} runs); try again later.")
        run = await self.prepare(name, version, values, trigger)
        assert run is not None
        try:
            await self.queue.put([run])
        except NbmeshError as exc:  # full, or Redis down: the caller is told, and the record says why
            self._refused(run, exc)
            raise
        return run

    async def validated(self, ref: str, params: Any) -> tuple[str, int, dict[str, Any]]:
        """The product name, version and parameter values of a run of ``ref``, or InvalidParameters/NotFound."""
        spec, version = await self.catalog.resolve(ref)
        return spec.name, version, validate_parameters(spec, params)

    async def prepare(self, name: str, version: int, values: dict[str, Any], trigger: dict[str, Any], run_id: str | None = None) -> Run | None:
        """A background run with valid ``values``, stored as queued but not queued yet; ``run_id``: a
        triggered run's derived id, None if its record is final already (its link was made before)."""
        run = Run(run_id=run_id or new_run_id(), product=name, version=version, parameters=values, trigger=dict(trigger))
        stored = await asyncio.to_thread(self.repo.get_run, run_id) if run_id else None
        if stored is not None and stored.final:
            return None
        await asyncio.to_thread(self.repo.save_run, run, None, indexed=stored is not None)
        return run

    def refuse(
        self, name: str, version: int, params: dict[str, Any], trigger: dict[str, Any], exc: NbmeshError, run_id: str | None = None
    ) -> Run:
        """Record a triggered run that could not be queued as failed, so no trigger vanishes silently."""
        run = Run(run_id=run_id or new_run_id(), product=name, version=version, parameters=dict(params), trigger=dict(trigger))
        run.status, run.finished_at = FAILED, now_iso()
        run.error = RunError.refused(exc).to_json()
        self._finish(run, None, indexed=False)
        return run

    def _refused(self, run: Run, exc: NbmeshError) -> None:
        """A stored ``queued`` run the queue did not take: failed, saying why."""
        run.status, run.finished_at = FAILED, now_iso()
        run.error = RunError.refused(exc).to_json()
        self._finish(run, None, indexed=True)

    def queue_depth(self) -> int:
        return self.queue.depth()

    def queue_room(self) -> int:
        return self.queue.room()

    async def _execute(self, run: Run, spec: ProductSpec, indexed: bool = False) -> None:
        """``indexed``: a background run, whose record the store already has (and indexes)."""
        setup: protocol.Report | None = None
        report: protocol.Report | None = None
        t0 = time.perf_counter()
        run.started_at = now_iso()
        run.status = RUNNING
        if indexed:
            # A background run's "running" is durable, so a restart knows not to run it twice.
            await asyncio.to_thread(self.repo.save_run, run, None, indexed=True)
        try:
            async with self.limiter.slot(spec.name), self.pool.lease(spec, run.version) as lease:
                run.warm = lease.warm
                setup = lease.kernel.setup_report
                if setup is not None and setup.error is not None:
                    run.status, run.error = FAILED, RunError.setup_failed(setup.error).to_json()
                else:
                    report = await self.pool.call(lease.kernel, protocol.run, run.parameters, timeout=spec.timeout)
                    _settle(run, spec, report)
        except ExecutionTimeout as exc:
            run.status = TIMED_OUT
            run.error = RunError.timed_out(exc.message, spec.timeout).to_json()
        except KernelUnavailable:
            raise  # no kernel can be started: the caller gets a 503 now rather than a failed run
        except KernelError as exc:  # KernelDied, KernelTampered, ...: the pool has replaced the kernel
            run.status, run.error = FAILED, RunError.kernel_failed(exc).to_json()
        run.duration_ms = round((time.perf_counter() - t0) * 1000, 3)
        run.finished_at = now_iso()
        self._finish(run, lambda: record.record_notebook(spec, run.parameters, setup, report, run.to_json()), indexed)

    def _finish(self, run: Run, build_notebook: NotebookBuilder | None, indexed: bool) -> None:
        """A run is final: hand it to the writer. Its log line, hooks and triggered runs follow on the
        loop's next turn, after the answer of an invoke is sent (and before any later request is read)."""
        self.writer.record(run, build_notebook, indexed)
        asyncio.get_running_loop().call_soon(self._announce, run, indexed)

    def _announce(self, run: Run, indexed: bool) -> None:
        runlog.info(
            json.dumps(
                {
                    "event": "run",
                    "run_id": run.run_id,
                    "product": run.product,
                    "version": run.version,
                    "status": run.status,
                    "duration_ms": run.duration_ms,
                    "warm": run.warm,
                    "trigger": run.trigger.get("kind"),
                }
            )
        )
        for hook in self.hooks:
            hook(run)
        if not indexed:  # a worker's run triggers its runs as it is let go
            self._dispatch_soon(run)

    # reading ----------------------------------------------------------------------------
    async def get_run(self, run_id: str) -> Run:
        if not RUN_ID_RE.fullmatch(run_id):
            raise NotFound(f"No run with id {quoted(run_id)}.")
        if run_id in self.writer.unsaved:
            return self.writer.unsaved[run_id].run
        run = await asyncio.to_thread(self.repo.get_run, run_id)
        if run is None:
            raise NotFound(f"No run with id {run_id!r}.")
        return run

    async def get_run_notebook(self, run_id: str) -> dict[str, Any]:
        run = await self.get_run(run_id)
        if not run.final:
            raise NotFound(f"Run {run_id} is {run.status}: its notebook exists once it is final.")
        if run_id in self.writer.unsaved:
            # Final but not written yet: the writer builds the notebook right after the answer.
            await self.writer.flush()
        unsaved = self.writer.unsaved.get(run_id)
        if unsaved is not None and unsaved.notebook is not None:
            return unsaved.notebook
        notebook = await asyncio.to_thread(self.repo.get_run_notebook, run_id)
        if notebook is None:
            raise NotFound(f"Run {run_id} has no executed notebook.")
        return notebook

    async def list_runs(self, ref: str, limit: int = 50) -> list[Run]:
        """The newest runs of ``name``, or of that version only for ``name@version``."""
        name, version = parse_ref(ref)
        entry = self.catalog.entries.get(name)
        if entry is None and not await asyncio.to_thread(self.repo.list_runs, name, 1):
            raise NotFound(f"No product named {name!r} is published.")
        if entry is not None and version is not None and version not in entry.versions:
            raise NotFound(f"Product {name!r} has no version {version}; versions: {entry.versions}.")
        # Unsaved runs first: one the writer saves while the store is read is then in one list or both.
        fresh = [r for r in self.writer.runs_of(name) if version in (None, r.version)]
        stored = await asyncio.to_thread(self.repo.list_runs, name, limit, version)
        seen = {r.run_id for r in fresh}
        runs = fresh + [r for r in stored if r.run_id not in seen]
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return runs[:limit]


def _settle(run: Run, spec: ProductSpec, report: protocol.Report) -> None:
    """The run's outcome from the runner's report, its result checked against the product's output schema."""
    if report.error is not None:
        run.status, run.error = FAILED, report.error
        return
    violation = contract_violation(spec, report.result)
    if violation is not None:
        run.status = FAILED
        run.error = RunError.broke_contract(violation).to_json()
        return
    run.status, run.result = SUCCEEDED, report.result
