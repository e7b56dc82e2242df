"""The web pages over HTTP (docs/reference/http-api.md, "Web pages"): `GET /` and `GET /docs` answer
HTML with a policy that keeps the browser on this origin, every asset they name loads from the
runtime itself, and with a token configured the pages load while the API calls they make are refused
without the token. The same pages driven in a real browser: tests/e2e/test_catalog_e2e.py."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import pytest_asyncio

from kernel_runtime.http.access import Access
from kernel_runtime.http.app import create_app
from kernel_runtime.runtime.service import Service
from kernel_runtime.settings import PoolSettings, Settings
from kernel_runtime.store import open_store
from kernel_runtime.store.repository import Repository
from tests.conftest import error_of, make_notebook

TOKEN = "pages-test-token"
BASE = "http://127.0.0.1"
# The API calls the catalog page makes (ui/catalog.js) and the document /docs loads.
PAGE_CALLS = ["/api/products", "/api/lineage", "/api/products/echo", "/api/products/echo/runs?limit=10", "/openapi.json"]
MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Assets(HTMLParser):
    """The scripts, style sheets and icons a page names."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"])
        elif tag == "link" and found.get("href"):
            self.urls.append(found["href"])


def assets_of(html: str) -> list[str]:
    parser = Assets()
    parser.feed(html)
    return parser.urls


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(tmp_path_factory):
    """One service behind two apps: the open loopback default, and one started with a token."""
    service = Service(Repository(open_store(str(tmp_path_factory.mktemp("pages-store")))), Settings(pool=PoolSettings(size=1, spares=0)))
    open_app = create_app(service)
    token_app = create_app(service, access=Access.configure(TOKEN, None))
    async with open_app.router.lifespan_context(open_app):
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=open_app), base_url=BASE) as open_client,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=token_app), base_url=BASE) as token_client,
        ):
            answer = await open_client.put("/api/products/echo", json=make_notebook([("parameters", "x = 1"), ("output", "x")]))
            assert answer.status_code == 201, answer.text
            yield open_client, token_client


@pytest.mark.parametrize("path", ["/", "/docs"])
async def test_pages_answer_html_whose_assets_all_load_from_the_runtime(clients, path):
    for client in clients:  # with or without a token configured, and without sending one
        page = await client.get(path)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
        urls = [url for url in assets_of(page.text) if not url.startswith("data:")]
        assert len(urls) >= 3, urls
        for url in urls:
            resolved = urljoin(f"{BASE}{path}", url)
            assert urlsplit(resolved).netloc == "127.0.0.1", f"{path} names {url}, which is not on the runtime"
            asset = await client.get(resolved)
            assert asset.status_code == 200, f"{url} from {path}: {asset.status_code}"
            suffix = "." + url.rsplit(".", 1)[-1]
            assert asset.headers["content-type"].startswith(MEDIA[suffix]), (url, asset.headers["content-type"])


async def test_docs_serves_swagger_ui_5_from_the_package(clients):
    open_client, _ = clients
    page = (await open_client.get("/docs")).text
    bundle = next(url for url in assets_of(page) if url.endswith("swagger-ui-bundle.js"))
    script = (await open_client.get(urljoin(f"{BASE}/docs", bundle))).text
    # Swagger UI 5 renders OpenAPI 3.1 (4.x shows only "openapi: 3.0.n" documents).
    assert "isOAS31" in script
    assert (await open_client.get("/openapi.json")).json()["openapi"] == "3.1.0"


async def test_with_a_token_the_pages_load_but_their_api_calls_need_it(clients):
    _, token_client = clients
    assert (await token_client.get("/")).status_code == 200
    assert (await token_client.get("/ui/catalog.js")).status_code == 200
    for path in PAGE_CALLS:
        error_of(await token_client.get(path), 401)
        answer = await token_client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200, (path, answer.text)
    refused = await token_client.post("/api/products/echo/invoke", json={"x": 2})
    assert error_of(refused, 401)["error"].startswith("A valid bearer token is required")
    ran = await token_client.post("/api/products/echo/invoke", json={"x": 2}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ran.status_code == 200 and ran.json()["result"] == 2


async def test_without_a_token_the_cross_site_rules_cover_the_pages_and_their_calls(clients):
    open_client, _ = clients
    # A page of another site (DNS rebinding) gets neither the page nor the API.
    error_of(await open_client.get("/", headers={"Host": "evil.example"}), 403)
    error_of(await open_client.get("/api/products", headers={"Origin": "http://evil.example"}), 403)
    # The page's own invoke: same origin, declared JSON, as a browser sends it.
    own = {"Origin": BASE, "Content-Type": "application/json"}
    ran = await open_client.post("/api/products/echo/invoke", content=b'{"x": 5}', headers=own)
    assert ran.status_code == 200 and ran.json()["result"] == 5
    error_of(await open_client.post("/api/products/echo/invoke", content=b"x=5", headers={**own, "Content-Type": "text/plain"}), 415)


async def test_assets_outside_the_page_folders_are_not_served(clients):
    open_client, _ = clients
    error_of(await open_client.get("/ui/no-such-file.js"), 404)
    error_of(await open_client.get("/ui/%2e%2e/%2e%2e/pages.py"), 404)
    error_of(await open_client.get("/docs/swagger-ui/%2e%2e/core.py"), 404)
    # The pages are not API operations: /openapi.json leaves them out.
    paths = (await open_client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths and "/docs" not in paths and not any(p.startswith("/ui") for p in paths)
