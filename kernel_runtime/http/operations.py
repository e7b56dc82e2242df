"""What each route of the API answers: the :class:`Operation` its handler declares with :func:`operation`.

One place per route: the decorator on the handler gives its OpenAPI id and summary, the shape of
its request body and of each answer, and the error statuses it may give. Shapes are the record
types the handler returns (a TypedDict or dataclass, turned into JSON Schema by
:mod:`kernel_runtime.model.schema`), a JSON Schema dict, or None for an answer without a body.
:mod:`.openapi` builds the document from ``routes.ROUTES`` and these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from starlette.routing import Route

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    answers: Mapping[int, tuple[Any, str]]  # status -> (shape, description)
    errors: tuple[int, ...] = ()  # error statuses beyond those every route may give (401, 403)
    body: Any = None  # the shape of the JSON request body, if it takes one
    body_required: bool = False  # an empty body is not taken for {}
    forms: Mapping[str, Any] = field(default_factory=dict)  # other media types the body may have: media -> JSON Schema
    query: tuple[dict[str, Any], ...] = ()  # OpenAPI query parameters
    media: str = "application/json"  # of the answers
    alternatives: Mapping[str, Any] = field(default_factory=dict)  # more media of the 200 answer, by content negotiation
    public: bool = False  # answered without a token


def operation(operation_id: str, summary: str, answers: Mapping[int, tuple[Any, str]], **more: Any) -> Callable[[F], F]:
    """Declare what the decorated handler answers (the fields of :class:`Operation`)."""

    def attach(handler: F) -> F:
        handler.operation = Operation(operation_id, summary, answers, **more)  # type: ignore[attr-defined]
        return handler

    return attach


def operation_of(route: Route) -> Operation:
    """The operation a route's handler declares; AttributeError for a handler that declares none."""
    return route.endpoint.operation  # type: ignore[attr-defined]
