"""kernel_runtime.runtime.limits.ProductLimiter: the per-product concurrency cap, in process (no kernels)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Callable

import pytest

from kernel_runtime.errors import QueueFull
from kernel_runtime.runtime.limits import ProductLimiter


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the event loop run (no timed sleep) until ``condition`` holds; fail if it never does."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def idle(turns: int = 20) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


class Runs:
    """Runs of products through one limiter, each held inside its slot until released."""

    def __init__(self, limiter: ProductLimiter) -> None:
        self.limiter = limiter
        self.inside: dict[str, list[int]] = {}
        self.entered: list[tuple[str, int]] = []
        self.refused: list[tuple[str, int]] = []
        self.release: dict[tuple[str, int], asyncio.Event] = {}
        self.tasks: dict[tuple[str, int], asyncio.Task] = {}

    def start(self, product: str, n: int) -> asyncio.Task:
        self.release[(product, n)] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._run(product, n))
        self.tasks[(product, n)] = task
        return task

    async def _run(self, product: str, n: int) -> None:
        try:
            async with self.limiter.slot(product):
                self.inside.setdefault(product, []).append(n)
                self.entered.append((product, n))
                try:
                    await self.release[(product, n)].wait()
                finally:
                    self.inside[product].remove(n)
        except QueueFull:
            self.refused.append((product, n))
            raise

    def finish(self, product: str, n: int) -> None:
        self.release[(product, n)].set()

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


@contextlib.asynccontextmanager
async def running(limit: int, max_waiting: int) -> AsyncIterator[Runs]:
    """A limiter and its runs; every run left is cancelled at the end, and a hang fails within 5 s."""
    runs = Runs(ProductLimiter(limit=limit, max_waiting=max_waiting))
    try:
        async with asyncio.timeout(5):
            yield runs
    finally:
        await runs.stop()


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_a_product_never_holds_more_than_its_limit(limit):
    async with running(limit, max_waiting=10) as runs:
        for n in range(limit + 3):
            runs.start("p", n)
        await until(lambda: runs.limiter.waiting() == 3, "three runs waiting")
        await idle()
        assert sorted(runs.inside["p"]) == list(range(limit))
        runs.finish("p", 0)
        await until(lambda: runs.limiter.waiting() == 2, "one waiter admitted")
        await idle()
        assert sorted(runs.inside["p"]) == [*range(1, limit), limit]


async def test_waiters_are_admitted_in_arrival_order():
    async with running(1, max_waiting=10) as runs:
        for n in range(6):
            runs.start("p", n)
            await idle(3)
        await until(lambda: runs.limiter.waiting() == 5, "five waiting")
        for n in range(6):
            await until(lambda: runs.inside["p"] == [n], f"run {n} inside")
            runs.finish("p", n)
        await asyncio.gather(*runs.tasks.values())
        assert [n for _, n in runs.entered] == [0, 1, 2, 3, 4, 5]


async def test_a_newcomer_does_not_overtake_a_waiter_when_a_slot_frees():
    async with running(1, max_waiting=10) as runs:
        runs.start("p", 0)
        runs.start("p", 1)
        await until(lambda: runs.limiter.waiting() == 1, "one waiting")
        runs.finish("p", 0)
        runs.start("p", 2)  # arrives in the same loop turn as the release
        await until(lambda: runs.inside["p"] == [1], "the waiter inside")
        await idle()
        assert runs.inside["p"] == [1]
        assert runs.limiter.waiting() == 1


@pytest.mark.parametrize("max_waiting", [0, 1, 3])
async def test_past_the_waiting_bound_a_run_is_refused_with_queue_full(max_waiting):
    async with running(1, max_waiting) as runs:
        limiter = runs.limiter
        for n in range(1 + max_waiting):
            runs.start("p", n)
        await until(lambda: limiter.waiting() == max_waiting and runs.inside.get("p") == [0], "slot and queue full")
        with pytest.raises(QueueFull) as info:
            async with limiter.slot("p"):
                pytest.fail("entered a full product")
        assert info.value.message == (
            f"{max_waiting} runs of 'p' are already waiting for its concurrency limit of 1; try again later."
        )
        assert limiter.waiting() == max_waiting  # the refusal left no trace


async def test_the_waiting_bound_frees_up_as_waiters_get_in():
    async with running(1, max_waiting=1) as runs:
        limiter = runs.limiter
        runs.start("p", 0)
        runs.start("p", 1)
        await until(lambda: limiter.waiting() == 1, "one waiting")
        runs.start("p", 2)
        await until(lambda: runs.refused == [("p", 2)], "the third refused")
        runs.finish("p", 0)
        await until(lambda: runs.inside["p"] == [1] and limiter.waiting() == 0, "the waiter admitted")
        runs.start("p", 3)
        await until(lambda: limiter.waiting() == 1, "a new waiter accepted")
        assert runs.refused == [("p", 2)]


async def test_products_are_limited_separately():
    async with running(1, max_waiting=0) as runs:
        for product in ("a", "b", "c"):
            runs.start(product, 0)
        await until(lambda: len(runs.entered) == 3, "one run of each product inside")
        assert runs.limiter.waiting() == 0
        assert runs.refused == []


async def test_waiting_counts_waiters_across_all_products():
    async with running(1, max_waiting=5) as runs:
        for product, count in (("a", 3), ("b", 2), ("c", 1)):
            for n in range(count):
                runs.start(product, n)
        await until(lambda: len(runs.entered) == 3, "one of each inside")
        await until(lambda: runs.limiter.waiting() == 3, "three waiting in all")  # a: 2, b: 1, c: 0
        runs.finish("a", 0)
        await until(lambda: runs.limiter.waiting() == 2, "one of a's waiters admitted")
        await runs.stop()
        assert runs.limiter.waiting() == 0


async def test_a_cancelled_waiter_leaves_the_count_and_loses_no_slot():
    async with running(1, max_waiting=5) as runs:
        limiter = runs.limiter
        runs.start("p", 0)
        runs.start("p", 1)
        runs.start("p", 2)
        await until(lambda: limiter.waiting() == 2, "two waiting")
        runs.tasks[("p", 1)].cancel()
        await until(lambda: limiter.waiting() == 1, "the cancelled waiter gone")
        runs.finish("p", 0)
        await until(lambda: runs.inside["p"] == [2], "the next waiter inside")
        runs.finish("p", 2)
        await until(lambda: runs.tasks[("p", 2)].done(), "the last run done")
        async with limiter.slot("p"):  # the slot came back
            assert limiter.waiting() == 0


async def test_an_error_inside_the_slot_gives_the_slot_back():
    limiter = ProductLimiter(limit=1, max_waiting=0)
    with pytest.raises(RuntimeError, match="boom"):
        async with limiter.slot("p"):
            raise RuntimeError("boom")
    async with limiter.slot("p"):  # would raise QueueFull had the slot leaked
        assert limiter.waiting() == 0
