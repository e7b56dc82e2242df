"""The local-folder backend: a folder on the local disk, atomic writes by temp file + rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import StoreUnavailable
from .blob import BlobStore


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

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _write_temp(self, path: Path, data: bytes, sync: bool) -> str:
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except FileNotFoundError:  # the folder's first file: made here, not tried (and failed) on every write
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
        if not data:
            return self._put_empty(key, path)
        try:
            # No fsync: the rename alone keeps a process crash from leaving half a file, and an
            # fsync per run record was measured to slow the next invocation (see bench/README.md).
            os.replace(self._write_temp(path, data, sync=False), path)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot write {key} to the store: {exc.strerror}.") from exc

    def _put_empty(self, key: str, path: Path) -> None:
        """An empty object (a run's index entry, its pending marker) is complete as soon as it exists:
        made in place, it costs one file creation instead of a temp file's and a rename."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            try:
                fd = os.open(path, flags, 0o600)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, flags, 0o600)
            os.close(fd)
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
