"""TOTP MFA: enrolment, the challenge step, replay protection, recovery codes, throttling,
policy-driven enrolment at sign-in and an administrator's reset."""

from __future__ import annotations

import time
from typing import Any

import pyotp
from soc_auth.audit.models import login_attempt
from soc_auth.mfa.models import mfa_challenge
from soc_auth.testing import STRONG, Running, auth_settings, create_local_user, running
from sqlalchemy import select, update


def _code(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def _enrolled(
    auth: Running, admin_headers: dict, username: str, **kw: Any
) -> tuple[dict, str, list[str]]:
    user = await create_local_user(auth, admin_headers, username, **kw)
    headers = await auth.headers(username, STRONG)
    enrolment = await auth.client.post("/auth/mfa/enrol/", headers=headers)
    assert enrolment.status_code == 201, enrolment.text
    body = enrolment.json()
    assert body["provisioning_uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["provisioning_uri"]
    assert body["qr_svg"].startswith("data:image/svg+xml")
    assert len(body["recovery_codes"]) == 10
    # Not on until the first code is confirmed.
    assert (await auth.client.get("/auth/mfa/", headers=headers)).json()["pending"] is True
    confirmed = await auth.client.post(
        "/auth/mfa/confirm/", json={"code": _code(body["secret"])}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["enabled"] is True and confirmed.json()["recovery_codes_left"] == 10
    return user, body["secret"], body["recovery_codes"]


async def _challenge(
    auth: Running, username: str, ip: str = "192.0.2.90", path: str = "/auth/login/"
) -> dict:
    response = await auth.login(username, STRONG, ip=ip, path=path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_required"] is True and "access_token" not in body
    return body


async def test_sign_in_with_totp_and_no_replay(auth: Running, admin_headers: dict) -> None:
    user, secret, _ = await _enrolled(auth, admin_headers, "mfa-tina")
    first = await _challenge(auth, "mfa-tina")
    assert (first["purpose"], first["methods"]) == ("verify", ["totp", "recovery_code"])
    # The confirmation used the current step; the next step's code is still inside the window.
    code = _code(secret, 1)
    done = await auth.client.post("/auth/mfa/verify/", json={"challenge": first["challenge"], "code": code})
    assert done.status_code == 200, done.text
    assert done.json()["mfa_required"] is False and done.json()["user"]["id"] == user["id"]
    # The challenge is spent, and the code cannot be replayed on a new challenge.
    again = await auth.client.post("/auth/mfa/verify/", json={"challenge": first["challenge"], "code": code})
    assert again.status_code == 401 and again.json()["error"]["code"] == "invalid_challenge"
    second = await _challenge(auth, "mfa-tina")
    replay = await auth.client.post(
        "/auth/mfa/verify/", json={"challenge": second["challenge"], "code": code}
    )
    assert replay.status_code == 401, replay.text
    assert replay.json()["error"]["code"] == "invalid_mfa_code"
    assert replay.json()["error"]["details"]["reason"] == "replayed_code"
    async with auth.state.db.session() as session:
        rows = (
            await session.execute(
                select(login_attempt.c.method, login_attempt.c.outcome, login_attempt.c.reason)
                .where(login_attempt.c.username == "mfa-tina", login_attempt.c.endpoint != "password")
                .order_by(login_attempt.c.id)
            )
        ).all()
    assert [tuple(r) for r in rows][-4:] == [
        ("local", "succeeded", "mfa_required"),
        ("mfa", "succeeded", "totp"),
        ("local", "succeeded", "mfa_required"),
        ("mfa", "failed", "replayed_code"),
    ]


async def test_recovery_code_works_once(auth: Running, admin_headers: dict) -> None:
    _, _, codes = await _enrolled(auth, admin_headers, "mfa-rick")
    first = await _challenge(auth, "mfa-rick")
    ok = await auth.client.post(
        "/auth/mfa/verify/", json={"challenge": first["challenge"], "code": codes[0].upper()}
    )
    assert ok.status_code == 200, ok.text
    second = await _challenge(auth, "mfa-rick")
    used = await auth.client.post(
        "/auth/mfa/verify/", json={"challenge": second["challenge"], "code": codes[0]}
    )
    assert used.status_code == 401 and used.json()["error"]["details"]["reason"] == "invalid_code"
    headers = {"Authorization": f"Bearer {ok.json()['access_token']}"}
    assert (await auth.client.get("/auth/mfa/", headers=headers)).json()["recovery_codes_left"] == 9


async def test_wrong_codes_are_throttled_with_the_password_lockout(
    auth: Running, admin_headers: dict
) -> None:
    await _enrolled(auth, admin_headers, "mfa-walt")
    challenge = (await _challenge(auth, "mfa-walt", ip="192.0.2.91"))["challenge"]
    statuses = []
    for _ in range(4):
        response = await auth.client.post(
            "/auth/mfa/verify/", json={"challenge": challenge, "code": "000000"}
        )
        statuses.append((response.status_code, response.json()["error"]["code"]))
    # Three failures (login_delay_after = 3 in tests) then the account's delay applies to codes too.
    assert statuses[:3] == [(401, "invalid_mfa_code")] * 3
    assert statuses[3] == (429, "too_many_attempts")


async def test_challenge_spent_after_max_attempts_expired_or_forged(migrated: None) -> None:
    settings = auth_settings(mfa_challenge_max_attempts=2, login_delay_after=50, login_lock_after=60)
    async with running(settings) as service:
        admin = await service.headers("admin", auth_settings().admin_password.get_secret_value())
        await _enrolled(service, admin, "mfa-max")
        challenge = (await _challenge(service, "mfa-max", ip="192.0.2.92"))["challenge"]
        for left in (1, 0):
            wrong = await service.client.post(
                "/auth/mfa/verify/", json={"challenge": challenge, "code": "123456"}
            )
            assert wrong.json()["error"]["details"]["attempts_left"] == left
        spent = await service.client.post(
            "/auth/mfa/verify/", json={"challenge": challenge, "code": "123456"}
        )
        assert spent.json()["error"]["code"] == "invalid_challenge"
        expiring = (await _challenge(service, "mfa-max", ip="192.0.2.92"))["challenge"]
        async with service.state.db.session() as session:
            await session.execute(update(mfa_challenge).values(expires_at=mfa_challenge.c.created_at))
        expired = await service.client.post(
            "/auth/mfa/verify/", json={"challenge": expiring, "code": "123456"}
        )
        assert expired.status_code == 401 and expired.json()["error"]["code"] == "invalid_challenge"
        forged = await service.client.post(
            "/auth/mfa/verify/", json={"challenge": "x" * 43, "code": "123456"}
        )
        assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_challenge"


async def test_policy_makes_admins_enrol_at_sign_in_and_admin_reset(
    auth: Running, admin_headers: dict
) -> None:
    await create_local_user(auth, admin_headers, "mfa-adele", kind="admin", role="ADMIN")
    async with running(auth_settings(mfa_policy="admins", consumers_enabled=False)) as service:
        # A tenant user is not concerned by the "admins" policy.
        await create_local_user(service, admin_headers, "mfa-tom")
        assert "access_token" in (await service.login("mfa-tom", STRONG)).json()
        step = await _challenge(service, "mfa-adele", path="/auth/admin/login/")
        assert step["purpose"] == "enrol" and step["methods"] == ["totp"]
        # Without enrolling, there is nothing to verify against.
        early = await service.client.post(
            "/auth/mfa/verify/", json={"challenge": step["challenge"], "code": "123456"}
        )
        assert early.status_code == 401
        enrolment = await service.client.post(
            "/auth/mfa/challenge/enrol/", json={"challenge": step["challenge"]}
        )
        assert enrolment.status_code == 200, enrolment.text
        secret = enrolment.json()["secret"]
        done = await service.client.post(
            "/auth/mfa/verify/", json={"challenge": step["challenge"], "code": _code(secret)}
        )
        assert done.status_code == 200, done.text
        headers = {"Authorization": f"Bearer {done.json()['access_token']}"}
        mine = (await service.client.get("/auth/mfa/", headers=headers)).json()
        assert mine["enabled"] and mine["required"]
        # Required by the policy: not switched off by its owner.
        off = await service.client.post(
            "/auth/mfa/disable/", json={"code": _code(secret, 1)}, headers=headers
        )
        assert off.status_code == 409 and off.json()["error"]["code"] == "mfa_required_by_policy"
        user_id = done.json()["user"]["id"]
        # The super admin resets it (lost phone): enrolment at the next sign-in again, audited.
        reset = await service.client.delete(f"/admin/users/{user_id}/mfa/", headers=admin_headers)
        assert reset.status_code == 204, reset.text
        assert (await _challenge(service, "mfa-adele", path="/auth/admin/login/"))["purpose"] == "enrol"
        async with service.state.db.session() as session:
            row = (
                await session.execute(
                    select(login_attempt)
                    .where(login_attempt.c.endpoint == "mfa_reset")
                    .order_by(login_attempt.c.id.desc())
                )
            ).first()
        assert row.username == "mfa-adele" and row.reason == "reset_by:admin"
        again = await service.client.delete(f"/admin/users/{user_id}/mfa/", headers=admin_headers)
        assert again.status_code == 404


async def test_owner_turns_mfa_off_with_a_code(auth: Running, admin_headers: dict) -> None:
    _, secret, codes = await _enrolled(auth, admin_headers, "mfa-olga")
    challenge = (await _challenge(auth, "mfa-olga"))["challenge"]
    tokens = (
        await auth.client.post("/auth/mfa/verify/", json={"challenge": challenge, "code": codes[1]})
    ).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    wrong = await auth.client.post("/auth/mfa/disable/", json={"code": "999999"}, headers=headers)
    assert wrong.status_code == 401
    off = await auth.client.post("/auth/mfa/disable/", json={"code": _code(secret, 1)}, headers=headers)
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert "access_token" in (await auth.login("mfa-olga", STRONG, ip="192.0.2.93")).json()
