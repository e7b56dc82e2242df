"""docs/security.md, "Who may do what", on real runtimes: principals and their rights on every route (401 vs 403),
filtered listings, no takeover of another owner's product, emit rights, `nbmesh token`, a bad
access file, and the cross-site rules of the no-token loopback default."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable

import httpx
import pytest

from kernel_runtime.http.routes import ROUTES
from tests.conftest import ROOT, Runtime, cli, free_port, make_notebook, publish, unique

TOKEN = "admin-by-flag"
CELLS = [("parameters", "n: int = 1"), ("output", "{'n': n}")]
# name -> (its rights in the access file, its token); "token-admin" is --token, "nobody"/"unknown" have none.
PRINCIPALS: dict[str, dict[str, Any]] = {
    "consumer": {"invoke": ["alpha"]},
    "by-owner": {"invoke": ["owner:team-a"]},
    "publisher-b": {"publish": ["team-b"]},
    "publisher-a": {"publish": ["team-a"]},
    "emitter": {"emit": ["sales.*", "orders.updated"]},
    "file-admin": {"admin": True},
}
TOKENS = {name: f"token-of-{name}" for name in PRINCIPALS} | {"token-admin": TOKEN}
EVERYONE = set(TOKENS)
READS_ALPHA = {"consumer", "by-owner", "publisher-a", "file-admin", "token-admin"}
PUBLISHES_A = {"publisher-a", "file-admin", "token-admin"}
EMITS_SALES = {"emitter", "file-admin", "token-admin"}
FIXED = {"alpha", "beta", "gamma", "sink"}


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def owned(owner: str | None, **meta: Any) -> dict[str, Any]:
    return make_notebook(CELLS, **({"owner": owner} if owner else {}), **meta)


def write_access(path, principals: dict[str, dict[str, Any]], tokens: dict[str, str]) -> str:
    entries = [
        {"name": name, "token_sha256": hashlib.sha256(tokens[name].encode()).hexdigest(), **rights}
        for name, rights in principals.items()
    ]
    path.write_text(json.dumps({"principals": entries}))
    return str(path)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """--token plus an access file; alpha, beta (team-a), gamma, sink (team-b, runs on beta's runs)."""
    folder = tmp_path_factory.mktemp("guarded")
    access = write_access(folder / "access.json", PRINCIPALS, TOKENS)
    rt = Runtime(store=str(folder / "store"), port=free_port(), args=["--pool-size", "2", "--token", TOKEN, "--access", access]).start()
    with rt.client(headers=auth("token-admin")) as http:
        for name, owner, meta in (
            ("alpha", "team-a", {}),
            ("beta", "team-a", {}),
            ("gamma", "team-b", {}),
            ("sink", "team-b", {"triggers": [{"event": "product.beta.succeeded"}]}),
        ):
            publish(http, owned(owner, **meta), name)
        rt.run_id = http.post("/api/products/alpha/invoke", json={"n": 2}).json()["run_id"]
    yield rt
    rt.stop()


def _admin(rt: Runtime) -> httpx.Client:
    return rt.client(headers=auth("token-admin"))


def _scratch(rt: Runtime) -> str:
    """A product of team-a, published by the admin, for a caller to try to unpublish."""
    name = unique("scratch")
    with _admin(rt) as http:
        return publish(http, owned("team-a"), name)


def _cases(rt: Runtime) -> dict[tuple[str, str], tuple[Callable[[], str], Any, set[str], int]]:
    """Per route: the path to call (made fresh per call), its body, who may call it, and their answer."""
    run = rt.run_id
    return {
        ("GET", "/api/products"): (lambda: "/api/products", None, EVERYONE, 200),
        ("GET", "/api/products/{name}"): (lambda: "/api/products/alpha", None, READS_ALPHA, 200),
        ("PUT", "/api/products/{name}"): (lambda: f"/api/products/{unique('new')}", owned("team-a"), PUBLISHES_A, 201),
        ("DELETE", "/api/products/{name}"): (lambda: f"/api/products/{_scratch(rt)}", None, PUBLISHES_A, 204),
        ("POST", "/api/products/{name}/invoke"): (lambda: "/api/products/alpha/invoke", {"n": 3}, READS_ALPHA, 200),
        ("POST", "/api/products/{name}/runs"): (lambda: "/api/products/alpha/runs", {"n": 4}, READS_ALPHA, 202),
        ("GET", "/api/products/{name}/runs"): (lambda: "/api/products/alpha/runs", None, READS_ALPHA, 200),
        ("GET", "/api/products/{name}/notebook"): (lambda: "/api/products/alpha/notebook", None, READS_ALPHA, 200),
        ("GET", "/api/runs/{run_id}"): (lambda: f"/api/runs/{run}", None, READS_ALPHA, 200),
        ("GET", "/api/runs/{run_id}/notebook"): (lambda: f"/api/runs/{run}/notebook", None, READS_ALPHA, 200),
        ("GET", "/api/runs/{run_id}/result"): (lambda: f"/api/runs/{run}/result", None, READS_ALPHA, 200),
        ("GET", "/api/products/{name}/result"): (lambda: "/api/products/alpha/result?n=5", None, READS_ALPHA, 200),
        ("GET", "/api/products/{name}/contract"): (lambda: "/api/products/alpha/contract", None, READS_ALPHA, 200),
        ("POST", "/api/events/{topic}"): (lambda: "/api/events/sales.orders", {"a": 1}, EMITS_SALES, 202),
        ("GET", "/api/lineage"): (lambda: "/api/lineage", None, EVERYONE, 200),
        ("GET", "/openapi.json"): (lambda: "/openapi.json", None, EVERYONE, 200),
        ("GET", "/metrics"): (lambda: "/metrics", None, EVERYONE, 200),
    }


def _alpha_runs(rt: Runtime) -> int:
    with _admin(rt) as http:
        return len(http.get("/api/products/alpha/runs", params={"limit": 1000}).json()["runs"])


def test_every_route_has_an_access_case(guarded):
    routes = {(m, r.path) for r in ROUTES for m in r.methods if m != "HEAD" and r.path != "/healthz"}
    missing = routes - set(_cases(guarded))
    assert not missing, f"routes without an access case: {missing}"


@pytest.mark.parametrize("header", [None, "Bearer not-a-known-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}"])
def test_no_or_unknown_token_is_401_on_every_route(guarded, header):
    before = _alpha_runs(guarded)
    with guarded.client(headers={"Authorization": header} if header else {}) as http:
        for (method, route), (path, body, _, _) in _cases(guarded).items():
            r = http.request(method, path(), json=body)
            assert r.status_code == 401, (method, route, r.status_code, r.text)
            assert "bearer token" in r.json()["error"]
        assert http.get("/healthz").status_code == 200
    assert _alpha_runs(guarded) == before


@pytest.mark.parametrize("who", sorted(TOKENS))
def test_each_principal_gets_exactly_its_rights_on_every_route(guarded, who):
    before = _alpha_runs(guarded)
    with guarded.client(headers=auth(who)) as http:
        for (method, route), (path, body, allowed, status) in _cases(guarded).items():
            target = path()
            r = http.request(method, target, json=body)
            if who in allowed:
                assert r.status_code == status, (who, method, route, r.text)
                continue
            assert r.status_code == 403, (who, method, route, r.status_code, r.text)
            assert who in r.json()["error"], r.json()
            with _admin(guarded) as admin:
                if method == "PUT":  # refused: nothing was stored
                    assert admin.get(target).status_code == 404
                if method == "DELETE":  # refused: still published
                    assert admin.get(target).status_code == 200
    if who not in READS_ALPHA:
        assert _alpha_runs(guarded) == before, "a refused invoke or submit ran the product"


def test_invoke_by_name_and_by_owner(guarded):
    with guarded.client(headers=auth("consumer")) as http:
        assert http.post("/api/products/alpha/invoke", json={"n": 5}).json()["result"] == {"n": 5}
        assert http.get("/api/products/alpha@1").status_code == 200
        assert http.get("/api/products/beta").status_code == 403
        assert http.post("/api/products/beta/invoke", json={}).status_code == 403
        # A name the caller's rights do not cover is a 403 whether or not it exists: no existence oracle.
        assert http.get("/api/products/no-such-product").status_code == 403
    with guarded.client(headers=auth("by-owner")) as http:
        assert http.post("/api/products/beta/invoke", json={"n": 6}).json()["result"] == {"n": 6}
        assert http.get("/api/products/gamma").status_code == 403
        assert http.get("/api/products/gamma/runs").status_code == 403
    with guarded.client(headers=auth("publisher-b")) as http:  # a publisher reads and invokes its own domain
        assert http.post("/api/products/gamma/invoke", json={"n": 7}).json()["result"] == {"n": 7}
    with _admin(guarded) as http:
        assert http.get("/api/products/no-such-product").status_code == 404


@pytest.mark.parametrize(
    "who, fixed, owners",
    [
        ("consumer", {"alpha"}, {"team-a"}),
        ("by-owner", {"alpha", "beta"}, {"team-a"}),
        ("publisher-a", {"alpha", "beta"}, {"team-a"}),
        ("publisher-b", {"gamma", "sink"}, {"team-b"}),
        ("emitter", set(), set()),
        ("file-admin", FIXED, {"team-a", "team-b"}),
    ],
)
def test_listings_show_only_what_the_caller_may_read(guarded, who, fixed, owners):
    with guarded.client(headers=auth(who)) as http:
        products = http.get("/api/products").json()["products"]
        names = {p["name"] for p in products}
        assert names & FIXED == fixed
        assert {p["owner"] for p in products} <= owners
        if who == "consumer":
            assert names == {"alpha"}

        graph = http.get("/api/lineage").json()
        nodes = {n["name"] for n in graph["nodes"]}
        assert nodes & FIXED == fixed
        edges = {(e["from"], e["to"]) for e in graph["edges"]}
        assert edges == ({("beta", "sink")} if {"beta", "sink"} <= fixed else set())

        paths = http.get("/openapi.json").json()["paths"]
        invocable = {p.split("/")[3] for p in paths if p.startswith("/api/products/") and "{name}" not in p}
        assert invocable & FIXED == fixed

        # /metrics too: alpha's run shows only to who may read alpha; pool state to everyone.
        text = http.get("/metrics").text
        seen = set(re.findall(r'product="([^"]+)"', text))
        assert seen <= names and ("alpha" in seen) == ("alpha" in fixed)
        assert "nbmesh_kernels{" in text

        if "beta" in fixed:  # beta's downstream product sink shows only to who may read sink
            downstream = http.get("/api/products/beta").json()["downstream"]
            assert downstream == (["sink"] if "sink" in fixed else [])


def test_no_takeover_of_another_owners_product(guarded):
    name = unique("owned-by-a")
    with _admin(guarded) as admin:
        publish(admin, owned("team-a"), name)
    with guarded.client(headers=auth("publisher-b")) as http:
        r = http.put(f"/api/products/{name}", json=owned("team-b", title="hijacked"))
        assert r.status_code == 403 and "not a product of an owner it may publish" in r.json()["error"]
        assert http.delete(f"/api/products/{name}").status_code == 403
        r = http.put(f"/api/products/{unique('new')}", json=owned("team-a"))
        assert r.status_code == 403 and "'team-a'" in r.json()["error"]
    with guarded.client(headers=auth("publisher-a")) as http:
        # Its own product, but handed to an owner it may not publish: refused too.
        assert http.put(f"/api/products/{name}", json=owned("team-b")).status_code == 403
        r = http.put(f"/api/products/{unique('ownerless')}", json=owned(None))
        assert r.status_code == 403 and "names no owner" in r.json()["error"]
    with _admin(guarded) as admin:
        product = admin.get(f"/api/products/{name}").json()
        assert product["versions"] == [1] and product["owner"] == "team-a" and product["title"] == ""
    with guarded.client(headers=auth("publisher-a")) as http:
        assert http.put(f"/api/products/{name}", json=owned("team-a", title="v2")).json()["version"] == 2


def test_emit_rights_by_topic_and_prefix(guarded):
    answers = {
        "sales.orders": 202,
        "sales.eu.daily": 202,
        "orders.updated": 202,
        "sales": 403,
        "salesforce.leads": 403,
        "orders.updated.eu": 403,
        "marketing.launch": 403,
        "product.alpha.succeeded": 403,
    }
    with guarded.client(headers=auth("emitter")) as http:
        for topic, status in answers.items():
            assert http.post(f"/api/events/{topic}", json={}).status_code == status, topic
    with guarded.client(headers=auth("consumer")) as http:
        assert http.post("/api/events/sales.orders", json={}).status_code == 403
    with _admin(guarded) as http:
        assert http.post("/api/events/marketing.launch", json={}).status_code == 202


def test_with_a_token_host_and_origin_are_not_checked(guarded):
    """A bearer token is what a web page cannot send: a runtime with principals may sit behind any name."""
    headers = {**auth("consumer"), "Host": "nbmesh.example.internal", "Origin": "http://elsewhere.example"}
    with guarded.client(headers=headers) as http:
        r = http.post("/api/products/alpha/invoke", content=b'{"n": 8}', headers={"Content-Type": "text/plain"})
        assert r.status_code == 200 and r.json()["result"] == {"n": 8}


def test_cli_sends_nbmesh_token_or_the_token_flag(guarded):
    url = {"NBMESH_URL": guarded.url}
    missing = cli("list", env={**url, "NBMESH_TOKEN": None})
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        "error: A valid bearer token is required: send 'Authorization: Bearer <token>'. Pass --token or set NBMESH_TOKEN."
    ]
    by_env = cli("list", "--json", env={**url, "NBMESH_TOKEN": TOKENS["consumer"]})
    assert [p["name"] for p in json.loads(by_env.stdout)["products"]] == ["alpha"], by_env.stderr
    by_flag = cli("list", "--json", "--token", TOKENS["publisher-b"], env={**url, "NBMESH_TOKEN": TOKENS["consumer"]})
    assert {p["name"] for p in json.loads(by_flag.stdout)["products"]} & FIXED == {"gamma", "sink"}, by_flag.stderr
    emitted = cli("emit", "sales.nobody-listens", "--token", TOKENS["emitter"], env=url)
    assert emitted.returncode == 0 and emitted.stdout == "event sales.nobody-listens: 0 run(s)\n", emitted


def test_nbmesh_token_output_is_ready_to_use(fresh_runtime, tmp_path):
    made = cli("token", "bi-dashboard")
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert len(lines) == 4 and "not secret" in lines[0] and "SECRET" in lines[2]
    principal, token = json.loads(lines[1]), lines[3]
    assert principal["name"] == "bi-dashboard"
    assert principal["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 43 and token not in lines[1]
    assert cli("token", "bi-dashboard").stdout.splitlines()[3] != token

    principal["invoke"] = ["*"]
    access = tmp_path / "access.json"
    access.write_text(json.dumps({"principals": [principal]}))
    rt = fresh_runtime("--pool-size", "1", env={"NBMESH_ACCESS": str(access), "NBMESH_TOKEN": ""})
    with rt.client() as http:
        assert http.get("/api/products").status_code == 401
        assert http.get("/api/products", headers={"Authorization": f"Bearer {token}"}).json() == {"products": []}
        # It may invoke, not publish.
        r = http.put("/api/products/p", json=owned("team-a"), headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
    listed = cli("list", "--url", rt.url, env={"NBMESH_TOKEN": token})
    assert listed.returncode == 0, listed.stderr
    refused = cli("publish", str(ROOT / "notebooks" / "weather_summary.ipynb"), "--url", rt.url, env={"NBMESH_TOKEN": token})
    assert refused.returncode != 0 and "bi-dashboard" in refused.stderr and "may not publish" in refused.stderr


@pytest.mark.parametrize(
    "content, where",
    [
        ('{"principals": [{"name": "x", "token_sha256": "abc"}]}', "principals[0].token_sha256"),
        ('{"principals": [{"name": "x", "token_sha256": "' + "a" * 64 + '", "invoke": ["Sales Summary"]}]}', "principals[0].invoke[0]"),
        ('{"principals": [{"name": "x", "token_sha256": "' + "a" * 64 + '", "publsh": ["a"]}]}', "'publsh' was unexpected"),
        ('{"principals": [', "not valid JSON"),
        (None, "Cannot read the access file"),
    ],
)
def test_a_bad_access_file_stops_serve_with_one_clear_line(tmp_path, content, where):
    path = tmp_path / "access.json"
    if content is not None:
        path.write_text(content)
    proc = cli("serve", "--port", str(free_port()), "--store", str(tmp_path / "store"), "--access", str(path))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and where in lines[0], proc.stderr


def test_a_bad_allowed_origin_stops_serve(tmp_path):
    proc = cli("serve", "--port", str(free_port()), "--store", str(tmp_path / "s"), "--allowed-origin", "localhost:8888")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "is not an origin" in lines[0]


# cross-site: the no-token loopback default -------------------------------------------------
LAB_ORIGIN = "http://localhost:8888"


@pytest.fixture(scope="module")
def open_rt(tmp_path_factory):
    env = {"NBMESH_TOKEN": "", "NBMESH_ACCESS": ""}
    rt = Runtime(
        store=str(tmp_path_factory.mktemp("open")), port=free_port(), args=["--pool-size", "2", "--allowed-origin", LAB_ORIGIN], env=env
    ).start()
    with rt.client() as http:
        publish(http, owned("team-a"), "echo")
    yield rt
    rt.stop()


def _echo_runs(rt: Runtime) -> int:
    with rt.client() as http:
        return len(http.get("/api/products/echo/runs", params={"limit": 1000}).json()["runs"])


def test_a_foreign_host_is_refused(open_rt):
    before = _echo_runs(open_rt)
    for host in ("attacker.example", f"attacker.example:{open_rt.port}", "127.0.0.1.attacker.example", "evil@127.0.0.1"):
        with open_rt.client(headers={"Host": host}) as http:
            r = http.get("/api/products")
            assert r.status_code == 403 and "not a loopback name" in r.json()["error"], host
            name = unique("rebound")
            assert http.put(f"/api/products/{name}", json=owned("team-a")).status_code == 403
            assert http.post("/api/products/echo/invoke", json={}).status_code == 403
        with open_rt.client() as http:
            assert http.get(f"/api/products/{name}").status_code == 404
    assert _echo_runs(open_rt) == before
    for host in (f"localhost:{open_rt.port}", f"127.0.0.1:{open_rt.port}", f"[::1]:{open_rt.port}", "localhost"):
        with open_rt.client(headers={"Host": host}) as http:
            assert http.get("/api/products").status_code == 200, host


def test_a_foreign_origin_is_refused(open_rt):
    before = _echo_runs(open_rt)
    for origin in ("http://attacker.example", "null", "http://localhost:9999", f"https://127.0.0.1:{open_rt.port}"):
        with open_rt.client(headers={"Origin": origin}) as http:
            r = http.post("/api/products/echo/invoke", json={"n": 1})
            assert r.status_code == 403 and "--allowed-origin" in r.json()["error"], origin
            assert http.get("/api/products").status_code == 403
    assert _echo_runs(open_rt) == before
    own = [f"http://127.0.0.1:{open_rt.port}", f"http://localhost:{open_rt.port}", f"http://[::1]:{open_rt.port}"]
    for origin in (LAB_ORIGIN, *own):
        with open_rt.client(headers={"Origin": origin}) as http:
            r = http.post("/api/products/echo/invoke", json={"n": 2})
            assert r.status_code == 200 and r.json()["result"] == {"n": 2}, origin


def test_a_change_must_declare_json(open_rt):
    before = _echo_runs(open_rt)
    with open_rt.client() as http:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            headers = {"Content-Type": content_type} if content_type else {}
            r = http.post("/api/products/echo/invoke", content=b'{"n": 3}', headers=headers)
            assert r.status_code == 415 and "application/json" in r.json()["error"], content_type
            assert http.post("/api/products/echo/runs", content=b"{}", headers=headers).status_code == 415
            assert http.post("/api/events/sales.orders", content=b"{}", headers=headers).status_code == 415
        assert _echo_runs(open_rt) == before

        name = unique("plain")
        body = json.dumps(owned("team-a")).encode()
        assert http.put(f"/api/products/{name}", content=body, headers={"Content-Type": "text/plain"}).status_code == 415
        assert http.get(f"/api/products/{name}").status_code == 404
        assert http.delete("/api/products/echo").status_code == 415
        assert http.get("/api/products/echo").status_code == 200

        # Declared JSON (with a charset too) passes; a publish may also be multipart.
        r = http.post("/api/products/echo/invoke", content=b'{"n": 4}', headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status_code == 200 and r.json()["result"] == {"n": 4}
        assert http.post("/api/products/echo/invoke", content=b"", headers={"Content-Type": "application/json"}).status_code == 200
        r = http.put(f"/api/products/{name}", content=b"--x--", headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert r.status_code == 422, r.text  # past the gate: refused as a notebook, not as a cross-site form


def test_the_cli_and_python_client_work_on_the_no_token_default(open_rt, tmp_path):
    from kernel_runtime import Client

    name = unique("cli")
    path = tmp_path / "product.ipynb"
    path.write_text(json.dumps(make_notebook(CELLS, name=name, owner="team-a", triggers=[{"event": "orders.updated"}])))
    env = {"NBMESH_URL": open_rt.url, "NBMESH_TOKEN": ""}
    for args in (("publish", str(path)), ("invoke", name, "-p", "n", "9"), ("list",), ("emit", "orders.updated"), ("runs", name)):
        done = cli(*args, env=env)
        assert done.returncode == 0, (args, done.stderr)
    assert '"n": 9' in cli("invoke", name, "-p", "n", "9", env=env).stdout
    with Client(url=open_rt.url, token="") as client:
        assert client.invoke(name, n=10) == {"n": 10}
        assert client.invoke(name) == {"n": 1}
        client.submit(name, n=11)
        assert client.emit("orders.updated", {})["runs"]
        client.unpublish(name)
        assert name not in {p["name"] for p in client.products()}
