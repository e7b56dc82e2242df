"""Schedules, events, chains, lineage and the background queue, on real `nbmesh serve` processes.

Schedules run against a clock the tests move (``NBMESH_CLOCK_FILE``), so a
cron minute passes in a second of test time.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import JSON, ROOT, make_notebook, unique, wait_for

FINAL = {"succeeded", "failed", "timed_out"}


class TestClock:
    __test__ = False

    def __init__(self, path: Path, start: str) -> None:
        self.path = path
        self.set(start)

    def set(self, moment: str) -> None:
        self.path.write_text(moment)

    @property
    def env(self) -> dict[str, str]:
        return {"NBMESH_CLOCK_FILE": str(self.path)}




def runs_of(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    answer = http.get(f"/api/products/{name}/runs", params={"limit": 1000})
    answer.raise_for_status()
    return answer.json()["runs"]


def scheduled(http: httpx.Client, name: str) -> list[str]:
    return sorted(r["trigger"]["due"] for r in runs_of(http, name) if r["trigger"]["kind"] == "schedule")


def publish(http: httpx.Client, name: str, nb: dict) -> dict:
    answer = http.put(f"/api/products/{name}", json=nb)
    assert answer.status_code == 201, answer.text
    return answer.json()


def echo(name: str, param: str = "n: int = 0", value: str = "n", **meta: Any) -> dict:
    return make_notebook([("parameters", param), ("output", value)], name, **meta)


def all_final(http: httpx.Client, name: str, count: int) -> list[dict[str, Any]] | None:
    runs = runs_of(http, name)
    return runs if len(runs) >= count and all(r["status"] in FINAL for r in runs) else None


# schedules ------------------------------------------------------------------------------
def test_schedules_fire_once_per_due_time_in_their_timezone(fresh_runtime, tmp_path):
    clock = TestClock(tmp_path / "clock", "2030-01-02T13:58:30Z")
    rt = fresh_runtime("--pool-size", "2", env=clock.env)
    with rt.client() as http:
        publish(http, "every-minute", echo("every-minute", "tag: str = ''", "tag",
                                           triggers=[{"schedule": "* * * * *", "parameters": {"tag": "tick"}}]))
        publish(http, "nine-in-new-york", echo("nine-in-new-york",
                                               triggers=[{"schedule": "0 9 * * *", "timezone": "America/New_York"}]))
        time.sleep(2.5)  # several scheduler ticks: nothing is due yet
        assert scheduled(http, "every-minute") == [] and scheduled(http, "nine-in-new-york") == []

        clock.set("2030-01-02T13:59:10Z")
        wait_for(lambda: scheduled(http, "every-minute") == ["2030-01-02T13:59:00Z"], what="the 13:59 run")
        clock.set("2030-01-02T14:00:05Z")  # 09:00 in New York (EST)
        wait_for(lambda: len(scheduled(http, "every-minute")) == 2, what="the 14:00 run")
        wait_for(lambda: scheduled(http, "nine-in-new-york") == ["2030-01-02T14:00:00Z"], what="09:00 New York")
        time.sleep(2.5)  # more ticks within the same minute start nothing more
        assert scheduled(http, "every-minute") == ["2030-01-02T13:59:00Z", "2030-01-02T14:00:00Z"]
        assert len(scheduled(http, "nine-in-new-york")) == 1

        run = wait_for(lambda: all_final(http, "every-minute", 2), what="final runs")[0]
        assert run["status"] == "succeeded" and run["result"] == "tick"
        assert run["trigger"] == {"kind": "schedule", "schedule": "* * * * *", "due": "2030-01-02T14:00:00Z"}

        # Republishing without the schedule stops it, unpublishing stops the other.
        publish(http, "every-minute", echo("every-minute", "tag: str = ''", "tag"))
        assert http.delete("/api/products/nine-in-new-york", headers=JSON).status_code == 204
        clock.set("2030-01-03T14:00:05Z")
        time.sleep(2.5)
        assert len(scheduled(http, "every-minute")) == 2
        assert len(scheduled(http, "nine-in-new-york")) == 1


def test_schedule_runs_once_across_replicas_and_catches_up_once(fresh_runtime, tmp_path):
    clock = TestClock(tmp_path / "clock", "2030-01-01T00:00:30Z")
    store = str(tmp_path / "shared-store")
    first = fresh_runtime("--pool-size", "1", store=store, env=clock.env)
    with first.client() as http:
        publish(http, "replicated", echo("replicated", triggers=[{"schedule": "* * * * *", "parameters": {"n": 1}}]))
    second = fresh_runtime("--pool-size", "1", store=store, env=clock.env)  # reads the catalog from the store
    with first.client() as http, second.client() as other:
        for minute in (1, 2, 3):
            clock.set(f"2030-01-01T00:0{minute}:05Z")
            wait_for(lambda: len(scheduled(http, "replicated")) == minute, what=f"minute {minute}")
            time.sleep(1.5)  # both replicas tick at least once more
        dues = ["2030-01-01T00:01:00Z", "2030-01-01T00:02:00Z", "2030-01-01T00:03:00Z"]
        assert scheduled(http, "replicated") == dues
        assert scheduled(other, "replicated") == dues

    # Down for six hours: on restart one catch-up run, not 357.
    first.kill()
    second.kill()
    clock.set("2030-01-01T06:00:30Z")
    third = fresh_runtime("--pool-size", "1", store=store, env=clock.env)
    with third.client() as http:
        wait_for(lambda: len(scheduled(http, "replicated")) == 4, what="the catch-up run")
        time.sleep(2.5)
        assert scheduled(http, "replicated") == [*dues, "2030-01-01T06:00:00Z"]
        assert wait_for(lambda: all_final(http, "replicated", 4), what="final runs")


# events -----------------------------------------------------------------------------------
def test_three_product_chain_with_lineage(http):
    raw, clean, summary = unique("raw"), unique("clean"), unique("summary")
    topic = unique("orders.updated")
    publish(http, raw, echo(raw, "rows: int = 0", "{'rows': rows, 'values': list(range(rows))}",
                            triggers=[{"event": topic, "parameters": {"rows": "$event.count"}}]))
    publish(http, clean, echo(clean, "values: list = []", "{'kept': [v for v in values if v % 2 == 0]}",
                              triggers=[{"event": f"product.{raw}.succeeded", "parameters": {"values": "$event.result.values"}}]))
    publish(http, summary, echo(summary, "kept: list = []\nsource: str = ''", "{'total': sum(kept), 'source': source}",
                                triggers=[{"event": f"product.{clean}.succeeded",
                                           "parameters": {"kept": "$event.result.kept", "source": "$event.run_id"}}]))

    answer = http.post(f"/api/events/{topic}", json={"count": 6})
    assert answer.status_code == 202
    assert answer.json()["topic"] == topic and len(answer.json()["runs"]) == 1

    last = wait_for(lambda: all_final(http, summary, 1), what="the summary run")[0]
    assert last["status"] == "succeeded", last
    clean_run = runs_of(http, clean)[0]
    assert last["result"] == {"total": 0 + 2 + 4, "source": clean_run["run_id"]}
    assert last["trigger"] == {"kind": "event", "topic": f"product.{clean}.succeeded"}
    assert runs_of(http, raw)[0]["run_id"] == answer.json()["runs"][0]
    assert runs_of(http, raw)[0]["trigger"] == {"kind": "event", "topic": topic}

    products = {p["name"]: p for p in http.get("/api/products").json()["products"]}
    assert (products[raw]["upstream"], products[raw]["downstream"]) == ([], [clean])
    assert (products[clean]["upstream"], products[clean]["downstream"]) == ([raw], [summary])
    assert (products[summary]["upstream"], products[summary]["downstream"]) == ([clean], [])
    graph = http.get("/api/lineage").json()
    assert {"name": summary, "published": True} in graph["nodes"]
    assert {"from": raw, "to": clean, "topic": f"product.{raw}.succeeded"} in graph["edges"]
    assert {"from": clean, "to": summary, "topic": f"product.{clean}.succeeded"} in graph["edges"]


def test_failed_runs_publish_events_and_bad_mappings_fail_only_their_run(http):
    source, alarm, typo, mistyped = unique("source"), unique("alarm"), unique("typo"), unique("mistyped")
    topic = f"product.{source}.failed"
    publish(http, source, echo(source, "n: int = 0", "1 // n"))
    publish(http, alarm, echo(alarm, "why: str = ''", "why", triggers=[{"event": topic, "parameters": {"why": "$event.error.ename"}}]))
    publish(http, typo, echo(typo, "why: str = ''", "why", triggers=[{"event": topic, "parameters": {"why": "$event.eror.ename"}}]))
    publish(http, mistyped, echo(mistyped, triggers=[{"event": topic, "parameters": {"n": "$event.error.ename"}}]))

    failed = http.post(f"/api/products/{source}/invoke", json={"n": 0})
    assert failed.status_code == 500

    good = wait_for(lambda: all_final(http, alarm, 1), what="the alarm run")[0]
    assert good["status"] == "succeeded" and good["result"] == "ZeroDivisionError"
    bad = wait_for(lambda: all_final(http, typo, 1), what="the typo run")[0]
    assert bad["status"] == "failed" and bad["trigger"] == {"kind": "event", "topic": topic}
    assert bad["error"]["ename"] == "InvalidParameters" and "'$event.eror.ename'" in bad["error"]["evalue"]
    wrong = wait_for(lambda: all_final(http, mistyped, 1), what="the mistyped run")[0]
    assert wrong["status"] == "failed" and "must be int" in wrong["error"]["evalue"]


def test_loops_are_rejected_with_every_problem_and_nothing_stored(http):
    a, b, c = unique("loop-a"), unique("loop-b"), unique("loop-c")
    publish(http, a, echo(a))
    publish(http, b, echo(b, triggers=[{"event": f"product.{a}.succeeded"}]))
    publish(http, c, echo(c, triggers=[{"event": f"product.{b}.failed"}]))

    looping = echo(a, triggers=[{"event": f"product.{c}.succeeded"}, {"schedule": "every minute"}])
    answer = http.put(f"/api/products/{a}", json=looping)
    assert answer.status_code == 422
    messages = [d["message"] for d in answer.json()["details"]]
    assert f"Trigger 0: event 'product.{c}.succeeded' makes a loop: {a} → {b} → {c} → {a}." in messages
    assert any("'every minute' is not a five-field cron expression" in m for m in messages)
    assert http.get(f"/api/products/{a}").json()["versions"] == [1]

    own = http.put(f"/api/products/{b}", json=echo(b, triggers=[{"event": f"product.{b}.succeeded"}]))
    assert own.status_code == 422 and "cannot trigger on its own runs" in own.text
    assert http.get(f"/api/products/{b}").json()["versions"] == [1]


def test_event_requests_are_validated(http):
    assert http.post("/api/events/Not A Topic", json={}).status_code == 400
    too_big = http.post(f"/api/events/{unique('big')}", content=b'{"x": "' + b"a" * (1024 * 1024) + b'"}', headers=JSON)
    assert too_big.status_code == 413
    assert http.post(f"/api/events/{unique('list')}", json=[1, 2]).status_code == 422
    nobody = http.post(f"/api/events/{unique('nobody.listens')}", json={"a": 1})
    assert nobody.status_code == 202 and nobody.json()["runs"] == []


def test_nbmesh_emit(runtime, http):
    name, topic = unique("emitted"), unique("cli.topic")
    publish(http, name, echo(name, "region: str = ''", "region", triggers=[{"event": topic, "parameters": {"region": "$event.region"}}]))
    done = subprocess.run([sys.executable, "-m", "kernel_runtime", "emit", topic, "-p", "region", "EU", "--url", runtime.url],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"event {topic}: 1 run(s)" in done.stdout
    assert wait_for(lambda: all_final(http, name, 1), what="the emitted run")[0]["result"] == "EU"


# the background queue ---------------------------------------------------------------------------
def test_full_queue_answers_503_and_loses_nothing(fresh_runtime):
    rt = fresh_runtime("--pool-size", "2", "--queue-size", "3")
    topic = "slow.work"
    with rt.client() as http:
        publish(http, "slow", echo("slow", value="__import__('time').sleep(0.4) or n",
                                   triggers=[{"event": topic, "parameters": {"n": "$event.n"}}]))
        accepted, refused = [], []
        for n in range(12):
            answer = http.post(f"/api/events/{topic}", json={"n": n})
            (accepted if answer.status_code == 202 else refused).append(answer)
        assert refused, "a queue of 3 took 12 slow runs at once"
        assert all(r.status_code == 503 for r in refused)
        assert "background queue" in refused[0].json()["error"] and "nothing was queued" in refused[0].json()["error"]
        background = http.post("/api/products/slow/runs", json={})
        ids = {run_id for r in accepted for run_id in r.json()["runs"]}
        if background.status_code == 202:
            ids.add(background.json()["run_id"])
        else:
            assert background.status_code == 503
        runs = wait_for(lambda: all_final(http, "slow", len(ids)), what="the accepted runs")
        assert {r["run_id"] for r in runs} == ids
        assert all(r["status"] == "succeeded" for r in runs)


def test_flood_of_500_events_with_pool_of_2(fresh_runtime):
    rt = fresh_runtime("--pool-size", "2")
    topic = "flood.tick"
    with rt.client() as http:
        publish(http, "flood-sink", echo("flood-sink", triggers=[{"event": topic, "parameters": {"n": "$event.n"}}]))
        publish(http, "interactive", echo("interactive", value="n + 1"))
        assert http.post("/api/products/interactive/invoke", json={"n": 0}).status_code == 200  # warm

        def emit(n: int) -> list[str]:
            with httpx.Client(base_url=rt.url, timeout=60) as c:
                answer = c.post(f"/api/events/{topic}", json={"n": n})
                assert answer.status_code == 202, answer.text
                return answer.json()["runs"]

        latencies = []
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(emit, n) for n in range(500)]
            while not all(f.done() for f in futures) or len(latencies) < 10:
                t0 = time.perf_counter()
                answer = http.post("/api/products/interactive/invoke", json={"n": len(latencies)})
                latencies.append(time.perf_counter() - t0)
                assert answer.status_code == 200 and answer.json()["result"] == len(latencies)
                time.sleep(0.05)
            ids = [run_id for f in futures for run_id in f.result()]
        assert len(ids) == len(set(ids)) == 500

        runs = wait_for(lambda: all_final(http, "flood-sink", 500), timeout=240, what="all 500 runs")
        assert {r["run_id"] for r in runs} == set(ids)
        assert sorted(r["result"] for r in runs) == list(range(500))
        print(f"interactive p50 during the flood: {statistics.median(latencies) * 1000:.1f} ms over {len(latencies)} invokes")
        assert max(latencies) < 30  # answered while the flood is queued, never starved


def test_sigkill_with_runs_queued_and_running_then_restart(fresh_runtime, tmp_path):
    store = str(tmp_path / "store")
    rt = fresh_runtime("--pool-size", "2", store=store)
    with rt.client() as http:
        publish(http, "sleepy", echo("sleepy", value="__import__('time').sleep(1.5) or n",
                                     triggers=[{"event": "wake.up", "parameters": {"n": "$event.n"}}]))
        ids = [http.post("/api/products/sleepy/runs", json={"n": n}).json()["run_id"] for n in range(3)]
        ids += http.post("/api/events/wake.up", json={"n": 3}).json()["runs"]
        wait_for(lambda: http.get(f"/api/runs/{ids[0]}").json()["status"] == "running", what="a running run")
        statuses = {http.get(f"/api/runs/{i}").json()["status"] for i in ids}
        assert "queued" in statuses and "running" in statuses
    rt.kill()

    # A smaller queue than before the crash: the excess is failed, not a reason to refuse to start.
    rt = fresh_runtime("--pool-size", "2", "--queue-size", "2", store=store)
    with rt.client() as http:
        def settled():
            runs = [http.get(f"/api/runs/{i}").json() for i in ids]
            return runs if all(r["status"] in FINAL for r in runs) else None

        runs = wait_for(settled, timeout=90, what="every run to end final")
        for run in runs:
            if run["status"] == "failed":
                assert run["error"]["ename"] == "RuntimeStopped", run
            else:
                assert run["status"] == "succeeded"
        assert sum(r["status"] == "succeeded" for r in runs) == 2  # re-queued up to the bound, then run
        assert any("beyond the background queue's bound of 2" in (r["error"] or {}).get("evalue", "") for r in runs)


def test_example_weather_pipeline(fresh_runtime, tmp_path):
    """notebooks/weather_raw → weather_clean → weather_digest, started by raw's 06:00 schedule."""
    clock = TestClock(tmp_path / "clock", "2030-01-01T05:59:30Z")
    rt = fresh_runtime("--pool-size", "2", "--kernel-workdir", str(ROOT / "notebooks"), env=clock.env)  # the data they read
    with rt.client() as http:
        for stem in ("weather_raw", "weather_clean", "weather_digest"):
            nb = (ROOT / "notebooks" / f"{stem}.ipynb").read_text()
            name = stem.replace("_", "-")
            assert http.put(f"/api/products/{name}", content=nb, headers=JSON).status_code == 201
        time.sleep(2.5)  # the scheduler has seen the schedule before its due time
        clock.set("2030-01-01T06:00:05Z")
        digest = wait_for(lambda: all_final(http, "weather-digest", 1), what="the digest run")[0]
        raw, clean = runs_of(http, "weather-raw")[0], runs_of(http, "weather-clean")[0]
        assert raw["trigger"]["kind"] == "schedule" and raw["result"]["row_count"] == 365
        assert clean["status"] == "succeeded" and clean["result"]["kept"] == 365
        assert digest["status"] == "succeeded", digest["error"]
        assert digest["result"]["source_run"] == clean["run_id"]
        assert digest["result"]["days"] == 365 and len(digest["result"]["months"]) == 12
        assert http.get("/api/products/weather-clean").json()["upstream"] == ["weather-raw"]
