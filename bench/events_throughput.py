"""Events through a 3-product chain, and what an event flood does to interactive latency.

One run, one runtime (figures from different runs are not comparable: the machine is shared
and noisy), three phases:

1. quiet: ``--invokes`` sequential interactive invocations of a trivial product, nothing else running;
2. chain alone: ``--events`` events posted as fast as 4 clients can, each running
   ``bench-a`` → ``bench-b`` → ``bench-c`` (every hop a background run started by the
   previous product's success event); events per second = events / time until the last
   ``bench-c`` run is final;
3. flood: the same events again while one client keeps invoking the interactive product;
   its p50/p95 next to phase 1's, and the chain's events per second next to phase 2's.

Timings are reported, never asserted. Run it with the project's venv:

    .venv/bin/python bench/events_throughput.py [--events 200] [--invokes 100] [--pool-size 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from tests.conftest import Runtime, free_port, make_notebook  # noqa: E402

TOPIC = "bench.start"
FINAL = {"succeeded", "failed", "timed_out"}


def chain() -> dict[str, dict]:
    def product(name: str, value: str, trigger: dict | None) -> dict:
        return make_notebook([("parameters", "n: int = 0"), ("output", value)], name, triggers=[trigger] if trigger else [])

    return {
        "bench-a": product("bench-a", "{'n': n}", {"event": TOPIC, "parameters": {"n": "$event.n"}}),
        "bench-b": product("bench-b", "{'n': n + 1}", {"event": "product.bench-a.succeeded", "parameters": {"n": "$event.result.n"}}),
        "bench-c": product("bench-c", "{'n': n * 2}", {"event": "product.bench-b.succeeded", "parameters": {"n": "$event.result.n"}}),
        "bench-interactive": product("bench-interactive", "n + 1", None),
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def invoke(http: httpx.Client, i: int) -> float:
    t0 = time.perf_counter()
    answer = http.post("/api/products/bench-interactive/invoke", json={"n": i})
    elapsed = time.perf_counter() - t0
    if answer.status_code != 200 or answer.json()["result"] != i + 1:
        raise RuntimeError(f"interactive invoke answered {answer.status_code}: {answer.text[:200]}")
    return elapsed


def final_count(http: httpx.Client, name: str) -> tuple[int, int]:
    runs = http.get(f"/api/products/{name}/runs", params={"limit": 1000}).json()["runs"]
    final = [r for r in runs if r["status"] in FINAL]
    return len(final), sum(r["status"] != "succeeded" for r in final)


def flood(url: str, events: int, offset: int) -> None:
    def post(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            answer = c.post(f"/api/events/{TOPIC}", json={"n": n})
            if answer.status_code != 202:
                raise RuntimeError(f"event {n} answered {answer.status_code}: {answer.text[:200]}")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(post, range(offset, offset + events)))


def drain(http: httpx.Client, expected: int, timeout: float) -> tuple[float, int]:
    """Seconds until ``expected`` bench-c runs are final, and how many runs of the chain failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, failed = final_count(http, "bench-c")
        if done >= expected:
            return time.monotonic(), failed + final_count(http, "bench-a")[1] + final_count(http, "bench-b")[1]
        time.sleep(0.25)
    raise RuntimeError(f"the chain did not finish {expected} events within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="events per flood (default 200; at most 500)")
    parser.add_argument("--invokes", type=int, default=100, help="interactive invocations in the quiet phase")
    parser.add_argument("--pool-size", type=int, default=2)
    args = parser.parse_args()
    events = min(args.events, 500)  # two floods of bench-c runs must fit the runs listing's limit of 1000

    with tempfile.TemporaryDirectory(prefix="nbmesh-bench-") as tmp:
        rt = Runtime(store=str(Path(tmp) / "store"), port=free_port(), args=["--pool-size", str(args.pool_size)])
        try:
            rt.start()
            with rt.client() as http:
                for name, nb in chain().items():
                    http.put(f"/api/products/{name}", json=nb).raise_for_status()
                # Warm every product's kernel preparation so no phase pays for the first setup.
                flood(rt.url, 2, 10_000)
                drain(http, 2, 120)
                for i in range(5):
                    invoke(http, i)

                quiet = [invoke(http, i) for i in range(args.invokes)]

                t0 = time.monotonic()
                flood(rt.url, events, 0)
                t_end, failed_alone = drain(http, 2 + events, 600)
                alone_eps = events / (t_end - t0)

                during: list[float] = []
                stop = threading.Event()
                feeder = threading.Thread(target=lambda: (flood(rt.url, events, 20_000), stop.set()))
                t0 = time.monotonic()
                feeder.start()
                i = 0
                while True:
                    during.append(invoke(http, i))
                    i += 1
                    if stop.is_set() and final_count(http, "bench-c")[0] >= 2 + 2 * events:
                        break
                feeder.join()
                t_end, failed_flood = drain(http, 2 + 2 * events, 600)
                flood_eps = events / (t_end - t0)
        finally:
            rt.stop()

    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pool_size": args.pool_size,
        "events_per_flood": events,
        "chain_events_per_s_alone": round(alone_eps, 2),
        "chain_runs_per_s_alone": round(3 * alone_eps, 2),
        "chain_events_per_s_with_interactive_load": round(flood_eps, 2),
        "interactive_quiet": percentiles(quiet),
        "interactive_during_flood": percentiles(during),
        "failed_chain_runs": failed_alone + failed_flood,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "events_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    q, d = report["interactive_quiet"], report["interactive_during_flood"]
    print(f"3-product chain, pool size {args.pool_size}, {events} events per flood")
    print(f"  events/s through the chain:  alone {alone_eps:.1f}   with interactive load {flood_eps:.1f}")
    print(f"  interactive p50 / p95 (ms):  quiet {q['p50_ms']} / {q['p95_ms']}   during flood {d['p50_ms']} / {d['p95_ms']} ({d['n']} invokes)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
