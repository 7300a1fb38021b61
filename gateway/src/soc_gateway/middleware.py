"""The gateway's pure ASGI middleware (no BaseHTTPMiddleware: nothing is buffered, little is spent).

Order, outermost first: Tracing (OpenTelemetry server span) -> SecurityHeaders -> RequestContext
(soc_shared: X-Request-ID) -> AccessLog -> CORS (when configured) -> Dispatch -> the app's own
routes, or the proxy.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence

from loguru import logger
from soc_shared.context import request_id_var
from soc_shared.errors import error_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.utils import ClientDisconnected

from soc_gateway.proxy import GATEWAY_SCOPE_KEY

# Everything that is not a page of the docs: JSON, files. The docs pages send their own CSP.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, *, hsts_max_age: int = 0, hsts_include_subdomains: bool = True) -> None:
        self.app = app
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", API_CSP.encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts_max_age > 0:
            value = f"max-age={hsts_max_age}" + ("; includeSubDomains" if hsts_include_subdomains else "")
            headers.append((b"strict-transport-security", value.encode()))
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in self.headers if item[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AccessLogMiddleware:
    """One JSON line per request (method, path, status, duration, upstream, user, request id — never
    a header value, never the query string, which may carry a WebSocket token). It also turns an
    unhandled exception into the suite's 500 error shape while the request id is still known."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        info: dict[str, object] = {}
        scope[GATEWAY_SCOPE_KEY] = info
        started = time.perf_counter()
        status = 0

        async def send_observed(message: Message) -> None:
            nonlocal status
            kind_ = message["type"]
            if kind_ == "http.response.start":
                status = message["status"]
            elif kind_ == "websocket.accept" and not status:
                status = 101
            elif kind_ == "websocket.close":
                info["close_code"] = message.get("code", 1000)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except ClientDisconnected:
            # The client went away while we were still sending (a closed tab, a dropped socket):
            # the end of a conversation, not a fault of ours, and nobody is left to answer.
            info.setdefault("close_code", 1001)
            status = status or 499
        except Exception as exc:
            logger.opt(exception=exc).error(
                "unhandled error on {} {}", scope.get("method", "WS"), scope["path"]
            )
            if kind == "http" and status == 0:
                status = 500
                await error_response(500, "internal_error", "an internal error occurred; it has been logged")(
                    scope, receive, send
                )
            elif kind == "http":
                raise
        finally:
            # The fields go into the JSON line as they are; the message repeats the gist for dev logs.
            logger.info(
                "{method} {path} {status} {duration_ms}ms",
                method=scope.get("method", "WS"),
                path=scope["path"],
                status=status or (403 if kind == "websocket" else 500),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                upstream=info.get("upstream"),
                user_id=info.get("user_id"),
                close_code=info.get("close_code"),
                client=(scope.get("client") or ("-", 0))[0],
                request_id=request_id_var.get(),
            )


class DispatchMiddleware:
    """Sends every path that is not the gateway's own straight to the proxy, past the router (which
    would scan its routes twice, looking for a slash redirect, before falling back). The operations
    endpoints that describe the inside of the suite (``/metrics``, ``/readyz``) answer only peers on
    the operations networks; to anyone else they do not exist."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        proxy: ASGIApp,
        is_own_path: Callable[[str], bool],
        internal_paths: frozenset[str] = frozenset(),
        internal_networks: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.proxy = proxy
        self.is_own_path = is_own_path
        self.internal_paths = internal_paths
        self.internal_networks = [ipaddress.ip_network(net, strict=False) for net in internal_networks]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if not self.is_own_path(path):
            await self.proxy(scope, receive, send)
        elif path.rstrip("/") in self.internal_paths and not self._internal_peer(scope):
            await error_response(404, "not_found", "no such endpoint")(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _internal_peer(self, scope: Scope) -> bool:
        try:
            peer = ipaddress.ip_address((scope.get("client") or ("", 0))[0])
        except ValueError:
            return False
        return any(peer in network for network in self.internal_networks)
