"""Screenshots of the catalog page for the README, taken in Debian's Chromium with Playwright.

    python docs/images/make_screenshots.py

Starts `nbmesh serve` on a free loopback port with a store in a temporary folder (as
scripts/quickstart.sh does), publishes notebooks/*.ipynb with `nbmesh publish`, then, from the
page: the catalog (09-catalog.png) and weather-digest invoked with its defaults, its result table,
snippets, runs and lineage (10-catalog-product.png). Stops the runtime whatever happens.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
# The test suite's own runtime and CLI helpers: `nbmesh serve` on loopback, `nbmesh` subcommands.
from tests.conftest import Runtime, cli, free_port  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def shoot(url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        expect.set_options(timeout=60_000)
        page.goto(f"{url}/")
        expect(page.locator("#products .card").first).to_be_visible()
        expect(page.locator("#lineage svg")).to_be_visible()
        page.screenshot(path=str(IMAGES / "09-catalog.png"), full_page=True)
        page.goto(f"{url}/#/p/weather-digest")
        page.click("#invoke")
        expect(page.locator("#result table.result-table")).to_be_visible()
        expect(page.locator("#runs tbody tr")).to_have_count(1)
        page.screenshot(path=str(IMAGES / "10-catalog-product.png"), full_page=True)
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="nbmesh-shots-") as store:
        runtime = Runtime(store=store, port=free_port(), args=["--kernel-workdir", "notebooks"]).start()
        try:
            notebooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))
            published = cli("publish", *notebooks, env={"NBMESH_URL": runtime.url, "NBMESH_TOKEN": None})
            if published.returncode:
                raise SystemExit(f"nbmesh publish failed:\n{published.stderr}")
            shoot(runtime.url)
        finally:
            runtime.stop()
    print(f"wrote {IMAGES / '09-catalog.png'} and {IMAGES / '10-catalog-product.png'}")


if __name__ == "__main__":
    main()
