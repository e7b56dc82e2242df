"""The store layout: where products, versions and runs live as blobs.

Keys (identical on every backend):

- ``products/{name}/versions/{version:08d}.json``  immutable published versions
- ``products/{name}/unpublished.json``             the last version withdrawn by DELETE
- ``runs/{run_id}.json`` / ``runs/{run_id}.ipynb``  run records and executed notebooks
- ``product-runs/{name}/{newest-first stamp}-{run_id}``  per-product run index
- ``pending/{run_id}``                            runs not final yet (settled on restart)
- ``schedules/{name}/{schedule_id}/{due}``        due times of a schedule already claimed by a replica

Every method is synchronous and may block on I/O; the service calls them
from a worker thread.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, TypeVar

from .errors import CorruptRecord, VersionConflict
from .records import Run, StoredVersion, now_iso
from .store import BlobStore

log = logging.getLogger("nbmesh.store")
_MAX_STAMP = 10**19
T = TypeVar("T", Run, StoredVersion)
_DUE_FORMAT = "%Y%m%dT%H%M%SZ"
_KEPT_CLAIMS = 3


def _dump(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _load(key: str, blob: bytes) -> Any:
    try:
        return json.loads(blob)
    except ValueError as exc:
        raise CorruptRecord(f"Stored object {key} is not valid JSON: {exc}.") from exc


def _load_record(key: str, blob: bytes, cls: type[T]) -> T:
    """A record dataclass from its stored JSON; a wrong shape is a CorruptRecord naming the key."""
    data = _load(key, blob)
    try:
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, found {type(data).__name__}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
    except TypeError as exc:
        raise CorruptRecord(f"Stored object {key} is not a valid {cls.__name__} record: {exc}.") from exc


class Repository:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    # products ---------------------------------------------------------------
    def product_names(self) -> list[str]:
        names = {key.split("/")[1] for key in self.store.list("products/")}
        return sorted(n for n in names if self.versions(n))

    def versions(self, name: str) -> list[int]:
        """The live versions of ``name``, ascending; empty when unpublished."""
        stored = [
            int(key.rsplit("/", 1)[1].removesuffix(".json"))
            for key in self.store.list(f"products/{name}/versions/")
        ]
        withdrawn = self._unpublished_version(name)
        return sorted(v for v in stored if v > withdrawn)

    def _unpublished_version(self, name: str) -> int:
        key = f"products/{name}/unpublished.json"
        blob = self.store.get(key)
        return int(_load(key, blob)["version"]) if blob else 0

    def _all_versions(self, name: str) -> list[int]:
        keys = self.store.list(f"products/{name}/versions/")
        return [int(k.rsplit("/", 1)[1].removesuffix(".json")) for k in keys]

    def get_version(self, name: str, version: int) -> StoredVersion | None:
        key = f"products/{name}/versions/{version:08d}.json"
        blob = self.store.get(key)
        if blob is None:
            return None
        return _load_record(key, blob, StoredVersion)

    def add_version(self, name: str, notebook: dict[str, Any], attempts: int = 20) -> StoredVersion:
        """Store ``notebook`` as the next version; concurrent publishers get distinct numbers."""
        for _ in range(attempts):
            existing = self._all_versions(name)
            version = max([*existing, self._unpublished_version(name)], default=0) + 1
            record = StoredVersion(name=name, version=version, published_at=now_iso(), notebook=notebook)
            if self.store.create(f"products/{name}/versions/{version:08d}.json", _dump(record.to_json())):
                return record
        raise VersionConflict(f"Could not publish {name}: {attempts} other publishes raced it; try again.")

    def unpublish(self, name: str, version: int) -> None:
        self.store.put(f"products/{name}/unpublished.json", _dump({"version": version, "at": now_iso()}))

    # runs -------------------------------------------------------------------
    def save_run(self, run: Run, notebook: dict[str, Any] | None = None, indexed: bool = False) -> None:
        """Write a run record; the first write of a run also indexes it under its product."""
        if notebook is not None:
            self.store.put(f"runs/{run.run_id}.ipynb", _dump(notebook))
        self.store.put(f"runs/{run.run_id}.json", _dump(run.to_json()))
        if not indexed:
            stamp = _MAX_STAMP - time.time_ns()
            self.store.put(f"product-runs/{run.product}/{stamp:020d}-{run.run_id}", b"")
        if run.final:
            self.store.delete(f"pending/{run.run_id}")
        else:
            self.store.put(f"pending/{run.run_id}", b"")

    def get_run(self, run_id: str) -> Run | None:
        key = f"runs/{run_id}.json"
        blob = self.store.get(key)
        return _load_record(key, blob, Run) if blob else None

    def get_run_notebook(self, run_id: str) -> dict[str, Any] | None:
        key = f"runs/{run_id}.ipynb"
        blob = self.store.get(key)
        return _load(key, blob) if blob else None

    def _readable_runs(self, run_ids: list[str]) -> list[Run]:
        """The runs that can be read; a corrupt record is logged and left in place, not fatal to the list."""
        runs = []
        for run_id in run_ids:
            try:
                run = self.get_run(run_id)
            except CorruptRecord as exc:
                log.error("%s", exc.message)
                continue
            if run is not None:
                runs.append(run)
        return runs

    def list_runs(self, name: str, limit: int) -> list[Run]:
        keys = self.store.list(f"product-runs/{name}/")[:limit]
        return self._readable_runs([key.rsplit("-", 1)[1] for key in keys])

    def prune_runs(self, name: str, keep: int) -> int:
        """Delete all but the newest ``keep`` runs of ``name`` (never unfinished ones); how many went."""
        pruned = 0
        for key in self.store.list(f"product-runs/{name}/")[keep:]:
            run_id = key.rsplit("-", 1)[1]
            if self.store.get(f"pending/{run_id}") is not None:
                continue
            # The index key goes last: a prune cut short leaves an entry list_runs skips, never a hidden run.
            self.store.delete(f"runs/{run_id}.ipynb")
            self.store.delete(f"runs/{run_id}.json")
            self.store.delete(key)
            pruned += 1
        return pruned

    def pending_runs(self) -> list[Run]:
        return self._readable_runs([key.split("/", 1)[1] for key in self.store.list("pending/")])

    # schedules ----------------------------------------------------------------
    def claim_schedule(self, name: str, schedule_id: str, due: datetime) -> bool:
        """Claim one due time of a schedule; only the first replica to ask gets True."""
        prefix = f"schedules/{name}/{schedule_id}/"
        if not self.store.create(prefix + due.astimezone(timezone.utc).strftime(_DUE_FORMAT), b""):
            return False
        # Only the newest claims matter (they bound catch-up after downtime); drop the rest.
        for key in self.store.list(prefix)[:-_KEPT_CLAIMS]:
            self.store.delete(key)
        return True

    def last_schedule_claim(self, name: str, schedule_id: str) -> datetime | None:
        keys = self.store.list(f"schedules/{name}/{schedule_id}/")
        if not keys:
            return None
        return datetime.strptime(keys[-1].rsplit("/", 1)[1], _DUE_FORMAT).replace(tzinfo=timezone.utc)
