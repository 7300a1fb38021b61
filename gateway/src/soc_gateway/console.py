"""The web console: the static build of ``web/`` served at ``/`` beside the API.

- ``/assets/*`` are content-hashed by the build: cached for a year as immutable.
- Other files at the top of the build (``favicon.svg``) are cached for an hour.
- A browser navigating to any path the routing table does not route (``/``, ``/dashboard``,
  ``/offenses/12``) gets ``index.html``, never cached, so a new build is picked up at once; the
  console's own router draws the page. API clients (no ``text/html`` in ``Accept``) keep the
  suite's JSON 404 for unknown paths, and paths the table routes are never shadowed.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from soc_shared.errors import error_response
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from soc_gateway.routing import RouteTable

ASSETS_PREFIX = "/assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=3600"
NO_CACHE = "no-cache"
# The console's pages: its own scripts and styles only (no outside asset), the API and the chat
# socket on the same origin.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("image/svg+xml", ".svg")
mimetypes.add_type("font/woff2", ".woff2")


class ConsoleApp:
    """Serves the console's build in front of ``proxy`` (the gateway), which gets every other request."""

    def __init__(self, proxy: ASGIApp, table: RouteTable, directory: Path | None) -> None:
        self.proxy = proxy
        self.table = table
        self.root = directory.resolve() if directory and (directory / "index.html").is_file() else None
        self.top_files = {p.name for p in self.root.iterdir() if p.is_file()} if self.root else set()

    @property
    def enabled(self) -> bool:
        return self.root is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.root is None or scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.proxy(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(ASSETS_PREFIX):
            await self._asset(path, scope, receive, send)
        elif path.count("/") == 1 and path[1:] in self.top_files and path != "/index.html":
            await self._file(self.root / path[1:], SHORT)(scope, receive, send)
        elif self._is_navigation(scope, path):
            await self._file(self.root / "index.html", NO_CACHE, csp=True)(scope, receive, send)
        else:
            await self.proxy(scope, receive, send)

    def _is_navigation(self, scope: Scope, path: str) -> bool:
        if path == "/" or path == "/index.html":
            return True
        segments = path.split("/")
        if any(s in (".", "..") or s in self.table.blocked_segments for s in segments):
            return False
        if self.table.route_for(path) is not None:
            return False
        accept = b""
        for name, value in scope.get("headers") or ():
            if name == b"accept":
                accept = value
                break
        return b"text/html" in accept

    async def _asset(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.root is not None
        relative = path[len(ASSETS_PREFIX) :]
        candidate = (self.root / "assets" / relative).resolve()
        if (
            not relative
            or ".." in relative.split("/")
            or not candidate.is_relative_to(self.root)
            or not candidate.is_file()
        ):
            await error_response(404, "not_found", "no such file")(scope, receive, send)
            return
        await self._file(candidate, IMMUTABLE)(scope, receive, send)

    @staticmethod
    def _file(file: Path, cache: str, *, csp: bool = False) -> Response:
        headers = {"Cache-Control": cache}
        if csp:
            headers["Content-Security-Policy"] = CONSOLE_CSP
        return FileResponse(file, headers=headers)
