"""kernel_runtime/http/formats.py (docs/reference/http-api.md, "Formats"): which format an Accept header
asks for, and which results have a table form."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pytest

from kernel_runtime.errors import NotAcceptable
from kernel_runtime.http.formats import _from_accept, encode, to_table

PARQUET, ARROW = "application/vnd.apache.parquet", "application/vnd.apache.arrow.stream"


@pytest.mark.parametrize("accept,fmt", [
    ("text/csv", "csv"),
    ("TEXT/CSV; charset=utf-8", "csv"),
    (f"application/json;q=0.5, {PARQUET};q=0.9", "parquet"),
    (f"{ARROW}, text/csv", "arrow"),  # a tie: the first listed
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "json"),  # a browser
    ("text/*", "csv"),
    ("application/*;q=0.2, text/csv;q=0.1", "json"),
    ("text/csv;q=1.000, application/json;q=0.999", "csv"),
])
def test_accept_picks_the_offered_format_it_ranks_highest(accept, fmt):
    assert _from_accept(accept) == fmt


@pytest.mark.parametrize("accept", ["text/html", "text/csv;q=0", "text/csv;q=nan", "text/csv;q=2", "text/csv;q=-1",
                                    "text/csv;q=1e0", "text/csv;q=٠.5", "image/png, */*;q=0"])
def test_accept_without_an_acceptable_offered_format_is_406(accept):
    with pytest.raises(NotAcceptable, match="Accept"):
        _from_accept(accept)


def test_records_become_columns_in_first_seen_order_with_nulls_for_missing_keys():
    table = to_table([{"b": 1, "a": "x"}, {"c": True}, {"a": None, "b": 2.5}])
    assert table.column_names == ["b", "a", "c"]
    assert table.column("b").type == pa.float64() and table.column("b").to_pylist() == [1.0, None, 2.5]
    assert table.column("a").to_pylist() == ["x", None, None]


@pytest.mark.parametrize("result,words", [
    ({"a": 1}, "a dict, not a table"),
    ("text", "a str, not a table"),
    ([1, 2], "not a table"),
    ([{"a": 1}, 2], "not a table"),
    ([{"a": [1]}], "holds a list"),
    ([{"a": 1}, {"a": "one"}], "no single"),
    ([{"a": True}, {"a": 1}], "no single"),
    ([{"a": 2**70}], "no single"),
])
def test_what_is_no_table_is_406_naming_why(result, words):
    with pytest.raises(NotAcceptable, match=words):
        encode(result, "csv")


def test_an_empty_list_is_an_empty_table_in_every_format():
    assert encode([], "csv") == b""
    assert pa.ipc.open_stream(encode([], "arrow")).read_all().num_rows == 0
    assert pd.read_parquet(io.BytesIO(encode([], "parquet"))).empty
