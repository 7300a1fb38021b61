"""``python -m soc_auth`` serves (after migrating); ``python -m soc_auth set-password <user>``
sets a local account's password (read from SOC_NEW_PASSWORD or prompted);
``python -m soc_auth republish-login-audit [--since ISO]`` queues the stored sign-in attempts again
for the audit store (the running service's outbox relay sends them; the store files each once)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

import uvicorn
from soc_shared.db import migrate
from soc_shared.runtime import tls_options, tune_gc
from soc_shared.settings import load_settings

from soc_auth.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _set_password(settings: Settings, username: str, password: str) -> bool:
    from types import SimpleNamespace

    from soc_auth.main import init_state
    from soc_auth.user.bootstrap import set_password

    state = SimpleNamespace()
    init_state(state, settings)
    try:
        return await set_password(state, username, password)
    finally:
        await state.db.dispose()


async def _republish(settings: Settings, since: str | None) -> int:
    from datetime import datetime

    from soc_shared.db import Database

    from soc_auth.audit.service import republish

    db = Database.from_settings(settings)
    try:
        return await republish(db, since=datetime.fromisoformat(since) if since else None)
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m soc_auth")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="migrate, then serve (default)")
    sub.add_parser("migrate", help="upgrade the auth schema and exit")
    set_pw = sub.add_parser("set-password", help="set a local account's password and end its sessions")
    set_pw.add_argument("username")
    republish = sub.add_parser(
        "republish-login-audit",
        help="queue the stored sign-in attempts again for the audit store (each is filed once)",
    )
    republish.add_argument("--since", help="only attempts at or after this ISO 8601 time")
    sub.add_parser(
        "reseal",
        help="re-seal the stored signing keys and MFA secrets with the active key of SOC_SEALING_KEYS",
    )
    args = parser.parse_args()
    settings = load_settings(Settings)
    if args.command == "migrate":
        migrate(settings, MIGRATIONS)
        return
    if args.command == "reseal":
        from soc_shared.crypto import Sealer, reseal_column

        from soc_auth.token.keys import _aad
        from soc_auth.token.models import signing_key

        migrate(settings, MIGRATIONS)
        sealer = Sealer.from_env_value(settings.sealing_keys.get_secret_value())
        done, total, unreadable = reseal_column(
            settings.database_url(), signing_key, "kid", "private_key_sealed", _aad, sealer
        )
        print(
            f"re-sealed {done} of {total} signing keys with key {sealer.active_kid!r}; {len(unreadable)} do not open"
        )  # noqa: T201
        from soc_auth.mfa.models import mfa_factor

        done, total, unreadable = reseal_column(
            settings.database_url(), mfa_factor, "user_id", "secret_sealed", lambda uid: f"mfa:{uid}", sealer
        )
        print(
            f"re-sealed {done} of {total} MFA secrets with key {sealer.active_kid!r}; {len(unreadable)} do not open"
        )  # noqa: T201
        from soc_auth.oidc.models import oidc_session

        done, total, unreadable = reseal_column(
            settings.database_url(),
            oidc_session,
            "user_id",
            "refresh_token_sealed",
            lambda uid: f"oidc:{uid}",
            sealer,
        )
        print(f"re-sealed {done} of {total} identity-provider refresh tokens; {len(unreadable)} do not open")  # noqa: T201
        return
    if args.command == "republish-login-audit":
        print(f"queued {asyncio.run(_republish(settings, args.since))} sign-in attempts")  # noqa: T201
        return
    if args.command == "set-password":
        password = os.environ.get("SOC_NEW_PASSWORD") or getpass.getpass(
            f"new password for {args.username}: "
        )
        ok = asyncio.run(_set_password(settings, args.username, password))
        print("password changed" if ok else f"no local account named {args.username!r}")  # noqa: T201
        sys.exit(0 if ok else 1)
    if settings.migrate_on_start:
        migrate(settings, MIGRATIONS)
    from soc_auth.main import create_app

    app = create_app(settings)
    tune_gc()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        **tls_options(settings),
    )


if __name__ == "__main__":
    main()
