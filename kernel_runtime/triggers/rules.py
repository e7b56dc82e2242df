"""Triggers: when a product runs besides a direct request (CONTRACT section 5).

This module owns the trigger rules: the shape of ``metadata.nbmesh.triggers``
and its validation at publish time (including loops across the catalog), the
lineage graph the event subscriptions draw, and the engine that turns due
schedules and events into ordinary background runs of the service.

A schedule's due time is claimed with an exclusive create in the store
(``schedules/{product}/{schedule-id}/{due}``) before it runs, so replicas
sharing a store run it once between them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from ..errors import InvalidParameters, InvalidRequest, NbmeshError, NotFound, QueueFull, quoted
from ..model.parameters import is_type
from ..model.records import SUCCEEDED, Run

if TYPE_CHECKING:
    from ..model.product import Parameter
    from ..runtime.service import Service

log = logging.getLogger("nbmesh.triggers")

# Matched whole (fullmatch) and as ASCII, like product names: "$" alone lets "topic\n" through.
TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$", re.ASCII)
PRODUCT_TOPIC_RE = re.compile(r"^product\.([a-z0-9][a-z0-9-]{0,62})\.(?:succeeded|failed)$", re.ASCII)
_INDEX_RE = re.compile(r"0|[1-9][0-9]{0,8}", re.ASCII)  # a list index in "$event.rows.0"
EVENT_REF = "$event."


def _is_topic(value: Any) -> bool:
    return isinstance(value, str) and TOPIC_RE.fullmatch(value) is not None


def _product_topic(value: Any) -> re.Match | None:
    return PRODUCT_TOPIC_RE.fullmatch(value) if isinstance(value, str) else None


def check_triggers(raw: Any, product: str, parameters: dict[str, "Parameter"]) -> list[dict[str, Any]]:
    """Every problem with a product's trigger list, as publish problems."""
    if not isinstance(raw, list):
        return [{"cell": None, "message": "metadata.nbmesh.triggers must be a list."}]
    problems: list[dict[str, Any]] = []
    for i, trig in enumerate(raw):
        where = f"Trigger {i}"
        if not isinstance(trig, dict):
            problems.append({"cell": None, "message": f"{where} must be an object."})
            continue
        kinds = [k for k in ("schedule", "event") if k in trig]
        if len(kinds) != 1:
            problems.append({"cell": None, "message": f"{where} needs exactly one of 'schedule' or 'event'."})
            continue
        if kinds[0] == "schedule":
            problems.extend(_check_schedule(where, trig))
        else:
            topic = trig["event"]
            if not _is_topic(topic):
                problems.append({"cell": None, "message": f"{where}: topic {quoted(topic)} must match {TOPIC_RE.pattern} (ASCII)."})
            elif topic in (f"product.{product}.succeeded", f"product.{product}.failed"):
                problems.append({"cell": None, "message": f"{where}: a product cannot trigger on its own runs ({topic})."})
        problems.extend(_check_parameters(where, trig.get("parameters", {}), parameters, kinds[0] == "event"))
    return problems


def _check_schedule(where: str, trig: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    expr = trig["schedule"]
    if not isinstance(expr, str) or len(expr.split()) != 5 or not croniter.is_valid(expr):
        problems.append({"cell": None, "message": f"{where}: {expr!r} is not a five-field cron expression."})
    tz = trig.get("timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a name too long for a file
        problems.append({"cell": None, "message": f"{where}: unknown timezone {quoted(tz)}."})
    return problems


def _check_parameters(
    where: str, values: Any, parameters: dict[str, "Parameter"], is_event: bool
) -> list[dict[str, Any]]:
    if not isinstance(values, dict):
        return [{"cell": None, "message": f"{where}: parameters must be an object."}]
    problems = []
    for key, value in values.items():
        param = parameters.get(key)
        if param is None:
            problems.append({"cell": None, "message": f"{where}: unknown parameter {key!r}."})
        elif isinstance(value, str) and value.startswith(EVENT_REF):
            if not is_event:
                problems.append({"cell": None, "message": f"{where}: {value!r} refers to an event, but this is a schedule."})
        elif not is_type(value, param.type):
            problems.append({"cell": None, "message": f"{where}: parameter {key!r} must be {param.type}."})
    return problems


# lineage -------------------------------------------------------------------------------
def upstream_of(trigger_list: Any) -> list[str]:
    """The products whose finished runs this trigger list subscribes to."""
    names = set()
    for trig in trigger_list if isinstance(trigger_list, (list, tuple)) else []:
        match = _product_topic(trig.get("event") if isinstance(trig, dict) else None)
        if match:
            names.add(match.group(1))
    return sorted(names)


def newest_versions(catalog: Mapping[str, Any]) -> list[tuple[str, int, tuple[dict[str, Any], ...]]]:
    """(name, version, triggers) of each product's newest version, the one triggers run.

    A version whose spec is still loading (mid-publish) is left out until it is loaded.
    """
    return [
        (name, entry.latest, entry.specs[entry.latest].triggers)
        for name, entry in sorted(catalog.items())
        if entry.latest in entry.specs
    ]


def latest_triggers(catalog: Mapping[str, Any]) -> dict[str, tuple[dict[str, Any], ...]]:
    return {name: trigs for name, _, trigs in newest_versions(catalog)}


def downstream_of(name: str, subscriptions: Mapping[str, Any]) -> list[str]:
    return sorted(other for other, trigs in subscriptions.items() if name in upstream_of(trigs))


def lineage(subscriptions: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The product graph: an edge ``from`` → ``to`` for each subscription to ``product.{from}.*``."""
    edges = []
    for name in sorted(subscriptions):
        for trig in subscriptions[name]:
            match = _product_topic(trig.get("event"))
            if match:
                edges.append({"from": match.group(1), "to": name, "topic": trig["event"]})
    referenced = {e["from"] for e in edges} - set(subscriptions)
    nodes = [{"name": n, "published": True} for n in sorted(subscriptions)]
    nodes += [{"name": n, "published": False} for n in sorted(referenced)]
    return {"nodes": nodes, "edges": edges}


def loop_problems(name: str, raw_triggers: Any, subscriptions: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A problem for each trigger of ``name`` that would close a chain back onto ``name``.

    The catalog has no loop before this publish, so every new loop passes through
    ``name`` and closes at one of its own subscriptions: ``X`` feeds ``name`` and
    ``name`` already reaches ``X`` downstream.
    """
    graph = {other: upstream_of(trigs) for other, trigs in subscriptions.items() if other != name}
    graph[name] = upstream_of(raw_triggers)
    downstream: dict[str, list[str]] = {}
    for node, ups in graph.items():
        for up in ups:
            downstream.setdefault(up, []).append(node)
    problems = []
    for i, trig in enumerate(raw_triggers if isinstance(raw_triggers, list) else []):
        topic = trig.get("event") if isinstance(trig, dict) else None
        match = _product_topic(topic)
        if not match or match.group(1) == name:
            continue  # a product's own topics are reported by check_triggers
        path = _path(name, match.group(1), downstream)
        if path is not None:
            chain = " → ".join([*path, name])
            problems.append({"cell": None, "message": f"Trigger {i}: event {topic!r} makes a loop: {chain}."})
    return problems


def _path(start: str, goal: str, downstream: Mapping[str, list[str]]) -> list[str] | None:
    """A shortest chain of subscriptions from ``start`` to ``goal`` (breadth-first), or None."""
    parents: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(downstream.get(node, [])):
                if child in parents:
                    continue
                parents[child] = node
                if child == goal:
                    path, cur = [], child
                    while cur is not None:
                        path.append(cur)
                        cur = parents[cur]
                    return path[::-1]
                nxt.append(child)
        frontier = nxt
    return None


# parameter mapping ---------------------------------------------------------------------
def map_parameters(values: dict[str, Any], payload: Any) -> dict[str, Any]:
    """Trigger parameters with each ``"$event.a.b"`` replaced by that path of the payload."""
    mapped, problems = {}, []
    for key, value in values.items():
        if not (isinstance(value, str) and value.startswith(EVENT_REF)):
            mapped[key] = value
            continue
        found, current = True, payload
        for part in value[len(EVENT_REF) :].split("."):
            if isinstance(current, dict) and part in current:
                current = current[part]
            elif isinstance(current, list) and _INDEX_RE.fullmatch(part) and int(part) < len(current):
                current = current[int(part)]
            else:
                found = False
                break
        if found:
            mapped[key] = current
        else:
            problems.append(
                {"parameter": key, "message": f"Parameter {key!r} maps {value!r}, which the event payload does not have."}
            )
    if problems:
        raise InvalidParameters("The event does not carry every parameter the trigger maps.", problems)
    return mapped


# time ------------------------------------------------------------------------------------
class Clock:
    """The scheduler's notion of now: real UTC time, or the instant written in ``NBMESH_CLOCK_FILE``.

    The file lets tests and demos move time forward by rewriting one line
    instead of waiting for cron minutes to pass.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path if path is not None else os.environ.get("NBMESH_CLOCK_FILE")

    def now(self) -> datetime:
        if self.path:
            try:
                with open(self.path) as fh:
                    text = fh.read().strip()
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
                return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
            except (OSError, ValueError):
                log.warning("NBMESH_CLOCK_FILE %s holds no ISO-8601 time; using the real clock", self.path)
        return datetime.now(timezone.utc)


def latest_due(expr: str, tz: str, now: datetime) -> datetime:
    """The newest due time of ``expr`` at or before ``now``, in UTC."""
    local = now.astimezone(ZoneInfo(tz))
    prev = croniter(expr, local).get_prev(datetime)
    nxt = croniter(expr, prev).get_next(datetime)
    return (nxt if nxt <= local else prev).astimezone(timezone.utc)


def schedule_id(trig: dict[str, Any]) -> str:
    """A stable id for a schedule trigger: republishing it unchanged keeps its claimed due times."""
    canonical = json.dumps(
        {"schedule": trig["schedule"], "timezone": trig.get("timezone", "UTC"), "parameters": trig.get("parameters", {})},
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# the engine --------------------------------------------------------------------------------
class Triggers:
    """Runs products on schedules and events, through the service's background queue."""

    def __init__(self, service: "Service", clock: Clock | None = None, tick: float = 1.0) -> None:
        self.service = service
        self.clock = clock or Clock()
        self.tick_seconds = tick
        self._cursors: dict[tuple[str, str], datetime] = {}
        self._ticked = False
        self._dispatching: set[asyncio.Task] = set()
        service.listeners.append(self._on_run_finished)

    # events -----------------------------------------------------------------------
    def subscribers(self, topic: str) -> list[tuple[str, int, dict[str, Any]]]:
        return [
            (name, version, trig)
            for name, version, trigs in newest_versions(self.service.catalog)
            for trig in trigs
            if trig.get("event") == topic
        ]

    async def emit(self, topic: str, payload: dict[str, Any]) -> list[Run]:
        """Publish an event: queue a run of every subscribed product, or none when the queue has no room."""
        if not _is_topic(topic):
            raise InvalidRequest(f"Invalid event topic {quoted(topic)}: a topic matches {TOPIC_RE.pattern} (ASCII).")
        subs = self.subscribers(topic)
        room = self.service.queue_room()
        if len(subs) > room:
            raise QueueFull(
                f"The background queue cannot take the {len(subs)} run(s) event {topic!r} triggers "
                f"(room for {room}); nothing was queued, try again later."
            )
        return [await self._start(name, version, trig, payload, topic) for name, version, trig in subs]

    async def _start(self, name: str, version: int, trig: dict[str, Any], payload: Any, topic: str) -> Run:
        trigger = {"kind": "event", "topic": topic}
        params = trig.get("parameters", {})
        try:
            params = map_parameters(params, payload)
            return await self.service.submit(f"{name}@{version}", params, trigger)
        except (InvalidParameters, QueueFull, NotFound) as exc:
            return self.service.refuse(name, version, params, trigger, exc)

    def _on_run_finished(self, run: Run) -> None:
        # Called on the invoke path before the answer: defer the catalog scan past it.
        asyncio.get_running_loop().call_soon(self._publish_finished, run)

    def _publish_finished(self, run: Run) -> None:
        outcome = "succeeded" if run.status == SUCCEEDED else "failed"
        payload: dict[str, Any] = {"run_id": run.run_id, "product": run.product, "version": run.version}
        if run.status == SUCCEEDED:
            payload["result"] = run.result
        else:
            payload["error"] = run.error
        topic = f"product.{run.product}.{outcome}"
        if not self.subscribers(topic):
            return
        task = asyncio.get_running_loop().create_task(self._dispatch(topic, payload))
        self._dispatching.add(task)
        task.add_done_callback(self._dispatching.discard)

    async def _dispatch(self, topic: str, payload: dict[str, Any]) -> None:
        # No caller waits for a run's own event, so every subscriber gets a run record:
        # one that cannot be queued is recorded as failed with the reason.
        for name, version, trig in self.subscribers(topic):
            try:
                await self._start(name, version, trig, payload, topic)
            except NbmeshError as exc:
                self.service.refuse(name, version, trig.get("parameters", {}), {"kind": "event", "topic": topic}, exc)

    # schedules ------------------------------------------------------------------------
    async def run_scheduler(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a store outage or a bad record must not stop the schedules
                log.exception("scheduler tick failed; retrying")
            await asyncio.sleep(self.tick_seconds)

    async def tick(self) -> None:
        """Start every schedule whose due time has come, once across all replicas sharing the store."""
        now = self.clock.now()
        live = {
            (name, schedule_id(trig)): (version, trig)
            for name, version, trigs in newest_versions(self.service.catalog)
            for trig in trigs
            if "schedule" in trig
        }
        for key in set(self._cursors) - set(live):
            del self._cursors[key]
        for (name, sid), (version, trig) in live.items():
            due = latest_due(trig["schedule"], trig.get("timezone", "UTC"), now)
            cursor = self._cursors.get((name, sid))
            if cursor is None:
                cursor = await self._initial_cursor(name, sid, due, now)
                self._cursors[(name, sid)] = cursor
            if due <= cursor:
                continue
            # Only the newest missed due time runs: downtime yields one catch-up run, not a flood.
            if await asyncio.to_thread(self.service.repo.claim_schedule, name, sid, due):
                trigger = {"kind": "schedule", "schedule": trig["schedule"], "due": _iso(due)}
                await self._start_scheduled(name, version, trig, trigger)
            self._cursors[(name, sid)] = due
        self._ticked = True

    async def _initial_cursor(self, name: str, sid: str, due: datetime, now: datetime) -> datetime:
        repo = self.service.repo
        if self._ticked:
            # Published while running: the schedule starts from now. Claiming the due time just
            # passed tells replicas (and later restarts) that it predates the schedule.
            await asyncio.to_thread(repo.claim_schedule, name, sid, due)
            return now
        # At startup the last claim, by any replica or an earlier life of this one, is where the
        # schedule stands; a later due time was missed while down and runs once.
        last = await asyncio.to_thread(repo.last_schedule_claim, name, sid)
        return last or now

    async def _start_scheduled(self, name: str, version: int, trig: dict[str, Any], trigger: dict[str, Any]) -> None:
        params = trig.get("parameters", {})
        try:
            await self.service.submit(f"{name}@{version}", params, trigger)
        except NbmeshError as exc:
            self.service.refuse(name, version, params, trigger, exc)

    # lineage ----------------------------------------------------------------------------
    def lineage(self) -> dict[str, list[dict[str, Any]]]:
        return lineage(latest_triggers(self.service.catalog))


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
