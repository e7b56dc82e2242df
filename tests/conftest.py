"""Shared fixtures and helpers: a real `nbmesh serve` process on loopback with its own store, the API
in-process over httpx.ASGITransport, notebook builders, and the small steps every suite takes
(publish, invoke, wait for a run, read an error body, run the CLI)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx
import nbformat
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from kernel_runtime.http.app import create_app
from kernel_runtime.store.repository import Repository
from kernel_runtime.runtime.service import Service
from kernel_runtime.settings import PoolSettings, Settings
from kernel_runtime.store import open_store

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# A change (POST, PUT, DELETE) declares a JSON body, even an empty one: a runtime without a token
# refuses it otherwise (docs/security.md). httpx's json= sets it; raw content= and no body need it.
JSON = {"Content-Type": "application/json"}
FINAL = frozenset({"succeeded", "failed", "timed_out"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_notebook(
    cells: list[tuple[str, str]],
    name: str | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """A notebook dict from (tag, source) pairs; tag "" means an untagged cell, "md" a markdown cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbmesh = dict(meta)
    if name:
        nbmesh["name"] = name
    nb.metadata.nbmesh = nbmesh
    for tag, source in cells:
        if tag == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": [tag] if tag else []}))
    return json.loads(nbformat.writes(nb))


@dataclass
class Runtime:
    """A running `nbmesh serve` subprocess."""

    store: str
    port: int
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT  # where `nbmesh serve` runs: nothing of the product may depend on it
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Runtime":
        env = {**os.environ, **self.env}
        cmd = [sys.executable, "-m", "kernel_runtime", "serve", "--store", self.store, "--port", str(self.port), *self.args]
        self.log = Path(tempfile.gettempdir()) / f"nbmesh-serve-{self.port}.log"
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nbmesh serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"nbmesh serve did not answer within {timeout} s:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the runtime, and its kernels too: they live in their own sessions."""
        assert self.proc is not None
        kernels = _children(self.proc.pid)
        self.proc.kill()
        self.proc.wait()
        for pid in kernels:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kw)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.fixture(scope="session")
def runtime(tmp_path_factory) -> Runtime:
    """One runtime shared by the tests that do not stop it (pool size 2)."""
    store = tmp_path_factory.mktemp("store")
    rt = Runtime(store=str(store), port=free_port(), args=["--pool-size", "2"]).start()
    yield rt
    rt.stop()


@pytest.fixture
def fresh_runtime(tmp_path):
    """A runtime of the test's own, for tests that stop, kill or restart it."""
    runtimes: list[Runtime] = []

    def start(*args: str, store: str | None = None, env: dict[str, str] | None = None) -> Runtime:
        rt = Runtime(store=store or str(tmp_path / "store"), port=free_port(), args=list(args), env=env or {})
        runtimes.append(rt)
        return rt.start()

    yield start
    for rt in runtimes:
        rt.stop()


@pytest.fixture
def http(runtime) -> httpx.Client:
    with runtime.client() as client:
        yield client


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy, and return that; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


# the API in this process ------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def asgi(tmp_path_factory) -> httpx.AsyncClient:
    """The app `nbmesh serve` builds, served in this process through httpx.ASGITransport: for tests of
    HTTP answers alone (one kernel, no spare). Its tests run on the module's event loop:
    mark them ``pytest.mark.asyncio(loop_scope="module")``."""
    store = tmp_path_factory.mktemp("asgi-store")
    service = Service(Repository(open_store(str(store))), Settings(pool=PoolSettings(size=1, spares=0)))
    app = create_app(service)
    # ASGITransport runs no lifespan: enter the app's own (service start, then stop) around the client.
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            yield client


# steps every suite takes --------------------------------------------------------------------------
def publish(http: httpx.Client, notebook: list[tuple[str, str]] | dict[str, Any], name: str | None = None, **meta: Any) -> str:
    """Publish ``notebook`` (a notebook dict, or (tag, source) cells and metadata for make_notebook)
    as ``name``: by default the name in its metadata, else a fresh one. The test fails unless the
    runtime accepts it. Returns the name."""
    if isinstance(notebook, dict):
        assert not meta, "metadata goes into the notebook dict"
        body = notebook
        name = name or notebook["metadata"].get("nbmesh", {}).get("name")
    else:
        body = make_notebook(notebook, **meta)
    name = name or unique("p")
    answer = http.put(f"/api/products/{name}", json=body)
    assert answer.status_code == 201, answer.text
    return name


def invoke(http: httpx.Client, name: str, status: int = 200, **params: Any) -> dict[str, Any]:
    """Invoke ``name`` with ``params``; the test fails unless the answer has ``status``. Returns its body."""
    answer = http.post(f"/api/products/{name}/invoke", json=params)
    assert answer.status_code == status, answer.text
    return answer.json()


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The error body of ``answer``, which must have ``status`` and one clear sentence in ``error``."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert isinstance(body["error"], str) and body["error"], body
    return body


def runs_of(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    """Every run of product ``name``, newest first."""
    answer = http.get(f"/api/products/{name}/runs", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return answer.json()["runs"]


def wait_run(http: httpx.Client, run_id: str, until: str | Iterable[str] = FINAL, timeout: float = 60) -> dict[str, Any]:
    """Wait until run ``run_id`` has a status in ``until`` (by default: a final one); return the run."""
    wanted = {until} if isinstance(until, str) else set(until)
    return wait_for(lambda: (run := http.get(f"/api/runs/{run_id}").json())["status"] in wanted and run,
                    timeout, f"run {run_id} to be {'/'.join(sorted(wanted))}")


def answers(url: str) -> bool:
    """Whether a runtime answers at ``url`` (its /healthz)."""
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.TransportError:
        return False
    return True


def stored_status(store: str | Path, run_id: str) -> str | None:
    """The status in run ``run_id``'s record in a store folder (``runs/{id}.json``); None before it is written."""
    try:
        return json.loads((Path(store) / "runs" / f"{run_id}.json").read_text())["status"]
    except FileNotFoundError:
        return None


def settled_pool(http: httpx.Client, timeout: float = 60) -> dict[str, Any]:
    """The pool (from /healthz) once every kernel is started and idle and none is being shut down."""
    return wait_for(
        lambda: (p := http.get("/healthz").json()["pool"])["idle"] == p["size"] + p["spare_target"]
        and not p["starting"] and not p["dead"] and p,
        timeout, "a settled pool")


def metrics(http: httpx.Client) -> dict[tuple[str, tuple], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    answer = http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def cli(*args: str, env: dict[str, str | None] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`nbmesh ARGS` in a subprocess at the repository root; ``env`` overrides this process's
    environment (None removes a variable)."""
    merged = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "kernel_runtime", *args], env=merged, capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


class Gate:
    """A closed gate product code waits at, so a run stays running exactly until the test opens it.

    The gate is a loopback port this test holds bound but not listening: ``code`` (a cell) polls it
    until ``open`` starts listening. Kernels reach loopback in their sandbox; a product published
    with the code keeps waiting at the same gate after a runtime restart.
    """

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))

    @property
    def code(self) -> str:
        # Product code polls: this sleep is the run's own behaviour, not the test's synchronisation.
        port = self.socket.getsockname()[1]
        return (
            "import socket, time\nwhile True:\n    try:\n"
            f"        socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n        break\n"
            "    except OSError:\n        time.sleep(0.02)"
        )

    def open(self) -> None:
        self.socket.listen(1024)
