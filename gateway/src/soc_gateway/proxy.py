"""The reverse proxy: admission (route, rate limits, token) and the streaming HTTP relay.

A pure ASGI app: the dispatch middleware sends it every path the gateway does not serve itself
(docs, health, metrics); it is also the router's fallback. Bodies stream both ways; nothing is
buffered whole.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from loguru import logger
from opentelemetry import trace
from soc_shared.context import request_id_var
from soc_shared.errors import error_response
from soc_shared.http_transport import Http1Transport
from soc_shared.security import Principal
from soc_shared.settings import internal_tls
from starlette.types import Receive, Scope, Send

from soc_gateway import metrics
from soc_gateway.config import Settings
from soc_gateway.identity import IDENTITY_PREFIX, Authenticator, InvalidToken, bearer_token, identity_headers
from soc_gateway.ratelimit import TokenBuckets, retry_after_header
from soc_gateway.routing import BadPath, NotRouted, Route, RouteTable

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
FORWARDING = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip"}
)
# Response headers the gateway's own server and middleware write (uvicorn always adds date and
# server; the request-id middleware adds x-request-id): the upstream's copies would be duplicates.
RESPONSE_OWNED = frozenset({b"date", b"server", b"x-request-id"})
# Settled on the client's own hop (uvicorn answers 100-continue itself): the upstream gets the body at once.
EXPECT = b"expect"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Responses at least this large (or of unknown length) watch for the client going away, so that a
# download nobody reads any more stops pulling from the upstream.
_WATCH_DISCONNECT_BYTES = 1 << 20

GATEWAY_SCOPE_KEY = "soc_gateway"


class Rejection(Exception):
    """An answer the gateway gives itself, in the suite's error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details

    async def respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.REJECTED.labels(self.code).inc()
        await error_response(self.status, self.code, self.message, self.details, self.headers)(
            scope, receive, send
        )


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


@dataclass(slots=True)
class Admission:
    route: Route
    forward_path: str
    client: str
    principal: Principal | None
    token: str | None


@dataclass(slots=True)
class _RequestBody:
    """The client's body as an async iterator for httpx, counting bytes against the limit."""

    receive: Receive
    limit: int
    received: int = 0
    started: bool = False
    _done: bool = field(default=False)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        while not self._done:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            self.received += len(chunk)
            if self.received > self.limit:
                raise BodyTooLarge()
            self._done = not message.get("more_body", False)
            if chunk:
                yield chunk


class ClientAddresses:
    """The caller's address: the peer, or — when the peer is a trusted proxy — the last address in
    X-Forwarded-For that is not itself a trusted proxy."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(item, strict=False) for item in trusted]

    def is_trusted(self, address: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, scope: Scope, forwarded_for: bytes | None) -> tuple[str, bool]:
        peer = (scope.get("client") or ("unknown", 0))[0]
        if not forwarded_for or not self.is_trusted(peer):
            return peer, False
        for hop in reversed(forwarded_for.decode("latin-1").split(",")):
            hop = hop.strip()
            if hop and not self.is_trusted(hop):
                return hop, True
        return peer, True


class Upstreams:
    """Base URLs and the transport to each upstream: one shared keep-alive pool
    (:class:`~soc_shared.http_transport.Http1Transport`), unless a test overrides a service's transport."""

    def __init__(
        self, settings: Settings, transport_overrides: dict[str, httpx.AsyncBaseTransport] | None = None
    ) -> None:
        self.urls = settings.upstream_urls
        self.shared = Http1Transport(
            max_connections=settings.upstream_max_connections,
            max_keepalive=settings.upstream_max_keepalive,
            keepalive_expiry=settings.upstream_keepalive_expiry,
            verify=internal_tls(),  # https upstreams: the system store plus SOC_TLS_CA_FILE
        )
        self.overrides = dict(transport_overrides or {})

    def transport(self, service: str) -> httpx.AsyncBaseTransport:
        return self.overrides.get(service, self.shared)

    def url(self, service: str) -> str:
        try:
            return self.urls[service]
        except KeyError:
            raise Rejection(
                502, "upstream_unavailable", f"no address is configured for the {service} service"
            ) from None

    async def aclose(self) -> None:
        await self.shared.aclose()
        for transport in self.overrides.values():
            await transport.aclose()


class Gateway:
    """Admission and the HTTP relay. WebSocket scopes go to :mod:`soc_gateway.websocket`."""

    def __init__(
        self, settings: Settings, table: RouteTable, authenticator: Authenticator, upstreams: Upstreams
    ) -> None:
        self.settings = settings
        self.table = table
        self.authenticator = authenticator
        self.upstreams = upstreams
        self.addresses = ClientAddresses(settings.trusted_proxies)
        self.address_buckets = TokenBuckets(
            settings.rate_limit_address_per_second, settings.rate_limit_address_burst
        )
        self.user_buckets = TokenBuckets(settings.rate_limit_user_per_second, settings.rate_limit_user_burst)
        self.login_buckets = TokenBuckets(
            settings.rate_limit_login_per_minute / 60.0, settings.rate_limit_login_burst
        )
        connect = settings.upstream_connect_timeout
        self.timeouts = {
            route: httpx.Timeout(route.timeout, connect=min(connect, route.timeout)).as_dict()
            for route in table.routes
        }
        self.websocket_relay: Any = None  # set by main: soc_gateway.websocket.WebSocketRelay

    # --- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.websocket_relay(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        headers = _header_map(scope)
        try:
            admission = await self.admit(scope, headers)
            await self.relay(scope, receive, send, admission, headers)
        except Rejection as rejection:
            await rejection.respond(scope, receive, send)
        except ClientGone:
            logger.debug("client went away before its request body was read")

    # --- admission -------------------------------------------------------------------------------

    async def admit(self, scope: Scope, headers: dict[bytes, bytes], token: str | None = None) -> Admission:
        """Route, rate limits and token: everything decided before an upstream is contacted."""
        try:
            route, forward_path = self.table.resolve(scope["path"])
        except NotRouted:
            raise Rejection(404, "not_found", "no such endpoint") from None
        except BadPath:
            raise Rejection(400, "bad_request", "the path contains dot segments") from None
        scope["route"] = route  # names the request in the request metrics
        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(f"{scope.get('method', 'WS')} {route.path}")
            span.set_attribute("http.route", route.path)
        info = scope.get(GATEWAY_SCOPE_KEY)
        if info is not None:
            info["upstream"] = route.service

        client, _ = self.addresses.client(scope, headers.get(b"x-forwarded-for"))
        self._limit(self.address_buckets, client, "too many requests from this address")
        if route.rate_limit == "login":
            self._limit(
                self.login_buckets, client, "too many login attempts from this address; wait before retrying"
            )

        principal = None
        if token is None:
            token = bearer_token(headers.get(b"authorization"))
        if not route.public:
            if token is None:
                raise Rejection(
                    401,
                    "not_authenticated",
                    "authentication required",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                principal = await self.authenticator.verify(token)
            except InvalidToken:
                raise Rejection(
                    401,
                    "invalid_token",
                    "invalid or expired token",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                ) from None
            if principal.is_service:
                # Service tokens are for service-to-service calls inside: one presented from
                # outside (a leaked or stolen one) opens nothing here.
                raise Rejection(403, "service_token_refused", "service tokens are not accepted from outside")
            if info is not None:
                info["user_id"] = principal.sub
            self._limit(self.user_buckets, principal.sub, "too many requests for this user")
        return Admission(route, forward_path, client, principal, token)

    @staticmethod
    def _limit(buckets: TokenBuckets, key: str, message: str) -> None:
        wait = buckets.take(key)
        if wait > 0:
            retry_after = retry_after_header(wait)
            raise Rejection(
                429,
                "rate_limited",
                message,
                headers={"Retry-After": retry_after},
                details={"retry_after": int(retry_after)},
            )

    def upstream_headers(
        self,
        scope: Scope,
        admission: Admission,
        raw: list[tuple[bytes, bytes]],
        drop: frozenset[bytes] = frozenset(),
    ) -> list[tuple[bytes, bytes]]:
        """End-to-end headers of the client, minus what the gateway owns, plus forwarding and identity."""
        connection_named: set[bytes] = set()
        for name, value in raw:
            if name == b"connection":
                connection_named.update(token.strip().lower() for token in value.split(b","))
        peer = (scope.get("client") or ("unknown", 0))[0]
        trusted = self.addresses.is_trusted(peer)
        out: list[tuple[bytes, bytes]] = []
        incoming: dict[bytes, bytes] = {}
        host = b""
        for name, value in raw:
            if name in HOP_BY_HOP or name in connection_named or name in drop:
                continue
            if name == b"host":
                host = value
            elif name in FORWARDING:
                incoming[name] = value
            elif name == b"x-request-id" or name == EXPECT or name.startswith(IDENTITY_PREFIX):
                continue
            else:
                out.append((name, value))
        forwarded_for = peer.encode("latin-1")
        if trusted and b"x-forwarded-for" in incoming:
            forwarded_for = incoming[b"x-forwarded-for"] + b", " + forwarded_for
        out.append((b"x-forwarded-for", forwarded_for))
        out.append((b"x-forwarded-proto", (trusted and incoming.get(b"x-forwarded-proto")) or _scheme(scope)))
        forwarded_host = (trusted and incoming.get(b"x-forwarded-host")) or host
        if forwarded_host:
            out.append((b"x-forwarded-host", forwarded_host))
        request_id = request_id_var.get()
        if request_id:
            out.append((b"x-request-id", request_id.encode("latin-1")))
        if admission.principal is not None:
            out.extend(identity_headers(admission.principal))
        return out

    # --- HTTP relay --------------------------------------------------------------------------------

    async def relay(
        self, scope: Scope, receive: Receive, send: Send, admission: Admission, headers: dict[bytes, bytes]
    ) -> None:
        method: str = scope["method"]
        route = admission.route
        base = self.upstreams.url(route.service)

        body: _RequestBody | None = None
        content_length = headers.get(b"content-length")
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                raise Rejection(400, "bad_request", "invalid Content-Length") from None
            if declared > self.settings.max_body_bytes:
                raise Rejection(
                    413,
                    "payload_too_large",
                    "the request body is too large",
                    details={"limit_bytes": self.settings.max_body_bytes},
                )
            if declared > 0:
                body = _RequestBody(receive, self.settings.max_body_bytes)
        elif b"transfer-encoding" in headers:
            body = _RequestBody(receive, self.settings.max_body_bytes)

        target = _raw_target(scope, admission.forward_path)
        forward_headers = self.upstream_headers(scope, admission, scope["headers"])
        started = time.perf_counter()
        response = await self._exchange(method, base + target, forward_headers, body, route)
        if body is None and response.status_code in _REDIRECTS:
            # The slash the gateway added was wrong for this route (declared without one) and the
            # upstream redirects back to the client's own form: ask for that instead of bouncing the
            # client into the same redirect again.
            as_sent = _raw_target(scope, scope["path"])
            location = _relative_location(response.headers.get("location", "").encode("latin-1"), base)
            if as_sent != target and location == as_sent.encode("latin-1"):
                await response.aclose()
                response = await self._exchange(method, base + as_sent, forward_headers, body, route)
        metrics.upstream_latency(route.service).observe(time.perf_counter() - started)
        metrics.upstream_responses(route.service, response.status_code).inc()
        try:
            await self._stream_response(scope, receive, send, response, base)
        finally:
            await response.aclose()

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: _RequestBody | None,
        route: Route,
    ) -> httpx.Response:
        """Send one request upstream (retried once after a connect error when idempotent); the
        response's headers are in, its body still to stream."""
        transport = self.upstreams.transport(route.service)
        timeout = self.timeouts[route]
        attempts = 2 if method in IDEMPOTENT else 1
        for attempt in range(attempts):
            request = httpx.Request(
                method, url, headers=headers, content=body, extensions={"timeout": timeout}
            )
            try:
                return await transport.handle_async_request(request)
            except BodyTooLarge:
                raise Rejection(
                    413,
                    "payload_too_large",
                    "the request body is too large",
                    details={"limit_bytes": self.settings.max_body_bytes},
                ) from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the upstream: an idempotent request may go once more, unless part
                # of the client's body was already consumed (it cannot be replayed).
                if attempt + 1 < attempts and (body is None or not body.started):
                    metrics.UPSTREAM_RETRIES.labels(route.service).inc()
                    logger.info(
                        "{} unreachable ({}); retrying {} once", route.service, type(exc).__name__, method
                    )
                    continue
                raise self._upstream_failure(route, exc) from None
            except httpx.TransportError as exc:
                raise self._upstream_failure(route, exc) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _upstream_failure(self, route: Route, exc: Exception) -> Rejection:
        if isinstance(exc, httpx.TimeoutException):
            metrics.UPSTREAM_FAILURES.labels(route.service, "timeout").inc()
            logger.warning("{} did not answer in time ({})", route.service, type(exc).__name__)
            return Rejection(
                504,
                "upstream_timeout",
                f"the {route.service} service did not answer in time",
                details={"upstream": route.service, "timeout_seconds": route.timeout},
            )
        reason = "connect" if isinstance(exc, httpx.ConnectError) else "protocol"
        metrics.UPSTREAM_FAILURES.labels(route.service, reason).inc()
        logger.warning("{} unavailable ({}: {})", route.service, type(exc).__name__, str(exc)[:200])
        return Rejection(
            502,
            "upstream_unavailable",
            f"the {route.service} service is unavailable",
            details={"upstream": route.service},
        )

    async def _stream_response(
        self, scope: Scope, receive: Receive, send: Send, response: httpx.Response, base: str
    ) -> None:
        raw = response.headers.raw
        connection_named: set[bytes] = set()
        length: int | None = None
        for name, value in raw:
            lowered = name.lower()
            if lowered == b"connection":
                connection_named.update(token.strip().lower() for token in value.split(b","))
            elif lowered == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        out = []
        for name, value in raw:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered in connection_named or lowered in RESPONSE_OWNED:
                continue
            if lowered == b"location":
                value = _relative_location(value, base)
            out.append((lowered, value))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        watcher = None
        if length is None or length >= _WATCH_DISCONNECT_BYTES:
            watcher = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            async for chunk in response.aiter_raw():
                if watcher is not None and watcher.done():
                    logger.info("client went away during a streamed response; stopping")
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.TransportError as exc:
            # Headers are out: all we can do is cut the response short, which the client notices.
            logger.warning(
                "upstream stream broke after the headers were sent ({}): cutting the response",
                type(exc).__name__,
            )
        finally:
            if watcher is not None:
                watcher.cancel()


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _header_map(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def _scheme(scope: Scope) -> bytes:
    return b"https" if scope.get("scheme") in ("https", "wss") else b"http"


def _raw_target(scope: Scope, forward_path: str) -> str:
    """The path and query to send upstream: the client's own encoding, with the normalised slash."""
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else forward_path
    if forward_path.endswith("/") and not path.endswith("/"):
        path += "/"
    query = scope.get("query_string") or b""
    return f"{path}?{query.decode('latin-1')}" if query else path


def _relative_location(value: bytes, base: str) -> bytes:
    """An upstream's absolute redirect to itself becomes relative, so the client stays on the gateway."""
    text = value.decode("latin-1")
    if text.startswith(base):
        rest = text[len(base) :]
        if not rest or rest[0] in "/?#":
            return (rest or "/").encode("latin-1")
    return value
