"""Ticket qualification rules per company and per XSOAR account: set through the admin API (the
original's priority labels understood), audited, served to itsm-ingest with each route."""

from __future__ import annotations

import uuid

import sqlalchemy as sa


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def company(client, headers) -> dict:
    r = await client.post("/admin/companies/", headers=headers(kind="admin"), json={"name": uniq("Co")})
    assert r.status_code == 201, r.text
    return r.json()


async def integration(client, headers, subtype: str) -> dict:
    creds = {"CORTEX_XSOAR": {"api_key": "xsoar-demo-key"}, "MANAGEENGINE_SDP": {"api_key": "sdp-demo-key"}}
    r = await client.post(
        "/integration/",
        headers=headers(kind="admin"),
        json={
            "subtype": subtype,
            "instance_name": uniq(subtype),
            "base_url": "https://vendor.example",
            "credentials": creds[subtype],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def discovered(app, *, soar=None, itsm=None) -> None:
    """Vendor tenants as the read model's consumers would have stored them."""
    async with app.state.db.session() as s:
        if soar:
            await s.execute(
                sa.text(
                    "INSERT INTO soar_account (integration_id, account_id, name, version) VALUES (:i, :a, :a, 1)"
                ),
                {"i": soar[0], "a": soar[1]},
            )
        if itsm:
            await s.execute(
                sa.text(
                    "INSERT INTO itsm_account (integration_id, account_id, name, version) VALUES (:i, :a, :n, 1)"
                ),
                {"i": itsm[0], "a": itsm[1], "n": itsm[2]},
            )


async def route(client, headers, soar_id: str, account: str) -> dict:
    r = await client.get(
        "/internal/ticket-routing",
        headers=headers(kind="service", sub="itsm-ingest"),
        params={"soar_integration_id": soar_id, "account": account},
    )
    assert r.status_code == 200, r.text
    return r.json()["policy"]


async def test_rules_per_company_and_account_are_served_with_the_route_and_audited(app, client, headers):
    admin = headers(kind="admin")
    c = await company(client, headers)
    xs = await integration(client, headers, "CORTEX_XSOAR")
    sdp = await integration(client, headers, "MANAGEENGINE_SDP")
    east, west = uniq("east"), uniq("west")
    await discovered(app, soar=(xs["id"], east), itsm=(sdp["id"], "401", "Co Ltd"))
    await discovered(app, soar=(xs["id"], west))
    for account in (east, west):
        r = await client.post(
            "/admin/mappings/soar/",
            headers=admin,
            json={"company_id": c["id"], "integration_id": xs["id"], "account": account},
        )
        assert r.status_code == 201, r.text
    r = await client.post(
        "/admin/mappings/itsm/",
        headers=admin,
        json={"company_id": c["id"], "integration_id": sdp["id"], "account_id": "401"},
    )
    assert r.status_code == 201, r.text
    url = f"/admin/companies/{c['id']}/ticket-policies/"

    # No rule: today's rule applies.
    listed = (await client.get(url, headers=admin)).json()
    assert listed["items"] == [] and listed["default"] == {
        "priorities": ["P1", "P2"],
        "statuses": ["pending", "active"],
        "types": None,
    }
    assert await route(client, headers, xs["id"], east) == listed["default"]

    # The company's rule, in the original's words: P1 Critical, P2 High and level 2 (= P3).
    r = await client.put(
        url,
        headers=admin,
        json={"priorities": ["P1 Critical", "P2 High", 2], "statuses": ["active", "pending"]},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["priorities"], r.json()["statuses"], r.json()["types"]) == (
        ["P1", "P2", "P3"],
        ["active", "pending"],
        None,
    )
    # One account narrower: P1 phishing only.
    r = await client.put(
        url,
        headers=admin,
        json={
            "soar_integration_id": xs["id"],
            "soar_account": west,
            "priorities": ["Critical"],
            "statuses": ["active"],
            "types": ["Phishing"],
        },
    )
    assert r.status_code == 200, r.text
    assert await route(client, headers, xs["id"], east) == {
        "priorities": ["P1", "P2", "P3"],
        "statuses": ["active", "pending"],
        "types": None,
    }
    assert await route(client, headers, xs["id"], west) == {
        "priorities": ["P1"],
        "statuses": ["active"],
        "types": ["Phishing"],
    }
    # Changing a rule replaces it (one rule per scope).
    r = await client.put(url, headers=admin, json={"priorities": ["P1"], "statuses": ["active"]})
    assert r.status_code == 200
    assert len((await client.get(url, headers=admin)).json()["items"]) == 2

    # Bad input: clear 422s naming the field, nothing written.
    for body, loc in (
        ({"priorities": ["P7"], "statuses": ["active"]}, "priorities"),
        ({"priorities": [], "statuses": ["active"]}, "priorities"),
        ({"priorities": ["P1"], "statuses": ["resolved"]}, "statuses"),
        ({"priorities": ["P1"], "statuses": ["active"], "soar_account": west}, "soar_integration_id"),
        ({"priorities": ["P1"], "statuses": ["active"], "colour": "red"}, "colour"),
    ):
        r = await client.put(url, headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
        assert loc in str(r.json()["error"]["details"]["errors"][0]["loc"]), (body, r.text)
    # Tenants may read their rules but not change them.
    tenant = headers(kind="tenant", company_id=c["id"], tenant_role="TENANT_ADMIN")
    assert (await client.get(url, headers=tenant)).status_code == 200
    assert (
        await client.put(url, headers=tenant, json={"priorities": ["P4"], "statuses": ["active"]})
    ).status_code == 403

    # Removing the account's rule: the company's applies again.
    r = await client.delete(
        url, headers=admin, params={"soar_integration_id": xs["id"], "soar_account": west}
    )
    assert r.status_code == 204
    assert (await route(client, headers, xs["id"], west))["priorities"] == ["P1"]
    assert (await client.delete(url, headers=admin, params={"soar_account": "nobody"})).status_code == 404

    audit = (await client.get(f"{url}audit/", headers=admin)).json()["items"]
    assert [(a["action"], a["soar_account"]) for a in audit] == [
        ("deleted", west),
        ("set", None),
        ("set", west),
        ("set", None),
    ]
    assert audit[1]["before"]["priorities"] == ["P1", "P2", "P3"] and audit[1]["after"]["priorities"] == [
        "P1"
    ]
    assert audit[3]["before"] is None and all(a["actor"] for a in audit)
