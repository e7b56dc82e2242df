"""kernel_runtime.kernels.shell: the lean shell channel, against a real ipykernel and, for the faults a
real kernel cannot make on request (a forged signature, frames that are not a message, two replies
in one burst), against a real zmq ROUTER socket in this process playing the kernel.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal

import pytest
import pytest_asyncio
import zmq
from jupyter_client import AsyncKernelManager

from kernel_runtime.errors import KernelError, KernelTampered
from kernel_runtime.kernels import protocol
from kernel_runtime.kernels.shell import CONTEXT, DELIMITER, ShellChannel
from tests.conftest import invoke, publish, settled_pool

KEY = b"the-test-key"
HANG = 30  # seconds after which a wait that should end within milliseconds counts as a hang


def execute(shell: ShellChannel, expression: str, code: str = "") -> str:
    return shell.send("execute_request", {"code": code, "silent": True, "store_history": False,
                                          "user_expressions": {"r": expression}, "allow_stdin": False})


def value(content: dict | None) -> str:
    assert content is not None, "no reply within the timeout"
    return content["user_expressions"]["r"]["data"]["text/plain"]


# a real ipykernel --------------------------------------------------------------------------------
@pytest_asyncio.fixture(loop_scope="function")  # the tests' loop: the channel reads on it
async def kernel(tmp_path):
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "socket"),
                            connection_file=str(tmp_path / "connection.json"))
    await km.start_kernel()
    shell = ShellChannel(km.get_connection_info())
    yield km, shell
    shell.close()
    await km.shutdown_kernel(now=True)


async def test_a_real_kernel_answers_each_request_with_its_own_reply(kernel):
    km, shell = kernel
    await protocol.ready(km, shell, timeout=60, poll=0.1)
    slow = execute(shell, "'slow'", "import time\ntime.sleep(0.3)")
    assert await shell.reply(slow, timeout=0.01) is None  # given up on: its reply comes later, stale
    current = execute(shell, "'current'")
    # The kernel answers the slow request first: that reply must be dropped, not taken for this one.
    assert value(await shell.reply(current, timeout=30)) == "'current'"
    assert shell.pending is None
    assert value(await shell.reply(execute(shell, "1 + 1"), timeout=30)) == "2"


async def test_a_kernel_that_never_answers_or_ends_is_a_clear_start_error(kernel):
    km, shell = kernel
    pid = km.provisioner.process.pid
    os.kill(pid, signal.SIGSTOP)  # alive, silent
    try:
        with pytest.raises(KernelError, match="did not answer within 0.5 s"):
            await protocol.ready(km, shell, timeout=0.5, poll=0.1)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
    with pytest.raises(KernelError, match="ended before it answered"):
        await protocol.ready(km, shell, timeout=30, poll=0.05)


# a ROUTER socket playing the kernel --------------------------------------------------------------
@pytest_asyncio.fixture(loop_scope="function")  # the tests' loop: the channel reads on it
async def fake(tmp_path):
    router = CONTEXT.socket(zmq.ROUTER)
    router.linger = 0
    router.bind(f"ipc://{tmp_path}/shell-1")
    shell = ShellChannel({"transport": "ipc", "ip": f"{tmp_path}/shell", "shell_port": 1, "key": KEY,
                          "signature_scheme": "hmac-sha256"})
    yield router, shell
    shell.close()
    router.close()


def receive(router: zmq.Socket) -> tuple[bytes, dict]:
    """The identity and header of the channel's next request, whose signature must check."""
    assert router.poll(10_000), "the channel sent nothing"
    ident, delimiter, signature, *frames = router.recv_multipart()
    assert delimiter == DELIMITER and len(frames) == 4
    assert hmac.compare_digest(hmac.new(KEY, b"".join(frames), hashlib.sha256).hexdigest().encode(), signature)
    return ident, json.loads(frames[0])


def answer(router: zmq.Socket, ident: bytes, parent_id: str, content: dict, key: bytes = KEY) -> None:
    frames = [json.dumps({"msg_id": "r", "msg_type": "execute_reply"}).encode(), json.dumps({"msg_id": parent_id}).encode(),
              b"{}", json.dumps(content).encode()]
    signature = hmac.new(key, b"".join(frames), hashlib.sha256).hexdigest().encode()
    router.send_multipart([ident, DELIMITER, signature, *frames])


async def test_a_request_is_a_signed_jupyter_message_and_its_signed_reply_is_taken(fake):
    router, shell = fake
    msg_id = shell.send("kernel_info_request", {})
    ident, header = receive(router)
    assert (header["msg_id"], header["msg_type"], header["version"]) == (msg_id, "kernel_info_request", "5.3")
    assert header["date"].endswith("+00:00") and header["session"] and header["username"] == "nbmesh"
    answer(router, ident, msg_id, {"status": "ok"})
    assert await shell.reply(msg_id, timeout=10) == {"status": "ok"}


@pytest.mark.parametrize("forge", ["key", "frames"])
async def test_a_reply_that_is_not_signed_with_the_key_or_not_a_message_is_tampering(fake, forge):
    router, shell = fake
    msg_id = shell.send("execute_request", {"code": ""})
    ident, _ = receive(router)
    if forge == "key":
        answer(router, ident, msg_id, {"status": "ok"}, key=b"another-key")
    else:
        router.send_multipart([ident, b"not", b"a message"])
    with pytest.raises(KernelTampered, match="signed with the connection's key" if forge == "key" else "not a Jupyter message"):
        await shell.reply(msg_id, timeout=10)


@pytest.mark.parametrize("when", ["queued before the wait", "arriving during the wait"])
async def test_two_replies_in_one_burst_wake_the_reader_once_and_the_second_is_still_read(fake, when):
    # zmq signals the socket's FD once for both: reading the stale first reply consumes that signal,
    # so a channel that then waited on the FD instead of reading on would never see the second.
    router, shell = fake
    stale = shell.send("execute_request", {"code": "1"})
    ident, _ = receive(router)
    current = shell.send("execute_request", {"code": "2"})
    receive(router)

    def burst() -> None:
        answer(router, ident, stale, {"n": 1})
        answer(router, ident, current, {"n": 2})

    if when == "queued before the wait":
        burst()
        # Queued before reply() looks (reading EVENTS here consumes the FD's edge, as the stale reply would).
        assert shell._socket.poll(10_000), "the burst never arrived"
    else:
        asyncio.get_running_loop().call_later(0.05, burst)
    # The channel's own timeout is far away, so a reader left asleep hangs: the guard fails it.
    assert await asyncio.wait_for(shell.reply(current, timeout=600), HANG) == {"n": 2}


async def test_closing_twice_is_harmless_and_a_pending_wait_ends(fake):
    _, shell = fake
    waiting = asyncio.ensure_future(shell.reply(shell.send("execute_request", {}), timeout=60))
    await asyncio.sleep(0)  # one turn of the loop: the task runs until it waits on the socket
    assert not waiting.done()
    shell.close()
    shell.close()
    with pytest.raises(KernelError, match="shut down while a request to it was pending"):
        await asyncio.wait_for(waiting, 10)


def test_an_unknown_signature_scheme_is_refused(tmp_path):
    info = {"transport": "ipc", "ip": str(tmp_path / "s"), "shell_port": 1, "key": KEY, "signature_scheme": "rsa-nope"}
    with pytest.raises(KernelError, match="signs with 'rsa-nope'"):
        ShellChannel(info)
    with pytest.raises(KernelError, match="no key"):
        ShellChannel({**info, "signature_scheme": "hmac-sha256", "key": b""})


# through the runtime -----------------------------------------------------------------------------
def test_a_run_that_forges_the_kernels_replies_gets_its_kernel_replaced(http):
    # Product code changes the key the kernel signs with: its own reply is the first to be forged.
    forger = publish(http, [("parameters", "forge = False\nx = 0"),
                            ("", "if forge:\n    get_ipython().kernel.session.key = b'forged'"), ("output", "x")])
    assert invoke(http, forger, x=1)["result"] == 1
    restarts = settled_pool(http)["restarts"]
    run = invoke(http, forger, status=500, forge=True, x=2)
    assert run["error"]["ename"] == "KernelTampered" and "signed with the connection's key" in run["error"]["evalue"]
    assert settled_pool(http)["restarts"] == restarts + 1
    assert invoke(http, forger, x=3)["result"] == 3
