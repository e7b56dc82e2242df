"""Run retention (``nbmesh serve --keep-runs N``): the store keeps each product's newest N runs.

Pruning happens off the invoke path: finished runs only mark their product,
and one background task prunes the marked products at most once per
``interval``, in a worker thread. Runs that are not final yet are never
pruned, so a restart still finds what it must resume or settle.
"""

from __future__ import annotations

import asyncio
import logging

from ..model.records import Run
from ..settings import StoreSettings
from .repository import Repository

log = logging.getLogger("nbmesh.retention")


class Retention:
    def __init__(self, repo: Repository, keep: int, interval: float = StoreSettings.prune_interval) -> None:
        self.repo = repo
        self.keep = keep
        self.interval = interval
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()

    def note(self, run: Run) -> None:
        self._dirty.add(run.product)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            # Let a burst of runs (and their writes) land first: one listing per burst, not per run.
            await asyncio.sleep(self.interval)
            self._wake.clear()
            names, self._dirty = self._dirty, set()
            for name in sorted(names):
                try:
                    pruned = await asyncio.to_thread(self.repo.prune_runs, name, self.keep)
                except Exception:  # the store may be briefly unavailable; the next run retries
                    log.exception("could not prune the runs of %s", name)
                    self._dirty.add(name)
                    continue
                if pruned:
                    log.info("pruned %d old run(s) of %s, keeping %d", pruned, name, self.keep)
