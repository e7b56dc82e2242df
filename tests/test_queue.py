"""Replicas sharing runs through Redis Streams (``nbmesh serve --queue redis://…``), on real parts.

Debian's ``redis-server`` (its own data dir, AOF on) is the queue; three ``nbmesh serve`` replicas
share one store folder. The products count their own executions: each run pushes its number to a
list in a second Redis, the side-effect log (kernels share the host's network), which stays up while
the queue's Redis is stopped. A run records which replica ran it from ``NBMESH_TEST_REPLICA``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import FINAL, Runtime, free_port, make_notebook, publish, runs_of, unique, wait_for

class RedisServer:
    """One redis-server on loopback with its own data dir; AOF on, so a restart keeps what it had."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)

    def start(self) -> RedisServer:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "", "--appendonly", "yes"]
        self.proc = subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)

        def answers() -> bool:
            try:
                return self.client().ping()
            except redis.ConnectionError:
                return False

        wait_for(answers, 10, "redis-server to answer")
        return self

    def stop(self) -> None:
        """SIGTERM: Redis writes its AOF out and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def queue_redis(tmp_path):
    server = RedisServer(tmp_path / "queue-redis").start()
    yield server
    server.stop()


@pytest.fixture
def effects(tmp_path):
    """The side-effect log the products write to: another Redis."""
    server = RedisServer(tmp_path / "effects-redis").start()
    yield server.client()
    server.stop()


@pytest.fixture
def replicas(tmp_path, queue_redis, effects):
    """``start(count, *args)``: that many replicas on one store and the queue's Redis, started together."""
    started: list[Runtime] = []
    effects_port = effects.connection_pool.connection_kwargs["port"]

    def start(count: int, *args: str) -> list[Runtime]:
        batch = [
            Runtime(
                store=str(tmp_path / "store"),
                port=free_port(),
                args=["--queue", queue_redis.url, "--pool-size", "2", "--spare-kernels", "0", "--catalog-sync", "0.2",
                      "--kernel-env", "NBMESH_TEST_REPLICA", "--kernel-env", "NBMESH_TEST_EFFECTS", "--kernel-env", "NBMESH_TEST_QUEUE",
                      "--set", "queue.block=0.2", "--grace", "2", *args],
                env={"NBMESH_TEST_REPLICA": f"r{len(started) + i}", "NBMESH_TEST_EFFECTS": str(effects_port),
                     "NBMESH_TEST_QUEUE": str(queue_redis.port)},
            )
            for i in range(count)
        ]
        started.extend(batch)
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            list(pool.map(Runtime.start, batch))
        return batch

    yield start
    for rt in started:
        rt.stop()


def effectful(name: str, **meta: Any) -> dict[str, Any]:
    """A product that logs "n replica" to ``started``, sleeps, then pushes n to ``done``: its effect.
    With ``pause`` (ms) it then pauses the queue's Redis for writes: its replica cannot let it go."""
    body = (
        "import os, time, redis\n"
        "effects = redis.Redis(port=int(os.environ['NBMESH_TEST_EFFECTS']))\n"
        f"effects.rpush('{name}:started', f\"{{n}} {{os.environ['NBMESH_TEST_REPLICA']}}\")\n"
        "time.sleep(seconds)\n"
        f"effects.rpush('{name}:done', n)\n"
        "if pause:\n"
        "    redis.Redis(port=int(os.environ['NBMESH_TEST_QUEUE'])).client_pause(pause, all=False)"
    )
    params = "n: int = 0\nseconds: float = 0.5\npause: int = 0"
    return make_notebook([("parameters", params), ("", body), ("output", "n")], name, **meta)


def everywhere(runtimes: list[Runtime], name: str) -> None:
    """Wait until every replica serves product ``name``."""
    wait_for(lambda: all(httpx.get(f"{rt.url}/api/products/{name}").status_code == 200 for rt in runtimes), 30,
             f"every replica to serve {name}")


def submit(rt: Runtime, name: str, **params: Any) -> str:
    answer = httpx.post(f"{rt.url}/api/products/{name}/runs", json=params, timeout=30)
    assert answer.status_code == 202, answer.text
    return answer.json()["run_id"]


def done_counts(effects: redis.Redis, name: str) -> collections.Counter:
    return collections.Counter(int(n) for n in effects.lrange(f"{name}:done", 0, -1))


def in_flight_on(effects: redis.Redis, name: str, replica: str) -> list[int]:
    """The n of each run replica ``replica`` has started and not finished (its effect not done)."""
    done = done_counts(effects, name)
    started = [entry.split() for entry in effects.lrange(f"{name}:started", 0, -1)]
    return [int(n) for n, where in started if where == replica and not done[int(n)]]


class Watcher:
    """Polls runs on a replica and keeps every status each showed, to catch a final status that changes."""

    def __init__(self, rt: Runtime, run_ids: list[str]) -> None:
        self.rt, self.run_ids = rt, run_ids
        self.seen: dict[str, list[tuple[str, Any]]] = collections.defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        with httpx.Client(base_url=self.rt.url, timeout=10) as http:
            while not self._stop.is_set():
                for run_id in self.run_ids:
                    try:
                        run = http.get(f"/api/runs/{run_id}").json()
                    except httpx.TransportError:
                        continue
                    shown = (run["status"], (run["error"] or {}).get("ename"))
                    if not self.seen[run_id] or self.seen[run_id][-1] != shown:
                        self.seen[run_id].append(shown)
                self._stop.wait(0.05)

    def stop(self) -> dict[str, list[tuple[str, Any]]]:
        self._stop.set()
        self._thread.join()
        return self.seen


def finals(rt: Runtime, run_ids: list[str], timeout: float = 90) -> dict[str, dict[str, Any]]:
    """Each run, once all are final (read on replica ``rt``)."""

    def read() -> dict[str, dict[str, Any]] | None:
        runs = {run_id: httpx.get(f"{rt.url}/api/runs/{run_id}").json() for run_id in run_ids}
        return runs if all(run["status"] in FINAL for run in runs.values()) else None

    return wait_for(read, timeout, "every run to be final")


# kill -9 -------------------------------------------------------------------------------------------
def test_a_replica_killed_with_runs_queued_and_running_loses_none_and_finishes_each_once(replicas, effects):
    a, b, c = replicas(3, "--lease", "2")
    name = publish(httpx.Client(base_url=a.url), effectful(unique("work")))
    everywhere([a, b, c], name)
    run_ids = [submit(rt, name, n=n, seconds=1.0) for n, rt in zip(range(12), itertools.cycle([a, b, c]))]
    # Kill replica a while a run it took is mid-sleep: queued runs wait in Redis, its run is held.
    killed_n = wait_for(lambda: in_flight_on(effects, name, "r0"), 30, "replica r0 to be running a run")[0]
    a.kill()
    # Long runs that b and c hold or that wait while a new life of a starts: it must settle none of them.
    run_ids += [submit(rt, name, n=n, seconds=6.0) for n, rt in zip(range(12, 16), itertools.cycle([b, c]))]
    watcher = Watcher(b, run_ids)
    a.start()
    assert set(range(12, 16)) - set(done_counts(effects, name)), "a's new life must start while long runs are unfinished"
    runs = finals(b, run_ids)
    seen = watcher.stop()

    assert [runs[run_id]["status"] for run_id in run_ids] == ["succeeded"] * 16, runs
    assert [runs[run_id]["result"] for run_id in run_ids] == list(range(16))
    # Each run's effect happened once, the killed one's included (it never reached its effect on a).
    assert done_counts(effects, name) == collections.Counter(range(16))
    started = [entry.split() for entry in effects.lrange(f"{name}:started", 0, -1)]
    assert [where for n, where in started if int(n) == killed_n][0] == "r0"
    assert len([n for n, _ in started if int(n) == killed_n]) == 2, "another replica took the killed replica's run over"
    # No run showed a final status and then another: no live replica's run was settled by a's restart.
    for run_id, statuses in seen.items():
        final_seen = [status for status in statuses if status[0] in FINAL]
        assert final_seen in ([], [("succeeded", None)]), (run_id, statuses)


def test_heartbeats_keep_a_long_run_and_one_delivered_too_often_is_dead_lettered(replicas, effects, queue_redis):
    a, b = replicas(2, "--lease", "1", "--set", "queue.max_deliveries=1")
    name = publish(httpx.Client(base_url=a.url), effectful(unique("dead")))
    everywhere([a, b], name)
    # A run three times its lease, on a live replica: its heartbeats keep it; nobody takes it over.
    long_id = submit(a, name, n=3, seconds=3)
    assert finals(a, [long_id])[long_id]["status"] == "succeeded"
    assert effects.llen(f"{name}:started") == 1
    # A run whose replica dies is delivered again: past max_deliveries, it is dead-lettered instead.
    run_id = submit(b, name, n=7, seconds=30)
    holder = wait_for(lambda: next((rt for i, rt in enumerate([a, b]) if in_flight_on(effects, name, f"r{i}") == [7]), None),
                      30, "a replica to run the run")
    holder.kill()
    other = b if holder is a else a
    run = finals(other, [run_id])[run_id]

    assert run["status"] == "failed"
    assert run["error"]["ename"] == "DeadLettered"
    assert "delivered 1 times" in run["error"]["evalue"]
    assert effects.lrange(f"{name}:started", 1, -1) == [f"7 {'r0' if holder is a else 'r1'}"]  # not run again
    dead = queue_redis.client().xrange("nbmesh:runs:dead")
    assert len(dead) == 1 and run_id in dead[0][1]["run"]
    assert queue_redis.client().xlen("nbmesh:runs") == 0


# chains ----------------------------------------------------------------------------------------------
def test_a_chain_with_a_replica_killed_midway_gives_every_succeeded_upstream_run_one_downstream_run(replicas, effects):
    a, b, c = replicas(3, "--lease", "2")
    up = unique("up")
    down = unique("down")
    with httpx.Client(base_url=b.url) as http:
        publish(http, effectful(up))
        publish(http, effectful(down, triggers=[{"event": f"product.{up}.succeeded",
                                                 "parameters": {"n": "$event.result", "seconds": 0.3}}]))
    everywhere([a, b, c], down)
    up_ids = [submit(rt, up, n=n, seconds=0.3) for n, rt in zip(range(15), itertools.cycle([a, b, c]))]
    # Kill replica a once the chain is under way: some links made, a holding a run of either product.
    wait_for(lambda: effects.llen(f"{down}:started") >= 2 and (in_flight_on(effects, up, "r0") or in_flight_on(effects, down, "r0")),
             30, "replica r0 to be running a link of the chain")
    killed_down = in_flight_on(effects, down, "r0")[:1]
    a.kill()
    ups = finals(b, up_ids)
    succeeded = sorted(run["result"] for run in ups.values() if run["status"] == "succeeded")
    assert succeeded == list(range(15))

    def downstream() -> list[dict[str, Any]] | None:
        runs = runs_of(httpx.Client(base_url=c.url), down)
        return runs if len(runs) >= 15 and all(run["status"] in FINAL for run in runs) else None

    downs = wait_for(downstream, 60, "a downstream run per upstream run")
    assert sorted(run["parameters"]["n"] for run in downs) == list(range(15)), "exactly one downstream run per upstream run"
    assert all(run["status"] == "succeeded" for run in downs), downs
    assert {run["trigger"]["topic"] for run in downs} == {f"product.{up}.succeeded"}
    # Each downstream effect happened once; but for the run a was killed in: if the kill came after its
    # effect and before its record, it ran again elsewhere (at-least-once, docs/queue.md).
    counts = done_counts(effects, down)
    assert set(counts) == set(range(15))
    assert all(count == 1 for n, count in counts.items() if n not in killed_down), counts


def test_a_replica_killed_between_a_final_record_and_letting_it_go_loses_no_link(replicas, effects, queue_redis, tmp_path):
    (a,) = replicas(1, "--lease", "1")
    up, down = unique("up"), unique("down")
    with httpx.Client(base_url=a.url) as http:
        publish(http, effectful(up))
        publish(http, effectful(down, triggers=[{"event": f"product.{up}.succeeded", "parameters": {"n": "$event.result", "seconds": 0}}]))
    # The run pauses Redis's writes as it ends: its record gets final in the store, and its replica
    # hangs letting it go (its events with it) until it is killed.
    run_id = submit(a, up, n=5, seconds=0, pause=30000)
    record = tmp_path / "store" / "runs" / f"{run_id}.json"
    wait_for(lambda: record.exists() and '"succeeded"' in record.read_text(), 30, "the run's final record in the store")
    a.kill()
    queue_redis.client().client_unpause()
    (b,) = replicas(1, "--lease", "1")
    downs = wait_for(lambda: [run for run in runs_of(httpx.Client(base_url=b.url), down) if run["status"] in FINAL], 30,
                     "the downstream run")

    assert [(run["status"], run["parameters"]["n"]) for run in downs] == [("succeeded", 5)], [run["error"] for run in downs]
    assert done_counts(effects, up) == collections.Counter([5])  # the upstream run was let go, not run again
    assert httpx.get(f"{b.url}/api/runs/{run_id}").json()["status"] == "succeeded"
    assert queue_redis.client().xlen("nbmesh:runs") == 0


# Redis outages ------------------------------------------------------------------------------------------
def test_redis_stopped_and_restarted_mid_flood_refuses_submits_keeps_invokes_and_loses_nothing(replicas, effects, queue_redis):
    # A lease longer than the outage: runs held across it are not taken over (docs/queue.md).
    a, b = replicas(2, "--lease", "20")
    name = publish(httpx.Client(base_url=a.url), effectful(unique("flood")))
    everywhere([a, b], name)
    accepted: dict[int, str] = {}
    refused: list[int] = []
    numbers = itertools.count()

    def flood_until(enough) -> None:
        for rt in itertools.cycle([a, b]):
            if enough():
                return
            n = next(numbers)
            answer = httpx.post(f"{rt.url}/api/products/{name}/runs", json={"n": n, "seconds": 0.2}, timeout=30)
            if answer.status_code == 202:
                accepted[n] = answer.json()["run_id"]
            else:
                assert answer.status_code == 503, answer.text
                body = answer.json()
                assert body["type"] == "QueueUnavailable" and "Redis" in body["error"], body
                refused.append(n)

    flood_until(lambda: len(accepted) >= 10)
    queue_redis.stop()
    flood_until(lambda: len(refused) >= 4)
    # Sync invokes need no queue.
    for rt in (a, b):
        answer = httpx.post(f"{rt.url}/api/products/{name}/invoke", json={"n": 1000, "seconds": 0}, timeout=30)
        assert answer.status_code == 200 and answer.json()["result"] == 1000, answer.text
    queue_redis.start()
    before = len(accepted)
    flood_until(lambda: len(accepted) >= before + 6)

    runs = finals(a, list(accepted.values()))
    assert all(run["status"] == "succeeded" for run in runs.values()), [r for r in runs.values() if r["status"] != "succeeded"]
    assert done_counts(effects, name) == collections.Counter([*accepted, 1000, 1000])
    assert not set(refused) & set(done_counts(effects, name)), "a refused submit ran"
