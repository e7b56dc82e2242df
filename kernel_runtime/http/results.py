"""The result routes (docs/reference/http-api.md, "Results and formats"): a product's result from a GET
whose query string holds the parameters, a finished run's result, each in the format asked for; and
the product's data contract, which points at the first.

A query value is typed by the product's parameter schema as ``nbmesh invoke -p`` types it: the text
itself for a ``str`` parameter, else JSON (read strictly: NaN, a lone surrogate... are refused),
falling back to the text, which the parameter check then refuses with its usual message. ``format``
is the format, never a parameter; a parameter given twice is refused rather than one copy picked.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import jsontext
from ..errors import InvalidParameters, MalformedJSON, NotAcceptable, NotFound
from ..model.records import SUCCEEDED, Run
from .contract import contract_yaml
from .formats import ALTERNATIVES, FORMAT, result_response, requested
from .handling import check_read, readable_run, run_response, service_of
from .operations import operation

YAML = "application/yaml"
SAMPLE_RUNS = 50  # runs looked through for the last success, whose columns give a contract without output_schema
ANY_JSON: dict[str, Any] = {"description": "Any JSON value: the output cell's value."}
RESULT_ANSWERS = {
    200: (ANY_JSON, "The run succeeded: its result alone, as JSON or in the format asked for."),
    500: (Run, "The run failed; `error` says why."),
    504: (Run, "The run timed out."),
}
QUERY = (
    FORMAT,
    {
        "name": "parameters",
        "in": "query",
        "description": "The product's parameters, each as name=value: the text itself for a str parameter, else JSON.",
        "style": "form",
        "explode": True,
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    },
)


async def result_answer(run: Run, fmt: str) -> Response:
    """A succeeded run's result alone in ``fmt``; a run that failed or timed out answers with its record."""
    if run.status != SUCCEEDED:
        return run_response(run)
    try:
        return await result_response(run.result, fmt)
    except NotAcceptable as exc:
        exc.details.append({"run_id": run.run_id, "message": f"The run succeeded: /api/runs/{run.run_id} has its result as JSON."})
        raise


def query_parameters(request: Request, types: dict[str, str]) -> dict[str, Any]:
    """The parameters the query string gives, typed by ``types`` (name -> declared type)."""
    params: dict[str, Any] = {}
    for key, raw in request.query_params.multi_items():
        if key == "format":
            continue
        if key in params:
            raise InvalidParameters(
                f"Parameter {key!r} is given more than once in the query string.",
                [{"parameter": key, "message": "Give each parameter once; a list is written as JSON, like [1, 2]."}],
            )
        if types.get(key) == "str":
            params[key] = raw
            continue
        try:
            params[key] = jsontext.loads(raw, f"The query parameter {key!r}")
        except MalformedJSON:
            params[key] = raw
    return params


@operation(
    "productResult",
    "Run with the parameters of the query string (or answer from the result cache); the result alone",
    RESULT_ANSWERS,
    errors=(400, 404, 406, 422, 503),
    query=QUERY,
    alternatives=ALTERNATIVES,
)
async def product_result(request: Request) -> Response:
    ref, service = request.path_params["name"], service_of(request)
    check_read(request, ref)
    fmt = requested(request)
    spec, _ = await service.catalog.resolve(ref)
    params = query_parameters(request, {name: p.type for name, p in spec.parameters.items()})
    return await result_answer(await service.invoke(ref, params), fmt)


@operation(
    "runResult",
    "A finished run's result alone",
    {200: (ANY_JSON, "Its result alone, as JSON or in the format asked for.")},
    errors=(404, 406),
    query=(FORMAT,),
    alternatives=ALTERNATIVES,
)
async def run_result(request: Request) -> Response:
    run = await readable_run(request)
    fmt = requested(request)
    if run.status != SUCCEEDED:
        state = "has not finished yet" if not run.final else f"{run.status.replace('_', ' ')}: it has no result"
        raise NotFound(f"Run {run.run_id} {state}.", [run.error] if run.error else [])
    return await result_response(run.result, fmt)


@operation(
    "dataContract",
    "The product's data contract: Open Data Contract Standard v3.0.2, as YAML",
    {200: ({"type": "string"}, "The contract (ODCS v3.0.2).")},
    errors=(400, 404),
    media=YAML,
)
async def contract(request: Request) -> Response:
    ref, service = request.path_params["name"], service_of(request)
    check_read(request, ref)
    product = await service.product(ref)
    sample = None
    # The newest runs are enough: a product read by anyone has a recent success, and this is no hot path.
    for run in await service.list_runs(ref, SAMPLE_RUNS):
        if run.status == SUCCEEDED and run.version == product["version"]:
            sample = run.result
            break
    location = f"{str(request.base_url).rstrip('/')}/api/products/{ref}/result"
    return Response(contract_yaml(product, location, sample), media_type=YAML)
