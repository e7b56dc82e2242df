"""The live API answers as its own /openapi.json says (docs/reference): every response of every route,
success and error, validated with jsonschema against the document's schema for its path, method and
status; every route of ``ROUTES`` has cases for every status it documents. Also: the records are closed
(a field the code adds without declaring it is caught), and the extension's TypeScript types are the
ones generated from the document."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from kernel_runtime.http.routes import ROUTES
from tests.conftest import ROOT, Runtime, free_port, make_notebook, wait_for
from tests.test_access import write_access

TOKEN = "conformance-admin"
TOKENS = {"outsider": "token-of-outsider"}
EVIL = {"Origin": "http://evil.example"}
TEXT = {"Content-Type": "text/plain"}
JSON_TYPE = {"Content-Type": "application/json"}
MIB = 1024 * 1024
DOC = "urn:nbmesh:openapi"

ECHO = [("parameters", "x: int = 3  # how many\nlabel: str = 'a'"), ("output", "{'x': x, 'label': label}")]
FAILS = [("parameters", "n: int = 1"), ("output", "n / 0")]
SLOW = [("parameters", "seconds: float = 30.0"), ("", "import time\ntime.sleep(seconds)"), ("output", "seconds")]
SINK = [("parameters", "n: int = 0"), ("output", "n")]
# Statuses a route documents that no test here can bring about on a healthy runtime.
NOT_PROVOKED = {
    ("PUT", "/api/products/{name}"): {"409", "503"},  # a publish race between replicas; an unavailable store
    ("POST", "/api/products/{name}/invoke"): {"503"},  # kernels that cannot start
    ("GET", "/api/products/{name}/result"): {"503"},
}


class Conformance:
    """Checks each answer against the document and records which status of which route was seen."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry = Registry().with_resource(DOC, DRAFT202012.create_resource(doc))
        self.seen: dict[tuple[str, str], set[str]] = defaultdict(set)

    def errors(self, value: Any, *pointer: str) -> list:
        """What is wrong with ``value`` by the schema at ``pointer`` in the document, its $refs resolved."""
        ref = DOC + "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in pointer)
        return sorted(Draft202012Validator({"$ref": ref}, registry=self.registry).iter_errors(value), key=str)

    def validate(self, value: Any, *pointer: str) -> None:
        errors = self.errors(value, *pointer)
        assert not errors, f"{'/'.join(pointer)}: {errors[0].message} at {list(errors[0].absolute_path)}"

    def check(self, response: httpx.Response) -> None:
        method, path, status = response.request.method, response.request.url.path, str(response.status_code)
        route = next((r for r in ROUTES if r.path_regex.match(path)), None)
        if route is None or method not in route.methods and not any(
            method in r.methods for r in ROUTES if r.path == route.path
        ):
            # No such path (404) or method (405): the error body, which the document names Error.
            assert status in ("404", "405"), (method, path, status)
            self.validate(response.json(), "components", "schemas", "Error")
            return
        # The route's path, and the product's own typed invoke path when the document has one.
        for documented in dict.fromkeys([route.path, path]):
            if documented not in self.doc["paths"]:
                continue
            answers = self.doc["paths"][documented][method.lower()]["responses"]
            assert status in answers, f"{method} {documented} answered {status}, which the document does not list: {response.text[:300]}"
            answer = answers[status]
            if "content" not in answer:
                assert response.content == b"", f"{method} {path} {status} has a body the document does not declare"
                continue
            media = response.headers["content-type"].split(";")[0]
            assert media in answer["content"], f"{method} {path} {status} answered {media}"
            body = response.json() if media == "application/json" else response.text
            self.validate(body, "paths", documented, method.lower(), "responses", status, "content", media, "schema")
        self.seen[(method, route.path)].add(status)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A runtime with --token and an access file (an outsider without rights), a one-run queue, and products
    that succeed, fail, time out, subscribe to events and to a product run (and to one not published)."""
    folder = tmp_path_factory.mktemp("conformance")
    access = write_access(folder / "access.json", {"outsider": {}}, TOKENS)
    args = ["--pool-size", "2", "--token", TOKEN, "--access", access, "--queue-size", "1"]
    rt = Runtime(store=str(folder / "store"), port=free_port(), args=args).start()
    with rt.client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for name, cells, meta in (
            ("echo", ECHO, {"title": "Echo", "output_schema": {"type": "object"}}),
            ("fails", FAILS, {}),
            ("slow", SLOW, {"timeout": 1}),
            ("hold", SLOW, {}),
            ("ghost", SINK, {}),
            ("sink", SINK, {"triggers": [{"event": "orders.new", "parameters": {"n": "$event.n"}},
                                         {"event": "product.ghost.succeeded"}, {"event": "product.phantom.failed"}]}),
        ):
            assert http.put(f"/api/products/{name}", json=make_notebook(cells, **meta)).status_code == 201
    yield rt
    rt.stop()


def clients(secured: Runtime, open_runtime: Runtime) -> dict[str, httpx.Client]:
    return {
        "admin": secured.client(headers={"Authorization": f"Bearer {TOKEN}"}),
        "anonymous": secured.client(),
        "outsider": secured.client(headers={"Authorization": f"Bearer {TOKENS['outsider']}"}),
        "open": open_runtime.client(),
        "evil": open_runtime.client(headers=EVIL),
    }


def sample(template: str, run_id: str) -> str:
    return template.replace("{name}", "echo").replace("{run_id}", run_id).replace("{topic}", "orders.new")


def test_every_response_of_every_route_is_as_documented(secured, runtime):
    http = clients(secured, runtime)
    try:
        doc = http["admin"].get("/openapi.json").json()
        conformance = Conformance(doc)

        def call(who: str, method: str, path: str, status: int, **kw: Any) -> httpx.Response:
            response = http[who].request(method, path, **kw)
            assert response.status_code == status, f"{who} {method} {path}: {response.status_code} {response.text[:300]}"
            conformance.check(response)
            return response

        ok = call("admin", "POST", "/api/products/echo/invoke", 200, json={"x": 1}).json()
        run = ok["run_id"]
        routes = sorted({(m, r.path) for r in ROUTES for m in r.methods - {"HEAD"}})
        for method, template in routes:
            call("evil", method, sample(template, run), 403)  # a web page elsewhere, on the open default
            if template != "/healthz":
                call("anonymous", method, sample(template, run), 401)
            if "415" in doc["paths"][template][method.lower()]["responses"]:
                call("open", method, sample(template, run), 415, content="{}", headers=TEXT)

        # Successes, and the runs' three final answers.
        call("admin", "GET", "/healthz", 200)
        call("admin", "GET", "/api/products", 200)
        call("admin", "GET", "/api/products/echo", 200)
        call("admin", "GET", "/api/products/echo@1", 200)
        call("admin", "GET", "/api/products/sink", 200)
        call("admin", "GET", "/api/products/ghost", 200)
        scratch = make_notebook(SINK)
        call("admin", "PUT", "/api/products/scratch", 201, json=scratch)
        call("admin", "PUT", "/api/products/scratch", 200, json=scratch)  # unchanged: no new version
        call("admin", "DELETE", "/api/products/scratch", 204, headers=JSON_TYPE)
        failed = call("admin", "POST", "/api/products/fails/invoke", 500, json={}).json()
        assert failed["status"] == "failed" and failed["error"]["ename"] == "ZeroDivisionError"
        assert call("admin", "POST", "/api/products/slow/invoke", 504, json={}).json()["status"] == "timed_out"
        call("admin", "POST", "/api/products/echo/invoke", 200, content=b"", headers=JSON_TYPE)
        queued = call("admin", "POST", "/api/products/echo/runs", 202, json={"x": 2}).json()["run_id"]
        wait_for(lambda: call("admin", "GET", f"/api/runs/{queued}", 200).json()["status"] == "succeeded", what="a background run")
        event = call("admin", "POST", "/api/events/orders.new", 202, json={"n": 5}).json()
        assert len(event["runs"]) == 1
        triggered = wait_for(lambda: (r := call("admin", "GET", f"/api/runs/{event['runs'][0]}", 200).json())["status"] == "succeeded" and r)
        assert triggered["trigger"] == {"kind": "event", "topic": "orders.new"} and triggered["result"] == 5
        call("admin", "POST", "/api/events/nobody.listens", 202, json={})
        call("admin", "GET", "/api/products/echo/runs", 200, params={"limit": 5})
        call("admin", "GET", "/api/products/fails/runs", 200)
        call("admin", "GET", "/api/products/echo/notebook", 200)
        call("admin", "GET", f"/api/runs/{run}", 200)
        call("admin", "GET", f"/api/runs/{failed['run_id']}", 200)
        call("admin", "GET", f"/api/runs/{run}/notebook", 200)
        call("admin", "GET", f"/api/runs/{run}/result", 200)
        call("admin", "GET", "/api/products/echo/result", 200, params={"x": 4, "label": "b"})
        assert call("admin", "GET", "/api/products/fails/result", 500).json()["status"] == "failed"
        assert call("admin", "GET", "/api/products/slow/result", 504).json()["status"] == "timed_out"
        for path in ("/api/products/echo/result?format=csv", f"/api/runs/{run}/result?format=arrow", "/api/products/echo/invoke?format=xml"):
            call("admin", "POST" if path.endswith("xml") else "GET", path, 406, **({"json": {}} if path.endswith("xml") else {}))
        call("admin", "GET", "/api/products/echo/result", 422, params={"x": "three"})
        assert "kind: DataContract" in call("admin", "GET", "/api/products/echo/contract", 200).text
        lineage = call("admin", "GET", "/api/lineage", 200).json()
        assert {"name": "phantom", "published": False} in lineage["nodes"]
        call("admin", "GET", "/openapi.json", 200)
        call("admin", "GET", "/metrics", 200)
        call("outsider", "GET", "/api/products", 200)

        # Refusals: malformed (400), no right (403), missing (404), too large (413), invalid (422).
        for method, path, kw in (
            ("GET", "/api/products/Bad_Name", {}),
            ("PUT", "/api/products/Bad_Name", {"json": make_notebook(SINK)}),
            ("DELETE", "/api/products/Bad_Name", {"headers": JSON_TYPE}),
            ("POST", "/api/products/echo@0/invoke", {"json": {}}),
            ("POST", "/api/products/echo/invoke", {"content": b"{not json", "headers": JSON_TYPE}),
            ("POST", "/api/products/Bad_Name/runs", {"json": {}}),
            ("GET", "/api/products/echo/runs", {"params": {"limit": "0"}}),
            ("GET", "/api/products/Bad_Name/notebook", {}),
            ("GET", "/api/products/Bad_Name/result", {}),
            ("GET", "/api/products/Bad_Name/contract", {}),
            ("POST", "/api/events/Bad.Topic", {"json": {}}),
        ):
            call("admin", method, path, 400, **kw)
        for method, path in (("GET", "/api/products/echo"), ("PUT", "/api/products/echo"), ("DELETE", "/api/products/echo"),
                             ("POST", "/api/products/echo/invoke"), ("POST", "/api/products/echo/runs"),
                             ("GET", "/api/products/echo/runs"), ("GET", "/api/products/echo/notebook"),
                             ("GET", f"/api/runs/{run}"), ("GET", f"/api/runs/{run}/notebook"), ("POST", "/api/events/orders.new"),
                             ("GET", "/api/products/echo/result"), ("GET", f"/api/runs/{run}/result"),
                             ("GET", "/api/products/echo/contract")):
            call("outsider", method, path, 403, json={} if method in ("POST", "PUT") else None)
        missing = "0" * 32
        for method, path in (("GET", "/api/products/nope"), ("DELETE", "/api/products/nope"), ("POST", "/api/products/nope/invoke"),
                             ("POST", "/api/products/nope/runs"), ("GET", "/api/products/nope/runs"), ("GET", "/api/products/echo@9/notebook"),
                             ("GET", f"/api/runs/{missing}"), ("GET", f"/api/runs/{missing}/notebook"), ("GET", "/api/no/such/route"),
                             ("GET", "/api/products/nope/result"), ("GET", f"/api/runs/{missing}/result"),
                             ("GET", "/api/products/nope/contract")):
            call("admin", method, path, 404, **({"headers": JSON_TYPE} if method == "DELETE" else {}))
        call("admin", "PATCH", "/api/products/echo", 405, json={})
        call("admin", "PUT", "/api/products/big", 413, json=make_notebook([("output", "1"), ("md", "x" * (16 * MIB))]))
        for path in ("/api/products/echo/invoke", "/api/products/echo/runs", "/api/events/orders.new"):
            call("admin", "POST", path, 413, json={"label": "x" * MIB})
        call("admin", "PUT", "/api/products/broken", 422, json=make_notebook([("", "1")]))
        call("admin", "POST", "/api/products/echo/invoke", 422, json={"x": "three"})
        call("admin", "POST", "/api/products/echo/runs", 422, json={"nope": 1})
        call("admin", "POST", "/api/events/orders.new", 422, content=b'{"n": NaN}', headers=JSON_TYPE)

        # The one-run queue full: a run holds the only worker, another waits, a third is refused (503).
        holding = call("admin", "POST", "/api/products/hold/runs", 202, json={"seconds": 5}).json()["run_id"]
        wait_for(lambda: call("admin", "GET", f"/api/runs/{holding}", 200).json()["status"] == "running", what="the worker to take the run")
        call("admin", "POST", "/api/products/echo/runs", 202, json={})
        call("admin", "POST", "/api/products/echo/runs", 503, json={})
        call("admin", "POST", "/api/events/orders.new", 503, json={"n": 1})
    finally:
        for client in http.values():
            client.close()

    unprovoked = {}
    for method, template in routes:
        documented = set(doc["paths"][template][method.lower()]["responses"]) - {"default"}
        left = documented - conformance.seen[(method, template)] - NOT_PROVOKED.get((method, template), set())
        if left:
            unprovoked[(method, template)] = sorted(left)
    assert not unprovoked, f"documented answers no case brings about: {unprovoked}"


@pytest.mark.parametrize("name", ["Run", "Product", "Error", "Health", "Lineage", "RunError", "Parameter"])
def test_every_record_schema_is_closed(name):
    """A field the code adds without declaring it in its record type fails validation (additionalProperties)."""
    from kernel_runtime.http.openapi import build

    doc = build(None)
    schema = doc["components"]["schemas"][name]
    assert schema["additionalProperties"] is False
    errors = Conformance(doc).errors({"undeclared": 1}, "components", "schemas", name)
    assert "additionalProperties" in {error.validator for error in errors}


def test_the_document_has_exactly_the_routes_of_the_route_table():
    from kernel_runtime.http.openapi import build

    documented = {(m.upper(), path) for path, item in build(None)["paths"].items() for m in item if m != "parameters"}
    assert documented == {(m, r.path) for r in ROUTES for m in r.methods - {"HEAD"}}


def test_the_extensions_typescript_types_are_generated_from_the_document():
    """extension/src/openapi.ts is what ``jlpm build:types`` writes from the document: regenerate it and compare."""
    generator = ROOT / "extension" / "node_modules" / ".bin" / "openapi-typescript"
    assert generator.exists(), "run `jlpm install` in extension/ first (scripts/test.sh does)"
    document = subprocess.run([sys.executable, "-m", "kernel_runtime.http.openapi"], cwd=ROOT, check=True, capture_output=True).stdout
    assert set(json.loads(document)["paths"]) == {r.path for r in ROUTES}
    types = subprocess.run([str(generator)], input=document, cwd=ROOT / "extension", check=True, capture_output=True).stdout
    committed = (ROOT / "extension" / "src" / "openapi.ts").read_bytes()
    assert types == committed, "extension/src/openapi.ts is stale: run `jlpm build:types` in extension/"
