"""Sealed credentials: key rotation with re-seal, and credentials bound to the origin they were
entered for (a new scheme, host or port needs them again)."""

from __future__ import annotations

import base64
import os
import secrets
import uuid

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from soc_shared.crypto import Sealer
from soc_tenant.__main__ import reseal
from soc_tenant.control.tables import integration
from soc_tenant.integrations.views import aad


def qradar_body(**overrides) -> dict:
    return {
        "subtype": "IBM_QRADAR",
        "instance_name": f"QRadar {uuid.uuid4().hex[:8]}",
        "base_url": "https://qradar.example.com",
        "credential_kind": "API_KEY",
        "credentials": {"api_key": f"tok{uuid.uuid4().hex}"},
        **overrides,
    }


async def create(client, headers, body) -> dict:
    r = await client.post("/integration/", json=body, headers=headers(kind="admin"))
    assert r.status_code == 201, r.text
    return r.json()


async def sealed_of(app, integration_id: str) -> str:
    async with app.state.db.session() as session:
        return (
            await session.execute(
                sa.select(integration.c.credentials_sealed).where(integration.c.id == integration_id)
            )
        ).scalar_one()


async def test_rotation_reseals_every_credential_with_the_new_active_key(app, client, headers, settings):
    body = qradar_body()
    created = await create(client, headers, body)
    old_token = await sealed_of(app, created["id"])
    session_keys = os.environ["SOC_SEALING_KEYS"]
    new_key = f"rot{secrets.token_hex(2)}:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    rotated = settings.model_copy(update={"sealing_keys": SecretStr(f"{session_keys},!{new_key}")})
    reseal(rotated)
    token = await sealed_of(app, created["id"])
    new_sealer = Sealer.from_env_value(rotated.sealing_keys.get_secret_value())
    assert token != old_token and token.split(".")[1] == new_key.split(":")[0]
    assert new_sealer.open_json(token, aad(created["id"]))["api_key"] == body["credentials"]["api_key"]
    # The old key alone no longer opens it: once every service re-sealed, the old key can go.
    with pytest.raises(Exception, match="unknown key"):
        Sealer.from_env_value(session_keys).open_json(token, aad(created["id"]))
    # The running app has the session key only: rotate back for the tests that follow.
    session_kid = session_keys.split(":")[0]
    back = settings.model_copy(update={"sealing_keys": SecretStr(f"{new_key},!{session_keys}")})
    reseal(back)
    assert (await sealed_of(app, created["id"])).split(".")[1] == session_kid


async def test_moving_a_saved_integration_to_another_origin_needs_the_credentials(
    app, client, headers, fake_ingestors
):
    created = await create(client, headers, qradar_body())
    url = f"/integration/{created['id']}/"
    admin = headers(kind="admin")
    for moved in (
        {"base_url": "https://attacker.example.net"},  # host
        {"base_url": "http://qradar.example.com"},  # scheme
        {"base_url": "https://qradar.example.com:8443"},  # port
        {"base_url": "https://qradar.example.com", "port": 444},  # port given apart
    ):
        r = await client.put(url, json=moved, headers=admin)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "credentials_required_for_new_origin"
        before = len(fake_ingestors.requests)
        r = await client.post(
            "/integration/test-connection/", json={"integration_id": created["id"], **moved}, headers=admin
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "credentials_required_for_new_origin"
        assert len(fake_ingestors.requests) == before  # nothing was sent anywhere
    stored = await client.get(url, headers=admin)
    assert stored.json()["base_url"] == "https://qradar.example.com"
    # Same origin, another path: the credentials stay.
    r = await client.put(url, json={"base_url": "https://QRADAR.example.com:443/console"}, headers=admin)
    assert r.status_code == 200, r.text
    # A new origin with the credentials typed again is accepted, and they are bound to it.
    fresh = {"api_key": "tok-" + uuid.uuid4().hex}
    r = await client.put(
        url,
        json={"base_url": "https://qradar2.example.com", "credential_kind": "API_KEY", "credentials": fresh},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    r = await client.get(
        f"/internal/integrations/{created['id']}/credentials",
        headers=headers(kind="service", sub="siem-ingest", roles=[], permissions=[]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["origin"] == "https://qradar2.example.com:443" and r.json()["secrets"] == fresh


async def test_internal_addresses_written_in_the_url_are_refused(client, headers, monkeypatch):
    monkeypatch.setenv("SOC_ENV", "prod")  # read at each check: no loopback allowance
    admin = headers(kind="admin")
    for url in ("http://169.254.169.254/latest/meta-data", "https://10.0.0.8", "https://127.0.0.1:15672"):
        r = await client.post("/integration/", json=qradar_body(base_url=url), headers=admin)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "egress_denied"
    monkeypatch.setenv("SOC_EGRESS_ALLOW", "10.0.0.0/24")
    r = await client.post("/integration/", json=qradar_body(base_url="https://10.0.0.8"), headers=admin)
    assert r.status_code == 201, r.text


async def test_only_the_owning_ingestor_reads_an_integrations_credentials(client, headers):
    created = await create(client, headers, qradar_body())
    url = f"/internal/integrations/{created['id']}/credentials"
    for caller in (
        headers(kind="service", sub="threatintel", roles=[]),  # another ingestor
        headers(kind="service", sub="tenant", roles=[]),
        # the right client id with scopes that do not include this vendor's credentials
        headers(kind="service", sub="siem-ingest", roles=[], scope="tenant.credentials:CYWARE"),
    ):
        r = await client.get(url, headers=caller)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_credential_owner", r.text
        assert "api_key" not in r.text
    owner = headers(kind="service", sub="siem-ingest", roles=[], scope="tenant.credentials:IBM_QRADAR")
    assert (await client.get(url, headers=owner)).status_code == 200


async def test_account_changes_are_taken_from_the_auth_service_only(app, client, headers):
    import asyncio

    from soc_shared.events import UserChanged, make_event

    user_id = str(uuid.uuid4())
    forged = UserChanged(
        user_id=user_id,
        username="mallory",
        kind="admin",
        tokens_not_before=None,
        changed_at=__import__("datetime").datetime.now(__import__("datetime").UTC),
    )
    revoking = forged.model_copy(update={"tokens_not_before": forged.changed_at})
    token = headers(kind="admin", sub=user_id, iat_ms=int(forged.changed_at.timestamp() * 1000) - 5000)
    await app.state.bus.publish(
        [make_event("auth.user.changed", revoking, source="/siem-ingest", subject=user_id)]
    )
    await asyncio.sleep(1.0)
    assert (await client.get("/integration/", headers=token)).status_code == 200  # forged: ignored
    await app.state.bus.publish([make_event("auth.user.changed", revoking, source="/auth", subject=user_id)])
    for _ in range(50):
        if (await client.get("/integration/", headers=token)).status_code == 401:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the revocation carried on auth.user.changed was not applied")


def test_csv_and_xlsx_escape_formulas_in_header_cells_too():
    import io

    from openpyxl import load_workbook
    from soc_tenant.readmodel.common import csv_bytes, xlsx_bytes

    columns = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "name", "-1"]
    rows = [{"name": "@SUM(A1)", "-1": "-1", columns[0]: "=1+1"}]
    text = csv_bytes(columns, rows).decode("utf-8-sig")
    header, row = text.splitlines()[:2]
    assert header.startswith("'=HYPERLINK") or header.startswith("\"'=HYPERLINK")
    assert ",'+cmd" in header and header.endswith(",name,-1")
    assert "'@SUM(A1)" in row and "'=1+1" in row
    sheet = load_workbook(io.BytesIO(xlsx_bytes(columns, rows))).active
    cells = [c.value for c in next(sheet.iter_rows())]
    assert cells[0].startswith("'=") and cells[1].startswith("'+") and cells[3] == "-1"


async def test_row_level_security_is_forced_on_the_table_owner_too(app, client, headers):
    from soc_shared.db import set_company_scope

    admin = headers(kind="admin")
    ids = []
    for _ in range(2):
        r = await client.post(
            "/admin/companies/", json={"name": f"RLS {uuid.uuid4().hex[:8]}"}, headers=admin
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    async with app.state.db.session() as session:  # the owner role
        unforced = (
            await session.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'tenant' AND c.relrowsecurity AND NOT c.relforcerowsecurity"
                )
            )
        ).all()
        assert unforced == []
        everything = (await session.execute(sa.text("SELECT id::text FROM company"))).scalars().all()
        assert set(ids) <= set(everything)  # unscoped owner work (consumers) still sees every row
    async with app.state.db.session() as session:
        await set_company_scope(session, ids[0], is_admin=False)
        seen = (await session.execute(sa.text("SELECT id::text FROM company"))).scalars().all()
        assert seen == [ids[0]]  # scoped, the owner is held to the company policy
        touched = await session.execute(
            sa.text("UPDATE company SET name = 'x' WHERE id::text = :id RETURNING id"), {"id": ids[1]}
        )
        assert touched.all() == []  # another company's row cannot be changed
        with pytest.raises(Exception, match="row-level security"):
            await session.execute(
                sa.text("INSERT INTO company (id, name) VALUES (gen_random_uuid(), 'forged')")
            )


async def test_internal_routes_name_their_callers(client, headers):
    def svc(sub: str, **kw) -> dict:
        return headers(kind="service", sub=sub, roles=[], permissions=[], **kw)

    for caller in (svc("gateway"), svc("tenant"), svc("siem-ingest", scope="auth.revocations:read")):
        r = await client.get("/internal/integrations/", headers=caller)
        assert r.status_code == 403 and r.json()["error"]["code"] == "caller_not_allowed", r.text
    assert (await client.get("/internal/integrations/", headers=svc("threatintel"))).status_code == 200
    r = await client.get(
        "/internal/ticket-routing",
        headers=svc("siem-ingest"),
        params={"soar_integration_id": str(uuid.uuid4())},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "caller_not_allowed"
