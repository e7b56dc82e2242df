"""Error bodies carry their class as ``type``; the client raises that class from it, not from the status."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request

from kernel_runtime import errors
from kernel_runtime.client import _BY_STATUS, error_of
from kernel_runtime.http import app
from kernel_runtime.model.run_errors import RUNTIME_ENAMES, RunError


def answer(exc: errors.NbmeshError) -> tuple[int, dict]:
    """What the runtime sends for ``exc``: its status and its body as JSON text read back."""
    response = app.error_response(exc)
    return response.status_code, json.loads(response.body)


@pytest.mark.parametrize("cls", sorted(errors.BODY_TYPES.values(), key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_every_error_round_trips_through_its_body(cls):
    status, body = answer(cls("Something is wrong.", [{"message": "one detail"}]))
    assert body == {"error": "Something is wrong.", "details": [{"message": "one detail"}], "type": cls.__name__}
    raised = error_of(status, body, "/api/x")
    assert type(raised) is cls
    assert (raised.message, raised.details) == ("Something is wrong.", [{"message": "one detail"}])


def test_every_class_of_the_status_table_has_a_body_type():
    assert set(app.STATUS) <= set(errors.BODY_TYPES.values())
    assert "RunFailed" not in errors.BODY_TYPES  # the client's own


def test_the_three_kinds_of_503_stay_apart():
    raised = {type(error_of(*answer(cls("x")), "/p")) for cls in (errors.QueueFull, errors.KernelUnavailable, errors.StoreUnavailable)}
    assert raised == {errors.QueueFull, errors.KernelUnavailable, errors.StoreUnavailable}
    assert isinstance(error_of(*answer(errors.KernelUnavailable("x")), "/p"), errors.KernelError)


@pytest.mark.parametrize("body", [{"error": "down"}, {"error": "down", "type": "NoSuchType"}, {"error": "down", "type": ["QueueFull"]}])
def test_a_body_without_a_known_type_falls_back_to_its_status(body):
    assert type(error_of(404, body, "/p")) is errors.NotFound
    # A 503 could be a full queue, no kernel or no store: without a type it is none of them in particular.
    assert type(error_of(503, body, "/p")) is errors.NbmeshError
    assert error_of(502, {}, "/api/x").message == "HTTP 502 from /api/x"


@pytest.mark.parametrize("status, cls", sorted(_BY_STATUS.items()))
def test_the_status_fallback_agrees_with_the_one_status_table(status, cls):
    assert app.STATUS[cls] == status
    # Only statuses one class answers with (its subclasses aside) are guessed from.
    others = [c for c, s in app.STATUS.items() if s == status and not issubclass(c, cls)]
    assert others == []


def scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}


def test_the_405_and_500_answers_carry_a_type_too():
    request = Request(scope("PATCH", "/api/products"))
    not_allowed = asyncio.run(app._method_not_allowed(request, Exception()))
    assert not_allowed.status_code == 405
    assert json.loads(not_allowed.body) == {"error": "Method PATCH is not allowed on /api/products.", "type": "MethodNotAllowed"}
    bug = asyncio.run(app._unexpected(request, KeyError("x")))
    assert bug.status_code == 500
    assert json.loads(bug.body) == {"error": "The runtime failed unexpectedly: KeyError: 'x'", "type": "InternalError"}


def test_every_error_a_run_can_carry_has_an_ename_of_the_runtime():
    for cls in errors.BODY_TYPES.values():
        assert RunError.refused(cls("x")).ename in RUNTIME_ENAMES


def test_an_error_prints_each_detail_on_its_own_line():
    error = errors.InvalidParameters(
        "Invalid parameters for product 'p'.",
        [{"parameter": "n", "message": "Parameter 'n' must be int, got str \"a\"."}, {"parameter": "x", "message": "Unknown parameter 'x'."}],
    )
    assert str(error).splitlines() == [
        "Invalid parameters for product 'p'.",
        "  - Parameter 'n' must be int, got str \"a\".",
        "  - Unknown parameter 'x'.",
    ]
    assert str(errors.NotFound("No product named 'p' is published.")) == "No product named 'p' is published."
