"""WebSocket pass-through: the token is checked at the handshake, frames and close codes relayed."""

from __future__ import annotations

import json

import pytest
from soc_shared.testing import TokenFactory
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def ws_url(gateway, path: str) -> str:
    return "ws" + gateway.url.removeprefix("http") + path


def offer(token: str) -> list:
    """What a browser offers: the protocol and the token as a subprotocol (never in the URL)."""
    return ["soc.v1", f"access_token.{token}"]


def test_frames_go_both_ways_with_the_token_as_a_subprotocol(gateway, tokens: TokenFactory) -> None:
    sub = "f0c5a1d2-0000-4000-8000-000000000001"
    with connect(
        ws_url(gateway, "/ws/echo/"),
        subprotocols=offer(tokens.token(sub=sub)),
        additional_headers={"X-Request-ID": "ws-42"},
    ) as ws:
        assert ws.subprotocol == "soc.v1"
        hello = json.loads(ws.recv(timeout=5))
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=5) == b"\x00\x01binary"
    assert hello == {"authorization": "Bearer ", "user_id": sub, "request_id": "ws-42"}


def test_the_token_may_come_as_a_bearer_subprotocol(gateway, tokens: TokenFactory) -> None:
    with connect(ws_url(gateway, "/ws/echo/"), subprotocols=["bearer", tokens.token()]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "bearer"
        assert json.loads(ws.recv(timeout=5))["authorization"] == "Bearer "
        ws.send("via subprotocol")
        assert ws.recv(timeout=5) == "via subprotocol"


def test_the_token_may_come_as_an_authorization_header(gateway, tokens: TokenFactory) -> None:
    with connect(ws_url(gateway, "/ws/echo"), additional_headers=tokens.headers()) as ws:
        assert json.loads(ws.recv(timeout=5))["user_id"]


def test_a_missing_or_bad_token_closes_with_4401(gateway, tokens: TokenFactory) -> None:
    for path, protocols in (
        ("/ws/echo/", None),
        ("/ws/echo/", offer("not-a-jwt")),
        # A token in the URL is not read outside development (proxies and logs keep URLs).
        (f"/ws/echo/?token={tokens.token()}", None),
    ):
        with (
            connect(ws_url(gateway, path), subprotocols=protocols) as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_a_websocket_to_a_non_websocket_route_closes_with_4404(gateway, tokens: TokenFactory) -> None:
    with (
        connect(ws_url(gateway, "/tenant/dashboard/"), subprotocols=offer(tokens.token())) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_the_upstreams_close_code_reaches_the_client(gateway, tokens: TokenFactory) -> None:
    with connect(ws_url(gateway, "/ws/echo/"), subprotocols=offer(tokens.token())) as ws:
        ws.recv(timeout=5)
        ws.send("close:4321")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4321, "asked to")


def test_an_upstream_without_that_socket_closes_with_its_status(gateway, tokens: TokenFactory) -> None:
    with (
        connect(ws_url(gateway, "/ws/nothing-here/"), subprotocols=offer(tokens.token())) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (4403, 4404)
