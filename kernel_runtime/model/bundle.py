"""A product's files (``metadata.nbmesh.files``): the glob rules, path checks and "same version" test.

One module for every side that handles a bundle, so they cannot disagree: ``nbmesh publish``
and JupyterLab's Publish (through its server extension) :func:`collect` the files the globs
name in the notebook's folder; the runtime checks what arrived with :func:`bundle_problems`
(every file named by a glob, every glob matching a file, no path leaving the folder) and
each path again with :func:`path_problem` before it joins a path on disk. Globs follow
``wcmatch``'s GLOBSTAR rules on both sides: ``*`` stays within a folder, ``**`` crosses
folders, and a glob naming a folder takes the files below it. Everything here is pure but
:func:`collect`, which only lists and reads the notebook's own folder.
"""

from __future__ import annotations

import copy
from contextlib import ExitStack
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypedDict

from wcmatch import glob as wcglob

from ..errors import PayloadTooLarge

MIB = 1024 * 1024
BUNDLE_LIMIT = 256 * MIB  # a publish with its files, in all (413 beyond)
MAX_FILES = 1000  # parts of one publish: beyond, 413 before anything is read into the store
MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.MARK
SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


class FileEntry(TypedDict):
    """One file of a version, as its manifest records it: the blob it is stored as, and its size."""

    sha256: str
    size: int


@dataclass
class Upload:
    """One file a publish sent: its path in the notebook's folder, digest, size, and bytes (a spooled file)."""

    path: str
    sha256: str
    size: int
    data: BinaryIO

    def read(self) -> bytes:
        self.data.seek(0)
        return self.data.read()


@dataclass
class Submission:
    """What a publish sent: the notebook's bytes (None: no notebook part), its files, and what was
    wrong with the request's parts themselves (listed with the notebook's own problems)."""

    notebook: bytes | None
    files: list[Upload] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def close(self) -> None:
        for upload in self.files:
            upload.data.close()


def file_problem(message: str, path: str | None = None) -> dict[str, Any]:
    """One problem of a bundle, as InvalidNotebook lists it (``file``: the path concerned)."""
    found: dict[str, Any] = {"cell": None, "message": message}
    if path is not None:
        found["file"] = path
    return found


def path_problem(path: Any) -> str | None:
    """Why ``path`` is not a plain relative path inside the notebook's folder, or None."""
    if not isinstance(path, str) or not path:
        return "is not a relative path"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if any(unicodedata.category(ch) == "Cc" for ch in path):
        return "contains a control character"
    if path.startswith("/") or re.match(r"[A-Za-z]:", path) or "\\" in path:
        return "is absolute or not a '/'-separated path"
    segments = path.split("/")
    if ".." in segments:
        return "leaves the notebook's folder ('..')"
    if any(s in ("", ".") for s in segments):
        return "has an empty or '.' segment"
    if size > MAX_PATH_BYTES or any(len(s.encode("utf-8")) > MAX_SEGMENT_BYTES for s in segments):
        return f"is too long (at most {MAX_PATH_BYTES} bytes, {MAX_SEGMENT_BYTES} a segment)"
    return None


def patterns_of(meta: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """The globs of ``metadata.nbmesh.files`` (``meta`` is ``metadata.nbmesh``), and the problems with them."""
    files = meta.get("files", []) if isinstance(meta, dict) else []
    if not isinstance(files, list) or not all(isinstance(p, str) for p in files):
        return [], [file_problem("metadata.nbmesh.files must be a list of paths or globs (strings).")]
    problems = []
    for pattern in files:
        why = path_problem(pattern.rstrip("/") or pattern)
        if why is not None:
            problems.append(file_problem(f"metadata.nbmesh.files: {pattern!r} {why}.", pattern))
    return files, problems


def _named_by(path: str, pattern: str) -> bool:
    """Whether ``pattern`` names ``path`` itself or one of the folders above it."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(wcglob.globmatch(c, pattern.rstrip("/"), flags=wcglob.GLOBSTAR) for c in candidates)


def bundle_problems(meta: Any, paths: list[str]) -> list[dict[str, Any]]:
    """Every problem of a publish's files (``paths``, as the parts name them) against the notebook's globs."""
    patterns, problems = patterns_of(meta)
    seen: set[str] = set()
    for path in paths:
        why = path_problem(path)
        if why is not None:
            problems.append(file_problem(f"File {path!r} {why}.", path))
        elif path in seen:
            problems.append(file_problem(f"File {path!r} was sent twice.", path))
        elif not any(_named_by(path, p) for p in patterns):
            problems.append(file_problem(f"File {path!r} is not named by metadata.nbmesh.files.", path))
        seen.add(path)
    valid = [p for p in seen if path_problem(p) is None]
    for pattern in patterns:
        if path_problem(pattern.rstrip("/") or pattern) is None and not any(_named_by(p, pattern) for p in valid):
            problems.append(file_problem(f"metadata.nbmesh.files: {pattern!r} matches no file.", pattern))
    return problems


def manifest_problem(manifest: Any) -> str | None:
    """Why a stored manifest ``{path: {sha256, size}}`` is unusable, or None (the store may hold hand edits)."""
    if not isinstance(manifest, dict):
        return "the files manifest is not an object"
    for path, entry in manifest.items():
        why = path_problem(path)
        if why is not None:
            return f"the file path {path!r} {why}"
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not SHA256.fullmatch(entry["sha256"])
            or not isinstance(entry.get("size"), int)
            or isinstance(entry.get("size"), bool)
            or entry["size"] < 0
        ):
            return f"the entry of {path!r} is not {{sha256: 64 hex digits, size: bytes}}"
    return None


def essence(notebook: dict[str, Any]) -> dict[str, Any]:
    """What decides whether a republish changes anything: the notebook without what running it changes.

    Outputs, execution counts and the timing JupyterLab records in a cell's ``metadata.execution``
    change each time the author runs the notebook, not what the product does.
    """
    kept = copy.deepcopy(notebook)
    for cell in kept.get("cells", []) if isinstance(kept.get("cells"), list) else []:
        if isinstance(cell, dict):
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            if isinstance(cell.get("metadata"), dict):
                cell["metadata"].pop("execution", None)
            if isinstance(cell.get("source"), list):
                cell["source"] = "".join(map(str, cell["source"]))
    return kept


def publish_form(notebook: bytes, files: list[tuple[str, Path]], stack: ExitStack) -> list[tuple[str, tuple[str, Any, str]]]:
    """The parts of a ``multipart/form-data`` publish (httpx's ``files=``); the files stay open in ``stack``."""
    total = len(notebook) + sum(path.stat().st_size for _, path in files)
    if total > BUNDLE_LIMIT:
        raise PayloadTooLarge(f"The notebook and its files are {total} bytes; the limit is {BUNDLE_LIMIT} bytes.")
    parts = [("notebook", ("notebook.ipynb", notebook, "application/json"))]
    for rel, path in files:
        parts.append(("files", (rel, stack.enter_context(open(path, "rb")), "application/octet-stream")))
    return parts


def collect(folder: str | os.PathLike[str], meta: Any) -> tuple[list[tuple[str, Path]], list[dict[str, Any]]]:
    """The files the globs of ``meta`` name in ``folder`` as (relative path, file), and the problems found.

    A glob that names a folder takes every file below it. A match that is a link leading out of
    the folder, or not a regular file, is a problem; a glob that matches nothing is left for the
    runtime to report with the rest.
    """
    root = Path(folder).resolve()
    patterns, problems = patterns_of(meta)
    found: dict[str, Path] = {}
    for pattern in patterns:
        if any(p.get("file") == pattern for p in problems):
            continue
        matches = []
        # MARK ends a folder's match with "/": a glob naming a folder takes every file below it.
        for match in wcglob.glob(pattern.rstrip("/"), root_dir=root, flags=GLOB_FLAGS):
            if not match.endswith("/"):
                matches.append(match)
                continue
            for dirpath, dirnames, filenames in os.walk(root / match):
                # Hidden names stay out, as with "*" (.ipynb_checkpoints above all).
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                base = Path(dirpath).relative_to(root).as_posix()
                matches += [f"{base}/{name}" for name in sorted(filenames) if not name.startswith(".")]
        for rel in matches:
            target = root / rel
            real = target.resolve()
            if real != root and root not in real.parents:
                problems.append(file_problem(f"File {rel!r} is a link leading out of the notebook's folder.", rel))
            elif not real.is_file():
                problems.append(file_problem(f"File {rel!r} is not a regular file.", rel))
            else:
                found.setdefault(rel, target)
    return sorted(found.items()), problems
