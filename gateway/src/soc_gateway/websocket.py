"""WebSocket pass-through: the handshake is admitted like any request, then frames are relayed.

Browsers cannot set an Authorization header on a WebSocket, so the token travels as a subprotocol
(never in the URL, which proxies and access logs keep): the client offers
``["soc.v1", "access_token.<jwt>"]`` and the handshake answers ``soc.v1``. ``bearer, <token>`` and
``bearer.<token>`` are understood too. The ``?token=`` query parameter is deprecated and accepted
only with ``SOC_ENV=dev``. The upstream gets the token as ``Authorization: Bearer`` and verifies it
again. A refused handshake is accepted and closed at once with a 4xxx code (4401 for a
missing or bad token) — a browser sees a close code, never a bare HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs

from loguru import logger
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from soc_gateway import metrics
from soc_gateway.proxy import Gateway, Rejection, _raw_target

# Headers of the handshake itself: the upstream handshake makes its own.
HANDSHAKE = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
        b"authorization",
        b"content-length",
    }
)
BEARER_PROTOCOL = "bearer"
SOC_PROTOCOL = "soc.v1"
TOKEN_PROTOCOL_PREFIX = "access_token."
# RFC 6455 §7.4.1: 1005, 1006 and 1015 are reported, never sent.
_UNSENDABLE = {1005: 1000, 1006: 1011, 1015: 1011}
BAD_GATEWAY = 1014


def close_code_for(status: int) -> int:
    """A refused handshake's HTTP status as a close code: 4xx -> 4000 + status, else 1014/1011."""
    if 400 <= status < 500:
        return 4000 + status
    return BAD_GATEWAY if status in (502, 503, 504) else 1011


def sendable(code: int | None) -> int:
    if code is None:
        return 1000
    return _UNSENDABLE.get(code, code)


def token_from_handshake(
    scope: Scope, *, query_token: bool = False
) -> tuple[str | None, str | None, list[str]]:
    """(token, subprotocol to answer with, subprotocols left for the upstream). ``query_token``
    admits the deprecated ``?token=`` (development only)."""
    offered: list[str] = list(scope.get("subprotocols") or [])
    token: str | None = None
    answer: str | None = None
    remaining: list[str] = []
    skip_next = False
    for index, protocol in enumerate(offered):
        if skip_next:
            skip_next = False
            continue
        lowered = protocol.lower()
        if lowered.startswith(TOKEN_PROTOCOL_PREFIX):
            token = protocol[len(TOKEN_PROTOCOL_PREFIX) :]
        elif lowered == BEARER_PROTOCOL and index + 1 < len(offered):
            token, answer, skip_next = offered[index + 1], protocol, True
        elif lowered.startswith(BEARER_PROTOCOL + "."):
            token, answer = protocol[len(BEARER_PROTOCOL) + 1 :], protocol
        else:
            remaining.append(protocol)
    if SOC_PROTOCOL in remaining:
        answer = SOC_PROTOCOL
    if token is None and query_token:
        query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        if query.get("token"):
            logger.warning("WebSocket token in the URL (?token=): deprecated, development only")
            token = query["token"][0]
    return token or None, answer, remaining


class WebSocketRelay:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = dict(scope["headers"])
        token, answer, remaining = token_from_handshake(
            scope, query_token=self.gateway.settings.environment == "dev"
        )
        try:
            admission = await self.gateway.admit(scope, headers, token=token)
            if not admission.route.websocket:
                raise Rejection(404, "not_found", "no WebSocket endpoint here")
        except Rejection as rejection:
            metrics.REJECTED.labels(rejection.code).inc()
            await self._refuse(send, close_code_for(rejection.status), rejection.message, answer)
            return

        route = admission.route
        base = self.gateway.upstreams.url(route.service)
        url = "ws" + base[len("http") :] + _raw_target(scope, admission.forward_path)
        forward = self.gateway.upstream_headers(scope, admission, scope["headers"], drop=HANDSHAKE)
        if admission.token:
            forward.append((b"authorization", f"Bearer {admission.token}".encode("latin-1")))
        try:
            upstream = await connect(
                url,
                additional_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in forward],
                subprotocols=remaining or None,  # type: ignore[arg-type]
                open_timeout=route.timeout,
                max_size=self.gateway.settings.max_body_bytes,
                compression=None,
                user_agent_header=None,
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            logger.info("{} refused the WebSocket handshake with HTTP {}", route.service, status)
            await self._refuse(send, close_code_for(status), "the upstream refused the connection", answer)
            return
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            metrics.UPSTREAM_FAILURES.labels(route.service, "websocket").inc()
            logger.warning("{} WebSocket unavailable ({})", route.service, type(exc).__name__)
            await self._refuse(send, BAD_GATEWAY, f"the {route.service} service is unavailable", answer)
            return

        metrics.WEBSOCKETS_OPEN.inc()
        try:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol or answer})
            await self._relay(receive, send, upstream)
        finally:
            metrics.WEBSOCKETS_OPEN.dec()
            with contextlib.suppress(Exception):
                await upstream.close()

    @staticmethod
    async def _refuse(send: Send, code: int, reason: str, subprotocol: str | None) -> None:
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        await send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    @staticmethod
    async def _relay(receive: Receive, send: Send, upstream: ClientConnection) -> None:
        async def client_to_upstream() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    text = message.get("text")
                    await upstream.send(text if text is not None else (message.get("bytes") or b""))
                elif message["type"] == "websocket.disconnect":
                    await upstream.close(
                        code=sendable(message.get("code")), reason=message.get("reason") or ""
                    )
                    return

        async def upstream_to_client() -> None:
            try:
                async for frame in upstream:
                    if isinstance(frame, str):
                        await send({"type": "websocket.send", "text": frame})
                    else:
                        await send({"type": "websocket.send", "bytes": frame})
            except ConnectionClosed:
                pass
            # The client may have gone at the same moment: then there is nobody left to tell.
            with contextlib.suppress(OSError):
                await send(
                    {
                        "type": "websocket.close",
                        "code": sendable(upstream.close_code),
                        "reason": upstream.close_reason or "",
                    }
                )

        to_upstream = asyncio.create_task(client_to_upstream())
        to_client = asyncio.create_task(upstream_to_client())
        done, pending = await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, ConnectionClosed | OSError):
                logger.warning("WebSocket relay ended with {}: {}", type(exc).__name__, str(exc)[:200])
