"""End to end in a real browser: JupyterLab with the nbmesh extension, a real runtime, Debian's Chromium.

One story, in the order a user lives it: a notebook without an output cell is
refused with its problem and nothing is stored; the user tags the output cell,
sets the owner, publishes, reads the notification, tries the product from the
Data products panel (a result, then an error) and opens the run's notebook.
Screenshots of each step go to test-output/e2e/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ..conftest import NOTEBOOKS, ROOT
from .conftest import TIMEOUT_MS, TOKEN, browser_page, empty_folder

SHOTS = ROOT / "test-output" / "e2e"
PRODUCT = "weather-extremes"


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    """A folder holding one example notebook whose output cell is not tagged yet, and its data file."""
    root = tmp_path_factory.mktemp("lab-root")
    (root / "data").mkdir()
    shutil.copy(NOTEBOOKS / "data" / "seattle-weather.csv", root / "data")  # Publish sends it along
    notebook = json.loads((NOTEBOOKS / "weather_extremes.ipynb").read_text())
    for cell in notebook["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "output" in tags:
            tags.remove("output")
    (root / "weather_extremes.ipynb").write_text(json.dumps(notebook, indent=1))
    return root


@pytest.fixture(scope="module")
def page(lab, browser: Browser):
    empty_folder(SHOTS)
    with browser_page(browser, 1500, 950, TIMEOUT_MS) as page:
        yield page


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def notebook_toolbar_button(page: Page, item: str):
    return page.locator(f".jp-NotebookPanel-toolbar [data-jp-item-name='{item}'] button").first


def test_publish_try_and_open_a_run_from_jupyterlab(page: Page, lab, e2e_runtime):
    runtime = httpx.Client(base_url=e2e_runtime.url, timeout=60)
    page.goto(f"{lab}/lab/tree/weather_extremes.ipynb?token={TOKEN}")
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    expect(cells).to_have_count(4)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached()
    # The parameters cell is already tagged: its badge shows.
    expect(cells.nth(1).locator(".nbmesh-CellBadge-parameters")).to_have_text("parameters")
    expect(cells.nth(3).locator(".nbmesh-CellBadge")).to_have_count(0)

    # 1. Publish without an output cell: the runtime's problem is listed and nothing is stored.
    notebook_toolbar_button(page, "nbmesh-publish").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_have_text(f"Cannot publish {PRODUCT}")
    problems = dialog.locator(".nbmesh-Problem")
    expect(problems.first).to_contain_text("No cell is tagged 'output'")
    expect(dialog).to_contain_text("Nothing was stored.")
    shot(page, "01-publish-refused-no-output-cell")
    assert runtime.get(f"/api/products/{PRODUCT}").status_code == 404
    assert runtime.get("/api/products").json()["products"] == []
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)
    refused = page.locator(".Toastify__toast", has_text=f"{PRODUCT} was not published")
    expect(refused).to_contain_text("1 problem (nothing was stored)")
    refused.get_by_role("button", name="Hide notification").click()
    expect(refused).to_have_count(0)

    # 2. Tag the last cell as the output cell from its context menu; its badge appears.
    cells.nth(3).locator(".jp-InputArea-editor").click()
    cells.nth(3).locator(".jp-InputPrompt").click(button="right")
    page.locator(".lm-Menu-item", has_text="Output Cell").click()
    expect(cells.nth(3).locator(".nbmesh-CellBadge-output")).to_have_text("output")
    shot(page, "02-output-cell-tagged")

    # 3. Product settings: set the owner in metadata.nbmesh.
    notebook_toolbar_button(page, "nbmesh-settings").click()
    settings = page.locator(".jp-Dialog .nbmesh-SettingsDialog")
    expect(settings.locator("input[name='nbmesh-name']")).to_have_value(PRODUCT)
    settings.locator("input[name='nbmesh-owner']").fill("e2e-team")
    shot(page, "03-product-settings")
    page.locator(".jp-Dialog").get_by_role("button", name="Save").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)

    # 4. Publish: the notification names the product, its version, invoke URL and a curl.
    notebook_toolbar_button(page, "nbmesh-publish").click()
    toast = page.locator(".Toastify__toast", has_text=f"Published {PRODUCT} version")
    invoke_url = f"{e2e_runtime.url}/api/products/{PRODUCT}/invoke"
    expect(toast).to_contain_text(f"Published {PRODUCT} version 1.")
    expect(toast).to_contain_text(f"Invoke: POST {invoke_url}")
    shot(page, "04-published-notification")
    product = runtime.get(f"/api/products/{PRODUCT}").json()
    assert product["version"] == 1 and product["owner"] == "e2e-team"

    # The ready curl is one click away, and it works as shown.
    toast.get_by_role("button", name="Show curl").click()
    curl = page.locator(".jp-Dialog .nbmesh-Invocation-curl")
    expect(curl).to_contain_text(f"curl -X POST {invoke_url}")
    shot(page, "05-ready-curl")
    answer = subprocess.run(["sh", "-c", curl.inner_text()], capture_output=True, text=True, timeout=120)
    run = json.loads(answer.stdout)
    assert run["status"] == "succeeded" and run["parameters"] == {"limit": 5, "weather": "rain", "measure": "precipitation"}
    page.locator(".jp-Dialog").get_by_role("button", name="Close").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)

    # 5. The Data products panel: search, open the product, try it.
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='nbmesh-products']").click()
    panel = page.locator("#nbmesh-products")
    item = panel.locator(f".nbmesh-Product[data-product='{PRODUCT}']")
    expect(item).to_be_visible()
    search = panel.locator(".nbmesh-Panel-search")
    search.fill("no such product")
    expect(item).to_be_hidden()
    search.fill("e2e-team")
    expect(item).to_be_visible()
    item.locator(".nbmesh-Product-head").click()
    expect(item.locator(".nbmesh-Parameters")).to_contain_text("limit")
    expect(item.locator(".nbmesh-Parameters")).to_contain_text("number of days to return")
    expect(item).to_contain_text("Runs on request only.")
    expect(item.locator(".nbmesh-Run")).to_have_count(1)  # the curl's
    item.locator("input[name='nbmesh-param-limit']").fill("3")
    item.locator("input[name='nbmesh-param-weather']").fill("sun")
    item.locator(".nbmesh-Invoke").click()
    result = item.locator(".nbmesh-Result-json")
    expect(result).to_be_visible()
    data = json.loads(result.inner_text())
    assert data["weather"] == "sun" and len(data["days"]) == 3
    assert all(day["weather"] == "sun" for day in data["days"])
    expect(item.locator(".nbmesh-Run-succeeded")).to_have_count(2)
    expect(item.locator(".nbmesh-Run-succeeded").first).to_contain_text("http")
    item.locator(".nbmesh-Result").scroll_into_view_if_needed()
    shot(page, "06-try-it-result")

    # 6. A run that fails shows its error, and is listed with the others.
    item.locator("input[name='nbmesh-param-limit']").fill("0")
    item.locator(".nbmesh-Invoke").click()
    error = item.locator(".nbmesh-Output .nbmesh-Error")
    expect(error).to_contain_text("Run failed: ValueError: limit must be an integer from 1 to 100")
    expect(item.locator(".nbmesh-Run")).to_have_count(3)
    error.scroll_into_view_if_needed()
    shot(page, "07-try-it-error")

    # 7. The failed run's executed notebook opens read-only, with the injected parameters.
    failed = item.locator(".nbmesh-Run-failed")
    run_id = failed.get_attribute("data-run-id")
    failed.locator(".nbmesh-Run-open").click()
    # Its tab names the product, version and time; the run id is in the tab's tooltip.
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=f"{PRODUCT}@1 · ")
    expect(tab).to_be_visible()
    expect(tab).to_have_attribute("title", f"Run {run_id} (read-only)")
    viewer = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(viewer.locator(".jp-Notebook-footer")).to_be_hidden()
    expect(viewer).to_contain_text("limit = 0")
    expect(viewer).to_contain_text("ValueError")
    shot(page, "08-run-notebook-read-only")
    first_code = viewer.locator(".jp-CodeCell .cm-content").first
    before = first_code.inner_text()
    first_code.click()
    page.keyboard.type("edited = True")
    assert first_code.inner_text() == before
