"""The HTTP server of ``nbmesh serve``: uvicorn's, told about the runtime it serves.

uvicorn stops listening on SIGTERM, gives in-flight requests the grace period, then runs the
lifespan shutdown (:meth:`Service.stop`), which gives background runs what is left of it. This
subclass adds the two things uvicorn cannot know: the runtime's background workers stop taking
runs as soon as the shutdown begins, and the operator is told once the runtime answers.
"""

from __future__ import annotations

import socket
from typing import Callable

import uvicorn

from ..runtime.service import Service


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.service = service
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # uvicorn returns without starting when, say, the port is taken
            self.on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.begin_stop()
        await super().shutdown(sockets)
