"""kernel_runtime.kernels.convert.to_json: a product's result as plain JSON types (docs/design.md, "Result conversion")."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from kernel_runtime.kernels.convert import to_json


def nested(levels: int) -> list:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value  # type: ignore[return-value]


# plain values -----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, True, False, 0, -7, 2**70, "", "text", "ünï", 1.5, -0.0, 1e308])
def test_plain_json_values_are_kept(value):
    got = to_json(value)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        np.float64("nan"),
        np.float64("inf"),
        np.float32("nan"),
        np.float32("-inf"),
        np.float16("inf"),
    ],
)
def test_nan_and_infinities_become_null(value):
    assert to_json(value) is None


def test_nan_and_infinities_become_null_at_any_depth():
    value = {"a": [1.0, float("nan"), {"b": (float("inf"), np.float64("-inf"))}], "c": np.array([np.nan, 2.0])}
    assert to_json(value) == {"a": [1.0, None, {"b": [None, None]}], "c": [None, 2.0]}


def test_the_result_is_strict_json():
    value = {"x": [float("nan"), np.inf, np.int64(3), np.float32(0.5), (1, 2)], 5: pd.Series([1.0, np.nan])}
    assert json.loads(json.dumps(to_json(value), allow_nan=False)) == {"x": [None, None, 3, 0.5, [1, 2]], "5": [1.0, None]}


# containers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        ((1, 2), [1, 2]),
        ((), []),
        ([(1, (2, 3))], [[1, [2, 3]]]),
        ({"a": (1,)}, {"a": [1]}),
        ({}, {}),
    ],
)
def test_tuples_become_lists(value, expected):
    assert to_json(value) == expected


@pytest.mark.parametrize(
    "key",
    [1, -3, 0, 1.5, float("inf"), None, True, False],
)
def test_non_string_keys_become_the_strings_json_dumps_makes(key):
    assert to_json({key: "v"}) == json.loads(json.dumps({key: "v"}))


@pytest.mark.parametrize(
    "key, expected",
    [
        (np.int64(3), "3"),
        (np.float64(2.5), "2.5"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (pd.Timestamp("2024-01-02T03:04:05"), "2024-01-02T03:04:05"),
    ],
)
def test_numpy_and_date_keys_become_strings(key, expected):
    assert to_json({key: 1}) == {expected: 1}


@pytest.mark.parametrize("key, fragment", [((1, 2), "dict key of type tuple "), (frozenset({1}), "builtins.frozenset")])
def test_a_key_that_has_no_json_form_is_a_type_error_naming_its_type(key, fragment):
    with pytest.raises(TypeError, match=fragment):
        to_json({key: 1})


# dates and times -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        (dt.datetime(2024, 5, 1, 12, 30, 15), "2024-05-01T12:30:15"),
        (dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc), "2024-05-01T12:30:00+00:00"),
        (dt.datetime(2024, 5, 1, 12, 30, 0, 123456), "2024-05-01T12:30:00.123456"),
        (dt.date(2024, 2, 29), "2024-02-29"),
        (dt.time(23, 59, 1), "23:59:01"),
        (pd.Timestamp("2024-05-01T12:30:00", tz="Europe/Berlin"), "2024-05-01T12:30:00+02:00"),
        (np.datetime64("2024-05-01"), "2024-05-01"),
        (np.datetime64("2024-05-01T12:30:15"), "2024-05-01T12:30:15"),
    ],
)
def test_dates_and_times_become_iso_8601_text(value, expected):
    assert to_json(value) == expected


def test_numpy_not_a_time_becomes_null():
    assert to_json(np.datetime64("NaT")) is None


@pytest.mark.parametrize(
    "value, expected",
    [
        (pd.NaT, None),
        (pd.Series([pd.NaT, pd.Timestamp("2024-01-01")]), [None, "2024-01-01T00:00:00"]),
        (pd.DataFrame({"t": [pd.NaT]}), [{"t": None}]),
        ({"when": pd.NaT}, {"when": None}),
    ],
)
def test_pandas_not_a_time_becomes_null(value, expected):
    assert to_json(value) == expected


# numpy ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected, kind",
    [
        (np.int64(5), 5, int),
        (np.int8(-3), -3, int),
        (np.uint64(2**63), 2**63, int),
        (np.float32(0.5), 0.5, float),
        (np.bool_(True), True, bool),
        (np.bool_(False), False, bool),
        (np.str_("x"), "x", str),
    ],
)
def test_numpy_scalars_become_python_values(value, expected, kind):
    got = to_json(value)
    assert got == expected and isinstance(got, kind)
    assert json.dumps(got) == json.dumps(expected)


@pytest.mark.parametrize("value, expected", [(np.longdouble(1.5), 1.5), (np.longdouble("nan"), None)])
def test_a_long_double_becomes_a_float(value, expected):
    assert to_json(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.array([1, 2, 3]), [1, 2, 3]),
        (np.array([[1.5, np.nan], [np.inf, 0.0]]), [[1.5, None], [None, 0.0]]),
        (np.array([], dtype=float), []),
        (np.array([True, False]), [True, False]),
        (np.array(["a", "b"]), ["a", "b"]),
        (np.array(7), 7),
        (np.arange(3, dtype=np.int32), [0, 1, 2]),
    ],
)
def test_numpy_arrays_become_lists(value, expected):
    assert to_json(value) == expected


# pandas -----------------------------------------------------------------------------------------------
def test_a_dataframe_becomes_a_list_of_records():
    df = pd.DataFrame({"region": ["EU", "US"], "total": [1.5, np.nan], "n": [1, 2], "day": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    assert to_json(df) == [
        {"region": "EU", "total": 1.5, "n": 1, "day": "2024-01-01T00:00:00"},
        {"region": "US", "total": None, "n": 2, "day": "2024-01-02T00:00:00"},
    ]


def test_an_empty_dataframe_is_an_empty_list():
    assert to_json(pd.DataFrame({"a": []})) == []


@pytest.mark.parametrize(
    "series, expected",
    [
        (pd.Series([1, 2, 3]), [1, 2, 3]),
        (pd.Series([1.0, None, np.inf]), [1.0, None, None]),
        (pd.Series(["a", None]), ["a", None]),
        (pd.Series({"x": 1, "y": 2}), [1, 2]),  # the index is dropped: a Series is a list
    ],
)
def test_a_series_becomes_a_list(series, expected):
    assert to_json(series) == expected


def test_a_dataframe_inside_a_dict_is_converted_too():
    assert to_json({"rows": pd.DataFrame({"a": [1]}), "n": np.int64(1)}) == {"rows": [{"a": 1}], "n": 1}


# depth -------------------------------------------------------------------------------------------------
def test_a_hundred_levels_of_nesting_are_fine():
    assert to_json(nested(100)) == nested(100)


@pytest.mark.parametrize("levels", [101, 5000])
def test_deeper_nesting_is_a_type_error_not_a_recursion_error(levels):
    with pytest.raises(TypeError, match="nested more than 100 levels deep"):
        to_json(nested(levels))


def test_a_self_referencing_result_is_a_type_error():
    loop: list = []
    loop.append(loop)
    with pytest.raises(TypeError, match="nested more than 100 levels deep"):
        to_json(loop)


# unsupported --------------------------------------------------------------------------------------------
class Custom:
    pass


@pytest.mark.parametrize(
    "value, type_name",
    [
        ({1, 2}, "builtins.set"),
        (frozenset(), "builtins.frozenset"),
        (Decimal("1.5"), "decimal.Decimal"),
        (b"bytes", "builtins.bytes"),
        (1 + 2j, "builtins.complex"),
        (object(), "builtins.object"),
        (Custom(), f"{__name__}.Custom"),
        (Custom, "builtins.type"),
        (len, "builtins.builtin_function_or_method"),
        (dt.timedelta(seconds=1), "datetime.timedelta"),
    ],
)
def test_unsupported_types_are_a_type_error_naming_the_type(value, type_name):
    with pytest.raises(TypeError) as info:
        to_json(value)
    assert f"of type {type_name} cannot be turned into JSON" in str(info.value)


@pytest.mark.parametrize("value", [{"a": [1, {2}]}, [Decimal(1)], ({"x": object()},)])
def test_an_unsupported_value_anywhere_in_the_result_fails_it(value):
    with pytest.raises(TypeError, match="cannot be turned into JSON"):
        to_json(value)
