"""The records nbmesh keeps and serves: runs, published versions and products, with their JSON forms.

Their type hints are the API's shapes: :mod:`.schema` turns them into the
OpenAPI document's schemas, and ``from_json`` checks a record read back from
the store against them (every field of the right JSON type), so a record
someone else wrote cannot make a listing fail later on a wrong type.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, NotRequired, TypedDict, TypeVar, get_args, get_type_hints

from .bundle import FileEntry, manifest_problem
from .run_errors import RunError
from .schema import Schema, json_types

ParamType = Literal["int", "float", "str", "bool", "list", "dict", "any"]  # what a parameter may be declared as
RunStatus = Literal["queued", "running", "succeeded", "failed", "timed_out"]
QUEUED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT = get_args(RunStatus)
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, TIMED_OUT})
STATUSES = frozenset(get_args(RunStatus))
RUN_ID = r"[0-9a-f]{32}"  # new_run_id's form
RUN_ID_RE = re.compile(RUN_ID, re.ASCII)
R = TypeVar("R")

RunId = Annotated[str, Schema(pattern=f"^{RUN_ID}$")]
Notebook = Annotated[
    dict[str, Any], Schema(description="An nbformat 4 notebook.", required=["cells", "metadata", "nbformat", "nbformat_minor"])
]
ParameterValues = Annotated[dict[str, Any], Schema(description="Parameter values by name; omitted ones take their defaults.")]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    # 128 random bits: run ids are capabilities to read results, so they must not be guessable.
    return secrets.token_hex(16)


class RunTrigger(TypedDict):
    """What started a run: an HTTP call, an event (its topic) or a schedule (its cron expression and due time)."""

    kind: Literal["http", "event", "schedule"]
    topic: NotRequired[str]
    schedule: NotRequired[str]
    due: NotRequired[str]


@dataclass
class Run:
    """One execution of a product version; ``result`` is its output cell's value once it succeeded."""

    run_id: RunId
    product: str
    version: int
    parameters: ParameterValues
    trigger: RunTrigger
    status: RunStatus = QUEUED
    result: Any = None
    error: RunError | None = None  # in its JSON form (RunError.to_json), as it is stored and served
    created_at: str = field(default_factory=now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    warm: bool | None = None
    cached: bool = False  # an answer of the result cache: this is the earlier run's record, not a new run

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
    notebook: Notebook
    files: dict[str, FileEntry] = field(default_factory=dict)  # path in the notebook's folder -> its blob

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "StoredVersion":
        stored = _from_json(cls, data, _VERSION_TYPES)
        why = manifest_problem(stored.files)
        if why is not None:
            raise ValueError(why)  # its paths join a path on disk when the files are unpacked
        return stored


class ParameterInfo(TypedDict):
    """One parameter of a product: its type, whether it also accepts null, its default and the comment that explains it."""

    type: ParamType
    nullable: NotRequired[Literal[True]]  # only present when true: `x: str | None = None`
    default: Any
    help: NotRequired[str]


class Trigger(TypedDict, total=False):
    """One entry of the notebook's ``metadata.nbmesh.triggers``: a ``schedule`` (cron, in ``timezone``) or an ``event`` topic."""

    schedule: str
    timezone: str
    event: str
    parameters: dict[str, Any]


class Product(TypedDict):
    """A published product: its newest version (or the one asked for) and where it sits in the product graph."""

    name: str
    version: int
    versions: list[int]
    title: str
    description: str
    owner: str
    parameters: dict[str, ParameterInfo]
    triggers: list[Annotated[Trigger, Schema(additionalProperties=True)]]  # the notebook's own, as published
    timeout: float
    cache_ttl: float
    output_schema: dict[str, Any] | bool | None
    published_at: str
    invoke_url: str
    upstream: list[str]
    downstream: list[str]


def _field_types(cls: type) -> dict[str, tuple[type, ...] | None]:
    """The JSON types of each field, from its type hint (bool is no int here; None: any JSON value)."""
    return {name: json_types(hint) for name, hint in get_type_hints(cls).items()}


_RUN_TYPES = _field_types(Run)
_VERSION_TYPES = _field_types(StoredVersion)


def _from_json(cls: type[R], data: Any, types: dict[str, tuple[type, ...] | None]) -> R:
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
