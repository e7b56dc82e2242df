"""The commands that run products or read their runs: ``invoke``, ``runs`` and ``emit`` (docs/reference/cli.md).

``invoke`` keeps stdout for the result (or, with ``--json``, the run object) so it pipes cleanly; the
run id and outcome go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..model.records import SUCCEEDED
from .common import JsonOption, PAIRS, TokenOption, UrlOption, app, client, fail, json_text, out, print_json, run_cli, say
from .format import parameter_value, runs_table


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    pairs, rest = [], list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            fail(f"Unexpected argument {flag!r}: parameters are given as -p KEY VALUE.")
        pairs.append((rest.pop(0), rest.pop(0)))
    return pairs


def parse_pairs(args: list[str], specs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """-p values typed by the parameters' ``specs`` (format.parameter_value); a value that cannot be one fails."""
    params: dict[str, Any] = {}
    for key, raw in _pairs(args):
        try:
            params[key] = parameter_value(key, raw, (specs or {}).get(key))
        except ValueError as exc:
            fail(str(exc))
    return params


@app.command(context_settings=PAIRS)
def invoke(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Product name, or name@version."),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
    as_json: bool = JsonOption,
    fmt: str = typer.Option("json", "--format", help="json, csv, parquet or arrow (a table result only, but json)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the result to this file, not stdout."),
) -> None:
    """Run a product now; print its result as JSON (or --format) on stdout, its run id on stderr. Parameters: -p KEY VALUE ..."""
    if as_json and fmt != "json":
        fail(f"--json prints the run object as JSON; it does not go with --format {fmt}.")
    if fmt in ("parquet", "arrow") and output is None and sys.stdout.isatty():
        fail(f"{fmt} is binary: write it to a file with --output FILE, or pipe stdout elsewhere.")
    with client(url, token) as runtime:
        specs = run_cli(lambda: runtime.product(name))["parameters"]
        params = parse_pairs(ctx.args, specs)
        if fmt != "json":
            _emit(output, run_cli(lambda: runtime.result_bytes(name, fmt, **params)))
            return
        run = run_cli(lambda: runtime.run(name, **params))
    if as_json:
        _emit(output, json_text(run))
    duration = f" in {run['duration_ms']:.0f} ms" if isinstance(run.get("duration_ms"), (int, float)) else ""
    if run["status"] != SUCCEEDED:
        error = run.get("error") or {}
        fail(f"run {run['run_id']} {run['status']}{duration}: {error.get('ename')}: {error.get('evalue')}")
    say(f"run {run['run_id']} succeeded{duration}", stderr=True)
    if not as_json:
        _emit(output, json_text(run["result"]))


def _emit(output: Path | None, data: bytes) -> None:
    """The answer to stdout, or to ``--output``."""
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        fail(f"Cannot write {output}: {exc.strerror}.")


@app.command()
def runs(
    name: str = typer.Argument(..., help="Product name, or name@version for that version's runs."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """List a product's runs, newest first."""
    with client(url, token) as runtime:
        items = run_cli(lambda: runtime.runs(name, limit=limit))
    if as_json:
        print_json({"runs": items})
    else:
        out.print(runs_table(items, out.width))


@app.command(context_settings=PAIRS)
def emit(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="Event topic."),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Publish an event; products subscribed to its topic run. Payload: -p KEY VALUE ..."""
    with client(url, token) as runtime:
        answer = run_cli(lambda: runtime.emit(topic, parse_pairs(ctx.args)))
    say(f"event {answer['topic']}: {len(answer['runs'])} run(s) {' '.join(answer['runs'])}".rstrip())
