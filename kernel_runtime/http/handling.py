"""What every handler of :mod:`.routes` and :mod:`.results` needs: the service, the caller, its read
checks, and a run's answer."""

from __future__ import annotations

from typing import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..model.product import parse_ref
from ..model.records import SUCCEEDED, TIMED_OUT, Run
from ..runtime.service import Service
from .access import PRINCIPAL, Principal


def service_of(request: Request) -> Service:
    return request.app.state.service


def principal_of(request: Request) -> Principal:
    return request.scope[PRINCIPAL]


def readable(request: Request) -> Callable[[str], bool]:
    """Whether the caller may read a product, by name: the filter of every listing."""
    principal, owner_of = principal_of(request), service_of(request).owner_of
    return lambda name: principal.may_read(name, owner_of(name))


def check_read(request: Request, ref: str) -> None:
    """The caller may invoke and read the product ``ref`` names: set lookups on the in-memory catalog."""
    name, _ = parse_ref(ref)
    principal_of(request).check_read(name, service_of(request).owner_of(name))


def run_status(run: Run) -> int:
    """A final run's HTTP status: 200 succeeded, 504 timed out, 500 failed."""
    if run.status == SUCCEEDED:
        return 200
    return 504 if run.status == TIMED_OUT else 500


def run_response(run: Run) -> JSONResponse:
    return JSONResponse(run.to_json(), status_code=run_status(run))


async def readable_run(request: Request) -> Run:
    """The run the path names, if the caller may read its product."""
    run = await service_of(request).get_run(request.path_params["run_id"])
    principal_of(request).check_read(run.product, service_of(request).owner_of(run.product))
    return run
