"""Every core route of docs/reference/http-api.md with its status codes and error shapes, on a real server
(the answers to bad requests alone are in test_api_shapes.py, in-process)."""

from __future__ import annotations

import json

from kernel_runtime import Client
from tests.conftest import JSON, NOTEBOOKS, error_of, make_notebook, publish, unique, wait_run

SIMPLE = [
    ("parameters", 'x: int = 3  # a number\nregion = "EU"  # sales region'),
    ("", "y = x * 2\nprint('computing', region)"),
    ("output", "{'y': y, 'region': region}"),
]


def test_healthz(http):
    body = http.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["pool"]["size"] == 2


def test_publish_read_and_catalog(http):
    name = unique("p")
    answer = http.put(f"/api/products/{name}", json=make_notebook(SIMPLE, title="T", description="D", owner="team-a"))
    assert answer.status_code == 201, answer.text
    product = answer.json()
    assert product["name"] == name and product["version"] == 1 and product["versions"] == [1]
    assert product["parameters"] == {
        "x": {"type": "int", "default": 3, "help": "a number"},
        "region": {"type": "str", "default": "EU", "help": "sales region"},
    }
    for key in ("title", "description", "owner", "triggers", "published_at"):
        assert key in product
    assert product["owner"] == "team-a"
    assert http.get(f"/api/products/{name}").json() == product
    names = [p["name"] for p in http.get("/api/products").json()["products"]]
    assert name in names


def test_versions_and_pinning(http):
    name = publish(http, SIMPLE)
    v2_cells = [SIMPLE[0], SIMPLE[1], ("output", "{'y': y, 'region': region, 'v': 2}")]
    r = http.put(f"/api/products/{name}", json=make_notebook(v2_cells))
    assert r.json()["version"] == 2 and r.json()["versions"] == [1, 2]
    assert http.post(f"/api/products/{name}/invoke", json={}).json()["result"]["v"] == 2
    pinned = http.post(f"/api/products/{name}@1/invoke", json={}).json()
    assert pinned["version"] == 1 and "v" not in pinned["result"]
    assert http.get(f"/api/products/{name}@1").json()["version"] == 1
    nb1 = http.get(f"/api/products/{name}@1/notebook").json()
    assert "'v': 2" not in json.dumps(nb1)
    error_of(http.get(f"/api/products/{name}@9"), 404)


def test_invalid_notebook_stores_nothing(http):
    name = unique("bad")
    r = http.put(f"/api/products/{name}", json=make_notebook(SIMPLE[:2]))
    body = error_of(r, 422)
    assert any("output" in d["message"] for d in body["details"])
    error_of(http.get(f"/api/products/{name}"), 404)
    assert name not in [p["name"] for p in http.get("/api/products").json()["products"]]


def test_invoke_success_run_object(http):
    name = publish(http, SIMPLE)
    r = http.post(f"/api/products/{name}/invoke", json={"x": 21})
    assert r.status_code == 200
    run = r.json()
    assert run["status"] == "succeeded" and run["result"] == {"y": 42, "region": "EU"}
    assert run["product"] == name and run["version"] == 1
    assert run["parameters"] == {"x": 21, "region": "EU"}
    assert run["trigger"] == {"kind": "http"}
    assert len(run["run_id"]) == 32 and run["started_at"] and run["duration_ms"] > 0
    assert http.get(f"/api/runs/{run['run_id']}").json()["result"] == {"y": 42, "region": "EU"}


def test_invoke_empty_body_uses_defaults(http):
    name = publish(http, SIMPLE)
    assert http.post(f"/api/products/{name}/invoke", headers=JSON).json()["result"] == {"y": 6, "region": "EU"}


def test_invoke_bad_parameters_422(http):
    name = publish(http, SIMPLE)
    body = error_of(http.post(f"/api/products/{name}/invoke", json={"x": "3", "nope": 1}), 422)
    assert len(body["details"]) == 2
    error_of(http.post(f"/api/products/{name}/invoke", json=[1]), 422)
    error_of(http.post(f"/api/products/{name}/invoke", content=b"{bad json", headers=JSON), 400)


def test_failed_run_500_with_run_object(http):
    name = publish(http, [("parameters", "x = 1"), ("output", "1 / (x - 1)")])
    r = http.post(f"/api/products/{name}/invoke", json={})
    assert r.status_code == 500
    run = r.json()
    assert run["status"] == "failed"
    assert run["error"]["ename"] == "ZeroDivisionError"
    assert "division by zero" in run["error"]["evalue"]
    assert any("ZeroDivisionError" in line for line in run["error"]["traceback"])


def test_timeout_504_then_kernel_still_serves(http):
    # Product code sleeps past its own timeout.
    name = publish(http, [("parameters", "s = 30.0"), ("", "import time\ntime.sleep(s)"), ("output", "'done'")], timeout=1)
    r = http.post(f"/api/products/{name}/invoke", json={})
    assert r.status_code == 504
    assert r.json()["status"] == "timed_out" and r.json()["error"]["ename"] == "Timeout"
    assert http.post(f"/api/products/{name}/invoke", json={"s": 0.0}).json()["result"] == "done"


def test_non_json_result_fails_naming_type(http):
    name = publish(http, [("output", "{1, 2}")])
    run = http.post(f"/api/products/{name}/invoke", headers=JSON).json()
    assert run["status"] == "failed" and run["error"]["ename"] == "ResultNotSerializable"
    assert "builtins.set" in run["error"]["evalue"]


def test_scientific_results_become_json(http):
    cells = [
        ("setup", "import pandas as pd, numpy as np, datetime as dt"),
        ("output", "{'df': pd.DataFrame({'a': [1, 2], 't': pd.to_datetime(['2024-01-01', '2024-01-02'])}),"
                   " 'n': np.int64(7), 'arr': np.arange(3), 'f': np.float32(0.5), 'when': dt.date(2024, 5, 1), 'nan': float('nan')}"),
    ]
    name = publish(http, cells)
    result = http.post(f"/api/products/{name}/invoke", headers=JSON).json()["result"]
    assert result["df"] == [{"a": 1, "t": "2024-01-01T00:00:00"}, {"a": 2, "t": "2024-01-02T00:00:00"}]
    assert result["n"] == 7 and result["arr"] == [0, 1, 2] and result["f"] == 0.5
    assert result["when"] == "2024-05-01" and result["nan"] is None


def test_output_schema_contract_violation(http):
    schema = {"type": "object", "required": ["y"], "properties": {"y": {"type": "integer", "maximum": 10}}}
    name = publish(http, SIMPLE, output_schema=schema)
    assert http.post(f"/api/products/{name}/invoke", json={"x": 2}).json()["status"] == "succeeded"
    r = http.post(f"/api/products/{name}/invoke", json={"x": 50})
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["ename"] == "ContractViolation" and "100 is greater than the maximum of 10" in error["evalue"]


def test_background_run_and_run_notebook(http):
    name = publish(http, SIMPLE)
    r = http.post(f"/api/products/{name}/runs", json={"x": 5})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    run_id = r.json()["run_id"]
    run = wait_run(http, run_id)
    assert run["status"] == "succeeded" and run["result"]["y"] == 10
    nb = http.get(f"/api/runs/{run_id}/notebook").json()
    tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
    assert ["injected-parameters"] in tags
    injected = nb["cells"][tags.index(["injected-parameters"])]
    assert "x = 5" in "".join(injected["source"])
    assert nb["metadata"]["papermill"]["parameters"] == {"x": 5, "region": "EU"}
    # The keys papermill itself writes, so tools that read papermill output read ours.
    for key in ("default_parameters", "duration", "end_time", "environment_variables", "exception",
                "input_path", "output_path", "parameters", "start_time", "version"):
        assert key in nb["metadata"]["papermill"], key
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "injected-parameters" not in cell["metadata"]["tags"]:
            assert cell["metadata"]["papermill"]["status"] == "completed"
    assert any("computing EU" in o.get("text", "") for c in nb["cells"] for o in c.get("outputs", []))
    output_cell = next(c for c in nb["cells"] if "output" in c["metadata"].get("tags", []))
    assert output_cell["outputs"][0]["output_type"] == "execute_result"


def test_run_notebook_readable_right_after_invoke(http):
    name = publish(http, SIMPLE)
    run = http.post(f"/api/products/{name}/invoke", json={"x": 1}).json()
    nb = http.get(f"/api/runs/{run['run_id']}/notebook")
    assert nb.status_code == 200 and nb.json()["metadata"]["papermill"]["parameters"]["x"] == 1


def test_product_runs_newest_first_with_limit(http):
    name = publish(http, SIMPLE)
    ids = [http.post(f"/api/products/{name}/invoke", json={"x": i}).json()["run_id"] for i in range(4)]
    runs = http.get(f"/api/products/{name}/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == ids[::-1]
    assert [r["run_id"] for r in http.get(f"/api/products/{name}/runs", params={"limit": 2}).json()["runs"]] == ids[::-1][:2]


def test_unpublish_keeps_runs(http):
    name = publish(http, SIMPLE)
    run_id = http.post(f"/api/products/{name}/invoke", headers=JSON).json()["run_id"]
    assert http.delete(f"/api/products/{name}", headers=JSON).status_code == 204
    error_of(http.get(f"/api/products/{name}"), 404)
    error_of(http.delete(f"/api/products/{name}", headers=JSON), 404)
    error_of(http.post(f"/api/products/{name}/invoke", headers=JSON), 404)
    assert http.get(f"/api/runs/{run_id}").json()["status"] == "succeeded"
    assert http.get(f"/api/runs/{run_id}/notebook").status_code == 200
    republished = http.put(f"/api/products/{name}", json=make_notebook(SIMPLE)).json()
    assert republished["version"] == 2 and republished["versions"] == [2]


def test_example_products_publish_and_run(runtime, http):
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        product = Client(runtime.url).publish(path)  # with the data files its metadata names
        run = http.post(f"/api/products/{product['name']}/invoke", json={}).json()
        assert run["status"] == "succeeded", (path.name, run.get("error"))
        assert run["result"], path.name
