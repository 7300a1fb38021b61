"""User administration: who may see and change whom."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.routing import iter_route_contexts
from soc_auth.testing import ACME, ADMIN_PASSWORD, GLOBEX, STRONG, Running, create_local_user

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
async def read_only_headers(auth: Running, admin_headers: dict) -> dict[str, str]:
    await create_local_user(auth, admin_headers, "auditor", kind="admin", role="READ_ONLY_ADMIN")
    return await auth.headers("auditor", STRONG)


def _admin_write_routes(auth: Running) -> list[tuple[str, str]]:
    found = []
    for route in iter_route_contexts(auth.app.routes):
        path = route.path or ""
        if path.startswith("/admin") or path.startswith("/auth/create-user"):
            found.extend((method, path) for method in sorted((route.methods or set()) & MUTATING))
    return found


async def test_read_only_admin_reads_every_admin_list(auth: Running, read_only_headers: dict) -> None:
    for path in (
        "/admin/users/",
        "/admin/login-audit/",
        "/admin/keys/",
        "/admin/roles/",
        "/admin/directory/groups/",
    ):
        response = await auth.client.get(path, headers=read_only_headers)
        assert response.status_code == 200, (path, response.text)
    me = (await auth.client.get("/auth/me/", headers=read_only_headers)).json()
    assert me["is_read_only"] and me["role"] == "READ_ONLY_ADMIN"


async def test_read_only_admin_is_refused_on_every_mutating_admin_route(
    auth: Running, read_only_headers: dict, admin_headers: dict
) -> None:
    target = await create_local_user(auth, admin_headers, "ro-target")
    routes = _admin_write_routes(auth)
    assert len(routes) >= 8, routes
    for method, path in routes:
        url = re.sub(r"\{user_id\}", target["id"], path)
        url = re.sub(r"\{[^}]+\}", "x", url)
        response = await auth.client.request(method, url, json={}, headers=read_only_headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "read_only", (method, path)
    after = (await auth.client.get(f"/admin/users/{target['id']}/", headers=admin_headers)).json()
    assert after["is_active"] and not after["is_deleted"]


async def test_only_a_super_admin_creates_administrators(auth: Running, admin_headers: dict) -> None:
    await create_local_user(auth, admin_headers, "plain-admin", kind="admin", role="ADMIN")
    plain = await auth.headers("plain-admin", STRONG)
    body = {"username": "would-be-admin", "password": STRONG, "kind": "admin", "role": "ADMIN"}
    refused = await auth.client.post("/admin/users/", json=body, headers=plain)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "super_admin_required"
    tenant_user = {"username": "made-by-admin", "password": STRONG, "kind": "tenant", "company_id": GLOBEX}
    assert (await auth.client.post("/auth/create-user/", json=tenant_user, headers=plain)).status_code == 201
    created = await auth.client.post(
        "/auth/create-user/", json={**body, "username": "second-admin"}, headers=admin_headers
    )
    assert created.status_code == 201 and created.json()["kind"] == "admin"


async def test_tenant_admin_manages_only_its_own_company(auth: Running, admin_headers: dict) -> None:
    dave = await auth.headers("dave", "dave-pass")  # Acme tenant admin (directory)
    bob_id = (await auth.login("bob", "bob-pass")).json()["user"]["id"]  # Globex
    alice_id = (await auth.login("alice", "alice-pass")).json()["user"]["id"]  # Acme

    listing = (await auth.client.get("/admin/users/", params={"limit": 500}, headers=dave)).json()
    assert listing["items"] and {u["company_id"] for u in listing["items"]} == {ACME}
    assert (await auth.client.get("/admin/users/", params={"company_id": GLOBEX}, headers=dave)).json()[
        "total"
    ] == 0

    for method in ("GET", "PATCH", "PUT", "DELETE"):
        body = (
            {"email": None, "full_name": "x", "role": "TENANT_USER"}
            if method == "PUT"
            else {"full_name": "x"}
        )
        response = await auth.client.request(method, f"/admin/users/{bob_id}/", json=body, headers=dave)
        assert response.status_code == 404, (method, response.text)
    assert (await auth.client.get(f"/admin/users/{alice_id}/", headers=dave)).status_code == 200

    created = await auth.client.post(
        "/admin/users/",
        json={"username": "acme-analyst", "password": STRONG, "permissions": ["DASHBOARD"]},
        headers=dave,
    )
    assert created.status_code == 201, created.text
    assert created.json()["company_id"] == ACME and created.json()["permissions"] == ["DASHBOARD"]
    elsewhere = await auth.client.post(
        "/admin/users/",
        json={"username": "globex-intruder", "password": STRONG, "company_id": GLOBEX},
        headers=dave,
    )
    assert elsewhere.status_code == 404
    admin = await auth.client.post(
        "/admin/users/", json={"username": "acme-boss", "password": STRONG, "kind": "admin"}, headers=dave
    )
    assert admin.status_code == 403
    promoted = await auth.client.patch(
        f"/admin/users/{created.json()['id']}/",
        json={"role": "TENANT_ADMIN", "permissions": ["DASHBOARD", "ASSETS"]},
        headers=dave,
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "TENANT_ADMIN"
    moved = await auth.client.patch(
        f"/admin/users/{created.json()['id']}/", json={"company_id": GLOBEX}, headers=dave
    )
    assert moved.status_code == 404
    # Tenant admins do not reach the rest of the administration.
    assert (await auth.client.get("/admin/login-audit/", headers=dave)).status_code == 403


async def test_tenant_users_are_not_administrators(auth: Running) -> None:
    alice = await auth.headers("alice", "alice-pass")
    for path in ("/admin/users/", "/admin/login-audit/", "/admin/directory/users/"):
        response = await auth.client.get(path, headers=alice)
        assert response.status_code == 403 and response.json()["error"]["code"] == "admin_required"


async def test_list_filters_sorts_and_paginates(auth: Running, admin_headers: dict) -> None:
    for n in range(3):
        await create_local_user(auth, admin_headers, f"pager-{n}", company_id=GLOBEX)
    page = (
        await auth.client.get(
            "/admin/users/",
            params={"q": "pager-", "limit": 2, "offset": 1, "sort": "-username"},
            headers=admin_headers,
        )
    ).json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert [u["username"] for u in page["items"]] == ["pager-1", "pager-0"]
    admins = (await auth.client.get("/admin/users", params={"kind": "admin"}, headers=admin_headers)).json()
    assert admins["items"] and all(u["kind"] == "admin" for u in admins["items"])
    like = (await auth.client.get("/admin/users/", params={"q": "%"}, headers=admin_headers)).json()
    assert like["total"] == 0  # LIKE wildcards are text, not patterns
    bad = await auth.client.get("/admin/users/", params={"sort": "password_hash"}, headers=admin_headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_sort"


async def test_soft_delete_hides_and_restore_brings_back(auth: Running, admin_headers: dict) -> None:
    user = await create_local_user(auth, admin_headers, "to-delete")
    pair = (await auth.login("to-delete", STRONG)).json()
    assert (await auth.client.delete(f"/admin/users/{user['id']}/", headers=admin_headers)).status_code == 204
    assert (await auth.client.get("/admin/users/", params={"q": "to-delete"}, headers=admin_headers)).json()[
        "total"
    ] == 0
    deleted = (
        await auth.client.get(
            "/admin/users/", params={"q": "to-delete", "is_deleted": True}, headers=admin_headers
        )
    ).json()
    assert deleted["total"] == 1 and deleted["items"][0]["deleted_at"]
    assert (
        await auth.client.post("/auth/token/refresh/", json={"refresh_token": pair["refresh_token"]})
    ).status_code == 401
    assert (
        await auth.client.get("/auth/me/", headers={"Authorization": f"Bearer {pair['access_token']}"})
    ).status_code == 401
    restored = await auth.client.patch(
        f"/admin/users/{user['id']}/", json={"is_deleted": False, "is_active": True}, headers=admin_headers
    )
    assert restored.status_code == 200 and not restored.json()["is_deleted"]
    assert (await auth.login("to-delete", STRONG)).status_code == 200


async def test_nobody_locks_themselves_out_and_the_last_super_admin_stays(
    auth: Running, admin_headers: dict
) -> None:
    me = (await auth.client.get("/auth/me/", headers=admin_headers)).json()
    for body in ({"is_active": False}, {"role": "ADMIN"}):
        response = await auth.client.patch(f"/admin/users/{me['id']}/", json=body, headers=admin_headers)
        assert response.status_code == 409 and response.json()["error"]["code"] == "self_lockout"
    assert (await auth.client.delete(f"/admin/users/{me['id']}/", headers=admin_headers)).status_code == 409


async def test_validation_errors_are_4xx_in_the_error_shape(auth: Running, admin_headers: dict) -> None:
    cases = [
        {"username": "weak-one", "password": "short"},
        {"username": "no-company", "password": STRONG, "kind": "tenant"},
        {"username": "bad role", "password": STRONG, "company_id": ACME},
        {"username": "role-mismatch", "password": STRONG, "company_id": ACME, "role": "SUPER_ADMIN"},
        {"username": "x", "password": STRONG, "company_id": ACME, "unexpected": 1},
    ]
    for body in cases:
        response = await auth.client.post("/admin/users/", json=body, headers=admin_headers)
        assert response.status_code == 422, (body, response.text)
        assert set(response.json()["error"]) == {"code", "message", "details", "request_id"}
    weak = await auth.client.post(
        "/admin/users/", json=cases[0] | {"company_id": ACME}, headers=admin_headers
    )
    assert weak.json()["error"]["code"] == "weak_password"
    assert (await auth.client.get(f"/admin/users/{uuid.uuid4()}/", headers=admin_headers)).status_code == 404
    assert (await auth.client.get("/admin/users/not-a-uuid/", headers=admin_headers)).status_code == 422
    duplicate = await auth.client.post(
        "/admin/users/",
        json={"username": "ADMIN", "password": STRONG, "company_id": ACME},
        headers=admin_headers,
    )
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "username_taken"


async def test_roles_and_permission_choices(auth: Running, admin_headers: dict) -> None:
    roles = {r["name"]: r for r in (await auth.client.get("/admin/roles/", headers=admin_headers)).json()}
    assert set(roles) == {"SUPER_ADMIN", "ADMIN", "READ_ONLY_ADMIN", "USER", "TENANT_ADMIN", "TENANT_USER"}
    assert roles["TENANT_ADMIN"]["permissions"] == ["ASSETS", "DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE"]
    choices = (await auth.client.get("/auth/permission-choices/", headers=admin_headers)).json()
    assert {c["value"] for c in choices} == {"DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE", "ASSETS"}


async def test_admin_login_refuses_tenant_users(auth: Running) -> None:
    response = await auth.login("alice", "alice-pass", path="/auth/admin/login/")
    assert response.status_code == 403 and response.json()["error"]["code"] == "admin_required"
    assert (await auth.login("admin", ADMIN_PASSWORD, path="/auth/admin/login/")).status_code == 200


async def test_nul_characters_are_bad_input_not_a_crash(auth: Running, admin_headers: dict) -> None:
    response = await auth.client.get("/admin/users/", params={"q": "a\x00b"}, headers=admin_headers)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_input"
    login = await auth.client.post("/auth/login/", json={"username": "alice\x00", "password": "alice-pass"})
    assert login.status_code == 422
