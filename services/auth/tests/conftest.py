"""Auth tests run against the real servers the root conftest prepared: PostgreSQL (a fresh
database), RabbitMQ (a fresh vhost) and the demo OpenLDAP directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from soc_auth.company.models import directory_group
from soc_auth.testing import (
    ACME,
    ACME_GROUPS,
    ADMIN_PASSWORD,
    GLOBEX,
    GLOBEX_GROUPS,
    MIGRATIONS,
    Running,
    auth_settings,
    drop_isolated,
    provision_isolated,
    publish_company,
    running,
    wait_for,
)
from soc_shared.db import migrate
from sqlalchemy import select


@pytest.fixture(scope="session")
def migrated() -> Iterator[None]:
    provision_isolated()
    migrate(auth_settings(), MIGRATIONS)
    yield
    drop_isolated()


@pytest.fixture(scope="session")
async def auth(migrated: None) -> AsyncIterator[Running]:
    """The service under test, with Acme and Globex mapped to their directory groups through
    real ``tenant.company.changed`` events."""
    async with running(auth_settings()) as service:
        bus = service.state.bus
        await publish_company(bus, ACME, "Acme Corp", ACME_GROUPS)
        await publish_company(bus, GLOBEX, "Globex", GLOBEX_GROUPS)

        async def mapped() -> bool:
            async with service.state.db.session() as session:
                rows = (await session.execute(select(directory_group.c.company_id))).scalars().all()
            return {ACME, GLOBEX} <= set(rows)

        await wait_for(mapped)
        yield service


@pytest.fixture(scope="session")
async def admin_headers(auth: Running) -> dict[str, str]:
    return await auth.headers("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="session")
async def service_headers(auth: Running) -> dict[str, str]:
    response = await auth.client.post(
        "/auth/internal/token",
        json={
            "client_id": "tenant",
            "client_secret": auth.state.settings.service_client_secret.get_secret_value(),
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
