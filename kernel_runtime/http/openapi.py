"""``GET /openapi.json``: an OpenAPI 3.1 description of the runtime (docs/reference/http-api.md, "`GET /openapi.json`").

The fixed routes are described once, here; each published product adds one
typed invoke path, ``POST /api/products/<name>/invoke``, whose request body
is the product's parameter schema with the runtime's value bounds; a caller
sees the invoke paths of the products it may read. The document depends only
on which version of each product is the newest and on who asks, so it is
built once per catalog state and caller and served from cache until that
changes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ERROR_TYPE
from ..model.product import NAME_RE, ProductSpec
from ..model.records import FAILED, QUEUED, RUNNING, SUCCEEDED, TIMED_OUT
from ..model.run_errors import ename_schema
from ..version import __version__

if TYPE_CHECKING:
    from ..runtime.catalog import Catalog
    from .access import Principal

REF_PATTERN = NAME_RE.pattern.removesuffix("$") + r"(@[1-9][0-9]*)?$"
TOPIC_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


ERRORS = {
    "400": _error("Malformed name, query or body."),
    "401": _error("Missing or unknown bearer token (when the runtime has principals)."),
    "403": _error(
        "The caller has no right to this product, topic or change; or, on a runtime without a token, "
        "a Host or Origin a web page elsewhere would send."
    ),
    "404": _error("No such product, version or run."),
    "413": _error("Body larger than its limit."),
    "415": _error("A change without Content-Type: application/json (multipart/form-data for a publish), on a runtime without a token."),
    "422": _error("Invalid notebook or parameters; details list every problem."),
    "503": _error("Kernels, queue or store unavailable right now; try again later."),
    "default": _error("Any other error, with the error body."),
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: ERRORS[code] for code in (*codes, "401", "403", "default")}


def _path_param(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string", "pattern": pattern}}


PRODUCT_REF = _path_param("name", REF_PATTERN, "Product name, or name@version.")
RUN_ID = _path_param("run_id", r"^[0-9a-f]{32}$", "Run id.")
TOPIC = _path_param("topic", TOPIC_PATTERN, "Event topic.")

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "type"],
        "properties": {"error": {"type": "string"}, "details": {"type": "array"}, "type": ERROR_TYPE},
    },
    "RunError": {
        "type": "object",
        "required": ["ename", "evalue", "traceback"],
        "properties": {"ename": ename_schema(), "evalue": {"type": "string"}, "traceback": {"type": "array", "items": {"type": "string"}}},
    },
    "Run": {
        "type": "object",
        "required": ["run_id", "product", "version", "parameters", "status", "trigger"],
        "properties": {
            "run_id": {"type": "string"},
            "product": {"type": "string"},
            "version": {"type": "integer"},
            "parameters": {"type": "object"},
            "status": {"enum": [QUEUED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT]},
            "result": {},
            "error": {"anyOf": [_ref("RunError"), {"type": "null"}]},
            "trigger": {"type": "object"},
            "created_at": {"type": "string"},
            "started_at": {"type": ["string", "null"]},
            "finished_at": {"type": ["string", "null"]},
            "duration_ms": {"type": ["number", "null"]},
        },
    },
    "Parameter": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": ["int", "float", "str", "bool", "list", "dict"]}, "default": {}, "help": {"type": "string"}},
    },
    "Product": {
        "type": "object",
        "required": ["name", "version", "versions", "title", "description", "owner", "parameters", "triggers", "published_at"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "versions": {"type": "array", "items": {"type": "integer"}},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "owner": {"type": "string"},
            "parameters": {"type": "object", "additionalProperties": _ref("Parameter")},
            "triggers": {"type": "array"},
            "published_at": {"type": "string"},
        },
    },
    "Notebook": {"type": "object", "description": "An nbformat 4 notebook.", "required": ["cells", "metadata", "nbformat", "nbformat_minor"]},
    "Parameters": {"type": "object", "description": "Parameter values by name; omitted ones take their defaults."},
}

RUN_ANSWERS = {
    "200": _json(_ref("Run"), "The run succeeded; `result` holds its value."),
    "500": _json(_ref("Run"), "The run failed; `error` says why."),
    "504": _json(_ref("Run"), "The run timed out."),
}

FIXED_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness and pool state",
            "operationId": "health",
            "security": [],
            "responses": {"200": _json({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}, "Alive.")},
        }
    },
    "/api/products": {
        "get": {
            "summary": "The catalog",
            "operationId": "listProducts",
            "responses": {
                "200": _json({"type": "object", "required": ["products"], "properties": {"products": {"type": "array", "items": _ref("Product")}}}, "Every product."),
                **_errors(),
            },
        }
    },
    "/api/products/{name}": {
        "parameters": [PRODUCT_REF],
        "get": {"summary": "One product", "operationId": "getProduct", "responses": {"200": _json(_ref("Product"), "The product."), **_errors("400", "404")}},
        "put": {
            "summary": "Publish a notebook as the product's next version",
            "operationId": "publishProduct",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Notebook")}}},
            "responses": {"201": _json(_ref("Product"), "Published."), **_errors("400", "413", "415", "422", "503")},
        },
        "delete": {
            "summary": "Unpublish (its runs stay readable)",
            "operationId": "unpublishProduct",
            "responses": {"204": {"description": "Unpublished."}, **_errors("400", "404", "415")},
        },
    },
    "/api/products/{name}/invoke": {
        "parameters": [PRODUCT_REF],
        "post": {
            "summary": "Run now and wait",
            "operationId": "invoke",
            "requestBody": {"content": {"application/json": {"schema": _ref("Parameters")}}},
            "responses": {**RUN_ANSWERS, **_errors("400", "404", "413", "415", "422", "503")},
        },
    },
    "/api/products/{name}/runs": {
        "parameters": [PRODUCT_REF],
        "post": {
            "summary": "Run in the background",
            "operationId": "submitRun",
            "requestBody": {"content": {"application/json": {"schema": _ref("Parameters")}}},
            "responses": {
                "202": _json({"type": "object", "required": ["run_id", "status"], "properties": {"run_id": {"type": "string"}, "status": {"const": QUEUED}}}, "Queued."),
                **_errors("400", "404", "413", "415", "422", "503"),
            },
        },
        "get": {
            "summary": "The product's runs, newest first",
            "operationId": "listRuns",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}],
            "responses": {
                "200": _json({"type": "object", "required": ["runs"], "properties": {"runs": {"type": "array", "items": _ref("Run")}}}, "Runs."),
                **_errors("400", "404"),
            },
        },
    },
    "/api/products/{name}/notebook": {
        "parameters": [PRODUCT_REF],
        "get": {"summary": "The published notebook", "operationId": "productNotebook", "responses": {"200": _json(_ref("Notebook"), "The notebook."), **_errors("400", "404")}},
    },
    "/api/runs/{run_id}": {
        "parameters": [RUN_ID],
        "get": {"summary": "A run", "operationId": "getRun", "responses": {"200": _json(_ref("Run"), "The run."), **_errors("404")}},
    },
    "/api/runs/{run_id}/notebook": {
        "parameters": [RUN_ID],
        "get": {
            "summary": "The executed notebook, once the run is final",
            "operationId": "runNotebook",
            "responses": {"200": _json(_ref("Notebook"), "The executed notebook."), **_errors("404")},
        },
    },
    "/api/events/{topic}": {
        "parameters": [TOPIC],
        "post": {
            "summary": "Publish an event; subscribed products run",
            "operationId": "publishEvent",
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "202": _json(
                    {"type": "object", "required": ["topic", "runs"], "properties": {"topic": {"type": "string"}, "runs": {"type": "array", "items": {"type": "string"}}}},
                    "Published; the runs it started.",
                ),
                **_errors("400", "413", "415", "422", "503"),
            },
        },
    },
    "/api/lineage": {
        "get": {
            "summary": "The product graph: which products' runs trigger which",
            "operationId": "lineage",
            "responses": {
                "200": _json({"type": "object", "required": ["nodes", "edges"], "properties": {"nodes": {"type": "array"}, "edges": {"type": "array"}}}, "Nodes and edges."),
                **_errors(),
            },
        }
    },
    "/openapi.json": {
        "get": {"summary": "This document", "operationId": "openapi", "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1."), **_errors()}},
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "responses": {"200": {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}}, **_errors()},
        }
    },
}


def invoke_path(spec: ProductSpec, product: dict[str, Any]) -> dict[str, Any]:
    body = spec.parameters_schema()  # the schema the runtime enforces, bounds included
    summary = spec.title or f"Invoke {spec.name}"
    return {
        "post": {
            "summary": summary,
            "description": spec.description,
            "operationId": "invoke_" + spec.name.replace("-", "_"),
            "tags": ["products"],
            "x-nbmesh-version": product["version"],
            "requestBody": {"content": {"application/json": {"schema": body}}},
            "responses": {**RUN_ANSWERS, **_errors("400", "413", "415", "422", "503")},
        }
    }


def build(catalog: "Catalog", visible: Callable[[str], bool] | None = None) -> dict[str, Any]:
    paths = dict(FIXED_PATHS)
    for product in catalog.products(visible):
        paths[f"/api/products/{product['name']}/invoke"] = invoke_path(catalog.latest_spec(product["name"]), product)
    return {
        "openapi": "3.1.0",
        "info": {"title": "nbmesh", "version": __version__, "description": "Notebooks served as data products."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of `--token` or of a principal of `--access` (docs/security.md); "
                    "not needed on a runtime started without either.",
                }
            },
        },
        "security": [{"bearer": []}],
    }


class OpenAPI:
    """The document, cached per catalog state (which version of each product is newest) and caller."""

    def __init__(self, catalog: "Catalog") -> None:
        self.catalog = catalog
        self._key: tuple[tuple[str, int], ...] | None = None
        self._bodies: dict["Principal", bytes] = {}

    def body(self, caller: "Principal", visible: Callable[[str], bool]) -> bytes:
        """``visible`` says which products ``caller`` may read; the principals are few and fixed."""
        key = self.catalog.state()
        if key != self._key:
            self._bodies.clear()
            self._key = key
        if caller not in self._bodies:
            self._bodies[caller] = json.dumps(build(self.catalog, None if caller.admin else visible)).encode()
        return self._bodies[caller]
