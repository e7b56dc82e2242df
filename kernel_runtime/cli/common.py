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

from ..errors import NbmeshError, Unauthorized
from ..settings import DEFAULT_URL
from .format import detail_lines

try:  # recent typer carries its own copy of click, whose exceptions its commands raise
    from typer._click import exceptions as click_errors
except ImportError:  # older typer uses click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]
_NO_ARGS = getattr(click_errors, "NoArgsIsHelpError", ())  # click >= 8.2

T = TypeVar("T")

class _App(typer.Typer):
    """typer's app, whose usage errors end as every other error does: one ``error:`` line, status 2.

    (typer would draw a box of several lines around the message, after a usage line.)
    """

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        try:
            status = typer.main.get_command(self).main(*args, standalone_mode=False, **kwargs)
        except _NO_ARGS as exc:  # bare `nbmesh`: the help is the answer, not an error (click >= 8.2 says 2)
            exc.show()
            sys.exit(0)
        except click_errors.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} -h')" if exc.ctx is not None else ""
            message = exc.format_message()
            complain(f"{message}{'' if message.endswith(('.', '?', '!')) else '.'}{hint}")
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            complain(exc.format_message())
            sys.exit(exc.exit_code)
        except typer.Abort:
            complain("Aborted.")
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)


app = _App(
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


def message_of(exc: NbmeshError) -> str:
    """The error's sentence; a 401 also says how this command sends a token."""
    if isinstance(exc, Unauthorized):
        return f"{exc.message} Pass --token or set NBMESH_TOKEN."
    return exc.message


def run_cli(fn: Callable[[], T]) -> T:
    """Call ``fn``; an nbmesh error ends the command as :func:`fail` says."""
    try:
        return fn()
    except NbmeshError as exc:
        fail(message_of(exc), exc.details)


def client(url: str | None, token: str | None):
    from ..client import Client

    return run_cli(lambda: Client(url=url, token=token))


def json_text(value: Any) -> bytes:
    """``value`` as the indented JSON every ``--json`` prints."""
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(json_text(value))
    sys.stdout.flush()
