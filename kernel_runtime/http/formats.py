"""A result in the format the caller asks for (docs/reference/http-api.md, "Formats").

Negotiation: ``?format=json|csv|parquet|arrow`` wins over ``Accept``; neither means JSON. A JSON
answer pays one dict lookup for this (:func:`requested`); everything else here runs only when
another format is asked. Only a tabular result, a list of flat records (which is what a DataFrame
becomes), has CSV, Parquet and Arrow IPC forms: it is turned into one Arrow table (columns in the
order they first appear, a record without a column gives null) and written by pyarrow, off the
event loop. Anything else, and any format not offered, is :class:`~kernel_runtime.errors.NotAcceptable`.
"""

from __future__ import annotations

import asyncio
import functools
import io
import re
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import NotAcceptable, quoted

JSON = "json"
MEDIA = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
FORMAT_OF = {media: fmt for fmt, media in MEDIA.items()}
# Wildcards a client sends when any answer will do: the default, JSON (text/* prefers CSV).
_RANGES = {"*/*": JSON, "application/*": JSON, "text/*": "csv"}
_JSON_ACCEPTS = frozenset({None, "", "*/*", "application/json"})
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?", re.ASCII)  # RFC 9110's qvalue, nothing else
# What OpenAPI documents for the 200 answer of a route that negotiates.
BINARY = {"type": "string", "description": "The result alone in this format (tabular results only)."}
ALTERNATIVES = {media: BINARY for fmt, media in MEDIA.items() if fmt != JSON}
FORMAT = {
    "name": "format",
    "in": "query",
    "description": "The result alone in this format, instead of what Accept asks for.",
    "schema": {"enum": list(MEDIA)},
}


def requested(request: Request) -> str:
    """The format the request asks for, by ``?format=`` else by ``Accept``; NotAcceptable if none is offered."""
    if request.scope["query_string"]:
        fmt = request.query_params.get("format")
        if fmt is not None:
            if fmt not in MEDIA:
                raise NotAcceptable(f"Unknown format {quoted(fmt)}: ask for one of {', '.join(MEDIA)}.")
            return fmt
    accept = request.headers.get("accept")
    return JSON if accept in _JSON_ACCEPTS else _from_accept(accept)


@functools.lru_cache(maxsize=128)  # clients send the same few Accept headers over and over
def _from_accept(accept: str) -> str:
    """The offered format the Accept header ranks highest (ties: the first listed); q=0 refuses one."""
    best, best_q = None, 0.0
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                q = float(value) if _QVALUE.fullmatch(value.strip()) else 0.0
        fmt = FORMAT_OF.get(media.lower()) or _RANGES.get(media.lower())
        if fmt is not None and q > best_q:
            best, best_q = fmt, q
    if best is None:
        raise NotAcceptable(
            f"None of the media types in Accept {quoted(accept)} is offered: ask for one of {', '.join(MEDIA.values())}."
        )
    return best


async def result_response(result: Any, fmt: str, status: int = 200) -> Response:
    """``result`` alone, in ``fmt``."""
    if fmt == JSON:
        return JSONResponse(result, status_code=status)
    body = await asyncio.to_thread(encode, result, fmt)
    return Response(body, status_code=status, media_type=MEDIA[fmt])


def encode(result: Any, fmt: str) -> bytes:
    """A tabular result as CSV, Parquet or an Arrow IPC stream."""
    table = to_table(result, fmt)
    sink = io.BytesIO()
    if fmt == "csv":
        pa_csv.write_csv(table, sink)
    elif fmt == "parquet":
        pq.write_table(table, sink)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def to_table(result: Any, fmt: str = "arrow") -> pa.Table:
    """The Arrow table of a list of flat records; NotAcceptable naming why another result is not one."""
    if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
        kind = type(result).__name__ if not isinstance(result, list) else "list of other things than records"
        raise NotAcceptable(
            f"The result is a {kind}, not a table: only a list of flat records (a DataFrame) has a {fmt} form; "
            "ask for JSON."
        )
    names = list(dict.fromkeys(key for row in result for key in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in result]
        nested = next((v for v in values if isinstance(v, (dict, list))), None)
        if nested is not None:
            raise NotAcceptable(
                f"Column {quoted(name)} holds a {type(nested).__name__}: only flat records (numbers, text, "
                f"booleans, null) have a {fmt} form; ask for JSON."
            )
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise NotAcceptable(f"Column {quoted(name)} has no single {fmt} type ({exc}); ask for JSON.") from None
    return pa.table(columns)
