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
import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Unicode, default

from .. import jsontext
from ..errors import NbmeshError, PayloadTooLarge
from ..model.bundle import collect, path_problem, publish_form
from ..settings import DEFAULT_URL
from .connection import RuntimeConnection

_FALSE = {"0", "false", "no", "off"}
# Headers of the runtime's answer worth passing on; hop-by-hop ones are tornado's business.
_PASSED_HEADERS = ("Content-Type", "Content-Disposition", "Location")


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

    async def _relay(self, method: str, target: str, headers: dict[str, str], **body: Any) -> None:
        """Send the request to the runtime (starting it if need be) and pass its answer on."""
        response = None
        for attempt in range(2):
            try:
                async with httpx.AsyncClient(timeout=self.connection.settings.request_timeout) as client:
                    response = await client.request(method, target, headers=headers, **body)
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
        await self._relay(method, target, headers, content=self.request.body or None)


class PublishHandler(_Base):
    """Publishes the notebook the browser sends (saved or not), with the files its ``metadata.nbmesh.files``
    names from its folder in the Jupyter contents root; ``?path=`` is the notebook's path there."""

    @tornado.web.authenticated
    async def put(self, name: str) -> None:
        path = self.get_query_argument("path", "")
        why = path_problem(path)
        root = Path(self.connection.workdir).resolve()
        folder = (root / path).parent.resolve() if why is None else root
        if why is None and folder != root and root not in folder.parents:
            why = "leaves the Jupyter contents root"
        if why is not None:
            return self._error(400, f"The notebook path {path!r} {why}.")
        try:
            notebook = json.loads(self.request.body)
        except ValueError as exc:
            return self._error(400, f"The body is not notebook JSON: {exc}.")
        metadata = notebook.get("metadata") if isinstance(notebook, dict) else None
        meta = metadata.get("nbmesh") if isinstance(metadata, dict) else None
        target = f"{self.connection.url}/api/products/{quote(name, safe='')}"
        headers = dict(self.connection.headers)
        if not isinstance(meta, dict) or "files" not in meta:
            headers["Content-Type"] = "application/json"
            return await self._relay("PUT", target, headers, content=self.request.body)
        files, problems = collect(folder, meta)
        if problems:
            return self._error(422, f"The files of {path} cannot be sent; nothing was published.", problems)
        with ExitStack() as stack:
            try:
                form = publish_form(self.request.body, files, stack)
            except PayloadTooLarge as exc:
                return self._error(413, exc.message)
            await self._relay("PUT", target, headers, files=form)


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
            [("nbmesh/info", InfoHandler), ("nbmesh/check", CheckHandler), (r"nbmesh/(api/.*)", ProxyHandler), (r"nbmesh/publish/([^/]+)", PublishHandler)]
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
