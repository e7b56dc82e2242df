"""How the command line says things: problem lines, tables that never cut an id or a date, ``-p`` values.

Pure functions of their inputs (no console, no runtime), so each rule is unit-tested on its own
(tests/unit/test_cli_format.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from .. import jsontext
from ..errors import NbmeshError


# problems ----------------------------------------------------------------------------------------
def detail_lines(details: list[Any]) -> list[str]:
    """One line per problem, notebook-wide ones first, then by cell; cells are numbered from 1."""
    dicts = [d for d in details if isinstance(d, dict)]
    ordered = sorted(dicts, key=lambda d: (isinstance(d.get("cell"), int), d.get("cell") if isinstance(d.get("cell"), int) else 0))
    lines = [_detail_line(d) for d in ordered]
    return lines + [str(d) for d in details if not isinstance(d, dict)]


def _detail_line(detail: dict[str, Any]) -> str:
    message = str(detail.get("message", json.dumps(detail)))
    cell = detail.get("cell")
    if isinstance(cell, int) and not isinstance(cell, bool):
        # A message that already names its cell ("Cell 3 has ...") is not prefixed again.
        number = cell + 1
        return message if re.search(rf"\bcells? (\d+, )*{number}\b", message, re.IGNORECASE) else f"cell {number}: {message}"
    path = detail.get("path")
    if isinstance(path, str) and path not in message:
        return f"{path}: {message}"
    return message


# tables ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    header: str
    whole: bool = False  # an id or a date: never wrapped, never cut
    drop: int = 0  # when the table is too wide, columns with the highest ``drop`` go first; 0 never goes


def table(columns: list[Column], rows: list[list[str]], width: int) -> Table:
    """A table that fits ``width``: it drops optional columns before it would wrap an id or a date.

    What is left wraps (``fold``) instead of ending in an ellipsis, so nothing is ever hidden.
    """
    keep = list(range(len(columns)))
    widths = [max([len(c.header)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]

    def needed(indexes: list[int]) -> int:
        return sum(widths[i] + 3 for i in indexes) + 1  # each cell's padding and border, and the last border

    for i in sorted(keep, key=lambda i: -columns[i].drop):
        if needed(keep) <= width or columns[i].drop == 0:
            break
        keep.remove(i)
    # Narrower still than the columns that are never dropped: those fold too, every character kept.
    whole = needed(keep) <= width
    out = Table()
    for i in keep:
        col = columns[i]
        kept_whole = col.whole and whole
        out.add_column(col.header, no_wrap=kept_whole, min_width=widths[i] if kept_whole else None, overflow="fold")
    for row in rows:
        out.add_row(*[row[i] for i in keep])
    return out


def products_table(products: list[dict[str, Any]], width: int) -> Table:
    columns = [Column("name", whole=True), Column("version"), Column("owner", drop=2), Column("parameters", drop=1), Column("title", drop=3)]
    rows = [
        [p["name"], str(p["version"]), p.get("owner", ""), parameters_text(p["parameters"]), p.get("title", "")]
        for p in products
    ]
    return table(columns, rows, width)


def runs_table(runs: list[dict[str, Any]], width: int) -> Table:
    columns = [
        Column("run_id", whole=True),
        Column("version", drop=1),
        Column("status"),
        Column("duration ms", drop=2),
        Column("trigger", drop=3),
        Column("started", whole=True),
    ]
    rows = []
    for r in runs:
        duration = f"{r['duration_ms']:.1f}" if r.get("duration_ms") is not None else ""
        started = r.get("started_at") or r.get("created_at") or ""
        rows.append([r["run_id"], str(r["version"]), r["status"], duration, r["trigger"].get("kind", ""), started])
    return table(columns, rows, width)


def type_text(spec: dict[str, Any]) -> str:
    """A parameter's type as the catalog says it: ``str``, ``str | None``, ``any``."""
    return f"{spec['type']} | None" if spec.get("nullable") else str(spec["type"])


def parameters_text(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {type_text(v)}" for k, v in parameters.items())


def product_lines(product: dict[str, Any], url: str) -> list[str]:
    """``nbmesh show``: the product, one fact per line."""
    lines = [f"{product['name']} version {product['version']} (versions {', '.join(map(str, product['versions']))})"]
    for key in ("title", "description", "owner"):
        if product.get(key):
            lines.append(f"{key}: {product[key]}")
    lines.append(f"published: {product['published_at']}")
    # invoke_url calls the newest version; an older one shown (`show p@1`) is invoked pinned.
    newest = product["version"] == max(product["versions"], default=product["version"])
    path = product["invoke_url"] if newest else f"/api/products/{product['name']}@{product['version']}/invoke"
    lines.append(f"invoke: POST {url}{path}")
    if product.get("upstream"):
        lines.append(f"upstream: {', '.join(product['upstream'])}")
    if product.get("downstream"):
        lines.append(f"downstream: {', '.join(product['downstream'])}")
    params = product.get("parameters") or {}
    lines.append("parameters:" if params else "parameters: none")
    for name, spec in params.items():
        help_text = f"  # {spec['help']}" if spec.get("help") else ""
        lines.append(f"  {name}: {type_text(spec)} = {json.dumps(spec.get('default'), ensure_ascii=False)}{help_text}")
    for trigger in product.get("triggers") or []:
        lines.append(f"trigger: {json.dumps(trigger, ensure_ascii=False)}")
    return lines


# -p KEY VALUE ------------------------------------------------------------------------------------
_EXAMPLES = {
    "list": ("a list", """'["a", "b"]'"""),
    "dict": ("a dict", """'{"key": "value"}'"""),
    "int": ("an int", "3"),
    "float": ("a float", "2.5"),
    "bool": ("a bool", "true"),
}


def parameter_value(key: str, raw: str, spec: dict[str, Any] | None) -> Any:
    """A ``-p KEY VALUE`` value, typed by the parameter's ``spec`` (None: not a known parameter).

    ``str`` takes the text as it is; ``any`` and unknown keys take JSON when it parses, else the text;
    the other types take JSON, and text that is not JSON is a ValueError saying what to pass.
    """
    kind = (spec or {}).get("type")
    try:
        (key + raw).encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8 on the command line (Python keeps them as surrogates)
        raise ValueError(f"Parameter {key!r}: its name or value is not valid UTF-8 text.") from None
    if kind == "str":
        return raw
    try:
        # Strict JSON: NaN, Infinity and a lone surrogate are not JSON values, so they are not sent as such.
        return jsontext.loads(raw, f"Parameter {key!r}")
    except NbmeshError:
        if kind not in _EXAMPLES:
            return raw
    what, example = _EXAMPLES[kind]
    null = " (or null)" if (spec or {}).get("nullable") else ""
    raise ValueError(f"Parameter {key!r} is {what}: pass it as JSON{null}, like -p {key} {example} (got {raw!r}).")
