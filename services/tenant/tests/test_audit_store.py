"""The audit store beyond the tenant's own changes: the auth service's records and the sign-ins filed
from the bus (once per event, secrets masked again, a tenant administrator's company only), the
retention purge as the only delete, and the client address behind the gateway — which an attacker
cannot choose by sending X-Forwarded-For."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from soc_shared.bus import Bus
from soc_shared.db import Database, set_company_scope
from soc_shared.events import AuditRecorded, LoginAttempt, make_event
from soc_tenant.audit.views import purge, purge_loop
from sqlalchemy.exc import DBAPIError


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def audit(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = await client.get("/admin/audit/", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def company_with_user(client: httpx.AsyncClient, h: dict[str, str]) -> tuple[str, dict[str, Any]]:
    r = await client.post("/admin/companies/", json={"name": uniq("Filed")}, headers=h)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = await client.post(
        f"/admin/companies/{cid}/users/",
        json={"username": uniq("signer"), "password": "Strong-Passw0rd-42!"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    return cid, r.json()


async def until(check: Any, within: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def test_auth_records_and_sign_ins_are_filed_once_in_the_same_view(client, headers, settings):
    h = headers(kind="admin")
    cid, member = await company_with_user(client, h)
    uid, username = member["user_id"], member["username"]
    now = datetime.now(UTC)
    change = AuditRecorded(
        at=now,
        company_id=cid,
        actor_id=str(uuid.uuid4()),
        actor_username="root-admin",
        actor_kind="admin",
        action="user.updated",
        target_type="user",
        target_id=uid,
        # A sender that forgot to mask: the store masks again.
        before={"full_name": "A", "password": "leaked-Secret-1"},
        after={"full_name": "B", "password": "leaked-Secret-2"},
        client_address="198.51.100.77",
        request_id="req-filed-1",
    )
    events = [
        make_event("audit.recorded", change, source="/auth", subject=f"user/{uid}"),
        make_event(
            "auth.login.failed",
            LoginAttempt(
                username=username,
                user_id=uid,
                method="local",
                client_ip="203.0.113.9",
                outcome="failed",
                reason="invalid_password",
                at=now,
            ),
            source="/auth",
            subject=uid,
        ),
        make_event(
            "auth.login.failed",
            LoginAttempt(
                username=uniq("nobody"), method="local", outcome="failed", reason="unknown_user", at=now
            ),
            source="/auth",
            subject="nobody",
        ),
        # Not the auth service: an ingestor's key cannot write the trail.
        make_event(
            "audit.recorded",
            change.model_copy(update={"action": "user.forged"}),
            source="/siem-ingest",
            subject=f"user/{uid}",
        ),
    ]
    bus = Bus(settings.amqp_url.get_secret_value(), service="auth-tests")
    await bus.connect()
    try:
        await bus.publish(events)
        await bus.publish(events[:2])  # delivered again: filed once
    finally:
        await bus.close()

    async def filed() -> dict[str, Any] | None:
        found = await audit(client, h, source="auth", target_id=uid)
        return found if found["total"] >= 2 else None

    found = await until(filed)
    assert found is not None, "nothing filed"
    await asyncio.sleep(0.5)  # the re-delivered copies had their chance
    found = await audit(client, h, source="auth", target_id=uid)
    by_action = {x["action"]: x for x in found["items"]}
    assert found["total"] == 2 and set(by_action) == {"user.updated", "auth.login.failed"}
    updated = by_action["user.updated"]
    assert (
        updated["before"] == {"full_name": "A", "password": "***"} and updated["after"]["password"] == "***"
    )
    assert updated["client_address"] == "198.51.100.77" and updated["request_id"] == "req-filed-1"
    login = by_action["auth.login.failed"]
    assert login["company_id"] == cid and login["actor_username"] == username
    assert login["client_address"] == "203.0.113.9" and login["after"]["reason"] == "invalid_password"
    assert (await audit(client, h, action="user.forged"))["total"] == 0
    # Filters across both kinds: the user's sign-ins and changes, by user name.
    assert (await audit(client, h, actor=username, action="auth.login.failed"))["total"] == 1
    # A tenant administrator sees their company's sign-ins, not an unknown user's (no company).
    ta = headers(kind="tenant", company_id=cid, roles=["TENANT_ADMIN"])
    mine = await audit(client, ta, action="auth.login.failed")
    assert [x["target_id"] for x in mine["items"]] == [uid]
    exported = await client.get("/admin/audit/export.csv", params={"source": "auth"}, headers=ta)
    assert exported.status_code == 200 and "auth.login.failed" in exported.text
    assert "leaked-Secret" not in exported.text and "unknown_user" not in exported.text


async def test_retention_purge_is_the_only_delete(app, client, headers):
    h = headers(kind="admin")
    short = (await client.post("/admin/companies/", json={"name": uniq("Short")}, headers=h)).json()["id"]
    default = (await client.post("/admin/companies/", json={"name": uniq("Default")}, headers=h)).json()["id"]
    ta = headers(kind="tenant", company_id=short, roles=["TENANT_ADMIN"])
    r = await client.put(f"/admin/companies/{short}/audit-retention/", json={"days": 30}, headers=ta)
    assert r.status_code == 403
    r = await client.put(f"/admin/companies/{short}/audit-retention/", json={"days": 0}, headers=h)
    assert r.status_code == 422
    r = await client.put(f"/admin/companies/{short}/audit-retention/", json={"days": 30}, headers=h)
    assert r.status_code == 200, r.text
    assert {"company_id": short, "days": 30} in r.json()["companies"]
    assert (await client.get("/admin/audit/retention/", headers=ta)).json()["companies"] == [
        {"company_id": short, "days": 30}
    ]
    marker = uniq("aged")
    async with app.state.db.session() as s:  # records written 40 and 500 days ago
        for company in (short, default):
            for days in (40, 500):
                await s.execute(
                    sa.text(
                        "INSERT INTO audit_record (at, company_id, actor_id, actor_username, actor_kind, action,"
                        " target_type, target_id) VALUES (now() - make_interval(days => :d), :c, 'x', 'x',"
                        " 'admin', :a, 'test', :t)"
                    ),
                    {"d": days, "c": company, "a": marker, "t": f"{company}:{days}"},
                )

    async def left() -> set[str]:
        return {x["target_id"] for x in (await audit(client, h, action=marker, limit=10))["items"]}

    assert len(await left()) == 4
    # Nobody else deletes: not the API role (no privilege, no purge), not even the owner directly.
    for stmt, error in (
        ("DELETE FROM audit_record WHERE action = :a", "permission denied"),
        ("SELECT audit_record_purge(1)", "permission denied"),
    ):
        with pytest.raises(DBAPIError, match=error):
            async with app.state.app_db.session() as session:
                await set_company_scope(session, None, is_admin=True)
                await session.execute(sa.text(stmt), {"a": marker})
    for stmt in ("DELETE FROM audit_record WHERE action = :a", "TRUNCATE audit_record"):
        with pytest.raises(DBAPIError, match="retention purge only"):
            async with app.state.db.session() as session:
                await session.execute(sa.text(stmt), {"a": marker})
    assert len(await left()) == 4
    # The deployment keeps 400 days, the short company 30.
    assert await purge(app.state.db, 400) >= 3
    assert await left() == {f"{default}:40"}
    # 0 keeps for ever (except a company's own retention).
    await purge(app.state.db, 0)
    assert await left() == {f"{default}:40"}
    changed = (await audit(client, h, action="audit.retention_updated", target_id=short))["items"]
    assert changed[0]["before"] == {"retention_days": None} and changed[0]["after"] == {"retention_days": 30}


async def test_the_address_is_the_client_behind_a_trusted_proxy_only(app, headers):
    h = headers(kind="admin")

    async def create_from(peer: str, forwarded_for: str) -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://tenant.test") as c:
            r = await c.post(
                "/admin/companies/",
                json={"name": uniq("Where")},
                headers={**h, "X-Forwarded-For": forwarded_for},
            )
            assert r.status_code == 201, r.text
            return (await audit(c, h, target_id=r.json()["id"]))["items"][0]

    # An attacker reaching the service directly: their X-Forwarded-For is kept as received but not
    # believed; the record says where the request really came from.
    direct = await create_from("198.51.100.9", "10.1.2.3")
    assert direct["client_address"] == "198.51.100.9" and direct["forwarded_for"] == "10.1.2.3"
    # Through the gateway (a trusted peer), which appended the address it saw: that one is the client,
    # not what the client claimed before it.
    proxied = await create_from("127.0.0.1", "10.1.2.3, 192.0.2.44")
    assert proxied["client_address"] == "192.0.2.44"


async def test_through_the_gateway_a_spoofed_forwarded_for_is_not_the_address(app, headers, tokens):
    """An attacker calls the public gateway with a forged X-Forwarded-For: the gateway (which trusts
    no proxy in front of it) replaces the chain with the address it saw, and the tenant service —
    trusting the gateway — records that one."""
    from fastapi import FastAPI
    from soc_gateway.config import Settings as GatewaySettings
    from soc_gateway.main import create_app as create_gateway
    from soc_shared.testing import ServerThread

    jwks = FastAPI()
    jwks.get("/.well-known/jwks.json")(lambda: tokens.jwks)
    with ServerThread(jwks) as auth:
        settings = GatewaySettings(
            environment="test",
            upstreams={"auth": f"http://127.0.0.1:{auth.port}", "tenant": "http://tenant.invalid"},
            console_dir=None,
            log_level="WARNING",
            revocation_poll_seconds=0,
        )
        gateway = create_gateway(settings, transport_overrides={"tenant": httpx.ASGITransport(app=app)})
        async with gateway.router.lifespan_context(gateway):
            transport = httpx.ASGITransport(app=gateway, client=("198.51.100.66", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as attacker:
                h = headers(kind="admin")
                r = await attacker.post(
                    "/admin/companies/",
                    json={"name": uniq("Spoofed")},
                    headers={**h, "X-Forwarded-For": "10.6.6.6", "X-Real-IP": "10.6.6.6"},
                )
                assert r.status_code == 201, r.text
                record = (await audit(attacker, h, target_id=r.json()["id"]))["items"][0]
    assert record["client_address"] == "198.51.100.66"
    assert "10.6.6.6" not in (record["forwarded_for"] or "")


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7V\xbd\xfa\x00\x00\x00\x00IEND\xaeB`\x82"
)


async def test_operations_are_recorded_with_who_asked(client, headers, fake_ingestors):
    """Sync now, test connection (saved and unsaved, never the credentials tried), the company picture,
    ticket rules and dead-letter replays."""
    h = headers(kind="admin", username=uniq("operator"))
    cid = (await client.post("/admin/companies/", json={"name": uniq("Ops")}, headers=h)).json()["id"]
    secret = f"tok{uuid.uuid4().hex}"
    body = {
        "subtype": "IBM_QRADAR",
        "instance_name": uniq("QRadar"),
        "base_url": "https://qradar.example.com",
        "credential_kind": "API_KEY",
        "credentials": {"api_key": secret},
    }
    r = await client.post("/integration/", json=body, headers=h)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    r = await client.post(f"/admin/integrations/{iid}/sync-now/", json={"resource": "offenses"}, headers=h)
    assert r.status_code == 200, r.text
    fake_ingestors.results["IBM_QRADAR"] = {
        "ok": False,
        "category": "bad_credentials",
        "message": "401",
        "details": {},
    }
    try:
        r = await client.post(f"/integration/{iid}/test-connection/", headers=h)
        assert r.status_code == 200 and r.json()["ok"] is False, r.text
        unsaved = {k: v for k, v in body.items() if k != "instance_name"}
        r = await client.post("/integration/test-connection/", json=unsaved, headers=h)
        assert r.status_code == 200, r.text
    finally:
        fake_ingestors.results.pop("IBM_QRADAR", None)
    records = (await audit(client, h, target_id=iid))["items"]
    assert [x["action"] for x in records] == [
        "integration.connection_tested",
        "integration.sync_requested",
        "integration.created",
    ]
    tested, synced = records[0], records[1]
    assert tested["after"]["ok"] is False and tested["after"]["category"] == "bad_credentials"
    assert tested["company_id"] is None and tested["actor_username"].startswith("operator-")
    assert synced["after"]["resource"] == "offenses" and synced["after"]["scheduled"] == 3
    loose = await audit(client, h, action="integration.connection_tested", actor=tested["actor_id"])
    assert loose["total"] == 2
    assert {x["target_id"] for x in loose["items"]} == {iid, None}
    assert secret not in json.dumps(loose)

    url = f"/admin/companies/{cid}/picture/"
    ta = headers(kind="tenant", company_id=cid, roles=["TENANT_ADMIN"])
    assert (
        await client.post(url, headers=ta, files={"file": ("p.png", PNG, "image/png")})
    ).status_code == 200
    assert (await client.delete(url, headers=ta)).status_code == 204
    assert (await client.delete(url, headers=ta)).status_code == 204  # nothing left: nothing recorded
    pictures = (await audit(client, ta, target_id=cid, target_type="company"))["items"]
    assert [x["action"] for x in pictures[:2]] == ["company.picture_deleted", "company.picture_uploaded"]
    assert pictures[1]["after"]["content_type"] == "image/png" and pictures[1]["after"]["size"] == len(PNG)
    assert pictures[1]["actor_kind"] == "tenant"

    rules = f"/admin/companies/{cid}/ticket-policies/"
    assert (
        await client.put(rules, json={"priorities": ["P1"], "statuses": ["active"]}, headers=h)
    ).status_code == 200
    assert (
        await client.put(rules, json={"priorities": ["P1", "P2"], "statuses": ["active"]}, headers=h)
    ).status_code == 200
    assert (await client.delete(rules, headers=h)).status_code == 204
    policy = (await audit(client, h, company_id=cid, target_type="ticket_policy"))["items"]
    assert [x["action"] for x in policy] == [
        "ticket_policy.deleted",
        "ticket_policy.updated",
        "ticket_policy.created",
    ]
    assert policy[1]["before"] == {"priorities": ["P1"]} and policy[1]["after"] == {
        "priorities": ["P1", "P2"]
    }

    r = await client.post("/admin/dead-letters/replay/", json={"queue": "tenant.siem", "limit": 5}, headers=h)
    assert r.status_code == 200, r.text
    replayed = (await audit(client, h, action="dead_letters.replayed", actor=tested["actor_id"]))["items"]
    assert len(replayed) == 1 and replayed[0]["target_id"] == "tenant.siem"
    assert replayed[0]["after"] == {"limit": 5, "replayed": r.json()["replayed"]}
    r = await client.post("/admin/dead-letters/replay/", json={"queue": "nope"}, headers=h)
    assert r.status_code == 404
    assert (await audit(client, h, action="dead_letters.replayed", actor=tested["actor_id"]))["total"] == 1


async def test_default_threat_intel_feeds_are_changed_by_writers_and_recorded(client, headers):
    h = headers(kind="admin")
    cid = (await client.post("/admin/companies/", json={"name": uniq("Feed")}, headers=h)).json()["id"]
    r = await client.post(
        "/integration/",
        headers=h,
        json={
            "subtype": "CYWARE",
            "instance_name": uniq("Cyware"),
            "base_url": "https://cyware.example",
            "credentials": {"access_key": "feed-access", "secret_key": "feed-secret"},
            "company_id": cid,
        },
    )
    assert r.status_code == 201, r.text
    feed = r.json()["id"]
    url = f"/admin/threat-intel/default-feeds/{feed}/"
    read_only = headers(kind="admin", roles=["READ_ONLY_ADMIN"], read_only=True)
    assert (await client.put(url, headers=read_only)).status_code == 403
    try:
        for _ in range(2):  # the second changes nothing: one record
            assert (await client.put(url, headers=h)).status_code == 200
    finally:
        assert (await client.delete(url, headers=h)).status_code == 204
    records = (await audit(client, h, target_id=feed, target_type="integration"))["items"]
    assert [x["action"] for x in records[:2]] == [
        "threat_intel.default_feed_removed",
        "threat_intel.default_feed_added",
    ]
    assert sum(x["action"] == "threat_intel.default_feed_added" for x in records) == 1


async def test_retention_purge_runs_in_the_background_and_outlasts_a_database_outage(app, client, headers):
    h = headers(kind="admin")
    short = (await client.post("/admin/companies/", json={"name": uniq("Loop")}, headers=h)).json()["id"]
    kept = (await client.post("/admin/companies/", json={"name": uniq("Kept")}, headers=h)).json()["id"]
    r = await client.put(f"/admin/companies/{short}/audit-retention/", json={"days": 30}, headers=h)
    assert r.status_code == 200, r.text
    marker = uniq("looped")

    async def aged(company: str, tag: str) -> None:
        async with app.state.db.session() as s:
            await s.execute(
                sa.text(
                    "INSERT INTO audit_record (at, company_id, actor_id, actor_username, actor_kind, action,"
                    " target_type, target_id) VALUES (now() - make_interval(days => 40), :c, 'x', 'x',"
                    " 'admin', :a, 'test', :t)"
                ),
                {"c": company, "a": marker, "t": tag},
            )

    async def left() -> set[str]:
        return {x["target_id"] for x in (await audit(client, h, action=marker, limit=10))["items"]}

    await aged(short, "first")
    await aged(kept, "kept")  # 40 days is within the deployment's retention
    # The database is away when the loop starts: its rounds fail and back off, nothing is lost.
    away = Database("postgresql+psycopg://nobody:nothing@127.0.0.1:1/none", schema="tenant")
    host = SimpleNamespace(state=SimpleNamespace(settings=app.state.settings, db=away))
    loop = purge_loop(host, interval=0.2)
    loop.start()
    try:
        assert await until(lambda: _true(loop.failures >= 1), within=10)
        assert await left() == {"first", "kept"}
        host.state.db = app.state.db  # back
        assert await until(lambda: _gone(left, "first"), within=15)
        assert loop.failures == 0
        # and again at the next round, without being asked
        await aged(short, "second")
        assert await until(lambda: _gone(left, "second"), within=15)
        assert await left() == {"kept"}
    finally:
        await loop.stop()
        await away.dispose()
    await aged(short, "after-stop")
    await asyncio.sleep(0.6)
    assert await left() == {"kept", "after-stop"}  # a stopped loop purges nothing more
    await purge(app.state.db, 0)


async def _true(value: bool) -> bool:
    return value


async def _gone(left: Any, tag: str) -> bool:
    return tag not in await left()
