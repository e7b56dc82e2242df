"""The runtime's facade: wires the catalog, runs, the writer, the triggers and the kernel pool.

Each use case lives in its own module (:mod:`.catalog`, :mod:`.runs`,
:mod:`.writer`, :mod:`kernel_runtime.triggers.engine`); this module builds
them from the :class:`~kernel_runtime.settings.Settings`, starts and stops them in order, and is what
the HTTP layer calls. Whoever wants to see every finished run (the triggers,
the metrics, retention) appends a callable to the one hook list,
:attr:`Service.run_finished`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Literal, TypedDict

from ..kernels.pool import KernelPool
from ..kernels.sandbox import Containment, Sandbox
from ..kernels.state import PoolState
from ..model.records import Product, Run
from ..settings import Settings
from ..store.repository import Repository
from ..store.retention import Retention
from ..triggers.engine import FileClock, Triggers, utc_now
from ..triggers.lineage import Lineage, lineage_graph
from .catalog import Catalog
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


class Service:
    """``sandbox``: the kernels' sandbox, resolved from ``settings.pool`` already (else the pool resolves it)."""

    def __init__(self, repo: Repository, settings: Settings | None = None, sandbox: Sandbox | None = None) -> None:
        self.repo = repo
        self.settings = settings or Settings()
        self.pool = KernelPool(self.settings.pool, sandbox)
        self.catalog = Catalog(repo)
        self.writer = Writer(repo, self.settings.store.write_retry)
        self.run_finished: list[Callable[[Run], None]] = []  # called with every finished run, before its answer
        self.runs = Runs(self.catalog, self.pool, repo, self.writer, self.run_finished, self.settings.runs)
        triggers = self.settings.triggers
        clock = FileClock(triggers.clock_file) if triggers.clock_file else utc_now
        self.triggers = Triggers(self.catalog.newest_versions, self.runs, repo, clock=clock, tick=triggers.tick)
        self.run_finished.append(self.triggers.on_run_finished)
        self._tasks: list[asyncio.Task] = []

    # lifecycle ------------------------------------------------------------------
    async def start(self, on_kernel_ready=None) -> None:
        await self.catalog.load()
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
        await self.pool.close()

    async def _prewarm_all(self) -> None:
        for spec, version in self.catalog.newest_first(self.settings.pool.size):
            await self.pool.prewarm(spec, version)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: t in self._tasks and self._tasks.remove(t))

    # catalog ----------------------------------------------------------------------
    async def publish(self, name: str, body: bytes, authorize: Callable[[str], None] | None = None) -> Product:
        """``authorize`` is called with the owner the notebook names, before anything is checked or stored."""
        spec, version = await self.catalog.publish(name, body, authorize)
        self.runs.cache.drop(name)
        self._spawn(self.pool.prewarm(spec, version))
        log.info("published %s@%s", name, version)
        return self.catalog.product_json(name, version)

    async def unpublish(self, name: str) -> None:
        await self.catalog.unpublish(name)
        self.runs.cache.drop(name)

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
        )
