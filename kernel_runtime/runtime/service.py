"""The runtime's facade: wires the catalog, runs, the run queue, the writer, the triggers and the kernel pool.

Each use case lives in its own module (:mod:`.catalog`, :mod:`.runs`, :mod:`.queue`,
:mod:`.writer`, :mod:`kernel_runtime.triggers.engine`); this module builds
them from the :class:`~kernel_runtime.settings.Settings`, starts and stops them in order, and is what
the HTTP layer calls. Whoever wants to see every finished run (the metrics, retention) appends a
callable to the one hook list, :attr:`Service.run_finished`; the runs a finish triggers are queued
by the runs themselves (:mod:`.background`), with the finished run's letting go.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Literal, TypedDict

from ..kernels.pool import KernelPool
from ..kernels.sandbox import Containment, Sandbox
from ..kernels.state import PoolState
from ..model.bundle import Submission
from ..model.records import Product, Run
from ..settings import Settings
from ..store.catalog_changes import CatalogChanges
from ..store.repository import Repository
from ..store.retention import Retention
from ..triggers.engine import FileClock, Triggers, utc_now
from ..triggers.lineage import Lineage, lineage_graph
from .catalog import Catalog
from .files import FileCache
from .queues import open_queue
from .runs import HTTP_TRIGGER, Runs
from .writer import Writer

log = logging.getLogger("nbmesh.service")


class Health(TypedDict):
    """The runtime is alive: its products, kernel pool, background queue and kernel containment."""

    status: Literal["ok"]
    products: int
    pool: PoolState
    queue: int
    containment: Containment
    replica: str  # this process's random id: the consumer name it holds shared-queue runs under


class Service:
    """``sandbox``: the kernels' sandbox, resolved from ``settings.pool`` already (else the pool resolves it)."""

    def __init__(self, repo: Repository, settings: Settings | None = None, sandbox: Sandbox | None = None) -> None:
        self.repo = repo
        self.settings = settings or Settings()
        self.catalog = Catalog(repo)
        self.files = FileCache(self.catalog, repo)
        self.pool = KernelPool(self.settings.pool, sandbox, self.files.files)
        self.writer = Writer(repo, self.settings.store.write_retry)
        self.run_finished: list[Callable[[Run], None]] = []  # called with every finished run, before its answer
        queue = open_queue(self.settings.queue, self.settings.runs.queue_size)
        self.runs = Runs(self.catalog, self.pool, repo, self.writer, self.run_finished, self.settings.runs, queue)
        triggers = self.settings.triggers
        clock = FileClock(triggers.clock_file) if triggers.clock_file else utc_now
        self.triggers = Triggers(self.catalog.newest_versions, self.runs, repo, queue.derived_id, clock=clock, tick=triggers.tick)
        self.runs.events = self.triggers
        # Replicas sharing a Redis hear each other's publishes at once; alone, there is no one to tell.
        self.changes = CatalogChanges(self.settings.queue, queue.replica) if self.settings.queue.url else None
        self._tasks: list[asyncio.Task] = []

    # lifecycle ------------------------------------------------------------------
    async def start(self, on_kernel_ready=None) -> None:
        await self.catalog.load()
        await self.runs.queue.open()
        await self.runs.settle_unfinished()
        await self.pool.start(on_kernel_ready)
        self.writer.start()
        self.runs.start_workers()
        store = self.settings.store
        if store.keep_runs:
            retention = Retention(self.repo, store.keep_runs, store.prune_interval)
            self.run_finished.append(retention.note)
            self._tasks.append(asyncio.create_task(retention.run()))
        self._tasks.append(asyncio.create_task(self.triggers.run_scheduler()))
        self._tasks.append(asyncio.create_task(self.catalog.sync(store.catalog_sync)))
        if self.changes is not None:
            self._tasks.append(asyncio.create_task(self.changes.listen(self.catalog.reload, self.catalog.load)))
        # Serving starts once the kernels answer; preparing products (setup may be slow) goes on meanwhile.
        self._spawn(self._prewarm_all())

    def begin_stop(self) -> None:
        """From now on no background run starts; queued ones stay persisted for the next start."""
        self.runs.begin_stop()
        self.writer.begin_stop()

    async def stop(self) -> None:
        """Stop gracefully within the grace period, then shut every kernel down.

        Background runs already running get what is left of ``settings.runs.grace``
        (counted from :meth:`begin_stop`, which the server calls on SIGTERM);
        those still running after it are failed with ``RuntimeStopped``.
        """
        self.begin_stop()
        await self.runs.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.writer.stop()
        await self.runs.queue.close()
        if self.changes is not None:
            await self.changes.close()
        await self.pool.close()
        self.files.close()

    async def _prewarm_all(self) -> None:
        for spec, version in self.catalog.newest_first(self.settings.pool.size):
            await self.pool.prewarm(spec, version)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: t in self._tasks and self._tasks.remove(t))

    # catalog ----------------------------------------------------------------------
    async def publish(self, name: str, sent: Submission, authorize: Callable[[str], None] | None = None) -> tuple[Product, bool]:
        """The product, and whether a version was made (see :meth:`Catalog.publish`)."""
        spec, version, created = await self.catalog.publish(name, sent, authorize)
        if created:
            self.runs.cache.drop(name)
            self._announce(name)
            self._spawn(self.pool.prewarm(spec, version))
            log.info("published %s@%s", name, version)
        return self.catalog.product_json(name, version), created

    async def unpublish(self, name: str) -> None:
        await self.catalog.unpublish(name)
        self.runs.cache.drop(name)
        self._announce(name)

    def _announce(self, name: str) -> None:
        if self.changes is not None:
            self.changes.announce(name)

    def products(self, visible: Callable[[str], bool] | None = None) -> list[Product]:
        return self.catalog.products(visible)

    def owner_of(self, name: str) -> str | None:
        return self.catalog.owner_of(name)

    async def product(self, ref: str) -> Product:
        return await self.catalog.product(ref)

    async def product_notebook(self, ref: str) -> dict[str, Any]:
        return await self.catalog.product_notebook(ref)

    def lineage(self) -> Lineage:
        return lineage_graph(self.catalog.subscriptions())

    # runs ---------------------------------------------------------------------------
    async def invoke(self, ref: str, params: Any, trigger: dict[str, Any] = HTTP_TRIGGER) -> Run:
        return await self.runs.invoke(ref, params, trigger)

    async def submit(self, ref: str, params: Any, trigger: dict[str, Any] = HTTP_TRIGGER) -> Run:
        return await self.runs.submit(ref, params, trigger)

    async def emit(self, topic: str, payload: dict[str, Any]) -> list[Run]:
        """Publish an event: queue a run of every subscribed product, or none when the queue has no room."""
        return await self.triggers.emit(topic, payload)

    async def get_run(self, run_id: str) -> Run:
        return await self.runs.get_run(run_id)

    async def get_run_notebook(self, run_id: str) -> dict[str, Any]:
        return await self.runs.get_run_notebook(run_id)

    async def list_runs(self, ref: str, limit: int = 50) -> list[Run]:
        return await self.runs.list_runs(ref, limit)

    # state ---------------------------------------------------------------------------
    def queue_depths(self) -> dict[str, int]:
        """Runs waiting: for a background worker, and for their product's concurrency limit."""
        return {"background": self.runs.queue_depth(), "concurrency": self.runs.limiter.waiting()}

    def health(self) -> Health:
        return Health(
            status="ok",
            products=len(self.catalog),
            pool=self.pool.state(),
            queue=self.runs.queue_depth(),
            containment=self.pool.containment(),
            replica=self.runs.queue.replica,
        )
