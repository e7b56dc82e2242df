"""What the browser tests share: Debian's Chromium, driven headless by Playwright (never a browser download),
and JupyterLab with the nbmesh extension on a free port, pointed at a real runtime (each module
serves its own ``lab_root`` folder of notebooks)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ..conftest import Runtime, free_port

CHROMIUM = "/usr/bin/chromium"
TOKEN = "e2e-lab-token"  # the Jupyter server's
TIMEOUT_MS = 90_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Browser:
    """One Chromium per test module (the sync API's loop lives no longer than the module's tests)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def empty_folder(folder: Path) -> Path:
    """``folder``, emptied of an earlier run's screenshots."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@contextmanager
def browser_page(browser: Browser, width: int, height: int, timeout_ms: int) -> Iterator[Page]:
    """A page in a fresh context of ``browser``, waiting at most ``timeout_ms`` on anything."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    expect.set_options(timeout=timeout_ms)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def e2e_runtime(tmp_path_factory):
    rt = Runtime(store=str(tmp_path_factory.mktemp("e2e-store")), port=free_port()).start()
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, lab_root, e2e_runtime):
    """`jupyter lab` on a free port, its nbmesh extension pointed at the test's runtime."""
    state = tmp_path_factory.mktemp("lab-state")
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No news or update toasts: the only notifications on screen are nbmesh's.
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port = free_port()
    env = {**os.environ, "NBMESH_URL": e2e_runtime.url, "NBMESH_START_RUNTIME": "0", "JUPYTER_PLATFORM_DIRS": "1"}
    env.pop("NBMESH_TOKEN", None)
    log_path = state / "lab.log"
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root",
        f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={lab_root}",
        f"--LabApp.user_settings_dir={state / 'settings'}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/api/status", params={"token": TOKEN}, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            pytest.fail(f"jupyter lab did not answer within 120 s:\n{log_path.read_text()}")
        time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
