"""Before and after, side by side: one change's effect on a warm invoke, from two checkouts in one run.

Starts `nbmesh serve --pool-size 1` from this working tree ("after") and from a git revision
("before", unpacked with `git archive` into a temporary folder), publishes the bench product on
both, then sends sequential invokes in alternating blocks, so the machine's drifting load hits both
alike. For each it reports the client's p50/p95 and the CPU time per call of the runtime process
and of its kernels (psutil, measured over whole blocks, after the block's records are written).
This is how the figures in the commit messages of docs/performance.md's changes were taken.

    .venv/bin/python bench/ab_invoke.py [--before HEAD~1] [--calls 600] [--rounds 6] [--hide httptools,uvloop]

Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import invoke_latency as il  # noqa: E402
from profile_invoke import cpu_seconds  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD~1", help="the git revision to compare against (default HEAD~1)")
    parser.add_argument("--calls", type=int, default=600, help="calls per side (default 600)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating blocks per side (default 6)")
    parser.add_argument("--hide", default="", metavar="MODULES",
                        help="comma-separated modules the before side cannot import, e.g. httptools,uvloop: uvicorn then picks h11 and asyncio, as before they were installed")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nbmesh-ab-")))
        il.unpack(args.before, work / "before")
        hide = tuple(m for m in args.hide.split(",") if m)
        sides = {
            "before": il.start_tree(stack, work / "before", work / "store-before", pool_size=1, hide=hide),
            "after": il.start_tree(stack, il.ROOT, work / "store-after", pool_size=1),
        }
        for _, url in sides.values():
            with httpx.Client(base_url=url, timeout=60) as c:
                il.publish(c)
                il.settle(c)
        clients = {name: stack.enter_context(httpx.Client(base_url=url, timeout=60)) for name, (_, url) in sides.items()}
        samples: dict[str, list[float]] = {name: [] for name in sides}
        cpu = {name: [0.0, 0.0] for name in sides}
        for name, c in clients.items():
            for _ in range(30):
                il.nbmesh_call(c, [])()
        per_block = args.calls // args.rounds
        for _ in range(args.rounds):
            for name, (proc, _) in sides.items():
                call = il.nbmesh_call(clients[name], [])
                c0 = cpu_seconds(proc.pid)
                for _ in range(per_block):
                    t0 = time.perf_counter()
                    call()
                    samples[name].append(time.perf_counter() - t0)
                time.sleep(0.3)  # the block's records are written, and counted with it
                c1 = cpu_seconds(proc.pid)
                cpu[name][0] += c1[0] - c0[0]
                cpu[name][1] += c1[1] - c0[1]
    load_after = os.getloadavg()
    print(f"before = {args.before}{f' without {args.hide}' if args.hide else ''} ({subprocess.run(['git', 'rev-parse', '--short', args.before], cwd=il.ROOT, capture_output=True, text=True).stdout.strip()}), after = this working tree")
    print(f"{'':8} {'p50 ms':>8} {'p95 ms':>8} {'runtime CPU ms/call':>20} {'kernel CPU ms/call':>19} {'n':>5}")
    for name in sides:
        s = il.summary(samples[name])
        n = len(samples[name])
        print(f"{name:8} {s['p50_ms']:8.2f} {s['p95_ms']:8.2f} {1000 * cpu[name][0] / n:20.3f} {1000 * cpu[name][1] / n:19.3f} {n:5d}")
    print(f"1-min load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
