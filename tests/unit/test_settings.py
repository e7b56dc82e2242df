"""The settings tree (kernel_runtime/settings.py, docs/reference/settings.md) and the retries timed by it."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from kernel_runtime.errors import InvalidRequest, StoreUnavailable, VersionConflict
from kernel_runtime.kernels.sandbox import resolve
from kernel_runtime.runtime.writer import Writer
from kernel_runtime.settings import (
    DEFAULT_URL,
    Backoff,
    PoolSettings,
    RunSettings,
    Settings,
    StoreSettings,
    least,
    reference,
)
from kernel_runtime.store import LocalStore
from kernel_runtime.store.repository import Repository
from kernel_runtime.store.s3 import S3Store

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "settings.md"


# the tree -------------------------------------------------------------------------------------
def test_the_reference_page_lists_every_setting_as_the_code_defines_it():
    assert reference() in DOC.read_text(), "regenerate the table: python -c 'from kernel_runtime.settings import reference; print(reference())'"


def test_every_setting_has_a_doc():
    rows = [line for line in reference().splitlines()[2:]]
    assert rows and all(not line.endswith("|  |") for line in rows)


def test_the_default_url_is_the_default_host_and_port():
    http = Settings().http
    assert DEFAULT_URL == f"http://{http.host}:{http.port}"


def test_set_reaches_any_setting_with_its_type():
    tree = Settings().override([
        "pool.start_retry.max=60",
        "pool.kernel_env=A, B",
        "runs.max_concurrency=3",
        "runs.max_concurrency=none",
        "store.keep_runs=7",
        "triggers.clock_file=/tmp/now",
        "http.port=9000",
    ])
    assert tree.pool.start_retry == Backoff(0.5, 60.0)
    assert tree.pool.kernel_env == ("A", "B")
    assert tree.runs.max_concurrency is None
    assert tree.store.keep_runs == 7
    assert tree.triggers.clock_file == "/tmp/now"
    assert tree.http.port == 9000
    assert Settings().pool.start_retry.max == 30.0  # the tree is frozen: overriding makes a new one


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("pool.start_timeout", "write SECTION.NAME=VALUE"),
        ("pool.nope=1", "no such setting"),
        ("pool=1", "no such setting"),
        ("pool.size.x=1", "no such setting"),
        ("pool.size=many", "'many' is not an integer"),
        ("pool.start_timeout=-1", "is not a finite number of at least 0"),
        ("pool.start_timeout=inf", "is not a finite number of at least 0"),
    ],
)
def test_a_bad_set_is_one_clear_error(assignment, message):
    with pytest.raises(InvalidRequest, match=message):
        Settings().override([assignment])


def test_checked_names_every_setting_below_its_least_value():
    with pytest.raises(InvalidRequest) as caught:
        Settings().override(["pool.size=0", "store.s3_attempts=0"]).checked()
    assert caught.value.message == "--pool-size must be at least 1, got 0. store.s3_attempts must be at least 1, got 0."
    assert Settings().checked() == Settings()
    assert least("store.catalog_sync") == 0.1


def test_one_kernel_stays_out_of_a_products_and_the_workers_reach_by_default():
    runs = RunSettings()
    assert (runs.concurrency(4), runs.worker_count(4)) == (3, 3)
    assert (runs.concurrency(1), runs.worker_count(1)) == (1, 1)
    assert RunSettings(max_concurrency=4, workers=2).concurrency(4) == 4
    assert RunSettings(max_concurrency=4, workers=2).worker_count(4) == 2


def test_the_sandbox_takes_its_tmp_size_from_the_settings():
    sandbox = resolve(PoolSettings(sandbox="none", kernel_tmp=12345), {})
    assert (sandbox.kind, sandbox.tmp_size) == ("none", 12345)
    args = sandbox.__class__("bubblewrap", {}, 12345).command(["python"], "/tmp/ipc")
    assert args[args.index("--size") + 1] == "12345"


# the write-behind writer's retry --------------------------------------------------------------
class FlakyRepository:
    """A store that is down for its first ``failures`` writes: an outage, which no real store gives on cue."""

    def __init__(self, failures: int, local: bool) -> None:
        self.local = local  # a local store's first attempt is made on the loop, the retries in the thread
        self.failures = failures
        self.attempts = 0
        self.saved: list[str] = []

    def save_run(self, run, notebook, indexed) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise StoreUnavailable("The store is down.")
        self.saved.append(run.run_id)


def finished_run():
    from kernel_runtime.model.records import Run, new_run_id

    return Run(run_id=new_run_id(), product="p", version=1, parameters={}, trigger={"kind": "http"})


@pytest.mark.parametrize("local", [True, False])
async def test_the_writer_waits_out_a_store_outage(caplog, local):
    repo = FlakyRepository(failures=3, local=local)
    writer = Writer(repo, Backoff(0.0, 0.0))  # type: ignore[arg-type]
    run = finished_run()
    writer.start()
    with caplog.at_level(logging.WARNING, "nbmesh.service"):
        writer.record(run, None, indexed=False)
        await asyncio.wait_for(writer.flush(), 10)
    await writer.stop()
    assert repo.saved == [run.run_id] and repo.attempts == 4
    assert run.run_id not in writer.unsaved
    assert caplog.text.count(f"run {run.run_id} waits for the store: The store is down.") == 3


@pytest.mark.parametrize("local", [True, False])
async def test_a_stopping_writer_keeps_the_run_in_memory_instead_of_waiting(local):
    repo = FlakyRepository(failures=1000, local=local)
    writer = Writer(repo, Backoff(0.0, 0.0))  # type: ignore[arg-type]
    run = finished_run()
    writer.begin_stop()
    writer.start()
    writer.record(run, None, indexed=False)
    await asyncio.wait_for(writer.flush(), 10)
    await writer.stop()
    assert repo.attempts == (2 if local else 1) and repo.saved == []  # a local store's one try on the loop, then the thread's
    assert writer.unsaved[run.run_id].run is run


@pytest.mark.parametrize("local, where", [(True, "loop"), (False, "nbmesh-writer")])
async def test_a_local_store_is_written_on_the_loop_a_remote_one_in_the_thread(local, where):
    repo = FlakyRepository(failures=0, local=local)
    threads: list[str] = []
    save = repo.save_run
    repo.save_run = lambda *args, **kwargs: (threads.append(threading.current_thread().name), save(*args, **kwargs))
    writer = Writer(repo, Backoff(0.0, 0.0))  # type: ignore[arg-type]
    writer.start()
    writer.record(finished_run(), None, indexed=False)
    await asyncio.wait_for(writer.flush(), 10)
    await writer.stop()
    loop_thread = threading.current_thread().name
    assert threads == [loop_thread if where == "loop" else where] and len(repo.saved) == 1


# S3's exclusive create ------------------------------------------------------------------------
class ConflictingS3:
    """An S3 client whose conditional writes conflict (409) ``conflicts`` times: a race S3 cannot be made to lose on cue."""

    class meta:
        endpoint_url = "http://s3.test"

    def __init__(self, conflicts: int, then: str | None = None) -> None:
        self.conflicts = conflicts
        self.then = then
        self.puts = 0

    def create_bucket(self, Bucket: str) -> None:
        pass

    def put_object(self, **kwargs) -> None:
        self.puts += 1
        if self.puts <= self.conflicts:
            raise ClientError({"Error": {"Code": "ConditionalRequestConflict"}}, "PutObject")
        if self.then is not None:
            raise ClientError({"Error": {"Code": self.then, "Message": self.then}}, "PutObject")


def s3(client: ConflictingS3, attempts: int = 5) -> S3Store:
    return S3Store("bucket", client=client, settings=StoreSettings(s3_conflict_attempts=attempts))


def test_a_conflicting_exclusive_create_is_retried():
    client = ConflictingS3(conflicts=2)
    assert s3(client).create("k", b"x") is True and client.puts == 3


def test_the_retry_then_tells_whether_the_other_write_won():
    client = ConflictingS3(conflicts=1, then="PreconditionFailed")
    assert s3(client).create("k", b"x") is False and client.puts == 2


def test_conflicts_past_the_attempts_are_store_unavailable():
    client = ConflictingS3(conflicts=100)
    with pytest.raises(StoreUnavailable, match="kept reporting conflicting writes to k"):
        s3(client, attempts=3).create("k", b"x")
    assert client.puts == 3


def test_other_s3_errors_are_not_retried():
    client = ConflictingS3(conflicts=0, then="AccessDenied")
    with pytest.raises(StoreUnavailable, match="could not create k"):
        s3(client).create("k", b"x")
    assert client.puts == 1


# the version-number race of a publish ---------------------------------------------------------
class RacedStore(LocalStore):
    """A folder where another publisher takes each version number just before this one, ``races`` times."""

    def __init__(self, root: Path, races: int) -> None:
        super().__init__(root)
        self.races = races

    def create(self, key: str, data: bytes) -> bool:
        if self.races and key.startswith("products/"):
            self.races -= 1
            super().create(key, data)  # the other publisher's write lands first
        return super().create(key, data)


def test_a_publish_that_loses_the_race_takes_the_next_number(tmp_path):
    repo = Repository(RacedStore(tmp_path, races=2), publish_attempts=3)
    assert repo.add_version("p", {"cells": []}).version == 3
    assert repo.versions("p") == [1, 2, 3]


def test_a_publish_that_loses_every_race_is_a_version_conflict(tmp_path):
    repo = Repository(RacedStore(tmp_path, races=3), publish_attempts=3)
    with pytest.raises(VersionConflict, match="3 other publishes raced it"):
        repo.add_version("p", {"cells": []})
