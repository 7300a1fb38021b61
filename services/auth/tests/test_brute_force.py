"""Brute-force protection: a growing delay, then a temporary lock, per account and per address."""

from __future__ import annotations

import asyncio

from soc_auth.testing import ADMIN_PASSWORD, STRONG, Running, auth_settings, create_local_user, running


async def test_lockout_grows_then_locks_then_expires(auth: Running, admin_headers: dict) -> None:
    await create_local_user(auth, admin_headers, "lockme")
    ip = "198.51.100.7"
    for _ in range(3):
        assert (await auth.login("lockme", "wrong-password", ip=ip)).status_code == 401
    slowed = await auth.login("lockme", "wrong-password", ip=ip)
    assert slowed.status_code == 429
    assert slowed.json()["error"]["code"] == "too_many_attempts"
    assert int(slowed.headers["Retry-After"]) >= 1
    await asyncio.sleep(0.35)
    assert (await auth.login("lockme", "wrong-password", ip=ip)).status_code == 401
    await asyncio.sleep(0.65)
    assert (await auth.login("lockme", "wrong-password", ip=ip)).status_code == 401  # the 5th: locks
    locked = await auth.login("lockme", STRONG, ip=ip)  # even the right password
    assert locked.status_code == 423
    assert locked.json()["error"]["code"] == "account_locked"
    assert int(locked.headers["Retry-After"]) >= 1
    assert (await auth.login("lockme", STRONG, ip="198.51.100.8")).status_code == 423  # from anywhere
    await asyncio.sleep(1.6)
    assert (await auth.login("lockme", STRONG, ip=ip)).status_code == 200


async def test_lock_applies_to_unknown_names_too_so_it_reveals_nothing(auth: Running) -> None:
    ip = "198.51.100.9"
    answers = []
    for _ in range(6):
        answers.append((await auth.login("no-such-person", "guess", ip=ip)).status_code)
        await asyncio.sleep(0.05)
    assert 401 in answers and (429 in answers or 423 in answers)


async def test_one_address_trying_many_accounts_is_blocked(migrated: None) -> None:
    settings = auth_settings(
        login_ip_delay_after=100, login_ip_block_after=6, login_ip_block_seconds=30, consumers_enabled=False
    )
    async with running(settings) as service:
        ip = "203.0.113.50"
        for n in range(6):
            assert (await service.login(f"spray-{n}", "Password123!", ip=ip)).status_code == 401
        blocked = await service.login("admin", ADMIN_PASSWORD, ip=ip)
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "too_many_attempts"
        assert int(blocked.headers["Retry-After"]) > 1
        assert (await service.login("admin", ADMIN_PASSWORD, ip="203.0.113.51")).status_code == 200


async def test_disabled_and_deleted_accounts_cannot_sign_in(auth: Running, admin_headers: dict) -> None:
    disabled = await create_local_user(auth, admin_headers, "disabled-user")
    deleted = await create_local_user(auth, admin_headers, "deleted-user")
    assert (await auth.login("disabled-user", STRONG)).status_code == 200
    await auth.client.patch(
        f"/admin/users/{disabled['id']}/", json={"is_active": False}, headers=admin_headers
    )
    assert (
        await auth.client.delete(f"/admin/users/{deleted['id']}/", headers=admin_headers)
    ).status_code == 204
    for name in ("disabled-user", "deleted-user"):
        response = await auth.login(name, STRONG, ip="198.51.100.20")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"
