"""The records nbmesh keeps: runs and published versions, as dataclasses with JSON forms."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

QUEUED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT = "queued", "running", "succeeded", "failed", "timed_out"
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, TIMED_OUT})


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


@dataclass(frozen=True)
class StoredVersion:
    """One immutable published version of a product, as the store holds it."""

    name: str
    version: int
    published_at: str
    notebook: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
