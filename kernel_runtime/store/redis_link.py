"""The link to the Redis that replicas share (``settings.queue.url``): opening it, and its outages as one typed error.

Everything replicas share through Redis (the run queue, catalog changes, schedule claims) opens its
client with :func:`connect`, so all share one URL check and one set of timeouts, and wraps its calls in
:func:`answering`, so a Redis that does not answer reaches the layers above as
:class:`~kernel_runtime.errors.QueueUnavailable` (a 503), never as a redis-py exception.
Loops that must outlast an outage wait between tries with :func:`retrying`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from ..errors import InvalidConfig, QueueUnavailable
from ..settings import Backoff, QueueSettings

log = logging.getLogger("nbmesh.redis")

SCHEMES = ("redis", "rediss", "unix")
# What a Redis that is down, restarting (LOADING is a ConnectionError) or too slow raises.
OUTAGES = (RedisConnectionError, RedisTimeoutError, OSError)


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def connect(settings: QueueSettings) -> aioredis.Redis:
    """A client of ``settings.url`` (it connects on first use); a URL that is not Redis's is InvalidConfig."""
    url = settings.url or ""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise InvalidConfig(f"--queue {redacted(url)!r} is not a Redis URL; write redis://HOST:PORT/DB.")
    try:
        return aioredis.from_url(
            url,
            socket_connect_timeout=settings.timeout,
            # A blocking read waits up to `block` on the server before answering.
            socket_timeout=settings.timeout + settings.block,
            health_check_interval=max(1.0, settings.timeout),
            # Once, at once, on a fresh connection: a pooled one is stale after Redis restarted. Not
            # on a timeout, which may come after Redis did the command.
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
    except ValueError as exc:
        raise InvalidConfig(f"--queue {redacted(url)!r} is not a usable Redis URL: {exc}") from None


@contextlib.asynccontextmanager
async def answering(url: str, doing: str) -> AsyncIterator[None]:
    """Redis not answering while ``doing`` (a phrase: "queueing the run") becomes QueueUnavailable."""
    try:
        yield
    except OUTAGES as exc:
        raise QueueUnavailable(f"Redis at {redacted(url)} does not answer ({doing}); try again later.", [str(exc)]) from exc


def retrying(backoff: Backoff, stopping: Callable[[], bool], what: str) -> AsyncRetrying:
    """Tries of ``what`` while Redis is down (``async for attempt in retrying(...): with attempt: ...``),
    waits doubling as ``backoff`` says (``settings.queue.retry``), until ``stopping()``."""

    def waiting(state: RetryCallState) -> None:
        assert state.outcome is not None
        log.warning("%s waits for Redis: %s", what, state.outcome.exception())

    return AsyncRetrying(
        retry=retry_if_exception_type(QueueUnavailable),
        wait=wait_exponential(multiplier=backoff.first, max=backoff.max),
        stop=lambda state: stopping(),
        before_sleep=waiting,
        reraise=True,
    )
