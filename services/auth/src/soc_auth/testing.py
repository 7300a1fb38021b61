"""Test support for the auth service: settings for tests, the app running in-process with its
lifespan, and the directory-group mappings of the demo companies."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from soc_shared.bus import Bus
from soc_shared.events import CompanyChanged, DirectoryGroupRole, make_event

from soc_auth.config import Settings
from soc_auth.main import create_app

MIGRATIONS = Path(__file__).parent / "migrations"
ADMIN_PASSWORD = "Bootstrap-Adm1n-Pass!"
ACME = str(uuid.uuid5(uuid.NAMESPACE_DNS, "acme.example"))
GLOBEX = str(uuid.uuid5(uuid.NAMESPACE_DNS, "globex.example"))
STRONG = "Correct-Horse-42-battery"
# The auth tests use a database and a vhost of their own: a concurrent test session elsewhere
# (which recreates the shared soc_test ones) must not pull the floor from under them.
TEST_DB = os.environ.get("SOC_TEST_DB", "soc_test") + "_auth"
TEST_VHOST = TEST_DB


def isolated_targets() -> dict[str, Any]:
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    password = os.environ.get("SOC_AMQP_PASSWORD", "soc")
    return {"db_name": TEST_DB, "amqp_url": SecretStr(f"amqp://soc:{password}@{hostport}/{TEST_VHOST}")}


def provision_isolated() -> None:
    from soc_shared.provision import provision_database, provision_vhost

    provision_database(TEST_DB, fresh=True)
    provision_vhost(TEST_VHOST, fresh=True)


def drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql
    from soc_shared.provision import admin_dsn

    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_isolated() -> None:
    drop_database(TEST_DB)
    base = os.environ.get("SOC_AMQP_MGMT_URL", "http://127.0.0.1:15672")
    auth = ("soc", os.environ.get("SOC_AMQP_PASSWORD", "soc"))
    httpx.delete(f"{base}/api/vhosts/{TEST_VHOST}", auth=auth, timeout=30)


def auth_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        # Cheap hashes: the tests exercise the flow, not the cost.
        "argon2_time_cost": 1,
        "argon2_memory_cost_kib": 8192,
        "argon2_parallelism": 1,
        "login_delay_after": 3,
        "login_delay_base_seconds": 0.3,
        "login_lock_after": 5,
        "login_lock_seconds": 1.5,
        "login_ip_delay_after": 10_000,
        "login_ip_block_after": 20_000,
        "admin_username": "admin",
        "admin_password": SecretStr(ADMIN_PASSWORD),
        "ldap_urls": ["ldap://127.0.0.1:3389"],
        # The demo OpenLDAP speaks plain LDAP on loopback: the explicit opt-in.
        "ldap_allow_plain": True,
        "ldap_admin_group": "cn=soc-admins,ou=groups,dc=soc,dc=local",
        "ldap_read_only_admin_group": "cn=soc-read-only-admins,ou=groups,dc=soc,dc=local",
        **isolated_targets(),
    }
    return Settings(**{**base, **overrides})


@dataclass
class Running:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def state(self) -> Any:
        return self.app.state

    async def login(
        self, username: str, password: str, *, ip: str = "192.0.2.10", path: str = "/auth/login/"
    ) -> httpx.Response:
        return await self.client.post(
            path,
            json={"username": username, "password": password},
            headers={"X-Forwarded-For": ip, "User-Agent": "pytest"},
        )

    async def token(self, username: str, password: str, **kw: Any) -> str:
        response = await self.login(username, password, **kw)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def headers(self, username: str, password: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(username, password)}"}


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            yield Running(app, client)


async def wait_for(predicate: Callable[[], Any], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def publish_company(
    bus: Bus,
    company_id: str,
    name: str,
    groups: list[tuple[str, str, list[str]]],
    *,
    active: bool = True,
    deleted: bool = False,
) -> None:
    payload = CompanyChanged(
        company_id=company_id,
        name=name,
        active=active,
        deleted=deleted,
        changed_at=datetime.now(UTC),
        directory_groups=[
            DirectoryGroupRole(ldap_group=g, tenant_role=r, permissions=p) for g, r, p in groups
        ],
    )
    await bus.publish([make_event("tenant.company.changed", payload, source="/tenant", subject=company_id)])


ACME_GROUPS = [
    ("acme-soc-users", "TENANT_USER", ["DASHBOARD", "REPORTS"]),
    # A full DN works as well as a bare group name.
    (
        "cn=acme-soc-admins,ou=groups,dc=soc,dc=local",
        "TENANT_ADMIN",
        ["DASHBOARD", "REPORTS", "ASSETS", "THREAT_INTELLIGENCE"],
    ),
]
GLOBEX_GROUPS = [
    ("globex-soc-users", "TENANT_USER", ["DASHBOARD", "THREAT_INTELLIGENCE"]),
    ("globex-soc-admins", "TENANT_ADMIN", ["DASHBOARD", "REPORTS", "ASSETS", "THREAT_INTELLIGENCE"]),
]


async def create_local_user(
    auth: Running,
    admin_headers: dict[str, str],
    username: str,
    *,
    password: str = STRONG,
    kind: str = "tenant",
    role: str | None = None,
    company_id: str | None = ACME,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "username": username,
        "password": password,
        "kind": kind,
        "full_name": username.title(),
    }
    if role:
        body["role"] = role
    if kind == "tenant":
        body["company_id"] = company_id
    response = await auth.client.post("/admin/users/", json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    return response.json()
