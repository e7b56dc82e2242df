"""The blob store interface every backend implements: bytes under ``/``-separated keys."""

from __future__ import annotations

from abc import ABC, abstractmethod


class BlobStore(ABC):
    """Keys are relative paths of ``[A-Za-z0-9._@-]`` segments joined by ``/``."""

    url: str
    # Whether a write is a few calls into the local file system (tens of microseconds), quick
    # enough to make on the event loop; a remote store's are network round trips.
    local: bool = False

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The blob at ``key``, or None when there is none."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write ``key`` atomically: readers see the old blob or the new one, never half."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist yet; False when another writer was first."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a blob; backends answer without reading it (this default reads it)."""
        return self.get(key) is not None

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """All keys under ``prefix``, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
