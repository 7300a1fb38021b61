"""TOTP (RFC 6238, through pyotp) and recovery codes: enrolment, checking a code without replays,
and the short-lived challenges that stand between the password step and the tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from datetime import timedelta
from typing import Any

import pyotp
import segno
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.database import utcnow
from soc_auth.mfa.models import MfaEnrolment, MfaStatus, mfa_challenge, mfa_factor, mfa_recovery_code

STEP = 30
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


class CodeRefused(Exception):
    """A code that does not open the factor; ``reason`` is for the audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def _aad(user_id: uuid.UUID) -> str:
    return f"mfa:{user_id}"


def _normalise(code: str) -> str:
    return "".join(c for c in code.strip().lower() if c not in " -")


def new_recovery_codes(count: int) -> list[str]:
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


async def factor(session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> Any:
    query = select(mfa_factor).where(mfa_factor.c.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


def policy_requires(settings: Any, record: Any) -> bool:
    return settings.mfa_policy == "everyone" or (settings.mfa_policy == "admins" and bool(record.is_admin))


async def status(session: AsyncSession, settings: Any, record: Any) -> MfaStatus:
    row = await factor(session, record.id)
    left = (
        await session.execute(
            select(func.count())
            .select_from(mfa_recovery_code)
            .where(mfa_recovery_code.c.user_id == record.id, mfa_recovery_code.c.used_at.is_(None))
        )
    ).scalar_one()
    return MfaStatus(
        enabled=bool(row and row.confirmed_at),
        pending=bool(row and not row.confirmed_at),
        confirmed_at=row.confirmed_at if row else None,
        recovery_codes_left=left if row and row.confirmed_at else 0,
        required=policy_requires(settings, record),
    )


async def requirement(session: AsyncSession, settings: Any, record: Any) -> str | None:
    """``verify`` (a confirmed factor), ``enrol`` (the policy wants one, there is none) or None."""
    row = await factor(session, record.id)
    if row is not None and row.confirmed_at is not None:
        return "verify"
    return "enrol" if policy_requires(settings, record) else None


async def start_enrolment(session: AsyncSession, state: Any, record: Any) -> MfaEnrolment:
    """A new pending factor (replacing a pending one) and fresh recovery codes."""
    settings = state.settings
    secret = pyotp.random_base32()
    await session.execute(delete(mfa_factor).where(mfa_factor.c.user_id == record.id))
    await session.execute(delete(mfa_recovery_code).where(mfa_recovery_code.c.user_id == record.id))
    await session.execute(
        insert(mfa_factor).values(
            user_id=record.id, secret_sealed=state.keys.sealer.seal(secret, _aad(record.id)), last_used_step=0
        )
    )
    codes = await replace_recovery_codes(session, settings, record.id)
    uri = pyotp.TOTP(secret, interval=STEP).provisioning_uri(
        name=record.username, issuer_name=settings.mfa_issuer
    )
    return MfaEnrolment(
        secret=secret,
        provisioning_uri=uri,
        qr_svg=segno.make(uri, error="m").svg_data_uri(scale=4),
        recovery_codes=codes,
        issuer=settings.mfa_issuer,
    )


async def replace_recovery_codes(session: AsyncSession, settings: Any, user_id: uuid.UUID) -> list[str]:
    codes = new_recovery_codes(settings.mfa_recovery_codes)
    await session.execute(delete(mfa_recovery_code).where(mfa_recovery_code.c.user_id == user_id))
    await session.execute(
        insert(mfa_recovery_code),
        [{"user_id": user_id, "code_hash": digest(_normalise(c))} for c in codes],
    )
    return codes


async def check_code(
    session: AsyncSession, state: Any, user_id: uuid.UUID, code: str, *, pending: bool = False
) -> str:
    """``totp`` or ``recovery_code`` when ``code`` opens the user's factor (confirmed, or the
    pending one with ``pending``); raises CodeRefused(invalid_code | replayed_code | no_factor).
    A TOTP code is accepted one step either side of now, and only for a step later than the
    last accepted one (no replay inside its window)."""
    row = await factor(session, user_id, for_update=True)
    if row is None or (row.confirmed_at is None) != pending:
        raise CodeRefused("no_factor" if row is None or not pending else "already_enabled")
    value = _normalise(code)
    if len(value) == 6 and value.isdigit():
        secret = state.keys.sealer.open(row.secret_sealed, _aad(user_id)).decode()
        totp = pyotp.TOTP(secret, interval=STEP)
        now_step = int(time.time()) // STEP
        for step in (now_step - 1, now_step, now_step + 1):
            if hmac.compare_digest(totp.generate_otp(step), value):
                if step <= row.last_used_step:
                    raise CodeRefused("replayed_code")
                await session.execute(
                    update(mfa_factor).where(mfa_factor.c.user_id == user_id).values(last_used_step=step)
                )
                return "totp"
        raise CodeRefused("invalid_code")
    if pending:
        raise CodeRefused("invalid_code")  # enrolment is confirmed with the authenticator only
    used = await session.execute(
        update(mfa_recovery_code)
        .where(
            mfa_recovery_code.c.user_id == user_id,
            mfa_recovery_code.c.code_hash == digest(value),
            mfa_recovery_code.c.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .returning(mfa_recovery_code.c.id)
    )
    if used.first() is None:
        raise CodeRefused("invalid_code")
    return "recovery_code"


async def confirm(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(mfa_factor).where(mfa_factor.c.user_id == user_id).values(confirmed_at=utcnow())
    )


async def remove(session: AsyncSession, user_id: uuid.UUID) -> bool:
    gone = await session.execute(delete(mfa_factor).where(mfa_factor.c.user_id == user_id))
    await session.execute(delete(mfa_recovery_code).where(mfa_recovery_code.c.user_id == user_id))
    await session.execute(delete(mfa_challenge).where(mfa_challenge.c.user_id == user_id))
    return bool(getattr(gone, "rowcount", 0))


async def create_challenge(
    session: AsyncSession,
    settings: Any,
    record: Any,
    *,
    purpose: str,
    method: str,
    endpoint: str,
    username: str,
) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await session.execute(
        insert(mfa_challenge).values(
            token_hash=digest(token),
            user_id=record.id,
            purpose=purpose,
            method=method,
            endpoint=endpoint[:16],
            username=username[:255],
            created_at=now,
            expires_at=now + timedelta(seconds=settings.mfa_challenge_ttl_seconds),
        )
    )
    return token


async def lock_challenge(session: AsyncSession, token: str) -> Any:
    """The live challenge (not used, not expired), locked; None otherwise."""
    row = (
        await session.execute(
            select(mfa_challenge).where(mfa_challenge.c.token_hash == digest(token)).with_for_update()
        )
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    return row


async def prune(session: AsyncSession) -> None:
    await session.execute(
        delete(mfa_challenge).where(mfa_challenge.c.expires_at < utcnow() - timedelta(hours=1))
    )
