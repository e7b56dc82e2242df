"""Triggers: when a product runs besides a direct request (CONTRACT section 5).

This module owns the trigger rules: the shape of ``metadata.nbmesh.triggers``
and its validation at publish time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .paramtypes import is_type

if TYPE_CHECKING:
    from .product import Parameter

TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
EVENT_REF = "$event."


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
            if not isinstance(topic, str) or not TOPIC_RE.match(topic):
                problems.append({"cell": None, "message": f"{where}: topic {topic!r} must match {TOPIC_RE.pattern}."})
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
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        problems.append({"cell": None, "message": f"{where}: unknown timezone {tz!r}."})
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
