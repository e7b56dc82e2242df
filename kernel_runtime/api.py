"""The HTTP API of CONTRACT section 3, as a declarative Starlette app.

Handlers only parse and bound the request, call the service, and shape the
answer. Every nbmesh error becomes its HTTP status here, in ``STATUS``, and
nowhere else.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import jsontext
from .errors import (
    CorruptRecord,
    InvalidNotebook,
    InvalidParameters,
    InvalidRequest,
    KernelError,
    NbmeshError,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    StoreUnavailable,
    UnacceptableJSON,
    Unauthorized,
    VersionConflict,
    quoted,
)
from .metrics import Metrics
from .openapi import OpenAPI
from .records import SUCCEEDED, TIMED_OUT, Run
from .service import Service

log = logging.getLogger("nbmesh.api")

MIB = 1024 * 1024
NOTEBOOK_LIMIT = 16 * MIB
PARAMS_LIMIT = 1 * MIB
MAX_RUNS_LIMIT = 1000
# Whole ASCII digits only: str.isdigit() accepts "²" and "١", which int() then rejects or reads.
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)

STATUS: dict[type[NbmeshError], int] = {
    InvalidRequest: 400,
    Unauthorized: 401,
    NotFound: 404,
    VersionConflict: 409,
    PayloadTooLarge: 413,
    InvalidNotebook: 422,
    InvalidParameters: 422,
    UnacceptableJSON: 422,
    CorruptRecord: 500,
    KernelError: 503,
    QueueFull: 503,
    StoreUnavailable: 503,
}


def status_of(exc: NbmeshError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(exc: NbmeshError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=status_of(exc))


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _DIGITS.fullmatch(declared):
            raise InvalidRequest(f"The Content-Length header {quoted(declared)} is not a number of bytes.")
        if int(declared) > limit:
            raise PayloadTooLarge(f"The request body is {int(declared)} bytes; the limit is {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int = PARAMS_LIMIT) -> dict[str, Any]:
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    # Strict: NaN, Infinity, a lone surrogate or a repeated key is refused here, before anything runs.
    value = jsontext.loads(body, "The request body")
    if not isinstance(value, dict):
        raise InvalidParameters(
            f"The request body must be a JSON object, got {type(value).__name__}.",
            [{"message": "Send the parameters as an object like {\"region\": \"EU\"}."}],
        )
    return value


def service_of(request: Request) -> Service:
    return request.app.state.service


def run_response(run: Run, ok_status: int = 200) -> JSONResponse:
    if run.status == SUCCEEDED:
        status = ok_status
    elif run.status == TIMED_OUT:
        status = 504
    else:
        status = 500
    return JSONResponse(run.to_json(), status_code=status)


# handlers -----------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    return JSONResponse(service_of(request).health())


async def list_products(request: Request) -> Response:
    return JSONResponse({"products": service_of(request).products()})


async def get_product(request: Request) -> Response:
    return JSONResponse(await service_of(request).product(request.path_params["name"]))


async def put_product(request: Request) -> Response:
    body = await read_body(request, NOTEBOOK_LIMIT)
    product = await service_of(request).publish(request.path_params["name"], body)
    return JSONResponse(product, status_code=201)


async def delete_product(request: Request) -> Response:
    await service_of(request).unpublish(request.path_params["name"])
    return Response(status_code=204)


async def invoke(request: Request) -> Response:
    params = await read_json_object(request)
    return run_response(await service_of(request).invoke(request.path_params["name"], params))


async def submit_run(request: Request) -> Response:
    params = await read_json_object(request)
    run = await service_of(request).submit(request.path_params["name"], params)
    return JSONResponse({"run_id": run.run_id, "status": run.status}, status_code=202)


async def product_runs(request: Request) -> Response:
    raw = request.query_params.get("limit", "50")
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_RUNS_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_RUNS_LIMIT} in ASCII digits, got {quoted(raw)}.")
    runs = await service_of(request).list_runs(request.path_params["name"], int(raw))
    return JSONResponse({"runs": [r.to_json() for r in runs]})


async def product_notebook(request: Request) -> Response:
    return JSONResponse(await service_of(request).product_notebook(request.path_params["name"]))


async def get_run(request: Request) -> Response:
    return JSONResponse((await service_of(request).get_run(request.path_params["run_id"])).to_json())


async def run_notebook(request: Request) -> Response:
    return JSONResponse(await service_of(request).get_run_notebook(request.path_params["run_id"]))


async def post_event(request: Request) -> Response:
    topic = request.path_params["topic"]
    payload = await read_json_object(request, PARAMS_LIMIT)
    runs = await service_of(request).triggers.emit(topic, payload)
    return JSONResponse({"topic": topic, "runs": [r.run_id for r in runs]}, status_code=202)


async def get_lineage(request: Request) -> Response:
    return JSONResponse(service_of(request).triggers.lineage())


async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi.body(), media_type="application/json")


async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, headers={"Content-Type": content_type})


# middleware -------------------------------------------------------------------------
class TokenMiddleware:
    """Bearer-token auth on every route but /healthz (CONTRACT section 6)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            error = Unauthorized("A valid bearer token is required: send 'Authorization: Bearer <token>'.")
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _nbmesh_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NbmeshError)
    return error_response(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Even a bug answers with the contract's error body, never a bare text page.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": f"The runtime failed unexpectedly: {type(exc).__name__}: {exc}"}, status_code=500)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(NotFound(f"No route for {request.method} {request.url.path}."))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"Method {request.method} is not allowed on {request.url.path}."}, status_code=405)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/api/products", list_products, methods=["GET"]),
    Route("/api/products/{name}", get_product, methods=["GET"]),
    Route("/api/products/{name}", put_product, methods=["PUT"]),
    Route("/api/products/{name}", delete_product, methods=["DELETE"]),
    Route("/api/products/{name}/invoke", invoke, methods=["POST"]),
    Route("/api/products/{name}/runs", submit_run, methods=["POST"]),
    Route("/api/products/{name}/runs", product_runs, methods=["GET"]),
    Route("/api/products/{name}/notebook", product_notebook, methods=["GET"]),
    Route("/api/runs/{run_id}", get_run, methods=["GET"]),
    Route("/api/runs/{run_id}/notebook", run_notebook, methods=["GET"]),
    Route("/api/events/{topic}", post_event, methods=["POST"]),
    Route("/api/lineage", get_lineage, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]


def create_app(service: Service, token: str | None = None, on_kernel_ready=None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start(on_kernel_ready)
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(TokenMiddleware, token=token)],
        exception_handlers={NbmeshError: _nbmesh_error, Exception: _unexpected, 404: _not_found, 405: _method_not_allowed},
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.metrics = Metrics(service)
    app.state.openapi = OpenAPI(service)
    return app
