"""Sessions: list mine (device, address, last use), end one or all; administrators end a user's.
The login audit records method and outcome."""

from __future__ import annotations

from soc_auth.testing import STRONG, Running, create_local_user

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"


async def _sign_in(auth: Running, username: str, agent: str, ip: str) -> dict:
    response = await auth.client.post(
        "/auth/login/",
        json={"username": username, "password": STRONG},
        headers={"User-Agent": agent, "X-Forwarded-For": ip},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_list_and_end_my_sessions(auth: Running, admin_headers: dict) -> None:
    await create_local_user(auth, admin_headers, "sess-sara")
    laptop = await _sign_in(auth, "sess-sara", FIREFOX, "198.51.100.7")
    phone = await _sign_in(auth, "sess-sara", SAFARI, "203.0.113.9")
    mine = {"Authorization": f"Bearer {laptop['access_token']}"}
    # A refresh is a use of the session, not a new one.
    refreshed = await auth.client.post(
        "/auth/token/refresh/", json={"refresh_token": phone["refresh_token"]}, headers={"User-Agent": SAFARI}
    )
    assert refreshed.status_code == 200
    listed = (await auth.client.get("/auth/sessions/", headers=mine)).json()
    assert listed["total"] == 2
    by_device = {s["device"]: s for s in listed["items"]}
    assert set(by_device) == {"Firefox on Windows", "Safari on iOS"}
    assert by_device["Firefox on Windows"]["client_ip"] == "198.51.100.7"
    assert (
        by_device["Firefox on Windows"]["current"] is True and by_device["Safari on iOS"]["current"] is False
    )
    assert by_device["Safari on iOS"]["last_used_at"] >= by_device["Safari on iOS"]["started_at"]

    # End the phone's session: its refresh token stops working; the laptop's keeps going.
    ended = await auth.client.delete(f"/auth/sessions/{by_device['Safari on iOS']['id']}/", headers=mine)
    assert ended.status_code == 204
    dead = await auth.client.post(
        "/auth/token/refresh/", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert dead.status_code == 401 and dead.json()["error"]["code"] == "token_revoked"
    assert (await auth.client.get("/auth/sessions/", headers=mine)).json()["total"] == 1

    # Someone else's session (or none) is not found.
    other = await create_local_user(auth, admin_headers, "sess-otto")
    otto = await _sign_in(auth, "sess-otto", FIREFOX, "198.51.100.8")
    otto_headers = {"Authorization": f"Bearer {otto['access_token']}"}
    otto_session = (await auth.client.get("/auth/sessions/", headers=otto_headers)).json()["items"][0]["id"]
    assert (await auth.client.delete(f"/auth/sessions/{otto_session}/", headers=mine)).status_code == 404

    # All of mine.
    assert (await auth.client.delete("/auth/sessions/", headers=mine)).status_code == 204
    gone = await auth.client.post("/auth/token/refresh/", json={"refresh_token": laptop["refresh_token"]})
    assert gone.status_code == 401

    # An administrator sees and ends otto's sessions.
    seen = (await auth.client.get(f"/admin/users/{other['id']}/sessions/", headers=admin_headers)).json()
    assert seen["total"] == 1 and seen["items"][0]["device"] == "Firefox on Windows"
    assert (
        await auth.client.delete(f"/admin/users/{other['id']}/sessions/", headers=admin_headers)
    ).status_code == 204
    assert (
        await auth.client.post("/auth/token/refresh/", json={"refresh_token": otto["refresh_token"]})
    ).status_code == 401
    # A tenant user cannot.
    assert (
        await auth.client.get(f"/admin/users/{other['id']}/sessions/", headers=otto_headers)
    ).status_code in (401, 403)


async def test_login_audit_records_method_and_outcome(auth: Running, admin_headers: dict) -> None:
    await create_local_user(auth, admin_headers, "sess-audit")
    assert (await auth.login("sess-audit", "wrong-password-1", ip="192.0.2.95")).status_code == 401
    assert (await auth.login("sess-audit", STRONG, ip="192.0.2.95")).status_code == 200
    assert (await auth.login("alice", "alice-pass", ip="192.0.2.95")).status_code == 200
    rows = (
        await auth.client.get(
            "/admin/login-audit/", params={"client_ip": "192.0.2.95"}, headers=admin_headers
        )
    ).json()["items"]
    seen = {(r["username"], r["method"], r["outcome"], r["reason"]) for r in rows}
    assert ("sess-audit", "local", "failed", "invalid_password") in seen
    assert ("sess-audit", "local", "succeeded", None) in seen
    assert ("alice", "ldap", "succeeded", None) in seen
    only_ldap = (
        await auth.client.get(
            "/admin/login-audit/", params={"client_ip": "192.0.2.95", "method": "ldap"}, headers=admin_headers
        )
    ).json()["items"]
    assert {r["method"] for r in only_ldap} == {"ldap"}
