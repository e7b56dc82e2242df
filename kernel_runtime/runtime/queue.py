"""The run queue: where background, scheduled and event runs wait for a worker, behind one small interface.

:class:`RunQueue` is what :mod:`.runs` needs of a queue: take runs in (:meth:`~RunQueue.put`, durable
before the caller's 202), hand one out when a worker is free (:meth:`~RunQueue.take`), keep it held
while it runs (:meth:`~RunQueue.hold`), and let it go with the runs its finish triggers
(:meth:`~RunQueue.done`, together). Two implementations, picked by the scheme of ``settings.queue.url``
like the store's backends (:mod:`.queues`): :class:`EmbeddedQueue` (no URL: in this process, one machine; the store's
``queued`` records carry runs over a restart) and :class:`~.redis_queue.RedisQueue` (``redis://``:
a Streams consumer group shared by replicas, docs/queue.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from ..errors import QueueFull
from ..model.records import QUEUED, RUNNING, Run


@dataclass
class Delivery:
    """A run handed to a worker: ``entry`` is the queue's handle of it, ``deliveries`` counts this one."""

    run: Run
    entry: Any = None
    deliveries: int = 1


class RunQueue(ABC):
    """Runs waiting for a worker. ``replica`` names this process to the other replicas (``/healthz``)."""

    max_deliveries: int | None = None  # past it a run is dead-lettered; None: a run is delivered once

    def __init__(self, size: int) -> None:
        self.size = size
        self.replica = secrets.token_hex(8)
        self._secret = secrets.token_bytes(32)

    async def open(self) -> None:
        """Get ready to take runs (at start, before settling)."""

    async def close(self) -> None:
        """Let go of what the queue holds open."""

    @abstractmethod
    async def put(self, runs: list[Run]) -> None:
        """Queue ``runs`` (their records stored as ``queued``), all or none: QueueFull, or QueueUnavailable."""

    @abstractmethod
    async def take(self) -> Delivery | None:
        """The next run for a free worker; None when none came for a while (the worker looks again)."""

    @contextlib.asynccontextmanager
    async def hold(self, delivery: Delivery) -> AsyncIterator[None]:
        """Keep ``delivery`` this replica's while the block runs (the embedded queue has nobody to keep it from)."""
        yield

    @abstractmethod
    async def done(self, delivery: Delivery, triggered: list[Run], dead: bool = False) -> None:
        """``delivery``'s run is final in the store: let it go and queue the runs its finish triggered, together;
        ``dead``: it was delivered too often, set it aside (dead-letter)."""

    @abstractmethod
    async def settle(self, unfinished: list[Run], published: Callable[[Run], bool]) -> list[tuple[Run, str]]:
        """At start, of the store's unfinished runs: keep those the queue will still run; return the rest,
        each with why it cannot run ("was running"), to be recorded as failed."""

    @abstractmethod
    def depth(self) -> int:
        """Runs waiting (as last seen, for a shared queue)."""

    def room(self) -> int:
        return max(0, self.size - self.depth())

    def derived_id(self, upstream: str, key: str) -> str:
        """The run id of the run ``key`` that run ``upstream``'s finish triggers: the same on every replica
        and every redelivery (so a link is queued once), unguessable without the queue's secret."""
        return hmac.new(self._secret, f"{upstream}/{key}".encode(), hashlib.sha256).hexdigest()[:32]


class EmbeddedQueue(RunQueue):
    """One process's queue: an asyncio queue bounded by ``--queue-size``; the store's ``queued`` records are its durability."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self._runs: asyncio.Queue[Run] = asyncio.Queue(maxsize=size)

    async def put(self, runs: list[Run]) -> None:
        if len(runs) > self.room():
            raise QueueFull(f"The background queue is full ({self.size} runs); try again later.")
        for run in runs:
            self._runs.put_nowait(run)

    async def take(self) -> Delivery | None:
        return Delivery(await self._runs.get())

    async def done(self, delivery: Delivery, triggered: list[Run], dead: bool = False) -> None:
        await self.put(triggered)

    async def settle(self, unfinished: list[Run], published: Callable[[Run], bool]) -> list[tuple[Run, str]]:
        """Runs a stop left queued go back on the queue; runs it left running are failed."""
        failed = []
        for run in unfinished:
            if run.status == QUEUED and published(run) and not self._runs.full():
                self._runs.put_nowait(run)
            elif run.status == RUNNING:
                failed.append((run, "was running"))
            elif published(run):
                # Failing the excess keeps a restart possible after --queue-size was lowered.
                failed.append((run, f"was queued beyond the background queue's bound of {self.size}"))
            else:
                failed.append((run, "was queued for a product no longer published"))
        return failed

    def depth(self) -> int:
        return self._runs.qsize()
