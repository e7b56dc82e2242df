"""The result cache (docs/reference/notebook-format.md, `cache_ttl`) on a real runtime: hits answer the
earlier run with `cached: true` and run nothing, misses run; both counted in /metrics; defaults filled
before the key; expiry; republish and unpublish drop entries; background and event runs always run;
the LRU bound; `cache_ttl` validated at publish."""

from __future__ import annotations

import pytest

from tests.conftest import error_of, invoke, make_notebook, metrics, publish, runs_of, wait_for, wait_run

COUNTER = [("parameters", "n: int = 1"), ("", "import uuid"), ("output", "[{'n': n, 'token': uuid.uuid4().hex}]")]
FAILS = [("parameters", "n: int = 1"), ("output", "n / 0")]


def cache_counts(http, name: str) -> tuple[float, float]:
    found = metrics(http)
    labels = (("product", name),)
    return found.get(("nbmesh_result_cache_hits_total", labels), 0), found.get(("nbmesh_result_cache_misses_total", labels), 0)


def test_a_second_invoke_is_answered_from_the_cache_without_running(http):
    name = publish(http, COUNTER, cache_ttl=600)
    first = invoke(http, name, n=2)
    assert first["cached"] is False
    second = invoke(http, name, n=2)
    assert second["cached"] is True
    assert second["run_id"] == first["run_id"] and second["result"] == first["result"]
    # A default spelled out is the same call; another value is another entry.
    assert invoke(http, name)["cached"] is False
    assert invoke(http, name, n=1)["cached"] is True
    assert invoke(http, name, n=3)["cached"] is False
    assert len(runs_of(http, name)) == 3
    assert cache_counts(http, name) == (2, 3)
    # The stored record is the run itself, not the cached answer.
    assert http.get(f"/api/runs/{first['run_id']}").json()["cached"] is False


def test_the_result_route_reads_the_cache_too(http):
    name = publish(http, COUNTER, cache_ttl=600)
    token = http.get(f"/api/products/{name}/result?n=5").json()[0]["token"]
    assert http.get(f"/api/products/{name}/result", params={"n": "5"}).json()[0]["token"] == token
    assert http.get(f"/api/products/{name}/result?n=5&format=csv").text.endswith(f"5,\"{token}\"\n")
    assert cache_counts(http, name) == (2, 1)


def test_without_cache_ttl_nothing_is_cached_or_counted(http):
    name = publish(http, COUNTER)
    assert invoke(http, name)["run_id"] != invoke(http, name)["run_id"]
    assert cache_counts(http, name) == (0, 0)


def test_a_failed_run_is_not_cached(http):
    name = publish(http, FAILS, cache_ttl=600)
    assert invoke(http, name, status=500)["run_id"] != invoke(http, name, status=500)["run_id"]
    assert cache_counts(http, name) == (0, 2)


def test_an_entry_expires_after_its_ttl(http):
    name = publish(http, COUNTER, cache_ttl=0.5)
    first = invoke(http, name)
    # Each call either hits (the first run, still fresh) or runs again once it expired.
    fresh = wait_for(lambda: (run := invoke(http, name))["cached"] is False and run, timeout=30, what="the entry to expire")
    assert fresh["run_id"] != first["run_id"]


def test_republish_and_unpublish_drop_the_entries(http):
    name = publish(http, COUNTER, cache_ttl=600)
    first = invoke(http, name)
    assert invoke(http, name)["cached"] is True
    publish(http, make_notebook(COUNTER + [("md", "v2")], cache_ttl=600), name)
    # Version 1 is still published and pinnable, but its entry went with the republish.
    pinned = invoke(http, f"{name}@1")
    assert pinned["cached"] is False and pinned["run_id"] != first["run_id"]
    assert invoke(http, f"{name}@1")["cached"] is True
    assert invoke(http, name)["cached"] is False
    entries = metrics(http)[("nbmesh_result_cache_entries", ())]
    assert http.delete(f"/api/products/{name}", headers={"Content-Type": "application/json"}).status_code == 204
    assert metrics(http)[("nbmesh_result_cache_entries", ())] == entries - 2


def test_background_and_event_runs_always_run_and_do_not_fill_the_cache(http):
    topic = "cache.test"
    name = publish(http, COUNTER, cache_ttl=600, triggers=[{"event": topic}])
    cached = invoke(http, name)
    background = [http.post(f"/api/products/{name}/runs", json={}).json()["run_id"] for _ in range(2)]
    events = [http.post(f"/api/events/{topic}", json={}).json()["runs"][0] for _ in range(2)]
    for run_id in background + events:
        run = wait_run(http, run_id)
        assert run["status"] == "succeeded" and run["cached"] is False and run["result"] != cached["result"]
    assert invoke(http, name)["run_id"] == cached["run_id"]
    other = publish(http, COUNTER, cache_ttl=600)
    submitted = http.post(f"/api/products/{other}/runs", json={}).json()["run_id"]
    wait_run(http, submitted)
    assert invoke(http, other)["run_id"] != submitted


def test_the_cache_keeps_at_most_cache_size_entries(fresh_runtime):
    rt = fresh_runtime("--set", "runs.cache_size=2")
    with rt.client() as http:
        name = publish(http, COUNTER, cache_ttl=600)
        for n in (1, 2, 3):
            invoke(http, name, n=n)
        assert invoke(http, name, n=3)["cached"] is True
        assert invoke(http, name, n=1)["cached"] is False  # the least recently used went first
        assert metrics(http)[("nbmesh_result_cache_entries", ())] == 2


@pytest.mark.parametrize("ttl", [-1, "60", True, 1e9, None, [60]])
def test_a_bad_cache_ttl_is_a_publish_problem(http, ttl):
    body = error_of(http.put("/api/products/bad-ttl", json=make_notebook(COUNTER, cache_ttl=ttl)), 422)
    assert any("cache_ttl" in d["message"] for d in body["details"]), body
