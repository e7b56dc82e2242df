"""Product files on this machine: each stored file fetched once, for the kernels that serve its versions.

The store keeps a file's bytes under their digest (``files/sha256/{hex}``, see
:mod:`kernel_runtime.store.repository`). A kernel prepared for a version asks :meth:`FileCache.files`
for that version's files: each blob is fetched from the store the first time any version on this
runtime needs it, checked against its digest, and kept read-only (0444) in a local folder outside
the store that no kernel's sandbox binds; the kernel's own working folder then gets links to those
blobs under the paths the manifest names (:meth:`kernel_runtime.kernels.kernel.Kernel.fill_workdir`).
This happens when a kernel is prepared, never on an invocation of a warm kernel.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from ..store.repository import Repository
from .catalog import Catalog


def _write_readonly(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o444)  # readable by a kernel that runs as nobody, writable by none of them
    os.replace(tmp, path)


class FileCache:
    """The blobs of product files this runtime has fetched, in a private temporary folder."""

    def __init__(self, catalog: Catalog, repo: Repository) -> None:
        self.catalog = catalog
        self.repo = repo
        self.root = Path(tempfile.mkdtemp(prefix="nbmesh-files-"))
        self._locks: dict[str, asyncio.Lock] = {}

    async def files(self, name: str, version: int) -> dict[str, str]:
        """The files of ``name@version``: path in the notebook's folder -> a read-only local copy."""
        stored = await self.catalog.stored_version(name, version)
        return {path: await self._blob(entry["sha256"]) for path, entry in stored.files.items()}

    async def _blob(self, sha256: str) -> str:
        path = self.root / sha256
        if not path.exists():
            # One fetch per blob even when several kernels of its versions are prepared at once.
            async with self._locks.setdefault(sha256, asyncio.Lock()):
                if not path.exists():
                    data = await asyncio.to_thread(self.repo.get_file, sha256)
                    await asyncio.to_thread(_write_readonly, path, data)
        return str(path)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
