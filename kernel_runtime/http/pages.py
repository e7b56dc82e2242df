"""The runtime's web pages (docs/reference/http-api.md, "Web pages"): the consumers' catalog at ``GET /``
and Swagger UI at ``GET /docs``, static files shipped in the package, and the paths they are served on.

The pages hold no data: every product, run and graph they show is fetched by the page from the
API, with the token the user gives the page, so every listing stays filtered by the caller and
every right is checked where it always is. The pages and their assets are therefore public: the
gate of :mod:`.app` lets ``PUBLIC_PATHS`` and ``PUBLIC_PREFIXES`` through without a token. They
fetch nothing from anywhere but the runtime itself (Swagger UI comes from the ``swagger-ui-py``
wheel), and their Content-Security-Policy tells the browser to refuse anything else. They are
not API operations, so they are not in ``ROUTES`` nor in ``/openapi.json``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
CATALOG_ASSETS = "/ui"
SWAGGER_ASSETS = "/docs/swagger-ui"
PUBLIC_PATHS = frozenset({"/", "/docs"})
PUBLIC_PREFIXES = (CATALOG_ASSETS + "/", SWAGGER_ASSETS + "/")

# Only this origin, for scripts, styles, images and API calls alike. Inline styles are allowed
# because Swagger UI's React sets style attributes; its SVG icons are data: URLs.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


# Fixed media types for the assets: `mimetypes` (which StaticFiles asks) is one table per process,
# and other packages loaded beside the runtime (jupyter_server) change what `.js` maps to.
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


class Assets(StaticFiles):
    """Static files whose scripts, styles and pages always carry the same media type."""

    def file_response(self, full_path: Any, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(full_path, *args, **kwargs)
        media_type = MEDIA_TYPES.get(os.path.splitext(str(full_path))[1])
        if media_type is not None:
            response.headers["content-type"] = media_type
        return response


def swagger_ui_dir() -> Path:
    """Swagger UI's static files, as the ``swagger-ui-py`` wheel ships them.

    Found, not imported: the package's ``__init__`` loads jinja2 and YAML for framework
    handlers nbmesh does not use.
    """
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The swagger-ui-py package is missing: reinstall nbmesh (pip install nbmesh).")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def catalog_page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=HEADERS)


async def docs_page(request: Request) -> Response:
    return FileResponse(STATIC / "docs.html", headers=HEADERS)


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", catalog_page, methods=["GET"], include_in_schema=False),
        Route("/docs", docs_page, methods=["GET"], include_in_schema=False),
        Mount(CATALOG_ASSETS, app=Assets(directory=STATIC / "ui")),
        Mount(SWAGGER_ASSETS, app=Assets(directory=swagger_ui_dir())),
    ]


def is_public(path: str) -> bool:
    """A page or one of its assets: answered without a token."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
