"""Operating the runtime: /metrics, /openapi.json, run logs, graceful SIGTERM, run retention and load."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import sys
import time

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kernel_runtime.http import openapi as openapi_module
from kernel_runtime.http.access import OPEN
from kernel_runtime.store.repository import Repository
from kernel_runtime.runtime.service import Service
from kernel_runtime.store import LocalStore
from tests.conftest import JSON, ROOT, make_notebook, unique, wait_for

sys.path.insert(0, str(ROOT / "bench"))
import load  # noqa: E402  (bench/load.py: the same load the benchmark reports)

TYPED = [("parameters", 'n: int = 1  # how many\nratio = 0.5\nlabel = "a"\nflag = False\nitems: list = []\nopts: dict = {}'),
         ("output", "{'n': n, 'label': label}")]
SLEEPY = [("parameters", "seconds: float = 2.0"), ("", "import time\ntime.sleep(seconds)"), ("output", "seconds")]


def publish(http, cells, name=None, **meta) -> str:
    name = name or unique("ops")
    r = http.put(f"/api/products/{name}", json=make_notebook(cells, **meta))
    assert r.status_code == 201, r.text
    return name


def metrics(http) -> dict[tuple[str, tuple], float]:
    r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_runs_latency_and_pool_state(http):
    name = publish(http, [("parameters", "ok = True"), ("", "assert ok, 'asked to fail'"), ("output", "1")])
    for ok in (True, True, False):
        http.post(f"/api/products/{name}/invoke", json={"ok": ok})
    m = metrics(http)
    assert m[("nbmesh_runs_total", (("product", name), ("status", "succeeded")))] == 2
    assert m[("nbmesh_runs_total", (("product", name), ("status", "failed")))] == 1
    assert m[("nbmesh_invoke_duration_seconds_count", (("product", name),))] == 3
    assert m[("nbmesh_invoke_duration_seconds_sum", (("product", name),))] > 0
    kernels = {state: m[("nbmesh_kernels", (("state", state),))] for state in ("starting", "idle", "busy", "dead")}
    # Pool size 2 plus the spare: started or starting. "dead" ones are extra, being shut down.
    assert kernels["starting"] + kernels["idle"] + kernels["busy"] == 3
    assert m[("nbmesh_spare_kernels", ())] <= 3
    assert ("nbmesh_kernel_restarts_total", ()) in m
    assert m[("nbmesh_queue_depth", (("queue", "background"),))] >= 0
    assert m[("nbmesh_queue_depth", (("queue", "concurrency"),))] >= 0
    assert m[("nbmesh_products", ())] >= 1


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
    await service.publish("cached", json.dumps(make_notebook(TYPED)).encode())
    second = body()
    assert second is not first and "/api/products/cached/invoke" in json.loads(second)["paths"]
    assert body() is second and len(builds) == 2
    await service.publish("cached", json.dumps(make_notebook(TYPED)).encode())
    body()
    assert len(builds) == 3


def test_one_json_log_line_per_run(http, runtime):
    name = publish(http, TYPED)
    run = http.post(f"/api/products/{name}/invoke", json={"n": 2}).json()
    time.sleep(0.2)
    lines = [json.loads(line) for line in runtime.log.read_text().splitlines() if line.startswith("{") and run["run_id"] in line]
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
    rt = fresh_runtime("--pool-size", "2", "--grace", "20", store=store)
    with rt.client() as http:
        sleepy = publish(http, SLEEPY, name="sleepy")
        background = http.post(f"/api/products/{sleepy}/runs", json={"seconds": 2}).json()["run_id"]
        queued = [http.post(f"/api/products/{sleepy}/runs", json={"seconds": 0.1}).json()["run_id"] for _ in range(3)]
        assert wait_for(lambda: http.get(f"/api/runs/{background}").json()["status"] == "running")
        sessions = kernel_sessions(rt)
        assert len(psutil.Process(rt.proc.pid).children()) == 3 and processes_in(sessions)  # 2 kernels and a spare
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, f"{rt.url}/api/products/{sleepy}/invoke", json={"seconds": 2}, timeout=60)
        time.sleep(0.5)
        t0 = time.monotonic()
        rt.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):  # no longer accepting
            httpx.get(f"{rt.url}/healthz", timeout=2)
        answer = in_flight.result()
    assert answer.status_code == 200 and answer.json()["result"] == 2
    assert rt.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    stopped_in = time.monotonic() - t0
    assert not processes_in(sessions), "kernel processes outlived the runtime"

    rt2 = fresh_runtime("--pool-size", "2", store=store)
    with rt2.client() as http:
        assert http.get(f"/api/runs/{background}").json()["status"] == "succeeded"
        # What was queued at SIGTERM was persisted and runs after the restart.
        assert wait_for(lambda: all(http.get(f"/api/runs/{q}").json()["status"] == "succeeded" for q in queued))
    print(f"stopped {stopped_in:.1f} s after SIGTERM")


def test_runs_past_the_grace_period_are_failed_and_the_stop_is_bounded(fresh_runtime, tmp_path):
    store = str(tmp_path / "impatient")
    rt = fresh_runtime("--pool-size", "2", "--grace", "1", store=store)
    with rt.client() as http:
        sleepy = publish(http, SLEEPY, name="sleepy")
        stuck = http.post(f"/api/products/{sleepy}/runs", json={"seconds": 300}).json()["run_id"]
        assert wait_for(lambda: http.get(f"/api/runs/{stuck}").json()["status"] == "running")
        sessions = kernel_sessions(rt)
    t0 = time.monotonic()
    rt.proc.send_signal(signal.SIGTERM)
    assert rt.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert time.monotonic() - t0 < 15
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
        pool = wait_for(lambda: (p := http.get("/healthz").json()["pool"])["idle"] == 3 and p, 30, "a settled pool")
    assert pool["size"] == 2 and pool["restarts"] == 0 and pool["retired"] == 0
    assert len(psutil.Process(rt.proc.pid).children()) == 3  # two serving the products, one spare: none leaked or lost
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(f"load: {json.dumps(report)}")
