"""Schedules, events, chains, lineage and the background queue, on real `nbmesh serve` processes.

Schedules run against a clock the tests move (``NBMESH_CLOCK_FILE``), so a
cron minute passes in a second of test time.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_runtime import Client
from tests.conftest import (FINAL, JSON, ROOT, Gate, cli, error_of, make_notebook, metrics, publish, runs_of, stored_status,
                            unique, wait_for, wait_run)


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


def scheduled(http: httpx.Client, name: str) -> list[str]:
    return sorted(r["trigger"]["due"] for r in runs_of(http, name) if r["trigger"]["kind"] == "schedule")


def echo(name: str, param: str = "n: int = 0", value: str = "n", **meta: Any) -> dict:
    return make_notebook([("parameters", param), ("output", value)], name, **meta)


def all_final(http: httpx.Client, name: str, count: int) -> list[dict[str, Any]] | None:
    runs = runs_of(http, name)
    return runs if len(runs) >= count and all(r["status"] in FINAL for r in runs) else None


def claims(store: str, name: str) -> list[Path]:
    """The due times of ``name``'s schedules claimed in a store folder (``schedules/{name}/{id}/{due}``)."""
    return sorted((Path(store) / "schedules" / name).glob("*/*"))


def a_whole_tick_later(store: str, *replicas: httpx.Client) -> None:
    """Return once the scheduler of each of ``replicas`` has run a whole tick that read the clock after this call.

    The API shows no tick; the store does. A schedule published to a running scheduler gets the due
    time just passed claimed by its next tick, without a run. A tick reads the clock, fixes the
    schedules it looks at, then takes them one by one, and ticks never overlap: so once a second
    probe, published after the first probe's claim, is claimed too, the tick that claimed the first
    one (and read the clock after this call) is over. (With replicas sharing the store, another
    replica may claim a probe first if it syncs its catalog in time; the wait is then shorter, never
    wrong the other way.)
    """
    for _ in range(2):
        probes = [unique("tick-probe") for _ in replicas]
        for http, probe in zip(replicas, probes):
            publish(http, echo(probe, triggers=[{"schedule": "0 0 1 1 *"}]))  # yearly: never due again here
        wait_for(lambda: all(claims(store, probe) for probe in probes), 30, "the scheduler to claim a probe's schedule")


# schedules ------------------------------------------------------------------------------
@pytest.mark.slow
def test_schedules_fire_once_per_due_time_in_their_timezone(fresh_runtime, tmp_path):
    clock = TestClock(tmp_path / "clock", "2030-01-02T13:58:30Z")
    store = str(tmp_path / "store")
    rt = fresh_runtime("--pool-size", "2", store=store, env=clock.env)
    with rt.client() as http:
        publish(http, echo("every-minute", "tag: str = ''", "tag",
                           triggers=[{"schedule": "* * * * *", "parameters": {"tag": "tick"}}]))
        publish(http, echo("nine-in-new-york", triggers=[{"schedule": "0 9 * * *", "timezone": "America/New_York"}]))
        a_whole_tick_later(store, http)  # nothing is due yet
        assert scheduled(http, "every-minute") == [] and scheduled(http, "nine-in-new-york") == []

        clock.set("2030-01-02T13:59:10Z")
        wait_for(lambda: scheduled(http, "every-minute") == ["2030-01-02T13:59:00Z"], what="the 13:59 run")
        clock.set("2030-01-02T14:00:05Z")  # 09:00 in New York (EST)
        wait_for(lambda: len(scheduled(http, "every-minute")) == 2, what="the 14:00 run")
        wait_for(lambda: scheduled(http, "nine-in-new-york") == ["2030-01-02T14:00:00Z"], what="09:00 New York")
        a_whole_tick_later(store, http)  # more ticks within the same minute start nothing more
        assert scheduled(http, "every-minute") == ["2030-01-02T13:59:00Z", "2030-01-02T14:00:00Z"]
        assert scheduled(http, "nine-in-new-york") == ["2030-01-02T14:00:00Z"]

        run = wait_for(lambda: all_final(http, "every-minute", 2), what="final runs")[0]
        assert run["status"] == "succeeded" and run["result"] == "tick"
        assert run["trigger"] == {"kind": "schedule", "schedule": "* * * * *", "due": "2030-01-02T14:00:00Z"}

        # Republishing without the schedule stops it, unpublishing stops the other.
        publish(http, echo("every-minute", "tag: str = ''", "tag"))
        assert http.delete("/api/products/nine-in-new-york", headers=JSON).status_code == 204
        clock.set("2030-01-03T14:00:05Z")
        a_whole_tick_later(store, http)
        assert len(scheduled(http, "every-minute")) == 2
        assert len(scheduled(http, "nine-in-new-york")) == 1


@pytest.mark.slow
def test_schedule_runs_once_across_replicas_and_catches_up_once(fresh_runtime, tmp_path):
    clock = TestClock(tmp_path / "clock", "2030-01-01T00:00:30Z")
    store = str(tmp_path / "shared-store")
    first = fresh_runtime("--pool-size", "1", store=store, env=clock.env)
    with first.client() as http:
        publish(http, echo("replicated", triggers=[{"schedule": "* * * * *", "parameters": {"n": 1}}]))
    second = fresh_runtime("--pool-size", "1", store=store, env=clock.env)  # reads the catalog from the store
    with first.client() as http, second.client() as other:
        for minute in (1, 2, 3):
            clock.set(f"2030-01-01T00:0{minute}:05Z")
            wait_for(lambda: len(scheduled(http, "replicated")) == minute, what=f"minute {minute}")
            a_whole_tick_later(store, http, other)  # both replicas tick at least once more
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
        a_whole_tick_later(store, http)
        assert scheduled(http, "replicated") == [*dues, "2030-01-01T06:00:00Z"]
        assert wait_for(lambda: all_final(http, "replicated", 4), what="final runs")


# events -----------------------------------------------------------------------------------
def test_three_product_chain_with_lineage(http):
    raw, clean, summary = unique("raw"), unique("clean"), unique("summary")
    topic = unique("orders.updated")
    publish(http, echo(raw, "rows: int = 0", "{'rows': rows, 'values': list(range(rows))}",
                            triggers=[{"event": topic, "parameters": {"rows": "$event.count"}}]))
    publish(http, echo(clean, "values: list = []", "{'kept': [v for v in values if v % 2 == 0]}",
                              triggers=[{"event": f"product.{raw}.succeeded", "parameters": {"values": "$event.result.values"}}]))
    publish(http, echo(summary, "kept: list = []\nsource: str = ''", "{'total': sum(kept), 'source': source}",
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
    publish(http, echo(source, "n: int = 0", "1 // n"))
    publish(http, echo(alarm, "why: str = ''", "why", triggers=[{"event": topic, "parameters": {"why": "$event.error.ename"}}]))
    publish(http, echo(typo, "why: str = ''", "why", triggers=[{"event": topic, "parameters": {"why": "$event.eror.ename"}}]))
    publish(http, echo(mistyped, triggers=[{"event": topic, "parameters": {"n": "$event.error.ename"}}]))

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
    publish(http, echo(a))
    publish(http, echo(b, triggers=[{"event": f"product.{a}.succeeded"}]))
    publish(http, echo(c, triggers=[{"event": f"product.{b}.failed"}]))

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


def test_nbmesh_emit(runtime, http):
    name, topic = unique("emitted"), unique("cli.topic")
    publish(http, echo(name, "region: str = ''", "region", triggers=[{"event": topic, "parameters": {"region": "$event.region"}}]))
    done = cli("emit", topic, "-p", "region", "EU", "--url", runtime.url, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"event {topic}: 1 run(s)" in done.stdout
    assert wait_for(lambda: all_final(http, name, 1), what="the emitted run")[0]["result"] == "EU"


# the background queue ---------------------------------------------------------------------------
def gated(name: str, gate: Gate, **meta: Any) -> dict:
    """A product whose runs wait at ``gate``, then answer their ``n``."""
    return make_notebook([("parameters", "n: int = 0"), ("", gate.code), ("output", "n")], name, **meta)


def test_full_queue_answers_503_and_loses_nothing(fresh_runtime, tmp_path):
    gate = Gate()
    rt = fresh_runtime("--pool-size", "2", "--queue-size", "3")  # one background worker
    topic = "slow.work"
    with rt.client() as http:
        publish(http, gated("slow", gate, triggers=[{"event": topic, "parameters": {"n": "$event.n"}}]))
        accepted, refused = [], []
        for n in range(12):
            answer = http.post(f"/api/events/{topic}", json={"n": n})
            (accepted if answer.status_code == 202 else refused).append(answer)
        assert refused, "a queue of 3 took 12 runs at once"
        for answer in refused:
            error = error_of(answer, 503)["error"]
            assert "background queue" in error and "nothing was queued" in error
        ids = {run_id for r in accepted for run_id in r.json()["runs"]}

        # The worker holds one run at the gate; the queue holds the rest, and room is what is left of 3.
        wait_for(lambda: [r["status"] for r in runs_of(http, "slow")].count("running") == 1, what="the worker's run")
        waiting = len(ids) - 1
        assert http.get("/healthz").json()["queue"] == waiting
        for _ in range(3 - waiting):
            answer = http.post("/api/products/slow/runs", json={})
            assert answer.status_code == 202, answer.text
            ids.add(answer.json()["run_id"])
        assert metrics(http)[("nbmesh_queue_depth", (("queue", "background"),))] == 3
        error_of(http.post("/api/products/slow/runs", json={}), 503)

        gate.open()
        runs = wait_for(lambda: all_final(http, "slow", len(ids)), what="the accepted runs")
        assert {r["run_id"] for r in runs} == ids
        assert all(r["status"] == "succeeded" for r in runs)


@pytest.mark.slow
def test_flood_of_500_events_with_pool_of_2(fresh_runtime):
    rt = fresh_runtime("--pool-size", "2")
    topic = "flood.tick"
    with rt.client() as http:
        publish(http, echo("flood-sink", triggers=[{"event": topic, "parameters": {"n": "$event.n"}}]))
        publish(http, echo("interactive", value="n + 1"))
        assert http.post("/api/products/interactive/invoke", json={"n": 0}).status_code == 200  # warm

        def emit(n: int) -> list[str]:
            with httpx.Client(base_url=rt.url, timeout=60) as c:
                answer = c.post(f"/api/events/{topic}", json={"n": n})
                assert answer.status_code == 202, answer.text
                return answer.json()["runs"]

        # Interactive invokes keep being answered while the flood is queued: never starved.
        # (How fast they are is bench/'s business.)
        invoked = 0
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(emit, n) for n in range(500)]
            while not all(f.done() for f in futures) or invoked < 10:
                answer = http.post("/api/products/interactive/invoke", json={"n": invoked})
                invoked += 1
                assert answer.status_code == 200 and answer.json()["result"] == invoked
            ids = [run_id for f in futures for run_id in f.result()]
        assert len(ids) == len(set(ids)) == 500

        runs = wait_for(lambda: all_final(http, "flood-sink", 500), timeout=240, what="all 500 runs")
        assert {r["run_id"] for r in runs} == set(ids)
        assert sorted(r["result"] for r in runs) == list(range(500))


def test_sigkill_with_runs_queued_and_running_then_restart(fresh_runtime, tmp_path):
    store = tmp_path / "store"
    gate = Gate()
    rt = fresh_runtime("--pool-size", "2", store=str(store))  # one background worker
    with rt.client() as http:
        publish(http, gated("sleepy", gate, triggers=[{"event": "wake.up", "parameters": {"n": "$event.n"}}]))
        ids = [http.post("/api/products/sleepy/runs", json={"n": n}).json()["run_id"] for n in range(3)]
        ids += http.post("/api/events/wake.up", json={"n": 3}).json()["runs"]
        wait_run(http, ids[0], "running")
        assert [http.get(f"/api/runs/{i}").json()["status"] for i in ids] == ["running", "queued", "queued", "queued"]
        # The API shows "running" a moment before the store does: kill only once the store has it.
        wait_for(lambda: stored_status(store, ids[0]) == "running", what="the running state in the store")
    rt.kill()
    gate.open()

    # A smaller queue than before the crash: the excess is failed, not a reason to refuse to start.
    rt = fresh_runtime("--pool-size", "2", "--queue-size", "2", store=str(store))
    with rt.client() as http:
        runs = {i: wait_run(http, i, timeout=90) for i in ids}
    stopped = runs[ids[0]]
    assert stopped["status"] == "failed" and stopped["error"]["ename"] == "RuntimeStopped"
    assert "was running" in stopped["error"]["evalue"]
    queued = [runs[i] for i in ids[1:]]
    assert sorted(r["status"] for r in queued) == ["failed", "succeeded", "succeeded"]  # re-queued up to the bound, then run
    [excess] = [r for r in queued if r["status"] == "failed"]
    assert excess["error"]["ename"] == "RuntimeStopped"
    assert "beyond the background queue's bound of 2" in excess["error"]["evalue"]


def test_example_weather_pipeline(fresh_runtime, tmp_path):
    """notebooks/weather_raw → weather_clean → weather_digest, started by raw's 06:00 schedule."""
    clock = TestClock(tmp_path / "clock", "2030-01-01T05:59:30Z")
    store = str(tmp_path / "store")
    rt = fresh_runtime("--pool-size", "2", store=store, env=clock.env)
    with rt.client() as http:
        for stem in ("weather_raw", "weather_clean", "weather_digest"):  # with the data they read
            Client(rt.url).publish(ROOT / "notebooks" / f"{stem}.ipynb")
        # The scheduler has seen the schedule before its due time: it claimed the due time just passed.
        wait_for(lambda: claims(store, "weather-raw"), 30, "the scheduler to see weather-raw's schedule")
        clock.set("2030-01-01T06:00:05Z")
        digest = wait_for(lambda: all_final(http, "weather-digest", 1), what="the digest run")[0]
        raw, clean = runs_of(http, "weather-raw")[0], runs_of(http, "weather-clean")[0]
        assert raw["trigger"]["kind"] == "schedule" and raw["result"]["row_count"] == 365
        assert clean["status"] == "succeeded" and clean["result"]["kept"] == 365
        assert digest["status"] == "succeeded", digest["error"]
        assert digest["result"]["source_run"] == clean["run_id"]
        assert digest["result"]["days"] == 365 and len(digest["result"]["months"]) == 12
        assert http.get("/api/products/weather-clean").json()["upstream"] == ["weather-raw"]
