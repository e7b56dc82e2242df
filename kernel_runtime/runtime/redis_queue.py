"""The run queue shared by replicas: one Redis stream read by one consumer group (``--queue redis://…``).

Each waiting or running run is one stream entry (field ``run``: its record as JSON); each replica
is a consumer of the group named by its random replica id, so the group's pending list says which
replica holds which run. A replica reads (``XREADGROUP``) only when a worker, and so a kernel, is
free. The lease is the entry's idle time in the pending list: a heartbeat resets it (``XCLAIM …
JUSTID``, only while this replica is still the holder, in one script), and a free worker of any
replica first takes over entries idle longer than the lease (``XAUTOCLAIM``). Letting a run go is
one script: ``XACK`` and, only if that acked it, ``XDEL`` and the ``XADD`` of the runs its finish
triggered (the outbox: the final record is already in the store, and its events go out with the ack
or not at all). docs/queue.md states the guarantees.
"""

from __future__ import annotations

import contextlib
import asyncio
import json
import logging
import time
from datetime import datetime
from typing import AsyncIterator, Callable

from redis.exceptions import ResponseError

from ..errors import QueueFull
from ..model.records import Run
from ..settings import QueueSettings
from ..store.redis_link import OUTAGES, answering, connect, retrying
from .queue import Delivery, RunQueue

log = logging.getLogger("nbmesh.queue")

# KEYS: stream. ARGV: bound, runs...: all or none, within the bound; the stream's new length, or -1.
PUT = """
if redis.call('XLEN', KEYS[1]) + #ARGV - 1 > tonumber(ARGV[1]) then return -1 end
for i = 2, #ARGV do redis.call('XADD', KEYS[1], '*', 'run', ARGV[i]) end
return redis.call('XLEN', KEYS[1])
"""

# KEYS: stream, dead-letter stream. ARGV: group, entry, dead (1/0), triggered runs...
DONE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[3] == '1' then
  local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
  if #entry == 1 then redis.call('XADD', KEYS[2], '*', 'entry', ARGV[2], unpack(entry[1][2])) end
end
redis.call('XDEL', KEYS[1], ARGV[2])
for i = 4, #ARGV do redis.call('XADD', KEYS[1], '*', 'run', ARGV[i]) end
return 1
"""

# KEYS: stream. ARGV: group, entry, consumer: reset the entry's idle time if that consumer still holds it.
BEAT = """
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3])
if #held == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
"""


class RedisQueue(RunQueue):
    def __init__(self, settings: QueueSettings, size: int) -> None:
        super().__init__(size)
        self.settings = settings
        self.url = settings.url or ""
        self.max_deliveries = settings.max_deliveries
        self.redis = connect(settings)
        self._put = self.redis.register_script(PUT)
        self._done = self.redis.register_script(DONE)
        self._beat = self.redis.register_script(BEAT)
        self._length = 0
        self._stopping = False

    async def _call(self, doing: str, call: Callable, *, wait: bool = True):
        """``call()`` against Redis; while it is down, retried with backoff (``wait``) or QueueUnavailable."""
        if not wait:
            async with answering(self.url, doing):
                return await call()
        async for attempt in retrying(self.settings.retry, lambda: self._stopping, doing):
            with attempt:
                async with answering(self.url, doing):
                    return await call()

    async def open(self) -> None:
        async def prepare() -> bytes:
            await self._ensure_group()
            # One secret shared by the replicas, so they derive the same ids for triggered runs.
            key = f"{self.settings.stream}:secret"
            await self.redis.set(key, self._secret, nx=True)
            return await self.redis.get(key)

        self._secret = await self._call("starting the queue", prepare)
        log.info("replica %s takes runs from stream %s", self.replica, self.settings.stream)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.settings.stream, self.settings.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def close(self) -> None:
        self._stopping = True
        await self.redis.aclose()

    async def put(self, runs: list[Run]) -> None:
        texts = [json.dumps(run.to_json()) for run in runs]
        length = await self._call(
            "queueing the run", lambda: self._put(keys=[self.settings.stream], args=[self.size, *texts]), wait=False
        )
        if length < 0:
            raise QueueFull(f"The background queue is full ({self.size} runs); try again later.")
        self._length = length

    async def take(self) -> Delivery | None:
        while not self._stopping:
            try:
                return await self._call("taking a run", self._take)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis lost the group (restarted without its data): make it again and go on.
                await self._call("making the consumer group", self._ensure_group)
        return None

    async def _take(self) -> Delivery | None:
        stream, group, me = self.settings.stream, self.settings.group, self.replica
        lease_ms = int(self.settings.lease * 1000)
        _, claimed, _ = await self.redis.xautoclaim(stream, group, me, lease_ms, start_id="0-0", count=1)
        if claimed:
            entry, fields = claimed[0]
            pending = await self.redis.xpending_range(stream, group, min=entry, max=entry, count=1)
            delivered = pending[0]["times_delivered"] if pending else self.max_deliveries + 1
            log.warning("replica %s takes over run entry %s (delivery %s): its lease lapsed", me, entry, delivered)
            return await self._delivery(entry, fields, delivered)
        got = await self.redis.xreadgroup(group, me, {stream: ">"}, count=1, block=int(self.settings.block * 1000))
        self._length = await self.redis.xlen(stream)
        if not got:
            return None
        entry, fields = got[0][1][0]
        return await self._delivery(entry, fields, 1)

    async def _delivery(self, entry: bytes, fields: dict[bytes, bytes], delivered: int) -> Delivery | None:
        try:
            return Delivery(_run_of(fields), entry, delivered)
        except (KeyError, ValueError, TypeError) as exc:
            # Not written by nbmesh (or by an incompatible version): set aside, never retried.
            log.error("stream entry %s holds no run record (%s); moved to %s", entry, exc, self.settings.dead_letter)
            await self._done(keys=[self.settings.stream, self.settings.dead_letter], args=[self.settings.group, entry, 1])
            return None

    @contextlib.asynccontextmanager
    async def hold(self, delivery: Delivery) -> AsyncIterator[None]:
        beating = asyncio.create_task(self._heartbeats(delivery))
        try:
            yield
        finally:
            beating.cancel()

    async def _heartbeats(self, delivery: Delivery) -> None:
        args = [self.settings.group, delivery.entry, self.replica]
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval())
            try:
                if not await self._beat(keys=[self.settings.stream], args=args):
                    log.warning("run %s: another replica took it over (this one's lease lapsed)", delivery.run.run_id)
                    return
            except OUTAGES as exc:  # the lease may lapse meanwhile; another replica may then take the run over
                log.warning("run %s: no heartbeat, Redis does not answer: %s", delivery.run.run_id, exc)

    async def done(self, delivery: Delivery, triggered: list[Run], dead: bool = False) -> None:
        texts = [json.dumps(run.to_json()) for run in triggered]
        keys = [self.settings.stream, self.settings.dead_letter]
        args = [self.settings.group, delivery.entry, int(dead), *texts]
        acked = await self._call("letting a finished run go", lambda: self._done(keys=keys, args=args))
        if not acked:
            log.warning("run %s was let go by another replica already; its events went out with that", delivery.run.run_id)

    async def settle(self, unfinished: list[Run], published: Callable[[Run], bool]) -> list[tuple[Run, str]]:
        """Runs in the stream are kept: whoever holds them runs them, or they lapse to a live replica.
        An unfinished record not in the stream and older than a lease plus a Redis timeout is a run
        whose submit died between the store and Redis: it never ran and never will. But for an event
        run: one stored before its upstream run was let go is queued when that run is delivered again."""
        entries = await self._call("reading the queue", lambda: self.redis.xrange(self.settings.stream))
        queued = {_run_of(fields).run_id for _, fields in entries}
        cutoff = time.time() - self.settings.lease - self.settings.timeout
        return [
            (run, "was accepted but never reached the queue")
            for run in unfinished
            if run.run_id not in queued
            and run.trigger.get("kind") != "event"
            and datetime.fromisoformat(run.created_at).timestamp() < cutoff
        ]

    def depth(self) -> int:
        return self._length

    def room(self) -> int:
        # The put script holds the shared stream to the bound; the length this replica last saw may be
        # stale (its workers busy), and must not refuse a run the stream has room for.
        return self.size


def _run_of(fields: dict[bytes, bytes]) -> Run:
    return Run.from_json(json.loads(fields[b"run"]))
