"""The runtime's use cases: publish, unpublish, read the catalog, invoke, run in the background.

The service keeps the catalog in memory (so the invoke path never reads the
store), leases kernels from the pool, and persists run records and executed
notebooks *after* the caller has its answer, through one writer task. Reads
of a run that is not written yet are served from memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import jsontext
from ..kernels import protocol, record
from ..errors import (
    CorruptRecord,
    ExecutionTimeout,
    InvalidNotebook,
    KernelError,
    KernelUnavailable,
    NbmeshError,
    NotFound,
    QueueFull,
    StoreUnavailable,
    quoted,
)
from .limits import ProductLimiter
from ..kernels.pool import KernelPool, PoolSettings
from ..model.product import ProductSpec, check_name, contract_violation, load_spec, parse_ref, read_notebook, validate_parameters
from ..model.records import FAILED, QUEUED, RUNNING, SUCCEEDED, TIMED_OUT, Run, StoredVersion, new_run_id, now_iso
from ..store.repository import Repository
from ..store.retention import Retention
from ..triggers.rules import Triggers, downstream_of, latest_triggers, loop_problems, upstream_of

log = logging.getLogger("nbmesh.service")
runlog = logging.getLogger("nbmesh.runs")

RUN_ID_RE = re.compile(r"[0-9a-f]{32}", re.ASCII)
HTTP_TRIGGER = {"kind": "http"}


@dataclass
class Settings:
    pool: PoolSettings = field(default_factory=PoolSettings)
    queue_size: int = 1000
    max_concurrency: int | None = None  # kernels one product may hold; None: all but one
    grace: float = 30.0  # seconds running background runs get to finish when the runtime stops
    keep_runs: int | None = None  # runs kept per product in the store; None: all
    catalog_sync: float = 10.0  # seconds between re-reads of the catalog, for replicas sharing a store

    @property
    def product_concurrency(self) -> int:
        # By default one kernel stays out of any single product's reach, for the rest of the catalog.
        return self.max_concurrency or max(1, self.pool.size - 1)


@dataclass
class CatalogEntry:
    """The live versions of one product; specs are parsed once and kept."""

    versions: list[int]
    stored: dict[int, StoredVersion] = field(default_factory=dict)
    specs: dict[int, ProductSpec] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        return self.versions[-1]


class Service:
    def __init__(self, repo: Repository, settings: Settings | None = None) -> None:
        self.repo = repo
        self.settings = settings or Settings()
        self.pool = KernelPool(self.settings.pool)
        self.catalog: dict[str, CatalogEntry] = {}
        self._catalog_lock = asyncio.Lock()
        self._unreadable: set[tuple[str, int]] = set()  # stored versions that failed to load: never retried
        self._unsaved: dict[str, tuple[Run, dict[str, Any] | None]] = {}
        self._writes: asyncio.Queue[tuple[Run, Callable[[], dict[str, Any]] | None, bool]] = asyncio.Queue()
        self._background: asyncio.Queue[Run] = asyncio.Queue(maxsize=self.settings.queue_size)
        self._tasks: list[asyncio.Task] = []
        self._workers: list[asyncio.Task] = []
        self._busy: set[asyncio.Task] = set()
        self._stopping_at: float | None = None
        self.listeners: list[Callable[[Run], None]] = []
        self.limiter = ProductLimiter(self.settings.product_concurrency, self.settings.queue_size)
        self.triggers = Triggers(self)

    async def _io(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    # lifecycle ------------------------------------------------------------------
    async def start(self, on_kernel_ready=None) -> None:
        await self._load_catalog()
        await self._settle_unfinished()
        await self.pool.start(on_kernel_ready)
        self._tasks.append(asyncio.create_task(self._writer()))
        workers = max(1, self.settings.pool.size - 1)  # one kernel stays free for interactive calls
        self._workers = [asyncio.create_task(self._worker()) for _ in range(workers)]
        self._tasks += self._workers
        if self.settings.keep_runs:
            retention = Retention(self.repo, self.settings.keep_runs)
            self.listeners.append(retention.note)
            self._tasks.append(asyncio.create_task(retention.run()))
        self._tasks.append(asyncio.create_task(self.triggers.run_scheduler()))
        self._tasks.append(asyncio.create_task(self._sync_catalog()))
        # Serving starts once the kernels answer; preparing products (setup may be slow) goes on meanwhile.
        self._spawn(self._prewarm_all())

    def begin_stop(self) -> None:
        """From now on no background run starts; queued ones stay persisted for the next start."""
        if self._stopping_at is None:
            self._stopping_at = time.monotonic()

    async def stop(self) -> None:
        """Stop gracefully within the grace period, then shut every kernel down.

        Background runs already running get what is left of ``Settings.grace``
        (counted from :meth:`begin_stop`, which the server calls on SIGTERM);
        those still running after it are failed with ``RuntimeStopped``.
        """
        self.begin_stop()
        assert self._stopping_at is not None
        for task in self._workers:
            if task not in self._busy:
                task.cancel()
        if self._busy:
            remaining = self.settings.grace - (time.monotonic() - self._stopping_at)
            await asyncio.wait(list(self._busy), timeout=max(0.0, remaining))
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        await self._writes.join()
        self._tasks[0].cancel()
        await self.pool.close()

    async def _load_catalog(self) -> None:
        """Read the catalog from the store; a product whose stored record is broken is skipped, not fatal."""
        names = set(await self._io(self.repo.product_names))
        for name in names | set(self.catalog):
            try:
                await self._refresh_entry(name)
            except NbmeshError as exc:
                log.error("product %s cannot be loaded from the store: %s %s", name, exc.message, exc.details)

    async def _sync_catalog(self) -> None:
        """Pick up what other replicas sharing the store published or unpublished."""
        while True:
            await asyncio.sleep(self.settings.catalog_sync)
            try:
                await self._load_catalog()
            except NbmeshError as exc:
                log.warning("catalog sync skipped: %s", exc.message)

    async def _refresh_entry(self, name: str) -> CatalogEntry | None:
        # One refresh at a time: a listing read before a racing publish must not land after it.
        async with self._catalog_lock:
            versions = [v for v in await self._io(self.repo.versions, name) if (name, v) not in self._unreadable]
            entry = self.catalog.get(name) or CatalogEntry(versions=versions)
            # Loaded before it is listed: a version that cannot be read never reaches the catalog,
            # and the newest one that can serves instead (a broken or planted file hides nothing).
            while versions:
                try:
                    await self._load_version(name, entry, versions[-1])
                    break
                except (CorruptRecord, InvalidNotebook) as exc:
                    log.error("version %s of %s cannot be loaded and is left out: %s %s", versions[-1], name, exc.message, exc.details)
                    self._unreadable.add((name, versions.pop()))
            if not versions:
                self.catalog.pop(name, None)
                return None
            entry.versions = versions
            self.catalog[name] = entry
            return entry

    async def _load_version(self, name: str, entry: CatalogEntry, version: int) -> ProductSpec:
        if version not in entry.specs:
            stored = await self._io(self.repo.get_version, name, version)
            if stored is None:
                raise NotFound(f"Product {name} has no version {version}.")
            entry.stored[version] = stored
            entry.specs[version] = load_spec(read_notebook(json.dumps(stored.notebook)), name)
        return entry.specs[version]

    async def _settle_unfinished(self) -> None:
        """Runs a stop left queued go back on the queue; runs it left running are failed."""
        for run in await self._io(self.repo.pending_runs):
            if run.final:
                # Its final record was written but the process stopped before the marker went.
                await self._io(self.repo.settled, run.run_id)
                continue
            if run.status == QUEUED and run.product in self.catalog and not self._background.full():
                self._background.put_nowait(run)
                continue
            if run.status == RUNNING:
                reason = "was running"
            elif run.product in self.catalog:
                # Failing the excess keeps a restart possible after --queue-size was lowered.
                reason = f"was queued beyond the background queue's bound of {self.settings.queue_size}"
            else:
                reason = "was queued for a product no longer published"
            run.status = FAILED
            run.finished_at = now_iso()
            run.error = {
                "ename": "RuntimeStopped",
                "evalue": f"The runtime stopped while this run {reason}; it was not completed.",
                "traceback": [],
            }
            await self._io(self.repo.save_run, run, None, True)

    async def _prewarm_all(self) -> None:
        newest = sorted(self.catalog, key=lambda n: self.catalog[n].stored[self.catalog[n].latest].published_at)
        for name in reversed(newest[-self.settings.pool.size :]):
            entry = self.catalog[name]
            await self.pool.prewarm(entry.specs[entry.latest], entry.latest)

    # catalog ----------------------------------------------------------------------
    async def resolve(self, ref: str) -> tuple[ProductSpec, int]:
        name, version = parse_ref(ref)
        entry = self.catalog.get(name)
        if entry is None:
            raise NotFound(f"No product named {name!r} is published.")
        version = version or entry.latest
        if version not in entry.versions:
            raise NotFound(f"Product {name!r} has no version {version}; versions: {entry.versions}.")
        return await self._load_version(name, entry, version), version

    def product_json(self, name: str, version: int | None = None) -> dict[str, Any]:
        entry = self.catalog[name]
        version = version or entry.latest
        spec, stored = entry.specs[version], entry.stored[version]
        return {
            "name": name,
            "version": version,
            "versions": list(entry.versions),
            "title": spec.title,
            "description": spec.description,
            "owner": spec.owner,
            "parameters": spec.parameters_json(),
            "triggers": list(spec.triggers),
            "timeout": spec.timeout,
            "output_schema": spec.output_schema,
            "published_at": stored.published_at,
            "invoke_url": f"/api/products/{name}/invoke",
            "upstream": upstream_of(spec.triggers),
            "downstream": downstream_of(name, latest_triggers(self.catalog)),
        }

    def products(self, visible: Callable[[str], bool] | None = None) -> list[dict[str, Any]]:
        """The catalog, or the part of it ``visible`` (a product name -> bool) lets through."""
        return [self.product_json(name) for name in sorted(self.catalog) if visible is None or visible(name)]

    def owner_of(self, name: str) -> str | None:
        """The owner of a published product's newest version, from memory; None if it is not published."""
        entry = self.catalog.get(name)
        spec = entry.specs.get(entry.latest) if entry is not None else None
        return None if spec is None else spec.owner

    async def product(self, ref: str) -> dict[str, Any]:
        spec, version = await self.resolve(ref)
        return self.product_json(spec.name, version)

    async def product_notebook(self, ref: str) -> dict[str, Any]:
        spec, version = await self.resolve(ref)
        return self.catalog[spec.name].stored[version].notebook

    async def publish(self, name: str, body: bytes, authorize: Callable[[str], None] | None = None) -> dict[str, Any]:
        """``authorize`` is called with the owner the notebook names, before anything is checked or stored."""
        check_name(name)
        nb = read_notebook(body)
        meta = nb.get("metadata", {}).get("nbmesh", {})
        owner = meta.get("owner", "") if isinstance(meta, dict) else ""
        if authorize is not None and isinstance(owner, str):
            authorize(owner)
        loops = loop_problems(name, meta.get("triggers", []) if isinstance(meta, dict) else [], latest_triggers(self.catalog))
        try:
            load_spec(nb, name)  # raises InvalidNotebook listing every problem; nothing is stored then
        except InvalidNotebook as exc:
            exc.details.extend(loops)
            raise
        if loops:
            raise InvalidNotebook("The notebook is not a valid product.", loops)
        stored = await self._io(self.repo.add_version, name, jsontext.loads(body, "The notebook"))
        entry = await self._refresh_entry(name)
        assert entry is not None
        spec = await self._load_version(name, entry, stored.version)
        self._spawn(self.pool.prewarm(spec, stored.version))
        log.info("published %s@%s", name, stored.version)
        return self.product_json(name, stored.version)

    async def unpublish(self, name: str) -> None:
        check_name(name)
        entry = self.catalog.get(name)
        if entry is None:
            raise NotFound(f"No product named {name!r} is published.")
        async with self._catalog_lock:
            await self._io(self.repo.unpublish, name, entry.latest)
            self.catalog.pop(name, None)

    # runs ---------------------------------------------------------------------
    async def invoke(self, ref: str, params: Any, trigger: dict[str, Any] = HTTP_TRIGGER) -> Run:
        """Run now and wait: the hot path. Validates, leases a warm kernel, runs, answers."""
        spec, version = await self.resolve(ref)
        values = validate_parameters(spec, params)
        run = Run(run_id=new_run_id(), product=spec.name, version=version, parameters=values, trigger=dict(trigger))
        await self._execute(run, spec)
        return run

    async def submit(self, ref: str, params: Any, trigger: dict[str, Any] = HTTP_TRIGGER) -> Run:
        """Queue a background run; it is persisted before this returns so a restart resumes it."""
        spec, version = await self.resolve(ref)
        values = validate_parameters(spec, params)
        if self._background.full():
            raise QueueFull(
                f"The background queue is full ({self.settings.queue_size} runs); try again later."
            )
        run = Run(run_id=new_run_id(), product=spec.name, version=version, parameters=values, trigger=dict(trigger))
        await self._io(self.repo.save_run, run, None, False)
        self._background.put_nowait(run)
        return run

    async def _worker(self) -> None:
        while self._stopping_at is None:
            run = await self._background.get()
            if self._stopping_at is not None:
                break  # persisted as queued: the next start runs it
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)
            try:
                spec, _ = await self.resolve(f"{run.product}@{run.version}")
                await self._execute(run, spec, persisted=True)
            except asyncio.CancelledError:
                run.status, run.finished_at = FAILED, now_iso()
                run.error = {
                    "ename": "RuntimeStopped",
                    "evalue": f"The runtime stopped and this run did not finish within the {self.settings.grace:g} s grace period.",
                    "traceback": [],
                }
                self._record(run, None, persisted=True)
                raise
            except Exception as exc:  # a bad record must not stop the worker
                log.exception("background run %s could not run", run.run_id)
                run.status, run.finished_at = FAILED, now_iso()
                run.error = {"ename": type(exc).__name__, "evalue": str(exc), "traceback": []}
                self._record(run, None, persisted=True)
            finally:
                self._busy.discard(task)
                self._background.task_done()

    async def _execute(self, run: Run, spec: ProductSpec, persisted: bool = False) -> None:
        setup: protocol.Report | None = None
        report: protocol.Report | None = None
        t0 = time.perf_counter()
        run.started_at = now_iso()
        run.status = RUNNING
        if persisted:
            # A background run's "running" is durable, so a restart knows not to run it twice.
            await self._io(self.repo.save_run, run, None, True)
        try:
            async with self.limiter.slot(spec.name), self.pool.lease(spec, run.version) as lease:
                run.warm = lease.warm
                setup = lease.kernel.setup_report
                if setup is not None and setup.error is not None:
                    run.status, run.error = FAILED, _setup_failure(setup.error)
                else:
                    report = await self.pool.call(
                        lease.kernel, protocol.run, run.parameters, timeout=spec.timeout
                    )
                    self._settle(run, spec, report)
        except ExecutionTimeout as exc:
            run.status = TIMED_OUT
            run.error = {"ename": "Timeout", "evalue": f"{exc.message} (product timeout {spec.timeout:g} s)", "traceback": []}
        except KernelUnavailable:
            raise  # no kernel can be started: the caller gets a 503 now rather than a failed run
        except KernelError as exc:  # KernelDied, KernelTampered, ...: the pool has replaced the kernel
            run.status, run.error = FAILED, {"ename": type(exc).__name__, "evalue": exc.message, "traceback": []}
        run.duration_ms = round((time.perf_counter() - t0) * 1000, 3)
        run.finished_at = now_iso()
        self._record(run, lambda: record.record_notebook(spec, run.parameters, setup, report, run.to_json()), persisted)

    def _settle(self, run: Run, spec: ProductSpec, report: protocol.Report) -> None:
        if report.error is not None:
            run.status, run.error = FAILED, report.error
            return
        violation = contract_violation(spec, report.result)
        if violation is not None:
            run.status = FAILED
            run.error = {"ename": "ContractViolation", "evalue": violation, "traceback": []}
            return
        run.status, run.result = SUCCEEDED, report.result

    def _record(self, run: Run, notebook: Callable[[], dict[str, Any]] | None, persisted: bool) -> None:
        """Keep the finished run readable now and write it to the store after the answer."""
        self._unsaved[run.run_id] = (run, None)
        self._writes.put_nowait((run, notebook, persisted))
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
        for listener in self.listeners:
            listener(run)

    async def _writer(self) -> None:
        while True:
            run, build, persisted = await self._writes.get()
            try:
                # Building the notebook copies and parameterizes it: keep that off the event loop.
                notebook = await self._io(build) if build else None
                self._unsaved[run.run_id] = (run, notebook)
                await self._save_through_outage(run, notebook, persisted)
                self._unsaved.pop(run.run_id, None)
            except Exception:
                log.exception("could not save run %s; it stays readable from memory", run.run_id)
            finally:
                self._writes.task_done()

    async def _save_through_outage(self, run: Run, notebook: dict[str, Any] | None, persisted: bool) -> None:
        """While the store is down a finished run waits in memory and is retried, not dropped."""
        delay = 0.5
        while True:
            try:
                await self._io(self.repo.save_run, run, notebook, persisted)
                return
            except StoreUnavailable as exc:
                if self._stopping_at is not None:
                    raise
                log.warning("run %s waits for the store: %s", run.run_id, exc.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: t in self._tasks and self._tasks.remove(t))

    async def get_run(self, run_id: str) -> Run:
        _check_run_id(run_id)
        if run_id in self._unsaved:
            return self._unsaved[run_id][0]
        run = await self._io(self.repo.get_run, run_id)
        if run is None:
            raise NotFound(f"No run with id {run_id!r}.")
        return run

    async def get_run_notebook(self, run_id: str) -> dict[str, Any]:
        run = await self.get_run(run_id)
        if not run.final:
            raise NotFound(f"Run {run_id} is {run.status}: its notebook exists once it is final.")
        if run_id in self._unsaved:
            # Final but not written yet: the writer builds the notebook right after the answer.
            await self._writes.join()
        if run_id in self._unsaved and self._unsaved[run_id][1] is not None:
            return self._unsaved[run_id][1]
        notebook = await self._io(self.repo.get_run_notebook, run_id)
        if notebook is None:
            raise NotFound(f"Run {run_id} has no executed notebook.")
        return notebook

    async def list_runs(self, ref: str, limit: int = 50) -> list[Run]:
        name, _ = parse_ref(ref)
        if name not in self.catalog and not await self._io(self.repo.list_runs, name, 1):
            raise NotFound(f"No product named {name!r} is published.")
        # Unsaved runs first: one the writer saves while the store is read is then in one list or both.
        fresh = [run for run, _ in self._unsaved.values() if run.product == name]
        stored = await self._io(self.repo.list_runs, name, limit)
        seen = {r.run_id for r in fresh}
        runs = fresh + [r for r in stored if r.run_id not in seen]
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return runs[:limit]

    def queue_depth(self) -> int:
        return self._background.qsize()

    def queue_room(self) -> int:
        return self._background.maxsize - self._background.qsize()

    def refuse(self, name: str, version: int, params: dict[str, Any], trigger: dict[str, Any], exc: NbmeshError) -> Run:
        """Record a triggered run that could not be queued as failed, so no trigger vanishes silently."""
        reasons = [d.get("message", str(d)) if isinstance(d, dict) else str(d) for d in exc.details]
        run = Run(run_id=new_run_id(), product=name, version=version, parameters=dict(params), trigger=dict(trigger))
        run.status, run.finished_at = FAILED, now_iso()
        run.error = {"ename": type(exc).__name__, "evalue": " ".join([exc.message, *reasons]), "traceback": []}
        self._record(run, None, persisted=False)
        return run

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "products": len(self.catalog),
            "pool": self.pool.state(),
            "queue": self._background.qsize(),
            "containment": self.pool.containment(),
        }


def _check_run_id(run_id: str) -> None:
    if not RUN_ID_RE.fullmatch(run_id):
        raise NotFound(f"No run with id {quoted(run_id)}.")


def _setup_failure(error: dict[str, Any]) -> dict[str, Any]:
    return {
        "ename": error["ename"],
        "evalue": f"A setup cell failed while preparing the kernel: {error['evalue']}",
        "traceback": error.get("traceback", []),
    }
