"""One kernel: its record, and its process's life from start in the sandbox to shutdown.

:class:`Kernel` is what the pool keeps about each kernel (the product version it
serves, its nonce and request count, why it must retire). Its methods start its
process in the sandbox and wait until it answers, shut it down, and say why a
start failed; which kernels exist, and when one starts or ends, is the pool's
(:mod:`kernel_runtime.kernels.pool`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import zmq
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from ..errors import KernelError
from ..model.bundle import path_problem
from ..settings import PoolSettings
from . import protocol
from .output import KernelOutput
from .sandbox import KERNEL_GID, KERNEL_UID, Sandbox
from .shell import ShellChannel
from .state import STARTING, KernelState

# The pool's logger: what happens to one kernel is part of the pool's story.
log = logging.getLogger("nbmesh.pool")

KERNEL_NAME = "nbmesh-python"
# The files of a product version: (name, version) -> {path in the notebook's folder: a read-only local file}.
FilesSource = Callable[[str, int], Awaitable[dict[str, str]]]
# What jupyter_client raises when a kernel's process or sockets are gone (or were never there).
GONE = (OSError, RuntimeError, zmq.ZMQError)


class _OneSpec(KernelSpecManager):
    """Hands jupyter_client the spec of one kernel (its sandbox binds that kernel's own IPC folder)."""

    def __init__(self, spec: KernelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spec = spec

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self._spec


@dataclass(eq=False)
class Kernel:
    """One kernel process, and the product version it serves (None: a spare)."""

    kid: int
    km: AsyncKernelManager
    folder: str  # its IPC folder: connection file and sockets
    workdir: str  # its working folder: the files of the product version it serves, read-only to it
    shell: ShellChannel | None = None  # its shell socket: every request of every step
    state: KernelState = STARTING
    key: tuple[str, int] | None = None
    prepared: bool = False
    preparing: bool = False
    setup_report: protocol.Report | None = None
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))
    seq: int = 0
    retire: str | None = None  # set by a run after which this kernel must not serve another
    last_used: float = field(default_factory=time.monotonic)
    runs: int = 0
    output: KernelOutput | None = None
    filled: bool = False  # its workdir holds its product version's files

    def label(self) -> str:
        return f"{self.kid} {self.key[0]}@{self.key[1]}" if self.key else f"{self.kid} spare"

    @classmethod
    def create(cls, kid: int, ipc_dir: str, settings: PoolSettings, sandbox: Sandbox) -> Kernel:
        """Kernel ``kid``, not started yet: its IPC folder under ``ipc_dir`` and its manager, which runs it in ``sandbox``."""
        folder = os.path.join(ipc_dir, f"kernel-{kid}")
        os.mkdir(folder, 0o700)
        # Beside the IPC folders, not in one: a kernel's IPC folder is bound read-write.
        workdir = os.path.join(ipc_dir, "work", f"kernel-{kid}")
        os.makedirs(workdir)
        os.chmod(workdir, 0o755)  # a kernel that runs as nobody lists and reads it
        argv = [sys.executable, "-m", "kernel_runtime.kernels.launcher"]
        if settings.kernel_memory:
            argv += ["--memory", str(settings.kernel_memory)]
        if sandbox.drops_to_nobody:
            argv += ["--user", f"{KERNEL_UID}:{KERNEL_GID}"]
        argv += ["-f", "{connection_file}"]
        # The sandbox is a wrapper process: signals would reach bwrap, not the kernel, so interrupts
        # travel as messages on the control channel (ipykernel then signals itself).
        spec = KernelSpec(
            argv=sandbox.command(argv, folder, workdir), display_name="nbmesh", language="python",
            name=KERNEL_NAME, interrupt_mode="message",
        )
        km = AsyncKernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=_OneSpec(spec),
            # IPC sockets are faster than loopback TCP (about 4 ms against 6 ms a round trip here).
            transport="ipc",
            ip=os.path.join(folder, "socket"),
            connection_file=os.path.join(folder, "connection.json"),
        )
        kernel = cls(kid=kid, km=km, folder=folder, workdir=workdir)
        kernel.output = KernelOutput(kernel.label, settings.log)
        return kernel

    async def start(self, sandbox: Sandbox, timeout: float, poll: float) -> None:
        """Start the process in ``sandbox`` and wait until it answers; raises what starting raised."""
        assert self.output is not None
        await self.km.start_kernel(env=sandbox.popen_env(), cwd=sandbox.popen_cwd(self.workdir), **self.output.pipes())
        await self.output.attach()
        # The shell socket alone, no jupyter_client client: runs are answered on it; no iopub is read
        # (unread, it would only pile up messages) and no heartbeat thread runs: liveness is one
        # waitpid through the manager, and a thread sharing a zmq context makes its shutdown wait.
        self.shell = ShellChannel(self.km.get_connection_info())
        await protocol.ready(self.km, self.shell, timeout, poll)

    async def fill_workdir(self, files: FilesSource | None) -> None:
        """Link the files of the product version this kernel serves into its working folder, once."""
        if self.filled or files is None or self.key is None:
            return
        await asyncio.to_thread(link_files, await files(*self.key), self.workdir)
        self.filled = True

    async def abandon(self) -> None:
        """Shut down a kernel whose start did not finish."""
        assert self.output is not None
        self.output.close_unused()
        await self.shutdown()

    async def why_not_started(self, exc: Exception, output_wait: float) -> str:
        """Why the start failed: ``exc``, and the kernel's last words (its output, read until it closes)."""
        assert self.output is not None
        await self.output.closed(timeout=output_wait)
        why = str(exc) or type(exc).__name__
        if self.output.tail:
            why += f"; its last output: {' / '.join(self.output.tail)}"
        return why

    async def shutdown(self) -> None:
        """Kill the kernel's process and remove its folder; a kernel already gone is logged, not raised."""
        try:
            if self.shell is not None:
                self.shell.close()
            if self.km.has_kernel:
                await self.km.shutdown_kernel(now=True)
        except GONE as exc:
            log.warning("kernel %s: shutting it down failed: %s", self.label(), exc)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            shutil.rmtree(self.workdir, ignore_errors=True)


def link_files(files: dict[str, str], workdir: str) -> None:
    """Hard links (copies across file systems) in ``workdir`` to read-only local files, by relative path."""
    for rel, source in files.items():
        why = path_problem(rel)
        if why is not None:  # checked at publish and when the record is read; never joined unchecked
            raise KernelError(f"A product file path {rel!r} {why}.")
        dest = os.path.join(workdir, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
        if os.path.lexists(dest):  # a fill cut short earlier
            os.unlink(dest)
        try:
            os.link(source, dest)
        except OSError:
            shutil.copy2(source, dest)
