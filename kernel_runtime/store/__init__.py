"""Where bytes live: a tiny key/value interface and its backends, picked by URL scheme.

A backend only stores blobs under ``/``-separated keys. What the keys mean
(products, versions, runs) is :mod:`kernel_runtime.store.repository`'s business,
so every backend shares one layout and one test suite. Like papermill's
``iorw`` registry, a backend is chosen by the scheme of the store URL.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

from ..errors import InvalidRequest, StoreUnavailable

DEFAULT_STORE = ".nbmesh/store"


class BlobStore(ABC):
    """Keys are relative paths of ``[A-Za-z0-9._@-]`` segments joined by ``/``."""

    url: str

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The blob at ``key``, or None when there is none."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write ``key`` atomically: readers see the old blob or the new one, never half."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist yet; False when another writer was first."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """All keys under ``prefix``, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""


class LocalStore(BlobStore):
    """A folder on the local disk: atomic writes by temp file + rename."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot use store folder {self.root}: {exc.strerror}.") from exc

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"Cannot read {key} from the store: {exc.strerror}.") from exc

    def _write_temp(self, path: Path, data: bytes, sync: bool) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        return tmp

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            # No fsync: the rename alone keeps a process crash from leaving half a file, and an
            # fsync per run record was measured to slow the next invocation (see bench/README.md).
            os.replace(self._write_temp(path, data, sync=False), path)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot write {key} to the store: {exc.strerror}.") from exc

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            tmp = self._write_temp(path, data, sync=True)
            try:
                # link() is atomic and fails if the target exists: an exclusive, complete write.
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot write {key} to the store: {exc.strerror}.") from exc
        return True

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return []
        keys = [
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        ]
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot delete {key} from the store: {exc.strerror}.") from exc


def _open_local(url: str) -> BlobStore:
    return LocalStore(url.removeprefix("file://"))


def _open_s3(url: str) -> BlobStore:
    from .s3 import S3Store

    return S3Store.from_url(url)


BACKENDS: dict[str, Callable[[str], BlobStore]] = {
    "": _open_local,
    "file": _open_local,
    "s3": _open_s3,
}


def open_store(url: str | None = None) -> BlobStore:
    """The backend for ``url`` (default: ``NBMESH_STORE``, else a local folder)."""
    url = url or os.environ.get("NBMESH_STORE") or DEFAULT_STORE
    scheme = url.split("://", 1)[0] if "://" in url else ""
    try:
        opener = BACKENDS[scheme]
    except KeyError:
        known = ", ".join(s + "://" for s in BACKENDS if s)
        raise InvalidRequest(f"Unknown store scheme {scheme!r} in {url!r}; use a folder path or {known}.") from None
    return opener(url)
