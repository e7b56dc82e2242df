"""Result conversion inside a kernel: the output cell's value as plain JSON types.

Part of the in-kernel runner (:mod:`kernel_runtime.kernels.runner`): it may import only the
standard library and its sibling modules, and the runner checks after each run that no name
here was changed. pandas and numpy are looked up only when the product loaded them.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from typing import Any

# Python turns at most 4300 digits into text (sys.int_max_str_digits): below 2**14284 an int has at most 4300.
_MAX_INT_BITS = 14284
# What _convert_scientific returns for a value that is not a pandas or numpy one.
_UNCONVERTED = object()


def to_json(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON types, per docs/reference/notebook-format.md, "Result"; TypeError names what cannot be."""
    if _depth > 100:
        raise TypeError("The result is nested more than 100 levels deep.")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise TypeError(
                "The result holds an integer of more than 4300 digits, more than JSON readers take: return it as a string."
            )
        return value
    if isinstance(value, float):
        return finite_float(value)
    if isinstance(value, dict):
        return {_key(k): to_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, _depth + 1) for v in value]
    converted = _convert_scientific(value)  # before datetimes: pandas' NaT is one, its isoformat() "NaT"
    if converted is not _UNCONVERTED:
        return to_json(converted, _depth + 1)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    raise TypeError(
        f"The output cell's value of type {type(value).__module__}.{type(value).__qualname__} "
        "cannot be turned into JSON: return a dict, list, str, number, bool, None or a pandas DataFrame."
    )


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    converted = to_json(key)
    if isinstance(converted, (str, int, float)):
        return str(converted)
    raise TypeError(f"A result dict key of type {type(key).__qualname__} cannot be a JSON key.")


def _convert_scientific(value: Any) -> Any:
    """pandas and numpy values as Python ones; only looked up when those libraries are loaded."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(value, pd.DataFrame):
            return value.to_dict(orient="records")
        if isinstance(value, pd.Series):
            return value.tolist()
        if value is pd.NaT or value is pd.NA:
            return None
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.datetime64):
            return None if np.isnat(value) else str(np.datetime_as_string(value))
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):  # a long double's .item() is a long double again
            return float(value) if isinstance(value, np.longdouble) else value.item()
    return _UNCONVERTED


def finite(value: Any, _depth: int = 0) -> Any:
    """``value`` with NaN and ±Infinity, at any depth, as None."""
    if isinstance(value, float):
        return finite_float(value)
    if _depth > 100:
        return value
    if isinstance(value, dict):
        return {k: finite(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v, _depth + 1) for v in value]
    return value


def finite_float(value: float) -> float | None:
    return value if value == value and value not in (float("inf"), float("-inf")) else None
