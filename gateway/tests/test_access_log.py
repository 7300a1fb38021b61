"""The access log tells a client that went away from a fault of ours."""

from __future__ import annotations

import pytest
from loguru import logger
from soc_gateway.middleware import AccessLogMiddleware
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.utils import ClientDisconnected


async def _noop_receive() -> dict[str, str]:
    return {"type": "websocket.disconnect"}


async def _noop_send(message: dict[str, object]) -> None:
    return None


@pytest.mark.parametrize("failure", [ClientDisconnected(), RuntimeError("boom")])
async def test_a_vanished_client_is_not_logged_as_an_error(failure: Exception) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept"})
        raise failure

    records: list[tuple[str, str]] = []
    sink = logger.add(lambda m: records.append((m.record["level"].name, m.record["message"])), level="INFO")
    try:
        await AccessLogMiddleware(app)({"type": "websocket", "path": "/ws/chat/"}, _noop_receive, _noop_send)
    finally:
        logger.remove(sink)
    errors = [message for level, message in records if level == "ERROR"]
    if isinstance(failure, ClientDisconnected):
        assert errors == []
        assert any("WS /ws/chat/ 101" in message for _, message in records)
    else:
        assert errors == ["unhandled error on WS /ws/chat/"]
