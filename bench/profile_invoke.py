"""Where does a warm nbmesh invocation's time go?

A companion to invoke_latency.py for when nbmesh is slower than its floor. It starts
`nbmesh serve --pool-size 1` in a subprocess whose hot-path functions are wrapped with timers
(nothing in kernel_runtime is changed) and splits each sequential invocation into:

- the client round trip vs. time inside the ASGI app (before / inside / after Service.invoke)
  vs. the kernel round trip (protocol.execute: execute_request sent → shell reply parsed);
- the work done after the answer (building the executed-notebook record on the event loop, the
  store writes in a thread), and what it costs the next request: blocks of calls with the record
  switched on and off in the same server, interleaved, back-to-back and spaced by a pause;
- the in-kernel cost of nbmesh's runner: on one warm kernel, `__nbmesh__.run(...)` against the
  same cells sent as plain code (the floor's request), interleaved.

    .venv/bin/python bench/profile_invoke.py [--calls 200]

Switching the record off is an experiment only a profiler may do: runs then leave no record.
Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import invoke_latency as il  # noqa: E402

ROUNDS = 5
BREAKDOWN = (
    "asgi_app",
    "asgi_before_invoke",
    "service_invoke",
    "kernel_execute",
    "asgi_after_invoke",
    "after_answer_record_notebook (event loop)",
    "after_answer_save_run (thread)",
)


def serve_instrumented(store: str, port: int) -> None:
    """The runtime with timers; GET /_profile returns them, POST /_reset?notebook=0&save=0 clears them and switches the record's parts."""
    import uvicorn

    from kernel_runtime.http.app import create_app
    from kernel_runtime.kernels import protocol, record
    from kernel_runtime.runtime import service
    from kernel_runtime.settings import PoolSettings, Settings
    from kernel_runtime.store import repository
    from kernel_runtime.store.repository import Repository
    from kernel_runtime.store import open_store

    timings: dict[str, list[float]] = {}
    state = {"notebook": True, "save": True, "writing": 0}
    # Calls are sequential, so the last invoke's start and end are enough to split the ASGI time.
    marks: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str, is_async: bool, switch: str | None = None) -> None:
        original = getattr(owner, name)

        def note(t0: float) -> None:
            timings.setdefault(label, []).append(time.perf_counter() - t0)
            if label == "service_invoke":
                marks["invoke_start"], marks["invoke_end"] = t0, time.perf_counter()

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            if label == "service_invoke":
                # Is the previous run's record still being written while this one starts?
                timings.setdefault("write_in_flight_at_invoke_start", []).append(float(state["writing"] > 0))
            try:
                return await original(*args, **kwargs)
            finally:
                note(t0)

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            if switch and not state[switch]:
                return None
            t0 = time.perf_counter()
            state["writing"] += 1
            try:
                return original(*args, **kwargs)
            finally:
                state["writing"] -= 1
                note(t0)

        setattr(owner, name, async_wrapper if is_async else sync_wrapper)

    # The record's deep copies leave garbage behind: count what the collector then costs, per call.
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[:] = [time.perf_counter()]
        elif gc_started:
            timings.setdefault(f"gc_gen{info['generation']}", []).append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(on_gc)

    # Module and class attributes are looked up by their callers at call time, so wrapping takes effect.
    timed(service.Service, "invoke", "service_invoke", is_async=True)
    timed(protocol, "execute", "kernel_execute", is_async=True)
    timed(record, "record_notebook", "after_answer_record_notebook (event loop)", is_async=False, switch="notebook")
    timed(repository.Repository, "save_run", "after_answer_save_run (thread)", is_async=False, switch="save")

    app = create_app(service.Service(Repository(open_store(store)), Settings(pool=PoolSettings(size=1))))

    async def reply(send: Any, status: int, body: bytes = b"") -> None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_profile":
            return await reply(send, 200, json.dumps(timings).encode())
        if scope["type"] == "http" and scope["path"] == "/_reset":
            timings.clear()
            query = dict(part.split("=") for part in scope["query_string"].decode().split("&") if part)
            state["notebook"], state["save"] = query.get("notebook") != "0", query.get("save") != "0"
            return await reply(send, 200, b"{}")
        t0 = time.perf_counter()
        await app(scope, receive, send)
        if scope["type"] == "http" and scope["path"].endswith("/invoke"):
            t1 = time.perf_counter()
            timings.setdefault("asgi_app", []).append(t1 - t0)
            timings.setdefault("asgi_before_invoke", []).append(marks["invoke_start"] - t0)
            timings.setdefault("asgi_after_invoke", []).append(t1 - marks["invoke_end"])

    # The same uvicorn settings as `nbmesh serve`.
    uvicorn.run(outer, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


def fmt(samples: list[float]) -> str:
    if not samples:
        return "   (none)"
    ms = [s * 1000 for s in samples]
    return f"p50 {statistics.median(ms):7.2f}  p95 {il.pct(ms, 95):7.2f}  n {len(ms):4d}"


def server_phases(url: str, calls: int) -> dict[str, dict[str, list[float]]]:
    """Blocks of each mode in turn, so the machine's drifting load hits every mode alike."""
    modes = {
        "record on (as shipped), back-to-back": ("", 0.0),
        "no record at all, back-to-back": ("notebook=0&save=0", 0.0),
        "notebook built, not saved, back-to-back": ("save=0", 0.0),
        "record on (as shipped), 50 ms pause": ("", 0.05),
        "no record at all, 50 ms pause": ("notebook=0&save=0", 0.05),
    }
    out: dict[str, dict[str, list[float]]] = {m: {"client round trip": []} for m in modes}
    with httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(20):
            c.post(f"/api/products/{il.PRODUCT}/invoke", json={"x": il.X}).raise_for_status()
        for _ in range(ROUNDS):
            for mode, (switches, pause) in modes.items():
                # Let the previous block's writes land first: they would leak into this block.
                time.sleep(0.5)
                c.post(f"/_reset?{switches}")
                for _ in range(calls // ROUNDS):
                    if pause:
                        time.sleep(pause)
                    t0 = time.perf_counter()
                    c.post(f"/api/products/{il.PRODUCT}/invoke", json={"x": il.X}).raise_for_status()
                    out[mode]["client round trip"].append(time.perf_counter() - t0)
                time.sleep(0.5)
                for key, values in c.get("/_profile").json().items():
                    out[mode].setdefault(key, []).extend(values)
    return out


async def runner_vs_plain(calls: int, workdir: str) -> dict[str, list[float]]:
    """One warm kernel, prepared exactly as the pool prepares it, also sent the floor's plain code."""
    from kernel_runtime.kernels import protocol
    from kernel_runtime.model.product import load_spec, read_notebook
    from kernel_runtime.settings import PoolSettings

    pool = PoolSettings()

    spec = load_spec(read_notebook(json.dumps(il.product_notebook())), il.PRODUCT)
    # FloorKernel runs this interpreter, so the kernel can import nbmesh's runner as the pool's kernels do.
    kernel = il.FloorKernel("ipc", workdir)
    await kernel.start()
    try:
        seal = protocol.Seal("", 1)
        await protocol.prepare(kernel.km, kernel.kc, spec, pool.max_output, timeout=30, seal=seal, poll=pool.poll_interval)
        runs = itertools.count(2)

        def run_once():
            seal = protocol.Seal("", next(runs))
            return protocol.run(kernel.km, kernel.kc, {"x": il.X}, timeout=30, seal=seal, poll=pool.poll_interval)

        subjects = {
            "nbmesh runner: __nbmesh__.run(params)": run_once,
            "plain code, as the floor sends it": kernel.execute,
        }
        out: dict[str, list[float]] = {name: [] for name in subjects}
        for fn in subjects.values():
            for _ in range(10):
                await fn()
        for _ in range(ROUNDS):
            for name, fn in subjects.items():
                for _ in range(calls // ROUNDS):
                    t0 = time.perf_counter()
                    await fn()
                    out[name].append(time.perf_counter() - t0)
        return out
    finally:
        await kernel.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per mode (default 200)")
    parser.add_argument("--serve", nargs=2, metavar=("STORE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_instrumented(args.serve[0], int(args.serve[1]))
        return 0

    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="nbmesh-profile-"))
        port = il.free_port()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", os.path.join(workdir, "store"), str(port)],
            cwd=il.ROOT,
            start_new_session=True,
        )
        stack.callback(il.stop_process_tree, proc)
        url = f"http://127.0.0.1:{port}"
        il.wait_http(url + "/healthz", proc, 90, "instrumented nbmesh")
        with httpx.Client(base_url=url, timeout=60) as c:
            il.publish(c)

        for mode, timings in server_phases(url, args.calls).items():
            print(f"\n== sequential invocations, {mode} (pool size 1) ==")
            for key in ("client round trip", *BREAKDOWN):
                print(f"{key:<44} {fmt(timings.get(key, []))}")
            calls = len(timings["client round trip"])
            pauses = [timings.get(f"gc_gen{gen}", []) for gen in range(3)]
            counts = "/".join(str(len(p)) for p in pauses)
            spent = 1000 * sum(map(sum, pauses)) / calls
            print(f"{'gc collections gen 0/1/2, cost per call':<44} {counts}, {spent:.2f} ms")
            busy = timings.get("write_in_flight_at_invoke_start", [])
            if busy:
                print(f"{'previous record still being written':<44} {100 * sum(busy) / len(busy):5.0f} % of calls")

        print("\n== in-kernel: nbmesh runner vs. the same cells as plain code, one warm ipc kernel ==")
        for key, samples in asyncio.run(runner_vs_plain(args.calls, workdir)).items():
            print(f"{key:<44} {fmt(samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
