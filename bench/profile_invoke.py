"""Where does a warm nbmesh invocation's time go?

A companion to invoke_latency.py for when nbmesh is slower than its floor. It starts
`nbmesh serve --pool-size 1` in a subprocess whose hot-path functions are wrapped with timers
(nothing in kernel_runtime is changed) and splits each sequential invocation into:

- the client round trip vs. time inside the ASGI app (before / inside / after Service.invoke)
  vs. the kernel round trip (protocol.execute: execute_request sent → shell reply parsed);
- the work done after the answer (building the executed-notebook record and writing it to the
  store: on the loop for a local store, docs/performance.md change 9), and what it costs the next request: blocks of calls with the record
  switched on and off in the same server, interleaved, back-to-back and spaced by a pause;
- each step of the hot path on the runtime's side, as ``perf_counter_ns`` spans (gate, body read and
  parse, access, resolve, validate, lease, send, wait for the kernel, reply decode, settle, finish,
  response) and the runtime's and the kernel's CPU time per request (psutil);
- the in-kernel cost of nbmesh's runner: on one warm kernel, `__nbmesh__.run(...)` against the
  same cells sent as plain code (the floor's request), interleaved; then the runner's own phases
  inside the kernel (ipykernel's do_execute, IPython's run_cell, Runner.run and its parts, the
  report left as the reply's payload), as spans taken in the kernel;
- with ``--py-spy SECONDS``, a py-spy sampling profile of the runtime process during back-to-back
  invocations: the functions it spends its time in, by own time and by inclusive time.

    .venv/bin/python bench/profile_invoke.py [--calls 200] [--py-spy 10] [--http h11|httptools] [--loop asyncio|uvloop]

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


# The runtime-side steps of one invocation, in order: (owner module or class, attribute, label).
# Module and class attributes are looked up by their callers at call time, so wrapping takes effect.
STEPS = (
    ("kernel_runtime.http.app:Gate", "_cross_site", "gate (host, origin, media type)"),
    ("kernel_runtime.http.routes", "check_read", "access check"),
    ("kernel_runtime.http.routes", "read_json_object", "body read + strict JSON parse"),
    ("kernel_runtime.runtime.catalog:Catalog", "resolve", "resolve the product (catalog)"),
    ("kernel_runtime.runtime.runs", "validate_parameters", "validate parameters"),
    ("kernel_runtime.kernels.pool:KernelPool", "_take", "lease: take a kernel"),
    ("kernel_runtime.kernels.shell:ShellChannel", "send", "send execute_request (serialize + HMAC + zmq)"),
    ("kernel_runtime.kernels.protocol", "_parse_reply", "reply decode (report JSON)"),
    ("kernel_runtime.runtime.runs", "_settle", "settle (output contract)"),
    ("kernel_runtime.kernels.pool:KernelPool", "_give_back", "lease: give the kernel back"),
    ("kernel_runtime.runtime.runs:Runs", "_finish", "finish (writer.record, log, hooks)"),
    ("kernel_runtime.http.routes", "run_response", "response (run.to_json + JSONResponse)"),
)
BREAKDOWN = (
    "asgi_app",
    "service_invoke",
    "kernel_execute",
    *(label for _, _, label in STEPS),
    "after the answer: build the notebook",
    "after the answer: save_run",
)


def _owner(path: str) -> Any:
    import importlib

    module, _, cls = path.partition(":")
    owner = importlib.import_module(module)
    return getattr(owner, cls) if cls else owner


def serve_instrumented(store: str, port: int, http: str, loop: str) -> None:
    """The runtime with timers; GET /_profile returns them, POST /_reset?notebook=0&save=0 clears them and switches the record's parts."""
    import inspect

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

    def note(label: str, t0: int) -> None:
        timings.setdefault(label, []).append((time.perf_counter_ns() - t0) / 1e9)

    def timed(owner: Any, name: str, label: str, switch: str | None = None) -> None:
        original = getattr(owner, name)
        if inspect.isasyncgenfunction(original) or hasattr(original, "__wrapped__") and inspect.isasyncgenfunction(original.__wrapped__):
            raise TypeError(f"{name} is an async generator: time its parts")

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter_ns()
            if label == "service_invoke":
                # Is the previous run's record still being written while this one starts?
                timings.setdefault("write_in_flight_at_invoke_start", []).append(float(state["writing"] > 0))
                marks["invoke_start"] = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                note(label, t0)
                if label == "service_invoke":
                    marks["invoke_end"] = time.perf_counter()

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            if switch and not state[switch]:
                return None
            t0 = time.perf_counter_ns()
            if switch:
                state["writing"] += 1
            try:
                return original(*args, **kwargs)
            finally:
                if switch:
                    state["writing"] -= 1
                note(label, t0)

        setattr(owner, name, async_wrapper if inspect.iscoroutinefunction(original) else sync_wrapper)

    # The record's deep copies leave garbage behind: count what the collector then costs, per call.
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[:] = [time.perf_counter()]
        elif gc_started:
            timings.setdefault(f"gc_gen{info['generation']}", []).append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(on_gc)

    timed(service.Service, "invoke", "service_invoke")
    timed(protocol, "execute", "kernel_execute")
    for owner, name, label in STEPS:
        timed(_owner(owner), name, label)
    timed(record, "record_notebook", "after the answer: build the notebook", switch="notebook")
    timed(repository.Repository, "save_run", "after the answer: save_run", switch="save")

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
            timings.setdefault("asgi before service_invoke", []).append(marks["invoke_start"] - t0)
            timings.setdefault("asgi after service_invoke", []).append(t1 - marks["invoke_end"])

    # The same uvicorn settings as `nbmesh serve`, but for the HTTP parser and loop under study.
    uvicorn.run(outer, host="127.0.0.1", port=port, log_level="warning", lifespan="on", http=http, loop=loop)


def fmt(samples: list[float]) -> str:
    if not samples:
        return "   (none)"
    ms = [s * 1000 for s in samples]
    return f"p50 {statistics.median(ms):7.3f}  p95 {il.pct(ms, 95):7.3f}  n {len(ms):4d}"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user + system CPU seconds of process ``pid``, of all the processes below it: its kernels)."""
    import psutil

    def used(p: psutil.Process) -> float:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            return t.user + t.system
        return 0.0

    return used(psutil.Process(pid)), sum(used(psutil.Process(c)) for c in il.descendants(pid) if il._alive(c))


def server_phases(url: str, calls: int, pid: int) -> dict[str, dict[str, list[float]]]:
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
                cpu0 = cpu_seconds(pid)
                for _ in range(calls // ROUNDS):
                    if pause:
                        time.sleep(pause)
                    t0 = time.perf_counter()
                    c.post(f"/api/products/{il.PRODUCT}/invoke", json={"x": il.X}).raise_for_status()
                    out[mode]["client round trip"].append(time.perf_counter() - t0)
                time.sleep(0.5)  # the block's writes land, and are counted with it
                cpu1 = cpu_seconds(pid)
                out[mode].setdefault("runtime CPU", []).append(cpu1[0] - cpu0[0])
                out[mode].setdefault("kernel CPU", []).append(cpu1[1] - cpu0[1])
                for key, values in c.get("/_profile").json().items():
                    out[mode].setdefault(key, []).extend(values)
    return out


async def runner_vs_plain(calls: int, workdir: str) -> dict[str, list[float]]:
    """One warm kernel, prepared exactly as the pool prepares it, also sent the floor's plain code."""
    from kernel_runtime.kernels import protocol
    from kernel_runtime.kernels.shell import ShellChannel
    from kernel_runtime.model.product import load_spec, read_notebook
    from kernel_runtime.settings import PoolSettings

    pool = PoolSettings()

    spec = load_spec(read_notebook(json.dumps(il.product_notebook())), il.PRODUCT)
    # FloorKernel runs this interpreter, so the kernel can import nbmesh's runner as the pool's kernels do.
    kernel = il.FloorKernel("ipc", workdir)
    await kernel.start()
    shell = ShellChannel(kernel.km.get_connection_info())  # the runner's requests go as the pool sends them
    try:
        seal = protocol.Seal("", 1)
        await protocol.prepare(kernel.km, shell, spec, pool.max_output, timeout=30, seal=seal, poll=pool.poll_interval)
        runs = itertools.count(2)

        def run_once():
            seal = protocol.Seal("", next(runs))
            return protocol.run(kernel.km, shell, {"x": il.X}, timeout=30, seal=seal, poll=pool.poll_interval)

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
        out.update(await kernel_spans(kernel, run_once, calls))
        return out
    finally:
        shell.close()
        await kernel.stop()


# Run in the prepared kernel, in a module of its own (the runner's namespace restore would delete
# names left in the user namespace): wraps ipykernel's, IPython's and the runner's steps with timers,
# on the instances (the runner then flags itself as patched in its report: only this profile reads it).
KERNEL_SPANS = """
import time as _t, json as _json
import kernel_runtime.kernels.runner as _m
_spans = {}
def _timed(label, fn):
    def wrapper(*a, **k):
        t0 = _t.perf_counter_ns()
        try:
            return fn(*a, **k)
        finally:
            _spans.setdefault(label, []).append(_t.perf_counter_ns() - t0)
    return wrapper
def _timed_async(label, fn):
    async def wrapper(*a, **k):
        t0 = _t.perf_counter_ns()
        try:
            return await fn(*a, **k)
        finally:
            _spans.setdefault(label, []).append(_t.perf_counter_ns() - t0)
    return wrapper
ip.kernel.do_execute = _timed_async("k1 ipykernel do_execute (all below)", ip.kernel.do_execute)
ip.run_cell = _timed("k2 IPython run_cell (transform, compile, hooks, run)", ip.run_cell)
runner.run = _timed("k4 Runner.run (all below)", runner.run)
runner._execute = _timed("k5 cells: bind, exec, capture outputs", runner._execute)
_m.to_json = _timed("k6 result conversion (to_json)", _m.to_json)
runner._restore = _timed("k7 namespace restore", runner._restore)
runner._stop_leftover_children = _timed("k8 leftover children check", runner._stop_leftover_children)
runner._reply = _timed("k9 report: retire checks, json.dumps, reply payload", runner._reply)
"""


async def kernel_spans(kernel: Any, run_once: Any, calls: int) -> dict[str, list[float]]:
    """The runner's steps as timed inside the kernel, over ``calls`` runs."""
    await kernel_code(
        kernel,
        "import sys as _s, types as _ty\n_p = _s.modules['_nbmesh_profile'] = _ty.ModuleType('_nbmesh_profile')\n"
        f"vars(_p).update(ip=get_ipython(), runner=__nbmesh__)\nexec({KERNEL_SPANS!r}, vars(_p))",
    )
    for _ in range(calls):
        await run_once()
    spans = json.loads(await kernel_code(kernel, "import sys", "__import__('json').dumps(sys.modules['_nbmesh_profile']._spans)"))
    return {label: [ns / 1e9 for ns in values] for label, values in sorted(spans.items())}


async def kernel_code(kernel: Any, code: str, expression: str = "None") -> str:
    msg_id = kernel.kc.execute(code, silent=True, store_history=False, user_expressions={"r": expression})
    while True:
        msg = await kernel.kc.get_shell_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id:
            break
    expr = msg["content"].get("user_expressions", {}).get("r", {})
    if msg["content"]["status"] != "ok" or expr.get("status") != "ok":
        raise RuntimeError(f"the kernel refused the profile's code: {msg['content']}")
    return eval(expr["data"]["text/plain"])  # a str's repr


def py_spy(pid: int, url: str, seconds: int, workdir: str) -> str:
    """py-spy samples the runtime while a client invokes back-to-back; the top functions, own and inclusive.

    Only the thread holding the GIL is sampled (``--gil``): the shares are of the runtime's Python CPU time.
    """
    import collections
    import shutil
    import threading

    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = os.path.join(workdir, "py-spy.txt")
    spy = subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", "1000", "--duration", str(seconds), "--format", "raw",
         "--output", out, "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    calls = [0]
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                c.post(f"/api/products/{il.PRODUCT}/invoke", json={"x": il.X}).raise_for_status()
                calls[0] += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        _, err = spy.communicate(timeout=seconds + 60)
    finally:
        stop.set()
        worker.join()
    if spy.returncode != 0 or not os.path.exists(out):
        return f"py-spy failed ({spy.returncode}): {err.strip()[-400:]}"
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(out).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")" for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples holding the GIL in {seconds} s at 1000/s, {calls[0]} calls ({1000 * seconds / max(calls[0], 1):.2f} ms each)",
             "own time (share of the GIL-holding samples):"]
    lines += [f"  {100 * n / total:5.1f} %  {f}" for f, n in own.most_common(20)]
    lines.append("inclusive time:")
    lines += [f"  {100 * n / total:5.1f} %  {f}" for f, n in inclusive.most_common(45)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per mode (default 200)")
    parser.add_argument("--py-spy", type=int, default=0, metavar="SECONDS", help="also sample the runtime with py-spy this long")
    parser.add_argument("--http", default="httptools", help="uvicorn's HTTP parser: h11 or httptools (default httptools, as nbmesh serve)")
    parser.add_argument("--loop", default="asyncio", help="uvicorn's event loop: asyncio or uvloop (default asyncio, as nbmesh serve)")
    parser.add_argument("--serve", nargs=2, metavar=("STORE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_instrumented(args.serve[0], int(args.serve[1]), args.http, args.loop)
        return 0
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; uvicorn http={args.http} loop={args.loop}")

    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="nbmesh-profile-"))
        port = il.free_port()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", os.path.join(workdir, "store"), str(port), "--http", args.http, "--loop", args.loop],
            cwd=il.ROOT,
            start_new_session=True,
        )
        stack.callback(il.stop_process_tree, proc)
        url = f"http://127.0.0.1:{port}"
        il.wait_http(url + "/healthz", proc, 90, "instrumented nbmesh")
        with httpx.Client(base_url=url, timeout=60) as c:
            il.publish(c)

        if args.py_spy:
            print(f"\n== py-spy, the runtime process, back-to-back invocations ==\n{py_spy(proc.pid, url, args.py_spy, workdir)}")

        for mode, timings in server_phases(url, args.calls, proc.pid).items():
            print(f"\n== sequential invocations, {mode} (pool size 1) ==")
            for key in ("client round trip", "asgi before service_invoke", "asgi after service_invoke", *BREAKDOWN):
                print(f"{key:<48} {fmt(timings.get(key, []))}")
            calls = len(timings["client round trip"])
            for key in ("runtime CPU", "kernel CPU"):
                # psutil counts in 10 ms ticks: the total over every block, per call.
                print(f"{key + ' per call':<48} {1000 * sum(timings[key]) / calls:7.3f} ms (psutil, {calls} calls)")
            calls = len(timings["client round trip"])
            pauses = [timings.get(f"gc_gen{gen}", []) for gen in range(3)]
            counts = "/".join(str(len(p)) for p in pauses)
            spent = 1000 * sum(map(sum, pauses)) / calls
            print(f"{'gc collections gen 0/1/2, cost per call':<48} {counts}, {spent:.2f} ms")
            busy = timings.get("write_in_flight_at_invoke_start", [])
            if busy:
                print(f"{'previous record still being written':<48} {100 * sum(busy) / len(busy):5.0f} % of calls")

        print("\n== in-kernel: nbmesh runner vs. the same cells as plain code, one warm ipc kernel ==")
        for key, samples in asyncio.run(runner_vs_plain(args.calls, workdir)).items():
            print(f"{key:<60} {fmt(samples)}")
        print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
