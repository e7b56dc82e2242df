"""Run errors: the ``error`` of a failed or timed-out run, and every ``ename`` the runtime itself gives.

A run's error is ``{"ename", "evalue", "traceback"}``. When the product's code raised, ``ename``
is that exception's Python name (``ZeroDivisionError``), ``evalue`` its message and ``traceback``
its lines: those names are the product's and are not listed here. Every other ``ename`` is one of
:class:`Ename`, and each is made by one constructor of :class:`RunError` below; the in-kernel
runner, which may import only the standard library and IPython, spells its three itself
(``tests/unit/test_run_errors.py`` holds it to this list).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from ..errors import NbmeshError


class Ename(StrEnum):
    """The ``ename`` values of errors the runtime makes, each with a one-line ``meaning``."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> "Ename":
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    TIMEOUT = "Timeout", "The run, or the setup it needed, took longer than the product's timeout (status timed_out)."
    KERNEL_DIED = "KernelDied", "The kernel process ended during the run (a crash, os._exit, out of memory); it is replaced."
    KERNEL_TAMPERED = "KernelTampered", "The kernel's runner did not answer as it must (a run changed it); the kernel is replaced."
    KERNEL_ERROR = "KernelError", "No kernel could be prepared for the run (one failed to start, or the pool was shutting down)."
    KERNEL_UNAVAILABLE = "KernelUnavailable", "A background or triggered run found that no kernel can be started now."
    CONTRACT_VIOLATION = "ContractViolation", "The result breaks the product's output_schema; evalue is the schema's message."
    OUTPUT_LIMIT_EXCEEDED = "OutputLimitExceeded", "The run printed or displayed more than the output limit, or its result's JSON is larger."
    RESULT_NOT_SERIALIZABLE = "ResultNotSerializable", "The result cannot be JSON: its type, nesting or an integer too long (named in evalue)."
    CHILD_PROCESS_LEFT = "ChildProcessLeft", "The run left processes running; they were killed (pids in evalue)."
    RUNTIME_STOPPED = "RuntimeStopped", "The runtime stopped before the run could finish, or restarted with it beyond the queue's bound or unpublished."
    INVALID_PARAMETERS = "InvalidParameters", "A triggered run's parameters are invalid (a missing $event path, a wrong type); recorded, not run."
    QUEUE_FULL = "QueueFull", "A triggered run the full background queue, or a background run its product's full waiting line, could not take."
    NOT_FOUND = "NotFound", "A triggered or background run whose product version is no longer published."
    STORE_ERROR = "StoreError", "A background or triggered run the store could not record."
    STORE_UNAVAILABLE = "StoreUnavailable", "A background or triggered run the store, not answering, could not record."
    CORRUPT_RECORD = "CorruptRecord", "A background or triggered run stopped by a stored record that cannot be parsed."
    QUEUE_UNAVAILABLE = "QueueUnavailable", "A background or triggered run the shared queue (Redis), not answering, could not take."
    DEAD_LETTERED = "DeadLettered", "A queued run delivered too often (each replica holding it stopped or lost its lease) was set aside, not run again."
    INTERNAL_ERROR = "InternalError", "A background run the runtime failed on unexpectedly (a bug; its log has the traceback)."


# The ename list of the OpenAPI document and of docs/reference/http-api.md, by value.
RUNTIME_ENAMES: dict[str, str] = {e.value: e.meaning for e in Ename}


def ename_schema() -> dict[str, Any]:
    """The JSON Schema of ``error.ename``: one of the runtime's own, or the name of a product's exception."""
    return {
        "anyOf": [
            *({"const": e.value, "description": e.meaning} for e in Ename),
            {"type": "string", "description": "The name of the exception the product's code raised (ZeroDivisionError, ...)."},
        ]
    }


def _ename_of(exc: BaseException) -> Ename:
    """The runtime's ename for one of its exceptions: its own class, else its nearest listed base class."""
    for cls in type(exc).__mro__:
        if issubclass(cls, NbmeshError) and cls.__name__ in RUNTIME_ENAMES:
            return Ename(cls.__name__)
    return Ename.INTERNAL_ERROR


@dataclass(frozen=True)
class RunError:
    """Why a run failed or timed out.

    Build it with the constructor naming what happened; store its :meth:`to_json`.
    """

    ename: Annotated[str, ename_schema()]
    evalue: str
    traceback: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"ename": self.ename, "evalue": self.evalue, "traceback": list(self.traceback)}

    @classmethod
    def timed_out(cls, message: str, timeout: float) -> "RunError":
        return cls(Ename.TIMEOUT, f"{message} (product timeout {timeout:g} s)")

    @classmethod
    def kernel_failed(cls, exc: NbmeshError) -> "RunError":
        """A kernel died, was tampered with or could not be had: the exception's own class names it."""
        return cls(_ename_of(exc), exc.message)

    @classmethod
    def broke_contract(cls, violation: str) -> "RunError":
        return cls(Ename.CONTRACT_VIOLATION, violation)

    @classmethod
    def stopped_while(cls, reason: str) -> "RunError":
        """Found unfinished at a start: ``reason`` completes "this run ..."."""
        return cls(Ename.RUNTIME_STOPPED, f"The runtime stopped while this run {reason}; it was not completed.")

    @classmethod
    def stopped_after_grace(cls, grace: float) -> "RunError":
        return cls(Ename.RUNTIME_STOPPED, f"The runtime stopped and this run did not finish within the {grace:g} s grace period.")

    @classmethod
    def dead_lettered(cls, deliveries: int) -> "RunError":
        return cls(
            Ename.DEAD_LETTERED,
            f"This run was delivered {deliveries} times and never finished (the replicas holding it stopped or lost "
            "their lease); it was moved to the dead-letter stream and not run again.",
        )

    @classmethod
    def refused(cls, exc: NbmeshError) -> "RunError":
        """A triggered or background run that could not be queued or started; ``evalue`` gives every reason."""
        reasons = [d.get("message", str(d)) if isinstance(d, dict) else str(d) for d in exc.details]
        return cls(_ename_of(exc), " ".join([exc.message, *reasons]))

    @classmethod
    def unexpected(cls, exc: Exception) -> "RunError":
        """A background run the runtime failed on: a listed error keeps its name, anything else is a bug."""
        ename = _ename_of(exc)
        evalue = exc.message if isinstance(exc, NbmeshError) else f"{type(exc).__name__}: {exc}"
        return cls(ename, evalue)

    @classmethod
    def setup_failed(cls, error: dict[str, Any]) -> "RunError":
        """A setup cell's error, from the runner: the product's exception (or the runner's own ename)."""
        return cls(
            error["ename"],
            f"A setup cell failed while preparing the kernel: {error['evalue']}",
            tuple(error.get("traceback", [])),
        )
