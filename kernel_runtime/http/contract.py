"""``GET /api/products/{name}/contract``: the product's data contract as an Open Data Contract Standard
v3.0.2 document, in YAML (docs/reference/http-api.md, "Data contract").

Built on each request from what the catalog knows, never stored: the product's name, version, title,
description and owner (as the team's owner); its schema from ``output_schema`` when that describes
records (an object, or an array of objects, with ``properties``), else from the columns of the last
succeeded run of that version (types read from the values; nothing is claimed required from a
sample); one server of type ``api`` whose ``location`` is the product's result URL, absolute, built
from the request's base URL; and the service levels it has: ``frequency`` from its schedules,
``latency`` from its ``cache_ttl`` (a cached answer may be that many seconds old).
``datacontract lint`` accepts it and ``datacontract test`` passes against the running product.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..model.records import Product

API_VERSION = "v3.0.2"
# JSON Schema type -> ODCS logicalType
_LOGICAL = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "object": "object", "array": "array"}


def contract_yaml(product: Product, location: str, sample: Any) -> bytes:
    """The contract of ``product`` served at ``location``; ``sample`` is its last result (None if none)."""
    name = product["name"]
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": f"urn:nbmesh:product:{name}",
        "name": name,
        "version": str(product["version"]),
        "status": "active",
        "description": {
            "purpose": product["description"] or product["title"] or f"The data product {name}.",
            "usage": f"GET {location} with the parameters as the query string; ?format=csv, parquet or arrow for a table.",
        },
    }
    if product["owner"]:
        document["team"] = [{"username": product["owner"], "role": "owner"}]
    properties = _from_schema(product["output_schema"])
    if properties is None:
        properties = _from_sample(sample)
    document["schema"] = [{"name": name, "physicalName": name, "logicalType": "object", "properties": properties}]
    document["servers"] = [{"server": "nbmesh", "type": "api", "location": location}]
    sla = _service_levels(product)
    if sla:
        document["slaProperties"] = sla
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()


def _from_schema(schema: Any) -> list[dict[str, Any]] | None:
    """The properties of the records ``output_schema`` describes; None if it describes no records."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        schema = schema["items"]
    fields = schema.get("properties")
    if not isinstance(fields, dict) or not fields:
        return None
    required = set(schema.get("required") or [])
    return [_property(key, spec if isinstance(spec, dict) else {}, key in required) for key, spec in fields.items()]


def _property(name: str, spec: dict[str, Any], required: bool) -> dict[str, Any]:
    prop: dict[str, Any] = {"name": name}
    types = spec.get("type")
    types = [t for t in (types if isinstance(types, list) else [types]) if t in _LOGICAL]
    if len(types) == 1 or set(types) == {"integer", "number"}:
        prop["logicalType"] = "date" if spec.get("format") == "date" else _LOGICAL["number" if len(types) > 1 else types[0]]
    if isinstance(spec.get("description"), str):
        prop["description"] = spec["description"]
    if required:
        prop["required"] = True
    return prop


def _from_sample(sample: Any) -> list[dict[str, Any]]:
    """Columns of a list of records (or of one record), typed by their non-null values."""
    rows = sample if isinstance(sample, list) else [sample]
    rows = [row for row in rows if isinstance(row, dict)]
    seen: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            kinds = seen.setdefault(key, set())
            if value is not None:
                kinds.add(_kind(value))
    columns = []
    for key, kinds in seen.items():
        column: dict[str, Any] = {"name": key}
        if kinds == {"integer", "number"}:
            kinds = {"number"}
        if len(kinds) == 1:
            column["logicalType"] = kinds.pop()
        columns.append(column)
    return columns


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list) else "string"


def _service_levels(product: Product) -> list[dict[str, Any]]:
    levels: list[dict[str, Any]] = []
    schedules = [
        f"{t['schedule']} ({t['timezone']})" if t.get("timezone") else t["schedule"] for t in product["triggers"] if "schedule" in t
    ]
    if schedules:
        levels.append({"property": "frequency", "value": "; ".join(schedules), "unit": "cron", "driver": "operational"})
    if product["cache_ttl"]:
        levels.append({"property": "latency", "value": product["cache_ttl"], "unit": "s", "driver": "operational"})
    return levels
