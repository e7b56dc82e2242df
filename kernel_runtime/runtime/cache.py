"""The result cache (docs/reference/notebook-format.md, ``cache_ttl``): an invoke of the same product
version with the same parameters within the product's ``cache_ttl`` answers the earlier successful run.

Keyed on name, version and the full parameter set (defaults filled in, keys sorted), so a call that
spells out a default hits the entry of one that leaves it out. Only synchronous HTTP invokes read and
fill it: background, scheduled and event runs always run. A hit is the earlier run's record with
``cached`` true: no new run, no record written, no run-finished hook. The cache is a bounded LRU
(``runs.cache_size`` entries) in this process's memory; a publish or unpublish of a product drops
its entries. Hits and misses are counted per product for ``/metrics``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter, OrderedDict
from typing import Any

from ..model.records import Run

Key = tuple[str, int, str]


class ResultCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Key, tuple[float, Run]] = OrderedDict()
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()

    @staticmethod
    def key(name: str, version: int, parameters: dict[str, Any]) -> Key:
        return name, version, json.dumps(parameters, sort_keys=True, separators=(",", ":"))

    def get(self, key: Key) -> Run | None:
        """The earlier run, marked cached, if it is still fresh; counts a hit or a miss."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            self._entries.move_to_end(key)
            self.hits[key[0]] += 1
            return dataclasses.replace(entry[1], cached=True)
        if entry is not None:
            del self._entries[key]
        self.misses[key[0]] += 1
        return None

    def put(self, key: Key, run: Run, ttl: float) -> None:
        self._entries[key] = (time.monotonic() + ttl, run)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, name: str) -> None:
        """Forget every entry of product ``name`` (it was republished or unpublished)."""
        for key in [k for k in self._entries if k[0] == name]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
