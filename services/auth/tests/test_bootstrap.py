"""The first super administrator of a fresh installation."""

from __future__ import annotations

import pytest
from soc_auth.testing import MIGRATIONS, auth_settings, drop_database, running
from soc_auth.user import bootstrap
from soc_shared.db import migrate
from soc_shared.provision import provision_database

FRESH_DB = "soc_test_auth_bootstrap"


async def test_generated_bootstrap_password_is_never_logged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    provision_database(FRESH_DB, fresh=True)
    settings = auth_settings(
        db_name=FRESH_DB, admin_username="root-admin", admin_password=None, consumers_enabled=False
    )
    migrate(settings, MIGRATIONS)
    generated = "Generated-Secret-Value-0123456789"
    monkeypatch.setattr(bootstrap.secrets, "token_urlsafe", lambda n: generated)
    async with running(settings) as service:
        response = await service.login("root-admin", generated)
        assert response.status_code == 200
        assert response.json()["user"]["role"] == "SUPER_ADMIN"
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "generated random password" in text and "root-admin" in text
    assert generated not in text
    # A second start finds the super admin and leaves it alone.
    async with running(settings) as service:
        assert (await service.login("root-admin", generated)).status_code == 200
    drop_database(FRESH_DB)
