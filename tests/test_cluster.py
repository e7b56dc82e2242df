"""Replicas that share a store and a Redis (`nbmesh serve --queue redis://…`): a publish or unpublish on
one is served by all within a second, schedules fire once per due time across three of them.

Real parts only: Debian's `redis-server` on loopback with its own data folder, three `nbmesh serve`
processes on one store folder. The store polling is set to an hour, so only the Redis announcement
can explain a change seen within the second.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import error_of, invoke, publish, wait_for
from tests.test_queue import queue_redis  # noqa: F401 (a fixture: Debian's redis-server, AOF on)
from tests.test_triggers import TestClock, a_whole_tick_later, all_final, echo, scheduled

pytestmark = pytest.mark.slow  # three replicas start for each test

NO_POLLING = ("--catalog-sync", "3600")


def start_replicas(fresh_runtime, store: str, redis_url: str, count: int, *args: str, pool: int = 1,
                   env: dict[str, str] | None = None):
    """``count`` replicas on one store folder and one Redis, each with ``pool`` kernels (and a spare)."""
    return [fresh_runtime("--pool-size", str(pool), "--queue", redis_url, *args, store=store, env=env) for _ in range(count)]


def version_on(http: httpx.Client, name: str) -> int | None:
    answer = http.get(f"/api/products/{name}")
    return answer.json()["version"] if answer.status_code == 200 else None


def test_publish_and_unpublish_are_served_by_every_replica_within_a_second(fresh_runtime, queue_redis, tmp_path):
    a, b, c = start_replicas(fresh_runtime, str(tmp_path / "store"), queue_redis.url, 3, *NO_POLLING)
    with a.client() as on_a, b.client() as on_b, c.client() as on_c:
        others = (on_b, on_c)
        publish(on_a, echo("shared", value="n + 1"))
        wait_for(lambda: all(version_on(http, "shared") == 1 for http in others), 1, "version 1 on every replica")
        assert invoke(on_c, "shared", n=1)["result"] == 2  # served, not only listed

        publish(on_b, echo("shared", value="n + 2"))  # a new version, from another replica
        wait_for(lambda: version_on(on_a, "shared") == 2 and version_on(on_c, "shared") == 2, 1, "version 2 everywhere")
        assert invoke(on_a, "shared", n=1)["result"] == 3

        assert on_c.request("DELETE", "/api/products/shared", headers={"Content-Type": "application/json"}).status_code == 204
        wait_for(lambda: version_on(on_a, "shared") is None and version_on(on_b, "shared") is None, 1, "the unpublish everywhere")
        error_of(on_a.post("/api/products/shared/invoke", json={"n": 1}), 404)


def test_a_change_made_while_redis_was_down_is_served_once_it_returns(fresh_runtime, queue_redis, tmp_path):
    a, b = start_replicas(fresh_runtime, str(tmp_path / "store"), queue_redis.url, 2, *NO_POLLING)
    with a.client() as on_a, b.client() as on_b:
        queue_redis.stop()
        publish(on_a, echo("while-down"))  # the store takes it; the announcement is lost
        assert version_on(on_a, "while-down") == 1 and version_on(on_b, "while-down") is None
        queue_redis.start()
        # On subscribing again a replica reloads its whole catalog; the store polling is an hour away.
        wait_for(lambda: version_on(on_b, "while-down") == 1, 30, "the replica to catch up once Redis is back")
        publish(on_a, echo("after-return"))
        wait_for(lambda: version_on(on_b, "after-return") == 1, 1, "announcements to work again")


def test_a_schedule_on_three_replicas_fires_once_per_due_time(fresh_runtime, queue_redis, tmp_path):
    clock = TestClock(tmp_path / "clock", "2030-01-01T00:00:30Z")
    store = str(tmp_path / "store")
    reps = start_replicas(fresh_runtime, store, queue_redis.url, 3, env=clock.env)
    clients = [rt.client() for rt in reps]
    try:
        first = clients[0]
        publish(first, echo("every-minute", triggers=[{"schedule": "* * * * *", "parameters": {"n": 1}}]))
        # Every replica has the schedule (announced) and has claimed the due time just passed.
        wait_for(lambda: all(version_on(http, "every-minute") == 1 for http in clients), 1, "the schedule on every replica")
        a_whole_tick_later(store, *clients)
        dues = []
        for minute in (1, 2, 3):
            clock.set(f"2030-01-01T00:0{minute}:05Z")
            dues.append(f"2030-01-01T00:0{minute}:00Z")
            wait_for(lambda: scheduled(first, "every-minute") == dues, 30, f"the run due at minute {minute}")
            a_whole_tick_later(store, *clients)  # every scheduler has looked at this due time
            assert scheduled(first, "every-minute") == dues
        runs = wait_for(lambda: all_final(first, "every-minute", 3), 60, "the scheduled runs to end")
        assert [r["status"] for r in runs] == ["succeeded"] * 3
        assert all(scheduled(http, "every-minute") == dues for http in clients)
    finally:
        for http in clients:
            http.close()
