"""The jupyter_server extension behind nbmesh's JupyterLab front end.

Handlers under ``/nbmesh/`` forward to the nbmesh runtime, adding its bearer
token on the server side: the browser needs no CORS and never sees the token.
When no runtime answers at the configured URL and the setting allows it, the
extension starts ``nbmesh serve`` itself and stops it with the Jupyter server.

Settings (``jupyter_server_config.py`` or the command line)::

    c.NbmeshLab.url = "http://127.0.0.1:8765"   # default: NBMESH_URL
    c.NbmeshLab.token = "..."                   # default: NBMESH_TOKEN
    c.NbmeshLab.start_runtime = True            # default: NBMESH_START_RUNTIME, else on
    c.NbmeshLab.store = ".nbmesh/store"         # store of a started runtime (default: NBMESH_STORE)
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Unicode, default

from .. import jsontext
from ..errors import NbmeshError
from ..http.security import is_loopback
from ..settings import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_URL

_FALSE = {"0", "false", "no", "off"}
# Headers of the runtime's answer worth passing on; hop-by-hop ones are tornado's business.
_PASSED_HEADERS = ("Content-Type", "Content-Disposition", "Location")


class RuntimeConnection:
    """The runtime this Jupyter server talks to, and the one it started, if any."""

    def __init__(self, settings: "NbmeshLab", workdir: str, log_dir: str, log: Any) -> None:
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


class _Base(APIHandler):
    @property
    def connection(self) -> RuntimeConnection:
        return self.settings["nbmesh_connection"]

    def _error(self, status: int, message: str, details: list[Any] | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        body: dict[str, Any] = {"error": message}
        if details:
            body["details"] = details
        self.finish(json.dumps(body))


class InfoHandler(_Base):
    """What the front end needs to show invoke URLs: the runtime's URL and whether it wants a token."""

    @tornado.web.authenticated
    async def get(self) -> None:
        available = await self.connection.ensure()
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.connection.info(available)))


class ProxyHandler(_Base):
    """Forwards ``/nbmesh/api/...`` to the runtime's ``/api/...``, unchanged but for the token."""

    @tornado.web.authenticated
    async def get(self, _path: str) -> None:
        await self._forward()

    @tornado.web.authenticated
    async def put(self, _path: str) -> None:
        await self._forward()

    @tornado.web.authenticated
    async def post(self, _path: str) -> None:
        await self._forward()

    @tornado.web.authenticated
    async def delete(self, _path: str) -> None:
        await self._forward()

    async def _forward(self) -> None:
        # The raw path keeps the caller's percent-encoding; tornado's argument is already decoded.
        prefix = url_path_join(self.base_url, "nbmesh") + "/"
        target = f"{self.connection.url}/{self.request.path[len(prefix):]}"
        if self.request.query:
            target += f"?{self.request.query}"
        # A fresh set of headers: the browser's Origin and cookies stay here, only the token is added.
        headers = dict(self.connection.headers)
        method = self.request.method or "GET"
        if method != "GET":
            # A change must declare its body's type (a runtime without a token refuses it otherwise).
            headers["Content-Type"] = self.request.headers.get("Content-Type", "application/json")
        response = None
        for attempt in range(2):
            try:
                async with httpx.AsyncClient(timeout=self.connection.settings.request_timeout) as client:
                    response = await client.request(method, target, content=self.request.body or None, headers=headers)
                break
            except httpx.TransportError as exc:
                if attempt or not await self.connection.ensure():
                    reason = self.connection.error or str(exc) or type(exc).__name__
                    return self._error(502, f"The nbmesh runtime at {self.connection.url} did not answer.", [reason])
        assert response is not None
        self.set_status(response.status_code)
        for name in _PASSED_HEADERS:
            if name in response.headers:
                self.set_header(name, response.headers[name])
        if response.status_code == 204:
            return self.finish()
        self.finish(response.content)


class CheckHandler(_Base):
    """Lists a notebook's problems without storing it, for a name the runtime's URL cannot carry.

    The runtime checks the name in its URL before the notebook, so publishing as
    "My Report" would name that problem alone; here it is listed with the rest.
    """

    @tornado.web.authenticated
    async def post(self) -> None:
        # The runtime's validator loads with the first check, not with every Jupyter server.
        from ..http.routes import NOTEBOOK_LIMIT
        from .check import notebook_problems

        if len(self.request.body) > NOTEBOOK_LIMIT:
            return self._error(413, f"The request body is larger than the limit of {NOTEBOOK_LIMIT} bytes.")
        try:
            body = jsontext.loads(self.request.body, "The request body")
        except NbmeshError as exc:
            return self._error(400, exc.message, exc.details)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(body, dict) or "notebook" not in body or not (name is None or isinstance(name, str)):
            return self._error(400, 'The body must be {"name": <a name or null>, "notebook": <the notebook>}.')
        details = await asyncio.to_thread(notebook_problems, name, body["notebook"])
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"details": details}))


class NbmeshLab(ExtensionApp):
    """How the Jupyter server reaches the nbmesh runtime, and the ``/nbmesh/`` handlers."""

    name = "nbmesh"
    load_other_extensions = True

    url = Unicode(help=f"URL of the nbmesh runtime (default: NBMESH_URL, else {DEFAULT_URL}).").tag(config=True)
    token = Unicode(help="Bearer token for the runtime (default: NBMESH_TOKEN). Never sent to the browser.").tag(
        config=True
    )
    start_runtime = Bool(
        help="Start `nbmesh serve` when no runtime answers at a loopback URL (default: NBMESH_START_RUNTIME, else on)."
    ).tag(config=True)
    store = Unicode(help="--store of a runtime started here (default: NBMESH_STORE, else the runtime's own).").tag(
        config=True
    )
    startup_timeout = Float(90.0, help="Seconds to wait for a started runtime to answer.").tag(config=True)
    request_timeout = Float(
        900.0, help="Seconds to wait for the runtime to answer a request (invocations wait for their run)."
    ).tag(config=True)

    @default("url")
    def _default_url(self) -> str:
        return os.environ.get("NBMESH_URL") or DEFAULT_URL

    @default("token")
    def _default_token(self) -> str:
        return os.environ.get("NBMESH_TOKEN", "")

    @default("start_runtime")
    def _default_start_runtime(self) -> bool:
        return os.environ.get("NBMESH_START_RUNTIME", "1").strip().lower() not in _FALSE

    @default("store")
    def _default_store(self) -> str:
        return os.environ.get("NBMESH_STORE", "")

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        self.connection = RuntimeConnection(
            self, workdir=self.serverapp.root_dir, log_dir=self.serverapp.runtime_dir, log=self.log
        )
        self.settings["nbmesh_connection"] = self.connection
        self.log.info("nbmesh: forwarding /nbmesh/ to the runtime at %s", self.connection.url)

    def initialize_handlers(self) -> None:
        self.handlers.extend(
            [("nbmesh/info", InfoHandler), ("nbmesh/check", CheckHandler), (r"nbmesh/(api/.*)", ProxyHandler)]
        )

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        # Find (or start) the runtime now, so it is warm by the time someone publishes.
        self._warmup = asyncio.ensure_future(self.connection.ensure())

    async def stop_extension(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.connection.stop)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "kernel_runtime.lab.server_extension", "app": NbmeshLab}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nbmesh"}]
