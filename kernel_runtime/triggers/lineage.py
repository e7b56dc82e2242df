"""The product graph that event subscriptions draw: upstream, downstream, the lineage graph. Pure.

A subscription to ``product.{name}.succeeded`` or ``.failed`` is an edge from
``name`` to the subscriber. ``subscriptions`` maps each published product to
the trigger list of its newest version (the one triggers run).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, TypedDict

from ..model.product import NAME
from ..model.records import FAILED, SUCCEEDED

PRODUCT_TOPIC_RE = re.compile(rf"^product\.({NAME})\.(?:{SUCCEEDED}|{FAILED})$", re.ASCII)


class LineageNode(TypedDict):
    """A product of the graph; ``published`` is false for one that is subscribed to but not published."""

    name: str
    published: bool


# "from" is a keyword, hence the functional form.
LineageEdge = TypedDict("LineageEdge", {"from": str, "to": str, "topic": str})


class Lineage(TypedDict):
    """The product graph: an edge from a product to each product its finished runs trigger."""

    nodes: list[LineageNode]
    edges: list[LineageEdge]


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


def lineage_graph(subscriptions: Mapping[str, Any]) -> Lineage:
    """The product graph: an edge ``from`` → ``to`` for each subscription to ``product.{from}.*``."""
    edges = []
    for name in sorted(subscriptions):
        for trig in subscriptions[name]:
            match = product_topic(trig.get("event"))
            if match:
                edges.append(LineageEdge({"from": match.group(1), "to": name, "topic": trig["event"]}))
    referenced = {e["from"] for e in edges} - set(subscriptions)
    nodes = [LineageNode(name=n, published=True) for n in sorted(subscriptions)]
    nodes += [LineageNode(name=n, published=False) for n in sorted(referenced)]
    return Lineage(nodes=nodes, edges=edges)
