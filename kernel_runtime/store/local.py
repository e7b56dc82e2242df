"""The local-folder backend: a folder on the local disk, atomic writes by temp file + rename.

Writes are plain ``os`` calls on string paths: a run's record is written after every invoke, and
``tempfile.mkstemp``'s random names, ``os.fdopen``'s file object and ``pathlib`` were most of that
write's own time (docs/performance.md, change 8).
"""

from __future__ import annotations

import itertools
import os
import secrets
from pathlib import Path

from ..errors import StoreUnavailable
from .blob import BlobStore

_TEMP_PREFIX = ".tmp-"  # a write in progress: never listed
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class LocalStore(BlobStore):
    """A folder on the local disk: atomic writes by temp file + rename."""

    local = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = self._root = str(self.root)
        self._tag = secrets.token_hex(6)
        self._serial = itertools.count()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot use store folder {self.root}: {exc.strerror}.") from exc

    def _file(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _temp_name(self, path: str) -> str:
        # Unique without a random draw per write: this store object's random tag (another process,
        # or another store on the same folder, has its own) and a counter (next() on
        # itertools.count is atomic under the GIL, so threads sharing the store cannot collide).
        return f"{path.rpartition('/')[0]}/{_TEMP_PREFIX}{self._tag}-{next(self._serial)}"

    def get(self, key: str) -> bytes | None:
        try:
            with open(self._file(key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"Cannot read {key} from the store: {exc.strerror}.") from exc

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._file(key))

    def _write_temp(self, path: str, data: bytes, sync: bool) -> str:
        """``data`` in a new temp file beside ``path`` (its folder made if missing); the temp file's path."""
        tmp = self._temp_name(path)
        try:
            fd = os.open(tmp, _NEW_FILE, 0o600)
        except FileNotFoundError:  # the folder's first file: made here, not tried (and failed) on every write
            os.makedirs(path.rpartition("/")[0], exist_ok=True)
            fd = os.open(tmp, _NEW_FILE, 0o600)
        try:
            view = memoryview(data)
            while view:  # a write may be short (a full disk): the rest, or the error
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def put(self, key: str, data: bytes) -> None:
        path = self._file(key)
        if not data:
            return self._put_empty(key, path)
        try:
            # No fsync: the rename alone keeps a process crash from leaving half a file, and an
            # fsync per run record was measured to slow the next invocation (see bench/README.md).
            os.replace(self._write_temp(path, data, sync=False), path)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot write {key} to the store: {exc.strerror}.") from exc

    def _put_empty(self, key: str, path: str) -> None:
        """An empty object (a run's index entry, its pending marker) is complete as soon as it exists:
        made in place, it costs one file creation instead of a temp file's and a rename."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            try:
                fd = os.open(path, flags, 0o600)
            except FileNotFoundError:
                os.makedirs(path.rpartition("/")[0], exist_ok=True)
                fd = os.open(path, flags, 0o600)
            os.close(fd)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot write {key} to the store: {exc.strerror}.") from exc

    def create(self, key: str, data: bytes) -> bool:
        path = self._file(key)
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
        base = Path(self._file(prefix.rstrip("/"))) if prefix else self.root
        if not base.is_dir():
            return []
        keys = [
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(_TEMP_PREFIX)
        ]
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._file(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreUnavailable(f"Cannot delete {key} from the store: {exc.strerror}.") from exc
