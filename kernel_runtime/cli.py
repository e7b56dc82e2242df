"""The ``nbmesh`` command line (docs/reference/cli.md), built with typer and rich.

Client commands talk to a runtime over HTTP through :class:`Client`; ``serve``
runs one. Any nbmesh error ends the command with one clear line on stderr and
exit status 1, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.text import Text
from rich.table import Table

from .errors import NbmeshError
from .http.security import is_loopback
from .model.records import SUCCEEDED
from .settings import (
    DEFAULT_URL,
    MIB,
    HttpSettings,
    PoolSettings,
    RunSettings,
    Settings,
    StoreSettings,
    TriggerSettings,
    least,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Publish notebooks as data products and run them on warm kernels.")
out = Console()
err = Console(stderr=True)

DEFAULTS = Settings()
UrlOption = typer.Option(None, "--url", help=f"Runtime URL (default: NBMESH_URL, else {DEFAULT_URL}).")
TokenOption = typer.Option(None, "--token", help="Bearer token (default: NBMESH_TOKEN).")
# -p KEY VALUE pairs are read from the extra arguments: typer has no repeatable two-value option.
PAIRS = {"allow_extra_args": True, "ignore_unknown_options": True}


def fail(message: str) -> None:
    # Text, not markup: messages quote user input and lists like "[1, 2]" that rich would eat.
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    raise typer.Exit(1)


def _client(url: str | None, token: str | None):
    from .client import Client

    return Client(url=url, token=token)


def _describe(detail: Any) -> str:
    if not isinstance(detail, dict):
        return str(detail)
    text = detail.get("message", json.dumps(detail))
    return f"cell {detail['cell']}: {text}" if detail.get("cell") is not None else text


def _run_cli(fn):
    """Call ``fn``; an nbmesh error becomes one line on stderr, its details joined into it."""
    try:
        return fn()
    except NbmeshError as exc:
        details = "; ".join(_describe(d) for d in exc.details)
        fail(f"{exc.message} {details}" if details else exc.message)


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    pairs, rest = [], list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            fail(f"Unexpected argument {flag!r}: parameters are given as -p KEY VALUE.")
        pairs.append((rest.pop(0), rest.pop(0)))
    return pairs


def _parse_pairs(args: list[str], types: dict[str, str] | None = None) -> dict[str, Any]:
    """-p values: raw text for str parameters, JSON (falling back to text) for everything else."""
    params: dict[str, Any] = {}
    for key, raw in _pairs(args):
        if (types or {}).get(key) == "str":
            params[key] = raw
            continue
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@app.command()
def serve(
    store: str = typer.Option(DEFAULTS.store.url, "--store", envvar="NBMESH_STORE", help="Store: a folder or s3://bucket/prefix."),
    host: str = typer.Option(DEFAULTS.http.host, "--host"),
    port: int = typer.Option(DEFAULTS.http.port, "--port"),
    pool_size: int = typer.Option(DEFAULTS.pool.size, "--pool-size", min=least("pool.size"), help="Kernels that may serve products (default: CPU count)."),
    spare_kernels: int = typer.Option(DEFAULTS.pool.spares, "--spare-kernels", min=least("pool.spares"), help="Started kernels kept for products whose kernel is not warm."),
    sandbox: str = typer.Option(DEFAULTS.pool.sandbox, "--sandbox", help="Kernel sandbox: auto (bubblewrap if it works, else none), bwrap, none."),
    kernel_env: list[str] = typer.Option([], "--kernel-env", help="Pass this variable of the runtime's environment to kernels (repeatable)."),
    kernel_workdir: Optional[Path] = typer.Option(None, "--kernel-workdir", help="A folder every kernel sees read-only as its working directory."),
    token: Optional[str] = typer.Option(None, "--token", envvar="NBMESH_TOKEN", help="Require a bearer token; this one may do everything."),
    access: Optional[Path] = typer.Option(None, "--access", envvar="NBMESH_ACCESS", metavar="FILE", help="Principals file: who may publish, invoke and emit what (docs/security.md)."),
    allowed_origin: Optional[list[str]] = typer.Option(None, "--allowed-origin", metavar="ORIGIN", help="Without a token, also answer web pages of this origin (JupyterLab's), e.g. http://localhost:8888. Repeatable."),
    kernel_memory: Optional[int] = typer.Option(None, "--kernel-memory", help="Per-kernel memory limit in MiB."),
    max_concurrency: Optional[int] = typer.Option(None, "--max-concurrency", min=least("runs.max_concurrency"), help="Kernels one product may use at once (default: pool size - 1, at least 1)."),
    keep_runs: Optional[int] = typer.Option(None, "--keep-runs", min=least("store.keep_runs"), help="Keep only each product's newest N runs in the store (default: all)."),
    grace: float = typer.Option(DEFAULTS.runs.grace, "--grace", min=least("runs.grace"), help="Seconds running runs get to finish on SIGTERM."),
    queue_size: int = typer.Option(DEFAULTS.runs.queue_size, "--queue-size", min=least("runs.queue_size"), help="Background runs that may wait; beyond it 503."),
    catalog_sync: float = typer.Option(DEFAULTS.store.catalog_sync, "--catalog-sync", min=least("store.catalog_sync"), help="Seconds between re-reads of the store's catalog (replicas sharing a store)."),
    clock_file: Optional[str] = typer.Option(None, "--clock-file", envvar="NBMESH_CLOCK_FILE", help="Read the schedules' now from this file (one ISO-8601 instant); for tests and demos."),
    assignments: list[str] = typer.Option([], "--set", metavar="SECTION.NAME=VALUE", help="Any other setting (docs/reference/settings.md), e.g. pool.start_timeout=90. Repeatable."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the runtime: a pool of warm kernels behind the HTTP API."""
    import uvicorn

    from .http.access import Access
    from .http.app import create_app
    from .http.security import parse_origin
    from .http.server import Server
    from .kernels.sandbox import kernel_env as passed_env
    from .kernels.sandbox import resolve as resolve_sandbox
    from .runtime.service import Service
    from .store import open_store
    from .store.repository import Repository

    # The one place settings are read: options (and their environment variables), then --set.
    settings = _run_cli(lambda: Settings(
        pool=PoolSettings(
            size=pool_size,
            spares=spare_kernels,
            sandbox=sandbox,
            kernel_env=tuple(kernel_env),
            kernel_workdir=str(kernel_workdir.resolve()) if kernel_workdir else None,
            kernel_memory=kernel_memory * MIB if kernel_memory else None,
        ),
        runs=RunSettings(queue_size=queue_size, max_concurrency=max_concurrency, grace=grace),
        store=StoreSettings(url=store, keep_runs=keep_runs, catalog_sync=catalog_sync),
        triggers=TriggerSettings(clock_file=clock_file),
        http=HttpSettings(host=host, port=port),
    ).override(assignments).checked())
    host = settings.http.host
    if not token and not access and not is_loopback(host):
        fail(f"Refusing to serve on {host} without a token: pass --token or --access (or set NBMESH_TOKEN or NBMESH_ACCESS).")
    principals = _run_cli(lambda: Access.configure(token, access))
    origins = _run_cli(lambda: [parse_origin(origin) for origin in allowed_origin or []])
    logging.basicConfig(level=log_level.upper(), format="%(message)s", stream=sys.stderr)
    blob_store = _run_cli(lambda: open_store(settings.store))
    workdir = settings.pool.kernel_workdir
    if workdir is not None and not Path(workdir).is_dir():
        fail(f"--kernel-workdir {workdir} is not a folder.")
    contained = _run_cli(lambda: resolve_sandbox(settings.pool, passed_env(settings.pool.kernel_env)))
    service = Service(Repository(blob_store, settings.store.publish_attempts), settings, sandbox=contained)
    ready = [0]

    kernels = settings.pool.size + settings.pool.spares

    def on_kernel_ready(kernel) -> None:
        ready[0] += 1
        err.print(f"[cyan]kernel {ready[0]}/{kernels} started[/]", highlight=False)

    def on_started() -> None:
        callers = f"{len(principals.by_digest)} principal(s)" if principals else "no token, loopback callers only"
        where = f"http://{host}:{settings.http.port}"
        err.print(f"[bold green]nbmesh answers on {where}[/] ({len(service.catalog)} product(s); {callers})", highlight=False)

    err.print(f"nbmesh: store {blob_store.url}, starting {kernels} kernel(s) ({settings.pool.spares} spare)…", highlight=False)
    application = create_app(service, principals, host=host, allowed_origins=origins, on_kernel_ready=on_kernel_ready)
    config = uvicorn.Config(
        application, host=host, port=settings.http.port, log_level="warning", lifespan="on",
        timeout_graceful_shutdown=settings.runs.grace,
    )
    server = Server(config, service, on_started)
    server.run()
    if not server.started:
        raise typer.Exit(1)


@app.command()
def publish(
    notebooks: list[Path] = typer.Argument(..., help="Notebook files to publish.", exists=False),
    name: Optional[str] = typer.Option(None, "--name", help="Product name (default: metadata.nbmesh.name, else the file's stem)."),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Validate and publish notebooks as new product versions."""
    if name and len(notebooks) > 1:
        fail("--name applies to a single notebook.")
    with _client(url, token) as client:
        for path in notebooks:
            product = _run_cli(lambda: client.publish(path, name=name))
            out.print(
                f"published {product['name']} version {product['version']}: POST {client.url}{product['invoke_url']}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


@app.command(context_settings=PAIRS)
def invoke(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Product name, or name@version."),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
    fmt: str = typer.Option("json", "--format", help="json, csv, parquet or arrow (a table result only, but json)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the result to this file, not stdout."),
) -> None:
    """Run a product now and print its result as JSON (or --format). Parameters: -p KEY VALUE ..."""
    with _client(url, token) as client:
        types = {k: v["type"] for k, v in _run_cli(lambda: client.product(name))["parameters"].items()}
        params = _parse_pairs(ctx.args, types)
        if fmt != "json":
            if fmt in ("parquet", "arrow") and output is None and sys.stdout.isatty():
                fail(f"{fmt} is binary: write it to a file with --output FILE, or pipe stdout elsewhere.")
            data = _run_cli(lambda: client.result_bytes(name, fmt, **params))
        else:
            run = _run_cli(lambda: client.run(name, **params))
            if run["status"] != SUCCEEDED:
                error = run.get("error") or {}
                fail(f"run {run['run_id']} {run['status']}: {error.get('ename')}: {error.get('evalue')}")
            data = (json.dumps(run["result"], indent=2) + "\n").encode()
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        _run_cli(lambda: _write(output, data))


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise NbmeshError(f"Cannot write {path}: {exc.strerror}.") from exc


@app.command("list")
def list_products(url: Optional[str] = UrlOption, token: Optional[str] = TokenOption) -> None:
    """List the published products."""
    with _client(url, token) as client:
        products = _run_cli(client.products)
    table = Table("name", "version", "owner", "parameters", "title")
    for p in products:
        params = ", ".join(f"{k}: {v['type']}" for k, v in p["parameters"].items())
        table.add_row(p["name"], str(p["version"]), p.get("owner", ""), params, p.get("title", ""))
    out.print(table)


@app.command()
def runs(
    name: str = typer.Argument(..., help="Product name."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
) -> None:
    """List a product's runs, newest first."""
    with _client(url, token) as client:
        items = _run_cli(lambda: client.runs(name, limit=limit))
    table = Table("run_id", "version", "status", "duration ms", "trigger", "started")
    for r in items:
        duration = f"{r['duration_ms']:.1f}" if r.get("duration_ms") is not None else ""
        table.add_row(r["run_id"], str(r["version"]), r["status"], duration, r["trigger"].get("kind", ""), r.get("started_at") or "")
    out.print(table)


@app.command(context_settings=PAIRS)
def emit(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="Event topic."),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Publish an event; products subscribed to its topic run. Payload: -p KEY VALUE ..."""
    with _client(url, token) as client:
        answer = _run_cli(lambda: client.emit(topic, _parse_pairs(ctx.args)))
    out.print(f"event {answer['topic']}: {len(answer['runs'])} run(s) {' '.join(answer['runs'])}", highlight=False, soft_wrap=True)


@app.command("token")
def token_command(name: str = typer.Argument(..., help="The principal's name in the access file.")) -> None:
    """Make a new random token, and the access-file principal that holds only its SHA-256 digest."""
    from .http.access import new_principal

    if not name.strip():
        fail("A principal's name is a non-empty string.")
    secret, principal = new_principal(name)
    sys.stdout.write(
        "principal (not secret: add it to the access file's \"principals\", then fill in its rights):\n"
        f"{json.dumps(principal)}\n"
        f"token (SECRET: give it to {name} only, as NBMESH_TOKEN; it is shown once and stored nowhere):\n"
        f"{secret}\n"
    )


def main() -> None:
    app()
