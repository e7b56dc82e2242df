"""docs/reference/http-api.md "Auth", "Body limits", on a real server: the bearer token on every route, body limits, the loopback
rule, and schemathesis fuzzing every operation of the server's own /openapi.json."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kernel_runtime.http.routes import ROUTES
from tests.conftest import Runtime, cli, free_port, make_notebook, publish, unique

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ECHO = [("parameters", 'x: int = 3\nratio: float = 0.5\nlabel: str = "a"\nflag: bool = False\nitems: list = []\nopts: dict = {}'),
        ("output", "{'x': x, 'ratio': ratio, 'label': label, 'flag': flag, 'items': items, 'opts': opts}")]
FAILING = [("parameters", "n: int = 1"), ("output", "1 / 0")]


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A runtime that requires the token, with two products: one that succeeds, one that always fails."""
    rt = Runtime(store=str(tmp_path_factory.mktemp("secured")), port=free_port(), args=["--pool-size", "2", "--token", TOKEN]).start()
    with rt.client(headers=AUTH) as http:
        for name, cells in (("echo", ECHO), ("always-fails", FAILING)):
            publish(http, cells, name)
        run = http.post("/api/products/echo/invoke", json={"x": 1}).json()
    rt.run_id = run["run_id"]
    yield rt
    rt.stop()


def _requests(run_id: str) -> list[tuple[str, str, str, dict | None, int]]:
    """One request per route of the API: method, route, path, body, and the answer the right token gets."""
    return [
        ("GET", "/api/products", "/api/products", None, 200),
        ("GET", "/api/products/{name}", "/api/products/echo", None, 200),
        ("PUT", "/api/products/{name}", "/api/products/echo2", make_notebook(ECHO), 201),
        ("DELETE", "/api/products/{name}", "/api/products/echo2", None, 204),
        ("POST", "/api/products/{name}/invoke", "/api/products/echo/invoke", {"x": 2}, 200),
        ("POST", "/api/products/{name}/runs", "/api/products/echo/runs", {"x": 3}, 202),
        ("GET", "/api/products/{name}/runs", "/api/products/echo/runs", None, 200),
        ("GET", "/api/products/{name}/notebook", "/api/products/echo/notebook", None, 200),
        ("GET", "/api/runs/{run_id}", f"/api/runs/{run_id}", None, 200),
        ("GET", "/api/runs/{run_id}/notebook", f"/api/runs/{run_id}/notebook", None, 200),
        ("GET", "/api/runs/{run_id}/result", f"/api/runs/{run_id}/result", None, 200),
        ("GET", "/api/products/{name}/result", "/api/products/echo/result?x=4", None, 200),
        ("GET", "/api/products/{name}/contract", "/api/products/echo/contract", None, 200),
        ("POST", "/api/events/{topic}", "/api/events/some.topic", {"a": 1}, 202),
        ("GET", "/api/lineage", "/api/lineage", None, 200),
        ("GET", "/openapi.json", "/openapi.json", None, 200),
        ("GET", "/metrics", "/metrics", None, 200),
    ]


def test_auth_cases_cover_every_route(secured):
    covered = {(method, route) for method, route, *_ in _requests(secured.run_id)}
    routes = {(m, r.path) for r in ROUTES for m in r.methods if m != "HEAD" and r.path != "/healthz"}
    assert routes <= covered, f"routes without an auth test: {routes - covered}"


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Bearer {TOKEN}x", "Basic czNjcmV0LXRva2Vu", TOKEN])
def test_every_route_refuses_a_missing_or_wrong_token(secured, header):
    headers = {"Authorization": header} if header else {}
    with secured.client(headers=headers) as http:
        for method, _, path, body, _ in _requests(secured.run_id):
            r = http.request(method, path, json=body)
            assert r.status_code == 401, (method, path, r.status_code)
            assert "bearer token" in r.json()["error"]
        assert http.get("/healthz").status_code == 200


def test_every_route_answers_the_right_token(secured):
    with secured.client(headers=AUTH) as http:
        for method, _, path, body, status in _requests(secured.run_id):
            r = http.request(method, path, json=body)
            assert r.status_code == status, (method, path, r.text)


def test_python_client_and_cli_send_the_token(secured):
    from kernel_runtime import Client

    with Client(url=secured.url, token=TOKEN) as client:
        assert client.invoke("echo", x=7)["x"] == 7
    ok = cli("invoke", "echo", "-p", "x", "8", env={"NBMESH_URL": secured.url, "NBMESH_TOKEN": TOKEN})
    assert ok.returncode == 0 and '"x": 8' in ok.stdout, ok.stderr
    refused = cli("list", env={"NBMESH_URL": secured.url, "NBMESH_TOKEN": "wrong"})
    assert refused.returncode != 0 and "bearer token" in refused.stderr


def test_non_loopback_host_without_token_refuses_to_start():
    proc = cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), env={"NBMESH_TOKEN": None}, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "without a token" in lines[0]


def test_bodies_over_their_limits_are_413(secured):
    with secured.client(headers=AUTH) as http:
        big_notebook = make_notebook([("output", "1"), ("md", "x" * (16 * 1024 * 1024))])
        r = http.put(f"/api/products/{unique('big')}", json=big_notebook)
        assert r.status_code == 413 and "limit" in r.json()["error"]
        big_params = {"label": "x" * (1024 * 1024)}
        assert http.post("/api/products/echo/invoke", json=big_params).status_code == 413
        assert http.post("/api/events/some.topic", json=big_params).status_code == 413

        def chunks():  # no Content-Length: the limit holds while streaming too
            for _ in range(20):
                yield b" " * 65536

        r = http.post("/api/products/echo/invoke", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert http.post("/api/products/echo/invoke", json={"x": 1}).status_code == 200


def _server_errors(response, case) -> None:
    """No 5xx, except the documented 500 of a run that failed, which carries its run object."""
    if response.status_code >= 500:
        body = response.json()
        assert response.status_code == 500 and body.get("status") == "failed" and body["error"]["ename"], (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )


@pytest.mark.slow
def test_schemathesis_fuzzes_the_servers_own_openapi(secured, request):
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{secured.url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    fixed = {(m, r.path) for r in ROUTES for m in r.methods if m != "HEAD" and r.path != "/openapi.json"}
    # Every route (schemathesis skips /openapi.json itself) plus one typed invoke per product: echo, always-fails.
    assert len(operations) == len(fixed) + 2
    cases, statuses = 0, {}
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=25, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                nonlocal cases
                cases += 1
                response = case.call(base_url=secured.url, headers=AUTH, timeout=60)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                _server_errors(response, case)
                if mode is GenerationMode.POSITIVE:
                    case.validate_response(response, checks=checks)

            try:
                fuzz()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no parameters, no body)
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(
        f"schemathesis: {cases} generated cases over {len(operations)} operations, no undocumented 5xx; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    with secured.client(headers=AUTH) as http:
        assert http.post("/api/products/echo/invoke", json={"x": 5}).json()["result"]["x"] == 5
