"""A product's parameters: the JSON types they may have, the parameters cell read into them, value bounds.

The parameters cell is read in papermill's convention (docs/reference/notebook-format.md, "Parameters"), with Python's own
parser and tokenizer: papermill's line regex cuts a line at a ``#`` inside a string and skips
a line holding a second ``=``. A value a caller sends is bounded in depth, string length and item count
(docs/security.md, "Inputs") before anything runs.
"""

from __future__ import annotations

import ast
import io
import math
import re
import sys
import tokenize
from dataclasses import dataclass
from typing import Any

from .. import jsontext

PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),  # an int is accepted for a float
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_LARGEST_FLOAT = int(sys.float_info.max)
_ANNOTATION_ALIASES = {"List": "list", "Dict": "dict", "string": "str", "integer": "int"}
# A definition's trailing comment, as papermill reads it: an optional type comment, then the help.
_COMMENT_RE = re.compile(r"#\s*(?:type:\s*(?P<type>\S*)\s*)?(?P<help>.*)", re.DOTALL)
# Bounds on one parameter value (docs/reference/notebook-format.md, "Limits"); the 1 MiB body limit bounds the total.
MAX_DEPTH = 32
MAX_STRING = 65536  # characters in any string, dict keys included
MAX_ITEMS = 10000  # elements of any list, entries of any dict
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


def problem(message: str, cell: int | None = None) -> dict[str, Any]:
    """One problem of a notebook that is not a valid product, as InvalidNotebook lists it."""
    return {"cell": cell, "message": message}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    help: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "default": self.default}
        if self.help:
            out["help"] = self.help
        return out

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": JSON_SCHEMA_TYPES[self.type], "default": self.default}
        if self.help:
            schema["description"] = self.help
        return schema


def parse_parameters(source: str, cell_index: int, problems: list) -> dict[str, Parameter]:
    """The parameters the parameters cell (``source``, at ``cell_index``) declares; its problems go to ``problems``."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        problems.append(
            problem(f"The parameters cell {cell_index} cannot be parsed: {exc.msg} on line {exc.lineno}.", cell_index)
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
                    "like `x: int = 3` or `x = 3`.",
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
        annotation, base = ast.get_source_segment(source, stmt.annotation), _annotation_base(stmt.annotation)
    else:  # a type comment, `x = 3  # type: float`, stands for an annotation
        annotation, base = type_comment, _annotation_base(type_comment)
    if not annotation:
        type_name = type_of(default)
        if type_name is None:
            problems.append(
                problem(
                    f"Parameter {name!r}: cannot infer a type from default {text!r}; "
                    "annotate it (int, float, str, bool, list or dict).",
                    cell_index,
                )
            )
            return None
    else:
        type_name = _ANNOTATION_ALIASES.get(base, base)
        if type_name not in PARAM_TYPES:
            problems.append(
                problem(
                    f"Parameter {name!r}: type {annotation!r} is not one of int, float, str, bool, list, dict.",
                    cell_index,
                )
            )
            return None
        if not is_type(default, type_name):
            problems.append(problem(f"Parameter {name!r}: default {text} is not a {type_name}.", cell_index))
            return None
    if type_name == "float":
        default = float(default)
    return Parameter(name=name, type=type_name, default=default, help=help_text)


def _annotation_base(node: ast.expr | str) -> str | None:
    """The name an annotation is read by: ``List[int]``, ``typing.List`` and ``"List"`` are all ``List``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # quoted: `x: "List[int]" = []`
        node = node.value
    if isinstance(node, str):
        try:
            node = ast.parse(node.strip(), mode="eval").body
        except SyntaxError:
            return None
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "typing":
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


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
