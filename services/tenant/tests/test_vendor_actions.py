"""Vendor actions end to end, asked through the gateway as a browser (or an attacker) would: the
tenant service accepts and audits them, soar-ingest and itsm-ingest act on the XSOAR and
ServiceDesk Plus simulators, the outcome is stored, audited and pushed to the asker's WebSocket,
and the changed records come back through the normal sync into the read model."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import soc_itsm_ingest
import soc_soar_ingest
import sqlalchemy as sa
from fastapi import FastAPI
from soc_gateway.config import Settings as GatewaySettings
from soc_gateway.main import create_app as create_gateway
from soc_itsm_ingest.config import Settings as ItsmSettings
from soc_itsm_ingest.main import create_app as create_itsm
from soc_shared.bus import Bus
from soc_shared.db import migrate
from soc_shared.events import IntegrationChanged, SiemOffense
from soc_shared.testing import TokenFactory
from soc_shared.vendor_http import RetryPolicy
from soc_simulators import sdp as sdp_sim
from soc_simulators import xsoar as xsoar_sim
from soc_soar_ingest.config import Settings as SoarSettings
from soc_soar_ingest.main import create_app as create_soar
from soc_tenant.main import create_app
from soc_tenant.readmodel.testing import add_company, event, eventually, map_itsm, map_qradar, map_soar
from websockets.asyncio.client import connect

from .conftest import StaticServiceTokens, serve

RUN = uuid.uuid4().hex[:6]
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05)
QRADAR = f"qradar-act-{RUN}"


class HostTransport(httpx.AsyncBaseTransport):
    """The tenant service's calls to the ingestors, in-process by host name."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


def jwks_app(tokens: TokenFactory) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return tokens.jwks

    return app


@dataclass
class Stack:
    gateway: str
    tenant: FastAPI
    soar: FastAPI
    itsm: FastAPI
    xsoar: FastAPI
    sdp: FastAPI
    a: str  # company A (acme) and its people
    b: str
    xsoar_id: str
    sdp_id: str
    account_a: str
    account_b: str
    offense_a: int
    offense_b: int


async def add_integration(db: Any, subtype: str, name: str) -> str:
    integration_id = str(uuid.uuid4())
    kind = {"CORTEX_XSOAR": "SOAR", "MANAGEENGINE_SDP": "ITSM"}[subtype]
    async with db.session() as s:
        await s.execute(
            sa.text(
                "INSERT INTO integration (id, integration_type, subtype, instance_name, base_url, credential_kind, "
                "credentials_sealed, status) VALUES (:id, :kind, :subtype, :name, :url, 'API_KEY', 'sealed', 'active')"
            ),
            {"id": integration_id, "kind": kind, "subtype": subtype, "name": name, "url": f"http://{name}"},
        )
    return integration_id


async def known_to(app: FastAPI, integration_id: str, subtype: str, base_url: str) -> None:
    ingestor = app.state.ingestor
    async with ingestor.db.session() as session:
        await ingestor.apply_integration(
            session,
            IntegrationChanged(
                integration_id=integration_id,
                integration_type="SOAR" if subtype == "CORTEX_XSOAR" else "ITSM",
                subtype=subtype,
                instance_name=f"actions {integration_id[:8]}",
                status="active",
                base_url=base_url,
                credential_kind="API_KEY",
                settings={},
                changed_at=datetime.now(UTC),
            ),
        )


async def sync(app: FastAPI, integration_id: str) -> None:
    ingestor = app.state.ingestor
    await ingestor.trigger(integration_id)
    while await ingestor.run_due_once():
        pass
    failed = [
        (s["resource"], s["last_error"]) for s in await ingestor.states(integration_id) if s["last_error"]
    ]
    assert not failed, failed


# QRadar sets an offense's start_time once (and the read model keys the offense on it): every
# version of a test offense keeps the same one.
OFFENSE_START = datetime.now(UTC) - timedelta(hours=1)


def offense(offense_id: int, domain_id: int) -> SiemOffense:
    now = datetime.now(UTC)
    return SiemOffense.model_validate(
        {
            "offense_id": offense_id,
            "description": f"Brute force against VPN (offense {offense_id})",
            "status": "OPEN",
            "severity": 8,
            "magnitude": 7,
            "credibility": 5,
            "relevance": 5,
            "version": 1,
            "domain_id": domain_id,
            "offense_source": "10.1.2.3",
            "start_time": OFFENSE_START,
            "last_updated_time": now,
        }
    )


@pytest.fixture(scope="module")
async def stack(migrated: Any, tokens: TokenFactory) -> AsyncIterator[Stack]:
    soar_settings = SoarSettings(scheduler_enabled=False)
    itsm_settings = ItsmSettings(scheduler_enabled=False, tickets_enabled=False)
    migrate(soar_settings, Path(soc_soar_ingest.__file__).parent / "migrations")
    migrate(itsm_settings, Path(soc_itsm_ingest.__file__).parent / "migrations")
    xsoar = xsoar_sim.create_app(seed=41, incidents=40)
    sdp = sdp_sim.create_app(seed=41, requests=60, xsoar_incidents=40)

    async def soar_credentials(_: str) -> dict[str, Any]:
        return {
            "credential_kind": "API_KEY",
            "secrets": {"api_key": xsoar_sim.API_KEY},
            "origin": "http://xsoar.sim:80",
        }

    async def sdp_credentials(_: str) -> dict[str, Any]:
        token = sdp.state.sim.auth_token
        return {"credential_kind": "API_KEY", "secrets": {"api_key": token}, "origin": "http://sdp.sim:80"}

    soar = create_soar(
        soar_settings,
        verifier=tokens.verifier(),
        credentials=soar_credentials,
        client_options={"transport": httpx.ASGITransport(app=xsoar), "retry": FAST},
    )
    itsm = create_itsm(
        itsm_settings,
        verifier=tokens.verifier(),
        credentials=sdp_credentials,
        client_options={"transport": httpx.ASGITransport(app=sdp), "retry": FAST},
    )
    settings = migrated.model_copy(
        update={"soar_ingest_url": "http://soar-ingest.test", "itsm_ingest_url": "http://itsm-ingest.test"}
    )
    tenant = create_app(settings, verifier=tokens.verifier())
    tenant.state.ingestor_transport = HostTransport({"soar-ingest.test": soar, "itsm-ingest.test": itsm})
    async with AsyncExitStack() as stack:
        for app in (soar, itsm):
            await stack.enter_async_context(app.router.lifespan_context(app))
        for app in (soar, itsm):
            app.state.actions.retry_base_seconds = 0.05
            app.state.actions.reconcile_interval = 0.1
        tenant_host = await stack.enter_async_context(serve(tenant))
        tenant.state.service_tokens = StaticServiceTokens(tokens)
        auth_host = await stack.enter_async_context(serve(jwks_app(tokens)))
        gateway = create_gateway(
            GatewaySettings(
                upstreams={"auth": f"http://{auth_host}", "tenant": f"http://{tenant_host}"},
                environment="test",
                log_level="WARNING",
                revocation_poll_seconds=0,
                console_dir=None,
                rate_limit_user_per_second=1000,
                rate_limit_user_burst=1000,
                rate_limit_address_per_second=1000,
                rate_limit_address_burst=1000,
            )
        )
        gateway_host = await stack.enter_async_context(serve(gateway))

        db = tenant.state.db
        a = await add_company(db, f"Acme actions {RUN}")
        b = await add_company(db, f"Other actions {RUN}")
        xsoar_id = await add_integration(db, "CORTEX_XSOAR", "xsoar.sim")
        sdp_id = await add_integration(db, "MANAGEENGINE_SDP", "sdp.sim")
        await known_to(soar, xsoar_id, "CORTEX_XSOAR", "http://xsoar.sim")
        await known_to(itsm, sdp_id, "MANAGEENGINE_SDP", "http://sdp.sim")
        account_a, account_b = sorted(xsoar.state.sim.accounts)[:2]
        await map_soar(db, a, xsoar_id, account_a)
        await map_soar(db, b, xsoar_id, account_b)
        await map_itsm(db, a, sdp_id, sdp_sim.ACCOUNTS[0].id)
        await map_itsm(db, b, sdp_id, sdp_sim.ACCOUNTS[1].id)
        await map_qradar(db, a, QRADAR, 1)
        await map_qradar(db, b, QRADAR, 2)

        bus = Bus(migrated.amqp_url.get_secret_value(), service="actions-tests")
        await bus.connect()
        await bus.publish(
            [
                event("siem.offense.upserted", offense(7001, 1), QRADAR, "7001", version=1, vendor_tenant=1),
                event("siem.offense.upserted", offense(7002, 2), QRADAR, "7002", version=1, vendor_tenant=2),
            ]
        )
        await bus.close()
        await sync(soar, xsoar_id)
        await sync(itsm, sdp_id)

        async def ids() -> tuple[int, int] | None:
            async with db.session() as s:
                rows = dict(
                    (
                        await s.execute(
                            sa.text("SELECT offense_id, id FROM qradar_offense WHERE integration_id = :q"),
                            {"q": QRADAR},
                        )
                    ).all()
                )
                incidents = (
                    await s.execute(
                        sa.text("SELECT count(*) FROM soar_incident WHERE integration_id = :i"),
                        {"i": xsoar_id},
                    )
                ).scalar_one()
                tickets = (
                    await s.execute(
                        sa.text("SELECT count(*) FROM itsm_ticket WHERE integration_id = :i"), {"i": sdp_id}
                    )
                ).scalar_one()
            if len(rows) == 2 and incidents and tickets:
                return rows[7001], rows[7002]
            return None

        offense_a, offense_b = await eventually(ids, within=30)
        yield Stack(
            f"http://{gateway_host}",
            tenant,
            soar,
            itsm,
            xsoar,
            sdp,
            a,
            b,
            xsoar_id,
            sdp_id,
            account_a,
            account_b,
            offense_a,
            offense_b,
        )


def people(tokens: TokenFactory, s: Stack) -> dict[str, dict[str, str]]:
    return {
        "admin": tokens.headers(kind="admin", username="soc.lead"),
        "read_only_admin": tokens.headers(kind="admin", read_only=True),
        "a_admin": tokens.headers(kind="tenant", company_id=s.a, username="acme.admin"),
        "a_user": tokens.headers(kind="tenant", company_id=s.a, roles=["TENANT_USER"], username="acme.user"),
        "b_admin": tokens.headers(kind="tenant", company_id=s.b, username="other.admin"),
        "b_user": tokens.headers(kind="tenant", company_id=s.b, roles=["TENANT_USER"]),
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def outcome(client: httpx.AsyncClient, headers: dict[str, str], command_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        r = await client.get(f"/tenant/actions/{command_id}/", headers=headers)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["status"] != "accepted" else None

    return await eventually(done, within=30)


async def first_pk(stack: Stack, table: str, where: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with stack.tenant.state.db.session() as s:
        row = (
            (await s.execute(sa.text(f"SELECT * FROM {table} WHERE {where} ORDER BY id LIMIT 1"), params))
            .mappings()
            .first()
        )
    assert row is not None
    return int(row["id"]), dict(row)


async def test_escalating_an_offense(stack: Stack, tokens: TokenFactory) -> None:
    who = people(tokens, stack)
    records = stack.xsoar.state.sim.records
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=20) as client:
        path = f"/tenant/offenses/{stack.offense_a}/escalate/"
        # Refused: no key, bad input, a plain tenant user, a read-only admin, the other company.
        assert (await client.post(path, json={}, headers=who["a_admin"])).status_code == 422
        r = await client.post(path, json={"severity": "extreme"}, headers={**who["a_admin"], **key()})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        r = await client.post(path, json={}, headers={**who["a_user"], **key()})
        assert r.status_code == 403
        assert (
            await client.post(path, json={}, headers={**who["read_only_admin"], **key()})
        ).status_code == 403
        r = await client.post(path, json={}, headers={**who["b_admin"], **key()})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await client.post(
            f"/tenant/offenses/{stack.offense_b}/escalate/", json={}, headers={**who["a_admin"], **key()}
        )
        assert r.status_code == 404

        ws = f"{stack.gateway.replace('http', 'ws')}/ws/chat/"
        a_token = who["a_admin"]["Authorization"].split()[1]
        async with connect(ws, subprotocols=["soc.v1", f"access_token.{a_token}"]) as socket:  # type: ignore[list-item]
            assert json.loads(await socket.recv())["type"] == "hello"
            headers = {**who["a_admin"], "Idempotency-Key": f"escalate-{RUN}"}
            body = {"owner": "acme.analyst"}
            r = await client.post(path, json=body, headers=headers)
            assert r.status_code == 202, r.text
            accepted = r.json()
            assert accepted["status"] == "accepted" and accepted["vendor_tenant"] == stack.account_a
            # Asking again with the key: the same command, nothing sent again; another body: 409.
            again = await client.post(path, json=body, headers=headers)
            assert again.status_code == 202 and again.json()["id"] == accepted["id"]
            r = await client.post(path, json={"owner": "someone.else"}, headers=headers)
            assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_reused"

            # The offense changes before the client's retry: the key still names the same request.
            changed = offense(7001, 1).model_copy(update={"severity": 3, "version": 2})
            bus = Bus(str(stack.tenant.state.settings.amqp_url.get_secret_value()), service="actions-tests")
            await bus.connect()
            await bus.publish(
                [event("siem.offense.upserted", changed, QRADAR, "7001", version=2, vendor_tenant=1)]
            )
            await bus.close()

            async def lowered() -> bool:
                async with stack.tenant.state.db.session() as s:
                    sev = (
                        await s.execute(
                            sa.text("SELECT severity FROM qradar_offense WHERE id = :i"),
                            {"i": stack.offense_a},
                        )
                    ).scalar_one()
                return sev == 3

            assert await eventually(lowered, within=20)
            retried = await client.post(path, json=body, headers=headers)
            assert retried.status_code == 202 and retried.json()["id"] == accepted["id"]

            frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
            assert frame["type"] == "action.outcome" and frame["action"]["command_id"] == accepted["id"]
            assert frame["action"]["status"] == "succeeded"

        done = await outcome(client, who["a_admin"], accepted["id"])
        incident_id = done["result"]["incident_id"]
        created = [
            rec.doc
            for (acc, _), rec in records.items()
            if acc == stack.account_a and rec.doc["CustomFields"].get("offenseid") == "7001"
        ]
        assert len(created) == 1 and created[0]["id"] == incident_id  # one incident for one key
        assert created[0]["owner"] == "acme.analyst" and created[0]["severity"] == 3  # offense severity 8
        assert created[0]["name"] == "Brute force against VPN (offense 7001)"
        # Another company's user cannot read the action either.
        assert (
            await client.get(f"/tenant/actions/{accepted['id']}/", headers=who["b_admin"])
        ).status_code == 404

        # The incident comes back through the sync and shows on the offense.
        await sync(stack.soar, stack.xsoar_id)

        async def linked() -> bool:
            r = await client.get(f"/tenant/offenses/{stack.offense_a}/", headers=who["a_admin"])
            return any(i["incident_id"] == incident_id for i in r.json()["incidents"])

        assert await eventually(linked, within=30)

        # The audit trail: the request and its outcome, with who asked.
        r = await client.get(
            "/admin/audit/",
            params={"target_type": "vendor_action", "target_id": accepted["id"]},
            headers=who["admin"],
        )
        trail = sorted(r.json()["items"], key=lambda x: x["id"])
        assert [x["action"] for x in trail] == ["vendor_action.requested", "vendor_action.succeeded"]
        assert trail[0]["actor_username"] == "acme.admin" and trail[0]["company_id"] == stack.a
        assert trail[1]["actor_username"] == "soar-ingest" and trail[1]["after"]["status"] == "succeeded"


async def test_updating_closing_and_running_a_playbook(stack: Stack, tokens: TokenFactory) -> None:
    who = people(tokens, stack)
    pk, row = await first_pk(
        stack,
        "soar_incident",
        "integration_id = :i AND account = :a AND status <> 'closed'",
        i=stack.xsoar_id,
        a=stack.account_a,
    )
    rec = stack.xsoar.state.sim.records[(stack.account_a, row["incident_id"])]
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=20) as client:
        # Playbooks of the company's account; another company's account is not found.
        params = {"integration_id": stack.xsoar_id, "account": stack.account_a}
        r = await client.get("/tenant/soar-playbooks/", params=params, headers=who["a_admin"])
        assert r.status_code == 200, r.text
        assert "Block IP - Generic v3" in [p["id"] for p in r.json()["items"]]
        assert (
            await client.get("/tenant/soar-playbooks/", params=params, headers=who["b_admin"])
        ).status_code == 404

        run = f"/tenant/soar-incidents/{pk}/run-playbook/"
        playbook = {"playbook_id": "Block IP - Generic v3"}
        assert (await client.post(run, json=playbook, headers={**who["b_admin"], **key()})).status_code == 404
        headers = {**who["a_admin"], **key()}
        r = await client.post(run, json=playbook, headers=headers)
        assert r.status_code == 202, r.text
        assert (await outcome(client, who["a_admin"], r.json()["id"]))["status"] == "succeeded"
        assert rec.doc["playbookId"] == "Block IP - Generic v3"
        version = rec.doc["version"]
        assert (await client.post(run, json=playbook, headers=headers)).json()["id"] == r.json()["id"]
        await asyncio.sleep(0.5)
        assert rec.doc["version"] == version  # the repeat ran nothing

        update = f"/tenant/soar-incidents/{pk}/update/"
        r = await client.post(update, json={"status": "closed"}, headers={**who["a_admin"], **key()})
        assert r.status_code == 422  # closing needs a reason
        r = await client.post(update, json={"owner": "x"}, headers={**who["b_admin"], **key()})
        assert r.status_code == 404
        r = await client.post(update, json={"owner": "x"}, headers={**who["a_user"], **key()})
        assert r.status_code == 403
        headers = {**who["admin"], **key()}
        body = {
            "owner": "jane.doe",
            "severity": "critical",
            "status": "closed",
            "close_reason": "Resolved",
            "close_notes": "Contained",
        }
        r = await client.post(update, json=body, headers=headers)
        assert r.status_code == 202, r.text
        version = rec.doc["version"]
        assert (await outcome(client, who["admin"], r.json()["id"]))["status"] == "succeeded"
        assert (await client.post(update, json=body, headers=headers)).json()["id"] == r.json()["id"]
        assert rec.doc["version"] > version and rec.status == 2
        assert (rec.doc["owner"], rec.doc["severity"], rec.doc["closeReason"], rec.doc["closeNotes"]) == (
            "jane.doe",
            4,
            "Resolved",
            "Contained",
        )

        await sync(stack.soar, stack.xsoar_id)

        async def synced() -> dict[str, Any] | None:
            r = await client.get(f"/tenant/soar-incidents/{pk}/", headers=who["a_admin"])
            detail = r.json()
            return detail if detail["status"] == "closed" else None

        detail = await eventually(synced, within=30)
        assert detail["owner"] == "jane.doe" and detail["severity"] == "critical"
        assert detail["playbook_id"] == "Block IP - Generic v3" and detail["close_reason"] == "Resolved"


async def test_notes_and_status_on_a_ticket(stack: Stack, tokens: TokenFactory) -> None:
    who = people(tokens, stack)
    pk, row = await first_pk(
        stack,
        "itsm_ticket",
        "integration_id = :i AND account_id = :a AND status = 'Open'",
        i=stack.sdp_id,
        a=sdp_sim.ACCOUNTS[0].id,
    )
    sim = stack.sdp.state.sim
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=20) as client:
        notes = f"/tenant/itsm-tickets/{pk}/notes/"
        r = await client.post(notes, json={"description": "x"}, headers={**who["b_user"], **key()})
        assert r.status_code == 404
        r = await client.post(notes, json={"description": ""}, headers={**who["a_user"], **key()})
        assert r.status_code == 422
        headers = {**who["a_user"], **key()}
        r = await client.post(notes, json={"description": "Please call me about this."}, headers=headers)
        assert r.status_code == 202, r.text
        assert (await outcome(client, who["a_user"], r.json()["id"]))["status"] == "succeeded"
        assert (
            await client.post(notes, json={"description": "Please call me about this."}, headers=headers)
        ).status_code == 202
        assert [n["description"] for n in sim.notes[row["ticket_id"]]] == ["Please call me about this."]

        status = f"/tenant/itsm-tickets/{pk}/status/"
        resolve = {"status": "Resolved", "resolution": "Confirmed with the customer"}
        assert (
            await client.post(status, json=resolve, headers={**who["b_user"], **key()})
        ).status_code == 404
        headers = {**who["a_user"], **key()}
        r = await client.post(status, json=resolve, headers=headers)
        assert r.status_code == 202, r.text
        assert (await outcome(client, who["a_user"], r.json()["id"]))["status"] == "succeeded"
        request = sim.records[row["ticket_id"]]
        assert request.doc["status"]["name"] == "Resolved"
        assert request.doc["resolution"]["content"] == "Confirmed with the customer"
        updated = request.updated_ms
        assert (await client.post(status, json=resolve, headers=headers)).json()["id"] == r.json()["id"]
        await asyncio.sleep(0.5)
        assert request.updated_ms == updated  # the repeat changed nothing at the vendor

        # A refused status is recorded as failed and reported, not lost.
        r = await client.post(
            f"/tenant/itsm-tickets/{pk}/status/",
            json={"status": "Nonsense"},
            headers={**who["a_user"], **key()},
        )
        failed = await outcome(client, who["a_user"], r.json()["id"])
        assert failed["status"] == "failed" and failed["error"]["category"] == "invalid_request"

        await sync(stack.itsm, stack.sdp_id)

        async def synced() -> bool:
            r = await client.get(f"/tenant/itsm-tickets/{pk}/", headers=who["a_user"])
            return r.json()["status"] == "Resolved"

        assert await eventually(synced, within=30)
        mine = await client.get("/tenant/actions/", params={"target_type": "ticket"}, headers=who["a_user"])
        assert {a["status"] for a in mine.json()["items"]} == {"succeeded", "failed"}
        theirs = await client.get("/tenant/actions/", headers=who["b_user"])
        assert theirs.json()["total"] == 0


async def test_an_action_no_ingestor_takes_expires(stack: Stack, tokens: TokenFactory) -> None:
    """soar-ingest takes no command for a while: the action ends expired at its deadline (stored,
    audited, pushed to the asker), the ingestor that comes back later never starts it, and an
    outcome that still arrives from the vendor replaces the expiry."""
    from soc_shared.events import ActionCompleted
    from soc_tenant.actions import views as actions

    who = people(tokens, stack)
    pk, row = await first_pk(
        stack,
        "soar_incident",
        "integration_id = :i AND account = :a AND status <> 'closed'",
        i=stack.xsoar_id,
        a=stack.account_a,
    )
    rec = stack.xsoar.state.sim.records[(stack.account_a, row["incident_id"])]
    version = rec.doc["version"]
    runner = stack.soar.state.actions
    settings = stack.tenant.state.settings
    default_expiry = settings.action_expiry_seconds
    await runner.stop()  # the command waits in soar-ingest's queue
    settings.action_expiry_seconds = 1.0
    try:
        async with httpx.AsyncClient(base_url=stack.gateway, timeout=20) as client:
            ws = f"{stack.gateway.replace('http', 'ws')}/ws/chat/"
            a_token = who["a_admin"]["Authorization"].split()[1]
            async with connect(ws, subprotocols=["soc.v1", f"access_token.{a_token}"]) as socket:  # type: ignore[list-item]
                assert json.loads(await socket.recv())["type"] == "hello"
                r = await client.post(
                    f"/tenant/soar-incidents/{pk}/update/",
                    json={"owner": "too.late"},
                    headers={**who["a_admin"], **key()},
                )
                assert r.status_code == 202, r.text
                accepted = r.json()
                deadline = datetime.fromisoformat(accepted["expires_at"])
                requested = datetime.fromisoformat(accepted["requested_at"])
                assert accepted["status"] == "accepted" and deadline - requested == timedelta(seconds=1)
                # not before its deadline
                assert await actions.expire_due(stack.tenant, now=deadline - timedelta(milliseconds=1)) == 0
                await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.05)
                await actions.expire_due(stack.tenant)  # (or the service's own expiry loop did)

                frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
                assert frame["type"] == "action.outcome" and frame["action"]["command_id"] == accepted["id"]
                assert frame["action"]["status"] == "expired"
                assert frame["action"]["error"]["category"] == "expired"

            done = await outcome(client, who["a_admin"], accepted["id"])
            assert done["status"] == "expired" and done["error"]["category"] == "expired"
            assert done["finished_at"] is not None
            listed = await client.get(
                "/tenant/actions/", params={"status": "expired"}, headers=who["a_admin"]
            )
            assert accepted["id"] in [x["id"] for x in listed.json()["items"]]
            r = await client.get(
                "/admin/audit/",
                params={"target_type": "vendor_action", "target_id": accepted["id"]},
                headers=who["admin"],
            )
            trail = sorted(r.json()["items"], key=lambda x: x["id"])
            assert [x["action"] for x in trail] == ["vendor_action.requested", "vendor_action.expired"]
            assert trail[1]["after"]["requested_by"] == accepted["requested_by"]

            # soar-ingest comes back: the command is past its deadline, so it is recorded as refused
            # and XSOAR never sees it; its "expired" outcome leaves the action as it is.
            await runner.start()

            async def refused() -> dict[str, Any] | None:
                rows = await runner.rows(command_id=accepted["id"])
                return rows[0] if rows and rows[0]["state"] != "pending" else None

            ingestor_row = await eventually(refused, within=30)
            assert ingestor_row["state"] == "failed" and ingestor_row["error_category"] == "expired"
            await asyncio.sleep(0.5)
            assert rec.doc["version"] == version and rec.doc.get("owner") != "too.late"
            r = await client.get(f"/tenant/actions/{accepted['id']}/", headers=who["a_admin"])
            assert r.json()["status"] == "expired"

            # An outcome of what the vendor really did still replaces the expiry (the ingestor had
            # sent it just before the deadline).
            late = ActionCompleted(
                command_id=accepted["id"],
                idempotency_key=accepted["idempotency_key"],
                action=accepted["action"],
                company_id=accepted["company_id"],
                requested_by=accepted["requested_by"],
                status="succeeded",
                result={"incident_id": row["incident_id"]},
                attempts=1,
                finished_at=datetime.now(UTC),
            )
            assert await actions.apply_outcome(stack.tenant, late, "soar-ingest") is True
            assert await actions.apply_outcome(stack.tenant, late, "soar-ingest") is False  # once
            r = await client.get(f"/tenant/actions/{accepted['id']}/", headers=who["a_admin"])
            assert r.json()["status"] == "succeeded" and r.json()["error"] is None
    finally:
        settings.action_expiry_seconds = default_expiry
        if runner._consumer is None:
            await runner.start()
