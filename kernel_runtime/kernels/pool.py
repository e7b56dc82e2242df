"""The pool of kernels: each serves one product version for its whole life.

The pool owns kernel processes. ``size`` of them may serve products; ``spares``
more are kept started and unclaimed. A run gets an idle kernel already serving
its product version; failing that, a spare, which serves that version from then
on (if ``size`` kernels already serve products, the least recently used idle
one is retired, i.e. shut down). Every kernel that leaves the pool is replaced
by a new spare in the background, so a product whose kernel is not warm pays its
setup cells but never a kernel start, unless no spare is there or being started:
then the least recently used idle kernel is retired and the run waits for its
replacement (:mod:`kernel_runtime.kernels.choice` makes these choices). A kernel
is never prepared for another product: nothing a run leaves in a kernel (patched
modules, threads, files in its ``/tmp``) can reach another product.

One kernel's record and the start and shutdown of its process are
:mod:`kernel_runtime.kernels.kernel`'s; the pool decides which kernels exist.
Kernels run in the sandbox of :mod:`kernel_runtime.kernels.sandbox`. The pool replaces
a kernel that dies (also while idle: it is checked when leased and watched in
the background), whose runner a run tampered with, that hangs past an
interrupt, or that a run asked to retire (it patched the runner, called ``exit()`` or left threads running).
Starting is retried with backoff for as long as it fails; meanwhile a run that
no live kernel can serve fails at once with :class:`KernelUnavailable` (503)
instead of waiting. Callers beyond capacity wait in FIFO order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from ..errors import ExecutionTimeout, KernelDied, KernelError, KernelTampered, KernelUnavailable
from ..model.product import ProductSpec
from ..settings import PoolSettings
from . import choice, protocol
from .kernel import GONE, FilesSource, Kernel
from .sandbox import Containment, Sandbox, kernel_env, resolve
from .state import BUSY, DEAD, IDLE, PoolState

log = logging.getLogger("nbmesh.pool")


@dataclass
class Lease:
    """A kernel held for one run, and whether it was already prepared for the product."""

    kernel: Kernel
    warm: bool


def _log_retry(state: RetryCallState) -> None:
    wait = state.next_action.sleep if state.next_action else 0
    log.warning("starting a kernel failed (attempt %d); retrying in %.1f s", state.attempt_number, wait)


class KernelPool:
    def __init__(self, settings: PoolSettings, sandbox: Sandbox | None = None, files: FilesSource | None = None) -> None:
        self.settings, self.files = settings, files  # files: each product version's, linked in when a kernel is prepared
        self.kernels: list[Kernel] = []  # started and answering: idle or busy
        self.sandbox = sandbox  # given resolved, or resolved from the settings by start()
        self._cond = asyncio.Condition()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._disposals: set[asyncio.Task] = set()
        self._booting: set[Kernel] = set()
        self._on_ready: Callable[[Kernel], None] | None = None
        self.starting = 0  # kernels being started, also those waiting to retry
        self.restarts = 0  # kernels replaced because they died, hung or were tampered with
        self.retired = 0  # kernels shut down on purpose: least recently used, runner patched, exit(), threads left
        self.spares_used = 0
        self.start_error: str | None = None  # why the last start failed, until one succeeds
        self.closed = False
        self._ipc_dir = tempfile.mkdtemp(prefix="nbmesh-ipc-")

    # lifecycle ----------------------------------------------------------------
    async def start(self, on_ready: Callable[[Kernel], None] | None = None) -> None:
        """Start every kernel and wait for each one's first attempt; those that fail keep retrying."""
        s = self.settings
        if self.sandbox is None:
            self.sandbox = await asyncio.to_thread(resolve, s, kernel_env(s.kernel_env))
        log.info("kernels run in sandbox: %s", self.sandbox.kind)
        self._on_ready = on_ready
        firsts = [asyncio.get_running_loop().create_future() for _ in range(s.size + s.spares)]
        for first in firsts:
            self._start_one(first)
        await asyncio.gather(*firsts)
        self._on_ready = None
        if not self.kernels:
            log.error("no kernel could be started; runs are refused (503) until one starts: %s", self.start_error)
        self._spawn(self._watch())

    def _start_one(self, first: asyncio.Future | None = None) -> None:
        self.starting += 1
        self._spawn(self._keep_starting(first))

    async def _keep_starting(self, first: asyncio.Future | None) -> None:
        """Start one kernel, retrying with backoff for as long as it takes (or until the pool closes)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(KernelError),
            wait=wait_exponential(multiplier=self.settings.start_retry.first, max=self.settings.start_retry.max),
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        kernel = await self._boot()
                    finally:
                        if first is not None and not first.done():
                            first.set_result(None)
                    if first is not None and self._on_ready:
                        self._on_ready(kernel)
        finally:
            self.starting -= 1

    async def _boot(self) -> Kernel:
        assert self.sandbox is not None
        kernel = Kernel.create(next(self._ids), self._ipc_dir, self.settings, self.sandbox)
        self._booting.add(kernel)
        try:
            await kernel.start(self.sandbox, self.settings.start_timeout, self.settings.poll_interval)
        except asyncio.CancelledError:
            await kernel.abandon()
            raise
        except Exception as exc:
            await kernel.abandon()
            why = await kernel.why_not_started(exc, self.settings.start_output_wait)
            log.error("kernel %s could not be started: %s", kernel.kid, why)
            async with self._cond:
                self.start_error = why
                self._cond.notify_all()  # waiters that nothing can serve now fail fast
            raise KernelError(f"A kernel could not be started: {why}") from exc
        finally:
            self._booting.discard(kernel)
        async with self._cond:
            if self.closed:  # the pool closed while this kernel started: it never joins
                await kernel.shutdown()
                return kernel
            self.start_error = None
            kernel.state = IDLE
            self.kernels.append(kernel)
            self._cond.notify_all()
        return kernel

    async def close(self) -> None:
        self.closed = True
        async with self._cond:
            self._cond.notify_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._disposals, return_exceptions=True)
        await asyncio.gather(*(k.shutdown() for k in [*self.kernels, *self._booting]), return_exceptions=True)
        shutil.rmtree(self._ipc_dir, ignore_errors=True)

    def _remove(self, kernel: Kernel, why: str, failed: bool) -> None:
        """Take ``kernel`` out of the pool (hold the condition's lock), shut it down and start a spare."""
        if kernel not in self.kernels:
            return
        self.kernels.remove(kernel)
        kernel.state = DEAD
        if failed:
            self.restarts += 1
            log.warning("kernel %s replaced: %s", kernel.label(), why)
        else:
            self.retired += 1
            log.info("kernel %s retired: %s", kernel.label(), why)
        task = asyncio.create_task(kernel.shutdown())
        self._disposals.add(task)
        task.add_done_callback(self._disposals.discard)
        if not self.closed:
            self._start_one()

    async def _drop(self, kernel: Kernel, why: str) -> None:
        async with self._cond:
            self._remove(kernel, why, failed=True)

    async def _watch(self) -> None:
        """Notice kernels that die while idle (a run's ``exit()``, an OOM kill, ``kill -9``)."""
        while True:
            await asyncio.sleep(self.settings.watch_interval)
            async with self._cond:
                for kernel in [k for k in self.kernels if k.state == IDLE]:
                    if not await kernel.km.is_alive():
                        self._remove(kernel, "it died while idle", failed=True)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # leasing ------------------------------------------------------------------
    def _claim(self, spare: Kernel, key: tuple[str, int]) -> None:
        """``spare`` serves ``key`` from now on; retire the least recently used idle kernel if need be."""
        if sum(k.key is not None for k in self.kernels) >= self.settings.size:
            victim = choice.least_recently_used(self.kernels)
            assert victim is not None  # choice.pick claims a spare then only
            self._retire_for(victim, key)
        spare.key = key
        self.spares_used += 1

    def _retire_for(self, victim: Kernel, key: tuple[str, int]) -> None:
        self._remove(victim, f"least recently used; a kernel was needed for {key[0]}@{key[1]}", failed=False)

    def _servable(self, key: tuple[str, int]) -> bool:
        """Whether a live kernel can serve ``key`` now or once it is free, without a new start."""
        return any(k.key == key or (k.key is None and k.state == IDLE) for k in self.kernels)

    async def _take(self, key: tuple[str, int], wait: bool) -> Kernel | None:
        async with self._cond:
            while True:
                if self.closed:
                    raise KernelError("The kernel pool is shutting down.")
                kernel = choice.pick(self.kernels, key, self.settings.size)
                if kernel is not None:
                    if not await kernel.km.is_alive():  # one waitpid: a dead kernel is never handed out
                        self._remove(kernel, "it died while idle", failed=True)
                        continue
                    if kernel.key is None:
                        self._claim(kernel, key)
                    kernel.state = BUSY
                    return kernel
                if self.start_error is not None and not self._servable(key):
                    raise KernelUnavailable(
                        f"No kernel is available for {key[0]}@{key[1]} and none can be started now: "
                        f"{self.start_error}. Starting is retried; try again later."
                    )
                if not wait:
                    return None  # a prewarm takes a free kernel or none: it never retires one
                victim = choice.to_retire(self.kernels, key, self.starting)
                if victim is not None:  # no spare, none coming: make room, wait for the replacement
                    self._retire_for(victim, key)
                    continue
                await self._cond.wait()

    async def _give_back(self, kernel: Kernel) -> None:
        async with self._cond:
            if kernel.state == BUSY:
                if kernel.retire:
                    self._remove(kernel, kernel.retire, failed=False)
                else:
                    kernel.state = IDLE
                    kernel.last_used = time.monotonic()
            self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def lease(self, spec: ProductSpec, version: int) -> AsyncIterator[Lease]:
        """A kernel prepared for ``spec``, held until the block ends; waits when all are busy."""
        kernel = await self._take((spec.name, version), wait=True)
        assert kernel is not None
        try:
            warm = kernel.prepared
            if not warm:
                await self._prepare(kernel, spec)
            kernel.runs += 1
            yield Lease(kernel=kernel, warm=warm)
        finally:
            await self._give_back(kernel)

    async def _prepare(self, kernel: Kernel, spec: ProductSpec) -> None:
        kernel.preparing = True
        try:
            await kernel.fill_workdir(self.files)
            report = await self.call(kernel, protocol.prepare, spec, self.settings.max_output, timeout=spec.timeout)
        finally:
            kernel.preparing = False
        kernel.setup_report = report
        kernel.prepared = report.error is None

    async def prewarm(self, spec: ProductSpec, version: int) -> bool:
        """Prepare a kernel for a product ahead of its first call, if one is free now."""
        try:
            kernel = await self._take((spec.name, version), wait=False)
        except KernelError:
            return False
        if kernel is None:
            return False
        try:
            if not kernel.prepared:
                await self._prepare(kernel, spec)
            return kernel.prepared
        except KernelError as exc:
            log.warning("prewarming %s@%s failed: %s", spec.name, version, exc)
            return False
        finally:
            await self._give_back(kernel)

    async def call(self, kernel: Kernel, step, *args, timeout: float) -> protocol.Report:
        """Run a protocol step (prepare, run) on ``kernel``; on death, tampering or timeout, fix the kernel, then re-raise."""
        kernel.seq += 1
        try:
            seal = protocol.Seal(kernel.nonce, kernel.seq)
            report = await step(kernel.km, kernel.shell, *args, timeout=timeout, seal=seal, poll=self.settings.poll_interval)
        except KernelDied:
            await self._drop(kernel, "it died during a run")
            raise
        except KernelTampered as exc:
            await self._drop(kernel, exc.message)
            raise
        except ExecutionTimeout:
            await self._interrupt(kernel)
            raise
        if report.retire:
            kernel.retire = report.retire
        return report

    async def _interrupt(self, kernel: Kernel) -> None:
        try:
            await kernel.km.interrupt_kernel()
            if await protocol.wait_reply(kernel.km, kernel.shell, self.settings.interrupt_grace, self.settings.poll_interval):
                return
        except GONE as exc:
            log.warning("kernel %s: interrupting it failed: %s", kernel.label(), exc)
        await self._drop(kernel, "it did not come back cleanly from an interrupt")

    # state ------------------------------------------------------------------
    def state(self) -> PoolState:
        idle = [k for k in self.kernels if k.state == IDLE]
        return PoolState(
            size=self.settings.size,
            spare_target=self.settings.spares,
            starting=self.starting,
            idle=len(idle),
            busy=len(self.kernels) - len(idle),
            dead=len(self._disposals),
            serving=sum(k.key is not None for k in self.kernels),
            spare=sum(k.key is None for k in idle),
            restarts=self.restarts,
            retired=self.retired,
            spares_used=self.spares_used,
            start_error=self.start_error,
        )

    def containment(self) -> Containment:
        return self.sandbox.describe() if self.sandbox else {"sandbox": "not started"}
