"""``GET /openapi.json``: the OpenAPI 3.1 document of the runtime, generated.

Its reference: docs/reference/http-api.md, "`GET /openapi.json`".

Nothing in it is written a second time: the paths are those of ``routes.ROUTES``,
each method described by the :class:`~.operations.Operation` its handler declares;
the component schemas are generated from the record types the handlers return
(:mod:`kernel_runtime.model.schema`); the path parameters' patterns are the ones
names, run ids and topics are checked with. Each published product adds one
typed invoke path, ``POST /api/products/<name>/invoke``, whose request body is the
product's parameter schema with the runtime's value bounds; a caller sees the
invoke paths of the products it may read. The document depends only on which
version of each product is the newest and on who asks, so it is built once per
catalog state and caller and served from cache until that changes.

``python -m kernel_runtime.http.openapi [FILE]`` writes the document of an empty
catalog: the JupyterLab extension's TypeScript types are generated from it.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import ErrorBody
from ..kernels.sandbox import Containment
from ..kernels.state import PoolState
from ..model.product import NAME, VERSION, ProductSpec
from ..model.records import RUN_ID, Notebook, ParameterInfo, ParameterValues, Product, Run, RunTrigger
from ..model.run_errors import RunError
from ..model.schema import components, json_schema
from ..runtime.service import Health
from ..triggers.lineage import Lineage
from ..triggers.rules import TOPIC
from ..version import __version__
from . import routes
from .operations import Operation, operation_of

if TYPE_CHECKING:
    from ..runtime.catalog import Catalog
    from .access import Principal

# The named schemas; any other record type a route answers with is written out where it is used.
COMPONENTS: dict[str, Any] = {
    "Error": ErrorBody,
    "RunError": RunError,
    "RunTrigger": RunTrigger,
    "Run": Run,
    "Parameter": ParameterInfo,
    "Product": Product,
    "Notebook": Notebook,
    "Parameters": ParameterValues,
    "Health": Health,
    "PoolState": PoolState,
    "Containment": Containment,
    "Lineage": Lineage,
}

ERRORS = {
    400: "Malformed name, query or body.",
    401: "Missing or unknown bearer token (when the runtime has principals).",
    403: "The caller has no right to this product, topic or change; or, on a runtime without a token, "
    "a Host or Origin a web page elsewhere would send.",
    404: "No such product, version or run.",
    406: "The result has no form in the format asked for (only a table has CSV, Parquet and Arrow forms), "
    "or the format is unknown.",
    409: "Other publishes of the same product raced this one; publish again.",
    413: "Body larger than its limit.",
    415: "A change without Content-Type: application/json (multipart/form-data for a publish), on a runtime without a token.",
    422: "Invalid notebook or parameters; details list every problem.",
    503: "Kernels, queue or store unavailable right now; try again later.",
}

PATH_PARAMETERS = {
    "name": ("Product name, or name@version.", f"^{NAME}(@{VERSION})?$"),
    "run_id": ("Run id.", f"^{RUN_ID}$"),
    "topic": ("Event topic.", f"^{TOPIC}$"),
}


def _schema(shape: Any) -> dict[str, Any]:
    return shape if isinstance(shape, dict) else json_schema(shape, COMPONENTS)


def _answer(shape: Any, description: str, media: str = "application/json") -> dict[str, Any]:
    if shape is None:
        return {"description": description}
    return {"description": description, "content": {media: {"schema": _schema(shape)}}}


def _body(shape: Any, required: bool, forms: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _schema(shape)}, **{
        media: {"schema": schema} for media, schema in (forms or {}).items()
    }}}


def describe(op: Operation) -> dict[str, Any]:
    """The OpenAPI operation object of ``op``."""
    out: dict[str, Any] = {"summary": op.summary, "operationId": op.operation_id}
    if op.public:
        out["security"] = []
    if op.query:
        out["parameters"] = list(op.query)
    if op.body is not None:
        out["requestBody"] = _body(op.body, op.body_required, op.forms)
    responses = {str(status): _answer(shape, text, op.media) for status, (shape, text) in sorted(op.answers.items())}
    if op.alternatives:
        responses["200"]["content"].update({media: {"schema": schema} for media, schema in op.alternatives.items()})
    for status in sorted({*op.errors, 403} if op.public else {*op.errors, 401, 403}):
        responses[str(status)] = _answer(ErrorBody, ERRORS[status])
    responses["default"] = _answer(ErrorBody, "Any other error, with the error body.")
    out["responses"] = responses
    return out


def route_paths() -> dict[str, Any]:
    """The path items of every route, with the path parameters its path names."""
    paths: dict[str, Any] = {}
    for route in routes.ROUTES:
        item = paths.setdefault(route.path, {})
        if route.param_convertors:
            item["parameters"] = [
                {"name": name, "in": "path", "required": True, "description": PATH_PARAMETERS[name][0],
                 "schema": {"type": "string", "pattern": PATH_PARAMETERS[name][1]}}
                for name in route.param_convertors
            ]
        for method in sorted(route.methods - {"HEAD"}):
            item[method.lower()] = describe(operation_of(route))
    return paths


ROUTE_PATHS = route_paths()
SCHEMAS = components(COMPONENTS)


def invoke_path(spec: ProductSpec, version: int) -> dict[str, Any]:
    """The typed invoke of one product: the generic invoke's answers, the product's parameters as its body."""
    post = describe(routes.invoke.operation)
    post.update(
        summary=spec.title or f"Invoke {spec.name}",
        description=spec.description,
        operationId="invoke_" + spec.name.replace("-", "_"),
        tags=["products"],
        requestBody=_body(spec.parameters_schema(), False),  # the schema the runtime enforces, bounds included
    )
    post["x-nbmesh-version"] = version
    return {"post": post}


def build(catalog: "Catalog | None", visible: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """The document; without a catalog, that of an empty one."""
    paths = dict(ROUTE_PATHS)
    for product in catalog.products(visible) if catalog is not None else []:
        paths[f"/api/products/{product['name']}/invoke"] = invoke_path(catalog.latest_spec(product["name"]), product["version"])
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


if __name__ == "__main__":
    text = json.dumps(build(None), indent=2) + "\n"
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
