"""The store layout: where products, versions and runs live as blobs.

Keys (identical on every backend):

- ``products/{name}/versions/{version:08d}.json``  immutable published versions
- ``products/{name}/unpublished.json``             the last version withdrawn by DELETE
- ``runs/{run_id}.json`` / ``runs/{run_id}.ipynb``  run records and executed notebooks
- ``product-runs/{name}/{newest-first stamp}-{run_id}``  per-product run index
- ``pending/{run_id}``                            runs not final yet (settled on restart)
- ``schedules/{name}/{schedule_id}/{due}``        due times of a schedule already claimed by a replica
- ``files/sha256/{hex}``                          a product file's bytes, named by their digest (shared
  by every version and product that has the same content; a version's manifest names them)

Every method is synchronous and may block on I/O; the service calls them
from a worker thread.

The store may hold what nbmesh did not write (a hand edit, another program, an older release).
Every record read is checked (strict JSON, shape, and that it is the record its key names) and
every key is parsed whole: what fails is a CorruptRecord naming the key when it was asked for by
name, and is skipped with one log line when a listing meets it. Nothing is rewritten or deleted
because it failed to parse.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from datetime import datetime, timezone
from typing import Any, TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_attempt

from .. import jsontext
from ..errors import CorruptRecord, MalformedJSON, UnacceptableJSON, VersionConflict, quoted
from ..model.bundle import FileEntry, Upload
from ..model.product import is_name
from ..model.records import RUN_ID, RUN_ID_RE, Run, StoredVersion, now_iso
from ..settings import StoreSettings
from .blob import BlobStore

log = logging.getLogger("nbmesh.store")
_MAX_STAMP = 10**19
T = TypeVar("T", Run, StoredVersion)
_DUE_FORMAT = "%Y%m%dT%H%M%SZ"
_KEPT_CLAIMS = 3
_VERSION_FILE = re.compile(r"([0-9]{8,9})\.json", re.ASCII)
_INDEX_ENTRY = re.compile(rf"[0-9]{{20}}-({RUN_ID})", re.ASCII)
_DUE = re.compile(r"[0-9]{8}T[0-9]{6}Z", re.ASCII)


def _dump(data: Any) -> bytes:
    return jsontext.dumps(data)


def _load(key: str, blob: bytes) -> Any:
    try:
        return jsontext.loads(blob, f"Stored object {key}")
    except (MalformedJSON, UnacceptableJSON) as exc:
        raise CorruptRecord(exc.message) from None


def _load_record(key: str, blob: bytes, cls: type[T]) -> T:
    """A record dataclass from its stored JSON; a wrong shape is a CorruptRecord naming the key."""
    data = _load(key, blob)
    try:
        return cls.from_json(data)
    except ValueError as exc:
        raise CorruptRecord(f"Stored object {key} is not a valid {cls.__name__} record: {exc}.") from None


class Repository:
    def __init__(self, store: BlobStore, publish_attempts: int = StoreSettings.publish_attempts) -> None:
        self.store = store
        self.publish_attempts = publish_attempts
        self._skipped: set[str] = set()


    @property
    def local(self) -> bool:
        """Whether writes are local file-system calls, quick enough for the event loop (``BlobStore.local``)."""
        return self.store.local
    def _skip(self, key: str, why: str) -> None:
        """Log a key a listing leaves out, once: catalog syncs list the same keys again and again."""
        if key not in self._skipped:
            self._skipped.add(key)
            log.error("skipping %s in the store: %s", key, why)

    # products ---------------------------------------------------------------
    def product_names(self) -> list[str]:
        """Names with anything stored; whether a live version exists is for :meth:`versions` to say."""
        names = set()
        for key in self.store.list("products/"):
            name = key.split("/")[1]
            if is_name(name):
                names.add(name)
            else:
                self._skip(key, "the folder is not a valid product name")
        return sorted(names)

    def versions(self, name: str) -> list[int]:
        """The live versions of ``name``, ascending; empty when unpublished."""
        withdrawn = self._unpublished_version(name)
        return [v for v in self._all_versions(name) if v > withdrawn]

    def _unpublished_version(self, name: str) -> int:
        key = f"products/{name}/unpublished.json"
        blob = self.store.get(key)
        if blob is None:
            return 0
        data = _load(key, blob)
        version = data.get("version") if isinstance(data, dict) else None
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise CorruptRecord(f"Stored object {key} does not name the withdrawn version as a number.")
        return version

    def _all_versions(self, name: str) -> list[int]:
        prefix = f"products/{name}/versions/"
        versions = []
        for key in self.store.list(prefix):
            match = _VERSION_FILE.fullmatch(key[len(prefix) :])
            # One spelling per version: "000000001.json" is not a second version 1.
            if match and f"{int(match[1]):08d}" == match[1]:
                versions.append(int(match[1]))
            else:
                self._skip(key, "not a version file (NNNNNNNN.json)")
        return sorted(versions)

    def get_version(self, name: str, version: int) -> StoredVersion | None:
        key = f"products/{name}/versions/{version:08d}.json"
        blob = self.store.get(key)
        if blob is None:
            return None
        stored = _load_record(key, blob, StoredVersion)
        if (stored.name, stored.version) != (name, version):
            # A file copied or planted under another product's name is not that product's version.
            raise CorruptRecord(
                f"Stored object {key} holds {quoted(stored.name)} version {stored.version}, not {name!r} version {version}."
            )
        return stored

    def add_version(self, name: str, notebook: dict[str, Any], files: dict[str, FileEntry] | None = None) -> StoredVersion:
        """Store ``notebook`` (with the manifest of its ``files``, already stored) as the next version;
        concurrent publishers get distinct numbers."""
        retrying = Retrying(retry=retry_if_result(lambda record: record is None), stop=stop_after_attempt(self.publish_attempts))
        try:
            return retrying(self._create_next_version, name, notebook, files or {})
        except RetryError:
            raise VersionConflict(f"Could not publish {name}: {self.publish_attempts} other publishes raced it; try again.") from None

    def _create_next_version(self, name: str, notebook: dict[str, Any], files: dict[str, FileEntry]) -> StoredVersion | None:
        """The next version, stored; None when a racing publisher took its number first."""
        existing = self._all_versions(name)
        version = max([*existing, self._unpublished_version(name)], default=0) + 1
        record = StoredVersion(name=name, version=version, published_at=now_iso(), notebook=notebook, files=files)
        if self.store.create(f"products/{name}/versions/{version:08d}.json", _dump(record.to_json())):
            return record
        return None

    # files ------------------------------------------------------------------
    def put_files(self, uploads: list[Upload]) -> dict[str, FileEntry]:
        """Store each file under its digest, skipping the ones already there; the manifest of them."""
        manifest: dict[str, FileEntry] = {}
        for upload in uploads:
            key = f"files/sha256/{upload.sha256}"
            if not self.store.exists(key):
                self.store.create(key, upload.read())  # False: a racing publish stored the same bytes
            manifest[upload.path] = FileEntry(sha256=upload.sha256, size=upload.size)
        return manifest

    def get_file(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``, checked against it."""
        key = f"files/sha256/{sha256}"
        blob = self.store.get(key)
        if blob is None:
            raise CorruptRecord(f"Stored object {key} is missing: a version names it as one of its files.")
        if hashlib.sha256(blob).hexdigest() != sha256:
            raise CorruptRecord(f"Stored object {key} does not hold the bytes its digest names.")
        return blob

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
        if not run.final:
            self.store.put(f"pending/{run.run_id}", b"")
        elif indexed:  # only a run written before its end (indexed then) can have a pending marker
            self.store.delete(f"pending/{run.run_id}")

    def get_run(self, run_id: str) -> Run | None:
        key = f"runs/{run_id}.json"
        blob = self.store.get(key)
        if blob is None:
            return None
        run = _load_record(key, blob, Run)
        if run.run_id != run_id:
            raise CorruptRecord(f"Stored object {key} holds run {quoted(run.run_id)}, not {run_id!r}.")
        return run

    def get_run_notebook(self, run_id: str) -> dict[str, Any] | None:
        key = f"runs/{run_id}.ipynb"
        blob = self.store.get(key)
        if blob is None:
            return None
        notebook = _load(key, blob)
        if not isinstance(notebook, dict):
            raise CorruptRecord(f"Stored object {key} is not a notebook.")
        return notebook

    def _readable_runs(self, entries: list[tuple[str, str]], product: str | None = None) -> list[Run]:
        """The runs (key that lists it, run id) that can be read; a corrupt record is logged and left in place."""
        runs = []
        for key, run_id in entries:
            try:
                run = self.get_run(run_id)
            except CorruptRecord as exc:
                self._skip(f"runs/{run_id}.json", exc.message)
                continue
            if run is not None and product is not None and run.product != product:
                self._skip(key, f"it lists a run of product {quoted(run.product)}")
                continue
            if run is not None:
                runs.append(run)
        return runs

    def _index(self, name: str) -> list[tuple[str, str]]:
        """(index key, run id) of ``name``'s runs, newest first; keys of another shape are skipped."""
        entries = []
        prefix = f"product-runs/{name}/"
        for key in self.store.list(prefix):
            match = _INDEX_ENTRY.fullmatch(key[len(prefix) :])
            if match:
                entries.append((key, match[1]))
            else:
                self._skip(key, "not a run index entry")
        return entries

    def list_runs(self, name: str, limit: int, version: int | None = None) -> list[Run]:
        """``name``'s newest ``limit`` runs; of that version only when ``version`` is given."""
        entries = self._index(name)
        if version is None:
            return self._readable_runs(entries[:limit], name)
        # The index does not name versions: read runs newest first, a page at a time, until enough match.
        found: list[Run] = []
        for start in range(0, len(entries), limit):
            found += [r for r in self._readable_runs(entries[start : start + limit], name) if r.version == version]
            if len(found) >= limit:
                break
        return found[:limit]

    def prune_runs(self, name: str, keep: int) -> int:
        """Delete all but the newest ``keep`` runs of ``name`` (never unfinished ones); how many went."""
        pruned = 0
        for key, run_id in self._index(name)[keep:]:
            if self.store.get(f"pending/{run_id}") is not None:
                continue
            # The index key goes last: a prune cut short leaves an entry list_runs skips, never a hidden run.
            self.store.delete(f"runs/{run_id}.ipynb")
            self.store.delete(f"runs/{run_id}.json")
            self.store.delete(key)
            pruned += 1
        return pruned

    def pending_runs(self) -> list[Run]:
        entries = []
        for key in self.store.list("pending/"):
            if RUN_ID_RE.fullmatch(key.split("/", 1)[1]):
                entries.append((key, key.split("/", 1)[1]))
            else:
                self._skip(key, "not a pending-run marker")
        return self._readable_runs(entries)

    def settled(self, run_id: str) -> None:
        """Drop the pending marker of a run whose final record is already stored."""
        self.store.delete(f"pending/{run_id}")

    # schedules ----------------------------------------------------------------
    def claim_schedule(self, name: str, schedule_id: str, due: datetime) -> bool:
        """Claim one due time of a schedule; only the first replica to ask gets True."""
        prefix = f"schedules/{name}/{schedule_id}/"
        if not self.store.create(prefix + due.astimezone(timezone.utc).strftime(_DUE_FORMAT), b""):
            return False
        # Only the newest claims matter (they bound catch-up after downtime); drop the rest.
        for key, _ in self._claims(prefix)[:-_KEPT_CLAIMS]:
            self.store.delete(key)
        return True

    def last_schedule_claim(self, name: str, schedule_id: str) -> datetime | None:
        claims = self._claims(f"schedules/{name}/{schedule_id}/")
        return claims[-1][1] if claims else None

    def _claims(self, prefix: str) -> list[tuple[str, datetime]]:
        """(key, due time) of the claims under ``prefix``, oldest first; other keys are skipped."""
        claims = []
        for key in self.store.list(prefix):
            name = key[len(prefix) :]
            try:
                if not _DUE.fullmatch(name):  # strptime alone takes non-ASCII digits
                    raise ValueError(name)
                claims.append((key, datetime.strptime(name, _DUE_FORMAT).replace(tzinfo=timezone.utc)))
            except ValueError:
                self._skip(key, "not a schedule claim")
        return claims
