"""HTTP answers alone, in this process: the app `nbmesh serve` builds, through httpx.ASGITransport.

Statuses and error bodies of bad requests (unknown routes and names, wrong methods, bad names,
versions, topics, limits and bodies); nothing here runs product code, so no server process is needed.
"""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from tests.conftest import JSON, error_of, make_notebook, unique

pytestmark = pytest.mark.asyncio(loop_scope="module")

SIMPLE = [("parameters", "x: int = 3"), ("output", "{'y': x * 2}")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(asgi: httpx.AsyncClient) -> str:
    name = unique("shape")
    answer = await asgi.put(f"/api/products/{name}", json=make_notebook(SIMPLE))
    assert answer.status_code == 201, answer.text
    return name


async def test_unknown_runs_products_and_routes_are_404(asgi):
    error_of(await asgi.get("/api/runs/" + "0" * 32), 404)
    error_of(await asgi.get("/api/runs/../../etc/passwd"), 404)
    error_of(await asgi.get("/api/runs/not-an-id/notebook"), 404)
    assert error_of(await asgi.get("/api/nothing-here"), 404)["error"] == "No route for GET /api/nothing-here."
    error_of(await asgi.post("/api/products/no-such-product/invoke", json={}), 404)
    error_of(await asgi.get("/api/products/never-was/runs"), 404)


async def test_a_method_a_route_does_not_take_is_405(asgi, product):
    body = error_of(await asgi.post(f"/api/products/{product}", json={}), 405)
    assert body["error"] == f"Method POST is not allowed on /api/products/{product}."
    error_of(await asgi.delete("/api/lineage", headers=JSON), 405)


async def test_publish_name_mismatch_bad_name_and_not_json(asgi):
    body = error_of(await asgi.put("/api/products/right-name", json=make_notebook(SIMPLE, "other-name")), 422)
    assert any("published as" in d["message"] for d in body["details"])
    error_of(await asgi.put("/api/products/Bad_Name", json=make_notebook(SIMPLE)), 400)
    error_of(await asgi.put(f"/api/products/{unique('x')}", content=b"{oops", headers=JSON), 422)


async def test_names_versions_topics_and_limits_are_ascii_and_whole(asgi, product):
    for ref in (f"{product}@\u00b2", f"{product}@\u0661", f"{product}@1%0A", f"{product}%0A", f"{product}%00", "p\u0661"):
        error_of(await asgi.get(f"/api/products/{ref}"), 400)
    error_of(await asgi.post(f"/api/products/{product}@\u00b2/invoke", json={}), 400)
    for limit in ("x", "\u0661", "\u00b2", "1\n", "+5", "1" * 30):
        body = error_of(await asgi.get(f"/api/products/{product}/runs", params={"limit": limit}), 400)
        assert "ASCII digits" in body["error"]
    assert (await asgi.get(f"/api/products/{product}/runs", params={"limit": "3"})).status_code == 200
    error_of(await asgi.get(f"/api/runs/{'a' * 32}%0A"), 404)
    error_of(await asgi.post("/api/events/orders%0A", json={}), 400)
    long = error_of(await asgi.get(f"/api/products/{'a' * 10000}"), 400)
    assert len(long["error"]) < 300


async def test_event_requests_are_validated(asgi):
    error_of(await asgi.post("/api/events/Not A Topic", json={}), 400)
    too_big = await asgi.post(f"/api/events/{unique('big')}", content=b'{"x": "' + b"a" * (1024 * 1024) + b'"}', headers=JSON)
    error_of(too_big, 413)
    error_of(await asgi.post(f"/api/events/{unique('list')}", json=[1, 2]), 422)
    nobody = await asgi.post(f"/api/events/{unique('nobody.listens')}", json={"a": 1})
    assert nobody.status_code == 202 and nobody.json()["runs"] == []
