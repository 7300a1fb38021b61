"""The audit trail across real processes: a change made in the auth service and a failed sign-in
reach the tenant service's audit store through auth's outbox and the broker, and show in the one
view behind the gateway — recorded under the address the gateway saw, not the one a caller forged."""

from __future__ import annotations

import time
import uuid

import httpx

from .conftest import ADMIN_PASSWORD, Suite, url

GATEWAY = url("gateway")


def test_auth_changes_and_sign_ins_reach_the_audit_view(suite: Suite):
    api = httpx.Client(base_url=GATEWAY, timeout=10)
    admin = api.post("/auth/login/", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
    h = {"Authorization": f"Bearer {admin['access_token']}"}
    username = f"audited-{uuid.uuid4().hex[:8]}"
    password = "Audited-E2e-" + uuid.uuid4().hex[:12]
    created = api.post(
        "/admin/users/",
        headers={**h, "X-Forwarded-For": "10.6.6.6"},
        json={"username": username, "kind": "admin", "role": "READ_ONLY_ADMIN", "password": password},
    )
    assert created.status_code == 201, created.text
    uid = created.json()["id"]
    refused = api.post(
        "/auth/login/",
        json={"username": username, "password": "wrong"},
        headers={"X-Forwarded-For": "10.6.6.6"},
    )
    assert refused.status_code == 401

    deadline = time.monotonic() + 30
    while True:
        found = api.get("/admin/audit/", params={"target_id": uid, "source": "auth"}, headers=h)
        assert found.status_code == 200, found.text
        actions = {x["action"]: x for x in found.json()["items"]}
        if {"user.created", "auth.login.failed"} <= set(actions) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert {"user.created", "auth.login.failed"} <= set(actions), actions
    change, login = actions["user.created"], actions["auth.login.failed"]
    assert change["actor_username"] == "admin" and change["after"]["username"] == username
    assert password not in found.text
    assert login["after"]["reason"] == "invalid_password"
    # The gateway trusts no proxy in front of it: the forged hop is dropped, the peer recorded.
    for record in (change, login):
        assert record["client_address"] == "127.0.0.1", record
