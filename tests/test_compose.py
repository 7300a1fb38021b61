"""No Docker engine runs here, so the compose file is checked against the code: every service's
command, port and environment must be what the code actually reads."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest
import yaml
from soc_simulators.__main__ import VENDORS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]

# compose service → (module, settings class path, env prefix, DESIGN port)
SUITE = {
    "auth": ("soc_auth", "soc_auth.config:Settings", "SOC_AUTH_", 8001),
    "tenant": ("soc_tenant", "soc_tenant.config:Settings", "SOC_TENANT_", 8002),
    "siem-ingest": ("soc_siem_ingest", "soc_siem_ingest.config:Settings", "SOC_SIEM_INGEST_", 8011),
    "soar-ingest": ("soc_soar_ingest", "soc_soar_ingest.config:Settings", "SOC_SOAR_INGEST_", 8012),
    "itsm-ingest": ("soc_itsm_ingest", "soc_itsm_ingest.config:Settings", "SOC_ITSM_INGEST_", 8013),
    "threatintel": ("soc_threatintel", "soc_threatintel.config:Settings", "SOC_THREATINTEL_", 8014),
    "gateway": ("soc_gateway", "soc_gateway.config:Settings", "SOC_GATEWAY_", 8000),
}
# Suite-wide variables read by soc_shared (settings defaults, provisioning) or by the auth bootstrap.
SUITE_WIDE = {
    "SOC_ENV",
    "SOC_DB_HOST",
    "SOC_DB_PORT",
    "SOC_DB_NAME",
    "SOC_AMQP_URL",
    "SOC_AMQP_HOSTPORT",
    "SOC_SECRETS_FILE",
    "SOC_EGRESS_ALLOW",
    "SOC_AUTH_URL",
    "SOC_SERVICE_SECRET",
    "SOC_LDAP_URLS",
    "SOC_ADMIN_USERNAME",
    "SOC_ADMIN_PASSWORD",
    "SOC_PG_ADMIN_PASSWORD",
    "SOC_AMQP_MGMT_URL",
    "PORT_HEALTH",
}


def _settings_class(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", sorted(SUITE))
def test_service_command_port_and_env_match_the_code(name):
    module, settings_path, prefix, port = SUITE[name]
    service = SERVICES[name]
    assert service["command"] == ["python", "-m", module]
    assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} has no __main__"
    settings_cls = _settings_class(settings_path)
    assert settings_cls.model_config["env_prefix"] == prefix
    assert settings_cls.model_fields["port"].default == port
    env = service["environment"]
    assert int(env[f"{prefix}PORT"]) == port
    assert int(env["PORT_HEALTH"]) == port
    assert env[f"{prefix}HOST"] == "0.0.0.0"
    fields = {f.upper() for f in settings_cls.model_fields}
    for key in env:
        if key in SUITE_WIDE:
            continue
        assert key.startswith(prefix) and key[len(prefix) :] in fields, f"{name}: {key} is read by nothing"
    assert "healthcheck" in service


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_simulators_run_with_their_ports(vendor):
    service = SERVICES[f"sim-{vendor}"]
    cmd = service["command"]
    assert cmd[:4] == ["python", "-m", "soc_simulators", vendor]
    assert int(cmd[cmd.index("--port") + 1]) == VENDORS[vendor]
    assert importlib.util.find_spec(f"soc_simulators.{vendor}") is not None


def test_every_service_uses_the_one_dockerfile_and_infrastructure_has_health_checks():
    for name in SUITE:
        assert SERVICES[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    for infra in ("postgres", "rabbitmq", "openldap"):
        assert "healthcheck" in SERVICES[infra]
    assert SERVICES["gateway"]["ports"] == ["127.0.0.1:8000:8000"]


def test_no_secret_is_shipped_in_the_compose_file():
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    assert "change-me" not in text and "soc:soc" not in text and "soc_admin:" not in text
    for name, service in SERVICES.items():
        env = service.get("environment", {}) or {}
        for key in env:
            assert not any(w in key for w in ("PASSWORD", "SECRET", "KEYS")) or key.endswith("_FILE"), (
                f"{name}: {key} is written in the compose file"
            )
        if name in SUITE:
            assert env["SOC_SECRETS_FILE"] == "/run/soc-secrets/secrets.env"
            assert "secrets:/run/soc-secrets:ro" in service["volumes"]
    assert SERVICES["secrets"]["command"][:3] == ["python", "-m", "soc_shared.local_secrets"]
    # The login throttle sees the client: auth believes X-Forwarded-For from the gateway's fixed address.
    gateway_ip = SERVICES["gateway"]["networks"]["soc"]["ipv4_address"]
    assert SERVICES["auth"]["environment"]["SOC_AUTH_TRUSTED_PROXIES"] == gateway_ip
    assert SERVICES["tenant"]["environment"]["SOC_TENANT_TRUSTED_PROXIES"] == gateway_ip  # the audit trail
    # Vendor egress: the simulators are admitted by name, nothing else on the private network.
    from soc_shared.egress import EgressPolicy

    policy = EgressPolicy.from_env({"SOC_ENV": "prod", **SERVICES["siem-ingest"]["environment"]})
    assert policy.host_admitted("sim-qradar") and not policy.address_admitted("172.28.0.5")


def test_secrets_file_is_generated_once_owner_only(tmp_path):
    import os
    import stat

    from soc_shared.local_secrets import ensure_secrets_file, read_secrets_file
    from soc_shared.settings import is_placeholder

    path = tmp_path / "local" / "secrets.env"
    first = ensure_secrets_file(path, compose=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ensure_secrets_file(path, compose=True) == first == read_secrets_file(path)
    assert first["SOC_SERVICE_SECRET"] != ensure_secrets_file(tmp_path / "other.env")["SOC_SERVICE_SECRET"]
    for name in ("SOC_SEALING_KEYS", "SOC_SERVICE_SECRET", "SOC_ADMIN_PASSWORD", "SOC_AMQP_PASSWORD"):
        assert not is_placeholder(first[name])
