"""How fast is a warm nbmesh invocation, next to its floor and to the alternatives?

One run measures, side by side on this machine (figures from different runs are not comparable:
the machine is shared and noisy):

1. nbmesh: a trivial 3-cell product invoked sequentially over HTTP (kept-alive httpx.Client)
   on a warm pool; p50/p95, plus the server's own ``duration_ms`` to split HTTP from kernel time.
   Beside it, when the runtime has a result cache, a product with ``cache_ttl`` answered from it.
2. The floor: a bare Starlette+uvicorn JSON POST round trip (a server this script starts, with
   the uvicorn settings of ``nbmesh serve``) plus one ``execute_request`` of the same code on a
   warm ipykernel (silent, no history, value in ``user_expressions``, shell reply only), over IPC
   (as nbmesh) and over TCP.
3. ``papermill`` CLI on the same notebook, whole process.
4. Jupyter Kernel Gateway's notebook-http mode on an equivalent notebook, installed into its own
   venv under bench/.venvs/ (skipped with a reason when that fails).
5. Throughput with 8 concurrent clients against runtimes with 1 and with 2 kernels, and the
   runtime process's CPU time per request (psutil), the cost that bounds throughput.
6. The first invoke of a product whose kernel is not warm (pool size 1, two products taking turns,
   so each invoke claims the spare kernel), minus its setup cells' own time, against a kernel start
   measured here the way the runtime starts one (in its sandbox).
7. A soak: ``--soak`` sequential invokes (10,000 by default) on a fresh runtime: RSS of the
   runtime plus its kernels after the first 500 and at the end, the runtime's open file
   descriptors and threads, and the kernel processes, at both points.
8. Every target of issue 13 with its measured ratio, in one table at the end.

Timings are reported, never asserted. Every process started here is stopped on the way out,
also on error, Ctrl-C or the time budget running out. Run it with the project's venv:

    .venv/bin/python bench/invoke_latency.py [--quick] [--skip-kg] [--soak 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
KG_VENV = BENCH / ".venvs" / "kernel-gateway"
sys.path.insert(0, str(ROOT))

from tests.conftest import Runtime, free_port, make_notebook  # noqa: E402

PRODUCT = "bench-trivial"
# The last commit before issue 13's changes to the hot path: its runtime CPU per request is the "before".
BASELINE = "a0d8b4b"
BASELINE_HIDE = ("httptools", "uvloop")
PARAMS_CELL = "x: int = 3"
BODY_CELL = "y = x * 2 + 1\nlabel = f'x={x}'"
OUTPUT_CELL = "{'x': x, 'y': y, 'label': label}"
X = 5  # the value every tool is asked to run with, as papermill's `-p x 5`

# The floor runs the same cells as one request; the injected assignment mirrors papermill's cell.
FLOOR_CODE = f"{PARAMS_CELL}\nx = {X}\n{BODY_CELL}\n_bench_out = {OUTPUT_CELL}\n"

KG_NOTEBOOK_CELLS = [
    "import json",
    "# POST /invoke\n"
    "req = json.loads(REQUEST)\n"
    f"{PARAMS_CELL}\n"
    "x = int(req['body'].get('x', x))\n"
    f"{BODY_CELL}\n"
    f"print(json.dumps({OUTPUT_CELL}))",
]


# statistics -----------------------------------------------------------------------------
def pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile: with ~100 samples p95 is an observed value, not an interpolation."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(samples_s: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": pct(ms, 95),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "samples_ms": [round(x, 4) for x in ms],  # in the order taken: blocks of rounds, for a look at the tail
    }


# process hygiene ------------------------------------------------------------------------
class Budget(BaseException):
    """The whole run took longer than --budget seconds.

    A BaseException, so that the `except Exception` guarding optional phases cannot swallow it.
    """


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``: kernels run in their own sessions, so a group kill misses them."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(v) for v in line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_quietly(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def stop_process_tree(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM so the process can shut its kernels down itself, then SIGKILL whatever is left."""
    if proc.poll() is not None:
        return
    below = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    kill_quietly([p for p in below if _alive(p)])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie answers kill(0) yet is already gone.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


def start_runtime(stack: contextlib.ExitStack, store: Path, pool_size: int) -> Runtime:
    # One product is measured, so it may use every kernel (the default cap keeps one free for others).
    args = ["--pool-size", str(pool_size), "--max-concurrency", str(pool_size), "--log-level", "warning"]
    rt = Runtime(store=str(store), port=free_port(), args=args)
    # Registered before start so a runtime that fails half-way up is still cleaned up.
    stack.callback(lambda: rt.proc is not None and stop_process_tree(rt.proc))
    rt.start(timeout=90)
    return rt


def unpack(rev: str, into: Path) -> None:
    """The runtime's package as of git revision ``rev``, under ``into``."""
    import io
    import tarfile

    archive = subprocess.run(["git", "archive", rev, "kernel_runtime"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def start_tree(
    stack: contextlib.ExitStack, tree: Path, store: Path, pool_size: int, hide: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str]:
    """``nbmesh serve`` from the checkout at ``tree`` (its cwd comes first on sys.path, also for its kernels).

    ``hide``: modules that fail to import in that runtime (not its kernels), e.g. ``uvloop`` and
    ``httptools``, so an old revision runs with what uvicorn picked before they were installed.
    """
    port = free_port()
    paths = [str(tree)]
    if hide:
        stubs = store.parent / f"hidden-{store.name}"
        stubs.mkdir(parents=True, exist_ok=True)
        for module in hide:
            (stubs / f"{module}.py").write_text(f"raise ImportError('{module} is hidden by the bench')\n")
        paths.insert(0, str(stubs))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    cmd = [sys.executable, "-m", "kernel_runtime", "serve", "--store", str(store), "--port", str(port),
           "--pool-size", str(pool_size), "--max-concurrency", str(pool_size), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stack.callback(stop_process_tree, proc)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc, 90, f"nbmesh from {tree}")
    return proc, url


def wait_http(url: str, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {timeout:g} s")


# 1. nbmesh ------------------------------------------------------------------------------
def product_notebook() -> dict[str, Any]:
    return make_notebook([("parameters", PARAMS_CELL), ("", BODY_CELL), ("output", OUTPUT_CELL)], name=PRODUCT)


def publish(client: httpx.Client) -> None:
    r = client.put(f"/api/products/{PRODUCT}", json=product_notebook())
    if r.status_code != 201:
        raise RuntimeError(f"publishing the bench product failed: {r.status_code} {r.text}")


def nbmesh_call(client: httpx.Client, server_ms: list[float]) -> Callable[[], None]:
    def call() -> None:
        r = client.post(f"/api/products/{PRODUCT}/invoke", json={"x": X})
        run = r.json()
        if r.status_code != 200 or run.get("result", {}).get("y") != 2 * X + 1:
            raise RuntimeError(f"nbmesh invoke failed: {r.status_code} {r.text[:500]}")
        server_ms.append(run["duration_ms"])

    return call


CACHED = "bench-cached"


def publish_cached(client: httpx.Client) -> bool:
    """The bench product with a result cache; False when this runtime has no cache (it answers every call from a kernel)."""
    nb = make_notebook([("parameters", PARAMS_CELL), ("", BODY_CELL), ("output", OUTPUT_CELL)], name=CACHED, cache_ttl=3600)
    if client.put(f"/api/products/{CACHED}", json=nb).status_code != 201:
        return False
    client.post(f"/api/products/{CACHED}/invoke", json={"x": X}).raise_for_status()
    return client.post(f"/api/products/{CACHED}/invoke", json={"x": X}).json().get("cached") is True


def cached_call(client: httpx.Client) -> Callable[[], None]:
    def call() -> None:
        r = client.post(f"/api/products/{CACHED}/invoke", json={"x": X})
        if r.status_code != 200 or r.json().get("cached") is not True:
            raise RuntimeError(f"a cached answer was expected: {r.status_code} {r.text[:300]}")

    return call


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process (psutil counts in 10 ms ticks: measure many calls)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


# 2. the floor ---------------------------------------------------------------------------
def serve_bare(port: int) -> None:
    """The floor's HTTP half: what Starlette+uvicorn cost with no work behind them."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"status": "succeeded", "result": await request.json()})

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    # Same uvicorn settings as `nbmesh serve`, so the two servers differ only in the work behind them.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", http="httptools", loop="asyncio")


def start_bare(stack: contextlib.ExitStack) -> str:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack.callback(stop_process_tree, proc)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/echo", proc, 30, "the bare Starlette server")
    return url


def bare_call(client: httpx.Client) -> Callable[[], None]:
    def call() -> None:
        r = client.post("/echo", json={"x": X})
        if r.status_code != 200:
            raise RuntimeError(f"bare Starlette answered {r.status_code}")

    return call


class FloorKernel:
    """A warm ipykernel driven the way nbmesh's executor drives its kernels, minus nbmesh."""

    def __init__(self, transport: str, ipc_dir: str) -> None:
        from jupyter_client import AsyncKernelManager
        from jupyter_client.kernelspec import KernelSpec

        self.transport = transport
        ip = os.path.join(ipc_dir, f"floor-{transport}") if transport == "ipc" else "127.0.0.1"
        self.km = AsyncKernelManager(kernel_name="bench-python", transport=transport, ip=ip)
        # This interpreter's ipykernel, as nbmesh uses, whatever kernelspecs the user has installed.
        self.km._kernel_spec = KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="bench",
            language="python",
            name="bench-python",
        )
        self.kc = None
        self.pid: int | None = None
        # The kernel's own chatter (the TCP transport warns about plain text) would garble the table.
        self.log = open(os.path.join(ipc_dir, f"floor-{transport}.log"), "wb")

    async def start(self) -> None:
        await self.km.start_kernel(stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = getattr(getattr(self.km.provisioner, "process", None), "pid", None)
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)
        # nbmesh stops iopub too: the reply alone carries the value.
        self.kc.iopub_channel.stop()

    async def execute(self) -> None:
        msg_id = self.kc.execute(
            FLOOR_CODE, silent=True, store_history=False, user_expressions={"r": "_bench_out"}, allow_stdin=False
        )
        while True:
            msg = await self.kc.get_shell_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        expr = msg["content"]["user_expressions"]["r"]
        if expr.get("status") != "ok" or f"'y': {2 * X + 1}" not in expr["data"]["text/plain"]:
            raise RuntimeError(f"floor kernel ({self.transport}) answered {msg['content']}")

    async def stop(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            if self.km.has_kernel:
                await asyncio.wait_for(self.km.shutdown_kernel(now=True), 10)
        if self.pid and _alive(self.pid):
            kill_quietly([self.pid])
        self.log.close()


# 7. a product whose kernel is not warm ----------------------------------------------------
COLD_SETUP = "import statistics\nTABLE = [i * i for i in range(200_000)]"


def cold_notebook(name: str) -> dict[str, Any]:
    return make_notebook([("setup", COLD_SETUP), ("parameters", PARAMS_CELL), ("output", "len(TABLE) + x")], name=name)


def setup_seconds(notebook: dict[str, Any]) -> float:
    """What the setup cells themselves took, from the executed notebook's papermill metadata."""
    return sum(
        cell["metadata"]["papermill"]["duration"] or 0
        for cell in notebook["cells"]
        if "setup" in cell["metadata"].get("tags", []) and cell["metadata"].get("papermill")
    )


def settle(client: httpx.Client) -> None:
    """Wait until every kernel is started and idle: the spare is there, nothing else is going on."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        p = client.get("/healthz").json()["pool"]
        if p["idle"] == p["size"] + p["spare_target"] and not p["starting"] and not p["dead"]:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the pool did not settle: {p}")


def bench_cold(stack: contextlib.ExitStack, workdir: Path, rounds: int) -> dict[str, Any]:
    rt = start_runtime(stack, workdir / "store-cold", pool_size=1)
    names = ["bench-cold-a", "bench-cold-b"]
    totals, setups = [], []
    with httpx.Client(base_url=rt.url, timeout=60) as client:
        for name in names:
            client.put(f"/api/products/{name}", json=cold_notebook(name)).raise_for_status()
        settle(client)
        client.post(f"/api/products/{names[1]}/invoke", json={"x": X}).raise_for_status()  # b holds the kernel
        for i in range(rounds):
            name = names[i % 2]  # with one kernel serving products, each turn retires the other's
            settle(client)
            t0 = time.perf_counter()
            r = client.post(f"/api/products/{name}/invoke", json={"x": X})
            elapsed = time.perf_counter() - t0
            run = r.json()
            if r.status_code != 200 or run["warm"] is not False:
                raise RuntimeError(f"a cold invoke was expected: {r.status_code} {r.text[:300]}")
            totals.append(elapsed)
            setups.append(setup_seconds(client.get(f"/api/runs/{run['run_id']}/notebook").json()))
    stop_process_tree(rt.proc)
    overhead = [t - s for t, s in zip(totals, setups)]
    return {"first_invoke": summary(totals), "setup": summary(setups), "first_invoke_minus_setup": summary(overhead)}


async def kernel_starts(count: int) -> dict[str, Any]:
    """How long the runtime takes to start one kernel (sandboxed, as it starts spares)."""
    from kernel_runtime.kernels.pool import KernelPool
    from kernel_runtime.kernels.sandbox import resolve
    from kernel_runtime.settings import PoolSettings

    settings = PoolSettings(size=0, spares=1)
    contained = await asyncio.to_thread(resolve, settings, {})  # probed once, outside the timing
    samples = []
    for _ in range(count):
        pool = KernelPool(settings, contained)
        t0 = time.perf_counter()
        await pool.start()
        samples.append(time.perf_counter() - t0)
        if not pool.kernels:
            raise RuntimeError(f"a kernel did not start: {pool.start_error}")
        await pool.close()
    return {**summary(samples), "sandbox": contained.kind}


# 3. papermill ---------------------------------------------------------------------------
def bench_papermill(runs: int, workdir: Path) -> dict[str, Any]:
    nb_in = workdir / "in.ipynb"
    nb_in.write_text(json.dumps(product_notebook()))
    papermill = Path(sys.executable).parent / "papermill"
    cmd = [str(papermill), "--no-progress-bar", "--log-level", "ERROR", str(nb_in), str(workdir / "out.ipynb"), "-p", "x", str(X)]
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=120)
        except BaseException:
            # papermill's kernel lives in its own session: killing papermill alone would orphan it.
            stop_process_tree(proc, timeout=5)
            raise
        samples.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"papermill failed ({proc.returncode}): {stderr[-800:]}")
    return {**summary(samples), "command": " ".join(cmd[:5]) + " in.ipynb out.ipynb -p x 5"}


# 4. Kernel Gateway ----------------------------------------------------------------------
def ensure_kernel_gateway(log: Callable[[str], None]) -> Path:
    """The KG venv's python, installing it on first use; KG pins its own jupyter stack, so it lives apart."""
    python = KG_VENV / "bin" / "python"
    probe = [str(python), "-c", "import kernel_gateway, ipykernel"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    log(f"installing jupyter_kernel_gateway into {KG_VENV.relative_to(ROOT)} (first run only)…")
    KG_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(KG_VENV)], check=True, capture_output=True, timeout=120)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "jupyter_kernel_gateway", "ipykernel"]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"pip install jupyter_kernel_gateway failed: {(done.stderr or done.stdout).strip()[-800:]}")
    return python


def start_kernel_gateway(stack: contextlib.ExitStack, python: Path, workdir: Path) -> tuple[str, str]:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in KG_NOTEBOOK_CELLS]
    seed = workdir / "kg_invoke.ipynb"
    seed.write_text(nbformat.writes(nb))
    port = free_port()
    version = subprocess.run(
        [str(python), "-c", "import kernel_gateway; print(kernel_gateway.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    log_path = workdir / "kernel-gateway.log"
    proc = subprocess.Popen(
        [
            str(python), "-m", "kernel_gateway",
            "--KernelGatewayApp.api=kernel_gateway.notebook_http",
            f"--KernelGatewayApp.seed_uri={seed.as_uri()}",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
        ],
        cwd=workdir,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # Its own kernelspec (its venv's ipykernel), not one found through this venv's paths.
        env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "JUPYTER_PATH", "PYTHONPATH")},
    )
    stack.callback(stop_process_tree, proc)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/_api/spec/swagger.json", proc, 60, "Kernel Gateway")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; log: {log_path.read_text()[-800:]}") from None
    return url, version


def kg_call(client: httpx.Client) -> Callable[[], None]:
    def call() -> None:
        r = client.post("/invoke", json={"x": X})
        if r.status_code != 200 or json.loads(r.text).get("y") != 2 * X + 1:
            raise RuntimeError(f"Kernel Gateway answered {r.status_code}: {r.text[:300]}")

    return call


# 6. throughput --------------------------------------------------------------------------
class Throughput:
    """One runtime under ``concurrency`` clients, measured in blocks that alternate with the other
    runtimes' (like the sequential subjects), so a change in machine load hits them all alike."""

    def __init__(self, url: str, pid: int, concurrency: int) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.AsyncClient(base_url=url, timeout=60, limits=limits)
        self.pid = pid
        self.concurrency = concurrency
        self.samples: list[float] = []
        self.wall = 0.0
        self.cpu = 0.0

    async def one(self) -> float:
        t0 = time.perf_counter()
        r = await self.client.post(f"/api/products/{PRODUCT}/invoke", json={"x": X})
        if r.status_code != 200:
            raise RuntimeError(f"nbmesh invoke failed under load: {r.status_code} {r.text[:300]}")
        return time.perf_counter() - t0

    async def warm_up(self) -> None:
        """Prepares every kernel of the pool for the product and opens every connection."""
        await asyncio.gather(*(self.one() for _ in range(self.concurrency * 4)))

    async def block(self, calls: int) -> None:
        remaining = [calls]

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                self.samples.append(await self.one())

        t0, cpu0 = time.perf_counter(), cpu_of(self.pid)
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        self.wall += time.perf_counter() - t0
        await asyncio.sleep(0.3)  # the records of the block's last calls are written, and counted with them
        self.cpu += cpu_of(self.pid) - cpu0

    def result(self) -> dict[str, Any]:
        return {
            **summary(self.samples),
            "concurrency": self.concurrency,
            "wall_s": self.wall,
            "req_per_s": len(self.samples) / self.wall,
            "runtime_cpu_ms_per_request": 1000 * self.cpu / len(self.samples),
        }


def bench_throughput(
    runtimes: dict[str, tuple[str, subprocess.Popen]], total: int, rounds: int, loop: asyncio.AbstractEventLoop
) -> dict[str, Any]:
    """``total`` invokes from 8 concurrent clients on each runtime (name → url, process), in ``rounds`` alternating blocks."""
    subjects = {name: Throughput(url, proc.pid, 8) for name, (url, proc) in runtimes.items()}
    try:
        for subject in subjects.values():
            loop.run_until_complete(subject.warm_up())
        for r in range(rounds):
            for subject in subjects.values():
                loop.run_until_complete(subject.block(total // rounds + (1 if r < total % rounds else 0)))
        return {name: subject.result() for name, subject in subjects.items()}
    finally:
        for subject in subjects.values():
            loop.run_until_complete(subject.client.aclose())


# 7. soak --------------------------------------------------------------------------------
def footprint(rt: Runtime) -> dict[str, Any]:
    """RSS of the runtime and its kernels, the runtime's open fds and threads, its kernel processes."""
    import psutil

    runtime = psutil.Process(rt.proc.pid)
    # The kernels themselves (kernel_runtime.kernels.launcher, which becomes the ipykernel), not the
    # bwrap processes around them in the sandbox.
    kernels = [psutil.Process(p) for p in descendants(rt.proc.pid) if _alive(p)]
    kernels = [k for k in kernels if k.name() != "bwrap"]
    return {
        "rss_mib": (runtime.memory_info().rss + sum(k.memory_info().rss for k in kernels)) / 2**20,
        "runtime_rss_mib": runtime.memory_info().rss / 2**20,
        "fds": runtime.num_fds(),
        "threads": runtime.num_threads(),
        "kernels": len(kernels),
    }


def bench_soak(stack: contextlib.ExitStack, workdir: Path, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    rt = start_runtime(stack, workdir / "store-soak", pool_size=2)
    first = min(500, count // 2)  # the "after the first 500"; shorter soaks take half
    with httpx.Client(base_url=rt.url, timeout=60) as client:
        publish(client)
        call = nbmesh_call(client, [])
        for _ in range(first):
            call()
        settle(client)
        after_first = footprint(rt)
        t0 = time.perf_counter()
        for i in range(count - first):
            call()
            if (i + 1) % 2000 == 0:
                log(f"soak: {first + i + 1} of {count} invokes")
        wall = time.perf_counter() - t0
        settle(client)
        end = footprint(rt)
    stop_process_tree(rt.proc)
    return {
        "invokes": count,
        "after_first": first,
        "at_first": after_first,
        "at_end": end,
        "rss_growth": end["rss_mib"] / after_first["rss_mib"] - 1,
        "wall_s": wall,
    }


# driver ---------------------------------------------------------------------------------
def interleaved(
    subjects: dict[str, Callable[[], Any]], iterations: int, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Sequential samples of each subject, taken in alternating blocks so drift in machine load hits all alike.

    Each block starts with one call that is not counted: the first call after another subject ran
    was measured at 1.4-1.9 x the rest of its block for every subject (the caches the other subject
    left), so counted it was each subject's p95 (10 blocks: 10 % of the samples), a figure of the
    interleaving, not of the subject (docs/performance.md).
    """
    for fn in subjects.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    per_round = [iterations // rounds + (1 if r < iterations % rounds else 0) for r in range(rounds)]
    for count in per_round:
        for name, fn in subjects.items():
            fn()
            for _ in range(count):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return samples


def sync_of(loop: asyncio.AbstractEventLoop, coro_fn: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: loop.run_until_complete(coro_fn())


def run(args: argparse.Namespace, stack: contextlib.ExitStack, log: Callable[[str], None]) -> dict[str, Any]:
    n = 20 if args.quick else 100
    warmup = 5 if args.quick else 20
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nbmesh-bench-")))
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}

    loop = asyncio.new_event_loop()
    stack.callback(loop.close)

    log("starting nbmesh (pool size 2), the bare Starlette server and two floor kernels…")
    rt = start_runtime(stack, workdir / "store-latency", pool_size=2)
    bare_url = start_bare(stack)
    floor_kernels = {t: FloorKernel(t, str(workdir)) for t in ("ipc", "tcp")}
    for k in floor_kernels.values():
        stack.callback(lambda k=k: loop.run_until_complete(k.stop()))
        loop.run_until_complete(k.start())

    kg_url = None
    if args.skip_kg:
        skipped["kernel_gateway"] = "--skip-kg given"
    else:
        try:
            kg_python = ensure_kernel_gateway(log)
            kg_url, kg_version = start_kernel_gateway(stack, kg_python, workdir)
            results["kernel_gateway_version"] = kg_version
        except Exception as exc:  # noqa: BLE001 - KG is a comparison, not the subject: report and go on
            skipped["kernel_gateway"] = str(exc)
            log(f"Kernel Gateway skipped: {exc}")

    nb_client = stack.enter_context(httpx.Client(base_url=rt.url, timeout=60))
    bare_client = stack.enter_context(httpx.Client(base_url=bare_url, timeout=60))
    publish(nb_client)
    server_ms: list[float] = []
    subjects: dict[str, Callable[[], Any]] = {
        "nbmesh": nbmesh_call(nb_client, server_ms),
        "floor_http": bare_call(bare_client),
        "floor_kernel_ipc": sync_of(loop, floor_kernels["ipc"].execute),
        "floor_kernel_tcp": sync_of(loop, floor_kernels["tcp"].execute),
    }
    if publish_cached(nb_client):
        subjects["nbmesh_cached"] = cached_call(nb_client)
    else:
        skipped["nbmesh_cached"] = "this runtime has no result cache (cache_ttl): the answer was not cached"
    if kg_url:
        kg_client = stack.enter_context(httpx.Client(base_url=kg_url, timeout=60))
        subjects["kernel_gateway"] = kg_call(kg_client)

    rounds = 5 if args.quick else 10
    log(f"sequential: {n} calls each after {warmup} warm-up calls, in {rounds} interleaved rounds…")
    results["load_average_before"] = os.getloadavg()
    samples = interleaved(subjects, n, warmup, rounds=rounds)
    results["load_average_after"] = os.getloadavg()
    for name, s in samples.items():
        results[name] = summary(s)
    # duration_ms is the service's own clock around lease + kernel call: the rest is HTTP and routing.
    results["nbmesh_server_duration"] = summary([ms / 1000 for ms in server_ms[-n:]])
    for transport in ("ipc", "tcp"):
        http, kern = results["floor_http"], results[f"floor_kernel_{transport}"]
        results[f"floor_{transport}"] = {
            "p50_ms": http["p50_ms"] + kern["p50_ms"],
            "p95_ms": http["p95_ms"] + kern["p95_ms"],
            "note": "sum of the parts' percentiles",
        }
    for k in floor_kernels.values():
        loop.run_until_complete(k.stop())
    stop_process_tree(rt.proc)

    papermill_runs = 3 if args.quick else 10
    log(f"papermill CLI: {papermill_runs} runs…")
    results["papermill"] = bench_papermill(papermill_runs, workdir)

    total = 200 if args.quick else 1500
    runtimes: dict[str, tuple[str, subprocess.Popen]] = {}
    for pool in (1, 2):
        rt_t = start_runtime(stack, workdir / f"store-pool{pool}", pool_size=pool)
        with httpx.Client(base_url=rt_t.url, timeout=60) as c:
            publish(c)
        runtimes[f"throughput_pool{pool}"] = (rt_t.url, rt_t.proc)
    if args.baseline:
        try:
            unpack(args.baseline, workdir / "baseline")
        except subprocess.CalledProcessError as exc:
            skipped["baseline"] = f"git archive {args.baseline} failed: {exc.stderr.decode(errors='replace').strip()}"
        else:
            # As it ran then: httptools and uvloop were not installed, so uvicorn picked h11 and asyncio.
            proc, url = start_tree(stack, workdir / "baseline", workdir / "store-baseline", pool_size=2, hide=BASELINE_HIDE)
            with httpx.Client(base_url=url, timeout=60) as c:
                publish(c)
            runtimes["throughput_baseline"] = (url, proc)
            results["baseline"] = args.baseline
    else:
        skipped["baseline"] = "--baseline ''"
    rounds = 5
    log(f"throughput: {total} calls each, 8 concurrent clients, on {', '.join(runtimes)}, in {rounds} interleaved rounds…")
    results.update(bench_throughput(runtimes, total, rounds, loop))
    for _, proc in runtimes.values():
        stop_process_tree(proc)

    cold_rounds = 6 if args.quick else 20
    log(f"cold products: {cold_rounds} first invokes on a spare kernel, and kernel starts…")
    results["cold_product"] = bench_cold(stack, workdir, cold_rounds)
    results["kernel_start"] = loop.run_until_complete(kernel_starts(3 if args.quick else 6))

    soak = args.soak if args.soak is not None else (1000 if args.quick else 10_000)
    if soak:
        log(f"soak: {soak} sequential invokes on a fresh runtime (pool size 2)…")
        results["soak"] = bench_soak(stack, workdir, soak, log)
    else:
        skipped["soak"] = "--soak 0"

    nb50 = results["nbmesh"]["p50_ms"]
    results["ratios"] = {
        "nbmesh_over_floor_ipc": nb50 / results["floor_ipc"]["p50_ms"],
        "nbmesh_p95_over_p50": results["nbmesh"]["p95_ms"] / nb50,
        "nbmesh_over_floor_tcp": nb50 / results["floor_tcp"]["p50_ms"],
        "cached_over_bare_http": results["nbmesh_cached"]["p50_ms"] / results["floor_http"]["p50_ms"]
        if "nbmesh_cached" in results else None,
        "papermill_over_nbmesh": results["papermill"]["p50_ms"] / nb50,
        "kernel_gateway_over_nbmesh": results["kernel_gateway"]["p50_ms"] / nb50 if "kernel_gateway" in results else None,
        "cold_minus_setup_over_kernel_start": results["cold_product"]["first_invoke_minus_setup"]["p50_ms"]
        / results["kernel_start"]["p50_ms"],
        "throughput_pool2_over_pool1": results["throughput_pool2"]["req_per_s"] / results["throughput_pool1"]["req_per_s"],
    }
    results["skipped"] = skipped
    return results


def table(r: dict[str, Any]) -> str:
    rows = [("what", "p50 ms", "p95 ms", "n")]

    def add(label: str, key: str) -> None:
        if key in r:
            rows.append((label, f"{r[key]['p50_ms']:.2f}", f"{r[key]['p95_ms']:.2f}", str(r[key].get("n", ""))))

    add("nbmesh invoke over HTTP (client)", "nbmesh")
    add("  of which service duration_ms", "nbmesh_server_duration")
    add("nbmesh invoke, cached answer", "nbmesh_cached")
    add("floor: bare Starlette JSON POST", "floor_http")
    add("floor: execute_request, ipc", "floor_kernel_ipc")
    add("floor: execute_request, tcp", "floor_kernel_tcp")
    add("floor total, ipc (sum)", "floor_ipc")
    add("floor total, tcp (sum)", "floor_tcp")
    add("papermill CLI, whole process", "papermill")
    add("Kernel Gateway notebook-http", "kernel_gateway")
    if "cold_product" in r:
        for label, key in (("cold product: first invoke", "first_invoke"), ("  of which its setup cells", "setup"),
                           ("  first invoke minus setup", "first_invoke_minus_setup")):
            part = r["cold_product"][key]
            rows.append((label, f"{part['p50_ms']:.2f}", f"{part['p95_ms']:.2f}", str(part["n"])))
    add(f"kernel start ({r.get('kernel_start', {}).get('sandbox')})", "kernel_start")
    width = max(len(row[0]) for row in rows)
    lines = [f"{a:<{width}}  {b:>9}  {c:>9}  {d:>4}" for a, b, c, d in rows]
    lines.insert(1, "-" * len(lines[0]))

    lines += ["", f"{'throughput, 8 concurrent clients':<34}  {'req/s':>7}  {'p50 ms':>8}  {'p95 ms':>8}  {'n':>4}  {'runtime CPU ms/request':>22}"]
    for pool in (1, 2):
        t = r[f"throughput_pool{pool}"]
        lines.append(f"{f'pool size {pool}':<34}  {t['req_per_s']:7.1f}  {t['p50_ms']:8.2f}  {t['p95_ms']:8.2f}  {t['n']:>4}  {t['runtime_cpu_ms_per_request']:22.3f}")
    if "soak" in r:
        s, a, e = r["soak"], r["soak"]["at_first"], r["soak"]["at_end"]
        lines += ["", f"soak, {s['invokes']} sequential invokes ({s['wall_s']:.0f} s)   after {s['after_first']}   at the end"]
        for label, key, fmt in (("RSS runtime + kernels, MiB", "rss_mib", ".1f"), ("  of which the runtime, MiB", "runtime_rss_mib", ".1f"),
                                ("runtime open fds", "fds", "d"), ("runtime threads", "threads", "d"), ("kernel processes", "kernels", "d")):
            lines.append(f"{label:<42} {a[key]:>10{fmt}} {e[key]:>12{fmt}}")

    ratios, skipped = r["ratios"], r["skipped"]

    def target(label: str, value: float | None, goal: str, ok: bool | None, why_missing: str = "") -> str:
        if value is None:
            return f"{label:<52} {'—':>8}   {goal:<10} skipped: {why_missing}"
        verdict = "" if ok is None else "met" if ok else "NOT met"
        return f"{label:<52} {value:8.2f}   {goal:<10} {verdict}"

    cpu2 = r["throughput_pool2"]["runtime_cpu_ms_per_request"]
    cpu1 = r["throughput_pool1"]["runtime_cpu_ms_per_request"]
    lines += ["", "issue 13's targets (ratios measured in this run; timings are reported, never asserted)"]
    lines.append(target("warm invoke p50 / floor p50 (ipc)", ratios["nbmesh_over_floor_ipc"], "<= 1.2", ratios["nbmesh_over_floor_ipc"] <= 1.2))
    lines.append(target("warm invoke p95 / its p50", ratios["nbmesh_p95_over_p50"], "<= 1.5", ratios["nbmesh_p95_over_p50"] <= 1.5))
    cached = ratios["cached_over_bare_http"]
    lines.append(target("cached answer p50 / bare HTTP p50", cached, "<= 1.5", cached is not None and cached <= 1.5,
                        skipped.get("nbmesh_cached", "")))
    cold = ratios["cold_minus_setup_over_kernel_start"]
    lines.append(target("cold product: first invoke - setup / kernel start", cold, "< 0.5", cold < 0.5))
    if "soak" in r:
        soak = r["soak"]
        growth = 100 * soak["rss_growth"]
        lines.append(target(f"soak: RSS growth after the first {soak['after_first']}, %", growth, "< 5", growth < 5))
        flat = all(soak["at_end"][k] == soak["at_first"][k] for k in ("fds", "threads", "kernels"))
        lines.append(f"{'soak: fds, threads, kernel processes flat':<52} {'yes' if flat else 'no':>8}   {'flat':<10} {'met' if flat else 'NOT met'}")
    else:
        lines.append(target("soak", None, "", None, skipped.get("soak", "")))
    lines.append(target("throughput pool 2 / pool 1 (no target on 2 cores)", ratios["throughput_pool2_over_pool1"], "report", None))
    base = r.get("throughput_baseline")
    lines.append(target("runtime CPU ms/request, pool 2, this tree", cpu2, "report", None))
    lines.append(target("runtime CPU ms/request, pool 1, this tree", cpu1, "report", None))
    if base is not None:
        lines.append(target(f"runtime CPU ms/request, pool 2, {r['baseline']}", base["runtime_cpu_ms_per_request"], "report", None))
        share = cpu2 / base["runtime_cpu_ms_per_request"]
        lines.append(target(f"  this tree / {r['baseline']}", share, "<= 0.5", share <= 0.5))
    else:
        lines.append(target("runtime CPU per request, this tree / baseline", None, "<= 0.5", None, skipped.get("baseline", "")))
    lines.append(target("papermill CLI p50 / nbmesh p50", ratios["papermill_over_nbmesh"], ">= 300", ratios["papermill_over_nbmesh"] >= 300))
    kg = ratios["kernel_gateway_over_nbmesh"]
    lines.append(target("Kernel Gateway p50 / nbmesh p50", kg, ">= 2", kg is not None and kg >= 2, skipped.get("kernel_gateway", "")))
    lines.append(target("nbmesh p50 / floor p50 (tcp), for reference", ratios["nbmesh_over_floor_tcp"], "report", None))
    before, after = r["load_average_before"], r["load_average_after"]
    lines += ["", f"1-min load average around the sequential phase: {before[0]:.2f} → {after[0]:.2f} on {os.cpu_count()} CPUs"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations: a smoke run in well under a minute")
    parser.add_argument("--skip-kg", action="store_true", help="leave out Kernel Gateway (and its venv install)")
    parser.add_argument("--budget", type=int, default=900, help="stop everything after this many seconds (default 900)")
    parser.add_argument("--baseline", default=BASELINE, metavar="REV",
                        help=f"git revision whose runtime CPU per request is measured beside this tree's (default {BASELINE}, before issue 13; '' leaves it out)")
    parser.add_argument("--soak", type=int, default=None, metavar="N",
                        help="sequential invokes of the soak (default 10000, 1000 with --quick; 0 leaves it out)")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def on_signal(signum: int, frame: Any) -> None:
        raise Budget(f"the {args.budget} s budget ran out") if signum == signal.SIGALRM else KeyboardInterrupt

    # Exceptions from these handlers unwind through the ExitStack, so nothing outlives the script.
    signal.signal(signal.SIGALRM, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.alarm(args.budget)
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            results = run(args, stack, log)
            log("stopping everything…")
    except (Budget, KeyboardInterrupt) as exc:
        log(f"stopped early: {str(exc) or 'interrupted (SIGINT or SIGTERM)'}; every process it started has been stopped")
        return 1
    finally:
        signal.alarm(0)

    results["meta"] = {
        "command": " ".join([Path(sys.executable).as_posix(), *sys.argv]),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "host": socket.gethostname(),
        "quick": args.quick,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"invoke_latency-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\n(wall {results['meta']['elapsed_s']} s; JSON in {out.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
