"""Catalog changes between replicas: a publish or unpublish announced on a Redis pub/sub channel.

With ``--queue``, the replica that publishes or unpublishes a product announces the product's name
on ``settings.queue.catalog_channel``; every other replica hears it at once and reloads that
product from the store, so all of them serve the change within a second. A message is only a hint
that names the product: the store stays the truth, so a lost, late, repeated or forged message
makes a replica re-read the store and nothing more. Messages missed while Redis is down are made
up for twice over: a replica reloads its whole catalog each time it subscribes again, and the
store polling (``settings.store.catalog_sync``) goes on regardless.

This module knows no catalog: what to do with a changed name, and with a full reload, is handed
to :meth:`CatalogChanges.listen`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable

from ..errors import NbmeshError, QueueUnavailable
from ..model.product import check_name
from ..settings import QueueSettings
from .redis_link import answering, connect, retrying

log = logging.getLogger("nbmesh.catalog")


class CatalogChanges:
    """Announces this replica's catalog changes and hears the other replicas' ones."""

    """``replica``: this replica's id; its own announcements are not heard back."""

    def __init__(self, settings: QueueSettings, replica: str) -> None:
        self.settings = settings
        self.channel = settings.catalog_channel
        self.client = connect(settings)
        self.replica = replica
        self._announcing: set[asyncio.Task] = set()
        self._stopping = False

    def announce(self, name: str) -> None:
        """Tell the other replicas ``name`` changed, without holding up the caller's answer.

        The change is in the store already; an announcement that Redis does not take is logged and
        left to the other replicas' reload on reconnect and their store polling.
        """
        task = asyncio.get_running_loop().create_task(self._announce(name))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _announce(self, name: str) -> None:
        message = json.dumps({"product": name, "replica": self.replica})
        try:
            async with answering(self.settings.url or "", "announcing a catalog change"):
                await self.client.publish(self.channel, message)
        except QueueUnavailable as exc:
            log.warning("the change of %s was not announced (other replicas pick it up from the store): %s", name, exc.message)

    async def listen(self, changed: Callable[[str], Awaitable[None]], reload: Callable[[], Awaitable[None]]) -> None:
        """Call ``changed(name)`` for each product another replica announces, until cancelled.

        Each try after the first (Redis was down at start, or went away) starts with ``reload()`` once
        subscribed: what was announced meanwhile is lost to pub/sub, not to the store.
        """
        tries = 0
        async for attempt in retrying(self.settings.retry, lambda: self._stopping, "hearing catalog changes"):
            with attempt:
                tries += 1
                async with answering(self.settings.url or "", "hearing catalog changes"):
                    async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
                        await pubsub.subscribe(self.channel)
                        if tries > 1:
                            await _quietly(reload(), "reloading the catalog after Redis returned")
                        while True:
                            message = await pubsub.get_message(timeout=self.settings.block)
                            if message is not None:
                                await self._heard(message.get("data"), changed)

    async def _heard(self, data: object, changed: Callable[[str], Awaitable[None]]) -> None:
        name = self._product_of(data)
        if name is not None:
            await _quietly(changed(name), f"reloading product {name} after another replica changed it")

    def _product_of(self, data: object) -> str | None:
        """The product a message names, or None for this replica's own message or one that is not ours."""
        try:
            message = json.loads(data) if isinstance(data, (bytes, str)) else None
            name = message["product"]
            check_name(name)
        except (ValueError, TypeError, KeyError, NbmeshError):
            log.warning("ignored a message on %s that names no product: %.200r", self.channel, data)
            return None
        return None if message.get("replica") == self.replica else name

    async def close(self) -> None:
        """Let announcements in flight finish (each is bounded by the Redis timeout), then drop the client."""
        self._stopping = True
        await asyncio.gather(*self._announcing, return_exceptions=True)
        await self.client.aclose()


async def _quietly(step: Awaitable[None], doing: str) -> None:
    # A store that fails this one reload must not end the listening: the next change or the store
    # polling tries again.
    try:
        await step
    except NbmeshError as exc:
        log.warning("%s failed: %s %s", doing, exc.message, exc.details)
