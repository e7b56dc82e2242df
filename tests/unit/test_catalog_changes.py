"""kernel_runtime.store.catalog_changes: which messages on the catalog channel make a replica reload a product.

A message is only a hint, but one that names no valid product, or that this replica sent itself,
must reload nothing. (Announcing and hearing through a real Redis: tests/test_cluster.py.)
"""

from __future__ import annotations

import json

import pytest

from kernel_runtime.settings import QueueSettings
from kernel_runtime.store.catalog_changes import CatalogChanges


@pytest.fixture
def changes() -> CatalogChanges:
    # The client connects on first use: nothing here talks to Redis.
    return CatalogChanges(QueueSettings(url="redis://127.0.0.1:1/0"), replica="me")


def test_another_replicas_announcement_names_its_product(changes):
    message = json.dumps({"product": "sales-summary", "replica": "them"})
    assert changes._product_of(message.encode()) == "sales-summary"
    assert changes._product_of(message) == "sales-summary"


def test_this_replicas_own_announcement_is_not_heard_back(changes):
    assert changes._product_of(json.dumps({"product": "sales-summary", "replica": "me"}).encode()) is None


@pytest.mark.parametrize("data", [
    b"sales-summary",  # not JSON
    b"\xff\xfe",  # not UTF-8
    b"[\"sales-summary\"]",  # not an object
    b"{}",  # no product
    json.dumps({"product": 7}).encode(),
    json.dumps({"product": "../etc"}).encode(),
    json.dumps({"product": "Sales"}).encode(),
    json.dumps({"product": "sales\n"}).encode(),
    json.dumps({"product": "x" * 64}).encode(),
    json.dumps({"product": "\ud800"}).encode(),  # a lone surrogate, escaped in the JSON text
    None,
    1,
])
def test_a_message_that_names_no_valid_product_reloads_nothing(changes, data, caplog):
    assert changes._product_of(data) is None
    assert "names no product" in caplog.text
