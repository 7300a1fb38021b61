"""Support chat: REST history, seen marks, unread counts; live delivery over WebSockets across two
replicas (each with its own fan-out queue); admin notifications; row-level security in the database."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from soc_shared.db import set_company_scope
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def new_company(client, headers) -> str:
    r = await client.post(
        "/admin/companies/", headers=headers(kind="admin"), json={"name": f"Chat {uuid.uuid4().hex[:8]}"}
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def frame(ws: Any, kind: str, wait: float = 10.0) -> dict[str, Any]:
    """The next frame of ``kind`` (frames of other kinds are skipped)."""
    async with asyncio.timeout(wait):
        while True:
            data = json.loads(await ws.recv())
            if data["type"] == kind:
                return data


async def test_chat_rest_history_seen_and_unread(client, headers):
    a, b = await new_company(client, headers), await new_company(client, headers)
    ta = headers(kind="tenant", company_id=a, roles=["TENANT_USER"], username="alice")
    tb = headers(kind="tenant", company_id=b, roles=["TENANT_USER"], username="bob")
    admin = headers(kind="admin", username="soc-analyst")
    url = "/tenant/chat/messages/"

    for body in (
        {"body": ""},
        {"body": "   "},
        {"body": "x" * 4001},
        {},
        {"body": "hi", "unknown": 1},
        {"body": "a\x00b"},
    ):
        r = await client.post(url, headers=ta, json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", body
    r = await client.post(url, headers=ta, json={"body": "x" * 4000})
    assert r.status_code == 201
    first = (await client.post(url, headers=ta, json={"body": "  Our firewall is down  "})).json()
    assert (
        first["body"] == "Our firewall is down"
        and first["sender_kind"] == "tenant"
        and first["sender_name"] == "alice"
    )
    assert first["tenant_seen_at"] is not None and first["admin_seen_at"] is None
    await client.post(url, headers=tb, json={"body": "globex question"})

    assert (await client.get(url, headers=admin)).status_code == 422  # admins choose a company
    mine = (await client.get(url, headers=ta)).json()
    assert mine["total"] == 2 and {m["company_id"] for m in mine["items"]} == {a}
    assert mine["items"][0]["id"] == first["id"]  # newest first
    assert [
        m["id"]
        for m in (await client.get(url, headers=ta, params={"order": "asc", "limit": 1})).json()["items"]
    ] != [first["id"]]
    assert (await client.get(url, headers=ta, params={"after_id": first["id"]})).json()["total"] == 0

    unread = (await client.get("/tenant/chat/unread/", headers=admin)).json()
    per_company = {i["company_id"]: i["unread"] for i in unread["items"]}
    assert per_company[a] == 2 and per_company[b] == 1 and unread["unread_total"] >= 3
    r = await client.post(url, headers=admin, json={"body": "Looking into it", "company_id": a})
    assert r.status_code == 201 and r.json()["sender_kind"] == "admin"
    assert (await client.get("/tenant/chat/unread/", headers=ta)).json()["unread"] == 1
    assert (await client.get("/tenant/chat/unread/", headers=tb)).json()["unread"] == 0
    r = await client.post(f"{url}seen/", headers=ta, json={})
    assert (
        r.json()["marked"] == 1
        and (await client.get("/tenant/chat/unread/", headers=ta)).json()["unread"] == 0
    )
    r = await client.post(f"{url}seen/", headers=admin, json={"company_id": a, "up_to_id": first["id"]})
    assert r.json()["marked"] == 2
    assert {
        i["company_id"] for i in (await client.get("/tenant/chat/unread/", headers=admin)).json()["items"]
    } >= {b}
    assert a not in {
        i["company_id"] for i in (await client.get("/tenant/chat/unread/", headers=admin)).json()["items"]
    }

    ro = headers(kind="admin", read_only=True, roles=["READ_ONLY_ADMIN"])
    assert (await client.post(url, headers=ro, json={"body": "hi", "company_id": a})).status_code == 403
    assert (await client.get(url, headers=ro, params={"company_id": a})).status_code == 200
    assert (
        await client.post(url, headers=admin, json={"body": "hi", "company_id": str(uuid.uuid4())})
    ).status_code == 404
    await client.delete(f"/admin/companies/{b}/", headers=admin)
    r = await client.post(url, headers=admin, json={"body": "hi", "company_id": b})
    assert r.status_code == 409 and r.json()["error"]["code"] == "company_deleted"
    assert (await client.get(url, headers=admin, params={"company_id": b})).json()[
        "total"
    ] == 1  # nothing lost


async def test_live_chat_and_notifications_across_two_replicas(client, headers, tokens, make_app, serve_app):
    a, b = await new_company(client, headers), await new_company(client, headers)
    admin_headers = headers(kind="admin")
    alice = tokens.token(kind="tenant", company_id=a, roles=["TENANT_USER"], username="alice")
    bob = tokens.token(kind="tenant", company_id=b, roles=["TENANT_USER"], username="bob")
    analyst = tokens.token(kind="admin", username="analyst")

    async with serve_app(make_app()) as one, serve_app(make_app()) as two:

        def ws(host: str, token: str | None, extra: str = "") -> dict[str, Any]:
            # The token as a subprotocol, as browsers send it (never in the URL).
            return {
                "uri": f"ws://{host}/ws/chat/?" + extra.lstrip("&"),
                "subprotocols": ["soc.v1", f"access_token.{token}"] if token else None,
            }

        async with (
            connect(**ws(one, alice)) as w_alice,
            connect(**ws(two, None), additional_headers={"Authorization": f"Bearer {analyst}"}) as w_admin,
            connect(**ws(two, bob)) as w_bob,
            connect(**ws(one, analyst, f"&company_id={b}")) as w_admin_b,
        ):
            assert w_alice.subprotocol == "soc.v1"
            hellos = [await frame(w, "hello") for w in (w_alice, w_admin, w_bob, w_admin_b)]
            assert [h["room"] for h in hellos] == [a, "all", b, b]
            assert hellos[0]["replica"] != hellos[1]["replica"]  # two replicas, two fan-out queues

            async with httpx.AsyncClient(base_url=f"http://{two}") as http:
                r = await http.post(
                    "/tenant/chat/messages/",
                    json={"body": "Hello SOC"},
                    headers={"Authorization": f"Bearer {alice}"},
                )
                assert r.status_code == 201, r.text
                posted = r.json()
            got_alice = await frame(
                w_alice, "chat.message"
            )  # posted on replica two, delivered by replica one
            got_admin = await frame(w_admin, "chat.message")
            assert got_alice["message"]["id"] == got_admin["message"]["id"] == posted["id"]
            assert got_admin["message"]["body"] == "Hello SOC" and got_admin["message"]["company_id"] == a

            # Bob's and the B-only admin's first chat frame is Bob's message: Alice's never reached them.
            r = await client.post(
                "/tenant/chat/messages/",
                json={"body": "globex here"},
                headers={"Authorization": f"Bearer {bob}"},
            )
            assert r.status_code == 201
            assert (await frame(w_bob, "chat.message"))["message"]["body"] == "globex here"
            assert (await frame(w_admin_b, "chat.message"))["message"]["body"] == "globex here"

            # the admin answers over its socket; Alice gets it on the other replica
            await w_admin.send(
                json.dumps({"type": "message", "company_id": a, "body": "We are on it", "ref": "r1"})
            )
            ack = await frame(w_admin, "ack")
            assert ack["ref"] == "r1" and ack["message"]["sender_kind"] == "admin"
            reply = await frame(w_alice, "chat.message")
            assert reply["message"]["body"] == "We are on it" and reply["message"]["sender_kind"] == "admin"
            # a tenant cannot write into another company's room, nor with an empty body
            await w_alice.send(json.dumps({"type": "message", "company_id": b, "body": "sneaky"}))
            assert (await frame(w_alice, "error"))["error"]["code"] == "not_found"
            await w_alice.send(json.dumps({"type": "message", "body": ""}))
            assert (await frame(w_alice, "error"))["error"]["code"] == "validation_error"
            await w_alice.send("not json")
            assert (await frame(w_alice, "error"))["error"]["code"] == "invalid_frame"
            await w_alice.send(json.dumps({"type": "seen"}))
            assert (await frame(w_alice, "seen"))["marked"] == 1
            await w_alice.send(json.dumps({"type": "ping", "ref": "p"}))
            assert (await frame(w_alice, "pong"))["ref"] == "p"

            # live admin notifications: an integration going to error reaches the admins only
            created = await client.post(
                "/integration/",
                headers=admin_headers,
                json={
                    "subtype": "IBM_QRADAR",
                    "instance_name": f"QR {uuid.uuid4().hex[:6]}",
                    "base_url": "https://qradar.example",
                    "credentials": {"api_key": "k" * 20},
                },
            )
            iid = created.json()["id"]
            from soc_shared.sync import ConnectionTestResult  # noqa: F401 - the shape the fake answers

            note = await frame(w_admin, "notification")
            while note["integration"]["id"] != iid:
                note = await frame(w_admin, "notification")
            assert note["event"] == "integration.changed" and note["integration"]["status"] == "pending"
            await client.put(f"/integration/{iid}/", headers=admin_headers, json={"enabled": False})
            note = await frame(w_admin_b, "notification")
            while note["integration"]["status"] != "disabled":
                note = await frame(w_admin_b, "notification")
            assert note["severity"] == "warning"
            await client.post(
                "/tenant/chat/messages/",
                json={"body": "after the notification"},
                headers={"Authorization": f"Bearer {alice}"},
            )
            nxt = json.loads(await asyncio.wait_for(w_alice.recv(), 10))
            assert nxt["type"] == "chat.message"  # no notification was pushed to the tenant

        # refusals: bad token, another company's room, a service, no token
        for url, code in (
            (ws(one, "garbage"), 4401),
            (ws(one, bob, f"&company_id={a}"), 4404),
            (ws(one, tokens.token(kind="service", roles=[])), 4403),
            (ws(one, None), 4401),
            (ws(two, analyst, f"&company_id={uuid.uuid4()}"), 4404),
            ({"uri": f"ws://{one}/ws/chat/?token={alice}"}, 4401),  # the URL is not read outside dev
        ):
            async with connect(**url) as refused:
                assert json.loads(await refused.recv())["type"] == "error"
                with pytest.raises(ConnectionClosed) as closed:
                    await refused.recv()
                assert closed.value.rcvd.code == code, url


async def test_row_level_security_hides_other_companies_without_a_where_clause(app, client, headers):
    a, b = await new_company(client, headers), await new_company(client, headers)
    for cid, text in ((a, "from A"), (b, "from B")):
        r = await client.post(
            "/tenant/chat/messages/",
            json={"body": text},
            headers=headers(kind="tenant", company_id=cid, roles=["TENANT_USER"]),
        )
        assert r.status_code == 201
    admin = headers(kind="admin")
    for cid in (a, b):
        await client.put(
            f"/admin/companies/{cid}/sla/",
            headers=admin,
            json={
                "is_default_sla": False,
                "overrides": [{"level": "P1", "tta_minutes": 1, "ttn_minutes": 2, "ttdn_minutes": 3}],
            },
        )
        await client.put(
            f"/admin/companies/{cid}/directory-groups/",
            headers=admin,
            json={"items": [{"ldap_group": f"rls-{cid}"}]},
        )
        await client.post(f"/admin/companies/{cid}/users/", headers=admin, json={"username": f"u{cid[:8]}"})

    async with app.state.app_db.sessionmaker() as session, session.begin():
        await set_company_scope(session, a, is_admin=False)
        rows = (await session.execute(sa.text("SELECT * FROM chat_message"))).mappings().all()
        assert rows and {str(r["company_id"]) for r in rows} == {a}
        for table in (
            "company",
            "tenant_member",
            "company_directory_group",
            "sla_company",
            "qradar_mapping",
            "soar_mapping",
            "itsm_mapping",
            "integration",
            "integration_sync_report",
            "pending_action",
        ):
            column = "id" if table == "company" else "company_id"
            if table == "integration_sync_report":
                continue
            seen = (
                (await session.execute(sa.text(f"SELECT DISTINCT {column}::text FROM {table}")))
                .scalars()
                .all()
            )
            assert set(seen) <= {a}, (table, seen)
        # writing another company's row is refused by the policy, not just filtered
        with pytest.raises(Exception, match="row-level security"):
            async with session.begin_nested():
                await session.execute(
                    sa.text(
                        "INSERT INTO chat_message (company_id, sender_id, sender_kind, body) VALUES (:c, 'x', 'tenant', 'forged')"
                    ),
                    {"c": b},
                )
    async with app.state.app_db.sessionmaker() as session, session.begin():
        # no scope at all: nothing
        assert (await session.execute(sa.text("SELECT count(*) FROM chat_message"))).scalar_one() == 0
    async with app.state.app_db.sessionmaker() as session, session.begin():
        await set_company_scope(session, None, is_admin=True)
        seen = set(
            (await session.execute(sa.text("SELECT company_id::text FROM chat_message"))).scalars().all()
        )
        assert {a, b} <= seen


async def test_the_app_role_cannot_read_the_outbox(app):
    async with app.state.app_db.sessionmaker() as session:
        with pytest.raises(Exception, match="permission denied"):
            async with session.begin():
                await set_company_scope(session, None, is_admin=True)
                await session.execute(sa.text("SELECT event FROM outbox LIMIT 1"))


class FakeMetrics:
    """The services' Prometheus ``/metrics``: siem-ingest answers and its CPU time grows by half a
    second per scrape; the others are down."""

    def __init__(self) -> None:
        self.cpu = 10.0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.port == 8011 and request.url.path == "/metrics":
            self.cpu += 0.5
            return httpx.Response(
                200,
                text=(
                    "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                    f"process_cpu_seconds_total {self.cpu}\n"
                    "process_resident_memory_bytes 5.24288e+07\n"
                ),
            )
        raise httpx.ConnectError("down (test)", request=request)


async def test_admin_live_feed_figures(client, headers, tokens, make_app, serve_app):
    from soc_tenant.readmodel.testing import add_ti_integration

    replica = make_app()
    replica.state.control_options.live_metrics_seconds = 0.3
    replica.state.metrics_transport = httpx.MockTransport(FakeMetrics().handle)
    analyst = tokens.token(kind="admin", username="analyst")
    a = await new_company(client, headers)
    alice = tokens.token(kind="tenant", company_id=a, roles=["TENANT_USER"], username="alice")
    async with serve_app(replica) as host:
        async with (
            connect(
                f"ws://{host}/ws/chat/?metrics=true", subprotocols=["soc.v1", f"access_token.{analyst}"]
            ) as w_admin,
            connect(
                f"ws://{host}/ws/chat/?metrics=true", subprotocols=["soc.v1", f"access_token.{alice}"]
            ) as w_alice,
            connect(f"ws://{host}/ws/chat/", subprotocols=["soc.v1", f"access_token.{analyst}"]) as w_plain,
        ):
            for w in (w_admin, w_alice, w_plain):
                await frame(w, "hello")
            first = await frame(w_admin, "metrics")
            assert first["companies"]["total"] >= 1 and first["companies"]["active"] >= 1
            assert set(first["integrations"]) >= {"total", "active", "error", "disabled", "by_type"}
            assert first["host"]["memory_percent"] is None or 0 < first["host"]["memory_percent"] <= 100
            services = {s["service"]: s for s in first["services"]}
            assert set(services) == {
                "tenant",
                "auth",
                "siem-ingest",
                "soar-ingest",
                "itsm-ingest",
                "threatintel",
            }
            assert services["siem-ingest"]["up"] and services["siem-ingest"]["rss_bytes"] == 52428800
            assert not services["auth"]["up"] and services["auth"]["cpu_percent"] is None
            # a new company and a new integration show in the next frames
            await new_company(client, headers)
            await add_ti_integration(replica.state.db, a)

            async def updated() -> dict[str, Any]:
                while True:
                    f = await frame(w_admin, "metrics")
                    # a frame may fall between the two writes: wait for one that has both
                    if (
                        f["companies"]["total"] == first["companies"]["total"] + 1
                        and f["integrations"]["total"] > first["integrations"]["total"]
                    ):
                        return f

            later = await asyncio.wait_for(updated(), 10)
            assert later["integrations"]["total"] == first["integrations"]["total"] + 1
            assert later["integrations"]["by_type"]["THREAT_INTELLIGENCE"] == (
                first["integrations"]["by_type"].get("THREAT_INTELLIGENCE", 0) + 1
            )
            # CPU is a rate between two scrapes: siem-ingest used 0.5 s of CPU per interval
            siem = {s["service"]: s for s in later["services"]}["siem-ingest"]
            assert siem["cpu_percent"] is not None and siem["cpu_percent"] > 0
            assert later["host"]["cpu_count"] >= 1
            # a tenant user, and an admin who did not ask, get no figures
            for w in (w_alice, w_plain):
                await w.send(json.dumps({"type": "ping", "ref": "x"}))
                got = json.loads(await asyncio.wait_for(w.recv(), 5))
                assert got["type"] == "pong", got
