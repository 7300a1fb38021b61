"""The sign-in steps after the password, through the real gateway: an MFA user finishes signing in
with the challenge and a code (no access token exists yet, so the gateway must let the step through),
and the SSO provider list answers without a token — while the user's own MFA settings do not."""

from __future__ import annotations

import time
import uuid

import httpx
import pyotp

from .conftest import ADMIN_PASSWORD, Suite, url

GATEWAY = url("gateway")


def test_an_mfa_user_signs_in_through_the_gateway(suite: Suite):
    api = httpx.Client(base_url=GATEWAY, timeout=10)
    admin = api.post("/auth/login/", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
    username, password = f"mfa-{uuid.uuid4().hex[:8]}", "Mfa-Gateway-" + uuid.uuid4().hex[:12]
    created = api.post(
        "/admin/users/",
        headers={"Authorization": f"Bearer {admin['access_token']}"},
        json={"username": username, "kind": "admin", "role": "READ_ONLY_ADMIN", "password": password},
    )
    assert created.status_code == 201, created.text
    own = api.post("/auth/login/", json={"username": username, "password": password}).json()
    own_headers = {"Authorization": f"Bearer {own['access_token']}"}
    enrolment = api.post("/auth/mfa/enrol/", headers=own_headers)
    assert enrolment.status_code == 201, enrolment.text
    totp = pyotp.TOTP(enrolment.json()["secret"])
    confirmed = api.post("/auth/mfa/confirm/", headers=own_headers, json={"code": totp.now()})
    assert confirmed.status_code == 200, confirmed.text

    step = api.post("/auth/login/", json={"username": username, "password": password})
    assert step.status_code == 200, step.text
    assert step.json()["mfa_required"] is True
    # The confirmation used the current step's code; a code is accepted once.
    done = api.post(
        "/auth/mfa/verify/", json={"challenge": step.json()["challenge"], "code": totp.at(time.time() + 30)}
    )
    assert done.status_code == 200, done.text
    me = api.get("/auth/me/", headers={"Authorization": f"Bearer {done.json()['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == username

    # A wrong code through the same public step is refused by auth, in the stable error shape.
    again = api.post("/auth/login/", json={"username": username, "password": password}).json()
    wrong = api.post("/auth/mfa/verify/", json={"challenge": again["challenge"], "code": "000000"})
    assert wrong.status_code in (400, 401) and "error" in wrong.json()
    assert wrong.json()["error"]["code"] != "not_authenticated"


def test_sso_providers_are_listed_without_a_token_but_mfa_settings_are_not(suite: Suite):
    providers = httpx.get(f"{GATEWAY}/auth/oidc/providers/", timeout=10)
    assert providers.status_code == 200, providers.text
    settings = httpx.get(f"{GATEWAY}/auth/mfa/", timeout=10)
    assert settings.status_code == 401
    assert settings.json()["error"]["code"] == "not_authenticated"
