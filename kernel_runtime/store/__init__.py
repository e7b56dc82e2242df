"""Where bytes live: a tiny key/value interface and its backends, picked by URL scheme.

A backend only stores blobs under ``/``-separated keys (:mod:`.blob`). What the keys mean
(products, versions, runs) is :mod:`kernel_runtime.store.repository`'s business,
so every backend shares one layout and one test suite. Like papermill's
``iorw`` registry, a backend is chosen by the scheme of the store URL (``settings.store.url``): a
local folder (:mod:`.local`) or S3 (:mod:`.s3`, imported only when asked for). Each opener gets the
URL and the store's settings. Another package adds a backend without touching this one by
declaring an entry point in the ``nbmesh.stores`` group, named after its scheme, that points at
such an opener (``[project.entry-points."nbmesh.stores"] gs = "mypkg.store:open_gs"``).
Retention of old runs is :mod:`.retention`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable

from ..errors import InvalidRequest
from ..settings import StoreSettings
from .blob import BlobStore
from .local import LocalStore

__all__ = ["BACKENDS", "BlobStore", "LocalStore", "open_store"]


def _open_local(url: str, settings: StoreSettings) -> BlobStore:
    return LocalStore(url.removeprefix("file://"))


def _open_s3(url: str, settings: StoreSettings) -> BlobStore:
    from .s3 import S3Store

    return S3Store.from_url(url, settings)


BACKENDS: dict[str, Callable[[str, StoreSettings], BlobStore]] = {
    "": _open_local,
    "file": _open_local,
    "s3": _open_s3,
}


def open_store(settings: StoreSettings | str) -> BlobStore:
    """The backend for ``settings.url`` (or the URL given alone, with default settings)."""
    settings = StoreSettings(url=settings) if isinstance(settings, str) else settings
    url = settings.url
    scheme = url.split("://", 1)[0] if "://" in url else ""
    opener = BACKENDS.get(scheme) or _plugin(scheme)
    if opener is None:
        known = ", ".join(sorted({s + "://" for s in BACKENDS if s} | {e.name + "://" for e in entry_points(group=ENTRY_POINT_GROUP)}))
        raise InvalidRequest(f"Unknown store scheme {scheme!r} in {url!r}; use a folder path or {known}.")
    return opener(url, settings)


ENTRY_POINT_GROUP = "nbmesh.stores"


def _plugin(scheme: str) -> Callable[[str, StoreSettings], BlobStore] | None:
    """An opener another installed package declares for ``scheme``, loaded only when asked for."""
    found = entry_points(group=ENTRY_POINT_GROUP, name=scheme) if scheme else ()
    return next(iter(found)).load() if found else None
