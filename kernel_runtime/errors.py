"""The exception tree of nbmesh.

Every error the runtime raises on purpose derives from :class:`NbmeshError`.
The HTTP status each one maps to lives in one table in :mod:`kernel_runtime.http.app`;
this module only says what went wrong. An error body names its class in ``type``
(:data:`BODY_TYPES`), so a client raises the same class without guessing from the status.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict


class ErrorBody(TypedDict):
    """Every error answer of the API: one clear sentence, and details listing every problem when there are several."""

    error: str
    details: NotRequired[list[Any]]
    type: Annotated[str, ERROR_TYPE]  # the error's class (BODY_TYPES): a program need not guess from the status


class NbmeshError(Exception):
    """Root of all nbmesh errors: one clear sentence plus optional details."""

    def __init__(self, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        # A traceback or print() shows every problem, not only the sentence that sums them up.
        lines = [self.message]
        for detail in self.details:
            text = detail.get("message") if isinstance(detail, dict) else None
            lines.append(f"  - {text if isinstance(text, str) else detail}")
        return "\n".join(lines)

    def to_body(self) -> ErrorBody:
        body = ErrorBody(error=self.message)
        if self.details:
            body["details"] = self.details
        # The class name is the machine-readable type: renaming a class changes the API.
        body["type"] = type(self).__name__
        return body


class NotFound(NbmeshError):
    """A product, version or run that does not exist."""


class InvalidNotebook(NbmeshError):
    """A notebook that cannot become a product; details list every problem."""


class InvalidParameters(NbmeshError):
    """Parameters that do not meet the product's parameter schema."""


class InvalidRequest(NbmeshError):
    """A request body or name that is malformed."""


class MalformedJSON(InvalidRequest):
    """Text that is not JSON at all: not UTF-8, or a syntax error."""


class UnacceptableJSON(NbmeshError):
    """JSON that nbmesh does not take: NaN or Infinity, a lone surrogate, a repeated key, a number or nesting too large."""


class PayloadTooLarge(NbmeshError):
    """A request body above its size limit."""


class Unauthorized(NbmeshError):
    """A missing or wrong bearer token."""


class Forbidden(NbmeshError):
    """A known caller without the right, or a request a web page could have forged."""


class UnsupportedMediaType(NbmeshError):
    """A request that changes something without declaring a JSON (or multipart publish) body."""


class NotAcceptable(NbmeshError):
    """A result asked for in a format it has no form in (CSV of a non-tabular result), or in an unknown format."""


class MethodNotAllowed(NbmeshError):
    """A route asked with a method it does not answer."""


class InternalError(NbmeshError):
    """A bug: the runtime failed unexpectedly; its log has the traceback."""


class InvalidConfig(NbmeshError):
    """A setting or file given to ``nbmesh serve`` that cannot be used; the runtime does not start."""


class StoreError(NbmeshError):
    """The store could not be read or written."""


class StoreUnavailable(StoreError):
    """The store does not answer; nothing was changed."""


class CorruptRecord(StoreError):
    """A stored object that cannot be parsed."""


class VersionConflict(StoreError):
    """Another writer stored the same version first."""


class QueueFull(NbmeshError):
    """The background run queue is at its bound."""


class QueueUnavailable(NbmeshError):
    """The shared run queue (Redis) does not answer; the run was not queued."""


class KernelError(NbmeshError):
    """A kernel could not be started or prepared."""


class KernelDied(KernelError):
    """The kernel process ended while it was running something."""


class ExecutionTimeout(KernelError):
    """A run took longer than its product's timeout."""


class KernelTampered(KernelError):
    """The runner's reply was missing, malformed or out of sequence: a run changed it; the kernel is replaced."""


class KernelUnavailable(KernelError):
    """No kernel can serve the run because kernels cannot be started now; the run is refused at once."""


class RunFailed(NbmeshError):
    """Raised by the client when a run ends in failure; ``run`` is the run record."""

    def __init__(self, message: str, run: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.run = run or {}


def _body_types() -> dict[str, type[NbmeshError]]:
    found: dict[str, type[NbmeshError]] = {}
    classes: list[type[NbmeshError]] = [NbmeshError]
    while classes:
        cls = classes.pop()
        found[cls.__name__] = cls
        classes.extend(cls.__subclasses__())
    del found[RunFailed.__name__]  # the client's own: no body carries it
    return found


# Every class an error body's ``type`` may name, by that name; and that field's JSON Schema.
BODY_TYPES: dict[str, type[NbmeshError]] = _body_types()
ERROR_TYPE: dict[str, Any] = {
    "enum": sorted(BODY_TYPES),
    "description": "The error's class in kernel_runtime.errors: a client maps it back to its exception.",
}


def quoted(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: caller input in a message stays readable and small."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
