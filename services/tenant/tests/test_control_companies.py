"""Companies, their directory groups and users, picture, soft delete / inactivate / reactivate."""

from __future__ import annotations

import asyncio
import struct
import uuid
import zlib
from datetime import UTC, datetime

import sqlalchemy as sa
from soc_shared.events import UserChanged, make_event
from soc_tenant.control.tables import pending_action, qradar_mapping, tenant_member
from soc_tenant.pending import service as pending


def uniq(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def png(size: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))
        + chunk(b"IEND", b"")
    )
    return raw + b"\x00" * size


async def create_company(client, headers, **fields) -> dict:
    body = {"name": uniq("Co"), **fields}
    r = await client.post("/admin/companies/", json=body, headers=headers(kind="admin"))
    assert r.status_code == 201, r.text
    return r.json()


async def test_company_crud_and_case_insensitive_unique_name(client, headers, event_tap):
    admin = headers(kind="admin")
    name = uniq("Acme Corp")
    async with event_tap("tenant.company.changed") as tap:
        r = await client.post(
            "/admin/companies/",
            headers=admin,
            json={
                "name": name,
                "phone_number": "+1 555 0100",
                "industry": "Finance",
                "country": "US",
                "is_default_sla": False,
                "is_default_threat_intel": True,
                "directory_groups": [
                    {"ldap_group": f"{name}-admins", "tenant_role": "TENANT_ADMIN"},
                    {"ldap_group": f"{name}-users", "permissions": ["DASHBOARD", "REPORTS"]},
                ],
            },
        )
        assert r.status_code == 201, r.text
        company = r.json()
        assert company["created_by"] == company["modified_by"]
        assert company["status"] == "active" and company["is_default_sla"] is False
        changed = await tap.wait_for(lambda evs: [e.payload() for e in evs if e.subject == company["id"]])
    groups = {g.ldap_group: g for g in changed[-1].directory_groups}
    assert groups[f"{name}-admins"].tenant_role == "TENANT_ADMIN"
    assert groups[f"{name}-admins"].permissions == ["ASSETS", "DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE"]
    assert groups[f"{name}-users"].permissions == ["DASHBOARD", "REPORTS"]

    dup = await client.post("/admin/companies/", headers=admin, json={"name": name.upper()})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "company_name_taken"
    avail = await client.get(
        "/admin/companies/name-available/", params={"name": f"  {name.lower()} "}, headers=admin
    )
    assert avail.json() == {"name": name.lower(), "available": False}
    assert (
        await client.get("/admin/companies/name-available/", params={"name": uniq("free")}, headers=admin)
    ).json()["available"] is True

    r = await client.put(f"/admin/companies/{company['id']}/", headers=admin, json={"industry": "Energy"})
    assert r.status_code == 200 and r.json()["industry"] == "Energy" and r.json()["name"] == name
    listed = await client.get("/admin/companies/", params={"q": name}, headers=admin)
    assert [c["id"] for c in listed.json()["items"]] == [company["id"]]
    assert set(listed.json()) == {"items", "total", "limit", "offset"}


async def test_company_validation_answers_422_in_one_shape(client, headers):
    admin = headers(kind="admin")
    for body in (
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 201},
        {"name": "ok", "phone_number": "call me"},
        {"name": "ok", "unknown": 1},
        {"name": "bad\x00name"},
        {"name": "ok", "directory_groups": [{"ldap_group": "g", "tenant_role": "KING"}]},
        {"name": "ok", "directory_groups": [{"ldap_group": "g", "permissions": ["EVERYTHING"]}]},
    ):
        r = await client.post("/admin/companies/", headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_error" and error["details"]["errors"][0]["loc"]
    r = await client.post(
        "/admin/companies/",
        headers=admin,
        content=b"{not json",
    )
    assert r.status_code == 422
    assert (await client.get("/admin/companies/not-a-uuid/", headers=admin)).status_code == 422
    assert (await client.get(f"/admin/companies/{uuid.uuid4()}/", headers=admin)).status_code == 404
    name = uniq("dup-groups")
    r = await client.post(
        "/admin/companies/",
        headers=admin,
        json={"name": name, "directory_groups": [{"ldap_group": "same"}, {"ldap_group": "SAME"}]},
    )
    assert r.status_code == 422


async def test_directory_group_belongs_to_one_company(client, headers):
    admin = headers(kind="admin")
    group = uniq("soc-users").replace(" ", "-")
    await create_company(client, headers, directory_groups=[{"ldap_group": group}])
    other = await create_company(client, headers)
    r = await client.put(
        f"/admin/companies/{other['id']}/directory-groups/",
        headers=admin,
        json={"items": [{"ldap_group": group.upper()}]},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "directory_group_taken"


async def test_profile_picture_is_sniffed_limited_stored_and_served(client, headers, app):
    admin = headers(kind="admin")
    company = await create_company(client, headers)
    url = f"/admin/companies/{company['id']}/picture/"
    assert (await client.get(url, headers=admin)).json()["error"]["code"] == "no_picture"
    image = png()
    # The name and the declared type lie; the bytes decide.
    r = await client.post(url, headers=admin, files={"file": ("photo.jpg", image, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["content_type"] == "image/png"
    got = await client.get(url, headers=admin)
    assert got.status_code == 200 and got.content == image and got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(f"/admin/companies/{company['id']}/", headers=admin)).json()[
        "has_profile_picture"
    ] is True

    r = await client.post(
        url, headers=admin, files={"file": ("logo.png", b"<svg onload=alert(1)>", "image/png")}
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8
    assert (
        await client.post(url, headers=admin, files={"file": ("x.bin", webp, "application/octet-stream")})
    ).json()["content_type"] == "image/webp"
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 32
    assert (await client.post(url, headers=admin, files={"file": ("x", jpeg)})).json()[
        "content_type"
    ] == "image/jpeg"

    limit = app.state.settings.upload_max_bytes
    r = await client.post(url, headers=admin, files={"file": ("big.png", png(limit), "image/png")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = await client.post(url, headers=admin, files={"other": ("x.png", b"", "image/png")})
    assert r.status_code == 422
    r = await client.post(url, headers=admin, json={"file": "x"})
    assert r.status_code == 415
    r = await client.post(
        url, headers={**admin, "content-type": "multipart/form-data; boundary=zzz"}, content=b"garbage"
    )
    assert r.status_code in (400, 422)
    assert (await client.delete(url, headers=admin)).status_code == 204
    assert (await client.get(url, headers=admin)).status_code == 404


async def test_tenant_users_are_created_through_auth_and_published(client, headers, fake_auth, event_tap):
    admin = headers(kind="admin")
    company = await create_company(client, headers)
    cid = company["id"]
    async with event_tap("tenant.membership.changed") as tap:
        r = await client.post(
            f"/admin/companies/{cid}/users/",
            headers=admin,
            json={
                "username": f"alice{uuid.uuid4().hex[:6]}",
                "email": "alice@acme.local",
                "password": "S3cure-Passw0rd!",
                "tenant_role": "TENANT_ADMIN",
                "country": "US",
            },
        )
        assert r.status_code == 201, r.text
        member = r.json()
        await tap.wait_for(lambda evs: [e for e in evs if e.subject == member["user_id"]])
    sent = [body for method, path, body in fake_auth.calls if path == "/auth/internal/users"][-1]
    assert (
        sent["company_id"] == cid and sent["tenant_role"] == "TENANT_ADMIN" and sent["auth_source"] == "local"
    )
    assert sent["permissions"] == ["ASSETS", "DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE"]
    assert "password" in sent and "password" not in r.text
    # a directory user: no password, signs in against the directory
    r = await client.post(
        f"/admin/companies/{cid}/users/",
        headers=admin,
        json={
            "username": f"bob{uuid.uuid4().hex[:6]}",
            "ldap_group": "acme-soc-users",
            "permissions": ["DASHBOARD"],
        },
    )
    assert r.status_code == 201 and fake_auth.calls[-1][2]["auth_source"] == "ldap"

    listed = (await client.get(f"/admin/companies/{cid}/users/", headers=admin)).json()
    assert listed["total"] == 2
    r = await client.put(
        f"/admin/companies/{cid}/users/{member['user_id']}/",
        headers=admin,
        json={"permissions": ["REPORTS"], "tenant_role": "TENANT_USER"},
    )
    assert r.status_code == 200 and r.json()["permissions"] == ["REPORTS"]
    assert fake_auth.calls[-1][0] == "PATCH" and fake_auth.calls[-1][2] == {
        "permissions": ["REPORTS"],
        "tenant_role": "TENANT_USER",
    }
    assert (
        await client.delete(f"/admin/companies/{cid}/users/{member['user_id']}/", headers=admin)
    ).status_code == 204
    assert fake_auth.users[member["user_id"]]["is_deleted"] is True
    gone = (await client.get(f"/admin/companies/{cid}/users/{member['user_id']}/", headers=admin)).json()
    assert gone["active"] is False

    # auth's own verdicts reach the caller; auth down is a clear 502, nothing recorded
    fake_auth.reject["weakling"] = (
        422,
        {"code": "weak_password", "message": "the password does not meet the policy"},
    )
    r = await client.post(
        f"/admin/companies/{cid}/users/", headers=admin, json={"username": "weakling", "password": "x"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "weak_password"
    fake_auth.down = True
    try:
        r = await client.post(f"/admin/companies/{cid}/users/", headers=admin, json={"username": "nobody1"})
    finally:
        fake_auth.down = False
    assert r.status_code == 502 and r.json()["error"]["code"] == "auth_unavailable"
    assert (await client.get(f"/admin/companies/{cid}/users/", headers=admin)).json()["total"] == 2


async def test_user_changed_events_keep_memberships_current(app, client, headers):
    company = await create_company(
        client,
        headers,
        directory_groups=[
            {
                "ldap_group": uniq("grp").replace(" ", "-"),
                "tenant_role": "TENANT_USER",
                "permissions": ["DASHBOARD", "ASSETS"],
            }
        ],
    )
    user_id = str(uuid.uuid4())
    t0 = datetime.now(UTC)
    first = UserChanged(
        user_id=user_id,
        username="dir.user",
        email="d@acme.local",
        kind="tenant",
        company_id=company["id"],
        roles=["TENANT_USER"],
        changed_at=t0,
    )
    await app.state.bus.publish([make_event("auth.user.changed", first, source="/auth", subject=user_id)])
    members_url = f"/admin/companies/{company['id']}/users/"
    for _ in range(100):
        items = (await client.get(members_url, headers=headers(kind="admin"))).json()["items"]
        if items:
            break
        await asyncio.sleep(0.05)
    assert items and items[0]["user_id"] == user_id and items[0]["permissions"] == ["ASSETS", "DASHBOARD"]

    from soc_tenant.members.views import apply_user_changes

    disabled = first.model_copy(update={"active": False, "changed_at": datetime.now(UTC)})
    await apply_user_changes(app.state.db, [disabled, first])  # the older one, delivered late, loses
    async with app.state.db.session() as s:
        row = (
            (await s.execute(sa.select(tenant_member).where(tenant_member.c.user_id == user_id)))
            .mappings()
            .one()
        )
    assert row["active"] is False


async def test_soft_delete_disables_users_even_while_auth_is_down(app, client, headers, fake_auth, event_tap):
    admin = headers(kind="admin")
    company = await create_company(client, headers)
    cid = company["id"]
    async with app.state.db.session() as s:
        await s.execute(
            sa.insert(qradar_mapping).values(
                id=uuid.uuid4(),
                company_id=uuid.UUID(cid),
                integration_id="qr-x",
                domain_id=7,
                contracted_volume_type="EPS",
                contracted_volume=100,
                event_collector_ids=[],
                active=True,
            )
        )
    fake_auth.down = True
    try:
        async with event_tap("tenant.company.changed") as tap:
            assert (await client.delete(f"/admin/companies/{cid}/", headers=admin)).status_code == 204
            changed = await tap.wait_for(lambda evs: [e.payload() for e in evs if e.subject == cid])
        assert changed[-1].deleted is True and changed[-1].active is False
    finally:
        fake_auth.down = False
    async with app.state.db.session() as s:
        actions = (
            (await s.execute(sa.select(pending_action).where(pending_action.c.company_id == uuid.UUID(cid))))
            .mappings()
            .all()
        )
        mapping = (
            (await s.execute(sa.select(qradar_mapping).where(qradar_mapping.c.company_id == uuid.UUID(cid))))
            .mappings()
            .one()
        )
    assert [(a["kind"], a["done_at"] is None, a["attempts"]) for a in actions] == [
        ("disable_company_users", True, 1)
    ]
    assert mapping["active"] is False and mapping["inactive_reason"] == "company_deleted"  # kept, not deleted
    detail = (await client.get(f"/admin/tenants/{cid}/", headers=admin)).json()
    assert (
        detail["company"]["status"] == "deleted"
        and detail["pending_actions"][0]["kind"] == "disable_company_users"
    )

    # auth is back: the retry goes through
    async with app.state.db.session() as s:
        await s.execute(
            sa.update(pending_action)
            .where(pending_action.c.company_id == uuid.UUID(cid))
            .values(next_attempt_at=sa.func.now())
        )
    assert (await pending.run(app))["done"] >= 1
    assert ("POST", f"/auth/internal/companies/{cid}/disable-users", {"disabled": True}) in fake_auth.calls
    # the name is free again; the deleted company is still there for admins, and can be restored
    assert (
        await client.get("/admin/companies/name-available/", params={"name": company["name"]}, headers=admin)
    ).json()["available"] is True
    inactive = (
        await client.get("/admin/tenants/inactive/", headers=admin, params={"q": company["name"]})
    ).json()
    assert [c["id"] for c in inactive["items"]] == [cid]
    r = await client.post(f"/admin/tenants/{cid}/reactivate/", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert ("POST", f"/auth/internal/companies/{cid}/disable-users", {"disabled": False}) in fake_auth.calls
    async with app.state.db.session() as s:
        assert (
            await s.execute(
                sa.select(qradar_mapping.c.active).where(qradar_mapping.c.company_id == uuid.UUID(cid))
            )
        ).scalar_one() is True


async def test_inactivate_keeps_mappings_and_blocks_new_users(client, headers, fake_auth):
    admin = headers(kind="admin")
    company = await create_company(client, headers)
    cid = company["id"]
    r = await client.post(f"/admin/tenants/{cid}/inactivate/", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "inactive"
    assert fake_auth.calls[-1] == (
        "POST",
        f"/auth/internal/companies/{cid}/disable-users",
        {"disabled": True},
    )
    r = await client.post(f"/admin/companies/{cid}/users/", headers=admin, json={"username": "late"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "company_inactive"
    assert cid not in [c["id"] for c in (await client.get("/admin/tenants/", headers=admin)).json()["items"]]
    assert (await client.post(f"/admin/tenants/{cid}/reactivate/", headers=admin)).json()[
        "status"
    ] == "active"


async def test_tenant_admin_manages_its_own_company_only(client, headers):
    a = await create_company(client, headers)
    b = await create_company(client, headers)
    ta = headers(kind="tenant", company_id=a["id"], roles=["TENANT_ADMIN"])
    r = await client.put(
        f"/admin/companies/{a['id']}/", headers=ta, json={"phone_number": "+44 20 7946 0000"}
    )
    assert r.status_code == 200 and r.json()["phone_number"] == "+44 20 7946 0000"
    r = await client.put(f"/admin/companies/{a['id']}/", headers=ta, json={"name": "Renamed"})
    assert r.status_code == 403 and r.json()["error"]["details"]["fields"] == ["name"]
    assert (
        await client.put(f"/admin/companies/{b['id']}/", headers=ta, json={"industry": "x"})
    ).status_code == 404
    listed = (await client.get("/admin/companies/", headers=ta)).json()
    assert [c["id"] for c in listed["items"]] == [a["id"]]
    assert (await client.post("/admin/companies/", headers=ta, json={"name": uniq("x")})).status_code == 403
    tu = headers(kind="tenant", company_id=a["id"], roles=["TENANT_USER"])
    assert (await client.get(f"/admin/companies/{a['id']}/", headers=tu)).json()["error"][
        "code"
    ] == "tenant_admin_required"

    me = (await client.get("/tenant/", headers=ta)).json()
    assert me["company"]["id"] == a["id"] and me["tenant_role"] == "TENANT_ADMIN"
    assert (await client.get("/tenant/", headers=ta, params={"company_id": b["id"]})).status_code == 404
    admin_me = (
        await client.get("/tenant/", headers=headers(kind="admin"), params={"company_id": b["id"]})
    ).json()
    assert admin_me["is_admin"] is True and admin_me["company"]["id"] == b["id"]
    choices = (await client.get("/tenant/permission-choices/", headers=tu)).json()
    assert [c["value"] for c in choices["items"]] == ["DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE", "ASSETS"]
