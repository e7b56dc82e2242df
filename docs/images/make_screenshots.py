"""Screenshots of the catalog page for the README, taken in Debian's Chromium with Playwright.

    python docs/images/make_screenshots.py

Starts `nbmesh serve` on a free loopback port with a store in a temporary folder (as
scripts/quickstart.sh does), publishes notebooks/*.ipynb with `nbmesh publish`, then, from the
page: the catalog (09-catalog.png) and weather-digest invoked with its defaults, its result table,
snippets, runs and lineage (10-catalog-product.png). Stops the runtime whatever happens.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nbmesh(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NBMESH_URL": url}
    env.pop("NBMESH_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "kernel_runtime", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def serve(store: str, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "kernel_runtime", "serve", "--store", store, "--port", str(port), "--kernel-workdir", "notebooks"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"nbmesh serve exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("nbmesh serve did not answer within 60 s")


def shoot(url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="nbmesh-shots-") as store:
        server = serve(store, port)
        try:
            nbmesh("publish", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb")), url=url)
            shoot(url)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    print(f"wrote {IMAGES / '09-catalog.png'} and {IMAGES / '10-catalog-product.png'}")


if __name__ == "__main__":
    main()
