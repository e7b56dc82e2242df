"""Shared fixtures: a real `nbmesh serve` process on loopback with its own store, and notebook builders."""

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
from typing import Any, Callable

import httpx
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# A change (POST, PUT, DELETE) declares a JSON body, even an empty one: a runtime without a token
# refuses it otherwise (docs/security.md). httpx's json= sets it; raw content= and no body need it.
JSON = {"Content-Type": "application/json"}


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
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
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
    """One runtime shared by the tests that do not stop it (pool size 2; the examples' data readable)."""
    store = tmp_path_factory.mktemp("store")
    rt = Runtime(store=str(store), port=free_port(), args=["--pool-size", "2", "--kernel-workdir", str(NOTEBOOKS)]).start()
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
