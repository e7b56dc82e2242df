"""The HTTP API (docs/reference/http-api.md), as a declarative Starlette app: its gate, errors and wiring.

Who the caller is, and on the open loopback default what a web page may not
send, is settled before any handler (:mod:`.routes`) by :class:`Gate`. Every
nbmesh error becomes its HTTP status here, in ``STATUS``, and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, AsyncIterator, Iterable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import (
    CorruptRecord,
    Forbidden,
    InvalidNotebook,
    InvalidParameters,
    InternalError,
    InvalidRequest,
    KernelError,
    MethodNotAllowed,
    NbmeshError,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    QueueUnavailable,
    StoreUnavailable,
    UnacceptableJSON,
    Unauthorized,
    UnsupportedMediaType,
    VersionConflict,
)
from ..runtime.service import Service
from ..settings import DEFAULT_HOST
from .access import OPEN, PRINCIPAL, Access
from .metrics import Metrics
from .openapi import OpenAPI
from .pages import is_public, page_routes
from .routes import ROUTES
from .security import trusted_hosts

log = logging.getLogger("nbmesh.api")

STATUS: dict[type[NbmeshError], int] = {
    InvalidRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    NotAcceptable: 406,
    VersionConflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidNotebook: 422,
    InvalidParameters: 422,
    UnacceptableJSON: 422,
    CorruptRecord: 500,
    InternalError: 500,
    KernelError: 503,
    QueueFull: 503,
    QueueUnavailable: 503,
    StoreUnavailable: 503,
}


def status_of(exc: NbmeshError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(exc: NbmeshError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=status_of(exc))


# middleware -------------------------------------------------------------------------
_TRUSTED_HOST = "nbmesh.trusted_host"
_CHANGES = frozenset({"POST", "PUT", "DELETE"})
_RUNS_ON_GET = re.compile(r"/api/products/[^/]+/result")  # the one GET that runs a product
_OTHER_SITE = frozenset({b"cross-site", b"same-site"})


async def _mark_trusted_host(scope: Scope, receive: Receive, send: Send) -> None:
    scope[_TRUSTED_HOST] = True


async def _discard(message: Any) -> None:
    pass


class Gate:
    """Who is calling, settled before any handler runs (docs/reference/http-api.md, "Auth", "Cross-site rules").

    With principals (``--token`` and/or ``--access``) every route but /healthz and the web pages
    (:mod:`.pages`, which hold no data) needs a known bearer token, else 401; the handlers then check the caller's right on what they touch (403). Without
    any token (loopback only) every caller is the operator, so the gate refuses what a web page could
    send instead: a Host that is not a loopback name (DNS rebinding), an Origin other than the
    runtime's own or an allowed one (403), a change whose body is not declared JSON (415): a
    form or ``text/plain`` POST is the one kind a browser sends to another site without asking;
    and a subresource GET of a product's result from another site (403), which would run it.
    """

    def __init__(self, app: ASGIApp, access: Access | None, hosts: list[str], origins: Iterable[str]) -> None:
        self.app = app
        self.access = access
        self.hosts = hosts
        self.origins = frozenset(origin.encode() for origin in origins)
        # Starlette's host matching (ports, IPv6 literals, malformed headers) decides; the answer is ours.
        self.host_check = TrustedHostMiddleware(_mark_trusted_host, allowed_hosts=hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.access is None:
            error = await self._cross_site(scope, receive)
            scope[PRINCIPAL] = OPEN
        else:
            error = self._authenticate(scope)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope) -> NbmeshError | None:
        if scope["path"] == "/healthz" or is_public(scope["path"]):
            return None
        assert self.access is not None
        principal = self.access.identify(dict(scope["headers"]).get(b"authorization", b""))
        if principal is None:
            return Unauthorized("A valid bearer token is required: send 'Authorization: Bearer <token>'.")
        scope[PRINCIPAL] = principal
        return None

    async def _cross_site(self, scope: Scope, receive: Receive) -> NbmeshError | None:
        headers = dict(scope["headers"])
        await self.host_check(scope, receive, _discard)
        if not scope.pop(_TRUSTED_HOST, False):
            host = headers.get(b"host", b"").decode("latin-1")
            return Forbidden(
                f"Host {host!r} is not a loopback name: a runtime without a token answers only to "
                f"{', '.join(self.hosts)} (a web page elsewhere may be trying to reach it)."
            )
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_allowed(scope, origin, headers[b"host"]):
            return Forbidden(
                f"Requests from pages at {origin.decode('latin-1')!r} are refused: a runtime without a token "
                "answers only pages of its own origin and those given with --allowed-origin."
            )
        method = scope["method"]
        if (
            origin is None
            and headers.get(b"sec-fetch-site") in _OTHER_SITE
            and headers.get(b"sec-fetch-dest", b"document") != b"document"
            and _RUNS_ON_GET.fullmatch(scope["path"])
        ):
            # An <img> or no-cors fetch sends no Origin, and would run the product; a link the user follows may.
            return Forbidden(
                "A page of another site may not run a product here: a runtime without a token answers "
                "GET .../result from elsewhere only to a link the user follows (Sec-Fetch-Dest: document)."
            )
        if method in _CHANGES:
            media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media != b"application/json" and not (method == "PUT" and media == b"multipart/form-data"):
                alternative = " (or multipart/form-data for a publish)" if method == "PUT" else ""
                return UnsupportedMediaType(
                    f"A {method} must send Content-Type: application/json{alternative}, "
                    f"got {media.decode('latin-1') or 'none'}."
                )
        return None

    def _origin_allowed(self, scope: Scope, origin: bytes, host: bytes) -> bool:
        """Pages of the runtime's own origin (any of its loopback names, at its port) and the allowed ones."""
        if origin in self.origins or origin == b"http://" + host:
            return True
        server = scope.get("server")
        return bool(server) and origin in {f"http://{name}:{server[1]}".encode() for name in self.hosts}


async def _nbmesh_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NbmeshError)
    return error_response(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Even a bug answers with the error body (docs/reference/http-api.md, "Errors"), never a bare text page.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(InternalError(f"The runtime failed unexpectedly: {type(exc).__name__}: {exc}"))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(NotFound(f"No route for {request.method} {request.url.path}."))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}."))


def create_app(
    service: Service,
    access: Access | None = None,
    host: str = DEFAULT_HOST,
    allowed_origins: Iterable[str] = (),
    on_kernel_ready=None,
) -> Starlette:
    """The app; ``access`` None is the open loopback default, where ``host`` and ``allowed_origins``
    say which Host and Origin headers are this machine's."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start(on_kernel_ready)
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=[*ROUTES, *page_routes()],
        middleware=[Middleware(Gate, access=access, hosts=trusted_hosts(host), origins=allowed_origins)],
        exception_handlers={NbmeshError: _nbmesh_error, Exception: _unexpected, 404: _not_found, 405: _method_not_allowed},
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.metrics = Metrics(service.pool.state, service.queue_depths, lambda: len(service.catalog), service.runs.cache)
    service.run_finished.append(app.state.metrics.observe)
    app.state.openapi = OpenAPI(service.catalog)
    return app
