"""The per-product concurrency cap: how many kernels one product may hold at once.

Without it one busy product could hold every kernel and starve the rest of
the catalog. Runs beyond a product's cap wait, in arrival order, for one of
that product's own runs to finish; they do not take a kernel while waiting,
so other products keep being served. The number of waiters is bounded too:
past it a run is refused with :class:`QueueFull` (503) instead of piling up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from ..errors import QueueFull


class ProductLimiter:
    def __init__(self, limit: int, max_waiting: int) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._waiting: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def slot(self, product: str) -> AsyncIterator[None]:
        """Hold one of ``product``'s slots for the block; waits while all are taken."""
        sem = self._slots.get(product)
        if sem is None:
            sem = self._slots[product] = asyncio.Semaphore(self.limit)
        if sem.locked():
            waiting = self._waiting.get(product, 0)
            if waiting >= self.max_waiting:
                raise QueueFull(
                    f"{waiting} runs of {product!r} are already waiting for its concurrency limit "
                    f"of {self.limit}; try again later."
                )
            self._waiting[product] = waiting + 1
            try:
                await sem.acquire()
            finally:
                self._waiting[product] -= 1
        else:
            await sem.acquire()
        try:
            yield
        finally:
            sem.release()

    def waiting(self) -> int:
        """Runs waiting for a product slot, across all products."""
        return sum(self._waiting.values())
