"""The HTTP API's routes (docs/design.md): the handlers and the ``ROUTES`` table (the result and
contract routes' handlers live in :mod:`.results`).

Handlers only parse and bound the request, check the caller's right on what it
touches, call the service, and shape the answer. Who the caller is was settled
before any handler, by the gate of :mod:`.app`, which leaves it in the scope.
Each handler declares what it answers with :func:`.operations.operation`: the
OpenAPI document is built from these and ``ROUTES``, and nowhere else.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import jsontext
from ..errors import InvalidParameters, InvalidRequest, quoted
from ..model.bundle import Submission
from ..model.records import Notebook, ParameterValues, Product, Run, RunId, RunStatus
from ..runtime.service import Health
from ..triggers.lineage import Lineage
from .formats import ALTERNATIVES, FORMAT, JSON, requested
from .handling import check_read, principal_of, readable, readable_run, run_response, service_of
from .operations import operation
from .results import contract, product_result, result_answer, run_result
from .upload import is_multipart, read_body, read_publish

MIB = 1024 * 1024
NOTEBOOK_LIMIT = 16 * MIB
PARAMS_LIMIT = 1 * MIB
MAX_RUNS_LIMIT = 1000
DEFAULT_RUNS_LIMIT = 50
# Whole ASCII digits only: str.isdigit() accepts "²" and "١", which int() then rejects or reads.
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


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


def shown(request: Request, product: dict[str, Any]) -> dict[str, Any]:
    """A product as the caller sees it: downstream products it may not read are left out."""
    if not principal_of(request).admin:
        may_read = readable(request)
        product["downstream"] = [name for name in product["downstream"] if may_read(name)]
    return product


# the answers' envelopes ------------------------------------------------------------
class ProductList(TypedDict):
    products: list[Product]


class RunList(TypedDict):
    """The product's runs, newest first."""

    runs: list[Run]


class RunAccepted(TypedDict):
    """A background run, accepted: poll ``/api/runs/{run_id}`` for its outcome."""

    run_id: RunId
    status: RunStatus


class EventAccepted(TypedDict):
    """The event, published: the runs it started (none when the queue had no room)."""

    topic: str
    runs: list[RunId]


# A publish with files (docs/reference/http-api.md, "Publishing with files"): each file part's
# filename is its path in the notebook's folder.
PUBLISH_FORM = {
    "type": "object",
    "required": ["notebook"],
    "properties": {
        "notebook": {"type": "string", "contentMediaType": "application/json", "description": "The ipynb."},
        "files": {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}},
    },
}
RUN_ANSWERS = {
    200: (Run, "The run succeeded; `result` holds its value."),
    500: (Run, "The run failed; `error` says why."),
    504: (Run, "The run timed out."),
}
LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RUNS_LIMIT, "default": DEFAULT_RUNS_LIMIT},
}


# handlers -----------------------------------------------------------------------
@operation("health", "Liveness and pool state", {200: (Health, "Alive.")}, public=True)
async def healthz(request: Request) -> Response:
    return JSONResponse(service_of(request).health())


@operation("listProducts", "The catalog", {200: (ProductList, "Every product the caller may read.")})
async def list_products(request: Request) -> Response:
    products = service_of(request).products(readable(request))
    return JSONResponse(ProductList(products=[shown(request, p) for p in products]))


@operation("getProduct", "One product", {200: (Product, "The product.")}, errors=(400, 404))
async def get_product(request: Request) -> Response:
    check_read(request, request.path_params["name"])
    return JSONResponse(shown(request, await service_of(request).product(request.path_params["name"])))


@operation(
    "publishProduct",
    "Publish a notebook as the product's next version",
    {201: (Product, "Published: a new version."), 200: (Product, "Nothing changed: the current version, no new one.")},
    errors=(400, 409, 413, 415, 422, 503),
    body=Notebook,
    body_required=True,
    forms={"multipart/form-data": PUBLISH_FORM},
)
async def put_product(request: Request) -> Response:
    name, principal, service = request.path_params["name"], principal_of(request), service_of(request)
    # The current owner first, before the body is read: no one takes over another domain's product.
    current = service.owner_of(name)
    if current is not None:
        principal.check_publish(name, current)
    if is_multipart(request):  # with its files (docs/reference/http-api.md, "Publishing with files")
        sent = await read_publish(request, NOTEBOOK_LIMIT)
    else:
        sent = Submission(await read_body(request, NOTEBOOK_LIMIT))
    try:
        product, created = await service.publish(name, sent, lambda owner: principal.check_publish(name, owner, new=True))
    finally:
        sent.close()
    return JSONResponse(shown(request, product), status_code=201 if created else 200)


@operation("unpublishProduct", "Unpublish (its runs stay readable)", {204: (None, "Unpublished.")}, errors=(400, 404, 415))
async def delete_product(request: Request) -> Response:
    name = request.path_params["name"]
    principal_of(request).check_publish(name, service_of(request).owner_of(name))
    await service_of(request).unpublish(name)
    return Response(status_code=204)


@operation(
    "invoke",
    "Run now and wait",
    RUN_ANSWERS,
    errors=(400, 404, 406, 413, 415, 422, 503),
    body=ParameterValues,
    query=(FORMAT,),
    alternatives=ALTERNATIVES,
)
async def invoke(request: Request) -> Response:
    check_read(request, request.path_params["name"])
    fmt = requested(request)  # an unknown format is refused before anything runs
    params = await read_json_object(request)
    run = await service_of(request).invoke(request.path_params["name"], params)
    return run_response(run) if fmt == JSON else await result_answer(run, fmt)


@operation(
    "submitRun",
    "Run in the background",
    {202: (RunAccepted, "Queued.")},
    errors=(400, 404, 413, 415, 422, 503),
    body=ParameterValues,
)
async def submit_run(request: Request) -> Response:
    check_read(request, request.path_params["name"])
    params = await read_json_object(request)
    run = await service_of(request).submit(request.path_params["name"], params)
    return JSONResponse(RunAccepted(run_id=run.run_id, status=run.status), status_code=202)


@operation("listRuns", "The product's runs, newest first", {200: (RunList, "Runs.")}, errors=(400, 404), query=(LIMIT,))
async def product_runs(request: Request) -> Response:
    raw = request.query_params.get("limit", str(DEFAULT_RUNS_LIMIT))
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_RUNS_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_RUNS_LIMIT} in ASCII digits, got {quoted(raw)}.")
    check_read(request, request.path_params["name"])
    runs = await service_of(request).list_runs(request.path_params["name"], int(raw))
    return JSONResponse(RunList(runs=[r.to_json() for r in runs]))


@operation("productNotebook", "The published notebook", {200: (Notebook, "The notebook.")}, errors=(400, 404))
async def product_notebook(request: Request) -> Response:
    check_read(request, request.path_params["name"])
    return JSONResponse(await service_of(request).product_notebook(request.path_params["name"]))


@operation("getRun", "A run", {200: (Run, "The run.")}, errors=(404,))
async def get_run(request: Request) -> Response:
    return JSONResponse((await readable_run(request)).to_json())


@operation(
    "runNotebook", "The executed notebook, once the run is final", {200: (Notebook, "The executed notebook.")}, errors=(404,)
)
async def run_notebook(request: Request) -> Response:
    run = await readable_run(request)
    return JSONResponse(await service_of(request).get_run_notebook(run.run_id))


@operation(
    "publishEvent",
    "Publish an event; subscribed products run",
    {202: (EventAccepted, "Published; the runs it started.")},
    errors=(400, 413, 415, 422, 503),
    body=dict[str, Any],
)
async def post_event(request: Request) -> Response:
    topic = request.path_params["topic"]
    principal_of(request).check_emit(topic)
    payload = await read_json_object(request, PARAMS_LIMIT)
    runs = await service_of(request).emit(topic, payload)
    return JSONResponse(EventAccepted(topic=topic, runs=[r.run_id for r in runs]), status_code=202)


@operation("lineage", "The product graph: which products' runs trigger which", {200: (Lineage, "Nodes and edges.")})
async def get_lineage(request: Request) -> Response:
    graph = service_of(request).lineage()
    if not principal_of(request).admin:
        # Only products the caller may read, and only edges between two of them.
        may_read = readable(request)
        seen = {node["name"] for node in graph["nodes"] if may_read(node["name"])}
        graph = Lineage(
            nodes=[n for n in graph["nodes"] if n["name"] in seen],
            edges=[e for e in graph["edges"] if e["from"] in seen and e["to"] in seen],
        )
    return JSONResponse(graph)


@operation("openapi", "This document", {200: ({"type": "object"}, "OpenAPI 3.1.")})
async def openapi(request: Request) -> Response:
    body = request.app.state.openapi.body(principal_of(request), readable(request))
    return Response(body, media_type="application/json")


@operation("metrics", "Prometheus metrics", {200: ({"type": "string"}, "Prometheus text format.")}, media="text/plain")
async def metrics(request: Request) -> Response:
    # Runs by product are a listing too: a caller sees the series of the products it may read.
    body, content_type = request.app.state.metrics.render(None if principal_of(request).admin else readable(request))
    return Response(body, headers={"Content-Type": content_type})


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
    Route("/api/runs/{run_id}/result", run_result, methods=["GET"]),
    Route("/api/products/{name}/result", product_result, methods=["GET"]),
    Route("/api/products/{name}/contract", contract, methods=["GET"]),
    Route("/api/events/{topic}", post_event, methods=["POST"]),
    Route("/api/lineage", get_lineage, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
