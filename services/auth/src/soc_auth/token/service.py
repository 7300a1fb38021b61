"""Issuing, rotating and revoking tokens."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from soc_shared.security import InvalidToken, Principal
from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.config import Settings
from soc_auth.database import utcnow
from soc_auth.token.keys import KeyRing
from soc_auth.token.models import TokenPair, refresh_token, token_revocation

# An unknown kid makes a replica re-read the keys (another replica rotated), at most this often.
_RELOAD_INTERVAL = 5.0


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _standard(settings: Settings, ttl: int, typ: str) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    now = now_ms // 1000
    return {
        "jti": uuid.uuid4().hex,
        "iat": now,
        "iat_ms": now_ms,
        "nbf": now,
        "exp": now + ttl,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "typ": typ,
    }


def access_token(
    ring: KeyRing, settings: Settings, identity: dict[str, Any], *, ttl: int | None = None
) -> str:
    return ring.sign({**identity, **_standard(settings, ttl or settings.access_token_ttl_seconds, "access")})


def service_token(ring: KeyRing, settings: Settings, client_id: str) -> str:
    from soc_auth.config import SERVICE_SCOPES

    identity = {
        "sub": client_id,
        "username": client_id,
        "kind": "service",
        "roles": ["SERVICE"],
        "permissions": [],
        "company_id": None,
        "read_only": False,
        "scope": " ".join(SERVICE_SCOPES.get(client_id, [])),
    }
    return access_token(ring, settings, identity, ttl=settings.service_token_ttl_seconds)


async def issue_pair(
    session: AsyncSession,
    ring: KeyRing,
    settings: Settings,
    identity: dict[str, Any],
    *,
    family_id: uuid.UUID | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> TokenPair:
    family_id = family_id or uuid.uuid4()
    claims = {
        "sub": identity["sub"],
        "username": identity["username"],
        "kind": identity["kind"],
        "fam": str(family_id),
        **_standard(settings, settings.refresh_token_ttl_seconds, "refresh"),
    }
    refresh = ring.sign(claims)
    await session.execute(
        insert(refresh_token).values(
            token_hash=token_hash(refresh),
            jti=claims["jti"],
            family_id=family_id,
            user_id=uuid.UUID(identity["sub"]),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            client_ip=client_ip[:64] if client_ip else None,
            user_agent=user_agent[:512] if user_agent else None,
        )
    )
    return TokenPair(
        # sid: the session (refresh-token family), so the sessions list can mark the caller's own.
        access_token=access_token(ring, settings, {**identity, "sid": str(family_id)}),
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_seconds,
        refresh_expires_in=settings.refresh_token_ttl_seconds,
    )


async def verify(state: Any, token: str, *, expected_type: str = "access") -> Principal:
    """Verify with the service's own keys; a kid this replica has not loaded yet (a rotation made
    by another replica) makes it re-read the keys once."""
    ring: KeyRing = state.keys
    try:
        principal = await ring.verifier.verify(token, expected_type=expected_type)
    except InvalidToken:
        if not await reload_for_unknown_kid(state, token):
            raise
        principal = await ring.verifier.verify(token, expected_type=expected_type)
    revocations = getattr(state, "revocations", None)
    if expected_type == "access" and revocations is not None and revocations.revoked(principal):
        raise InvalidToken()
    return principal


async def reload_for_unknown_kid(state: Any, token: str) -> bool:
    ring: KeyRing = state.keys
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return False
    if not isinstance(kid, str) or ring.knows(kid) or time.monotonic() - ring.loaded_at < _RELOAD_INTERVAL:
        return False
    await reload_keys(state)
    return ring.knows(kid)


async def reload_keys(state: Any) -> None:
    async with state.db.session() as session:
        await state.keys.load(session, create_if_missing=False)
    state.token_verifier = state.keys.verifier


@dataclass
class RefreshOutcome:
    pair: TokenPair | None = None
    error: str | None = None  # invalid_token | token_reused | token_revoked


async def lock_refresh_row(session: AsyncSession, token: str) -> Any:
    return (
        await session.execute(
            select(refresh_token).where(refresh_token.c.token_hash == token_hash(token)).with_for_update()
        )
    ).first()


async def mark_spent(session: AsyncSession, token: str) -> None:
    await session.execute(
        update(refresh_token).where(refresh_token.c.token_hash == token_hash(token)).values(spent_at=utcnow())
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, reason: str) -> int:
    result = await session.execute(
        update(refresh_token)
        .where(refresh_token.c.family_id == family_id, refresh_token.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    return getattr(result, "rowcount", 0) or 0


async def revoke_user(session: AsyncSession, user_id: uuid.UUID, reason: str) -> int:
    """End every session of the user: refresh tokens revoked, and access tokens issued until now
    refused everywhere within seconds (the per-user not-before, on the bus and on
    /auth/internal/revocations)."""
    now = utcnow()
    result = await session.execute(
        update(refresh_token)
        .where(
            refresh_token.c.user_id == user_id,
            refresh_token.c.revoked_at.is_(None),
            refresh_token.c.expires_at > now,
        )
        .values(revoked_at=now, revoked_reason=reason)
    )
    await session.execute(
        pg_insert(token_revocation)
        .values(user_id=user_id, not_before=now, reason=reason[:32])
        .on_conflict_do_update(
            index_elements=[token_revocation.c.user_id],
            set_={"not_before": now, "reason": reason[:32]},
            where=token_revocation.c.not_before < now,
        )
    )
    from soc_auth.user import service as users

    record = await users.get(session, user_id)
    if record is not None:
        await users.publish_changed(session, record, tokens_not_before=now)
    return getattr(result, "rowcount", 0) or 0


async def revocations_since(session: AsyncSession, since: datetime) -> list[tuple[uuid.UUID, datetime]]:
    rows = await session.execute(
        select(token_revocation.c.user_id, token_revocation.c.not_before)
        .where(token_revocation.c.not_before > since)
        .order_by(token_revocation.c.not_before)
    )
    return [(r.user_id, r.not_before) for r in rows]


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def prune(session: AsyncSession) -> None:
    from sqlalchemy import delete

    await session.execute(
        delete(refresh_token).where(refresh_token.c.expires_at < utcnow() - timedelta(days=1))
    )
    # Older than any access token could live: nothing left to refuse.
    await session.execute(
        delete(token_revocation).where(token_revocation.c.not_before < utcnow() - timedelta(days=2))
    )
