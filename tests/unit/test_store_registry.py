"""store's registry: backends picked by URL scheme, and backends other packages declare by entry point."""

from __future__ import annotations

import sys
import textwrap

import pytest

from kernel_runtime.errors import InvalidRequest
from kernel_runtime.store import LocalStore, open_store


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A real installed distribution (a .dist-info folder on sys.path) declaring a `mem://` store."""
    (tmp_path / "nbmesh_mem_store.py").write_text(textwrap.dedent('''
        from kernel_runtime.store import LocalStore

        def open_mem(url, settings):
            store = LocalStore(url.removeprefix("mem://"))
            store.opened_by_plugin = True
            return store
    '''))
    dist = tmp_path / "nbmesh_mem_store-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nbmesh-mem-store\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nbmesh.stores]\nmem = nbmesh_mem_store:open_mem\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("nbmesh_mem_store", None)


def test_a_folder_path_opens_the_local_store(tmp_path):
    assert isinstance(open_store(str(tmp_path / "s")), LocalStore)


def test_a_backend_declared_by_entry_point_is_opened_for_its_scheme(plugin_package):
    store = open_store(f"mem://{plugin_package / 'blobs'}")
    assert store.opened_by_plugin is True


def test_an_unknown_scheme_names_the_known_ones(plugin_package):
    with pytest.raises(InvalidRequest) as info:
        open_store("gs://bucket/x")
    assert "Unknown store scheme 'gs'" in info.value.message
    assert "mem://" in info.value.message and "s3://" in info.value.message
