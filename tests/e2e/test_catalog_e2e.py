"""End to end in a real browser: the catalog page and /docs of a real `nbmesh serve`, in Debian's Chromium.

A consumer without JupyterLab searches the catalog, opens a product, fills the form built from its
parameter schema, invokes it and reads the result as a table, copies ready curl and Python, sees
the run among the recent runs, follows the lineage graph to the product that run triggered, and
tries the API in Swagger UI. On a runtime with a token the page asks for it and then works. Every
request the browser makes is checked to stay on the runtime (127.0.0.1). Screenshots of each step
go to test-output/e2e-catalog/.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from ..conftest import ROOT, Runtime, free_port, make_notebook, runs_of, wait_for
from .conftest import empty_folder

SHOTS = ROOT / "test-output" / "e2e-catalog"
TOKEN = "e2e-catalog-token"
TIMEOUT_MS = 60_000

FRUIT_PRICES = make_notebook(
    [
        ("setup", "import pandas as pd"),
        ("parameters", 'fruit = "apple"  # which fruit to price\nn: int = 3  # how many days'),
        ("", 'if n < 1:\n    raise ValueError("n must be at least 1")'),
        ("output", 'pd.DataFrame({"fruit": [fruit] * n, "day": list(range(1, n + 1)), '
                   '"price": [round(1.5 + 0.25 * d, 2) for d in range(n)]})'),
    ],
    name="fruit-prices", title="Fruit prices", owner="market-team",
    description="Daily prices of one fruit at the market, one row per day.",
)  # fmt: skip
FRUIT_REPORT = make_notebook(
    [("parameters", "rows: list = []  # the price rows"), ("output", "{'days': len(rows)}")],
    name="fruit-report", title="Fruit report", owner="market-team", description="Counts the days of each new price list.",
    triggers=[{"event": "product.fruit-prices.succeeded", "parameters": {"rows": "$event.result"}}],
)
WEATHER_NOTE = make_notebook(
    [("parameters", "city = 'Oslo'  # a city"), ("output", "{'city': city, 'note': 'mild'}")],
    name="weather-note", title="Weather note", owner="climate-team", description="A short note on the weather.",
)


def start(folder: Path, *args: str) -> Runtime:
    runtime = Runtime(store=str(folder / "store"), port=free_port(), args=["--pool-size", "3", *args]).start()
    headers = {"Authorization": f"Bearer {TOKEN}"} if "--token" in args else {}
    with runtime.client(headers=headers) as http:
        for notebook in (FRUIT_PRICES, FRUIT_REPORT, WEATHER_NOTE):
            name = notebook["metadata"]["nbmesh"]["name"]
            assert http.put(f"/api/products/{name}", json=notebook).status_code == 201
    return runtime


@pytest.fixture(scope="module")
def open_runtime(tmp_path_factory):
    runtime = start(tmp_path_factory.mktemp("catalog-open"))
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def token_runtime(tmp_path_factory):
    runtime = start(tmp_path_factory.mktemp("catalog-token"), "--token", TOKEN)
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def shots() -> Path:
    return empty_folder(SHOTS)


@pytest.fixture
def context(browser: Browser, shots: Path):
    """A fresh browser context (its own sessionStorage) whose every request must stay on loopback."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    yield context
    context.close()
    assert requests, "the browser made no request"
    outside = [url for url in requests if urlsplit(url).hostname != "127.0.0.1"]
    assert not outside, f"requests left the machine's loopback: {outside[:5]}"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_search_open_invoke_and_follow_the_lineage(context: BrowserContext, open_runtime: Runtime):
    page = context.new_page()
    page.goto(f"{open_runtime.url}/")
    cards = page.locator("#products .card")
    visible = page.locator("#products .card:visible")
    expect(cards).to_have_count(3)
    expect(page.locator("#count")).to_have_text("3 products")
    # The whole catalog's lineage: the one subscription between two products.
    expect(page.locator("#lineage path.edge[data-from='fruit-prices'][data-to='fruit-report']")).to_have_count(1)
    expect(page.locator("#lineage .node[data-name='weather-note']")).to_have_count(0)  # linked to nothing
    shot(page, "01-catalog")

    # Search: by words of the name and title, by owner, and nothing.
    page.fill("#search", "fruit")
    expect(visible).to_have_count(2)
    expect(page.locator("#count")).to_have_text("2 of 3 products match")
    page.fill("#search", "climate")
    expect(visible).to_have_count(1)
    expect(visible.first).to_have_attribute("data-name", "weather-note")
    page.fill("#search", "market daily")
    expect(visible).to_have_count(1)
    expect(visible.first).to_have_attribute("data-name", "fruit-prices")
    page.fill("#search", "zebra")
    expect(visible).to_have_count(0)
    expect(page.locator("#count")).to_have_text("0 of 3 products match")
    page.fill("#search", "fruit")
    shot(page, "02-search")

    # Open a product: its title, owner, description, versions and the parameters' help.
    page.locator("#products .card[data-name='fruit-prices'] a").click()
    expect(page).to_have_url(re.compile(r"#/p/fruit-prices$"))
    expect(page.locator("#product-title")).to_have_text("Fruit prices")
    head = page.locator(".product-head")
    expect(head.locator(".owner")).to_have_text("market-team")
    expect(head.locator(".description")).to_have_text("Daily prices of one fruit at the market, one row per day.")
    expect(head).to_contain_text("versions v1")
    expect(page.locator("#invoke-form .help")).to_have_text(["which fruit to price", "how many days"])
    expect(page.locator("#freshness")).to_have_text("No runs yet.")

    # The form starts at the defaults; the snippets follow what the user types.
    expect(page.locator("#param-fruit")).to_have_value("apple")
    expect(page.locator("#param-n")).to_have_value("3")
    page.fill("#param-fruit", "pear")
    page.fill("#param-n", "4")
    expect(page.locator("#snippet-curl")).to_contain_text(f"'{open_runtime.url}/api/products/fruit-prices/invoke'")
    expect(page.locator("#snippet-curl")).to_contain_text("""-d '{"fruit":"pear","n":4}'""")
    expect(page.locator("#snippet-curl")).not_to_contain_text("Authorization")
    expect(page.locator("#snippet-python")).to_contain_text(f'client = Client("{open_runtime.url}")')
    expect(page.locator("#snippet-python")).to_contain_text('client.invoke("fruit-prices", fruit="pear", n=4)')

    # Invoke: the result, a list of records, is a table.
    page.click("#invoke")
    table = page.locator("#result table.result-table")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(table.locator("thead th")).to_have_text(["fruit", "day", "price"])
    expect(table.locator("tbody tr").nth(1).locator("td")).to_have_text(["pear", "2", "1.75"])
    expect(page.locator("#result .run-head .status")).to_have_text("succeeded")
    # The run is among the recent runs, and the freshness line says so.
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#runs tbody tr .status")).to_have_text("succeeded")
    expect(page.locator("#freshness")).to_contain_text("Last successful run")
    expect(page.locator("#contract-link")).to_have_attribute("href", "api/products/fruit-prices/contract")
    # Its lineage: this product, and the product its runs trigger.
    expect(page.locator("#lineage .node.current")).to_have_attribute("data-name", "fruit-prices")
    expect(page.locator("#lineage a.node[data-name='fruit-report']")).to_have_count(1)
    shot(page, "03-product-result")

    # A failed run says why; input the form cannot send is refused before any request.
    page.fill("#param-n", "0")
    page.click("#invoke")
    expect(page.locator("#result .run-head .status")).to_have_text("failed")
    expect(page.locator("#result > .error")).to_have_text("ValueError: n must be at least 1")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    invokes: list[str] = []
    page.on("request", lambda request: request.url.endswith("/invoke") and invokes.append(request.url))
    page.fill("#param-n", "2.5")
    expect(page.locator("#form-errors")).to_have_text("n: a whole number is needed.")
    page.click("#invoke")
    expect(page.locator("#result > .error")).to_have_text("ValueError: n must be at least 1")  # still the last run's
    assert invokes == []
    shot(page, "04-product-failed")

    # The successful run triggered fruit-report: follow the graph to it and see that run.
    with httpx.Client(base_url=open_runtime.url) as http:
        wait_for(lambda: any(run["status"] == "succeeded" for run in runs_of(http, "fruit-report")), 60, "fruit-report's run")
    page.locator("#lineage a.node[data-name='fruit-report']").click()
    expect(page.locator("#product-title")).to_have_text("Fruit report")
    expect(page.locator("#runs tbody tr").first).to_contain_text("event product.fruit-prices.succeeded")
    expect(page.locator("#lineage .node.current")).to_have_attribute("data-name", "fruit-report")


def test_docs_renders_swagger_ui_and_runs_an_operation(context: BrowserContext, open_runtime: Runtime):
    page = context.new_page()
    page.goto(f"{open_runtime.url}/docs")
    expect(page.locator(".opblock-summary-path[data-path='/api/products/{name}/invoke']")).to_have_count(1)
    expect(page.locator(".opblock-summary-path[data-path='/api/lineage']")).to_have_count(1)
    # Each product's own typed invoke path, from /openapi.json.
    expect(page.locator(".opblock-summary-path[data-path='/api/products/fruit-prices/invoke']")).to_have_count(1)
    operation = page.locator("#operations-default-listProducts")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    expect(operation.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text('"name": "fruit-prices"')
    shot(page, "05-docs")


def test_with_a_token_the_page_asks_for_it_and_sends_it(context: BrowserContext, token_runtime: Runtime):
    page = context.new_page()
    statuses: dict[str, list[int]] = {}
    page.on("response", lambda response: statuses.setdefault(urlsplit(response.url).path, []).append(response.status))
    page.goto(f"{token_runtime.url}/")
    expect(page.locator("#notice")).to_contain_text("This runtime needs a token")
    expect(page.locator("#view .error")).to_contain_text("A valid bearer token is required")
    assert statuses["/"] == [200] and statuses["/api/products"] == [401]
    shot(page, "06-token-needed")

    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type='submit']")
    expect(page.locator("#products .card")).to_have_count(3)
    expect(page.locator("#notice")).to_be_hidden()
    assert statuses["/api/products"] == [401, 200]
    page.locator("#products .card[data-name='fruit-prices'] a").click()
    page.click("#invoke")
    expect(page.locator("#result table.result-table tbody tr")).to_have_count(3)
    # The snippets name the variable, never the token itself.
    expect(page.locator("#snippet-curl")).to_contain_text('-H "Authorization: Bearer $NBMESH_TOKEN"')
    assert TOKEN not in page.locator("#snippet-curl").inner_text() + page.locator("#snippet-python").inner_text()

    # /docs in the same tab loads the caller's document with the token the tab keeps.
    page.goto(f"{token_runtime.url}/docs")
    expect(page.locator(".opblock-summary-path[data-path='/api/products/fruit-prices/invoke']")).to_have_count(1)
    assert statuses["/openapi.json"] == [200]

    # Forgotten, the token is gone from the tab: the catalog asks again.
    page.goto(f"{token_runtime.url}/")
    page.click("#token-forget")
    expect(page.locator("#notice")).to_contain_text("This runtime needs a token")
    expect(page.locator("#products .card")).to_have_count(0)
