"""Talking to one kernel: preparing it for a product and running an invocation.

Each step is exactly one ``execute_request`` (silent, no history) on the
kernel's :class:`~kernel_runtime.kernels.shell.ShellChannel`, whose answer
comes back in the shell reply's payload (the runner's report): no iopub traffic is
read, so an invocation costs one kernel round trip. While waiting, the kernel
process is polled every ``poll`` seconds (``settings.pool.poll_interval``) so
a dead kernel is noticed then instead of at the timeout. A starting kernel is
ready when it answers a ``kernel_info_request`` on the same channel.

Every request carries a sequence number, and the runner's reply must echo it
with the kernel's nonce (given to the runner when it was installed). A reply
that is missing, malformed or out of sequence means a run changed the runner
or its namespace: :class:`KernelTampered`, and the pool replaces that kernel.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from jupyter_client import AsyncKernelManager

from .. import jsontext
from ..errors import ExecutionTimeout, KernelDied, KernelError, KernelTampered
from ..model.product import Cell, ProductSpec
from .runner import PAYLOAD_SOURCE
from .shell import ShellChannel



@dataclass
class Report:
    """What the in-kernel runner said about one step."""

    cells: list[dict[str, Any]]
    error: dict[str, Any] | None
    result: Any = None
    retire: str | None = None  # why the kernel must not serve another run (runner patched, exit(), threads left)


@dataclass(frozen=True)
class Seal:
    """What the runner's reply to one request must carry: the kernel's nonce and the request's number."""

    nonce: str
    seq: int


async def ready(km: AsyncKernelManager, shell: ShellChannel, timeout: float, poll: float) -> None:
    """Wait until a starting kernel answers a ``kernel_info_request``; KernelError if it dies or stays silent.

    One request is enough: zmq queues it until the kernel's socket is there.
    """
    msg_id = shell.send("kernel_info_request", {})
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if await shell.reply(msg_id, min(poll, remaining)) is not None:
            return
        if not await km.is_alive():
            raise KernelError(f"The kernel ended before it answered{_exit_code(km)}.")
    raise KernelError(f"The kernel did not answer within {timeout:g} s.")


async def execute(km: AsyncKernelManager, shell: ShellChannel, code: str, timeout: float, seal: Seal, poll: float) -> Report:
    """Send ``code`` and read the runner's reply; KernelDied / ExecutionTimeout / KernelTampered on trouble."""
    msg_id = shell.send(
        "execute_request",
        {"code": code, "silent": True, "store_history": False, "user_expressions": {},
         "allow_stdin": False, "stop_on_error": True},
    )
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExecutionTimeout(f"The kernel did not finish within {timeout:g} s.")
        content = await shell.reply(msg_id, min(poll, remaining))
        if content is not None:
            return _parse_reply(content, seal)
        if not await km.is_alive():
            raise KernelDied(_death_message(km))


async def wait_reply(km: AsyncKernelManager, shell: ShellChannel, timeout: float, poll: float) -> bool:
    """After an interrupt: whether the pending request's reply arrives within ``timeout``, from a
    runner that kept its footing (an interrupt that lands in the runner's own code, not the
    product's, may have left the namespace half restored)."""
    msg_id = shell.pending
    deadline = time.monotonic() + timeout
    while msg_id is not None and (remaining := deadline - time.monotonic()) > 0:
        try:
            content = await shell.reply(msg_id, min(poll, remaining))
        except KernelTampered:
            return False
        if content is not None:
            return content.get("status") == "ok"
        if not await km.is_alive():
            return False
    return False


def _exit_code(km: AsyncKernelManager) -> str:
    code = getattr(getattr(km, "provisioner", None), "exit_code", None)
    return f" (exit code {code})" if code is not None else ""


def _death_message(km: AsyncKernelManager) -> str:
    return f"The kernel died during the run{_exit_code(km)}: the product crashed it, exited, or ran out of memory."


def _parse_reply(content: dict[str, Any], seal: Seal) -> Report:
    if content.get("status") != "ok":
        raise _tampered(f"the runner raised {content.get('ename')}: {content.get('evalue')}")
    reports = [p["report"] for p in content.get("payload") or () if isinstance(p, dict) and p.get("source") == PAYLOAD_SOURCE]
    if not reports:
        raise _tampered("it left no report")
    try:
        # The report is product output: NaN becomes null and invalid text U+FFFD, so its record can always be kept.
        payload = jsontext.loads_report(reports[-1])
        if payload["nonce"] != seal.nonce or payload["seq"] != seal.seq:
            raise _tampered(f"the reply is not this request's (number {payload['seq']!r}, expected {seal.seq})")
        return Report(cells=payload["cells"], error=payload.get("error"), result=payload.get("result"), retire=payload.get("retire"))
    except (ValueError, KeyError, TypeError) as exc:
        raise _tampered(f"the reply is malformed ({type(exc).__name__}: {exc})") from None


def _tampered(why: str) -> KernelTampered:
    return KernelTampered(
        f"The kernel's runner did not answer as it must: {why}. A run changed the runner or its namespace; "
        "the kernel was replaced, so run again."
    )


def _cells_json(cells: tuple[Cell, ...]) -> list[dict[str, Any]]:
    return [{"index": c.index, "role": c.role, "source": c.source} for c in cells]


def runner_spec(spec: ProductSpec, max_output: int) -> str:
    return json.dumps(
        {"setup_cells": _cells_json(spec.setup_cells), "run_cells": _cells_json(spec.run_cells), "max_output": max_output}
    )


async def prepare(
    km: AsyncKernelManager, shell: ShellChannel, spec: ProductSpec, max_output: int, timeout: float, seal: Seal, poll: float
) -> Report:
    """Reset the kernel's namespace, install the runner for ``spec`` and run its setup cells.

    The pool prepares a kernel for one product version only; the reset matters when that
    version's setup failed and is tried again on the same kernel.
    """
    code = (
        "get_ipython().reset(new_session=False)\n"
        "import kernel_runtime.kernels.runner as _nbmesh_runner\n"
        f"__nbmesh__ = _nbmesh_runner.Runner(get_ipython(), {runner_spec(spec, max_output)!r}, {seal.nonce!r})\n"
        "del _nbmesh_runner\n"
        f"__nbmesh__.setup({seal.seq})\n"
    )
    return await execute(km, shell, code, timeout, seal, poll)


async def run(
    km: AsyncKernelManager, shell: ShellChannel, params: dict[str, Any], timeout: float, seal: Seal, poll: float
) -> Report:
    # repr() of the JSON text is a plain string literal: the kernel decodes it as data.
    return await execute(km, shell, f"__nbmesh__.run({json.dumps(params)!r}, {seal.seq})", timeout, seal, poll)
