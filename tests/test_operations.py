"""Operating the runtime: /metrics, /openapi.json, run logs, graceful SIGTERM, run retention and load."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import sys

import httpx
import psutil

from kernel_runtime.http import openapi as openapi_module
from kernel_runtime.model.bundle import Submission
from kernel_runtime.http.access import OPEN
from kernel_runtime.store.repository import Repository
from kernel_runtime.runtime.service import Service
from kernel_runtime.store import LocalStore
from tests.conftest import JSON, ROOT, Gate, answers, make_notebook, metrics, publish, settled_pool, wait_for, wait_run

sys.path.insert(0, str(ROOT / "bench"))
import load  # noqa: E402  (bench/load.py: the same load the benchmark reports)

TYPED = [("parameters", 'n: int = 1  # how many\nratio = 0.5\nlabel = "a"\nflag = False\nitems: list = []\nopts: dict = {}'),
         ("output", "{'n': n, 'label': label}")]
SLEEPY = [("parameters", "seconds: float = 2.0"), ("", "import time\ntime.sleep(seconds)"), ("output", "seconds")]  # product code: a run that takes its time


def test_metrics_count_runs_latency_and_pool_state(http):
    name = publish(http, [("parameters", "ok = True"), ("", "assert ok, 'asked to fail'"), ("output", "1")])
    for ok in (True, True, False):
        http.post(f"/api/products/{name}/invoke", json={"ok": ok})
    pool = settled_pool(http)  # what the gauges read is compared with a pool at rest
    m = metrics(http)
    assert m[("nbmesh_runs_total", (("product", name), ("status", "succeeded")))] == 2
    assert m[("nbmesh_runs_total", (("product", name), ("status", "failed")))] == 1
    assert m[("nbmesh_invoke_duration_seconds_count", (("product", name),))] == 3
    assert m[("nbmesh_invoke_duration_seconds_sum", (("product", name),))] > 0
    kernels = {state: m[("nbmesh_kernels", (("state", state),))] for state in ("starting", "idle", "busy", "dead")}
    assert kernels == {"starting": 0, "idle": 3, "busy": 0, "dead": 0}  # pool size 2 plus the spare
    # At rest every kernel is idle: those serving a product, and the spares (how many products this
    # shared runtime served before decides the split, not this test).
    assert pool["serving"] >= 1 and pool["spare"] >= 1
    assert m[("nbmesh_spare_kernels", ())] == pool["spare"] == kernels["idle"] - pool["serving"]
    assert m[("nbmesh_kernel_restarts_total", ())] == pool["restarts"]
    # Nothing waits now; the queues' gauges under load are checked in test_triggers and test_limits.
    assert m[("nbmesh_queue_depth", (("queue", "background"),))] == 0
    assert m[("nbmesh_queue_depth", (("queue", "concurrency"),))] == 0
    assert m[("nbmesh_products", ())] == len(http.get("/api/products").json()["products"])


def test_kernel_restarts_show_in_health_and_metrics(http):
    before = http.get("/healthz").json()["pool"]["restarts"]
    crash = publish(http, [("", "import os\nos._exit(1)"), ("output", "1")])
    assert http.post(f"/api/products/{crash}/invoke", json={}).json()["error"]["ename"] == "KernelDied"
    pool = http.get("/healthz").json()["pool"]
    assert pool["restarts"] == before + 1 and set(pool) >= {"starting", "idle", "busy", "dead"}
    assert metrics(http)[("nbmesh_kernel_restarts_total", ())] == before + 1


def test_openapi_has_every_route_and_a_typed_invoke_per_product(http):
    name = publish(http, TYPED, title="Typed", description="All the types")
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/healthz", "/api/products", "/api/products/{name}", "/api/products/{name}/invoke", "/api/products/{name}/runs",
                 "/api/products/{name}/notebook", "/api/runs/{run_id}", "/api/runs/{run_id}/notebook", "/api/events/{topic}",
                 "/openapi.json", "/metrics"):
        assert path in doc["paths"], path
    typed = doc["paths"][f"/api/products/{name}/invoke"]["post"]
    assert typed["summary"] == "Typed"
    schema = typed["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False
    types = {k: v["type"] for k, v in schema["properties"].items()}
    assert types == {"n": "integer", "ratio": "number", "label": "string", "flag": "boolean", "items": "array", "opts": "object"}
    assert schema["properties"]["n"]["description"] == "how many" and schema["properties"]["n"]["default"] == 1
    assert schema["properties"]["label"]["maxLength"] == 65536
    assert set(typed["responses"]) >= {"200", "401", "422", "500", "504"}
    http.delete(f"/api/products/{name}", headers=JSON)
    assert f"/api/products/{name}/invoke" not in http.get("/openapi.json").json()["paths"]


async def test_openapi_is_rebuilt_only_when_the_catalog_changes(tmp_path, monkeypatch):
    service = Service(Repository(LocalStore(tmp_path)))
    builds = []
    real_build = openapi_module.build
    monkeypatch.setattr(openapi_module, "build", lambda s, visible: builds.append(1) or real_build(s, visible))
    doc = openapi_module.OpenAPI(service.catalog)

    def body() -> bytes:
        return doc.body(OPEN, lambda name: True)

    first = body()
    assert body() is first and len(builds) == 1
    await service.publish("cached", Submission(json.dumps(make_notebook(TYPED)).encode()))
    second = body()
    assert second is not first and "/api/products/cached/invoke" in json.loads(second)["paths"]
    assert body() is second and len(builds) == 2
    await service.publish("cached", Submission(json.dumps(make_notebook(TYPED)).encode()))
    body()
    assert len(builds) == 3


def test_one_json_log_line_per_run(http, runtime):
    name = publish(http, TYPED)
    run = http.post(f"/api/products/{name}/invoke", json={"n": 2}).json()

    def logged() -> list[dict]:
        return [json.loads(line) for line in runtime.log.read_text().splitlines() if line.startswith("{") and run["run_id"] in line]

    lines = wait_for(logged, 10, "the run's log line")  # logged before the answer; the file may lag
    assert len(lines) == 1
    assert {k: lines[0][k] for k in ("run_id", "product", "version", "status")} == {
        "run_id": run["run_id"], "product": name, "version": 1, "status": "succeeded"}
    assert lines[0]["duration_ms"] > 0


def kernel_sessions(rt) -> set[int]:
    """The sessions of the kernels' processes (the sandbox and the kernel in it), with whatever they started."""
    return {os.getsid(p.pid) for p in psutil.Process(rt.proc.pid).children(recursive=True)}


def processes_in(sessions: set[int]) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) in sessions and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            pass
    return found


def test_sigterm_finishes_in_flight_runs_keeps_queued_ones_and_leaves_no_kernel(fresh_runtime, tmp_path):
    store = str(tmp_path / "graceful")
    gate = Gate()
    rt = fresh_runtime("--pool-size", "2", "--grace", "20", store=store)
    waiting = ("nbmesh_queue_depth", (("queue", "concurrency"),))
    with rt.client() as http:
        held = publish(http, [("parameters", "n: int = 0"), ("", gate.code), ("output", "n")], name="held")
        background = http.post(f"/api/products/{held}/runs", json={"n": 1}).json()["run_id"]
        queued = [http.post(f"/api/products/{held}/runs", json={"n": 2}).json()["run_id"] for _ in range(3)]
        wait_run(http, background, "running")
        sessions = kernel_sessions(rt)
        assert len(psutil.Process(rt.proc.pid).children()) == 3 and processes_in(sessions)  # 2 kernels and a spare
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, f"{rt.url}/api/products/{held}/invoke", json={"n": 3}, timeout=60)
            # In flight: waiting for the product's one slot, which the background run holds at the gate.
            wait_for(lambda: metrics(http)[waiting] == 1, 10, "the invoke to be in flight")
            rt.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: not answers(rt.url), 10, "the runtime to stop accepting")
            assert not in_flight.done()
            gate.open()
            answer = in_flight.result()
    assert answer.status_code == 200 and answer.json()["result"] == 3
    assert rt.proc.wait(30) == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down
    assert not processes_in(sessions), "kernel processes outlived the runtime"

    rt2 = fresh_runtime("--pool-size", "2", store=store)
    with rt2.client() as http:
        assert http.get(f"/api/runs/{background}").json()["status"] == "succeeded"
        # What was queued at SIGTERM was persisted and runs after the restart.
        assert [wait_run(http, q)["status"] for q in queued] == ["succeeded"] * 3


def test_runs_past_the_grace_period_are_failed_and_the_stop_is_bounded(fresh_runtime, tmp_path):
    store = str(tmp_path / "impatient")
    rt = fresh_runtime("--pool-size", "2", "--grace", "1", store=store)
    with rt.client() as http:
        sleepy = publish(http, SLEEPY, name="sleepy")
        stuck = http.post(f"/api/products/{sleepy}/runs", json={"seconds": 300}).json()["run_id"]
        wait_run(http, stuck, "running")
        sessions = kernel_sessions(rt)
    rt.proc.send_signal(signal.SIGTERM)
    # Bounded: the 300 s run does not hold the stop (the run's error below names the grace period).
    assert rt.proc.wait(30) == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down
    assert not processes_in(sessions)
    rt2 = fresh_runtime("--pool-size", "1", store=store)
    with rt2.client() as http:
        run = http.get(f"/api/runs/{stuck}").json()
        assert run["status"] == "failed" and run["error"]["ename"] == "RuntimeStopped"
        assert "grace period" in run["error"]["evalue"]


def test_keep_runs_prunes_the_oldest_runs_of_each_product(fresh_runtime, tmp_path):
    store = tmp_path / "retained"
    rt = fresh_runtime("--pool-size", "2", "--keep-runs", "3", store=str(store))
    with rt.client() as http:
        names = [publish(http, TYPED), publish(http, TYPED)]
        ids = {name: [http.post(f"/api/products/{name}/invoke", json={"n": i}).json()["run_id"] for i in range(8)] for name in names}

        def pruned() -> bool:
            return all(len(list((store / "product-runs" / name).iterdir())) == 3 for name in names)

        assert wait_for(pruned, 15)
        for name in names:
            listed = [r["run_id"] for r in http.get(f"/api/products/{name}/runs").json()["runs"]]
            assert listed == ids[name][::-1][:3]
            assert http.get(f"/api/runs/{ids[name][0]}").status_code == 404
            assert http.get(f"/api/runs/{ids[name][0]}/notebook").status_code == 404
            assert http.get(f"/api/runs/{ids[name][-1]}/notebook").status_code == 200
    assert len(list((store / "runs").glob("*.json"))) == 6
    assert len(list((store / "runs").glob("*.ipynb"))) == 6


def test_load_20_clients_by_50_invocations_on_2_kernels(fresh_runtime, request):
    rt = fresh_runtime("--pool-size", "2")
    report = load.run(rt.url, clients=20, invocations=50)
    assert report["requests"] == 1000
    assert report["wrong"] == 0, report["wrong_examples"]
    assert report["ok"] + report["documented_errors"] == 1000
    with rt.client() as http:
        # Publishing the two products claimed two spares; their replacements may still be starting.
        pool = settled_pool(http, 30)
    assert pool["size"] == 2 and pool["restarts"] == 0 and pool["retired"] == 0
    assert len(psutil.Process(rt.proc.pid).children()) == 3  # two serving the products, one spare: none leaked or lost
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(f"load: {json.dumps(report)}")
