"""kernel_runtime.store.retention (and store.repository's Repository.prune_runs) against a real local store in tmp_path."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import AsyncIterator

import pytest

from kernel_runtime.model.records import FAILED, QUEUED, RUNNING, SUCCEEDED, TIMED_OUT, Run, new_run_id
from kernel_runtime.store.repository import Repository
from kernel_runtime.store.retention import Retention
from kernel_runtime.store import LocalStore


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository(LocalStore(tmp_path / "store"))


def add_runs(repo: Repository, product: str, statuses: list[str]) -> list[str]:
    """Runs of ``product`` saved oldest first, each with its executed notebook; their ids."""
    ids = []
    for status in statuses:
        run = Run(run_id=new_run_id(), product=product, version=1, parameters={}, trigger={"kind": "http"}, status=status)
        repo.save_run(run, notebook={"cells": [], "nbformat": 4} if run.final else None)
        ids.append(run.run_id)
    return ids


def stored(repo: Repository, run_id: str) -> set[str]:
    """Which of a run's blobs are in the store."""
    keys = set(repo.store.list(""))
    kinds = {"record": f"runs/{run_id}.json", "notebook": f"runs/{run_id}.ipynb", "pending": f"pending/{run_id}"}
    found = {kind for kind, key in kinds.items() if key in keys}
    if any(k.startswith("product-runs/") and k.endswith(f"-{run_id}") for k in keys):
        found.add("index")
    return found


def listed(repo: Repository, product: str) -> list[str]:
    return [run.run_id for run in repo.list_runs(product, 100)]


@pytest.mark.parametrize("keep", [0, 1, 3, 5])
def test_prune_keeps_the_newest_runs_and_deletes_every_blob_of_the_others(repo, keep):
    ids = add_runs(repo, "p", [SUCCEEDED, FAILED, TIMED_OUT, SUCCEEDED, SUCCEEDED])
    assert repo.prune_runs("p", keep) == 5 - keep
    kept = ids[::-1][:keep]
    assert listed(repo, "p") == kept
    for run_id in ids:
        if run_id in kept:
            assert stored(repo, run_id) == {"record", "notebook", "index"}
            assert repo.get_run(run_id).run_id == run_id
        else:
            assert stored(repo, run_id) == set()
            assert repo.get_run(run_id) is None
            assert repo.get_run_notebook(run_id) is None


@pytest.mark.parametrize("keep", [5, 6, 100])
def test_nothing_is_pruned_when_there_are_no_more_runs_than_kept(repo, keep):
    ids = add_runs(repo, "p", [SUCCEEDED] * 5)
    assert repo.prune_runs("p", keep) == 0
    assert listed(repo, "p") == ids[::-1]


def test_pruning_again_changes_nothing(repo):
    ids = add_runs(repo, "p", [SUCCEEDED] * 4)
    assert repo.prune_runs("p", 2) == 2
    assert repo.prune_runs("p", 2) == 0
    assert listed(repo, "p") == ids[:1:-1]


@pytest.mark.parametrize("unfinished", [QUEUED, RUNNING])
def test_unfinished_runs_are_never_pruned_however_old(repo, unfinished):
    ids = add_runs(repo, "p", [unfinished, SUCCEEDED, unfinished, FAILED, SUCCEEDED, SUCCEEDED])
    assert repo.prune_runs("p", 0) == 4
    assert listed(repo, "p") == [ids[2], ids[0]]
    assert stored(repo, ids[0]) == {"record", "index", "pending"}
    assert sorted(r.run_id for r in repo.pending_runs()) == sorted([ids[0], ids[2]])


def test_an_unfinished_run_counts_towards_the_newest_kept(repo):
    ids = add_runs(repo, "p", [SUCCEEDED, SUCCEEDED, SUCCEEDED, RUNNING])
    assert repo.prune_runs("p", 2) == 2
    assert listed(repo, "p") == [ids[3], ids[2]]


def test_a_run_that_finishes_later_can_then_be_pruned(repo):
    ids = add_runs(repo, "p", [RUNNING, SUCCEEDED])
    assert repo.prune_runs("p", 1) == 0
    run = repo.get_run(ids[0])
    run.status = SUCCEEDED
    repo.save_run(run, indexed=True)
    assert stored(repo, ids[0]) == {"record", "index"}
    assert repo.prune_runs("p", 1) == 1
    assert listed(repo, "p") == [ids[1]]


def test_pruning_one_product_leaves_the_others_alone(repo):
    mine = add_runs(repo, "p", [SUCCEEDED] * 3)
    other = add_runs(repo, "p2", [SUCCEEDED] * 3)  # a name that p is a prefix of
    assert repo.prune_runs("p", 1) == 2
    assert listed(repo, "p") == [mine[2]]
    assert listed(repo, "p2") == other[::-1]


def test_pruning_a_product_without_runs_is_nothing(repo):
    assert repo.prune_runs("nobody", 0) == 0


# the background task ---------------------------------------------------------------------------------
class RecordingRepo:
    """Stands in for the repository: records prune calls, fails the products it is told to, signals."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail = set(fail)
        self.lock = threading.Lock()
        self.enough = threading.Event()
        self.wanted = 0

    def expect(self, count: int) -> None:
        self.wanted = count
        self.enough.clear()
        if len(self.calls) >= count:
            self.enough.set()

    def prune_runs(self, name: str, keep: int) -> int:
        with self.lock:
            self.calls.append((name, keep))
            if len(self.calls) >= self.wanted:
                self.enough.set()
        if name in self.fail:
            self.fail.discard(name)
            raise OSError("store briefly unavailable")
        return 1


def finished(product: str) -> Run:
    return Run(run_id=new_run_id(), product=product, version=1, parameters={}, trigger={"kind": "http"}, status=SUCCEEDED)


async def wait_calls(repo: RecordingRepo, count: int) -> None:
    repo.expect(count)
    assert await asyncio.to_thread(repo.enough.wait, 5), f"prune_runs was called {len(repo.calls)} times, not {count}"


@contextlib.asynccontextmanager
async def running(retention: Retention) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(retention.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_burst_of_runs_prunes_each_product_once():
    fake = RecordingRepo()
    retention = Retention(fake, keep=7, interval=0)  # type: ignore[arg-type]
    for product in ("b", "a", "b", "a", "b"):
        retention.note(finished(product))
    async with running(retention):
        await wait_calls(fake, 2)
        assert fake.calls == [("a", 7), ("b", 7)]
        retention.note(finished("c"))
        await wait_calls(fake, 3)
        assert fake.calls[2:] == [("c", 7)]


async def test_a_failed_prune_is_retried_with_the_next_burst(caplog):
    fake = RecordingRepo(fail={"a"})
    retention = Retention(fake, keep=2, interval=0)  # type: ignore[arg-type]
    retention.note(finished("a"))
    async with running(retention):
        await wait_calls(fake, 1)
        retention.note(finished("b"))
        await wait_calls(fake, 3)
        assert fake.calls == [("a", 2), ("a", 2), ("b", 2)]
        assert "could not prune the runs of a" in caplog.text


async def test_the_task_prunes_a_real_store(repo):
    ids = add_runs(repo, "p", [SUCCEEDED, RUNNING, SUCCEEDED, SUCCEEDED])
    pruned = threading.Event()
    prune = repo.prune_runs

    def prune_and_signal(name: str, keep: int) -> int:
        try:
            return prune(name, keep)
        finally:
            pruned.set()

    repo.prune_runs = prune_and_signal  # type: ignore[method-assign]
    retention = Retention(repo, keep=1, interval=0)
    retention.note(repo.get_run(ids[-1]))
    async with running(retention):
        assert await asyncio.to_thread(pruned.wait, 5)
        assert listed(repo, "p") == [ids[3], ids[1]]
