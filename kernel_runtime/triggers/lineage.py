"""The product graph that event subscriptions draw: upstream, downstream, the lineage graph. Pure.

A subscription to ``product.{name}.succeeded`` or ``.failed`` is an edge from
``name`` to the subscriber. ``subscriptions`` maps each published product to
the trigger list of its newest version (the one triggers run).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

PRODUCT_TOPIC_RE = re.compile(r"^product\.([a-z0-9][a-z0-9-]{0,62})\.(?:succeeded|failed)$", re.ASCII)


def product_topic(value: Any) -> re.Match | None:
    """The match of a topic about a product's finished runs (group 1 is the product), else None."""
    return PRODUCT_TOPIC_RE.fullmatch(value) if isinstance(value, str) else None


def upstream_of(trigger_list: Any) -> list[str]:
    """The products whose finished runs this trigger list subscribes to."""
    names = set()
    for trig in trigger_list if isinstance(trigger_list, (list, tuple)) else []:
        match = product_topic(trig.get("event") if isinstance(trig, dict) else None)
        if match:
            names.add(match.group(1))
    return sorted(names)


def downstream_of(name: str, subscriptions: Mapping[str, Any]) -> list[str]:
    return sorted(other for other, trigs in subscriptions.items() if name in upstream_of(trigs))


def lineage_graph(subscriptions: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The product graph: an edge ``from`` → ``to`` for each subscription to ``product.{from}.*``."""
    edges = []
    for name in sorted(subscriptions):
        for trig in subscriptions[name]:
            match = product_topic(trig.get("event"))
            if match:
                edges.append({"from": match.group(1), "to": name, "topic": trig["event"]})
    referenced = {e["from"] for e in edges} - set(subscriptions)
    nodes = [{"name": n, "published": True} for n in sorted(subscriptions)]
    nodes += [{"name": n, "published": False} for n in sorted(referenced)]
    return {"nodes": nodes, "edges": edges}
