"""The JSON types a product parameter may have (CONTRACT section 1) and their checks."""

from __future__ import annotations

import math
import sys
from typing import Any

PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),  # an int is accepted for a float
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_LARGEST_FLOAT = int(sys.float_info.max)
JSON_SCHEMA_TYPES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}


def is_type(value: Any, type_name: str) -> bool:
    """Whether ``value`` is acceptable for a parameter of ``type_name``."""
    if isinstance(value, bool) and type_name != "bool":
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if type_name == "float" and isinstance(value, int) and abs(value) > _LARGEST_FLOAT:
        return False  # float() of it would overflow
    return isinstance(value, PARAM_TYPES[type_name])


def type_of(value: Any) -> str | None:
    """The parameter type a default value implies, or None for values with no JSON type."""
    for name in ("bool", "int", "float", "str", "list", "dict"):
        if isinstance(value, PARAM_TYPES[name][0]):
            return name
    return None
