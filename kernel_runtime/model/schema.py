"""JSON Schema from type hints: the one source of the shapes the API answers with.

The records the API returns are dataclasses and TypedDicts, each beside the code
that builds it; their type hints say what every field holds. This module turns
them into JSON Schema (the 2020-12 dialect of OpenAPI 3.1), so the published
document cannot drift from what the code returns:

- ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``; ``X | Y``; ``list[X]``,
  ``tuple[X, ...]``; ``dict[str, X]`` (an object of X values, any keys); ``Literal[...]`` (an enum);
- a TypedDict: its keys, required unless ``NotRequired``; a dataclass: its fields, all
  of them required, because its ``to_json`` writes every field;
- ``Annotated[X, {...}]``: the schema of X with those keywords added (a pattern, an enum, a description,
  or ``additionalProperties: true`` for an object whose other keys come from a user); write the
  keywords as a :class:`Schema` where the type goes into a union (typing hashes its members).

TypedDicts and dataclasses are closed (``additionalProperties: false``): a key the
code adds without declaring it fails the API's conformance test. A type given a
component name becomes a ``$ref`` wherever it is used.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, Mapping, NotRequired, Required, Union, get_args, get_origin, get_type_hints

REF_PREFIX = "#/components/schemas/"
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


class Schema(dict):
    """JSON Schema keywords for ``Annotated``; hashable, as typing needs its metadata to be in unions."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True))


def is_record(tp: Any) -> bool:
    return typing.is_typeddict(tp) or (dataclasses.is_dataclass(tp) and isinstance(tp, type))


def fields_of(record: type) -> dict[str, tuple[Any, bool]]:
    """Each field of a TypedDict or dataclass: its type (without Required/NotRequired) and whether it is required."""
    hints = get_type_hints(record, include_extras=True)
    if dataclasses.is_dataclass(record):
        return {f.name: (hints[f.name], True) for f in dataclasses.fields(record)}
    # Not __required_keys__: under "from __future__ import annotations" Python 3.11 misses NotRequired there.
    found = {}
    for name, hint in hints.items():
        required = record.__total__
        if get_origin(hint) in (Required, NotRequired):
            required, hint = get_origin(hint) is Required, get_args(hint)[0]
        found[name] = (hint, required)
    return found


def json_schema(tp: Any, names: Mapping[str, Any] = {}) -> dict[str, Any]:
    """The JSON Schema of ``tp``; a type of ``names`` (component name -> type) becomes a ``$ref`` to it."""
    # Compared, not hashed: Annotated metadata may be a plain dict.
    name = next((name for name, known in names.items() if known is tp or known == tp), None)
    return {"$ref": REF_PREFIX + name} if name is not None else _schema(tp, names)


def components(names: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The component schemas of ``names`` (name -> type), referring to one another by name."""
    return {name: _schema(tp, names) for name, tp in names.items()}


def _schema(tp: Any, names: Mapping[str, Any]) -> dict[str, Any]:
    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Annotated:
        extra = {k: v for meta in tp.__metadata__ if isinstance(meta, Mapping) for k, v in meta.items()}
        return {**json_schema(args[0], names), **extra}
    if tp is Any:
        return {}
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if origin is Literal:
        schema = {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
        kinds = {_SCALARS[type(arg)] for arg in args}
        return {"type": kinds.pop(), **schema} if len(kinds) == 1 else schema
    if origin in (Union, types.UnionType):
        options = [json_schema(arg, names) for arg in args]
        if all(set(o) == {"type"} for o in options):
            return {"type": [o["type"] for o in options]}
        return {"anyOf": options}
    if origin in (list, tuple):
        return {"type": "array", "items": json_schema(args[0], names)} if args else {"type": "array"}
    if origin is dict or tp is dict:
        # Open on purpose, and said so: "additionalProperties" left out reads as "no keys" to some generators.
        return {"type": "object", "additionalProperties": json_schema(args[1] if args else Any, names)}
    if is_record(tp):
        fields = fields_of(tp)
        schema: dict[str, Any] = {"type": "object"}
        required = [name for name, (_, needed) in fields.items() if needed]
        if required:
            schema["required"] = required
        schema["properties"] = {name: json_schema(hint, names) for name, (hint, _) in fields.items()}
        schema["additionalProperties"] = False
        doc = (tp.__doc__ or "").strip()
        if doc and not doc.startswith(f"{tp.__name__}("):  # a dataclass without a docstring gets its signature
            schema["description"] = " ".join(doc.split("\n\n")[0].split())
        return schema
    raise TypeError(f"no JSON Schema for the type {tp!r}")


def json_types(tp: Any) -> tuple[type, ...] | None:
    """The Python types a JSON value of type ``tp`` may have once parsed (None: any value)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return None
    if origin is typing.Annotated:
        return json_types(args[0])
    if origin is Literal:
        return tuple(dict.fromkeys(type(arg) for arg in args))
    if origin in (Union, types.UnionType):
        found: list[type] = []
        for arg in args:
            sub = json_types(arg)
            if sub is None:
                return None
            found.extend(sub)
        return tuple(dict.fromkeys(found))
    if tp is float:
        return (int, float)  # JSON has one number type: 2 is a valid float
    if tp in _SCALARS:
        return (tp,)
    if origin in (list, tuple) or tp in (list, tuple):
        return (list,)
    if origin is dict or tp is dict or is_record(tp):
        return (dict,)
    raise TypeError(f"no JSON type for {tp!r}")
