"""What every ``nbmesh`` command shares: the typer app, the consoles, the options, and the one way to fail.

Any nbmesh error ends a command with ``error: <sentence>`` on stderr, then one line per detail
(sorted by cell, cells numbered from 1 as JupyterLab does), and exit status 1; never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from ..errors import NbmeshError
from ..settings import DEFAULT_URL
from .format import detail_lines

T = TypeVar("T")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Publish notebooks as data products and run them on warm kernels.",
)
out = Console()
err = Console(stderr=True)

UrlOption = typer.Option(None, "--url", help=f"Runtime URL (default: NBMESH_URL, else {DEFAULT_URL}).")
TokenOption = typer.Option(None, "--token", help="Bearer token (default: NBMESH_TOKEN).")
JsonOption = typer.Option(False, "--json", help="Print the API's JSON answer, whole, on stdout.")
# -p KEY VALUE pairs are read from the extra arguments: typer has no repeatable two-value option.
PAIRS = {"allow_extra_args": True, "ignore_unknown_options": True}


def say(line: str, *, stderr: bool = False) -> None:
    """One line of plain text: no markup, no highlighting, never cut."""
    (err if stderr else out).print(Text(line), soft_wrap=True, highlight=False)


def complain(message: str, details: list[Any] = ()) -> None:
    """``error: message`` on stderr, then one line per detail."""
    # Text, not markup: messages quote user input and lists like "[1, 2]" that rich would eat.
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    for line in detail_lines(details):
        err.print(Text(f"  {line}"), soft_wrap=True, highlight=False)


def fail(message: str, details: list[Any] = ()) -> NoReturn:
    complain(message, details)
    raise typer.Exit(1)


def run_cli(fn: Callable[[], T]) -> T:
    """Call ``fn``; an nbmesh error ends the command as :func:`fail` says."""
    try:
        return fn()
    except NbmeshError as exc:
        fail(exc.message, exc.details)


def client(url: str | None, token: str | None):
    from ..client import Client

    return Client(url=url, token=token)


def json_text(value: Any) -> bytes:
    """``value`` as the indented JSON every ``--json`` prints."""
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(json_text(value))
    sys.stdout.flush()
