"""JSON text at the runtime's borders: strict where data comes in, lossy where a kernel reports.

Everything nbmesh reads (request bodies, notebooks, store records) goes through :func:`loads`, which
takes only what JSON (RFC 8259) and docs/security.md ("Inputs") allow: UTF-8 text (a leading byte order mark is
ignored), no NaN or Infinity (a number too large for a float counts as Infinity), no lone surrogate,
no key twice in one object, integers of at most 4300 digits (Python's own bound). Text that is not
JSON is a :class:`MalformedJSON` (400); JSON that nbmesh refuses is an :class:`UnacceptableJSON`
(422) naming where, as a JSON Pointer.

A kernel's report is product *output*: :func:`loads_report` keeps it whole, with NaN and
±Infinity as null and text that is not valid Unicode repaired with U+FFFD, as docs/reference/notebook-format.md ("Result") asks of
results and printed text. :func:`dumps` is how records are written; it refuses what :func:`loads`
would refuse when reading them back, so the store never holds a record nbmesh cannot read.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import MalformedJSON, UnacceptableJSON

# A \uD800-\uDFFF escape that is not half of a pair, or a surrogate code point in the text itself.
# Escaped backslashes ("\\ud800" is text, not an escape) only cause a needless look: no false error.
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    "|[\ud800-\udfff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Python refuses to convert longer integers to or from text (sys.int_max_str_digits): bound them first.
MAX_INT_DIGITS = 4300
_MAX_INT = 10**MAX_INT_DIGITS


class _NotFinite:
    """Stands where the parser met NaN, Infinity or a number overflowing a float, until it is located."""

    def __init__(self, token: str) -> None:
        self.token = token


def loads(data: bytes | str, what: str = "The JSON text") -> Any:
    """Parse ``data`` strictly; ``what`` opens the error message ("The request body", a store key...)."""
    text = _text(data, what)
    found: list[_NotFinite] = []

    def not_finite(token: str) -> _NotFinite:
        found.append(_NotFinite(token))
        return found[-1]

    def number(token: str) -> float | _NotFinite:
        value = float(token)
        return value if math.isfinite(value) else not_finite(token)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise UnacceptableJSON(f"{what} has the key {valid_text(key)!r} twice in one object.")
                seen.add(key)
        return obj

    try:
        value = json.loads(text, parse_constant=not_finite, parse_float=number, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        raise UnacceptableJSON(f"{what} is nested too deeply.") from None
    except ValueError:  # the only other one json raises: an integer beyond Python's digit limit
        raise UnacceptableJSON(f"{what} holds an integer of more than {MAX_INT_DIGITS} digits.") from None
    if found or _LONE_SURROGATE.search(text):
        located = _first_problem(value)
        if located is not None:
            pointer, problem = located
            message = f"{what} holds {problem}."
            raise UnacceptableJSON(message, [{"path": pointer, "message": message}])
    return value


def check(value: Any) -> str | None:
    """Why ``value`` (a Python value such as a parameter default) is not plain, valid JSON, or None."""
    located = _first_problem(value)
    if located is None:
        return None
    return f"holds {located[1]}"


def dumps(value: Any, what: str = "The record") -> bytes:
    """Compact UTF-8 JSON of ``value``; UnacceptableJSON when it holds anything :func:`loads` refuses."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
        problem = check(value)
        raise UnacceptableJSON(f"{what} cannot be written as JSON: it {problem or 'holds a value JSON cannot hold'}.") from None


def loads_report(text: str) -> Any:
    """A kernel's report: NaN and ±Infinity become null, text that is not valid Unicode gets U+FFFD."""
    value = json.loads(text, parse_constant=_null, parse_float=_finite_or_null)
    if _LONE_SURROGATE.search(text):
        value = _repaired(value)
    return value


def _repaired(value: Any) -> Any:
    """``value`` with every lone surrogate, in text or in keys, replaced by U+FFFD (in place)."""
    root = [value]
    stack: list[list[Any] | dict[str, Any]] = [root]
    # Iterative, so no nesting the parser accepted can exhaust the stack here.
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in [k for k in node if _SURROGATE.search(k)]:
                node[valid_text(key)] = node.pop(key)
        for slot, item in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(item, str):
                node[slot] = valid_text(item)
            elif isinstance(item, (list, dict)):
                stack.append(item)
    return root[0]


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a split pair is joined back)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _text(data: bytes | str, what: str) -> str:
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJSON(f"{what} is not UTF-8 text (byte {exc.start} is invalid).") from None
    # RFC 8259 lets a parser ignore a byte order mark; editors on Windows write one.
    return data.removeprefix("\ufeff")


def _null(token: str) -> None:
    return None


def _finite_or_null(token: str) -> float | None:
    value = float(token)
    return value if math.isfinite(value) else None


def _first_problem(root: Any) -> tuple[str, str] | None:
    """(JSON Pointer, what is wrong there) of the first value in ``root`` that is not plain, valid JSON."""
    stack: list[tuple[str, Any]] = [("", root)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, _NotFinite):
            return pointer, f"{value.token}{_at(pointer)}: JSON has no NaN or Infinity"
        if isinstance(value, float):
            if not math.isfinite(value):
                token = "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"
                return pointer, f"{token}{_at(pointer)}: JSON has no NaN or Infinity"
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                return pointer, f"text with a lone surrogate{_at(pointer)}, which is not valid Unicode"
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if abs(value) >= _MAX_INT:
                return pointer, f"an integer of more than {MAX_INT_DIGITS} digits{_at(pointer)}"
        elif isinstance(value, (list, tuple)):  # json writes a tuple as a list
            stack.extend((f"{pointer}/{i}", item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    # json writes a number, a bool or None as a key in text; nothing else.
                    if _first_problem(key) is None and (key is None or isinstance(key, (int, float))):
                        continue
                    return pointer, f"the key {key!r}{_at(pointer)}, which JSON cannot write"
                if _SURROGATE.search(key):
                    where = f"{pointer}/{_token(key)}"
                    return where, f"a key with a lone surrogate{_at(where)}, which is not valid Unicode"
            stack.extend((f"{pointer}/{_token(str(k))}", v) for k, v in reversed(list(value.items())))
        else:
            return pointer, f"a {type(value).__name__}{_at(pointer)}, which is not a JSON value"
    return None


def _token(key: str) -> str:
    # RFC 6901 escapes; a lone surrogate is shown as U+FFFD so the message itself stays valid text.
    return valid_text(key).replace("~", "~0").replace("/", "~1")


def _at(pointer: str) -> str:
    return f" at {pointer}" if pointer else ""
