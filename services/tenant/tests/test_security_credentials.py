"""Sealed credentials: key rotation with re-seal, and credentials bound to the origin they were
entered for (a new scheme, host or port needs them again)."""

from __future__ import annotations

import base64
import os
import secrets
import uuid

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from soc_shared.crypto import Sealer
from soc_tenant.__main__ import reseal
from soc_tenant.control.integrations import aad
from soc_tenant.control.tables import integration


def qradar_body(**overrides) -> dict:
    return {
        "subtype": "IBM_QRADAR",
        "instance_name": f"QRadar {uuid.uuid4().hex[:8]}",
        "base_url": "https://qradar.example.com",
        "credential_kind": "API_KEY",
        "credentials": {"api_key": f"tok{uuid.uuid4().hex}"},
        **overrides,
    }


async def create(client, headers, body) -> dict:
    r = await client.post("/integration/", json=body, headers=headers(kind="admin"))
    assert r.status_code == 201, r.text
    return r.json()


async def sealed_of(app, integration_id: str) -> str:
    async with app.state.db.session() as session:
        return (
            await session.execute(
                sa.select(integration.c.credentials_sealed).where(integration.c.id == integration_id)
            )
        ).scalar_one()


async def test_rotation_reseals_every_credential_with_the_new_active_key(app, client, headers, settings):
    body = qradar_body()
    created = await create(client, headers, body)
    old_token = await sealed_of(app, created["id"])
    session_keys = os.environ["SOC_SEALING_KEYS"]
    new_key = f"rot{secrets.token_hex(2)}:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    rotated = settings.model_copy(update={"sealing_keys": SecretStr(f"{session_keys},!{new_key}")})
    reseal(rotated)
    token = await sealed_of(app, created["id"])
    new_sealer = Sealer.from_env_value(rotated.sealing_keys.get_secret_value())
    assert token != old_token and token.split(".")[1] == new_key.split(":")[0]
    assert new_sealer.open_json(token, aad(created["id"]))["api_key"] == body["credentials"]["api_key"]
    # The old key alone no longer opens it: once every service re-sealed, the old key can go.
    with pytest.raises(Exception, match="unknown key"):
        Sealer.from_env_value(session_keys).open_json(token, aad(created["id"]))
    # The running app still has the session key only: seal it back for the tests that follow.
    async with app.state.db.session() as session:
        await session.execute(
            sa.update(integration)
            .where(integration.c.id == created["id"])
            .values(credentials_sealed=app.state.sealer.seal(body["credentials"], aad(created["id"])))
        )
        await session.commit()
