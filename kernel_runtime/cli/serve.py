"""The operator's commands: ``nbmesh serve`` runs a runtime, ``nbmesh token`` makes an access-file principal.

``serve`` reads every setting once (options, their environment variables, then ``--set``), binds its
port before it starts a kernel (a taken port is one line, not a minute of kernels starting for nothing),
and prints its progress on stderr.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Optional

import typer

from ..http.security import is_loopback
from ..settings import MIB, HttpSettings, PoolSettings, QueueSettings, RunSettings, Settings, StoreSettings, TriggerSettings, least
from .common import app, err, fail, run_cli

DEFAULTS = Settings()


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound now: uvicorn would bind it only after the kernels started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on connections accepted from a
    # socket whose proto says TCP. Without it httptools' two writes per answer (head, then body) met
    # Nagle and the client's delayed ACK: 40 ms per request (docs/performance.md).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a TIME_WAIT socket is no obstacle
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(f"Port {port} on {host} is already in use: stop what listens there or pass another --port.")
        fail(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.")
    sock.set_inheritable(True)
    return sock


@app.command()
def serve(
    store: str = typer.Option(DEFAULTS.store.url, "--store", envvar="NBMESH_STORE", help="Store: a folder or s3://bucket/prefix."),
    host: str = typer.Option(DEFAULTS.http.host, "--host"),
    port: int = typer.Option(DEFAULTS.http.port, "--port"),
    pool_size: int = typer.Option(DEFAULTS.pool.size, "--pool-size", min=least("pool.size"), help="Kernels that may serve products (default: CPU count)."),
    spare_kernels: int = typer.Option(DEFAULTS.pool.spares, "--spare-kernels", min=least("pool.spares"), help="Started kernels kept for products whose kernel is not warm."),
    sandbox: str = typer.Option(DEFAULTS.pool.sandbox, "--sandbox", help="Kernel sandbox: auto (bubblewrap if it works, else none), bwrap, none."),
    kernel_env: list[str] = typer.Option([], "--kernel-env", help="Pass this variable of the runtime's environment to kernels (repeatable)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="NBMESH_TOKEN", help="Require a bearer token; this one may do everything."),
    access: Optional[Path] = typer.Option(None, "--access", envvar="NBMESH_ACCESS", metavar="FILE", help="Principals file: who may publish, invoke and emit what (docs/security.md)."),
    allowed_origin: Optional[list[str]] = typer.Option(None, "--allowed-origin", metavar="ORIGIN", help="Without a token, also answer web pages of this origin (JupyterLab's), e.g. http://localhost:8888. Repeatable."),
    kernel_memory: Optional[int] = typer.Option(None, "--kernel-memory", help="Per-kernel memory limit in MiB."),
    max_concurrency: Optional[int] = typer.Option(None, "--max-concurrency", min=least("runs.max_concurrency"), help="Kernels one product may use at once (default: pool size - 1, at least 1)."),
    keep_runs: Optional[int] = typer.Option(None, "--keep-runs", min=least("store.keep_runs"), help="Keep only each product's newest N runs in the store (default: all)."),
    grace: float = typer.Option(DEFAULTS.runs.grace, "--grace", min=least("runs.grace"), help="Seconds running runs get to finish on SIGTERM."),
    queue_size: int = typer.Option(DEFAULTS.runs.queue_size, "--queue-size", min=least("runs.queue_size"), help="Background runs that may wait; beyond it 503."),
    catalog_sync: float = typer.Option(DEFAULTS.store.catalog_sync, "--catalog-sync", min=least("store.catalog_sync"), help="Seconds between re-reads of the store's catalog (replicas sharing a store)."),
    queue: Optional[str] = typer.Option(None, "--queue", envvar="NBMESH_QUEUE", metavar="URL", help="Share runs with other replicas through Redis: redis://HOST:PORT/DB (default: the embedded in-process queue)."),
    lease: float = typer.Option(DEFAULTS.queue.lease, "--lease", min=least("queue.lease"), help="With --queue: seconds a replica holds a run without a heartbeat before another takes it over."),
    clock_file: Optional[str] = typer.Option(None, "--clock-file", envvar="NBMESH_CLOCK_FILE", help="Read the schedules' now from this file (one ISO-8601 instant); for tests and demos."),
    assignments: list[str] = typer.Option([], "--set", metavar="SECTION.NAME=VALUE", help="Any other setting (docs/reference/settings.md), e.g. pool.start_timeout=90. Repeatable."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the runtime: a pool of warm kernels behind the HTTP API."""
    import uvicorn

    from ..http.access import Access
    from ..http.app import create_app
    from ..http.security import parse_origin
    from ..http.server import Server
    from ..kernels.sandbox import kernel_env as passed_env
    from ..kernels.sandbox import resolve as resolve_sandbox
    from ..runtime.service import Service
    from ..store import open_store
    from ..store.repository import Repository

    # The one place settings are read: options (and their environment variables), then --set.
    settings = run_cli(lambda: Settings(
        pool=PoolSettings(
            size=pool_size,
            spares=spare_kernels,
            sandbox=sandbox,
            kernel_env=tuple(kernel_env),
            kernel_memory=kernel_memory * MIB if kernel_memory else None,
        ),
        runs=RunSettings(queue_size=queue_size, max_concurrency=max_concurrency, grace=grace),
        store=StoreSettings(url=store, keep_runs=keep_runs, catalog_sync=catalog_sync),
        triggers=TriggerSettings(clock_file=clock_file),
        queue=QueueSettings(url=queue or None, lease=lease),
        http=HttpSettings(host=host, port=port),
    ).override(assignments).checked())
    host = settings.http.host
    if not token and not access and not is_loopback(host):
        fail(f"Refusing to serve on {host} without a token: pass --token or --access (or set NBMESH_TOKEN or NBMESH_ACCESS).")
    principals = run_cli(lambda: Access.configure(token, access))
    origins = run_cli(lambda: [parse_origin(origin) for origin in allowed_origin or []])
    logging.basicConfig(level=log_level.upper(), format="%(message)s", stream=sys.stderr)
    blob_store = run_cli(lambda: open_store(settings.store))
    contained = run_cli(lambda: resolve_sandbox(settings.pool, passed_env(settings.pool.kernel_env)))
    service = run_cli(lambda: Service(Repository(blob_store, settings.store.publish_attempts), settings, sandbox=contained))
    ready = [0]

    kernels = settings.pool.size + settings.pool.spares

    def on_kernel_ready(kernel) -> None:
        ready[0] += 1
        err.print(f"[cyan]kernel {ready[0]}/{kernels} started[/]", highlight=False, soft_wrap=True)

    def on_started() -> None:
        callers = f"{len(principals.by_digest)} principal(s)" if principals else "no token, loopback callers only"
        where = f"http://{host}:{settings.http.port}"
        err.print(f"[bold green]nbmesh answers on {where}[/] ({len(service.catalog)} product(s); {callers})", highlight=False, soft_wrap=True)

    sock = listen(host, settings.http.port)
    # Progress lines stay one line each, whatever the width (soft_wrap); a store path is not markup.
    err.print(f"nbmesh: store {blob_store.url}, starting {kernels} kernel(s) ({settings.pool.spares} spare)…", highlight=False, soft_wrap=True, markup=False)
    application = create_app(service, principals, host=host, allowed_origins=origins, on_kernel_ready=on_kernel_ready)
    config = uvicorn.Config(
        application, host=host, port=settings.http.port, log_level="warning", lifespan="on",
        timeout_graceful_shutdown=settings.runs.grace,
        # httptools: ~0.1 ms less CPU per request than h11 (docs/performance.md); the loop is named so
        # that uvloop, when some other package installs it, does not replace asyncio unmeasured.
        http="httptools", loop="asyncio",
    )
    server = Server(config, service, on_started)
    server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(1)


@app.command("token")
def token_command(name: str = typer.Argument(..., help="The principal's name in the access file.")) -> None:
    """Make a new random token, and the access-file principal that holds only its SHA-256 digest."""
    from ..http.access import new_principal

    if not name.strip():
        fail("A principal's name is a non-empty string.")
    secret, principal = new_principal(name)
    sys.stdout.write(
        "principal (not secret: add it to the access file's \"principals\", then fill in its rights):\n"
        f"{json.dumps(principal)}\n"
        f"token (SECRET: give it to {name} only, as NBMESH_TOKEN; it is shown once and stored nowhere):\n"
        f"{secret}\n"
    )
