"""Trigger rules (docs/triggers-and-stores.md): pure functions, no I/O, no clock of their own.

The shape of ``metadata.nbmesh.triggers`` and its validation at publish time
(including loops across the catalog), the cron due times of schedules, the id
of a schedule, and the mapping of ``"$event.a.b"`` parameters from an event's
payload. The engine that applies them is :mod:`.engine`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from ..errors import InvalidParameters, quoted
from .lineage import product_topic, upstream_of

if TYPE_CHECKING:
    from ..model.parameters import Parameter

# Matched whole (fullmatch) and as ASCII, like product names: "$" alone lets "topic\n" through.
TOPIC = r"[a-z0-9][a-z0-9._-]{0,127}"
TOPIC_RE = re.compile(f"^{TOPIC}$", re.ASCII)
_INDEX_RE = re.compile(r"0|[1-9][0-9]{0,8}", re.ASCII)  # a list index in "$event.rows.0"
EVENT_REF = "$event."


def is_topic(value: Any) -> bool:
    return isinstance(value, str) and TOPIC_RE.fullmatch(value) is not None


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
            if not is_topic(topic):
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
        elif not param.accepts(value):
            problems.append({"cell": None, "message": f"{where}: parameter {key!r} must be {param.type_text}."})
    return problems


# loops -------------------------------------------------------------------------------------
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
        match = product_topic(topic)
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
def latest_due(expr: str, tz: str, now: datetime) -> datetime:
    """The newest due time of ``expr`` at or before ``now``, in UTC."""
    local = now.astimezone(ZoneInfo(tz))
    # Compared in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring ``fold``,
    # so on a fall-back day the second 02:30 would pass for "before" 02:45 of the first hour.
    prev = croniter(expr, local).get_prev(datetime).astimezone(timezone.utc)
    nxt = croniter(expr, prev.astimezone(local.tzinfo)).get_next(datetime).astimezone(timezone.utc)
    return nxt if nxt <= now else prev


def schedule_id(trig: dict[str, Any]) -> str:
    """A stable id for a schedule trigger: republishing it unchanged keeps its claimed due times."""
    canonical = json.dumps(
        {"schedule": trig["schedule"], "timezone": trig.get("timezone", "UTC"), "parameters": trig.get("parameters", {})},
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
