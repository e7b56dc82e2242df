"""Every timing and limit of the runtime, in one tree of frozen dataclasses, with its default.

``nbmesh serve`` builds the tree from its options (and ``--set SECTION.NAME=VALUE`` for the rest)
in one place, :func:`kernel_runtime.cli.serve`; each part of the runtime is handed its own
sub-tree and reads no environment variable or module constant for these. Each field carries a
one-line doc (:func:`setting`), listed with its option and default in docs/reference/settings.md.
This module sits with the exception root at the bottom of the layers: it imports nothing of
ours but :mod:`kernel_runtime.errors`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, TypeVar

from .errors import InvalidRequest

MIB = 1024 * 1024
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"  # where clients look for the runtime (NBMESH_URL overrides)
DEFAULT_STORE = ".nbmesh/store"


def setting(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    factory: Any = dataclasses.MISSING,
    option: str | None = None,
    at_least: float | None = None,
    shown: str | None = None,
) -> Any:
    """A field of the tree: its default (or default factory, ``shown`` in the docs as), one-line doc,
    ``serve`` option and least value."""
    meta = {"doc": doc, "option": option, "at_least": at_least, "shown": shown}
    return field(default=default, default_factory=factory, metadata=meta)


def all_but_one(size: int) -> int:
    """Kernels left when one stays free for the rest of the catalog (and interactive calls): at least 1."""
    return max(1, size - 1)


@dataclass(frozen=True)
class Backoff:
    """Retry waits that double from ``first`` up to ``max`` seconds, for as long as the cause lasts."""

    first: float = setting(0.5, "seconds before the first retry", at_least=0)
    max: float = setting(30.0, "the longest wait between two retries, in seconds", at_least=0)


@dataclass(frozen=True)
class KernelLogSettings:
    """What kernels write to file descriptors 1 and 2, in the runtime's log."""

    line_chars: int = setting(2000, "characters of one logged line; the rest is cut", at_least=1)
    lines: int = setting(200, "lines one kernel may log per window; past it they are counted, not logged", at_least=0)
    window: float = setting(10.0, "seconds of the window `lines` counts in", at_least=0)
    tail: int = setting(5, "last lines kept to explain a kernel that failed to start", at_least=0)


@dataclass(frozen=True)
class PoolSettings:
    """The kernels: how many, how they are contained, and how they are watched."""

    size: int = setting(
        doc="kernels that may serve products at once",
        factory=lambda: os.cpu_count() or 2, option="--pool-size", at_least=1, shown="the CPU count",
    )
    spares: int = setting(
        1, "started kernels kept unclaimed, so a product whose kernel is not warm never waits for a start",
        option="--spare-kernels", at_least=0,
    )
    sandbox: str = setting("auto", "`auto` (bubblewrap if it works, else none), `bwrap`, or `none`", option="--sandbox")
    kernel_env: tuple[str, ...] = setting((), "names of the runtime's environment variables kernels get", option="--kernel-env")
    kernel_memory: int | None = setting(
        None, "address-space limit of each kernel process in bytes (`--kernel-memory` takes MiB); none: unlimited",
        option="--kernel-memory", at_least=1,
    )
    kernel_tmp: int = setting(1024 * MIB, "bytes of the private /tmp of each sandboxed kernel (a tmpfs: memory)", at_least=1)
    max_output: int = setting(8 * MIB, "characters one run may print and display; bytes of its result as JSON", at_least=0)
    start_timeout: float = setting(60.0, "seconds a starting kernel has to answer", at_least=0)
    start_retry: Backoff = setting(factory=lambda: Backoff(0.5, 30.0), doc="waits between retried kernel starts")
    start_output_wait: float = setting(2.0, "seconds to wait for the last output of a kernel that failed to start", at_least=0)
    interrupt_grace: float = setting(3.0, "seconds an interrupted kernel has to answer before it is replaced", at_least=0)
    poll_interval: float = setting(0.1, "seconds between checks that a kernel running a step is alive", at_least=0.001)
    watch_interval: float = setting(1.0, "seconds between checks that idle kernels are alive", at_least=0.001)
    log: KernelLogSettings = setting(factory=KernelLogSettings, doc="kernel output in the runtime's log")


@dataclass(frozen=True)
class RunSettings:
    """Runs: the background queue, its workers, the per-product cap, and stopping."""

    queue_size: int = setting(
        1000, "background runs that may wait, beyond it 503; also the runs that may wait for one product's cap",
        option="--queue-size", at_least=1,
    )
    max_concurrency: int | None = setting(
        None, "kernels one product may hold at once; none: pool size - 1, at least 1", option="--max-concurrency", at_least=1
    )
    workers: int | None = setting(None, "background runs running at once; none: pool size - 1, at least 1", at_least=1)
    grace: float = setting(30.0, "seconds requests and background runs get to finish on SIGTERM", option="--grace", at_least=0)
    cache_size: int = setting(256, "results the result cache keeps (products with `cache_ttl`), least recently used first out", at_least=0)

    def concurrency(self, pool_size: int) -> int:
        return self.max_concurrency or all_but_one(pool_size)

    def worker_count(self, pool_size: int) -> int:
        return self.workers or all_but_one(pool_size)


@dataclass(frozen=True)
class StoreSettings:
    """The store, how the runtime keeps in step with it, and how it waits out outages."""

    url: str = setting(DEFAULT_STORE, "a folder, or `s3://bucket/prefix`", option="--store")
    keep_runs: int | None = setting(None, "runs kept per product; none: all", option="--keep-runs", at_least=1)
    prune_interval: float = setting(1.0, "seconds a burst of finished runs is given before old runs are pruned", at_least=0)
    catalog_sync: float = setting(
        10.0, "seconds between re-reads of the catalog, for replicas sharing a store", option="--catalog-sync", at_least=0.1
    )
    write_retry: Backoff = setting(
        factory=lambda: Backoff(0.5, 10.0), doc="waits between retried writes of a finished run while the store is down"
    )
    publish_attempts: int = setting(20, "tries to take the next version number while other publishes race for it", at_least=1)
    s3_connect_timeout: float = setting(2.0, "seconds to connect to S3 (short: a store that is down is a prompt 503)", at_least=0)
    s3_read_timeout: float = setting(10.0, "seconds to wait for an S3 answer", at_least=0)
    s3_attempts: int = setting(3, "attempts of one S3 call (boto3's standard retry mode)", at_least=1)
    s3_conflict_attempts: int = setting(5, "attempts of an exclusive create that S3 answers with a conflict (409)", at_least=1)


@dataclass(frozen=True)
class TriggerSettings:
    """Schedules."""

    tick: float = setting(1.0, "seconds between checks for due schedules", at_least=0.001)
    clock_file: str | None = setting(
        None, "a file holding the schedules' now (one ISO-8601 instant), for tests and demos", option="--clock-file"
    )


@dataclass(frozen=True)
class QueueSettings:
    """The run queue: embedded in the process (one machine), or a Redis Streams consumer group shared by replicas."""

    url: str | None = setting(
        None, "`redis://HOST:PORT/DB` (or `rediss://`, `unix://`): replicas share runs through Redis; none: the embedded queue",
        option="--queue",
    )
    lease: float = setting(
        30.0, "seconds a replica holds a run without a heartbeat before any live replica may take it over",
        option="--lease", at_least=0.1,
    )
    heartbeat: float | None = setting(None, "seconds between heartbeats of a held run; none: a third of the lease", at_least=0.01)
    max_deliveries: int = setting(5, "deliveries of one run (its first included) before it is dead-lettered as failed", at_least=1)
    stream: str = setting("nbmesh:runs", "the Redis stream of runs to do")
    group: str = setting("nbmesh", "the consumer group of the replicas on that stream")
    catalog_channel: str = setting("nbmesh:catalog", "the Redis pub/sub channel replicas announce publishes and unpublishes on")
    dead_letter: str = setting("nbmesh:runs:dead", "the Redis stream dead-lettered runs are moved to")
    block: float = setting(
        1.0, "seconds a free worker's read waits for a new run before it looks again, for lapsed runs first", at_least=0.001
    )
    timeout: float = setting(2.0, "seconds to connect to Redis and to wait for one answer (short: an outage is a prompt 503)", at_least=0.01)
    retry: Backoff = setting(factory=lambda: Backoff(0.2, 5.0), doc="waits between retried Redis calls while it is down")

    def heartbeat_interval(self) -> float:
        return self.heartbeat or self.lease / 3


@dataclass(frozen=True)
class HttpSettings:
    """Where the HTTP API listens."""

    host: str = setting(DEFAULT_HOST, "address to listen on (a token is required unless it is loopback)", option="--host")
    port: int = setting(DEFAULT_PORT, "port to listen on", option="--port", at_least=0)


@dataclass(frozen=True)
class Settings:
    """The whole tree: ``Settings(pool=PoolSettings(size=4), runs=RunSettings(grace=10))``."""

    pool: PoolSettings = setting(factory=PoolSettings, doc="kernels")
    runs: RunSettings = setting(factory=RunSettings, doc="runs")
    store: StoreSettings = setting(factory=StoreSettings, doc="the store")
    triggers: TriggerSettings = setting(factory=TriggerSettings, doc="schedules")
    queue: QueueSettings = setting(factory=QueueSettings, doc="the run queue")
    http: HttpSettings = setting(factory=HttpSettings, doc="the HTTP API")

    def override(self, assignments: Iterable[str]) -> Settings:
        """This tree with each ``section.name=value`` (``--set``) applied; a bad one is InvalidRequest."""
        tree = self
        for assignment in assignments:
            path, sep, text = assignment.partition("=")
            if not sep:
                raise InvalidRequest(f"--set {assignment!r}: write SECTION.NAME=VALUE, like pool.start_timeout=90.")
            tree = _replace(tree, path.strip().split("."), text.strip(), path.strip())
        return tree

    def checked(self) -> Settings:
        """This tree, once every setting is at least its least value; else InvalidRequest naming each one."""
        problems = [
            f"{meta['option'] or name} must be at least {meta['at_least']:g}, got {value}."
            for name, value, meta in _leaves(self)
            if meta["at_least"] is not None and value is not None and value < meta["at_least"]
        ]
        if problems:
            raise InvalidRequest(" ".join(problems))
        return self


T = TypeVar("T")


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Every setting below ``tree`` (a dataclass instance): its dotted name, value and metadata."""
    for f in dataclasses.fields(tree):
        value = getattr(tree, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, f.metadata


def reference() -> str:
    """The Markdown table of every setting (docs/reference/settings.md holds it, checked by a test)."""
    rows = ["| setting | `serve` option | default | meaning |", "| --- | --- | --- | --- |"]
    for name, value, meta in _leaves(Settings()):
        option = f"`{meta['option']}`" if meta["option"] else ""
        rows.append(f"| `{name}` | {option} | {meta['shown'] or _shown(value)} | {meta['doc']} |")
    return "\n".join(rows) + "\n"


def _shown(value: Any) -> str:
    if value is None or value == ():
        return "none"
    if isinstance(value, int) and not isinstance(value, bool) and value >= MIB and value % MIB == 0:
        return f"{value // MIB} MiB"
    return f"`{value}`" if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def least(name: str) -> float | None:
    """The least value of the setting named ``name`` (dotted), for the ``serve`` option that sets it."""
    return next(meta["at_least"] for leaf, _, meta in _leaves(Settings()) if leaf == name)


def _replace(tree: T, path: list[str], text: str, name: str) -> T:
    key, rest = path[0], path[1:]
    if key not in {f.name for f in dataclasses.fields(tree)}:  # type: ignore[arg-type]
        known = ", ".join(n for n, _, _ in _leaves(Settings()))
        raise InvalidRequest(f"--set {name}: there is no such setting.", [f"settings: {known}"])
    current = getattr(tree, key)
    if dataclasses.is_dataclass(current) != bool(rest):
        raise InvalidRequest(f"--set {name}: there is no such setting; name a setting, like pool.start_timeout.")
    value = _replace(current, rest, text, name) if rest else _parse(typing.get_type_hints(type(tree))[key], text, name)
    return dataclasses.replace(tree, **{key: value})  # type: ignore[type-var]


def _parse(hint: Any, text: str, name: str) -> Any:
    """``text`` as a value of type ``hint``: int, float, str, bool, tuple[str, ...], or one of these or None."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in options and text.lower() in ("", "none"):
        return None
    kind = next(o for o in options if o is not type(None))
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if typing.get_origin(kind) is tuple:
            return tuple(part.strip() for part in text.split(",") if part.strip())
        value = kind(text)
    except ValueError:
        raise InvalidRequest(f"--set {name}: {text!r} is not {_describe(kind)}.") from None
    if kind in (int, float) and not (math.isfinite(value) and value >= 0):
        raise InvalidRequest(f"--set {name}: {text!r} is not a finite number of at least 0.")
    return value


def _describe(kind: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false"}.get(kind, "a value of this setting")
