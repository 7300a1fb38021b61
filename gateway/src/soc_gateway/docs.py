"""The API documentation: merged spec as JSON and YAML, Swagger UI and ReDoc.

The pages are FastAPI's own HTML builders pointed at the Swagger UI / ReDoc bundles shipped inside
the ``fastapi-offline`` package, served by the gateway itself: no CDN, so the pages work offline and
under a CSP of ``'self'``. Swagger UI's page carries one inline script; its SHA-256 goes into that
page's CSP instead of allowing inline scripts in general.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from soc_gateway.openapi import OpenApiAggregator

STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
STATIC_URL = "/docs/static"
TITLE = "SOC Portal API"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
# Styles: Swagger UI and ReDoc (styled-components) inject <style> elements; ReDoc's search runs in
# a worker started from a blob: URL; both draw icons from data: URLs.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR.as_posix())


def _page_with_csp(page: HTMLResponse) -> HTMLResponse:
    html = bytes(page.body).decode()
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    page.headers["Content-Security-Policy"] = _DOCS_CSP.format(hashes=hashes)
    page.headers["Cache-Control"] = "no-cache"
    return page


def docs_router(aggregator: OpenApiAggregator, first_fetch_wait: float = 3.0) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/swagger.json")
    @router.get("/openapi.json")
    async def swagger_json(refresh: bool = False) -> Response:
        spec = await aggregator.refresh(force=False) if refresh else await aggregator.first(first_fetch_wait)
        return Response(spec.json_bytes, media_type="application/json")

    @router.get("/swagger.yaml")
    async def swagger_yaml(refresh: bool = False) -> Response:
        spec = await aggregator.refresh(force=False) if refresh else await aggregator.first(first_fetch_wait)
        return Response(spec.yaml_bytes, media_type="application/yaml")

    @router.get("/docs/")
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page_with_csp(
            get_swagger_ui_html(
                openapi_url=f"{root}/swagger.json",
                title=f"{TITLE} - Swagger UI",
                swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                oauth2_redirect_url=None,
                swagger_ui_parameters={"persistAuthorization": True},
            )
        )

    @router.get("/redoc/")
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page_with_csp(
            get_redoc_html(
                openapi_url=f"{root}/swagger.json",
                title=f"{TITLE} - ReDoc",
                redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                with_google_fonts=False,
            )
        )

    return router
