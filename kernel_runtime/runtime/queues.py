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
    "redis": _open_redis,
    "rediss": _open_redis,
    "unix": _open_redis,
}


def open_queue(settings: QueueSettings, size: int) -> RunQueue:
    """The queue ``settings.url`` names (none: embedded), bounded by ``size`` waiting runs."""
    if not settings.url:
        return EmbeddedQueue(size)
    scheme = urlsplit(settings.url).scheme
    opener = QUEUES.get(scheme)
    if opener is None:  # the URL itself is not echoed: it may hold a password
        given = f"{scheme}://" if scheme else "no scheme"
        raise InvalidConfig(f"--queue takes a URL like redis://HOST:PORT/DB (or rediss://, unix://); the one given has {given}.")
    return opener(settings, size)
