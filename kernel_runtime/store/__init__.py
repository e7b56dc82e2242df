"""Where bytes live: a tiny key/value interface and its backends, picked by URL scheme.

A backend only stores blobs under ``/``-separated keys (:mod:`.blob`). What the keys mean
(products, versions, runs) is :mod:`kernel_runtime.store.repository`'s business,
so every backend shares one layout and one test suite. Like papermill's
``iorw`` registry, a backend is chosen by the scheme of the store URL: a local folder
(:mod:`.local`) or S3 (:mod:`.s3`, imported only when asked for). Retention of old runs is
:mod:`.retention`.
"""

from __future__ import annotations

import os
from typing import Callable

from ..errors import InvalidRequest
from .blob import BlobStore
from .local import LocalStore

__all__ = ["BACKENDS", "DEFAULT_STORE", "BlobStore", "LocalStore", "open_store"]

DEFAULT_STORE = ".nbmesh/store"


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
