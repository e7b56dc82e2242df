"""Hardened inputs (docs/security.md, "Inputs"), on a real `nbmesh serve`.

Each bad input gets a clear 400/404/422 and leaves nothing behind; every read route stays 200,
also after a restart; results and printed text that JSON cannot hold are kept repaired, not lost;
and store contents nbmesh did not write cannot break a listing or pass as another product's version.
Names, versions, topics and limits that are not ASCII and whole are refused in test_api_shapes.py.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import JSON, error_of, make_notebook, publish, runs_of, unique, wait_for, wait_run

PARAMS = [
    ("parameters", "xs: list = []\nrate: float = 1.0\nn: int = 1\nopts: dict = {}"),
    ("output", "{'xs': xs, 'rate': rate, 'n': n, 'opts': opts}"),
]


def send(http, path: str, body: bytes, method: str = "POST"):
    return http.request(method, path, content=body, headers=JSON)


def with_token(nb: dict, placeholder: str, token: str) -> bytes:
    """The notebook's JSON text with the string ``"placeholder"`` replaced by raw JSON ``token``."""
    text = json.dumps(nb)
    assert f'"{placeholder}"' in text
    return text.replace(f'"{placeholder}"', token).encode()


def stored_versions(store: str, name: str) -> list[str]:
    folder = Path(store) / "products" / name / "versions"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def run_ids(http, name: str) -> list[str]:
    return [run["run_id"] for run in runs_of(http, name)]


def assert_reads_ok(http, name: str, run_id: str) -> None:
    """Every read route answers 200 with JSON that holds no NaN or Infinity."""
    for path in (
        "/healthz",
        "/api/products",
        f"/api/products/{name}",
        f"/api/products/{name}@1",
        f"/api/products/{name}/runs",
        f"/api/products/{name}/notebook",
        f"/api/runs/{run_id}",
        f"/api/runs/{run_id}/notebook",
        "/api/lineage",
        "/openapi.json",
        "/metrics",
    ):
        r = http.get(path)
        assert r.status_code == 200, (path, r.text)
        if path != "/metrics":
            json.loads(r.text, parse_constant=lambda token: pytest.fail(f"{path} answered {token}"))


@pytest.fixture(scope="module")
def product(runtime) -> str:
    with runtime.client() as http:
        return publish(http, PARAMS)


# NaN and Infinity -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, path, token",
    [
        (b'{"xs": [NaN]}', "/xs/0", "NaN"),
        (b'{"rate": Infinity}', "/rate", "Infinity"),
        (b'{"rate": -Infinity}', "/rate", "-Infinity"),
        (b'{"opts": {"a": [1, {"b": NaN}]}}', "/opts/a/1/b", "NaN"),
        (b'{"rate": 1e309}', "/rate", "1e309"),
    ],
)
def test_nan_and_infinity_in_parameters_are_422_naming_the_place(http, product, body, path, token):
    before = run_ids(http, product)
    body = error_of(send(http, f"/api/products/{product}/invoke", body), 422)
    assert token in body["error"] and path in body["error"] and "JSON has no NaN or Infinity" in body["error"]
    assert body["details"][0]["path"] == path
    error_of(send(http, f"/api/products/{product}/runs", b'{"xs": [NaN]}'), 422)
    assert run_ids(http, product) == before
    assert http.get(f"/api/products/{product}/runs").status_code == 200


def test_event_payloads_are_strict(http):
    topic = unique("strict.events")
    name = publish(http, PARAMS, triggers=[{"event": topic, "parameters": {"xs": "$event.xs"}}])
    nan = error_of(send(http, f"/api/events/{topic}", b'{"xs": [1, NaN]}'), 422)
    assert nan["details"][0]["path"] == "/xs/1"
    lone = error_of(send(http, f"/api/events/{topic}", b'{"xs": ["\\udc80"]}'), 422)
    assert "lone surrogate" in lone["error"]
    error_of(send(http, f"/api/events/{topic}", b'{"xs": [1], "xs": [2]}'), 422)
    assert run_ids(http, name) == []
    ok = send(http, f"/api/events/{topic}", b'{"xs": [1, 2.5]}')
    assert ok.status_code == 202 and len(ok.json()["runs"]) == 1


def test_trigger_literal_parameters_are_checked_at_publish(runtime, http):
    name = unique("trig-nan")
    nb = make_notebook(PARAMS, triggers=[{"event": unique("t"), "parameters": {"xs": ["__NAN__"]}}])
    body = error_of(send(http, f"/api/products/{name}", with_token(nb, "__NAN__", "NaN"), "PUT"), 422)
    assert any("/metadata/nbmesh/triggers/0/parameters/xs/0" in d["message"] for d in body["details"])
    assert stored_versions(runtime.store, name) == []
    assert http.get("/api/products").status_code == 200


def test_nan_inside_a_cell_is_a_problem_naming_that_cell(runtime, http):
    name = unique("cell-nan")
    nb = make_notebook([*PARAMS, ("md", "notes")])
    nb["cells"][-1]["metadata"]["weight"] = "__NAN__"
    body = error_of(send(http, f"/api/products/{name}", with_token(nb, "__NAN__", "NaN"), "PUT"), 422)
    index = len(nb["cells"]) - 1
    assert [d["cell"] for d in body["details"]] == [index], body
    assert f"/cells/{index}/metadata/weight" in body["details"][0]["message"]
    assert stored_versions(runtime.store, name) == []


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("f = 1e309", "its default holds Infinity"),
        ("f: float = -1e309", "its default holds -Infinity"),
        ("xs = [1, [1e309]]", "its default holds Infinity at /1/0"),
        ('s = "\\ud800"', "its default holds text with a lone surrogate"),
        ('opts = {"k\\udfff": 1}', "a key with a lone surrogate"),
        ("big = 0x" + "f" * 4000, "an integer of more than 4300 digits"),
        ("f: float = 1" + "0" * 400, "is not a float"),
        ('opts = {(1, 2): "a"}', "the key (1, 2), which JSON cannot write"),
        ("xs = [1, {2, 3}]", "a set at /1, which is not a JSON value"),
        ('opts = {"a": b"x"}', "a bytes at /a"),
    ],
)
def test_defaults_json_cannot_hold_are_publish_problems_and_store_nothing(runtime, http, source, fragment):
    name = unique("default")
    cells = [("", "import math"), ("parameters", source), ("output", "1")]
    body = error_of(http.put(f"/api/products/{name}", json=make_notebook(cells)), 422)
    assert any(fragment in d["message"] and d["cell"] == 1 for d in body["details"]), body
    assert stored_versions(runtime.store, name) == []
    assert http.get("/api/products").status_code == 200
    assert "Infinity" not in http.get("/openapi.json").text


def _nested(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"items": schema}
    return schema


@pytest.mark.parametrize(
    "meta, fragment",
    [
        ({"output_schema": 5}, "output_schema must be a JSON object"),
        ({"output_schema": _nested(300)}, "output_schema is nested deeper than 64 levels"),
        ({"triggers": [{"schedule": "* * * * *", "timezone": "a" * 5000}]}, "unknown timezone 'aaaa"),
        ({"timeout": 10**400}, "timeout must be a number of seconds"),
    ],
)
def test_metadata_that_broke_publish_is_a_problem(runtime, http, meta, fragment):
    name = unique("meta")
    body = error_of(http.put(f"/api/products/{name}", json=make_notebook(PARAMS, **meta)), 422)
    assert any(fragment in d["message"] and len(d["message"]) < 300 for d in body["details"]), body
    assert stored_versions(runtime.store, name) == []


# lone surrogates ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b'{"xs": ["a\\ud800"]}', b'{"opts": {"\\udc00": 1}}', b'{"\\ud83dx": 1}', b'{"opts": {"a": ["\\udfff"]}}'],
)
def test_lone_surrogates_in_parameters_are_422(http, product, body):
    before = run_ids(http, product)
    answer = error_of(send(http, f"/api/products/{product}/invoke", body), 422)
    assert "lone surrogate" in answer["error"] and "not valid Unicode" in answer["error"]
    assert run_ids(http, product) == before


def test_a_surrogate_pair_is_text_not_a_lone_surrogate(http, product):
    run = send(http, f"/api/products/{product}/invoke", b'{"xs": ["\\ud83d\\ude00"]}').json()
    assert run["status"] == "succeeded" and run["result"]["xs"] == ["\U0001F600"]


@pytest.mark.parametrize("field", ["title", "name", "owner"])
def test_lone_surrogates_in_a_notebook_are_422(runtime, http, field):
    name = unique("sur")
    nb = make_notebook(PARAMS, **{field: "__SUR__"})
    body = error_of(send(http, f"/api/products/{name}", with_token(nb, "__SUR__", '"x\\ud800"'), "PUT"), 422)
    assert any(f"/metadata/nbmesh/{field}" in d["message"] and "lone surrogate" in d["message"] for d in body["details"])
    assert stored_versions(runtime.store, name) == []


# bodies ---------------------------------------------------------------------------------------
def test_huge_numbers_are_422_and_big_ones_still_work(http, product):
    digits = error_of(send(http, f"/api/products/{product}/invoke", b'{"n": 1' + b"0" * 5000 + b"}"), 422)
    assert "4300 digits" in digits["error"]
    too_big_for_float = error_of(send(http, f"/api/products/{product}/invoke", b'{"rate": 1' + b"0" * 400 + b"}"), 422)
    assert "must be float" in too_big_for_float["details"][0]["message"]
    big = send(http, f"/api/products/{product}/invoke", b'{"n": 1' + b"0" * 1000 + b"}")
    assert big.status_code == 200 and big.json()["result"]["n"] == 10**1000


def test_body_encoding_duplicates_and_nesting(http, product):
    invoke = f"/api/products/{product}/invoke"
    assert "not UTF-8" in error_of(send(http, invoke, '{"n": 2}'.encode("utf-16")), 400)["error"]
    assert "not UTF-8" in error_of(send(http, invoke, b'{"xs": ["\xed\xa0\x80"]}'), 400)["error"]
    assert "twice" in error_of(send(http, invoke, b'{"n": 1, "n": 2}'), 422)["error"]
    assert "nested too deeply" in error_of(send(http, invoke, b'{"xs": ' + b"[" * 100000 + b"]" * 100000 + b"}"), 422)["error"]
    error_of(send(http, invoke, b"[1]"), 422)
    # A byte order mark is ignored (RFC 8259 allows it; Windows editors write one).
    bom = send(http, invoke, b'\xef\xbb\xbf{"n": 2}')
    assert bom.status_code == 200 and bom.json()["result"]["n"] == 2


def test_content_length_in_non_ascii_digits_is_400(runtime, product):
    with socket.create_connection(("127.0.0.1", runtime.port), timeout=10) as sock:
        sock.sendall(
            f"POST /api/products/{product}/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: ".encode()
            + "²".encode("latin-1")
            + b"\r\n\r\n{}"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")


# names ----------------------------------------------------------------------------------------
def test_a_trailing_newline_is_not_a_second_product(runtime, http, product):
    nb = make_notebook(PARAMS)
    error_of(http.put(f"/api/products/{product}%0A", json=nb), 400)
    names = [p["name"] for p in http.get("/api/products").json()["products"]]
    assert names.count(product) == 1 and f"{product}\n" not in names
    assert not (Path(runtime.store) / "products" / f"{product}\n").exists()


def test_event_paths_take_only_ascii_indexes(http):
    topic = unique("index.events")
    name = publish(http, PARAMS, triggers=[{"event": topic, "parameters": {"xs": "$event.rows.\u00b2"}}])
    answer = http.post(f"/api/events/{topic}", json={"rows": [[1], [2], [3]]})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["runs"][0]
    run = wait_run(http, run_id)
    assert run["status"] == "failed" and "$event.rows.\u00b2" in run["error"]["evalue"] and "does not have" in run["error"]["evalue"]
    assert run_ids(http, name) == [run_id]


# results and printed text ---------------------------------------------------------------------
RESULTS = [
    ("", "import numpy as np, pandas as pd\nfrom IPython.display import JSON, display\ndisplay(JSON({'shown': float('nan')}))"),
    (
        "output",
        "{'nan': float('nan'), 'inf': [float('inf'), -float('inf')], 'np': {'f32': np.float32('nan'), 'f64': np.float64('inf')},\n"
        " 'arr': np.array([1.0, np.nan]),\n"
        " 'df': pd.DataFrame({'x': [1.0, None], 'n': pd.array([1, None], dtype='Int64')})}",
    ),
]


def test_nan_and_infinity_in_a_result_become_null(http):
    name = publish(http, RESULTS)
    r = http.post(f"/api/products/{name}/invoke", json={})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {
        "nan": None,
        "inf": [None, None],
        "np": {"f32": None, "f64": None},
        "arr": [1.0, None],
        "df": [{"x": 1.0, "n": 1}, {"x": None, "n": None}],
    }
    notebook = http.get(f"/api/runs/{r.json()['run_id']}/notebook").json()
    shown = [o["data"]["application/json"] for c in notebook["cells"] for o in c.get("outputs", []) if "application/json" in o.get("data", {})]
    assert shown == [{"shown": None}]


def test_a_result_integer_json_readers_cannot_take_fails_clearly(http):
    name = publish(http, [("output", "10 ** 5000")])
    run = http.post(f"/api/products/{name}/invoke", json={}).json()
    assert run["status"] == "failed" and run["error"]["ename"] == "ResultNotSerializable"
    assert "more than 4300 digits" in run["error"]["evalue"]


SURROGATES = [
    ("parameters", "fail = False"),
    ("", 'print("before \\ud800 after")\nimport sys\nsys.stderr.write(b"\\xff".decode("utf-8", "surrogateescape"))'),
    ("", 'if fail:\n    raise ValueError("broken \\udcff text")'),
    ("output", '"result \\udc80"'),
]


def test_invalid_text_from_a_run_is_repaired_and_the_run_kept(fresh_runtime):
    rt = fresh_runtime("--pool-size", "2")
    with rt.client() as http:
        name = publish(http, SURROGATES)
        ok = http.post(f"/api/products/{name}/invoke", json={})
        assert ok.status_code == 200 and ok.json()["result"] == "result \ufffd"
        failed = http.post(f"/api/products/{name}/invoke", json={"fail": True})
        assert failed.status_code == 500 and failed.json()["error"]["evalue"] == "broken \ufffd text"
        background = http.post(f"/api/products/{name}/runs", json={}).json()["run_id"]
        assert wait_run(http, background)["status"] == "succeeded"
        wait_for(lambda: http.get(f"/api/runs/{background}/notebook").status_code == 200, what="its notebook")
    rt.stop()
    rt.start()
    with rt.client() as http:
        assert http.get(f"/api/runs/{background}").json()["status"] == "succeeded"
        for run_id in (ok.json()["run_id"], failed.json()["run_id"], background):
            assert_reads_ok(http, name, run_id)
        cells = http.get(f"/api/runs/{background}/notebook").json()["cells"]
        streams = [(o["name"], o["text"]) for c in cells for o in c.get("outputs", []) if o["output_type"] == "stream"]
        assert streams == [("stdout", "before \ufffd after\n"), ("stderr", "\ufffd")]
        assert http.get(f"/api/runs/{failed.json()['run_id']}").json()["error"]["evalue"] == "broken \ufffd text"


# every bad input, then a restart --------------------------------------------------------------
def test_after_every_bad_input_the_reads_stay_200_across_a_restart(fresh_runtime, tmp_path):
    rt = fresh_runtime("--pool-size", "1")
    topic = unique("restart.events")
    with rt.client() as http:
        name = publish(http, PARAMS, "p", triggers=[{"event": topic, "parameters": {"xs": "$event.xs"}}])
        good = http.post(f"/api/products/{name}/invoke", json={"xs": [1]}).json()["run_id"]
        for path, body in [
            ("/api/products/p/invoke", b'{"xs": [NaN]}'),
            ("/api/products/p/runs", b'{"xs": [Infinity]}'),
            ("/api/products/p/invoke", b'{"xs": ["\\ud800"]}'),
            ("/api/products/p/invoke", b'{"n": 1' + b"0" * 5000 + b"}"),
            ("/api/products/p/invoke", b'{"rate": 1' + b"0" * 400 + b"}"),
            (f"/api/events/{topic}", b'{"xs": [-Infinity]}'),
        ]:
            assert send(http, path, body).status_code == 422, (path, body[:40])
        bad_default = make_notebook([("parameters", "f = 1e309"), ("output", "f")])
        assert http.put("/api/products/q", json=bad_default).status_code == 422
        assert http.put("/api/products/p%0A", json=make_notebook(PARAMS)).status_code == 400
        assert http.get("/api/products/p@\u00b2").status_code == 400
        assert http.get("/api/products/p/runs", params={"limit": "\u0661"}).status_code == 400
        assert_reads_ok(http, name, good)
    rt.stop()
    rt.start()
    with rt.client() as http:
        assert_reads_ok(http, name, good)
        assert [p["name"] for p in http.get("/api/products").json()["products"]] == ["p"]
        assert run_ids(http, name) == [good]
    assert stored_versions(rt.store, "q") == [] and stored_versions(rt.store, "p") == ["00000001.json"]


# store contents nbmesh did not write ----------------------------------------------------------
def _run_json(run_id: str, product: str, **fields) -> dict:
    run = {
        "run_id": run_id, "product": product, "version": 1, "parameters": {}, "trigger": {"kind": "http"},
        "status": "succeeded", "result": 1, "error": None, "created_at": "2030-01-01T00:00:00.000Z",
        "started_at": None, "finished_at": None, "duration_ms": 1.0, "warm": True,
    }
    return {**run, **fields}


def test_store_contents_nbmesh_did_not_write_cannot_break_reads(fresh_runtime):
    rt = fresh_runtime("--pool-size", "1")
    with rt.client() as http:
        publish(http, PARAMS, "good")
        publish(http, [("output", "'victim v1'")], "victim")
        real = http.post("/api/products/good/invoke", json={}).json()["run_id"]
        victim_run = http.post("/api/products/victim/invoke", json={}).json()["run_id"]
        wait_for(lambda: http.get(f"/api/runs/{victim_run}/notebook").status_code == 200, what="records written")
    rt.stop()

    store = Path(rt.store)
    planted: dict[str, bytes] = {}

    def plant(key: str, data: bytes | str | dict) -> None:
        blob = json.dumps(data).encode() if isinstance(data, dict) else data.encode() if isinstance(data, str) else data
        (store / key).parent.mkdir(parents=True, exist_ok=True)
        (store / key).write_bytes(blob)
        planted[key] = blob

    bad = {kind: f"{i:x}" * 32 for i, kind in enumerate(["nan", "lone", "junk", "shape", "alien", "moved", "done"], 1)}
    index = "product-runs/good/0000000000000000000{}-{}"
    plant(f"runs/{bad['nan']}.json", json.dumps(_run_json(bad["nan"], "good", result=float("nan"))))
    plant(f"runs/{bad['lone']}.json", json.dumps(_run_json(bad["lone"], "good", result="\ud800")))
    plant(f"runs/{bad['junk']}.json", "{not json")
    plant(f"runs/{bad['shape']}.json", _run_json(bad["shape"], "good", created_at=5))
    plant(f"runs/{bad['moved']}.json", _run_json(bad["alien"], "good"))
    for i, kind in enumerate(["nan", "lone", "junk", "shape", "moved"], 1):
        plant(index.format(i, bad[kind]), b"")
    plant(index.format(6, victim_run), b"")  # the victim's run, listed under good
    plant("product-runs/good/junk", b"")
    plant("products/victim/versions/00000099.json", {
        "name": "good", "version": 1, "published_at": "2030-01-01T00:00:00.000Z",
        "notebook": make_notebook([("output", "'planted'")]),
    })
    plant("products/victim/versions/000000001.json", b"{}")
    plant("products/victim/versions/abc.json", b"{}")
    plant("products/nanprod/versions/00000001.json", json.dumps({
        "name": "nanprod", "version": 1, "published_at": "2030-01-01T00:00:00.000Z",
        "notebook": make_notebook([("parameters", "f = 1.0"), ("output", "f")], triggers=[{"event": "x", "parameters": {"f": float("inf")}}]),
    }))
    plant("products/Bad_Name/versions/00000001.json", b"{}")
    plant("products/tomb/versions/00000001.json", {
        "name": "tomb", "version": 1, "published_at": "2030-01-01T00:00:00.000Z", "notebook": make_notebook([("output", "1")]),
    })
    plant("products/tomb/unpublished.json", '{"version": "\u00b2"}')
    plant(f"runs/{bad['done']}.json", _run_json(bad["done"], "good"))
    plant("pending/not-a-run", b"")
    (store / "pending" / bad["done"]).write_bytes(b"")  # a final record whose pending marker outlived it

    rt.start()
    with rt.client() as http:
        assert_reads_ok(http, "good", real)
        assert_reads_ok(http, "victim", victim_run)
        assert sorted(p["name"] for p in http.get("/api/products").json()["products"]) == ["good", "victim"]
        victim = http.get("/api/products/victim").json()
        assert victim["version"] == 1 and victim["versions"] == [1]
        assert http.post("/api/products/victim/invoke", json={}).json()["result"] == "victim v1"
        error_of(http.get("/api/products/victim@99"), 404)
        assert set(run_ids(http, "good")) == {real}
        for kind in ("nan", "lone", "junk", "shape", "moved"):
            body = error_of(http.get(f"/api/runs/{bad[kind]}"), 500)
            assert f"runs/{bad[kind]}.json" in body["error"]
        assert http.get(f"/api/runs/{bad['done']}").json()["status"] == "succeeded"
        assert "Infinity" not in http.get("/openapi.json").text and "nanprod" not in http.get("/openapi.json").text
    # Nothing was rewritten or deleted because it failed to parse; the stale marker alone went.
    assert {key: (store / key).read_bytes() for key in planted} == planted
    assert not (store / "pending" / bad["done"]).exists()
