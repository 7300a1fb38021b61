"""Secrets generated on first run and kept in an owner-only env file (``NAME=value`` lines).

``make up`` keeps them in ``.local/secrets.env``; compose's ``secrets`` step writes them to a volume
that every container mounts (``SOC_SECRETS_FILE``). A value already in the file is never
replaced, so data sealed or passwords set by an earlier run keep working; a value set in the
environment wins over the file.

``python -m soc_shared.local_secrets --file PATH [--compose DIR]`` creates or completes the file
(``--compose`` also writes the PostgreSQL admin password file and the RabbitMQ default-user
configuration next to it, and generates a broker user password and a service-client secret per
service).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from soc_shared.provision import BUS_RIGHTS, SERVICE_SCHEMAS, TENANT_APP_ROLE, bus_user

__all__ = ["apply_secrets_file", "ensure_secrets_file", "generate"]


def _key_config(extra_keys: str = "") -> str:
    kid = "k" + datetime.now(UTC).strftime("%Y%m%d")
    active = f"!{kid}:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    return ",".join(part for part in (active, extra_keys) if part)


def generate(*, compose: bool = False, retired_keys: str = "") -> dict[str, str]:
    """Fresh random values for every secret the suite needs (``make up`` keeps the admin password
    in a file of its own, .local/admin-password)."""
    values = {
        "SOC_SEALING_KEYS": _key_config(retired_keys),
        "SOC_SERVICE_SECRET": secrets.token_urlsafe(32),
    }
    if compose:
        values["SOC_ADMIN_PASSWORD"] = secrets.token_urlsafe(14)
        values["SOC_PG_ADMIN_PASSWORD"] = secrets.token_urlsafe(24)
        values["SOC_AMQP_PASSWORD"] = secrets.token_urlsafe(24)
        values["SOC_AUTH_LDAP_BIND_PASSWORD"] = "svc-portal-pass"  # the demo directory's (deploy/ldap)
        for role in [f"soc_{s}" for s in SERVICE_SCHEMAS] + [TENANT_APP_ROLE]:
            values[f"SOC_DB_PASSWORD_{role.upper()}"] = secrets.token_urlsafe(24)
        # One broker user per service (provision creates them with their topic permissions) and
        # one service-client secret per service (auth knows them all).
        client_secrets = {}
        for service in BUS_RIGHTS:
            env = service.upper().replace("-", "_")
            values[f"SOC_AMQP_PASSWORD_{env}"] = secrets.token_urlsafe(24)
            client_secrets[service] = values[f"SOC_{env}_SERVICE_CLIENT_SECRET"] = secrets.token_urlsafe(32)
        client_secrets["gateway"] = values["SOC_GATEWAY_SERVICE_CLIENT_SECRET"] = secrets.token_urlsafe(32)
        del client_secrets["auth"]
        values["SOC_AUTH_SERVICE_CLIENT_SECRETS"] = json.dumps(client_secrets, separators=(",", ":"))
    return values


def read_secrets_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() and not name.lstrip().startswith("#"):
                values[name.strip()] = value.strip()
    return values


def ensure_secrets_file(path: Path, *, compose: bool = False, retired_keys: str = "") -> dict[str, str]:
    """The file's values, after adding any missing one (created 0600, never rewritten otherwise)."""
    existing = read_secrets_file(path)
    missing = {
        k: v for k, v in generate(compose=compose, retired_keys=retired_keys).items() if k not in existing
    }
    if missing or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as out:
            if not existing:
                out.write(
                    "# Generated on first run; keep it secret and keep it (sealed data needs the keys).\n"
                )
            for name, value in missing.items():
                out.write(f"{name}={value}\n")
    os.chmod(path, 0o600)
    return {**existing, **missing}


def apply_secrets_file(path: str | os.PathLike[str] | None = None) -> None:
    """Put the file's values in the environment where not already set (``SOC_SECRETS_FILE``)."""
    target = path or os.environ.get("SOC_SECRETS_FILE")
    if not target:
        return
    for name, value in read_secrets_file(Path(target)).items():
        os.environ.setdefault(name, value)
    host = os.environ.get("SOC_AMQP_HOSTPORT", "rabbitmq:5672")
    for service in BUS_RIGHTS:
        env = service.upper().replace("-", "_")
        password = os.environ.get(f"SOC_AMQP_PASSWORD_{env}")
        if password:  # each service connects as its own broker user (soc_shared.provision)
            os.environ.setdefault(f"SOC_{env}_AMQP_URL", f"amqp://{bus_user(service)}:{password}@{host}/soc")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m soc_shared.local_secrets")
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--compose", type=Path, help="also write pg-admin-password and rabbitmq.conf here")
    args = parser.parse_args()
    values = ensure_secrets_file(args.file, compose=args.compose is not None)
    if args.compose is not None:
        pg = args.compose / "pg-admin-password"
        pg.write_text(values["SOC_PG_ADMIN_PASSWORD"])
        os.chmod(pg, 0o644)  # read by the postgres image's own user at its first start
        conf = args.compose / "rabbitmq.conf"
        conf.write_text(
            f"default_user = soc\ndefault_pass = {values['SOC_AMQP_PASSWORD']}\ndefault_vhost = soc\n"
            "loopback_users.guest = true\n"
        )
        os.chmod(conf, 0o644)
    print(f"secrets in {args.file} ({len(values)} values)")  # noqa: T201


if __name__ == "__main__":
    main()
