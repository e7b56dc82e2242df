"""The pool of warm kernels.

The pool owns kernel processes: it starts them ahead of demand, hands one
out per run (preferring a kernel already prepared for that product
version, else a fresh one, else the least recently used), prepares kernels
for products through :mod:`kernel_runtime.executor`, and replaces kernels
that die or hang. Callers beyond capacity wait in FIFO order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec

from . import executor
from .errors import ExecutionTimeout, KernelDied, KernelError
from .product import ProductSpec

log = logging.getLogger("nbmesh.pool")

STARTING, IDLE, BUSY, DEAD = "starting", "idle", "busy", "dead"


@dataclass
class PoolSettings:
    size: int = 2
    start_timeout: float = 60.0
    interrupt_grace: float = 3.0
    kernel_memory: int | None = None  # bytes; enforced by rlimit in the kernel process
    max_output: int = 8 * 1024 * 1024  # bytes of stdout/stderr one run may write


@dataclass(eq=False)
class Kernel:
    """One pooled kernel process and what it is prepared for."""

    kid: int
    km: AsyncKernelManager
    kc: AsyncKernelClient | None = None
    state: str = STARTING
    prepared: tuple[str, int] | None = None
    spec: ProductSpec | None = None
    setup_report: executor.Report | None = None
    last_used: float = field(default_factory=time.monotonic)
    runs: int = 0


@dataclass
class Lease:
    """A kernel held for one run, and whether it was already prepared for the product."""

    kernel: Kernel
    warm: bool


class KernelPool:
    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.kernels: list[Kernel] = []
        self._cond = asyncio.Condition()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self.restarts = 0
        self.closed = False
        self._ipc_dir = tempfile.mkdtemp(prefix="nbmesh-ipc-")

    # lifecycle ----------------------------------------------------------------
    async def start(self, on_ready=None) -> None:
        """Start every kernel and wait until all answer; ``on_ready(kernel)`` reports progress."""
        self.kernels = [self._new_kernel() for _ in range(self.settings.size)]
        await asyncio.gather(*(self._boot(k, on_ready) for k in self.kernels))

    def _new_kernel(self) -> Kernel:
        kid = next(self._ids)
        return Kernel(kid=kid, km=self._new_manager(kid))

    def _new_manager(self, kid: int) -> AsyncKernelManager:
        # IPC sockets are faster than loopback TCP (about 4 ms against 6 ms a round trip here);
        # each kernel gets its own socket path prefix so concurrent starts never collide.
        ipc_prefix = os.path.join(self._ipc_dir, f"kernel-{kid}")
        km = AsyncKernelManager(kernel_name="nbmesh-python", transport="ipc", ip=ipc_prefix)
        argv = [sys.executable, "-m", "kernel_runtime.kernel_launcher"]
        if self.settings.kernel_memory:
            argv += ["--memory", str(self.settings.kernel_memory)]
        argv += ["-f", "{connection_file}"]
        # A spec of our own: the kernel runs this interpreter (so it can import the runner) under our launcher.
        km._kernel_spec = KernelSpec(argv=argv, display_name="nbmesh", language="python", name="nbmesh-python")
        return km

    async def _boot(self, kernel: Kernel, on_ready=None) -> None:
        kernel.state, kernel.prepared, kernel.spec = STARTING, None, None
        try:
            await kernel.km.start_kernel()
            kc = kernel.km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=self.settings.start_timeout)
            # Runs are answered on the shell channel alone; an unread iopub only piles up messages.
            kc.iopub_channel.stop()
            kernel.kc = kc
        except Exception as exc:
            log.error("kernel %s failed to start: %s", kernel.kid, exc)
            kernel.state = DEAD
            await self._shutdown(kernel)
            raise KernelError(f"A kernel could not be started: {exc}") from exc
        async with self._cond:
            kernel.state = IDLE
            self._cond.notify_all()
        if on_ready:
            on_ready(kernel)

    async def close(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self._shutdown(k) for k in self.kernels), return_exceptions=True)
        shutil.rmtree(self._ipc_dir, ignore_errors=True)

    async def _shutdown(self, kernel: Kernel) -> None:
        if kernel.kc is not None:
            kernel.kc.stop_channels()
            kernel.kc = None
        with contextlib.suppress(Exception):
            if kernel.km.has_kernel:
                await kernel.km.shutdown_kernel(now=True)

    def _replace(self, kernel: Kernel) -> None:
        """Restart a dead or stuck kernel in the background; the run that hit it already failed."""
        self.restarts += 1
        kernel.state, kernel.prepared, kernel.spec = STARTING, None, None

        async def restart() -> None:
            await self._shutdown(kernel)
            for attempt in range(3):
                # A manager that shut its kernel down has closed its sockets' context: use a new one.
                kernel.km = self._new_manager(kernel.kid)
                try:
                    await self._boot(kernel)
                    return
                except KernelError:
                    await asyncio.sleep(1 + attempt)
            log.error("kernel %s could not be restarted", kernel.kid)

        if not self.closed:
            task = asyncio.create_task(restart())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # leasing ------------------------------------------------------------------
    def _pick(self, key: tuple[str, int]) -> Kernel | None:
        idle = [k for k in self.kernels if k.state == IDLE]
        if not idle:
            return None
        for k in idle:
            if k.prepared == key:
                return k
        fresh = [k for k in idle if k.prepared is None]
        return fresh[0] if fresh else min(idle, key=lambda k: k.last_used)

    async def _take(self, key: tuple[str, int], wait: bool) -> Kernel | None:
        async with self._cond:
            while (kernel := self._pick(key)) is None:
                if not wait or self.closed:
                    return None
                await self._cond.wait()
            kernel.state = BUSY
            return kernel

    async def _give_back(self, kernel: Kernel) -> None:
        async with self._cond:
            if kernel.state == BUSY:
                kernel.state = IDLE
                kernel.last_used = time.monotonic()
            self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def lease(self, spec: ProductSpec, version: int) -> AsyncIterator[Lease]:
        """A kernel prepared for ``spec``, held until the block ends; waits when all are busy."""
        key = (spec.name, version)
        kernel = await self._take(key, wait=True)
        if kernel is None:
            raise KernelError("The kernel pool is shutting down.")
        try:
            warm = kernel.prepared == key
            if not warm:
                await self._prepare(kernel, spec, key)
            kernel.runs += 1
            yield Lease(kernel=kernel, warm=warm)
        finally:
            await self._give_back(kernel)

    async def _prepare(self, kernel: Kernel, spec: ProductSpec, key: tuple[str, int]) -> None:
        kernel.prepared, kernel.spec = None, None
        report = await self.call(kernel, executor.prepare, spec, self.settings.max_output, timeout=spec.timeout)
        kernel.setup_report = report
        if report.error is None:
            kernel.prepared, kernel.spec = key, spec

    async def prewarm(self, spec: ProductSpec, version: int) -> bool:
        """Prepare an idle kernel for a product ahead of its first call, if one is free now."""
        kernel = await self._take((spec.name, version), wait=False)
        if kernel is None:
            return False
        try:
            if kernel.prepared != (spec.name, version):
                await self._prepare(kernel, spec, (spec.name, version))
            return kernel.prepared == (spec.name, version)
        except KernelError as exc:
            log.warning("prewarming %s@%s failed: %s", spec.name, version, exc)
            return False
        finally:
            await self._give_back(kernel)

    async def call(self, kernel: Kernel, step, *args, timeout: float) -> executor.Report:
        """Run an executor step on ``kernel``; on death or timeout, fix the kernel, then re-raise."""
        try:
            return await step(kernel.km, kernel.kc, *args, timeout=timeout)
        except KernelDied:
            self._replace(kernel)
            raise
        except ExecutionTimeout:
            await self._interrupt(kernel)
            raise

    async def _interrupt(self, kernel: Kernel) -> None:
        with contextlib.suppress(Exception):
            await kernel.km.interrupt_kernel()
            if await executor.wait_reply(kernel.km, kernel.kc, self.settings.interrupt_grace):
                return
        log.warning("kernel %s did not come back from an interrupt; restarting it", kernel.kid)
        self._replace(kernel)

    # state ------------------------------------------------------------------
    def state(self) -> dict[str, int]:
        counts = {STARTING: 0, IDLE: 0, BUSY: 0, DEAD: 0}
        for k in self.kernels:
            counts[k.state] += 1
        return {"size": len(self.kernels), **counts, "restarts": self.restarts}
