"""A product's parameters: the JSON types they may have, the parameters cell read into them, their rules.

The parameters cell is read in papermill's convention (docs/reference/notebook-format.md), with
Python's own parser and tokenizer: papermill's line regex cuts a line at a ``#`` inside a string and
skips a line holding a second ``=``. The rules a caller's values must meet are one JSON Schema per
product version, compiled once (:class:`ParameterRules`): the same schema ``/openapi.json`` publishes
is the one enforced, behind a guard that bounds every value in depth, string length and item count
before anything looks inside it (docs/reference/notebook-format.md, "Parameters").
"""

from __future__ import annotations

import ast
import copy
import io
import json
import math
import re
import sys
import tokenize
from dataclasses import dataclass
from typing import Any, get_args

import jsonschema

from .. import jsontext
from .annotations import read_annotation
from .records import ParameterInfo, ParamType

INT, FLOAT, STR, BOOL, LIST, DICT, ANY = get_args(ParamType)
# The Python type of each JSON type's values; ``any`` takes every JSON value, null included.
PARAM_TYPES: dict[str, type] = {INT: int, FLOAT: float, STR: str, BOOL: bool, LIST: list, DICT: dict}
_TYPE_LIST = ", ".join([*PARAM_TYPES, ANY])
_ANNOTATION_ALIASES = {"List": LIST, "Dict": DICT, "string": STR, "integer": INT, "Any": ANY, "object": ANY}
# A definition's trailing comment, as papermill reads it: an optional type comment, then the help.
_COMMENT_RE = re.compile(r"#\s*(?:type:\s*(?P<type>\S*)\s*)?(?P<help>.*)", re.DOTALL)
# Bounds on one parameter value (docs/reference/notebook-format.md, "Limits"); the 1 MiB body limit bounds the total.
MAX_DEPTH = 32
MAX_STRING = 65536  # characters in any string, dict keys included
MAX_ITEMS = 10000  # elements of any list, entries of any dict
JSON_SCHEMA_TYPES = {INT: "integer", FLOAT: "number", STR: "string", BOOL: "boolean", LIST: "array", DICT: "object"}
# The part of those bounds a JSON Schema can state: at the top level of a value.
_TOP_LEVEL_BOUNDS = {STR: {"maxLength": MAX_STRING}, LIST: {"maxItems": MAX_ITEMS}, DICT: {"maxProperties": MAX_ITEMS}}


def _is_number(checker: Any, value: Any) -> bool:
    # JSON has no NaN or Infinity; a Python caller could still pass them.
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


# Draft 2020-12 with "number" meaning a finite one. Its "integer" is JSON Schema's: any number
# without a fractional part, 1.0 included (such a value becomes an int, see ParameterRules.resolve).
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _is_number),
)


def type_schema(type_name: str, nullable: bool = False) -> dict[str, Any]:
    """The JSON Schema of a parameter type: the one statement of what each type accepts."""
    if type_name == ANY:
        return {}  # any JSON value; the bounds guard in front still applies
    json_type = JSON_SCHEMA_TYPES[type_name]
    schema: dict[str, Any] = {"type": [json_type, "null"] if nullable else json_type}
    if type_name == FLOAT:
        # An int too large for a float is a number, but float() of it would overflow.
        schema.update(minimum=-sys.float_info.max, maximum=sys.float_info.max)
    return schema


_TYPE_CHECKS = {(name, nullable): _Validator(type_schema(name, nullable)) for name in [*PARAM_TYPES, ANY] for nullable in (False, True)}


def is_type(value: Any, type_name: str, nullable: bool = False) -> bool:
    """Whether ``value`` is acceptable for a parameter of ``type_name`` (a default, a trigger's value)."""
    return _TYPE_CHECKS[type_name, nullable].is_valid(value)


def as_type(value: Any, type_name: str) -> Any:
    """An accepted value as the parameter's Python type: 2 for a float is 2.0, 1.0 for an int is 1."""
    if type_name == FLOAT and value is not None:
        return float(value)
    if type_name == INT and isinstance(value, float):
        return int(value)
    return value


def type_of(value: Any) -> str | None:
    """The parameter type a default value implies (``any`` for None), or None for values with no JSON type."""
    if value is None:
        return ANY  # papermill's `x = None`: the parameter may be any JSON value
    for name in (BOOL, INT, FLOAT, STR, LIST, DICT):  # bool first: True is an int too
        if isinstance(value, PARAM_TYPES[name]):
            return name
    return None


def problem(message: str, cell: int | None = None) -> dict[str, Any]:
    """One problem of a notebook that is not a valid product, as InvalidNotebook lists it."""
    return {"cell": cell, "message": message}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParamType
    default: Any
    help: str = ""
    nullable: bool = False  # null is accepted beside the type (`x: str | None`); ``any`` accepts it anyway

    def to_json(self) -> ParameterInfo:
        out = ParameterInfo(type=self.type, default=self.default)
        if self.nullable:
            out["nullable"] = True
        if self.help:
            out["help"] = self.help
        return out

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is of this parameter's type (a default, a trigger's literal value)."""
        return is_type(value, self.type, self.nullable)

    @property
    def type_text(self) -> str:
        """The type as messages say it: ``str``, ``str or null``, ``any``."""
        return f"{self.type} or null" if self.nullable else self.type

    def json_schema(self) -> dict[str, Any]:
        """Its type's schema with the bounds a schema can state (the guard in front applies them at every depth)."""
        schema = {**type_schema(self.type, self.nullable), **_TOP_LEVEL_BOUNDS.get(self.type, {}), "default": self.default}
        if self.help:
            schema["description"] = self.help
        return schema


class ParameterRules:
    """The rules of one product version's parameters: its invoke body's JSON Schema, compiled once.

    :meth:`problems` checks a caller's values with it, behind the bounds guard, and says each
    problem in one sentence naming the parameter; :meth:`resolve` overlays accepted values on the
    defaults.
    """

    def __init__(self, parameters: dict[str, Parameter]) -> None:
        self.parameters = parameters
        self.schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: p.json_schema() for name, p in parameters.items()},
            "additionalProperties": False,
        }
        self._validator = _Validator(self.schema)
        self._known = ", ".join(parameters) or "none"

    def problems(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        """One ``{"parameter", "message"}`` per problem parameter, in the order the caller gave them."""
        found: dict[str, str] = {}
        for key, value in values.items():
            # In front of the schema: a hostile value is measured iteratively before any validator sees it.
            if key in self.parameters and (excess := out_of_bounds(value)) is not None:
                found[key] = f"Parameter {key!r} {excess}."
        checked = {k: v for k, v in values.items() if k not in found} if found else values
        for error in self._validator.iter_errors(checked):
            if error.validator == "additionalProperties":
                for key in checked:
                    if key not in self.parameters:
                        found.setdefault(key, f"Unknown parameter {key!r}; known parameters: {self._known}.")
            else:
                key = error.path[0]
                found.setdefault(key, self._message(key, error))
        return [{"parameter": key, "message": found[key]} for key in values if key in found]

    def _message(self, key: str, error: jsonschema.ValidationError) -> str:
        if error.validator in ("type", "minimum", "maximum"):
            value, param = error.instance, self.parameters[key]
            got = "null" if value is None else f"{_json_type(value)} {_short(value)}"
            return f"Parameter {key!r} must be {param.type_text}, got {got}."
        # Any other keyword is a top-level bound, which the guard in front has already said in its words.
        return f"Parameter {key!r}: {error.message}."

    def resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        """The full parameter set of a run: the defaults overlaid with ``values`` (already without problems)."""
        resolved = {name: p.default for name, p in self.parameters.items()}
        for key, value in values.items():
            resolved[key] = as_type(value, self.parameters[key].type)
        return resolved

    def published(self) -> dict[str, Any]:
        """The schema for a document to embed: a copy, so no one can change the compiled rules."""
        return copy.deepcopy(self.schema)


def _json_type(value: Any) -> str:
    return type_of(value) or type(value).__name__


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_parameters(source: str, cell_index: int, problems: list) -> dict[str, Parameter]:
    """The parameters the parameters cell (``source``, at ``cell_index``) declares; its problems go to ``problems``."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        problems.append(
            problem(f"The parameters cell (cell {cell_index + 1}) cannot be parsed: {exc.msg} on line {exc.lineno}.", cell_index)
        )
        return {}
    # The real comment tokens: a '#' inside a string ("#ff0000") is not one.
    comments = {
        tok.start[0]: tok.string
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    parameters: dict[str, Parameter] = {}
    for stmt, after in zip(tree.body, [*tree.body[1:], None]):
        if not _is_plain_assignment(stmt):
            problems.append(
                problem(
                    f"Line {stmt.lineno} of the parameters cell is not a plain assignment "
                    "like `x: int = 3` or `x = 3`."
                    # The cell is read, not run: `Optional[str]` needs no import there.
                    + (" Imports belong in a setup cell." if isinstance(stmt, (ast.Import, ast.ImportFrom)) else ""),
                    cell_index,
                )
            )
            continue
        # papermill's convention: the comment that ends a definition's last line is its help.
        ends_line = after is None or after.lineno != stmt.end_lineno
        comment = comments.get(stmt.end_lineno, "") if ends_line else ""
        param = _parameter(stmt, source, comment, cell_index, problems)
        if param is not None:
            parameters[param.name] = param
    return parameters


def _is_plain_assignment(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.AnnAssign):
        return isinstance(stmt.target, ast.Name) and stmt.value is not None
    return isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)


def _parameter(stmt: ast.Assign | ast.AnnAssign, source: str, comment: str, cell_index: int, problems: list) -> Parameter | None:
    """One definition read as papermill reads it: ``name[: type] = default  # [type: T] help``."""
    target = stmt.target if isinstance(stmt, ast.AnnAssign) else stmt.targets[0]
    name, text = target.id, ast.get_source_segment(source, stmt.value)
    found = _COMMENT_RE.fullmatch(comment)
    type_comment, help_text = (found["type"] or "", found["help"].strip()) if found else ("", "")
    try:
        default = ast.literal_eval(stmt.value)
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        # TypeError: a literal that cannot be built, such as {[1]: 2} (a list as a dict key).
        why = "is not a literal value" if isinstance(exc, ValueError) else f"cannot be evaluated ({type(exc).__name__}: {exc})"
        problems.append(problem(f"Parameter {name!r}: default {text!r} {why}.", cell_index))
        return None
    reason = jsontext.check(default)
    if reason is not None:
        # 1e309 is a literal (inf), and so is "\ud800": neither can be served as JSON.
        problems.append(problem(f"Parameter {name!r}: its default {reason}.", cell_index))
        return None
    if isinstance(stmt, ast.AnnAssign):
        annotation, (base, optional) = ast.get_source_segment(source, stmt.annotation), read_annotation(stmt.annotation)
    else:  # a type comment, `x = 3  # type: float`, stands for an annotation
        annotation, (base, optional) = type_comment, read_annotation(type_comment)
    if not annotation:
        type_name, nullable = type_of(default), False
        if type_name is None:
            problems.append(
                problem(
                    f"Parameter {name!r}: cannot infer a type from default {text!r}; "
                    f"annotate it ({', '.join((INT, FLOAT, STR, BOOL, LIST))} or {DICT}).",
                    cell_index,
                )
            )
            return None
    else:
        type_name = _ANNOTATION_ALIASES.get(base, base)
        if type_name not in PARAM_TYPES and type_name != ANY:
            problems.append(
                problem(
                    f"Parameter {name!r}: type {annotation!r} is not one of {_TYPE_LIST} (or Optional of one).",
                    cell_index,
                )
            )
            return None
        # `x: str = None` means what `x: Optional[str] = None` says; `any` holds null anyway.
        nullable = type_name != ANY and (optional or default is None)
        param = Parameter(name=name, type=type_name, default=default, nullable=nullable)
        if not param.accepts(default):
            problems.append(problem(f"Parameter {name!r}: default {text} is not {'an' if param.type[0] in 'aeiou' else 'a'} {param.type_text}.", cell_index))
            return None
    return Parameter(name=name, type=type_name, default=as_type(default, type_name), help=help_text, nullable=nullable)


def out_of_bounds(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """What makes ``value`` exceed the parameter bounds, or None when it is within them."""
    # Iterative, level by level, so a hostile deeply nested body cannot exhaust the stack.
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > max_depth:
            return f"is nested deeper than {max_depth} levels"
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, str):
                if len(item) > MAX_STRING:
                    return f"holds a string of {len(item)} characters; the limit is {MAX_STRING}"
            elif isinstance(item, (list, dict)):
                if len(item) > MAX_ITEMS:
                    return f"holds a {type(item).__name__} of {len(item)} items; the limit is {MAX_ITEMS}"
                if isinstance(item, dict):
                    nxt.extend(item.keys())
                    nxt.extend(item.values())
                else:
                    nxt.extend(item)
        level = nxt
    return None
