"""JupyterLab details in Debian's Chromium: role buttons, one refusal for every problem, the Data products panel.

The Jupyter server, runtime and browser come from tests/e2e/conftest.py; this
module serves its own folder of notebooks. Screenshots go
to test-output/e2e-details/.
"""

from __future__ import annotations

import base64
import json
from itertools import combinations
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from ..conftest import ROOT, make_notebook, publish
from .conftest import TIMEOUT_MS, TOKEN, browser_page, empty_folder

SHOTS = ROOT / "test-output" / "e2e-details"
ROLES = ("parameters", "setup", "output")


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    """Two notebooks: one to tag (roles), one whose name and schedule are both invalid."""
    root = tmp_path_factory.mktemp("lab-details-root")
    roles = make_notebook([("parameters", "x = 1"), ("", "y = x"), ("output", "y")], name="roles-demo")
    (root / "roles_demo.ipynb").write_text(json.dumps(roles))
    refused = make_notebook(
        [("parameters", "region = 'EU'"), ("", "total = 1")],
        name="Sales Report",
        triggers=[{"schedule": "61 * * * *"}],
    )
    (root / "sales_report.ipynb").write_text(json.dumps(refused))
    return root


@pytest.fixture(scope="module")
def page(lab, browser):
    empty_folder(SHOTS)
    with browser_page(browser, 1400, 900, TIMEOUT_MS) as page:
        # Leaving a notebook with unsaved tag changes: the page's "leave?" prompt is accepted.
        page.on("dialog", lambda dialog: dialog.accept())
        yield page


def open_notebook(page: Page, lab: str, path: str) -> Locator:
    page.goto(f"{lab}/lab/tree/{path}?token={TOKEN}")
    # The workspace reopens the notebooks of earlier tests first: wait for this one to be on screen.
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")).to_have_text(path)
    # The workspace may hold other notebooks, hidden (scaled to 0): only the one on screen is visible.
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell >> visible=true")
    expect(cells.first).to_be_visible()
    # Ready once the kernel is: the notebook's commands act on a loaded model then.
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached()
    return cells


def toolbar_button(page: Page, item: str) -> Locator:
    """A button of the notebook on screen."""
    return page.locator(f".jp-NotebookPanel-toolbar [data-jp-item-name='{item}'] button >> visible=true")


def role_button(cell: Locator, role: str) -> Locator:
    return cell.locator(f".jp-cell-toolbar [data-jp-item-name='nbmesh-{role}'] button")


def visibly_different(page: Page, a: bytes, b: bytes) -> float:
    """The share of pixels two screenshots of the same size differ in clearly (any channel by more than 48 of 255).

    Byte equality is not enough: two identical-looking icons differ by a few anti-aliased pixels.
    """
    return page.evaluate(
        """async ([a, b]) => {
          const pixels = async png => {
            const image = new Image();
            image.src = 'data:image/png;base64,' + png;
            await image.decode();
            const canvas = document.createElement('canvas');
            [canvas.width, canvas.height] = [image.width, image.height];
            const context = canvas.getContext('2d');
            context.drawImage(image, 0, 0);
            return context.getImageData(0, 0, image.width, image.height).data;
          };
          const [p, q] = await Promise.all([pixels(a), pixels(b)]);
          let differing = 0;
          for (let i = 0; i < Math.min(p.length, q.length); i += 4) {
            const delta = Math.max(Math.abs(p[i] - q[i]), Math.abs(p[i + 1] - q[i + 1]), Math.abs(p[i + 2] - q[i + 2]));
            differing += delta > 48 ? 1 : 0;
          }
          return differing / (Math.max(p.length, q.length) / 4);
        }""",
        [base64.b64encode(a).decode(), base64.b64encode(b).decode()],
    )


def set_theme(lab: str, theme: str) -> None:
    """JupyterLab's theme setting, as its Settings editor saves it; pages opened next use it."""
    answer = httpx.put(
        f"{lab}/lab/api/settings/@jupyterlab/apputils-extension:themes",
        params={"token": TOKEN},
        json={"raw": json.dumps({"theme": theme})},
    )
    assert answer.status_code == 204, answer.text


def context_menu_labels(page: Page, cell: Locator) -> list[str]:
    """The cell's context menu, top to bottom: labels, and "---" for a separator."""
    cell.locator(".jp-InputPrompt").click(button="right")
    menu = page.locator(".lm-Menu").last
    expect(menu).to_be_visible()
    labels = menu.locator(".lm-Menu-content > li").evaluate_all(
        "items => items.map(i => i.dataset.type === 'separator' ? '---'"
        " : i.querySelector('.lm-Menu-itemLabel').textContent)"
    )
    page.keyboard.press("Escape")
    return labels


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_three_role_buttons_differ_and_show_when_pressed(page: Page, lab, theme):
    set_theme(lab, theme)
    cells = open_notebook(page, lab, "roles_demo.ipynb")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", str(theme.endswith("Light")).lower())
    # The untagged middle cell: no role pressed, so the three differ by their icon alone.
    cells.nth(1).locator(".jp-InputArea-editor").click()
    buttons = {role: role_button(cells.nth(1), role) for role in ROLES}
    for button in buttons.values():
        expect(button).to_have_attribute("aria-pressed", "false")
    shots = {role: button.screenshot() for role, button in buttons.items()}
    for one, other in combinations(ROLES, 2):
        share = visibly_different(page, shots[one], shots[other])
        assert share > 0.05, f"the {one} and {other} buttons look the same ({share:.1%} of pixels differ)"

    # Pressed is obvious: the output button, before and after, differs clearly; and the tag is set.
    buttons["output"].click()
    expect(buttons["output"]).to_have_attribute("aria-pressed", "true")
    expect(cells.nth(1).locator(".nbmesh-CellBadge-output")).to_have_text("output")
    share = visibly_different(page, buttons["output"].screenshot(), shots["output"])
    assert share > 0.05, f"pressed looks like not pressed ({share:.1%} of pixels differ)"
    page.locator(".jp-cell-toolbar >> visible=true").first.screenshot(
        path=str(SHOTS / f"role-buttons-{theme.split()[-1].lower()}.png")
    )
    buttons["output"].click()
    expect(buttons["output"]).to_have_attribute("aria-pressed", "false")
    expect(cells.nth(1).locator(".nbmesh-CellBadge")).to_have_count(0)


def test_the_context_menu_holds_the_roles_and_settings_in_a_group_of_their_own(page: Page, lab):
    cells = open_notebook(page, lab, "roles_demo.ipynb")
    labels = context_menu_labels(page, cells.nth(1))
    ours = ["Parameters Cell", "Setup Cell", "Output Cell", "Data Product Settings…"]
    start = labels.index(ours[0])
    assert labels[start - 1 : start + len(ours) + 1] == ["---", *ours, "---"], labels


def test_a_refusal_lists_the_name_and_the_schedule_together(page: Page, lab, e2e_runtime):
    set_theme(lab, "JupyterLab Light")
    open_notebook(page, lab, "sales_report.ipynb")
    toolbar_button(page, "nbmesh-publish").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_have_text("Cannot publish Sales Report")
    problems = dialog.locator(".nbmesh-Problem")
    expect(problems.filter(has_text="'Sales Report'")).not_to_have_count(0)
    expect(problems.filter(has_text="61 * * * *")).to_have_count(1)
    expect(problems.filter(has_text="output")).to_have_count(1)
    page.screenshot(path=str(SHOTS / "refusal-name-and-schedule.png"))
    dialog.get_by_role("button", name="Close").click()
    toast = page.locator(".Toastify__toast", has_text="Sales Report was not published")
    expect(toast).to_contain_text("problems (nothing was stored).")
    assert httpx.get(f"{e2e_runtime.url}/api/products").json()["products"] == []


def test_settings_check_every_field_on_save_and_edit_triggers_in_a_form(page: Page, lab):
    open_notebook(page, lab, "sales_report.ipynb")
    toolbar_button(page, "nbmesh-settings").click()
    settings = page.locator(".jp-Dialog .nbmesh-SettingsDialog")
    expect(settings.locator("input[name='nbmesh-timeout']")).to_have_attribute("placeholder", "60 (default)")
    expect(settings.locator("input[name='nbmesh-trigger-value']")).to_have_value("61 * * * *")
    settings.locator("input[name='nbmesh-timeout']").fill("soon")
    page.locator(".jp-Dialog").get_by_role("button", name="Save").click()
    problems = page.locator(".jp-Dialog .nbmesh-SettingsDialog-problems li")
    expect(problems).to_have_count(3)
    expect(problems.nth(0)).to_contain_text('Invalid product name "Sales Report"')
    expect(problems.nth(1)).to_contain_text('Timeout must be a number of seconds')
    expect(problems.nth(2)).to_contain_text("Trigger 1: Schedule \"61 * * * *\": the minute 61 is out of range 0-59.")
    page.screenshot(path=str(SHOTS / "settings-problems.png"))
    # Fixed in the form: the name cleared shows the file's name as the default; the trigger edited.
    settings = page.locator(".jp-Dialog .nbmesh-SettingsDialog")
    name = settings.locator("input[name='nbmesh-name']")
    name.fill("")
    expect(name).to_have_attribute("placeholder", "sales-report (from the file name)")
    settings.locator("input[name='nbmesh-timeout']").fill("30")
    settings.locator("input[name='nbmesh-trigger-value']").fill("0 6 * * 1-5")
    settings.locator("input[name='nbmesh-trigger-timezone']").fill("Europe/Paris")
    settings.get_by_role("button", name="Add trigger").click()
    settings.locator("select[name='nbmesh-trigger-kind']").nth(1).select_option("event")
    settings.locator("input[name='nbmesh-trigger-value']").nth(1).fill("orders.updated")
    page.locator(".jp-Dialog").get_by_role("button", name="Save").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    # Saved: the name is the file's now, and the schedule is fixed, so only the missing output cell is left.
    toolbar_button(page, "nbmesh-publish").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_have_text("Cannot publish sales-report")
    expect(dialog.locator(".nbmesh-Problem")).to_have_count(1)
    expect(dialog.locator(".nbmesh-Problem")).to_contain_text("No cell is tagged 'output'")
    dialog.get_by_role("button", name="Close").click()


def test_the_panel_counts_what_the_search_shows_and_follows_background_runs(page: Page, lab, e2e_runtime):
    runtime = httpx.Client(base_url=e2e_runtime.url, timeout=60)
    publish(runtime, [("parameters", "wait: float = 0"), ("output", "import time\ntime.sleep(wait)\n'done'")], name="alpha-sales", owner="sales-team")
    publish(
        runtime,
        [("output", "'ok'")],
        name="beta-weather",
        triggers=[{"event": "product.alpha-sales.succeeded"}],
    )
    open_notebook(page, lab, "roles_demo.ipynb")
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='nbmesh-products']").click()
    panel = page.locator("#nbmesh-products")
    status = panel.locator(".nbmesh-Panel-status")
    expect(status).to_have_text(f"2 products at {e2e_runtime.url}")
    search = panel.locator(".nbmesh-Panel-search")
    search.fill("sales")
    expect(status).to_have_text(f'1 of 2 products match "sales" at {e2e_runtime.url}')
    expect(panel.locator(".nbmesh-Product:visible")).to_have_count(1)
    search.fill("")
    expect(status).to_have_text(f"2 products at {e2e_runtime.url}")

    # A background run, seen queued or running, then finished, with no click on refresh.
    accepted = runtime.post("/api/products/alpha-sales/runs", json={"wait": 6})
    assert accepted.status_code == 202, accepted.text
    item = panel.locator(".nbmesh-Product[data-product='alpha-sales']")
    item.locator(".nbmesh-Product-head").click()
    expect(item.locator(".nbmesh-Lineage-downstream")).to_contain_text("beta-weather")
    expect(item.locator(".nbmesh-Run-queued, .nbmesh-Run-running")).to_have_count(1)
    expect(item.locator(".nbmesh-Run-succeeded")).to_have_count(1)
    run_id = accepted.json()["run_id"]
    expect(item.locator(".nbmesh-Run-id")).to_have_attribute("title", run_id)
    # A long run id is cut, never a horizontal scrollbar.
    assert panel.evaluate("node => node.scrollWidth <= node.clientWidth")
    page.screenshot(path=str(SHOTS / "panel-runs-and-lineage.png"))

    # Lineage both ways: beta-weather names what triggers it, and opens it.
    beta = panel.locator(".nbmesh-Product[data-product='beta-weather']")
    beta.locator(".nbmesh-Product-head").click()
    expect(beta.locator(".nbmesh-Lineage-upstream")).to_contain_text("alpha-sales")

    # The run's notebook tab is named product@version · time, read-only, with no "Click to add a cell".
    item.locator(".nbmesh-Run-succeeded .nbmesh-Run-open").click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    expect(tab).to_contain_text("alpha-sales@1 · ")
    viewer = page.locator(".jp-NotebookPanel.nbmesh-RunViewer >> visible=true")
    expect(viewer).to_contain_text("wait = 6")
    expect(viewer.locator(".jp-Notebook-footer")).to_be_hidden()
