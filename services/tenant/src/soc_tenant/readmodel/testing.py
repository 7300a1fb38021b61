"""Helpers for the read model's tests and benchmark: seeding companies and mappings through the
owner role (as the control plane would), building events, waiting for the consumers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from soc_shared.db import Database, migrate
from soc_shared.events import CloudEvent, Payload, make_event

from soc_tenant.config import Settings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def migrate_schema(settings: Settings) -> None:
    migrate(settings, MIGRATIONS)


async def add_company(
    db: Database, name: str, *, is_default_sla: bool = True, sla_clock_start: str = "occurred"
) -> str:
    company_id = str(uuid.uuid4())
    async with db.session() as s:
        await s.execute(
            sa.text(
                "INSERT INTO company (id, name, is_default_sla, sla_clock_start) VALUES (:id, :name, :sla, :clock)"
            ),
            {"id": company_id, "name": name, "sla": is_default_sla, "clock": sla_clock_start},
        )
    return company_id


async def map_qradar(
    db: Database,
    company_id: str,
    integration_id: str,
    domain_id: int,
    *,
    volume_type: str = "EPS",
    volume: float = 1000,
    collectors: list[int] | None = None,
) -> None:
    import json

    async with db.session() as s:
        await s.execute(
            sa.text(
                "INSERT INTO qradar_mapping (id, company_id, integration_id, domain_id, contracted_volume_type, "
                "contracted_volume, event_collector_ids) VALUES (:id, :c, :i, :d, :t, :v, CAST(:e AS jsonb))"
            ),
            {
                "id": str(uuid.uuid4()),
                "c": company_id,
                "i": integration_id,
                "d": domain_id,
                "t": volume_type,
                "v": volume,
                "e": json.dumps(collectors or []),
            },
        )


async def map_soar(db: Database, company_id: str, integration_id: str, account: str) -> None:
    async with db.session() as s:
        await s.execute(
            sa.text(
                "INSERT INTO soar_mapping (id, company_id, integration_id, account) VALUES (:id, :c, :i, :a)"
            ),
            {"id": str(uuid.uuid4()), "c": company_id, "i": integration_id, "a": account},
        )


async def map_itsm(db: Database, company_id: str, integration_id: str, account_id: str) -> None:
    async with db.session() as s:
        await s.execute(
            sa.text(
                "INSERT INTO itsm_mapping (id, company_id, integration_id, account_id) "
                "VALUES (:id, :c, :i, :a)"
            ),
            {"id": str(uuid.uuid4()), "c": company_id, "i": integration_id, "a": account_id},
        )


def sealed_test_credentials(integration_id: str) -> str:
    """Credentials sealed with the session's keys (``SOC_SEALING_KEYS``), as the control plane
    stores them, so that key rotation and re-sealing see a well-formed value."""
    import os

    keys = os.environ.get("SOC_SEALING_KEYS")
    if not keys:
        return "sealed"
    from soc_shared.crypto import Sealer

    from soc_tenant.integrations.views import aad

    return Sealer.from_env_value(keys).seal({"access_id": "test", "secret_key": "test"}, aad(integration_id))


async def add_ti_integration(db: Database, company_id: str) -> str:
    integration_id = str(uuid.uuid4())
    async with db.session() as s:
        await s.execute(
            sa.text(
                "INSERT INTO integration (id, integration_type, subtype, instance_name, base_url, credential_kind, "
                "credentials_sealed, company_id, status) VALUES (:id, 'THREAT_INTELLIGENCE', 'CYWARE', :name, "
                "'https://cyware.example', 'SECRET_KEY_ACCESS_KEY', :sealed, :c, 'active')"
            ),
            {
                "id": integration_id,
                "name": f"cyware-{integration_id[:8]}",
                "c": company_id,
                "sealed": sealed_test_credentials(integration_id),
            },
        )
    return integration_id


async def set_company_sla(db: Database, company_id: str, level: str, tta: int, ttn: int, ttdn: int) -> None:
    async with db.session() as s:
        await s.execute(sa.text("UPDATE company SET is_default_sla = false WHERE id = :c"), {"c": company_id})
        await s.execute(
            sa.text(
                "INSERT INTO sla_company (id, company_id, level, tta_minutes, ttn_minutes, ttdn_minutes) "
                "VALUES (:id, :c, :l, :a, :n, :d)"
            ),
            {"id": str(uuid.uuid4()), "c": company_id, "l": level, "a": tta, "n": ttn, "d": ttdn},
        )


def event(
    routing_key: str,
    payload: Payload,
    integration_id: str,
    subject: str,
    *,
    version: int | str | None = None,
    vendor_tenant: str | int | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    kind = routing_key.split(".")[0]
    return make_event(
        routing_key,
        payload,
        source=f"/{kind}-ingest/test/{integration_id}",
        subject=subject,
        vendor_version=version,
        integration_id=integration_id,
        vendor_tenant=vendor_tenant,
        time=time or datetime.now(UTC),
    )


async def eventually(
    check: Callable[[], Awaitable[Any]], *, within: float = 15.0, interval: float = 0.1
) -> Any:
    """Retry ``check`` until it returns something truthy (or raise its last AssertionError)."""
    deadline = asyncio.get_running_loop().time() + within
    last: BaseException | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError("condition not met in time")
