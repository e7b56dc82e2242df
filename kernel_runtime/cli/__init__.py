"""The ``nbmesh`` command line (docs/reference/cli.md), built with typer and rich.

Client commands talk to a runtime over HTTP through :class:`~kernel_runtime.client.Client`
(:mod:`.products`, :mod:`.runs`); :mod:`.serve` runs one. Each module adds its commands to the one
app of :mod:`.common`; :mod:`.format` says how results and problems look.
"""

from __future__ import annotations

import typer

from ..version import __version__
from . import products, runs, serve  # noqa: F401  (they add their commands to the app)
from .common import app, say

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        say(f"nbmesh {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version, help="Print the version and exit."),
) -> None:
    """Publish notebooks as data products and run them on warm kernels."""


def main() -> None:
    app(prog_name="nbmesh")  # also under `python -m kernel_runtime`, whose messages then name the command to type
