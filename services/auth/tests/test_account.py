"""The caller's own account: password change, preferences; the login audit; directory look-ups;
the tenant service's internal API."""

from __future__ import annotations

from soc_auth.password.policy import problems
from soc_auth.testing import ACME, ADMIN_PASSWORD, GLOBEX, STRONG, Running, create_local_user

NEW = "Another-Strong-Pass-77"


async def test_password_change_revokes_refresh_tokens(auth: Running, admin_headers: dict) -> None:
    await create_local_user(auth, admin_headers, "changer")
    first = (await auth.login("changer", STRONG)).json()
    second = (await auth.login("changer", STRONG)).json()
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    wrong = await auth.client.post(
        "/auth/change-password/", json={"current_password": "nope", "new_password": NEW}, headers=headers
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "invalid_password"
    weak = await auth.client.post(
        "/auth/change-password/",
        json={"current_password": STRONG, "new_password": "changer"},
        headers=headers,
    )
    assert weak.status_code == 422 and weak.json()["error"]["code"] == "weak_password"
    ok = await auth.client.post(
        "/auth/change-password/", json={"current_password": STRONG, "new_password": NEW}, headers=headers
    )
    assert ok.status_code == 204
    for pair in (first, second):
        refused = await auth.client.post(
            "/auth/token/refresh/", json={"refresh_token": pair["refresh_token"]}
        )
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
    assert (await auth.login("changer", STRONG, ip="192.0.2.40")).status_code == 401
    assert (await auth.login("changer", NEW)).status_code == 200


async def test_directory_users_change_their_password_in_the_directory(auth: Running) -> None:
    headers = await auth.headers("alice", "alice-pass")
    response = await auth.client.post(
        "/auth/change-password/",
        json={"current_password": "alice-pass", "new_password": NEW},
        headers=headers,
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "directory_account"


def test_password_policy() -> None:
    assert problems("Tr0ub4dor&3-horse", username="someone") == []
    assert problems("short1A!", username="u")
    assert problems("alllowercaseletters", username="u")  # one class only
    assert problems("Password1234", username="u") == ["is too common"]
    assert "must not be the user name" in problems("Administrator-1", username="administrator-1")
    assert problems("lower-and-digits-123", username="u") == []  # lower + digit + symbol


async def test_preferences_round_trip_and_size_limit(auth: Running) -> None:
    headers = await auth.headers("bob", "bob-pass")
    assert (await auth.client.get("/auth/preferences/", headers=headers)).json() == {}
    prefs = {"theme": "dark", "dashboard": {"widgets": ["eps", "offenses"]}}
    assert (await auth.client.put("/auth/preferences/", json=prefs, headers=headers)).json() == prefs
    assert (await auth.client.get("/auth/preferences", headers=headers)).json() == prefs
    too_big = await auth.client.put("/auth/preferences/", json={"blob": "x" * 20000}, headers=headers)
    assert too_big.status_code == 413
    not_object = await auth.client.put("/auth/preferences/", json=[1, 2], headers=headers)
    assert not_object.status_code == 422
    assert (await auth.client.delete("/auth/preferences/", headers=headers)).status_code == 204
    assert (await auth.client.get("/auth/preferences/", headers=headers)).json() == {}
    assert (await auth.client.get("/auth/preferences/")).status_code == 401


async def test_login_audit_lists_and_filters(auth: Running, admin_headers: dict) -> None:
    await auth.login("admin", "wrong!", ip="192.0.2.77")
    await auth.login("admin", ADMIN_PASSWORD, ip="192.0.2.77")
    audit = (
        await auth.client.get(
            "/admin/login-audit/",
            params={"username": "admin", "client_ip": "192.0.2.77"},
            headers=admin_headers,
        )
    ).json()
    assert audit["total"] == 2
    newest, oldest = audit["items"]
    assert (newest["outcome"], oldest["outcome"], oldest["reason"]) == (
        "succeeded",
        "failed",
        "invalid_password",
    )
    assert newest["user_agent"] == "pytest" and newest["method"] == "local" and newest["user_id"]
    failed = (
        await auth.client.get(
            "/admin/login-audit/",
            params={"outcome": "failed", "since": oldest["at"], "limit": 1},
            headers=admin_headers,
        )
    ).json()
    assert failed["limit"] == 1 and all(i["outcome"] == "failed" for i in failed["items"])
    ldap = (
        await auth.client.get("/admin/login-audit/", params={"method": "ldap"}, headers=admin_headers)
    ).json()
    assert ldap["total"] > 0


async def test_directory_lookups(auth: Running, admin_headers: dict) -> None:
    users = (
        await auth.client.get("/admin/directory/users/", params={"q": "ali"}, headers=admin_headers)
    ).json()
    assert [u["username"] for u in users["items"]] == ["alice"]
    assert users["items"][0]["groups"] == ["cn=acme-soc-users,ou=groups,dc=soc,dc=local"]
    injected = (
        await auth.client.get("/admin/directory/users/", params={"q": "*)(uid=*"}, headers=admin_headers)
    ).json()
    assert injected["total"] == 0
    everyone = (await auth.client.get("/admin/directory/users/", headers=admin_headers)).json()
    assert {"alice", "bob", "carol", "dave", "erin"} <= {u["username"] for u in everyone["items"]}
    groups = (await auth.client.get("/admin/directory/groups/", headers=admin_headers)).json()
    assert {"acme-soc-users", "globex-soc-admins", "unmapped-staff"} <= {g["name"] for g in groups["items"]}
    members = (
        await auth.client.get("/admin/directory/groups/globex-soc-users/users/", headers=admin_headers)
    ).json()
    assert [u["username"] for u in members["items"]] == ["bob"]
    assert (
        await auth.client.get("/admin/directory/groups/no-such-group/users/", headers=admin_headers)
    ).status_code == 404
    assert (
        await auth.client.get("/admin/directory/groups/*/users/", headers=admin_headers)
    ).status_code == 404
    for odd in ("a=b,=,", "cn=x,dc=elsewhere", "(", "cn=*"):
        response = await auth.client.get(f"/admin/directory/groups/{odd}/users/", headers=admin_headers)
        assert response.status_code == 404, (odd, response.text)
    by_dn = await auth.client.get(
        "/admin/directory/groups/cn=acme-soc-users,ou=groups,dc=soc,dc=local/users/", headers=admin_headers
    )
    assert [u["username"] for u in by_dn.json()["items"]] == ["alice"]
    nul = await auth.client.get("/admin/directory/users/", params={"q": "a\x00"}, headers=admin_headers)
    assert nul.status_code == 422


async def test_internal_api_for_the_tenant_service(auth: Running, service_headers: dict) -> None:
    body = {
        "username": "svc-made",
        "email": "svc-made@acme.example",
        "company_id": ACME,
        "tenant_role": "TENANT_ADMIN",
        "permissions": ["DASHBOARD", "ASSETS"],
        "password": STRONG,
    }
    created = await auth.client.post("/auth/internal/users", json=body, headers=service_headers)
    assert created.status_code == 201, created.text
    user = created.json()["user"]
    assert (
        created.json()["created"]
        and user["role"] == "TENANT_ADMIN"
        and user["permissions"] == ["ASSETS", "DASHBOARD"]
    )
    again = await auth.client.post(
        "/auth/internal/users", json={**body, "full_name": "Svc Made"}, headers=service_headers
    )
    assert again.status_code == 200 and not again.json()["created"]
    assert again.json()["user"]["id"] == user["id"] and again.json()["user"]["full_name"] == "Svc Made"
    other_company = await auth.client.post(
        "/auth/internal/users", json={**body, "company_id": GLOBEX}, headers=service_headers
    )
    assert other_company.status_code == 409
    assert (await auth.login("svc-made", STRONG)).status_code == 200

    patched = await auth.client.patch(
        f"/auth/internal/users/{user['id']}",
        json={"tenant_role": "TENANT_USER", "permissions": ["REPORTS"]},
        headers=service_headers,
    )
    assert (
        patched.status_code == 200
        and patched.json()["role"] == "TENANT_USER"
        and patched.json()["permissions"] == ["REPORTS"]
    )

    pair = (await auth.login("svc-made", STRONG)).json()
    disabled = await auth.client.post(
        f"/auth/internal/companies/{ACME}/disable-users", headers=service_headers
    )
    assert disabled.status_code == 200 and disabled.json()["users_changed"] >= 1
    assert (await auth.login("svc-made", STRONG, ip="192.0.2.88")).status_code == 401
    assert (
        await auth.client.post("/auth/token/refresh/", json={"refresh_token": pair["refresh_token"]})
    ).status_code == 401
    enabled = await auth.client.post(
        f"/auth/internal/companies/{ACME}/disable-users", json={"disabled": False}, headers=service_headers
    )
    assert enabled.json()["users_changed"] == disabled.json()["users_changed"]
    assert (await auth.login("svc-made", STRONG)).status_code == 200

    listing = (
        await auth.client.get("/auth/internal/users", params={"company_id": ACME}, headers=service_headers)
    ).json()
    assert user["id"] in {u["id"] for u in listing["items"]}
    admin_id = (await auth.login("admin", ADMIN_PASSWORD)).json()["user"]["id"]
    assert (
        await auth.client.patch(
            f"/auth/internal/users/{admin_id}", json={"full_name": "x"}, headers=service_headers
        )
    ).status_code == 404


async def test_password_hash_is_upgraded_when_the_parameters_change(
    auth: Running, admin_headers: dict, migrated: None
) -> None:
    from soc_auth.testing import auth_settings, running
    from soc_auth.user.models import users
    from sqlalchemy import select

    await create_local_user(auth, admin_headers, "rehash-me")

    async def stored_hash() -> str:
        async with auth.state.db.session() as session:
            return (
                await session.execute(select(users.c.password_hash).where(users.c.username == "rehash-me"))
            ).scalar_one()

    before = await stored_hash()
    assert before.startswith("$argon2id$") and ",t=1," in before
    async with running(auth_settings(argon2_time_cost=2, consumers_enabled=False)) as stronger:
        assert (await stronger.login("rehash-me", STRONG)).status_code == 200
    after = await stored_hash()
    assert after.startswith("$argon2id$") and ",t=2," in after
    assert (await auth.login("rehash-me", STRONG)).status_code == 200
