"""The pool's choices: which kernel a run gets, and which idle kernel retires to make room for it.

Pure functions of the pool's kernels (they change nothing): :mod:`kernel_runtime.kernels.pool`
acts on what they choose, holding its lock. A kernel serves one product version for life, so a
run for a version that no idle kernel serves gets a spare, or else the least recently used idle
kernel is retired and the run waits for its fresh replacement. A run never waits for nothing:
when it waits, a kernel is being started for it or a busy one will come back.
"""

from __future__ import annotations

from typing import Iterable

from .kernel import Kernel
from .state import IDLE

Key = tuple[str, int]  # a product version: (name, version)


def pick(kernels: list[Kernel], key: Key, size: int) -> Kernel | None:
    """The idle kernel a run for ``key`` gets now: one serving it, else a spare it may claim; None: wait."""
    idle = [k for k in kernels if k.state == IDLE]
    mine = [k for k in idle if k.key == key]
    if mine:
        return max(mine, key=lambda k: (k.prepared, k.last_used))
    if any(k.key == key and k.preparing for k in kernels):
        return None  # wait for that kernel (a prewarm, say) rather than claim and prepare another
    spares = [k for k in idle if k.key is None]
    serving = sum(k.key is not None for k in kernels)
    # Claiming a spare when ``size`` kernels serve products retires an idle one: there must be one.
    if spares and (serving < size or any(k.key is not None for k in idle)):
        return spares[0]
    return None


def least_recently_used(kernels: Iterable[Kernel]) -> Kernel | None:
    """The idle kernel serving a product that ran last the longest ago, if any."""
    return min((k for k in kernels if k.state == IDLE and k.key is not None), key=lambda k: k.last_used, default=None)


def to_retire(kernels: list[Kernel], key: Key, starting: int) -> Kernel | None:
    """The kernel to retire so that a run for ``key``, which :func:`pick` left waiting, gets a fresh one.

    None when a spare is there or being started (the run waits for it: retiring more would only
    cost starts), when a kernel is being prepared for ``key``, or when every kernel is busy.
    """
    if starting or any(k.key is None or (k.key == key and k.preparing) for k in kernels):
        return None
    return least_recently_used(kernels)
