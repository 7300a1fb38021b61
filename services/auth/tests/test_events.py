"""Login attempts and user changes are published on the bus (any system may bind its own queue)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aio_pika
import pytest
from soc_auth.testing import ADMIN_PASSWORD, STRONG, Running, create_local_user


async def _collect(
    queue: aio_pika.abc.AbstractQueue, count: int, within: float = 10.0
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(seen) < count and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        body = json.loads(message.body)
        seen.extend(
            {"routing_key": message.routing_key, **e} for e in (body if isinstance(body, list) else [body])
        )
    return seen


@pytest.fixture
async def bound_queue(auth: Running):  # noqa: ANN201
    connection = await aio_pika.connect(auth.state.settings.amqp_url.get_secret_value())
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    yield queue
    await connection.close()


async def test_login_attempts_are_published(auth: Running, bound_queue: aio_pika.abc.AbstractQueue) -> None:
    await bound_queue.bind("soc.events", routing_key="auth.login.*")
    assert (await auth.login("admin", ADMIN_PASSWORD, ip="192.0.2.99")).status_code == 200
    assert (await auth.login("admin", "nope", ip="192.0.2.99")).status_code == 401
    events = [e for e in await _collect(bound_queue, 2) if e["data"]["client_ip"] == "192.0.2.99"]
    by_key = {e["routing_key"]: e for e in events}
    assert set(by_key) == {"auth.login.succeeded", "auth.login.failed"}
    ok, failed = by_key["auth.login.succeeded"], by_key["auth.login.failed"]
    assert ok["type"] == "soc.auth.login.succeeded.v1" and ok["specversion"] == "1.0"
    assert ok["data"]["username"] == "admin" and ok["data"]["method"] == "local" and ok["data"]["user_id"]
    assert ok["data"]["user_agent"] == "pytest"
    assert failed["data"]["outcome"] == "failed" and failed["data"]["reason"] == "invalid_password"
    assert "nope" not in json.dumps(failed)


async def test_user_changes_are_published(
    auth: Running, admin_headers: dict, bound_queue: aio_pika.abc.AbstractQueue
) -> None:
    await bound_queue.bind("soc.events", routing_key="auth.user.changed")
    user = await create_local_user(auth, admin_headers, "evented-user")
    await auth.client.patch(
        f"/admin/users/{user['id']}/", json={"full_name": "Renamed"}, headers=admin_headers
    )
    events = [e for e in await _collect(bound_queue, 2) if e["data"]["user_id"] == user["id"]]
    assert len(events) == 2
    assert events[0]["data"]["username"] == "evented-user" and events[0]["data"]["kind"] == "tenant"
    assert "TENANT_USER" in events[0]["data"]["roles"]
    assert STRONG not in json.dumps(events)
