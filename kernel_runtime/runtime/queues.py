"""The run queue named by ``settings.queue.url``: the embedded one without a URL, Redis Streams with ``redis://``.

A registry by URL scheme, like the store's backends; the Redis queue (and redis-py) is imported
only when a URL asks for it.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from ..errors import InvalidConfig
from ..settings import QueueSettings
from .queue import EmbeddedQueue, RunQueue


def _open_redis(settings: QueueSettings, size: int) -> RunQueue:
    from .redis_queue import RedisQueue

    return RedisQueue(settings, size)


QUEUES: dict[str, Callable[[QueueSettings, int], RunQueue]] = {
    "": lambda settings, size: EmbeddedQueue(size),
    "redis": _open_redis,
    "rediss": _open_redis,
    "unix": _open_redis,
}


def open_queue(settings: QueueSettings, size: int) -> RunQueue:
    """The queue ``settings.url`` names (none: embedded), bounded by ``size`` waiting runs."""
    scheme = urlsplit(settings.url).scheme if settings.url else ""
    opener = QUEUES.get(scheme)
    if opener is None:
        raise InvalidConfig(f"--queue {scheme}://…: a queue URL is redis://HOST:PORT/DB (or rediss://, unix://).")
    return opener(settings, size)
