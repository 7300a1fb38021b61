"""The two directories of the original (ad_flag CUSTOMER / ADMIN): administrators sign in against
a directory of their own, whose groups SUPER_ADMIN / ADMIN / READ_ONLY decide their role. Runs
against the demo OpenLDAP's administrators' tree (scripts/ldap/admin-directory.ldif)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from soc_auth.testing import ACME, Running, auth_settings, running

ADMINS = "ou=admins,dc=soc,dc=local"


def admin_dir_settings(**overrides: Any) -> Any:
    return auth_settings(
        admin_ldap_urls=["ldap://127.0.0.1:3389"],
        admin_ldap_base_dn=ADMINS,
        admin_ldap_user_search_base=f"ou=people,{ADMINS}",
        admin_ldap_group_search_base=f"ou=groups,{ADMINS}",
        consumers_enabled=False,
        **overrides,
    )


@pytest.fixture(scope="module")
async def two(auth: Running) -> AsyncIterator[Running]:
    async with running(admin_dir_settings()) as service:
        yield service


@pytest.mark.parametrize(
    ("login", "role", "read_only"),
    [("sofia", "SUPER_ADMIN", False), ("andy", "ADMIN", False), ("rory", "READ_ONLY_ADMIN", True)],
)
async def test_admin_directory_groups_decide_the_admin_role(
    two: Running, login: str, role: str, read_only: bool
) -> None:
    response = await two.login(login, f"{login}-pass", path="/auth/admin/login/", ip="192.0.2.80")
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert (user["kind"], user["role"], user["is_read_only"], user["auth_source"]) == (
        "admin",
        role,
        read_only,
        "ldap",
    )
    assert user["directory_dn"] == f"uid={login},ou=people,{ADMINS}"
    # Their later refreshes look them up in the administrators' directory.
    async with running(admin_dir_settings(ldap_recheck_seconds=0)) as fresh:
        again = await fresh.client.post(
            "/auth/token/refresh/", json={"refresh_token": response.json()["refresh_token"]}
        )
        assert again.status_code == 200, again.text


async def test_admin_directory_user_without_an_admin_group_is_refused(
    two: Running, admin_headers: dict
) -> None:
    response = await two.login("nora", "nora-pass", path="/auth/admin/login/", ip="192.0.2.81")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"
    found = (await two.client.get("/admin/users/", params={"q": "nora"}, headers=admin_headers)).json()
    assert found["total"] == 0


async def test_customer_directory_users_are_not_administrators(two: Running) -> None:
    # alice lives in the customer directory only: the admin sign-in does not know her...
    refused = await two.login("alice", "alice-pass", path="/auth/admin/login/", ip="192.0.2.82")
    assert refused.status_code == 401
    # ...and the ordinary sign-in makes her what the customer directory's mapping says.
    response = await two.login("alice", "alice-pass", ip="192.0.2.82")
    assert response.status_code == 200 and response.json()["user"]["company_id"] == ACME
    # An admin group in the customer directory makes no administrator once there is an admin directory.
    settings = admin_dir_settings(ldap_admin_group="cn=acme-soc-users,ou=groups,dc=soc,dc=local")
    async with running(settings) as service:
        user = (await service.login("alice", "alice-pass", ip="192.0.2.82")).json()["user"]
        assert user["kind"] == "tenant"


async def test_lookups_take_ad_flag(two: Running, admin_headers: dict) -> None:
    admins = await two.client.get(
        "/admin/directory/users/", params={"ad_flag": "ADMIN"}, headers=admin_headers
    )
    assert admins.status_code == 200, admins.text
    assert {p["username"] for p in admins.json()["items"]} == {"andy", "nora", "rory", "sofia"}
    customers = await two.client.get("/admin/directory/users/", headers=admin_headers)
    names = {p["username"] for p in customers.json()["items"]}
    assert "alice" in names and "sofia" not in names
    groups = await two.client.get(
        "/admin/directory/groups/", params={"ad_flag": "ADMIN"}, headers=admin_headers
    )
    assert {g["name"]: g["member_count"] for g in groups.json()["items"]} == {
        "ADMIN": 1,
        "READ_ONLY": 1,
        "SUPER_ADMIN": 1,
    }
    members = await two.client.get(
        "/admin/directory/groups/SUPER_ADMIN/users/", params={"ad_flag": "ADMIN"}, headers=admin_headers
    )
    assert [p["username"] for p in members.json()["items"]] == ["sofia"]
    status = await two.client.get(
        "/admin/directory/status/", params={"ad_flag": "ADMIN"}, headers=admin_headers
    )
    assert status.json()["ok"] is True and status.json()["servers"][0]["transport"] == "plain"
    bad = await two.client.get("/admin/directory/users/", params={"ad_flag": "OTHER"}, headers=admin_headers)
    assert bad.status_code == 422


async def test_group_members_can_leave_out_users_already_assigned(two: Running, admin_headers: dict) -> None:
    assert (await two.login("alice", "alice-pass", ip="192.0.2.83")).status_code == 200
    path = "/admin/directory/groups/acme-soc-users/users/"
    everyone = (await two.client.get(path, headers=admin_headers)).json()
    assert [p["username"] for p in everyone["items"]] == ["alice"]
    unassigned = (
        await two.client.get(path, params={"exclude_assigned": "true"}, headers=admin_headers)
    ).json()
    assert unassigned["items"] == [] and unassigned["total"] == 0
    # carol has no account: she stays in her group's list.
    carol = (
        await two.client.get(
            "/admin/directory/groups/unmapped-staff/users/",
            params={"exclude_assigned": "true"},
            headers=admin_headers,
        )
    ).json()
    assert [p["username"] for p in carol["items"]] == ["carol"]
