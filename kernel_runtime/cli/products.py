"""The catalog's commands: ``publish``, ``unpublish``, ``list`` and ``show`` (docs/reference/cli.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import NbmeshError
from .common import JsonOption, TokenOption, UrlOption, app, client, complain, fail, message_of, out, print_json, run_cli, say
from .format import product_lines, products_table


@app.command()
def publish(
    notebooks: list[Path] = typer.Argument(..., help="Notebook files to publish.", exists=False),
    name: Optional[str] = typer.Option(None, "--name", help="Product name (default: metadata.nbmesh.name, else the file's stem)."),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Validate and publish notebooks as new product versions; each one refused is named with its problems."""
    if name and len(notebooks) > 1:
        fail("--name applies to a single notebook.")
    refused: list[str] = []
    with client(url, token) as runtime:
        for path in notebooks:
            try:
                product, created = runtime.publish_with_status(path, name=name)
            except NbmeshError as exc:
                # Say why, then go on: the other notebooks do not depend on this one.
                complain(f"{path} was not published: {message_of(exc)}", exc.details)
                refused.append(str(path))
                continue
            # A republish that changes nothing makes no version: say so rather than "published".
            done = "published" if created else "unchanged:"
            say(f"{done} {product['name']} version {product['version']}: POST {runtime.url}{product['invoke_url']}")
    if refused:
        published = len(notebooks) - len(refused)
        fail(f"{len(refused)} of {len(notebooks)} notebooks refused ({published} published): {', '.join(refused)}.")


@app.command()
def unpublish(
    name: str = typer.Argument(..., help="Product name."),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Unpublish a product: it can no longer be invoked; its runs stay readable."""
    with client(url, token) as runtime:
        run_cli(lambda: runtime.unpublish(name))
    say(f"unpublished {name}")


@app.command("list")
def list_products(url: Optional[str] = UrlOption, token: Optional[str] = TokenOption, as_json: bool = JsonOption) -> None:
    """List the published products."""
    with client(url, token) as runtime:
        products = run_cli(runtime.products)
    if as_json:
        print_json({"products": products})
    else:
        out.print(products_table(products, out.width))


@app.command()
def show(
    name: str = typer.Argument(..., help="Product name, or name@version."),
    url: Optional[str] = UrlOption,
    token: Optional[str] = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a product: its versions, owner, parameters with their types and defaults, triggers."""
    with client(url, token) as runtime:
        product = run_cli(lambda: runtime.product(name))
    if as_json:
        print_json(product)
        return
    for line in product_lines(product, runtime.url):
        say(line)
