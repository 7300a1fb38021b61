"""The audit trail: one record per change in the change's own transaction (none for a refused one),
secrets masked, filters, CSV, a tenant administrator's own company only, and append-only storage."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from soc_shared.db import set_company_scope
from sqlalchemy.exc import DBAPIError


def uniq(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def admin_headers(headers, name: str | None = None) -> tuple[dict[str, str], str, str]:
    sub = str(uuid.uuid4())
    username = name or f"auditor-{sub[:6]}"
    return headers(kind="admin", sub=sub, username=username), sub, username


async def audit(client, headers, **params) -> dict:
    r = await client.get("/admin/audit/", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def create_company(client, h) -> dict:
    r = await client.post("/admin/companies/", json={"name": uniq("Audited")}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_change_writes_one_record_with_who_what_and_where(client, headers, event_tap):
    h, sub, username = admin_headers(headers)
    company = await create_company(client, h)
    async with event_tap("audit.recorded") as tap:
        r = await client.put(
            f"/admin/companies/{company['id']}/",
            headers={**h, "X-Request-ID": "req-audit-1", "X-Forwarded-For": "203.0.113.7"},
            json={"industry": "Energy"},
        )
        assert r.status_code == 200, r.text
        records = (await audit(client, h, target_id=company["id"]))["items"]
        published = await tap.wait_for(
            lambda evs: [e.payload() for e in evs if e.subject == str(records[0]["id"])]
        )
    assert [x["action"] for x in records] == ["company.updated", "company.created"]
    rec = records[0]
    assert rec["actor_id"] == sub and rec["actor_username"] == username and rec["actor_kind"] == "admin"
    assert rec["company_id"] == company["id"] and rec["target_type"] == "company"
    # Only what changed, both sides.
    assert rec["before"] == {"industry": None} and rec["after"] == {"industry": "Energy"}
    assert rec["request_id"] == "req-audit-1"
    assert rec["forwarded_for"] == "203.0.113.7" and rec["client_address"]
    assert published[0].action == "company.updated" and published[0].after == {"industry": "Energy"}
    assert published[0].request_id == "req-audit-1"


async def test_refused_changes_write_nothing(client, headers):
    h, _, _ = admin_headers(headers)
    a = await create_company(client, h)
    b = await create_company(client, h)
    before = (await audit(client, h, target_id=a["id"]))["total"]
    # 409: b's name is taken (the route ran, read the company, then failed).
    r = await client.put(f"/admin/companies/{a['id']}/", headers=h, json={"name": b["name"]})
    assert r.status_code == 409, r.text
    # 403: a tenant administrator may not rename.
    ta = headers(kind="tenant", company_id=a["id"], roles=["TENANT_ADMIN"])
    r = await client.put(f"/admin/companies/{a['id']}/", headers=ta, json={"name": uniq("Renamed")})
    assert r.status_code == 403, r.text
    # 422 from the body's validation.
    r = await client.put(f"/admin/companies/{a['id']}/", headers=h, json={"industry": 5})
    assert r.status_code == 422
    assert (await audit(client, h, target_id=a["id"]))["total"] == before == 1


async def test_credential_rotation_is_recorded_with_secrets_masked(client, headers):
    h, sub, _ = admin_headers(headers)
    api_key = f"tok{uuid.uuid4().hex}KqZw"
    password = f"Pw-{uuid.uuid4().hex}RyXj"
    r = await client.post(
        "/integration/",
        headers=h,
        json={
            "subtype": "IBM_QRADAR",
            "instance_name": uniq("QRadar"),
            "base_url": "https://qradar.example.com",
            "credential_kind": "API_KEY",
            "credentials": {"api_key": api_key},
        },
    )
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    r = await client.put(
        f"/integration/{iid}/credentials/",
        headers=h,
        json={
            "credential_kind": "USERNAME_PASSWORD",
            "credentials": {"username": "svc", "password": password},
        },
    )
    assert r.status_code == 200, r.text
    records = (await audit(client, h, target_type="integration", target_id=iid))["items"]
    assert [x["action"] for x in records] == ["integration.credentials_rotated", "integration.created"]
    rotated = records[0]
    assert rotated["before"]["credentials_version"] == 1 and rotated["after"]["credentials_version"] == 2
    assert rotated["before"]["credential_kind"] == "API_KEY"
    assert rotated["after"]["credential_kind"] == "USERNAME_PASSWORD"
    assert rotated["after"]["credentials"] == "***"
    exported = await client.get("/admin/audit/export.csv", params={"target_id": iid}, headers=h)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    for text in (json.dumps(records), exported.text):
        assert api_key not in text and api_key[-4:] not in text
        assert password not in text and password[-4:] not in text
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [row["action"] for row in rows] == ["integration.credentials_rotated", "integration.created"]
    assert rows[0]["actor_id"] == sub and json.loads(rows[0]["after"])["credentials_version"] == 2


async def test_filters_narrow_and_bad_filters_are_4xx(client, headers):
    h1, sub1, user1 = admin_headers(headers)
    h2, sub2, _ = admin_headers(headers)
    company = await create_company(client, h1)
    cid = company["id"]
    assert (
        await client.put(f"/admin/companies/{cid}/", headers=h2, json={"country": "DE"})
    ).status_code == 200
    assert (
        await client.put(f"/admin/companies/{cid}/", headers=h2, json={"country": "FR"})
    ).status_code == 200
    assert (await audit(client, h1, company_id=cid))["total"] == 3
    assert [x["action"] for x in (await audit(client, h1, actor=sub1))["items"]] == ["company.created"]
    assert (await audit(client, h1, actor=user1.upper()))["total"] == 1
    assert (await audit(client, h1, actor=sub2, company_id=cid))["total"] == 2
    assert (await audit(client, h1, action="company.updated", target_id=cid))["total"] == 2
    assert (await audit(client, h1, action="company.deleted", target_id=cid))["total"] == 0
    paged = await audit(client, h1, company_id=cid, limit=1, offset=1)
    assert paged["total"] == 3 and len(paged["items"]) == 1 and paged["items"][0]["after"]["country"] == "DE"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await audit(client, h1, company_id=cid, **{"from": future}))["total"] == 0
    assert (await audit(client, h1, company_id=cid, to=future))["total"] == 3
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = await client.get("/admin/audit/", params={"from": future, "to": past}, headers=h1)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await client.get("/admin/audit/", params={"company_id": "nope"}, headers=h1)
    assert r.status_code == 422
    tu = headers(kind="tenant", company_id=cid, roles=["TENANT_USER"])
    assert (await client.get("/admin/audit/", headers=tu)).status_code == 403


async def test_a_tenant_admin_sees_their_own_company_only(client, headers):
    h, _, _ = admin_headers(headers)
    a = await create_company(client, h)
    b = await create_company(client, h)
    assert (
        await client.put(f"/admin/companies/{b['id']}/", headers=h, json={"country": "IT"})
    ).status_code == 200
    ta = headers(kind="tenant", company_id=a["id"], roles=["TENANT_ADMIN"])
    r = await client.put(
        f"/admin/companies/{a['id']}/", headers=ta, json={"phone_number": "+44 20 7946 0001"}
    )
    assert r.status_code == 200
    mine = await audit(client, ta)
    assert mine["total"] >= 2 and {x["company_id"] for x in mine["items"]} == {a["id"]}
    assert {x["actor_kind"] for x in mine["items"]} == {"admin", "tenant"}
    # Another company's records: not even their existence (404 like an unknown company).
    assert (await client.get("/admin/audit/", params={"company_id": b["id"]}, headers=ta)).status_code == 404
    assert (await audit(client, ta, target_id=b["id"]))["total"] == 0
    # Records without a company (integrations of the MSSP) are for admins.
    assert (await audit(client, ta, target_type="integration"))["total"] == 0
    exported = await client.get("/admin/audit/export.csv", headers=ta)
    assert exported.status_code == 200 and b["id"] not in exported.text and a["id"] in exported.text


async def test_the_api_role_can_append_and_read_but_never_change_or_remove(app, client, headers):
    h, _, _ = admin_headers(headers)
    company = await create_company(client, h)
    for stmt in (
        "UPDATE audit_record SET action = 'forged' WHERE target_id = :t",
        "DELETE FROM audit_record WHERE target_id = :t",
        "TRUNCATE audit_record",
    ):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with app.state.app_db.session() as session:
                await set_company_scope(session, None, is_admin=True)
                await session.execute(sa.text(stmt), {"t": company["id"]})
    # Not even the owner role rewrites history.
    with pytest.raises(DBAPIError, match="append-only"):
        async with app.state.db.session() as session:
            await session.execute(
                sa.text("UPDATE audit_record SET action = 'forged' WHERE target_id = :t"),
                {"t": company["id"]},
            )
    records = (await audit(client, h, target_id=company["id"]))["items"]
    assert [x["action"] for x in records] == ["company.created"]


async def test_mappings_and_sla_settings_are_recorded(app, client, headers):
    h, _, _ = admin_headers(headers)
    company = await create_company(client, h)
    cid = company["id"]
    r = await client.post(
        "/integration/",
        headers=h,
        json={
            "subtype": "CORTEX_XSOAR",
            "instance_name": uniq("XSOAR"),
            "base_url": "https://xsoar.example.com",
            "credential_kind": "API_KEY",
            "credentials": {"api_key": f"xs-{uuid.uuid4().hex}"},
        },
    )
    assert r.status_code == 201, r.text
    xs = r.json()["id"]
    async with app.state.db.session() as s:
        await s.execute(
            sa.text(
                "INSERT INTO soar_account (integration_id, account_id, name, version) VALUES (:i, 'acme', 'acme', 1)"
            ),
            {"i": xs},
        )
    r = await client.post(
        "/admin/mappings/soar/", headers=h, json={"company_id": cid, "integration_id": xs, "account": "acme"}
    )
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    assert (
        await client.put(f"/admin/mappings/soar/{mid}/", headers=h, json={"active": False})
    ).status_code == 200
    assert (await client.delete(f"/admin/mappings/soar/{mid}/", headers=h)).status_code == 204
    # A refused mapping (unknown vendor account) leaves no record.
    r = await client.post(
        "/admin/mappings/soar/", headers=h, json={"company_id": cid, "integration_id": xs, "account": "nope"}
    )
    assert r.status_code == 422
    mapped = (await audit(client, h, target_type="mapping", company_id=cid))["items"]
    assert [x["action"] for x in mapped] == [
        "mapping.soar.deleted",
        "mapping.soar.updated",
        "mapping.soar.created",
    ]
    assert mapped[1]["before"]["active"] is True and mapped[1]["after"]["active"] is False

    r = await client.put(f"/admin/companies/{cid}/sla/", headers=h, json={"sla_clock_start": "created"})
    assert r.status_code == 200, r.text
    sla = (await audit(client, h, action="sla.company_updated", target_id=cid))["items"]
    assert len(sla) == 1 and sla[0]["after"]["sla_clock_start"] == "created"
    assert sla[0]["before"]["sla_clock_start"] != "created"


async def test_sla_defaults_change_is_recorded_for_admins_only(client, headers):
    h, sub, _ = admin_headers(headers)
    defaults = (await client.get("/admin/sla/defaults/", headers=h)).json()["items"]
    p3 = next(d for d in defaults if d["level"] == "P3")
    item = {k: p3[k] for k in ("level", "tta_minutes", "ttn_minutes", "ttdn_minutes")}
    try:
        changed = {**item, "tta_minutes": item["tta_minutes"] + 1}
        r = await client.put("/admin/sla/defaults/", headers=h, json={"items": [changed]})
        assert r.status_code == 200, r.text
    finally:
        await client.put("/admin/sla/defaults/", headers=headers(kind="admin"), json={"items": [item]})
    records = (await audit(client, h, actor=sub, action="sla.defaults_updated"))["items"]
    assert len(records) == 1 and records[0]["company_id"] is None
    after = next(d for d in records[0]["after"]["items"] if d["level"] == "P3")
    assert after["tta_minutes"] == item["tta_minutes"] + 1


async def test_lifecycle_changes_are_recorded_once_and_no_ops_not_at_all(client, headers):
    h, _, _ = admin_headers(headers)
    cid = (await create_company(client, h))["id"]
    for _ in range(2):
        assert (await client.post(f"/admin/tenants/{cid}/inactivate/", headers=h)).status_code == 200
    assert (await client.post(f"/admin/tenants/{cid}/reactivate/", headers=h)).status_code == 200
    assert (
        await client.put(f"/admin/companies/{cid}/", headers=h, json={"country": None})
    ).status_code == 200
    for _ in range(2):
        assert (await client.delete(f"/admin/tenants/{cid}/", headers=h)).status_code == 204
    records = (await audit(client, h, target_id=cid))["items"]
    assert [x["action"] for x in records] == [
        "company.deleted",
        "company.reactivated",
        "company.inactivated",
        "company.created",
    ]
    assert records[2]["after"]["status"] != records[2]["before"]["status"]
