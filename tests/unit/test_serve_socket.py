"""kernel_runtime.cli.serve.listen: the socket `nbmesh serve` binds before its kernels start (no server, no kernels)."""

from __future__ import annotations

import asyncio
import socket

from kernel_runtime.cli.serve import listen


async def test_connections_accepted_from_the_serve_socket_send_without_nagle_delay():
    # asyncio sets TCP_NODELAY on each accepted connection only when the listening socket says it
    # is TCP; without it an answer written in two parts (uvicorn's httptools: head, then body)
    # waited 40 ms for the client's delayed ACK.
    sock = listen("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(connected, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname())
        assert await asyncio.wait_for(accepted, 10) != 0
        writer.close()
