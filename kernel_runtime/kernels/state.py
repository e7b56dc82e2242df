"""The pool's kernel states and its state report, as ``/healthz`` shows it and ``/metrics`` counts it."""

from __future__ import annotations

from typing import Literal, TypedDict, get_args

KernelState = Literal["starting", "idle", "busy", "dead"]
STARTING, IDLE, BUSY, DEAD = get_args(KernelState)


class PoolState(TypedDict):
    """The kernel pool now: kernels by state (one count per kernel state), and what it did so far."""

    size: int
    spare_target: int
    starting: int
    idle: int
    busy: int
    dead: int
    serving: int
    spare: int
    restarts: int
    retired: int
    spares_used: int
    start_error: str | None
