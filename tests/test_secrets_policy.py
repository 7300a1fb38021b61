"""Safe by default: outside `dev` no service starts on a built-in, empty or placeholder secret; it
exits non-zero naming the setting. `SOC_ENV` unset means dev only on loopback."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from soc_shared.settings import DEV_SEALING_KEYS, ServiceSettings, is_placeholder

ROOT = Path(__file__).resolve().parents[1]
SECRET_VARS = ("SOC_SEALING_KEYS", "SOC_CRYPTO_KEYS", "SOC_SERVICE_SECRET", "SOC_AMQP_URL", "SOC_ENV")


def _key() -> str:
    return "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def bare_env(monkeypatch):
    """The environment without any of the session's secrets (restored after the test)."""
    for name in list(os.environ):
        if name in SECRET_VARS or name.startswith("SOC_DB_PASSWORD_"):
            monkeypatch.delenv(name)
    return monkeypatch


class Sealing(ServiceSettings):
    db_user: str = "soc_example"
    secrets_used = ServiceSettings.secrets_used + ("sealing_keys",)


def test_dev_runs_on_the_development_values(bare_env):
    s = Sealing()
    assert s.environment == "dev"
    assert s.sealing_keys.get_secret_value() == DEV_SEALING_KEYS


@pytest.mark.parametrize("env", ["test", "prod"])
def test_outside_dev_every_built_in_secret_is_named(bare_env, env):
    bare_env.setenv("SOC_ENV", env)
    with pytest.raises(ValidationError) as err:
        Sealing()
    text = str(err.value)
    for name in ("SOC_SERVICE_SECRET", "SOC_AMQP_URL", "SOC_DB_PASSWORD_SOC_EXAMPLE", "SOC_SEALING_KEYS"):
        assert name in text
    assert "dev-service-secret" not in text  # names, never values


def test_placeholders_and_development_keys_are_refused_even_when_set(bare_env):
    bare_env.setenv("SOC_ENV", "prod")
    bare_env.setenv("SOC_SEALING_KEYS", DEV_SEALING_KEYS.split(",")[1])
    bare_env.setenv("SOC_SERVICE_SECRET", "change-me-service-secret")
    bare_env.setenv("SOC_AMQP_URL", "amqp://soc:soc@rabbitmq:5672/soc")
    bare_env.setenv("SOC_DB_PASSWORD_SOC_EXAMPLE", "soc_example")
    with pytest.raises(ValidationError) as err:
        Sealing()
    for name in ("SOC_SEALING_KEYS", "SOC_SERVICE_SECRET", "SOC_AMQP_URL", "SOC_DB_PASSWORD_SOC_EXAMPLE"):
        assert name in str(err.value)
    assert is_placeholder("") and is_placeholder("CHANGE-ME-x") and not is_placeholder("Zq3-real")


def test_real_secrets_start_in_prod(bare_env):
    bare_env.setenv("SOC_ENV", "prod")
    bare_env.setenv("SOC_SEALING_KEYS", _key())
    bare_env.setenv("SOC_SERVICE_SECRET", secrets.token_urlsafe(16))
    bare_env.setenv("SOC_AMQP_URL", f"amqp://svc:{secrets.token_urlsafe(8)}@mq:5672/soc")
    bare_env.setenv("SOC_DB_PASSWORD_SOC_EXAMPLE", secrets.token_urlsafe(8))
    s = Sealing()
    assert s.environment == "prod"
    assert s.db_password.get_secret_value() == os.environ["SOC_DB_PASSWORD_SOC_EXAMPLE"]


def test_unset_environment_is_dev_only_on_loopback(bare_env):
    assert Sealing(host="127.0.0.1").environment == "dev"
    assert Sealing(host="::1").environment == "dev"
    with pytest.raises(ValidationError, match="SOC_ENV=prod"):
        Sealing(host="0.0.0.0")
    # Explicit secrets on a public address: prod, and it starts.
    s = Sealing(
        host="0.0.0.0",
        sealing_keys=SecretStr(_key()),
        service_client_secret=SecretStr("s3cret-" + secrets.token_hex(8)),
        amqp_url=SecretStr("amqp://tenant:" + secrets.token_hex(8) + "@mq/soc"),
        db_password=SecretStr(secrets.token_hex(8)),
    )
    assert s.environment == "prod"


def _start(module: str, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in SECRET_VARS and not k.startswith("SOC_DB_PASSWORD_")
    }
    env.update({"SOC_ENV": "prod", "SOC_DB_PORT": "1", **extra})  # never reaches a database
    return subprocess.run(
        [sys.executable, "-m", module], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("module", "named"),
    [
        ("soc_tenant", ["SOC_SEALING_KEYS", "SOC_SERVICE_SECRET", "SOC_DB_PASSWORD_SOC_TENANT_APP"]),
        ("soc_siem_ingest", ["SOC_SERVICE_SECRET", "SOC_AMQP_URL", "SOC_DB_PASSWORD_SOC_SIEM_INGEST"]),
        ("soc_auth", ["SOC_SEALING_KEYS", "SOC_ADMIN_PASSWORD", "SOC_AUTH_LDAP_BIND_PASSWORD"]),
    ],
)
def test_services_exit_non_zero_naming_the_setting(module, named):
    result = _start(module, {"SOC_ADMIN_PASSWORD": "change-me-admin-password"})
    assert result.returncode == 2, result.stderr[-2000:]
    for name in named:
        assert name in result.stderr
    assert "Traceback" not in result.stderr
