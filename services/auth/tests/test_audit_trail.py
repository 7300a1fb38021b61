"""The auth service's changes reach the audit trail: one ``audit.recorded`` event per change, written
to the outbox in the change's own transaction (a refused change sends none), with who, what, the
changed fields (never a password or an MFA secret), from where, and the request id."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import pytest
from soc_auth.testing import STRONG, Running, create_local_user


async def _collect(
    queue: aio_pika.abc.AbstractQueue, want: Any, within: float = 10.0
) -> list[dict[str, Any]]:
    """audit.recorded events on ``queue`` until ``want(events)`` holds (or the time is up)."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + within
    while not want(seen) and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        body = json.loads(message.body)
        seen.extend(body if isinstance(body, list) else [body])
    return seen


@pytest.fixture
async def audit_queue(auth: Running):  # noqa: ANN201
    connection = await aio_pika.connect(auth.state.settings.amqp_url.get_secret_value())
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind("soc.events", routing_key="audit.recorded")
    yield queue
    await connection.close()


def _of(events: list[dict[str, Any]], target_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["data"].get("target_id") == target_id]


async def test_user_changes_are_audited_with_secrets_masked(
    auth: Running, admin_headers: dict, audit_queue: aio_pika.abc.AbstractQueue
) -> None:
    name = f"audited-{uuid.uuid4().hex[:6]}"
    user = await create_local_user(auth, admin_headers, name)
    uid = user["id"]
    reset = f"Reset-{uuid.uuid4().hex}-Pw9!"
    headers = {**admin_headers, "X-Request-ID": "req-auth-audit", "X-Forwarded-For": "198.51.100.23"}
    r = await auth.client.patch(
        f"/admin/users/{uid}/", json={"full_name": "Audited Person", "password": reset}, headers=headers
    )
    assert r.status_code == 200, r.text
    # Refused: a tenant user's role cannot be an administrator's (422) — nothing recorded.
    r = await auth.client.patch(f"/admin/users/{uid}/", json={"role": "SUPER_ADMIN"}, headers=admin_headers)
    assert r.status_code == 422, r.text
    r = await auth.client.delete(f"/admin/users/{uid}/mfa/", headers=admin_headers)
    assert r.status_code == 404  # no factor: refused, nothing recorded
    r = await auth.client.delete(f"/admin/users/{uid}/sessions/", headers=admin_headers)
    assert r.status_code == 204
    r = await auth.client.delete(f"/admin/users/{uid}/", headers=admin_headers)
    assert r.status_code == 204
    events = await _collect(audit_queue, lambda evs: len(_of(evs, uid)) >= 4)
    records = _of(events, uid)
    assert [x["action"] for x in records] == [
        "user.created",
        "user.updated",
        "user.sessions_revoked",
        "user.deleted",
    ]
    created, updated, revoked, deleted = records
    assert created["after"]["username"] == name and created["after"]["password_set"] is True
    assert created["company_id"] == user["company_id"] and created["actor_username"] == "admin"
    assert created["actor_kind"] == "admin"
    # Only what changed: the name, and that the password was reset (never its value or hash).
    assert updated["before"]["full_name"] == name.title()
    assert updated["after"]["full_name"] == "Audited Person"
    assert updated["after"]["password_reset"] is True and "password_changed_at" in updated["after"]
    assert updated["request_id"] == "req-auth-audit"
    # The test client is a trusted proxy (loopback): the address is the client it forwarded for.
    assert updated["client_address"] == "198.51.100.23"
    assert revoked["after"] == {"sessions": "all", "by": "administrator"}
    assert deleted["before"]["is_deleted"] is False and deleted["after"]["is_deleted"] is True
    text = json.dumps(events)
    assert reset not in text and STRONG not in text and "$argon2" not in text


async def test_own_password_and_signing_keys_are_audited(
    auth: Running, admin_headers: dict, audit_queue: aio_pika.abc.AbstractQueue
) -> None:
    name = f"selfpw-{uuid.uuid4().hex[:6]}"
    user = await create_local_user(auth, admin_headers, name)
    own = await auth.headers(name, STRONG)
    new = f"Mine-{uuid.uuid4().hex}-Pw7!"
    r = await auth.client.post(
        "/auth/change-password/",
        json={"current_password": "wrong-one-Pw1!", "new_password": new},
        headers=own,
    )
    assert r.status_code == 403  # refused: nothing recorded
    r = await auth.client.post(
        "/auth/change-password/", json={"current_password": STRONG, "new_password": new}, headers=own
    )
    assert r.status_code == 204, r.text
    r = await auth.client.post("/admin/keys/rotate/", headers=admin_headers)
    assert r.status_code == 200, r.text
    retired = r.json()["retired"]
    events = await _collect(
        audit_queue,
        lambda evs: (
            any(e["data"]["action"] == "signing_key.rotated" for e in evs) and len(_of(evs, user["id"])) >= 2
        ),
    )
    mine = _of(events, user["id"])
    assert [x["action"] for x in mine] == ["user.created", "user.password_changed"]
    assert mine[1]["actor_username"] == name and mine[1]["actor_kind"] == "tenant"
    assert mine[1]["actor_company_id"] == user["company_id"] == mine[1]["company_id"]
    rotated = next(e["data"] for e in events if e["data"]["action"] == "signing_key.rotated")
    assert rotated["after"] == {"retired": sorted(retired)}
    assert new not in json.dumps(events)


async def test_the_directory_s_changes_to_an_account_are_audited(
    auth: Running, admin_headers: dict, audit_queue: aio_pika.abc.AbstractQueue
) -> None:
    """A directory account's details follow the directory at each sign-in: a local edit undone by the
    next sign-in is recorded as the directory's change (and the account's creation as provisioned)."""
    first = await auth.login("alice", "alice-pass")
    assert first.status_code == 200, first.text
    uid = first.json()["user"]["id"]
    r = await auth.client.patch(
        f"/admin/users/{uid}/", json={"full_name": "Edited Locally"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert (await auth.login("alice", "alice-pass")).status_code == 200
    events = await _collect(
        audit_queue, lambda evs: any(x["action"] == "user.synced_from_directory" for x in _of(evs, uid))
    )
    synced = next(x for x in _of(events, uid) if x["action"] == "user.synced_from_directory")
    assert synced["actor_id"] == "directory" and synced["actor_kind"] == "service"
    assert (
        synced["before"]["full_name"] == "Edited Locally" and synced["after"]["full_name"] != "Edited Locally"
    )
    assert synced["company_id"] == first.json()["user"]["company_id"]


async def test_stored_sign_ins_are_published_again_with_their_original_ids(auth: Running) -> None:
    """The backfill of the audit store: each stored attempt's event is the one sent at the time (same
    id), so the store files an attempt it has once."""
    from datetime import UTC, datetime, timedelta

    from soc_auth.audit.service import republish

    connection = await aio_pika.connect(auth.state.settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind("soc.events", routing_key="auth.login.*")
        name = f"ghost-{uuid.uuid4().hex[:8]}"
        started = datetime.now(UTC) - timedelta(seconds=1)
        assert (await auth.login(name, "whatever-Pw-1", ip="192.0.2.201")).status_code == 401
        assert await republish(auth.state.db, since=started) >= 1
        auth.state.outbox.wake()
        events = await _collect(
            queue, lambda evs: len([e for e in evs if e["data"]["username"] == name]) >= 2
        )
    finally:
        await connection.close()
    mine = [e for e in events if e["data"]["username"] == name]
    assert len(mine) == 2 and mine[0]["id"] == mine[1]["id"] and mine[0]["data"] == mine[1]["data"]
    assert mine[0]["data"]["client_ip"] == "192.0.2.201"
