"""Directory (LDAP) sign-in against the demo OpenLDAP: who may sign in, as whom, and how safely."""

from __future__ import annotations

import pytest
from soc_auth.testing import ACME, ADMIN_PASSWORD, GLOBEX, Running, auth_settings, running
from soc_shared.security import Principal


async def _claims(auth: Running, token: str) -> Principal:
    return await auth.state.keys.verifier.verify(token)


@pytest.mark.parametrize("login", ["alice", "alice@acme.example", "alice@soc.local", "ALICE"])
async def test_directory_user_signs_in_by_uid_email_or_upn(auth: Running, login: str) -> None:
    response = await auth.login(login, "alice-pass")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["username"] == "alice"
    assert body["user"]["auth_source"] == "ldap"
    assert body["token_type"] == "Bearer" and body["refresh_token"]


async def test_directory_group_decides_company_role_and_permissions(auth: Running) -> None:
    alice = await _claims(auth, await auth.token("alice", "alice-pass"))
    assert (alice.kind, alice.company_id, alice.read_only) == ("tenant", ACME, False)
    assert "TENANT_USER" in alice.roles and "TENANT_ADMIN" not in alice.roles
    assert alice.permissions == ["DASHBOARD", "REPORTS"]

    dave = await _claims(
        auth, await auth.token("dave", "dave-pass")
    )  # acme-soc-admins, mapped by its full DN
    assert (dave.company_id, "TENANT_ADMIN" in dave.roles) == (ACME, True)
    assert dave.permissions == ["ASSETS", "DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE"]

    bob = await _claims(auth, await auth.token("bob@globex.example", "bob-pass"))
    assert (bob.company_id, bob.permissions) == (GLOBEX, ["DASHBOARD", "THREAT_INTELLIGENCE"])


async def test_directory_account_is_created_with_directory_details(
    auth: Running, admin_headers: dict
) -> None:
    response = await auth.login("erin", "erin-pass")
    me = (
        await auth.client.get(
            "/auth/me/", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
        )
    ).json()
    assert me["email"] == "erin@globex.example"
    assert me["full_name"] == "Erin Evans"
    assert me["directory_dn"] == "uid=erin,ou=people,dc=soc,dc=local"
    assert me["directory_groups"] == ["cn=globex-soc-admins,ou=groups,dc=soc,dc=local"]
    assert me["role"] == "TENANT_ADMIN" and me["company_id"] == GLOBEX


async def test_wrong_password_and_unknown_user_get_the_same_answer(auth: Running) -> None:
    wrong = await auth.login("alice", "not-her-password", ip="192.0.2.21")
    unknown = await auth.login("nobody-here", "whatever", ip="192.0.2.21")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["code"] == unknown.json()["error"]["code"] == "invalid_credentials"
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_unmapped_directory_user_is_refused_and_no_account_is_created(
    auth: Running, admin_headers: dict
) -> None:
    response = await auth.login("carol", "carol-pass")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "no_company_mapping"
    assert "not in any group mapped to a company" in error["message"]
    users = (await auth.client.get("/admin/users/", params={"q": "carol"}, headers=admin_headers)).json()
    assert users["total"] == 0


@pytest.mark.parametrize(
    "login",
    [
        "*)(uid=*",
        "alice*",
        "*",
        "a*e",
        "alice)(|(uid=*",
        "*)(|(objectClass=*",
        "alice\\2a",
        "(uid=alice)",
        "*@soc.local",
        "alice@*",
    ],
)
async def test_filter_injection_never_matches_anyone(auth: Running, login: str) -> None:
    for password in ("alice-pass", "bob-pass", "x"):
        response = await auth.login(login, password, ip="192.0.2.22")
        assert response.status_code == 401, (login, response.text)
        assert response.json()["error"]["code"] == "invalid_credentials"


async def test_empty_password_is_never_an_anonymous_bind(auth: Running) -> None:
    response = await auth.client.post("/auth/login/", json={"username": "alice", "password": ""})
    assert response.status_code == 422


async def test_first_server_down_fails_over_to_the_next(migrated: None) -> None:
    settings = auth_settings(
        ldap_urls=["ldap://127.0.0.1:3399", "ldap://127.0.0.1:3389"], consumers_enabled=False
    )
    async with running(settings) as service:
        response = await service.login("bob", "bob-pass")
        assert response.status_code == 200, response.text
        assert response.json()["user"]["company_id"] == GLOBEX


async def test_every_directory_server_down_answers_503_but_local_admins_still_sign_in(migrated: None) -> None:
    settings = auth_settings(
        ldap_urls=["ldap://127.0.0.1:3399", "ldap://127.0.0.1:3398"], consumers_enabled=False
    )
    async with running(settings) as service:
        response = await service.login("alice", "alice-pass")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "directory_unavailable"
        assert "directory (LDAP) servers cannot be reached" in error["message"]
        assert response.headers["Retry-After"]
        assert (await service.login("admin", ADMIN_PASSWORD)).status_code == 200
        assert (await service.client.get("/readyz")).status_code == 200


async def test_directory_admin_group_makes_an_administrator(migrated: None) -> None:
    settings = auth_settings(
        ldap_admin_group="cn=globex-soc-users,ou=groups,dc=soc,dc=local", consumers_enabled=False
    )
    async with running(settings) as service:
        response = await service.login("bob", "bob-pass", path="/auth/admin/login/")
        assert response.status_code == 200, response.text
        user = response.json()["user"]
        assert (user["kind"], user["role"], user["company_id"]) == ("admin", "ADMIN", None)
    # Back with the default configuration, the directory makes bob a Globex user again.
    async with running(auth_settings(consumers_enabled=False)) as service:
        response = await service.login("bob", "bob-pass")
        assert response.json()["user"]["kind"] == "tenant"
        refused = await service.login("bob", "bob-pass", path="/auth/admin/login/")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"


async def test_inactive_company_refuses_its_directory_users(auth: Running) -> None:
    from soc_auth.testing import ACME_GROUPS, publish_company, wait_for

    assert (await auth.login("alice", "alice-pass")).status_code == 200
    await publish_company(auth.state.bus, ACME, "Acme Corp", ACME_GROUPS, active=False)

    async def refused() -> bool:
        return (await auth.login("alice", "alice-pass", ip="192.0.2.23")).status_code == 403

    await wait_for(refused)
    response = await auth.login("alice", "alice-pass", ip="192.0.2.23")
    assert response.json()["error"]["code"] == "company_inactive"
    await publish_company(auth.state.bus, ACME, "Acme Corp", ACME_GROUPS, active=True)

    async def back() -> bool:
        return (await auth.login("alice", "alice-pass", ip="192.0.2.23")).status_code == 200

    await wait_for(back)
