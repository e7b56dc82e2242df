"""Load: many concurrent clients invoking products on one runtime; every answer is checked.

Publishes two small products (``load-square-a``, ``load-square-b``: the result is ``i * i`` plus
the product's letter), then runs ``--clients`` threads, each making ``--invocations`` sequential
invocations over its own kept-alive connection, alternating products by client. Each answer must
be 200 with the right result, or a documented error (503 with the error body); anything else is
counted as wrong. Prints one JSON line: requests, ok, documented errors, wrong answers, wall
time, throughput and latency p50/p95/max in ms. Timings are reported, never asserted.

    .venv/bin/python bench/load.py --url http://127.0.0.1:8765 [--clients 20] [--invocations 50] [--token T]

With ``--serve`` it starts its own ``nbmesh serve --pool-size 2`` on a temporary store first
and stops it afterwards.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nbformat

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = ("load-square-a", "load-square-b")


def notebook(letter: str) -> dict[str, Any]:
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("i: int = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f"{{'square': i * i, 'product': {letter!r}}}", metadata={"tags": ["output"]}),
    ]
    return json.loads(nbformat.writes(nb))


def publish(url: str, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for name in PRODUCTS:
            r = http.put(f"/api/products/{name}", json=notebook(name[-1]))
            r.raise_for_status()


def client(url: str, headers: dict[str, str], index: int, invocations: int) -> list[tuple[float, str]]:
    """(latency in seconds, outcome) per request: outcome is "ok", "documented" or "wrong: ..."."""
    name = PRODUCTS[index % len(PRODUCTS)]
    outcomes = []
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        for n in range(invocations):
            i = index * 1000 + n
            t0 = time.perf_counter()
            try:
                r = http.post(f"/api/products/{name}/invoke", json={"i": i})
            except httpx.HTTPError as exc:
                outcomes.append((time.perf_counter() - t0, f"wrong: {type(exc).__name__}"))
                continue
            took = time.perf_counter() - t0
            body = r.json()
            if r.status_code == 200 and body.get("result") == {"square": i * i, "product": name[-1]}:
                outcomes.append((took, "ok"))
            elif r.status_code == 503 and isinstance(body.get("error"), str):
                outcomes.append((took, "documented"))
            else:
                outcomes.append((took, f"wrong: {r.status_code} {r.text[:200]}"))
    return outcomes


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def run(url: str, clients: int, invocations: int, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    publish(url, headers)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, url, headers, c, invocations) for c in range(clients)]
        outcomes = [o for f in futures for o in f.result()]
    wall = time.perf_counter() - t0
    latencies = [t * 1000 for t, _ in outcomes]
    wrong = [o for _, o in outcomes if o.startswith("wrong")]
    return {
        "clients": clients,
        "invocations_per_client": invocations,
        "requests": len(outcomes),
        "ok": sum(o == "ok" for _, o in outcomes),
        "documented_errors": sum(o == "documented" for _, o in outcomes),
        "wrong": len(wrong),
        "wrong_examples": wrong[:3],
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(outcomes) / wall, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("NBMESH_URL", "http://127.0.0.1:8765"))
    parser.add_argument("--token", default=os.environ.get("NBMESH_TOKEN"))
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--invocations", type=int, default=50)
    parser.add_argument("--serve", action="store_true", help="start and stop a runtime of its own (pool size 2)")
    args = parser.parse_args()
    proc = None
    if args.serve:
        store = tempfile.mkdtemp(prefix="nbmesh-load-")
        port = 18000 + os.getpid() % 1000
        args.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "kernel_runtime", "serve", "--store", store, "--port", str(port), "--pool-size", "2"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if httpx.get(f"{args.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
    try:
        print(json.dumps(run(args.url, args.clients, args.invocations, args.token)))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
