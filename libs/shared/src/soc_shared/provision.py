"""Creates, idempotently, what the suite needs inside the servers: one database, one schema and one
login role per service (each role can touch only its own schema), the tenant service's second,
row-level-security-bound role, and the RabbitMQ vhost with the suite's user.

``python -m soc_shared.provision [--db soc] [--vhost soc] [--fresh]``
"""

from __future__ import annotations

import argparse
import os
import re

import httpx
import psycopg
from psycopg import sql

SERVICE_SCHEMAS = ("auth", "tenant", "siem_ingest", "soar_ingest", "itsm_ingest", "threatintel")
# The tenant service's API connects as this role: not the owner of the tables, no BYPASSRLS, so
# PostgreSQL's row-level security applies to every query it makes.
TENANT_APP_ROLE = "soc_tenant_app"


def admin_dsn(dbname: str = "postgres") -> str:
    host = os.environ.get("SOC_DB_HOST", "127.0.0.1")
    port = os.environ.get("SOC_DB_PORT", "55432")
    user = os.environ.get("SOC_PG_ADMIN_USER", "soc_admin")
    password = os.environ.get("SOC_PG_ADMIN_PASSWORD", "soc_admin")
    return f"host={host} port={port} dbname={dbname} user={user} password={password}"


def role_password(role: str) -> str:
    """Per-role password: ``SOC_DB_PASSWORD_<ROLE>`` or, for local runs, the role's name."""
    return os.environ.get(f"SOC_DB_PASSWORD_{role.upper()}", role)


def provision_database(db: str, *, fresh: bool = False) -> None:
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))
        for role in [f"soc_{s}" for s in SERVICE_SCHEMAS] + [TENANT_APP_ROLE]:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(role_password(role))
                    )
                )
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), sql.Identifier(role))
            )
    with psycopg.connect(admin_dsn(db), autocommit=True) as conn:
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for schema in SERVICE_SCHEMAS:
            role = f"soc_{schema}"
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                    sql.Identifier(schema), sql.Identifier(role)
                )
            )
            conn.execute(
                sql.SQL("ALTER ROLE {} SET search_path = {}").format(
                    sql.Identifier(role), sql.Identifier(schema)
                )
            )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA tenant TO {}").format(sql.Identifier(TENANT_APP_ROLE)))
        conn.execute(
            sql.SQL("ALTER ROLE {} SET search_path = tenant").format(sql.Identifier(TENANT_APP_ROLE))
        )
        # Tables the tenant service creates later are readable and writable by the app role; RLS
        # policies, not grants, decide which rows.
        conn.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE soc_tenant IN SCHEMA tenant "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
            ).format(sql.Identifier(TENANT_APP_ROLE))
        )
        conn.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE soc_tenant IN SCHEMA tenant "
                "GRANT USAGE, SELECT ON SEQUENCES TO {}"
            ).format(sql.Identifier(TENANT_APP_ROLE))
        )


def provision_vhost(vhost: str, *, fresh: bool = False) -> None:
    base = os.environ.get("SOC_AMQP_MGMT_URL", "http://127.0.0.1:15672")
    user = os.environ.get("SOC_AMQP_ADMIN_USER", "soc")
    auth = (user, os.environ.get("SOC_AMQP_PASSWORD", "soc"))
    with httpx.Client(base_url=base, auth=auth, timeout=30, trust_env=False) as client:
        if fresh:
            r = client.delete(f"/api/vhosts/{vhost}")
            if r.status_code not in (204, 404):
                r.raise_for_status()
        client.put(f"/api/vhosts/{vhost}", json={"description": "SOC Portal"}).raise_for_status()
        client.put(
            f"/api/permissions/{vhost}/{user}", json={"configure": ".*", "write": ".*", "read": ".*"}
        ).raise_for_status()


# One broker user per service: what it may publish (topic permissions on soc.events/soc.commands,
# RabbitMQ topic authorisation) and which routing keys its queues may bind. A service's queues
# and their dead-letter queues are named "<service>.*".
_ALL_DATA = r"siem\..*|soar\..*|itsm\..*|ti\..*|ingest\..*|tenant\..*"
BUS_RIGHTS: dict[str, tuple[str, str]] = {
    # service: (routing keys it may publish, routing keys its queues may bind)
    # Every service that changes something on a person's request publishes its audit records.
    "auth": (r"auth\..*|audit\.recorded", r"tenant\.company\.changed"),
    # The tenant service replays dead letters of the data it reads (never auth.*), publishes its
    # audit trail, and files the other services' audit records and the sign-ins in its audit store.
    "tenant": (
        _ALL_DATA + r"|audit\.recorded",
        r"siem\..*|soar\..*|itsm\..*|ti\..*|ingest\..*|tenant\..*|auth\.user\.changed"
        r"|auth\.login\..*|audit\.recorded",
    ),
    "siem-ingest": (r"siem\..*|ingest\.sync\.reported", r"tenant\.integration\.changed"),
    "soar-ingest": (
        r"soar\..*|ingest\.sync\.reported",
        r"tenant\.integration\.changed|soar\.action\.requested",
    ),
    "itsm-ingest": (
        r"itsm\.account\..*|itsm\.ticket\.upserted|itsm\.action\.completed|ingest\.sync\.reported",
        r"tenant\.integration\.changed|itsm\.ticket\.create|itsm\.action\.requested|soar\.incident\.upserted",
    ),
    "threatintel": (r"ti\..*|ingest\.sync\.reported", r"tenant\.integration\.changed"),
}


def bus_user(service: str, prefix: str = "soc-") -> str:
    return f"{prefix}{service}"


def provision_bus_users(vhost: str, passwords: dict[str, str], *, prefix: str = "soc-") -> dict[str, str]:
    """Create (or update) one broker user per service in ``passwords`` with permissions on
    ``vhost`` limited to its own queues and its own routing keys; answers service → user name."""
    base = os.environ.get("SOC_AMQP_MGMT_URL", "http://127.0.0.1:15672")
    admin = (os.environ.get("SOC_AMQP_ADMIN_USER", "soc"), os.environ.get("SOC_AMQP_PASSWORD", "soc"))
    users: dict[str, str] = {}
    with httpx.Client(base_url=base, auth=admin, timeout=30, trust_env=False) as client:
        for service, password in passwords.items():
            write_keys, read_keys = BUS_RIGHTS[service]
            user = bus_user(service, prefix)
            queues = re.escape(service) + r"\..*"
            resources = rf"^({queues}|soc\.(events|commands|dlx))$"
            client.put(f"/api/users/{user}", json={"password": password, "tags": ""}).raise_for_status()
            client.put(
                f"/api/permissions/{vhost}/{user}",
                json={"configure": resources, "write": resources, "read": resources},
            ).raise_for_status()
            for exchange in ("soc.events", "soc.commands"):
                client.put(
                    f"/api/topic-permissions/{vhost}/{user}",
                    json={"exchange": exchange, "write": f"^({write_keys})$", "read": f"^({read_keys})$"},
                ).raise_for_status()
            # Dead-letter queues bind soc.dlx under their own queue's name.
            client.put(
                f"/api/topic-permissions/{vhost}/{user}",
                json={"exchange": "soc.dlx", "write": "^$", "read": f"^{queues}$"},
            ).raise_for_status()
            users[service] = user
    return users


def main() -> None:
    from soc_shared.local_secrets import apply_secrets_file

    apply_secrets_file()
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=os.environ.get("SOC_DB_NAME", "soc"))
    parser.add_argument("--vhost", default="soc")
    parser.add_argument("--fresh", action="store_true", help="drop and recreate (tests)")
    args = parser.parse_args()
    provision_database(args.db, fresh=args.fresh)
    provision_vhost(args.vhost, fresh=args.fresh)
    # Per-service broker users when their passwords are configured (compose generates them).
    passwords = {
        service: os.environ[f"SOC_AMQP_PASSWORD_{service.upper().replace('-', '_')}"]
        for service in BUS_RIGHTS
        if os.environ.get(f"SOC_AMQP_PASSWORD_{service.upper().replace('-', '_')}")
    }
    if passwords:
        provision_bus_users(args.vhost, passwords)


if __name__ == "__main__":
    main()
