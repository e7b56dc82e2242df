"""The nbmesh runtime as the JupyterLab server extension sees it: where it answers, and, when none
does and the settings allow it, the ``nbmesh serve`` the extension starts and stops itself."""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from ..http.security import is_loopback
from ..settings import DEFAULT_HOST, DEFAULT_PORT


class Settings(Protocol):
    """What the connection reads of the extension's settings (``NbmeshLab``'s traits)."""

    url: str
    token: str
    start_runtime: bool
    store: str
    startup_timeout: float

class RuntimeConnection:
    """The runtime this Jupyter server talks to, and the one it started, if any."""

    def __init__(self, settings: Settings, workdir: str, log_dir: str, log: Any) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self.workdir = workdir
        self.log_dir = log_dir
        self.log = log
        self.process: subprocess.Popen | None = None
        self._log_path: Path | None = None
        self.error: str | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}

    async def healthy(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                response = await client.get(f"{self.url}/healthz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _loop_lock(self) -> asyncio.Lock:
        # Tests run several servers on successive event loops; a lock belongs to one.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def ensure(self) -> bool:
        """Whether a runtime answers, starting one first when none does and that is allowed."""
        if await self.healthy():
            return True
        async with self._loop_lock():
            if await self.healthy():
                return True
            if self.process is not None and self.process.poll() is None:
                return await self._wait_healthy()
            if not self.settings.start_runtime:
                self.error = f"No nbmesh runtime answers at {self.url}, and starting one is switched off (NbmeshLab.start_runtime)."
                return False
            host = urlsplit(self.url).hostname or ""
            if not is_loopback(host):
                self.error = f"No nbmesh runtime answers at {self.url}; only a runtime on this machine can be started from here."
                return False
            self._start()
            return await self._wait_healthy()

    def _start(self) -> None:
        parts = urlsplit(self.url)
        port = parts.port or DEFAULT_PORT
        command = [sys.executable, "-m", "kernel_runtime", "serve", "--host", parts.hostname or DEFAULT_HOST, "--port", str(port)]
        if self.settings.store:
            command += ["--store", self.settings.store]
        env = dict(os.environ)
        if self.settings.token:
            env["NBMESH_TOKEN"] = self.settings.token
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        log_path = Path(self.log_dir) / f"nbmesh-runtime-{port}.log"
        self.log.info("nbmesh: no runtime answers at %s; starting `nbmesh serve` (log: %s)", self.url, log_path)
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._log_path = log_path
        atexit.register(self.stop)

    async def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + self.settings.startup_timeout
        while time.monotonic() < deadline:
            if await self.healthy():
                self.error = None
                self.log.info("nbmesh: runtime answers at %s", self.url)
                return True
            if self.process is None or self.process.poll() is not None:
                tail = self._log_tail()
                self.error = f"`nbmesh serve` exited before answering at {self.url}: {tail}"
                self.log.error("nbmesh: %s", self.error)
                return False
            await asyncio.sleep(0.25)
        self.error = f"`nbmesh serve` did not answer at {self.url} within {self.settings.startup_timeout:.0f} s."
        self.log.error("nbmesh: %s", self.error)
        return False

    def _log_tail(self) -> str:
        try:
            lines = self._log_path.read_text(errors="replace").strip().splitlines() if self._log_path else []
        except OSError:
            return "no output"
        return lines[-1] if lines else "no output"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def info(self, available: bool) -> dict[str, Any]:
        return {
            "url": self.url,
            "token_required": bool(self.settings.token),
            "available": available,
            "started_by_lab": self.process is not None and self.process.poll() is None,
            "error": None if available else self.error,
        }
