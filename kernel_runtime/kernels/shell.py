"""One kernel's shell socket, spoken directly: the requests and replies of every kernel step.

A warm invoke costs one ``execute_request``. Sent through jupyter_client's ``AsyncKernelClient``
(a zmq.asyncio poll and receive future per reply, its ``Session``'s serialize and deserialize) it cost
the runtime ~420 µs of CPU per call; this channel costs ~240 µs and answers ~0.2 ms sooner
(docs/performance.md, change 7). :class:`ShellChannel` owns one kernel's shell socket: a plain
``zmq.DEALER`` connected to the endpoint in the kernel manager's connection info, read on the
asyncio loop through ``loop.add_reader`` on the socket's file descriptor. Messages are signed and
checked as the Jupyter messaging spec says: an HMAC, with the connection's key and
``signature_scheme``, over the header, parent header, metadata and content frames.

Replies are matched on ``parent_header.msg_id``. A reply to an earlier request (one given up on
after a timeout, then answered late) is dropped. A reply whose signature does not check, or that is
not a Jupyter message, raises :class:`KernelTampered` rather than being dropped: only the process
behind the kernel's socket can send on it, and it holds the key, so such a reply means that process
no longer speaks as the kernel the pool started (a run rewrote its messaging, or its socket), and
the pool replaces it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping

import zmq

from ..errors import KernelError, KernelTampered

log = logging.getLogger("nbmesh.pool")

DELIMITER = b"<IDS|MSG>"
EMPTY = b"{}"  # the parent header and metadata of every request
PROTOCOL_VERSION = "5.3"
# One plain (not zmq.asyncio) context for every kernel's shell socket, never terminated while the
# runtime runs. A kernel's shutdown closes only its own socket, with linger 0 (nothing left to
# flush), and these sockets are touched only on the event loop's thread, so closing one never
# waits on another thread's socket (the trouble kernel.py avoids by starting no heartbeat thread).
# The kernel manager's own context, for its control socket (interrupts), is the manager's to destroy.
CONTEXT = zmq.Context()


class ShellChannel:
    """Requests on one kernel's shell socket, and their replies; one request at a time."""

    def __init__(self, info: Mapping[str, Any], username: str = "nbmesh") -> None:
        """Connect to the shell endpoint of ``info`` (a kernel manager's ``get_connection_info()``)."""
        scheme = info.get("signature_scheme", "hmac-sha256")
        digest = scheme.removeprefix("hmac-")
        if not scheme.startswith("hmac-") or digest not in hashlib.algorithms_available:
            raise KernelError(
                f"The kernel's connection signs with {scheme!r}, which nbmesh cannot check: "
                "use hmac-<a hashlib algorithm>, like hmac-sha256."
            )
        if not info.get("key"):
            raise KernelError("The kernel's connection has no key: its messages would not be signed.")
        # Copying a keyed HMAC per message skips preparing the key each time.
        self._hmac = hmac.new(info["key"], digestmod=digest)
        transport, ip, port = info["transport"], info["ip"], info["shell_port"]
        # The endpoint as jupyter_client names it: tcp://IP:PORT, or ipc://PATH-PORT.
        self.url = f"tcp://{ip}:{port}" if transport == "tcp" else f"{transport}://{ip}-{port}"
        self._socket = CONTEXT.socket(zmq.DEALER)
        self._socket.linger = 0
        self._socket.connect(self.url)
        self._session = uuid.uuid4().hex
        self._username = username
        self._ids = itertools.count(1)
        self._waiter: asyncio.Future[None] | None = None
        self.pending: str | None = None  # the msg_id of the last request, until its reply is taken
        self._loop = asyncio.get_running_loop()
        self._fd = self._socket.FD
        self._loop.add_reader(self._fd, self._readable)

    def _sign(self, *frames: bytes) -> bytes:
        mac = self._hmac.copy()
        for frame in frames:
            mac.update(frame)
        return mac.hexdigest().encode()

    def send(self, msg_type: str, content: dict[str, Any]) -> str:
        """Send a request; returns its msg_id, which its reply names as parent."""
        msg_id = f"{self._session}_{next(self._ids)}"
        header = json.dumps({
            "msg_id": msg_id, "session": self._session, "username": self._username,
            "date": datetime.now(timezone.utc).isoformat(), "msg_type": msg_type, "version": PROTOCOL_VERSION,
        }).encode()
        # ASCII JSON: any text (a lone surrogate included) reaches the kernel as it was given.
        body = json.dumps(content).encode()
        # NOBLOCK: a kernel that left 1,000 requests unread raises zmq.Again rather than stopping the loop.
        self._socket.send_multipart([DELIMITER, self._sign(header, EMPTY, EMPTY, body), header, EMPTY, EMPTY, body], zmq.NOBLOCK)
        self.pending = msg_id
        return msg_id

    async def reply(self, msg_id: str, timeout: float) -> dict[str, Any] | None:
        """The content of the reply to ``msg_id``, or None if it did not come within ``timeout`` s.

        Replies to other requests are dropped; a reply that is not signed with the connection's key
        or not a Jupyter message raises :class:`KernelTampered`.
        """
        deadline = self._loop.time() + timeout
        while True:
            if self._socket.closed:
                raise KernelError("The kernel was shut down while a request to it was pending.")
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                # zmq's FD signals edges, and every send, recv or EVENTS read may consume one: a reply
                # that came during the recv above would wake nobody, so ask EVENTS before waiting.
                if self._socket.EVENTS & zmq.POLLIN:
                    continue
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    return None
                await self._wait(remaining)
                continue
            parent, content = self._open(frames)
            if parent == msg_id:
                self.pending = None
                return content
            log.debug("shell reply to %s dropped: it is not the reply to %s", parent, msg_id)

    async def _wait(self, timeout: float) -> None:
        """Until the socket may have a message, or ``timeout`` s (a timer, not a task per wait)."""
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            timer.cancel()

    def _readable(self) -> None:
        # Reading EVENTS clears the FD's signal, also when nobody waits: left set, the selector
        # would call this again on every turn of the loop.
        if self._socket.EVENTS & zmq.POLLIN and self._waiter is not None:
            _wake(self._waiter)

    def _open(self, frames: list[bytes]) -> tuple[Any, dict[str, Any]]:
        """A reply's parent msg_id and content, once its signature checks."""
        try:
            at = frames.index(DELIMITER)
            signature, header, parent, metadata, content = frames[at + 1 : at + 6]
        except ValueError:
            raise _tampered("is not a Jupyter message") from None
        if not hmac.compare_digest(self._sign(header, parent, metadata, content), signature):
            raise _tampered("is not signed with the connection's key")
        try:
            # As jupyter_client read them: invalid UTF-8 becomes U+FFFD.
            parent_id = json.loads(parent.decode("utf-8", "replace")).get("msg_id")
            body = json.loads(content.decode("utf-8", "replace"))
        except (ValueError, AttributeError) as exc:
            raise _tampered(f"is malformed ({type(exc).__name__}: {exc})") from None
        if not isinstance(body, dict):
            raise _tampered("has content that is not a JSON object")
        return parent_id, body

    def close(self) -> None:
        """Stop reading and close the socket; a pending :meth:`reply` raises. Closing twice does nothing."""
        if self._socket.closed:
            return
        self._loop.remove_reader(self._fd)
        self._socket.close(linger=0)
        if self._waiter is not None:
            _wake(self._waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _tampered(why: str) -> KernelTampered:
    return KernelTampered(
        f"A message on the kernel's shell socket {why}: a run changed the kernel's messaging; "
        "the kernel was replaced, so run again."
    )
