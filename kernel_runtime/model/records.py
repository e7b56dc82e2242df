"""The records nbmesh keeps: runs and published versions, as dataclasses with JSON forms.

``from_json`` checks the shape of a record read back from the store (every field of the right JSON
type), so a record someone else wrote cannot make a listing fail later on a wrong type.
"""

from __future__ import annotations

import secrets
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, TypeVar

QUEUED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT = "queued", "running", "succeeded", "failed", "timed_out"
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, TIMED_OUT})
STATUSES = frozenset({QUEUED, RUNNING}) | FINAL_STATUSES
R = TypeVar("R")
_NONE = type(None)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    # 128 random bits: run ids are capabilities to read results, so they must not be guessable.
    return secrets.token_hex(16)


@dataclass
class Run:
    run_id: str
    product: str
    version: int
    parameters: dict[str, Any]
    trigger: dict[str, Any]
    status: str = QUEUED
    result: Any = None
    error: dict[str, Any] | None = None
    created_at: str = field(default_factory=now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    warm: bool | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_json(self) -> dict[str, Any]:
        # Shallow on purpose: asdict() would deep-copy the result on the hot path.
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: Any) -> "Run":
        run = _from_json(cls, data, _RUN_TYPES)
        if run.status not in STATUSES:
            raise ValueError(f"status {run.status!r} is not one of {', '.join(sorted(STATUSES))}")
        return run


@dataclass(frozen=True)
class StoredVersion:
    """One immutable published version of a product, as the store holds it."""

    name: str
    version: int
    published_at: str
    notebook: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "StoredVersion":
        return _from_json(cls, data, _VERSION_TYPES)


# The JSON types of each field (bool is no int here); "result" may be any JSON value.
_RUN_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "product": (str,),
    "version": (int,),
    "parameters": (dict,),
    "trigger": (dict,),
    "status": (str,),
    "error": (dict, _NONE),
    "created_at": (str,),
    "started_at": (str, _NONE),
    "finished_at": (str, _NONE),
    "duration_ms": (int, float, _NONE),
    "warm": (bool, _NONE),
}
_VERSION_TYPES: dict[str, tuple[type, ...]] = {"name": (str,), "version": (int,), "published_at": (str,), "notebook": (dict,)}


def _from_json(cls: type[R], data: Any, types: dict[str, tuple[type, ...]]) -> R:
    """``cls`` from its JSON form; ValueError saying which field is missing or of the wrong type."""
    if not isinstance(data, dict):
        raise ValueError(f"expected an object, found {type(data).__name__}")
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ValueError(f"the field {f.name!r} is missing")
            continue
        value, allowed = data[f.name], types.get(f.name)
        if allowed is not None and (not isinstance(value, allowed) or isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"the field {f.name!r} is a {type(value).__name__}")
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
