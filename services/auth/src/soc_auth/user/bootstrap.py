"""The first super administrator, so that a fresh installation can be administered."""

from __future__ import annotations

import secrets
from typing import Any

from loguru import logger
from sqlalchemy import text

from soc_auth.database import utcnow
from soc_auth.login.flows import set_password_hash
from soc_auth.outbox.service import transaction
from soc_auth.password import policy
from soc_auth.role.models import RoleName
from soc_auth.user import service as users
from soc_auth.user.models import AuthSource


async def ensure_super_admin(state: Any) -> None:
    """Create ``SOC_ADMIN_USERNAME`` as super admin when no active super admin exists.

    The password is ``SOC_ADMIN_PASSWORD``; without one a random password is generated and never
    shown anywhere — set a real one with ``python -m soc_auth set-password <username>``."""
    settings = state.settings
    async with transaction(state) as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('soc_auth.bootstrap'))"))
        if await users.count_super_admins(session) > 0:
            return
        username = settings.admin_username.strip() or "admin"
        provided = settings.admin_password.get_secret_value() if settings.admin_password else None
        password = provided or secrets.token_urlsafe(24)
        if provided and policy.problems(provided, username=username, min_length=settings.password_min_length):
            logger.warning(
                "SOC_ADMIN_PASSWORD does not meet the password policy; it is used for the bootstrap "
                "account anyway: change it after the first sign-in"
            )
        password_hash = await state.passwords.hash(password)
        existing = await users.get_by_username(session, username)
        values: dict[str, Any] = {
            "is_admin": True,
            "is_tenant": False,
            "is_read_only": False,
            "is_active": True,
            "is_deleted": False,
            "deleted_at": None,
            "company_id": None,
            "permissions": [],
            "disabled_by_company": False,
        }
        if existing is None:
            await users.insert_user(
                session,
                {
                    **values,
                    "username": username,
                    "email": settings.admin_email,
                    "full_name": "Super administrator",
                    "auth_source": AuthSource.LOCAL,
                    "password_hash": password_hash,
                    "password_changed_at": utcnow(),
                },
                RoleName.SUPER_ADMIN,
            )
            action = "created"
        else:
            if existing.auth_source != AuthSource.LOCAL:
                values["auth_source"] = AuthSource.LOCAL
            await users.update_user(session, existing.id, values, role_name=RoleName.SUPER_ADMIN)
            await set_password_hash(session, existing.id, password_hash)
            action = "restored"
    if provided:
        logger.info(
            "no super administrator existed: {} super administrator {!r} with SOC_ADMIN_PASSWORD",
            action,
            username,
        )
    else:
        logger.warning(
            "no super administrator existed and SOC_ADMIN_PASSWORD is not set: {} {!r} with a generated random "
            "password (not shown); set one with `python -m soc_auth set-password {}`",
            action,
            username,
            username,
        )


async def set_password(state: Any, username: str, password: str) -> bool:
    """Operator recovery: set a local account's password (policy enforced) and end its sessions."""
    async with transaction(state) as session:
        record = await users.get_by_username(session, username)
        if record is None or record.auth_source != AuthSource.LOCAL:
            return False
        policy.check(password, username=record.username, min_length=state.settings.password_min_length)
        await set_password_hash(session, record.id, await state.passwords.hash(password))
    return True
