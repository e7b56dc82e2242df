"""Runs: invoking now (the hot path), queueing in the background, executing, and reading runs back.

An invocation resolves the product in the in-memory catalog, validates its
parameters, takes a slot of the product's concurrency limit and a warm kernel
from the pool, and runs: one kernel round trip. The finished run goes to the
writer (stored after the answer) and to every run-finished hook. Background
runs are persisted as ``queued`` before the caller's 202 and taken by workers;
a restart re-queues them (:meth:`Runs.settle_unfinished`). Reads merge the
runs the writer has not stored yet with the store's.
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
from ..model.records import FAILED, QUEUED, RUN_ID_RE, RUNNING, SUCCEEDED, TIMED_OUT, Run, RunTrigger, new_run_id, now_iso
from ..model.run_errors import RunError
from ..settings import RunSettings
from ..store.repository import Repository
from .cache import ResultCache
from .catalog import Catalog
from .limits import ProductLimiter
from .writer import NotebookBuilder, Writer

log = logging.getLogger("nbmesh.service")
runlog = logging.getLogger("nbmesh.runs")

HTTP_TRIGGER = RunTrigger(kind="http")


class Runs:
    """``hooks`` are called with every finished run, on the invoke path before the answer: they must be quick."""

    def __init__(
        self,
        catalog: Catalog,
        pool: KernelPool,
        repo: Repository,
        writer: Writer,
        hooks: list[Callable[[Run], None]],
        settings: RunSettings,
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
        self._background: asyncio.Queue[Run] = asyncio.Queue(maxsize=settings.queue_size)
        self._workers: list[asyncio.Task] = []
        self._busy: set[asyncio.Task] = set()
        self._stopping_at: float | None = None

    # lifecycle ------------------------------------------------------------------------
    async def settle_unfinished(self) -> None:
        """Runs a stop left queued go back on the queue; runs it left running are failed."""
        for run in await asyncio.to_thread(self.repo.pending_runs):
            if run.final:
                # Its final record was written but the process stopped before the marker went.
                await asyncio.to_thread(self.repo.settled, run.run_id)
                continue
            if run.status == QUEUED and run.product in self.catalog and not self._background.full():
                self._background.put_nowait(run)
                continue
            if run.status == RUNNING:
                reason = "was running"
            elif run.product in self.catalog:
                # Failing the excess keeps a restart possible after --queue-size was lowered.
                reason = f"was queued beyond the background queue's bound of {self.queue_size}"
            else:
                reason = "was queued for a product no longer published"
            run.status = FAILED
            run.finished_at = now_iso()
            run.error = RunError.stopped_while(reason).to_json()
            await asyncio.to_thread(self.repo.save_run, run, None, indexed=True)

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
        """Queue a background run; it is persisted before this returns so a restart resumes it."""
        spec, version = await self.catalog.resolve(ref)
        values = validate_parameters(spec, params)
        if self._background.full():
            raise QueueFull(f"The background queue is full ({self.queue_size} runs); try again later.")
        run = Run(run_id=new_run_id(), product=spec.name, version=version, parameters=values, trigger=dict(trigger))
        await asyncio.to_thread(self.repo.save_run, run, None, indexed=False)
        self._background.put_nowait(run)
        return run

    def refuse(self, name: str, version: int, params: dict[str, Any], trigger: dict[str, Any], exc: NbmeshError) -> Run:
        """Record a triggered run that could not be queued as failed, so no trigger vanishes silently."""
        run = Run(run_id=new_run_id(), product=name, version=version, parameters=dict(params), trigger=dict(trigger))
        run.status, run.finished_at = FAILED, now_iso()
        run.error = RunError.refused(exc).to_json()
        self._finish(run, None, indexed=False)
        return run

    def queue_depth(self) -> int:
        return self._background.qsize()

    def queue_room(self) -> int:
        return self._background.maxsize - self._background.qsize()

    async def _worker(self) -> None:
        while self._stopping_at is None:
            run = await self._background.get()
            if self._stopping_at is not None:
                break  # persisted as queued: the next start runs it
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)
            try:
                spec, _ = await self.catalog.resolve(f"{run.product}@{run.version}")
                await self._execute(run, spec, indexed=True)
            except asyncio.CancelledError:
                run.status, run.finished_at = FAILED, now_iso()
                run.error = RunError.stopped_after_grace(self.grace).to_json()
                self._finish(run, None, indexed=True)
                raise
            except Exception as exc:  # a bad record must not stop the worker
                log.exception("background run %s could not run", run.run_id)
                run.status, run.finished_at = FAILED, now_iso()
                run.error = RunError.unexpected(exc).to_json()
                self._finish(run, None, indexed=True)
            finally:
                self._busy.discard(task)
                self._background.task_done()

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
        """A run is final: hand it to the writer, log it, and call every run-finished hook."""
        self.writer.record(run, build_notebook, indexed)
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
        name, _ = parse_ref(ref)
        if name not in self.catalog and not await asyncio.to_thread(self.repo.list_runs, name, 1):
            raise NotFound(f"No product named {name!r} is published.")
        # Unsaved runs first: one the writer saves while the store is read is then in one list or both.
        fresh = self.writer.runs_of(name)
        stored = await asyncio.to_thread(self.repo.list_runs, name, limit)
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
