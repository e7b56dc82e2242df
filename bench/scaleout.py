"""Replicas on one Redis (`nbmesh serve --queue`): background throughput with 1, 2 and 3 replicas, the
load balancer's added latency, and how long a killed replica's run waits to be taken over.

One run, one machine, real parts: Debian's redis-server (AOF on) and haproxy with deploy/haproxy.cfg,
`nbmesh serve` replicas sharing a store folder, all on loopback. Three phases:

1. throughput: ``--runs`` background runs (`POST /api/products/{name}/runs`, spread over the live
   replicas by 4 clients) of a product that waits ``--work`` seconds (I/O-like: the replicas share
   this machine's cores, so CPU-bound work could not scale), timed from the first submit until every
   run is final; with 1, then 2, then 3 replicas (each started before its measure, kernels warm);
2. load balancer hop: sequential invocations of a trivial product, directly on the replica HAProxy
   sends it to and through HAProxy, alternating call by call; p50/p95 of each, and the added
   latency as the median of each pair's difference;
3. takeover: a run that takes ``--hold`` seconds is started, the replica holding it (Redis's pending
   list names it) is killed with SIGKILL, and the bench times how long until another replica holds
   it and until its record is final; ``--trials`` times, the killed replica restarted in between.
   Every replica runs with ``--lease`` (default 2 s) so the takeover is quick.

Timings are reported, never asserted. Run it with the project's venv:

    .venv/bin/python bench/scaleout.py [--runs 120] [--work 0.1] [--calls 400] [--trials 3] [--lease 2]

Everything it starts is stopped on the way out; results also go to bench/results/scaleout-*.json.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from tests.conftest import Runtime, free_port, make_notebook  # noqa: E402
from tests.test_haproxy import HAProxy  # noqa: E402
from tests.test_queue import RedisServer  # noqa: E402

FINAL = {"succeeded", "failed", "timed_out"}
STREAM, GROUP = "nbmesh:runs", "nbmesh"  # settings.queue's defaults


def products(work: float, hold: float) -> dict[str, dict]:
    def product(name: str, body: str) -> dict:
        return make_notebook([("parameters", "n: int = 0"), ("", body), ("output", "n")], name)

    return {
        "bench-work": product("bench-work", f"import time\ntime.sleep({work})"),
        "bench-hold": product("bench-hold", f"import time\ntime.sleep({hold})"),
        "bench-quick": product("bench-quick", "n = n + 1"),
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2)}


class Cluster:
    """Replicas on one store folder and one Redis, started and killed one by one."""

    def __init__(self, folder: Path, redis_url: str, lease: float, pool: int) -> None:
        self.folder, self.redis_url = folder, redis_url
        self.args = ["--queue", redis_url, "--lease", str(lease), "--pool-size", str(pool), "--set", "queue.block=0.2"]
        self.replicas: list[Runtime] = []

    def add(self, port: int | None = None) -> Runtime:
        rt = Runtime(store=str(self.folder / "store"), port=port or free_port(), args=self.args).start()
        self.replicas.append(rt)
        return rt

    def live(self) -> list[Runtime]:
        return [rt for rt in self.replicas if rt.proc is not None and rt.proc.poll() is None]

    def stop(self) -> None:
        for rt in self.replicas:
            rt.stop()


def replica_id(rt: Runtime) -> str:
    return httpx.get(f"{rt.url}/healthz", timeout=10).json()["replica"]


def run_status(url: str, run_id: str) -> str:
    return httpx.get(f"{url}/api/runs/{run_id}", timeout=10).json()["status"]


def wait_all_final(url: str, ids: list[str], timeout: float) -> tuple[float, dict[str, int]]:
    """When (monotonic clock) every run of ``ids`` was final, and how many ended in each status."""
    pending, ended = set(ids), collections.Counter()
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=30) as http:
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                status = http.get(f"/api/runs/{run_id}").json()["status"]
                if status in FINAL:
                    pending.discard(run_id)
                    ended[status] += 1
            if pending:
                time.sleep(0.05)
    if pending:
        raise RuntimeError(f"{len(pending)} run(s) not final after {timeout} s")
    return time.monotonic(), dict(ended)


def throughput(cluster: Cluster, count: int, work: float) -> dict:
    urls = [rt.url for rt in cluster.live()]
    clients = {url: httpx.Client(base_url=url, timeout=60) for url in urls}

    def submit(n: int) -> str:
        answer = clients[urls[n % len(urls)]].post("/api/products/bench-work/runs", json={"n": n})
        answer.raise_for_status()
        return answer.json()["run_id"]

    try:
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(submit, range(count)))
        submitted = time.monotonic() - start
        done, ended = wait_all_final(urls[0], ids, timeout=count * work * 4 + 120)
    finally:
        for client in clients.values():
            client.close()
    elapsed = done - start
    return {"replicas": len(urls), "runs": count, "seconds": round(elapsed, 2), "runs_per_s": round(count / elapsed, 2),
            "submit_seconds": round(submitted, 2), "ended": ended}


def lb_hop(cluster: Cluster, lb: HAProxy, calls: int) -> dict:
    """Invocations of bench-quick on its replica directly and through HAProxy, alternating call by call
    (ABBA), so both paths see the same machine load; the added latency is the median of the pairs' differences."""
    with httpx.Client(base_url=lb.url, timeout=30) as via_lb:
        via_lb.post("/api/products/bench-quick/invoke", json={"n": 0}).raise_for_status()
        # The replica HAProxy sends it to: the one whose own /metrics counted that call.
        home = next(rt for rt in cluster.live() if "bench-quick" in httpx.get(f"{rt.url}/metrics").text)
        with httpx.Client(base_url=home.url, timeout=30) as direct:
            paths = {"direct": direct, "haproxy": via_lb}
            samples: dict[str, list[float]] = {"direct": [], "haproxy": []}
            for name in itertools.islice(itertools.cycle(paths), 40):  # warm-up, not counted
                paths[name].post("/api/products/bench-quick/invoke", json={"n": 1}).raise_for_status()
            for n in range(calls):
                for name in ("direct", "haproxy") if n % 2 == 0 else ("haproxy", "direct"):
                    t = time.perf_counter()
                    paths[name].post("/api/products/bench-quick/invoke", json={"n": n}).raise_for_status()
                    samples[name].append(time.perf_counter() - t)
    result: dict = {name: percentiles(values) for name, values in samples.items()}
    added = [lb_s - direct_s for direct_s, lb_s in zip(samples["direct"], samples["haproxy"])]
    result["added_ms_median_of_pairs"] = round(statistics.median(added) * 1000, 2)
    return result


def holder(queue: redis.Redis) -> tuple[str, str] | None:
    """(entry id, consumer) of the one run the group holds, if it holds one."""
    pending = queue.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
    return (pending[0]["message_id"].decode(), pending[0]["consumer"].decode()) if len(pending) == 1 else None


def takeover(cluster: Cluster, queue: redis.Redis, trials: int, hold: float) -> dict:
    rows = []
    for trial in range(trials):
        live = cluster.live()
        ids = {replica_id(rt): rt for rt in live}
        survivor = live[0].url
        run_id = httpx.post(f"{survivor}/api/products/bench-hold/runs", json={"n": trial}, timeout=30).json()["run_id"]
        deadline = time.monotonic() + 60
        while (held := holder(queue)) is None or run_status(survivor, run_id) != "running":
            if time.monotonic() > deadline:
                raise RuntimeError("the run was never held")
            time.sleep(0.02)
        entry, consumer = held
        victim = ids[consumer]
        survivor = next(rt.url for rt in live if rt is not victim)
        victim.kill()
        killed = time.monotonic()
        while (now := holder(queue)) is None or now[1] == consumer:
            if time.monotonic() > killed + 120:
                raise RuntimeError("the run was never taken over")
            time.sleep(0.02)
        taken = time.monotonic()
        final, _ = wait_all_final(survivor, [run_id], timeout=120 + hold)
        rows.append({"takeover_s": round(taken - killed, 2), "kill_to_final_s": round(final - killed, 2),
                     "status": run_status(survivor, run_id)})
        cluster.replicas.remove(victim)
        cluster.add(victim.port)  # back for the next trial
    return {"trials": rows,
            "takeover_s_median": round(statistics.median(r["takeover_s"] for r in rows), 2),
            "kill_to_final_s_median": round(statistics.median(r["kill_to_final_s"] for r in rows), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=120, help="background runs per throughput measure")
    parser.add_argument("--work", type=float, default=0.1, help="seconds each background run waits")
    parser.add_argument("--pool-size", type=int, default=2, help="kernels per replica (workers: pool size - 1)")
    parser.add_argument("--calls", type=int, default=400, help="invocations per path in the load balancer measure")
    parser.add_argument("--trials", type=int, default=3, help="replicas killed, one at a time")
    parser.add_argument("--hold", type=float, default=6.0, help="seconds the run a replica dies holding takes")
    parser.add_argument("--lease", type=float, default=2.0, help="--lease of every replica")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="nbmesh-scaleout-"))
    server = RedisServer(folder / "redis").start()
    queue = redis.Redis(port=server.port)
    cluster = Cluster(folder, server.url, args.lease, args.pool_size)
    lb: HAProxy | None = None
    results: dict = {"args": vars(args), "cpus": os.cpu_count(), "started": datetime.now(timezone.utc).isoformat(),
                     "load_average_at_start": os.getloadavg()}
    try:
        first = cluster.add()
        for name, nb in products(args.work, args.hold).items():
            httpx.put(f"{first.url}/api/products/{name}", json=nb, timeout=60).raise_for_status()
        results["throughput"] = []
        for count in (1, 2, 3):
            while len(cluster.live()) < count:
                cluster.add()
            for rt in cluster.live():  # a warm kernel on every replica before timing
                httpx.post(f"{rt.url}/api/products/bench-work/invoke", json={"n": 0}, timeout=60).raise_for_status()
            row = throughput(cluster, args.runs, args.work)
            results["throughput"].append(row)
            print(f"throughput, {count} replica(s): {row['runs_per_s']} runs/s ({row['runs']} runs in {row['seconds']} s)", flush=True)
        lb = HAProxy(cluster.live(), folder / "haproxy.log").start()
        results["lb_hop"] = hop = lb_hop(cluster, lb, args.calls)
        print(f"invoke direct p50 {hop['direct']['p50_ms']} ms p95 {hop['direct']['p95_ms']} ms; through HAProxy "
              f"p50 {hop['haproxy']['p50_ms']} ms p95 {hop['haproxy']['p95_ms']} ms; "
              f"added (median of pairs) {hop['added_ms_median_of_pairs']} ms", flush=True)
        results["takeover"] = take = takeover(cluster, queue, args.trials, args.hold)
        print(f"kill -9 → another replica holds the run: median {take['takeover_s_median']} s "
              f"(lease {args.lease} s); → run final: {take['kill_to_final_s_median']} s (run takes {args.hold} s)", flush=True)
        results["load_average_at_end"] = os.getloadavg()
    finally:
        if lb is not None:
            lb.stop()
        cluster.stop()
        queue.close()
        server.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scaleout-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
