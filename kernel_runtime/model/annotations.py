"""Python type annotations of the parameters cell, read as nbmesh reads them (docs/reference/notebook-format.md).

Only the annotation's name matters, and whether it allows None: ``List[int]`` is ``List``,
``Optional[str]``, ``Union[str, None]`` and ``str | None`` are ``str`` allowing None. Nothing is imported
or evaluated: the annotation is read from the syntax tree (or parsed from a type comment's text).
"""

from __future__ import annotations

import ast

# Annotations that allow None beside a type: Optional[T], Union[T, None], T | None.
_OPTIONAL, _UNION = "Optional", "Union"


def read_annotation(node: ast.expr | str) -> tuple[str | None, bool]:
    """The name an annotation is read by, and whether it allows None.

    ``List[int]``, ``typing.List`` and ``"List"`` are all ``List``; ``Optional[str]``,
    ``Union[str, None]`` and ``str | None`` are ``str`` allowing None.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # quoted: `x: "List[int]" = []`
        node = node.value
    if isinstance(node, str):
        try:
            node = ast.parse(node.strip(), mode="eval").body
        except SyntaxError:
            return None, False
    members = None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        members = [node.left, node.right]
    elif isinstance(node, ast.Subscript) and _name(node.value) == _UNION:
        members = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    elif isinstance(node, ast.Subscript) and _name(node.value) == _OPTIONAL:
        return read_annotation(node.slice)[0], True
    if members is not None:
        types = [m for m in members if not (isinstance(m, ast.Constant) and m.value is None)]
        # Only T | None is a parameter type: int | str has no one JSON type.
        return (read_annotation(types[0])[0], True) if len(types) == 1 and len(members) == 2 else (None, False)
    if isinstance(node, ast.Subscript):
        node = node.value
    return _name(node), False


def _name(node: ast.expr) -> str | None:
    """``X`` of ``X`` and of ``typing.X``."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "typing":
        return node.attr
    return node.id if isinstance(node, ast.Name) else None
