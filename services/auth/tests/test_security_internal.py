"""Least privilege inside the suite: service tokens carry their client's scopes, tenant users are
managed by the tenant service alone, directory-group mappings come from the tenant service alone,
and the revocation list is served to services only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import jwt
from soc_auth.company.models import directory_group
from soc_auth.testing import Running
from soc_shared.events import CompanyChanged, DirectoryGroupRole, make_event
from sqlalchemy import select


async def _service_headers(auth: Running, client_id: str) -> dict[str, str]:
    r = await auth.client.post(
        "/auth/internal/token",
        json={
            "client_id": client_id,
            "client_secret": auth.state.settings.service_client_secret.get_secret_value(),
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_service_tokens_carry_their_clients_scopes(auth):
    token = (await _service_headers(auth, "siem-ingest"))["Authorization"].removeprefix("Bearer ")
    scopes = jwt.decode(token, options={"verify_signature": False})["scope"].split()
    assert "tenant.credentials:IBM_QRADAR" in scopes and "tenant.credentials:CYWARE" not in scopes
    assert "auth.users:write" not in scopes


async def test_only_the_tenant_service_manages_tenant_users(auth):
    body = {"username": f"svc-{uuid.uuid4().hex[:8]}", "company_id": "acme", "tenant_role": "TENANT_USER"}
    for client_id in ("siem-ingest", "threatintel", "gateway"):
        headers = await _service_headers(auth, client_id)
        r = await auth.client.post("/auth/internal/users", json=body, headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_service_required", r.text
        r = await auth.client.get("/auth/internal/users", headers=headers)
        assert r.status_code == 403
    tenant = await _service_headers(auth, "tenant")
    assert (await auth.client.get("/auth/internal/users", headers=tenant)).status_code == 200


async def test_the_revocation_list_is_for_services(auth, admin_headers):
    assert (await auth.client.get("/auth/internal/revocations", headers=admin_headers)).status_code == 403
    gateway = await _service_headers(auth, "gateway")
    r = await auth.client.get("/auth/internal/revocations", params={"since_ms": 0}, headers=gateway)
    assert r.status_code == 200 and isinstance(r.json()["items"], list)


async def test_directory_group_mappings_from_another_source_are_ignored(auth):
    company_id = f"forged-{uuid.uuid4().hex[:6]}"
    payload = CompanyChanged(
        company_id=company_id,
        name="Forged",
        active=True,
        changed_at=datetime.now(UTC),
        directory_groups=[
            DirectoryGroupRole(ldap_group="soc-admins", tenant_role="TENANT_ADMIN", permissions=[])
        ],
    )
    bus = auth.state.bus
    await bus.publish(
        [make_event("tenant.company.changed", payload, source="/siem-ingest", subject=company_id)]
    )

    async def mapped() -> bool:
        async with auth.state.db.session() as session:
            rows = await session.execute(
                select(directory_group.c.company_id).where(directory_group.c.company_id == company_id)
            )
            return rows.first() is not None

    await asyncio.sleep(1.5)
    assert not await mapped()
    await bus.publish([make_event("tenant.company.changed", payload, source="/tenant", subject=company_id)])
    for _ in range(50):
        if await mapped():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the tenant service's mapping was not applied")


async def test_a_company_deactivation_revokes_its_users_access_tokens(auth, service_headers):
    company = f"co-{uuid.uuid4().hex[:8]}"
    username, password = f"u-{uuid.uuid4().hex[:8]}", "Str0ng-" + uuid.uuid4().hex
    r = await auth.client.post(
        "/auth/internal/users",
        json={"username": username, "company_id": company, "password": password},
        headers=service_headers,
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["user"]["id"]
    token = await auth.token(username, password)
    assert (
        await auth.client.get("/auth/me/", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    r = await auth.client.post(
        f"/auth/internal/companies/{company}/disable-users", json={"disabled": True}, headers=service_headers
    )
    assert r.status_code == 200, r.text
    gateway = await _service_headers(auth, "gateway")
    listed = (await auth.client.get("/auth/internal/revocations", headers=gateway)).json()["items"]
    assert user_id in {item["user_id"] for item in listed}
    for _ in range(50):  # the replica's list is refreshed every second
        if (
            await auth.client.get("/auth/me/", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the deactivated company's user still has a working token")
