"""Request bodies read within their limits: a JSON body, and a publish sent as ``multipart/form-data``.

A publish with files has a part ``notebook`` (the ipynb) and one part ``files`` per file, whose
filename is its path relative to the notebook's folder (docs/reference/http-api.md, "Publishing
with files"). The body is parsed as it streams in with python-multipart's own parser rather
than Starlette's form: that one reads undecodable filenames silently as Latin-1, and here
a filename must be UTF-8 to be refused clearly. Each file is hashed as it arrives and
spooled to a temporary file; nothing reaches the store before every check passed.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..errors import InvalidRequest, PayloadTooLarge, quoted
from ..model.bundle import BUNDLE_LIMIT, MAX_FILES, Submission, Upload, file_problem

_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
_SPOOL = 1024 * 1024  # a file part beyond this goes to a temporary file on disk


def check_length(request: Request, limit: int) -> None:
    """Refuse a body whose declared Content-Length is above ``limit`` before reading any of it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _DIGITS.fullmatch(declared):
            raise InvalidRequest(f"The Content-Length header {quoted(declared)} is not a number of bytes.")
        if int(declared) > limit:
            raise PayloadTooLarge(f"The request body is {int(declared)} bytes; the limit is {limit} bytes.")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes without reading them all."""
    check_length(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def is_multipart(request: Request) -> bool:
    return parse_options_header(request.headers.get("content-type", ""))[0] == b"multipart/form-data"


@dataclass
class _Part:
    name: bytes | None = None
    filename: bytes | None = None
    size: int = 0
    chunks: list[bytes] = field(default_factory=list)
    upload: Upload | None = None
    hasher: Any = None


class _Reader:
    """The callbacks of python-multipart's parser: one part at a time, each within its limit."""

    def __init__(self, notebook_limit: int) -> None:
        self.notebook_limit = notebook_limit
        self.publish = Submission(notebook=None, files=[], problems=[])
        self.part = _Part()
        self.header = (b"", b"")
        self.parts = 0

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_FILES + 1:
            raise PayloadTooLarge(f"The publish sends more than {MAX_FILES} files; that is the limit.")
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header = (self.header[0] + data[start:end], self.header[1])

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header = (self.header[0], self.header[1] + data[start:end])

    def on_header_end(self) -> None:
        field_name, value = self.header
        self.header = (b"", b"")
        if field_name.lower() == b"content-disposition":
            _, options = parse_options_header(value.decode("latin-1"))
            # parse_options_header hands back the header's bytes as sent (Latin-1 round trip).
            self.part.name = options.get(b"name")
            self.part.filename = options.get(b"filename")

    def on_headers_finished(self) -> None:
        part = self.part
        if part.name == b"files" and part.filename is not None:
            try:
                path = part.filename.decode("utf-8")
            except UnicodeDecodeError:
                path = part.filename.decode("utf-8", "backslashreplace")
                self.publish.problems.append(file_problem(f"File name {path!r} is not valid UTF-8.", path))
            part.upload = Upload(path=path, sha256="", size=0, data=tempfile.SpooledTemporaryFile(_SPOOL))
            part.hasher = hashlib.sha256()
            self.publish.files.append(part.upload)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part, chunk = self.part, data[start:end]
        part.size += len(chunk)
        if part.upload is not None:
            part.upload.data.write(chunk)
            part.hasher.update(chunk)
        elif part.name == b"notebook":
            if part.size > self.notebook_limit:
                raise PayloadTooLarge(f"The notebook is larger than the limit of {self.notebook_limit} bytes.")
            part.chunks.append(chunk)

    def on_part_end(self) -> None:
        part, problems = self.part, self.publish.problems
        if part.upload is not None:
            part.upload.size = part.size
            part.upload.sha256 = part.hasher.hexdigest()
            part.upload.data.seek(0)
        elif part.name == b"notebook":
            if self.publish.notebook is not None:
                problems.append(file_problem("The publish has two parts named 'notebook'; send one."))
            self.publish.notebook = b"".join(part.chunks)
        elif part.name == b"files":
            problems.append(file_problem("A part named 'files' has no filename: name it by its path in the notebook's folder."))
        else:
            name = "(none)" if part.name is None else part.name.decode("latin-1")
            problems.append(file_problem(f"Unknown part {name!r}: a publish sends 'notebook' and 'files' parts."))


async def read_publish(request: Request, notebook_limit: int) -> Submission:
    """A ``multipart/form-data`` publish, parsed as it streams in, within the bundle's limits."""
    check_length(request, BUNDLE_LIMIT)
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidRequest("The multipart/form-data publish has no boundary in its Content-Type.")
    reader = _Reader(notebook_limit)
    callbacks = {name: getattr(reader, name) for name in dir(_Reader) if name.startswith("on_")}
    parser = MultipartParser(boundary, callbacks)
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > BUNDLE_LIMIT:
                raise PayloadTooLarge(f"The publish is larger than the limit of {BUNDLE_LIMIT} bytes (notebook and files).")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        reader.publish.close()
        raise InvalidRequest(f"The multipart/form-data publish could not be read: {exc}.") from None
    except BaseException:
        reader.publish.close()
        raise
    return reader.publish
