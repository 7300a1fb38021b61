"""Vendor-tenant mappings, contracted volumes, SLA (defaults, company overrides, effective_sla), the
one-step tenant creation and the admin tools."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from soc_tenant.control.tables import company as company_table
from soc_tenant.control.tables import qradar_domain
from soc_tenant.sla.views import SlaTargets, effective_sla


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def integration(client, headers, subtype: str, **extra) -> dict:
    creds = {
        "IBM_QRADAR": {"api_key": "qradar-demo-token"},
        "CORTEX_XSOAR": {"api_key": "xsoar-demo-key"},
        "MANAGEENGINE_SDP": {"api_key": "sdp-demo-key"},
        "CYWARE": {"access_key": "acme-access", "secret_key": "acme-secret"},
    }[subtype]
    r = await client.post(
        "/integration/",
        headers=headers(kind="admin"),
        json={
            "subtype": subtype,
            "instance_name": uniq(subtype),
            "base_url": "https://vendor.example",
            "credentials": creds,
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def company(client, headers, **extra) -> dict:
    r = await client.post(
        "/admin/companies/", headers=headers(kind="admin"), json={"name": uniq("Co"), **extra}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def discovered(
    app,
    *,
    qradar: tuple[str, int, str] | None = None,
    soar: tuple[str, str] | None = None,
    itsm: tuple[str, str, str] | None = None,
) -> None:
    """Vendor tenants as the read model's consumers would have stored them."""
    async with app.state.db.session() as s:
        if qradar:
            await s.execute(
                sa.insert(qradar_domain).values(integration_id=qradar[0], domain_id=qradar[1], name=qradar[2])
            )
        if soar:
            await s.execute(
                sa.text(
                    "INSERT INTO soar_account (integration_id, account_id, name, version) "
                    "VALUES (:i, :a, :a, 1)"
                ),
                {"i": soar[0], "a": soar[1]},
            )
        if itsm:
            await s.execute(
                sa.text(
                    "INSERT INTO itsm_account (integration_id, account_id, name, version) "
                    "VALUES (:i, :a, :n, 1)"
                ),
                {"i": itsm[0], "a": itsm[1], "n": itsm[2]},
            )


async def test_qradar_mapping_with_contracted_volume(app, client, headers):
    admin = headers(kind="admin")
    c = await company(client, headers)
    qr = await integration(client, headers, "IBM_QRADAR")
    xs = await integration(client, headers, "CORTEX_XSOAR")
    await discovered(app, qradar=(qr["id"], 101, "Acme domain"))
    body = {
        "company_id": c["id"],
        "integration_id": qr["id"],
        "domain_id": 101,
        "contracted_volume_type": "GB_PER_DAY",
        "contracted_volume": "125.50",
        "event_collector_ids": [1, 2],
    }
    r = await client.post("/admin/mappings/qradar/", headers=admin, json=body)
    assert r.status_code == 201, r.text
    mapping = r.json()
    assert mapping["domain_name"] == "Acme domain" and mapping["company_name"] == c["name"]
    assert mapping["integration_name"] == qr["instance_name"] and float(mapping["contracted_volume"]) == 125.5
    assert mapping["active"] is True and mapping["created_by"]

    dup = await client.post("/admin/mappings/qradar/", headers=admin, json=body)
    assert dup.status_code == 409 and dup.json()["error"]["details"]["mapping_id"] == mapping["id"]
    for change, loc in (
        ({"domain_id": 999}, "domain_id"),
        ({"integration_id": xs["id"]}, "integration_id"),
        ({"integration_id": str(uuid.uuid4())}, "integration_id"),
        ({"company_id": str(uuid.uuid4())}, "company_id"),
        ({"contracted_volume_type": "TB"}, "contracted_volume_type"),
        ({"contracted_volume": -1}, "contracted_volume"),
        ({"contracted_volume": "1e20"}, "contracted_volume"),
        ({"event_collector_ids": ["a"]}, "event_collector_ids"),
        ({"domain_id": -1}, "domain_id"),
    ):
        r = await client.post("/admin/mappings/qradar/", headers=admin, json={**body, **change})
        assert r.status_code == 422, (change, r.text)
        assert loc in r.json()["error"]["details"]["errors"][0]["loc"], (change, r.text)

    url = f"/admin/mappings/qradar/{mapping['id']}/"
    r = await client.put(
        url, headers=admin, json={"contracted_volume": 2000, "contracted_volume_type": "EPS"}
    )
    assert (
        r.status_code == 200
        and float(r.json()["contracted_volume"]) == 2000
        and r.json()["contracted_volume_type"] == "EPS"
    )
    r = await client.put(url, headers=admin, json={"active": False})
    assert r.json()["active"] is False and r.json()["inactive_reason"] == "deactivated"
    assert (await client.put(url, headers=admin, json={"company_id": str(uuid.uuid4())})).status_code == 422
    assert (await client.put(url, headers=admin, json={"contracted_volume": None})).status_code == 422
    listed = (
        await client.get("/admin/mappings/qradar/", headers=admin, params={"company_id": c["id"]})
    ).json()
    assert [m["id"] for m in listed["items"]] == [mapping["id"]]
    assert (await client.delete(url, headers=admin)).status_code == 204
    assert (await client.get(url, headers=admin)).status_code == 404
    assert (await client.get("/admin/mappings/qradar/not-a-uuid/", headers=admin)).status_code == 422


async def test_soar_and_itsm_mappings_many_to_many(app, client, headers):
    admin = headers(kind="admin")
    a, b = await company(client, headers), await company(client, headers)
    xs = await integration(client, headers, "CORTEX_XSOAR")
    sdp = await integration(client, headers, "MANAGEENGINE_SDP")
    await discovered(app, soar=(xs["id"], "acme"), itsm=(sdp["id"], "301", "Acme Ltd"))
    for cid in (a["id"], b["id"]):  # one vendor tenant serving two companies
        r = await client.post(
            "/admin/mappings/soar/",
            headers=admin,
            json={"company_id": cid, "integration_id": xs["id"], "account": "acme"},
        )
        assert r.status_code == 201, r.text
    r = await client.post(
        "/admin/mappings/soar/",
        headers=admin,
        json={"company_id": a["id"], "integration_id": xs["id"], "account": "nope"},
    )
    assert (
        r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["type"] == "unknown_vendor_tenant"
    )
    r = await client.post(
        "/admin/mappings/itsm/",
        headers=admin,
        json={"company_id": a["id"], "integration_id": sdp["id"], "account_id": "301"},
    )
    assert r.status_code == 201 and r.json()["account_name"] == "Acme Ltd"
    r = await client.post(
        "/admin/mappings/itsm/",
        headers=admin,
        json={"company_id": a["id"], "integration_id": xs["id"], "account_id": "301"},
    )
    assert r.status_code == 422
    assert (
        await client.get("/admin/mappings/soar/", headers=admin, params={"integration_id": xs["id"]})
    ).json()["total"] == 2
    tools = (await client.get("/admin/summary/tools/", headers=admin, params={"company_id": a["id"]})).json()
    assert {t["subtype"] for t in tools["items"][0]["tools"]} == {"CORTEX_XSOAR", "MANAGEENGINE_SDP"}
    assert tools["items"][0]["types"] == ["ITSM", "SOAR"]

    # itsm-ingest asks where an incident's ticket goes: the company of the SOAR account that has an
    # ITSM mapping (b serves the same account but has none), never for users.
    service = headers(kind="service", sub="itsm-ingest")
    r = await client.get(
        "/internal/ticket-routing",
        headers=service,
        params={"soar_integration_id": xs["id"], "account": "acme"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["company_id"] == a["id"] and r.json()["account_id"] == "301"
    assert r.json()["itsm_integration_id"] == sdp["id"] and r.json()["policy"]["priorities"] == ["P1", "P2"]
    r = await client.get(
        "/internal/ticket-routing",
        headers=service,
        params={"soar_integration_id": xs["id"], "account": "unknown"},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_mapped"
    r = await client.get(
        "/internal/ticket-routing", headers=admin, params={"soar_integration_id": xs["id"], "account": "acme"}
    )
    assert r.status_code == 403


def test_effective_sla_picks_the_most_specific_target():
    defaults = {
        "P1": {"tta_minutes": 15, "ttn_minutes": 30, "ttdn_minutes": 240},
        "P2": {"tta_minutes": 30, "ttn_minutes": 60, "ttdn_minutes": 480},
    }
    overrides = [
        {
            "level": "P1",
            "integration_id": None,
            "account": None,
            "tta_minutes": 10,
            "ttn_minutes": 20,
            "ttdn_minutes": 100,
        },
        {
            "level": "P1",
            "integration_id": "xs",
            "account": None,
            "tta_minutes": 9,
            "ttn_minutes": 19,
            "ttdn_minutes": 99,
        },
        {
            "level": "P1",
            "integration_id": "xs",
            "account": "acme",
            "tta_minutes": 5,
            "ttn_minutes": 6,
            "ttdn_minutes": 7,
        },
        {
            "level": "P2",
            "integration_id": "xs",
            "account": "other",
            "tta_minutes": 1,
            "ttn_minutes": 1,
            "ttdn_minutes": 1,
        },
    ]
    assert effective_sla({"is_default_sla": True}, overrides, defaults) == {
        "P1": SlaTargets(15, 30, 240, "default"),
        "P2": SlaTargets(30, 60, 480, "default"),
    }
    own = effective_sla({"is_default_sla": False}, overrides, defaults)
    assert own == {"P1": SlaTargets(10, 20, 100, "company"), "P2": SlaTargets(30, 60, 480, "default")}
    assert (
        effective_sla({"is_default_sla": False}, overrides, defaults, integration_id="xs")["P1"].source
        == "integration"
    )
    acme = effective_sla(
        {"is_default_sla": False},
        reversed(overrides),
        list({"level": k, **v} for k, v in defaults.items()),
        integration_id="xs",
        account="acme",
    )
    assert acme["P1"] == SlaTargets(5, 6, 7, "account") and acme["P2"].source == "default"


async def test_sla_defaults_and_company_overrides(client, headers):
    admin = headers(kind="admin")
    defaults = (await client.get("/admin/sla/defaults/", headers=admin)).json()["items"]
    seeded = {d["level"]: (d["tta_minutes"], d["ttn_minutes"], d["ttdn_minutes"]) for d in defaults}
    assert seeded == {"P1": (15, 30, 240), "P2": (30, 60, 480), "P3": (60, 120, 1440), "P4": (240, 480, 2880)}
    try:
        r = await client.put(
            "/admin/sla/defaults/",
            headers=admin,
            json={"items": [{"level": "P4", "tta_minutes": 300, "ttn_minutes": 600, "ttdn_minutes": 3000}]},
        )
        assert (
            r.status_code == 200
            and [d for d in r.json()["items"] if d["level"] == "P4"][0]["tta_minutes"] == 300
        )
        for bad in (
            {"items": []},
            {"items": [{"level": "P5", "tta_minutes": 1, "ttn_minutes": 1, "ttdn_minutes": 1}]},
            {"items": [{"level": "P1", "tta_minutes": 0, "ttn_minutes": 1, "ttdn_minutes": 1}]},
            {"items": [{"level": "P1", "tta_minutes": 1, "ttn_minutes": 1}]},
            {"items": [{"level": "P1", "tta_minutes": 1, "ttn_minutes": 1, "ttdn_minutes": 1}] * 2},
        ):
            assert (await client.put("/admin/sla/defaults/", headers=admin, json=bad)).status_code == 422, bad
    finally:
        await client.put(
            "/admin/sla/defaults/",
            headers=admin,
            json={"items": [{"level": "P4", "tta_minutes": 240, "ttn_minutes": 480, "ttdn_minutes": 2880}]},
        )

    c = await company(client, headers)
    xs = await integration(client, headers, "CORTEX_XSOAR")
    qr = await integration(client, headers, "IBM_QRADAR")
    url = f"/admin/companies/{c['id']}/sla/"
    assert (await client.get(url, headers=admin)).json()["effective"]["P1"]["source"] == "default"
    # The SLA clock start: the original's `occurred` by default, `created` on request.
    assert (await client.get(url, headers=admin)).json()["sla_clock_start"] == "occurred"
    clock = await client.put(url, headers=admin, json={"sla_clock_start": "created"})
    assert clock.status_code == 200 and clock.json()["sla_clock_start"] == "created"
    refused = await client.put(url, headers=admin, json={"sla_clock_start": "modified"})
    assert refused.status_code == 422 and refused.json()["error"]["code"]
    assert (await client.get(url, headers=admin)).json()["sla_clock_start"] == "created"
    r = await client.put(
        url,
        headers=admin,
        json={
            "is_default_sla": False,
            "overrides": [
                {"level": "P1", "tta_minutes": 5, "ttn_minutes": 10, "ttdn_minutes": 60},
                {
                    "level": "P1",
                    "integration_id": xs["id"],
                    "account": "acme",
                    "tta_minutes": 3,
                    "ttn_minutes": 6,
                    "ttdn_minutes": 30,
                },
            ],
        },
    )
    assert r.status_code == 200, r.text
    sla = r.json()
    assert sla["is_default_sla"] is False and sla["effective"]["P1"] == {
        "tta_minutes": 5,
        "ttn_minutes": 10,
        "ttdn_minutes": 60,
        "source": "company",
    }
    assert sla["effective"]["P2"]["source"] == "default" and len(sla["overrides"]) == 2
    for bad in (
        {
            "overrides": [
                {"level": "P1", "account": "acme", "tta_minutes": 1, "ttn_minutes": 1, "ttdn_minutes": 1}
            ]
        },
        {
            "overrides": [
                {
                    "level": "P1",
                    "integration_id": qr["id"],
                    "tta_minutes": 1,
                    "ttn_minutes": 1,
                    "ttdn_minutes": 1,
                }
            ]
        },
        {"overrides": [{"level": "P1", "tta_minutes": 1, "ttn_minutes": 1, "ttdn_minutes": 1}] * 2},
        {"is_default_sla": "sometimes"},
    ):
        assert (await client.put(url, headers=admin, json=bad)).status_code == 422, bad
    levels = (await client.get("/admin/choices/sla-levels/", headers=admin)).json()["items"]
    assert [lv["value"] for lv in levels] == ["P1", "P2", "P3", "P4"] and levels[0]["default"][
        "tta_minutes"
    ] == 15
    volume = (await client.get("/admin/choices/volume-types/", headers=admin)).json()["items"]
    assert [v["value"] for v in volume] == ["EPS", "GB_PER_DAY"]
    assert (await client.get("/admin/version/", headers=admin)).json()["api_version"]


async def test_create_a_tenant_in_one_step(app, client, headers, fake_auth):
    admin = headers(kind="admin")
    qr = await integration(client, headers, "IBM_QRADAR")
    xs = await integration(client, headers, "CORTEX_XSOAR")
    await discovered(app, qradar=(qr["id"], 7, "Globex domain"), soar=(xs["id"], "globex"))
    name = uniq("Globex")
    body = {
        "company": {
            "name": name,
            "country": "DE",
            "directory_groups": [
                {"ldap_group": f"{name}-soc-admins", "tenant_role": "TENANT_ADMIN"},
                {"ldap_group": f"{name}-soc-users"},
            ],
        },
        "users": [
            {
                "username": uniq("gadmin"),
                "email": "admin@globex.local",
                "password": "Globex-Admin-2024!",
                "tenant_role": "TENANT_ADMIN",
            },
            {
                "username": uniq("guser"),
                "password": "Globex-User-2024!",
                "permissions": ["DASHBOARD", "REPORTS"],
            },
        ],
        "qradar_mappings": [{"integration_id": qr["id"], "domain_id": 7, "contracted_volume": 500}],
        "soar_mappings": [{"integration_id": xs["id"], "account": "globex"}],
        "sla": {
            "is_default_sla": False,
            "overrides": [{"level": "P1", "tta_minutes": 10, "ttn_minutes": 20, "ttdn_minutes": 90}],
        },
        "threat_intelligence": {
            "instance_name": f"{name} Cyware",
            "base_url": "http://127.0.0.1:9104",
            "credentials": {"access_key": "globex-access", "secret_key": "globex-secret"},
        },
    }
    r = await client.post("/admin/tenants/", headers=admin, json=body)
    assert r.status_code == 201, r.text
    tenant = r.json()
    cid = tenant["company"]["id"]
    assert len(tenant["users"]) == 2 and {u["tenant_role"] for u in tenant["users"]} == {
        "TENANT_ADMIN",
        "TENANT_USER",
    }
    assert tenant["mappings"]["qradar"][0]["domain_name"] == "Globex domain"
    assert tenant["mappings"]["soar"][0]["account"] == "globex"
    assert tenant["sla"]["effective"]["P1"]["source"] == "company"
    assert {i["subtype"] for i in tenant["integrations"]} == {"IBM_QRADAR", "CORTEX_XSOAR", "CYWARE"}
    assert "globex-secret" not in r.text
    listed = (await client.get("/admin/tenants/", headers=admin, params={"q": name})).json()
    assert listed["items"][0]["user_count"] == 2 and listed["items"][0]["mapping_count"] == 2
    r = await client.put(
        f"/admin/tenants/{cid}/",
        headers=admin,
        json={"company": {"industry": "Retail"}, "sla": {"is_default_sla": True}},
    )
    assert r.status_code == 200 and r.json()["company"]["industry"] == "Retail"
    assert r.json()["sla"]["effective"]["P1"]["source"] == "default"

    # our side is one transaction: a bad mapping creates nothing and asks auth for nobody
    calls = len(fake_auth.calls)
    bad = {
        **body,
        "company": {"name": uniq("Initech")},
        "qradar_mappings": [{"integration_id": qr["id"], "domain_id": 404}],
        "threat_intelligence": None,
    }
    r = await client.post("/admin/tenants/", headers=admin, json=bad)
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["loc"][:3] == [
        "body",
        "qradar_mappings",
        "0",
    ]
    assert len(fake_auth.calls) == calls
    # auth refusing the second user: the first one is removed again, no company remains
    second = uniq("refused")
    fake_auth.reject[second] = (409, {"code": "username_taken", "message": "this user name is already used"})
    name2 = uniq("Umbrella")
    r = await client.post(
        "/admin/tenants/",
        headers=admin,
        json={
            "company": {"name": name2},
            "users": [{"username": uniq("first"), "password": "Umbrella-2024-Pass!"}, {"username": second}],
        },
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "username_taken"
    first_id = next(u["id"] for u in fake_auth.users.values() if u.get("username", "").startswith("first-"))
    assert fake_auth.users[first_id]["is_deleted"] is True
    async with app.state.db.session() as s:
        assert (
            await s.execute(sa.select(company_table.c.id).where(company_table.c.name == name2))
        ).first() is None


@pytest.mark.parametrize(
    "path", ["/admin/choices/volume-types/", "/admin/choices/sla-levels/", "/admin/version/"]
)
async def test_choices_need_a_token(client, path):
    assert (await client.get(path)).status_code == 401
