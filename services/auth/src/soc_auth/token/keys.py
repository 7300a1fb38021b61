"""The signing keys: Ed25519 private keys sealed at rest, one active, retired ones still published
until every token they signed has expired."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)
from loguru import logger
from soc_shared.crypto import Sealer
from soc_shared.security import TokenVerifier, generate_signing_key, public_jwk, sign_token
from sqlalchemy import insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.config import Settings
from soc_auth.database import utcnow
from soc_auth.token.models import SigningKeyRead, signing_key

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('soc_auth.signing_key'))"


def _aad(kid: str) -> str:
    return f"signing_key:{kid}"


@dataclass(frozen=True)
class _Key:
    kid: str
    jwk: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None


class KeyRing:
    """The active private key (to sign) and every still-valid public key (to verify and publish)."""

    def __init__(self, settings: Settings, sealer: Sealer) -> None:
        self.settings = settings
        self.sealer = sealer
        self._active_kid: str | None = None
        self._private: Ed25519PrivateKey | None = None
        self._keys: list[_Key] = []
        self.verifier: TokenVerifier = TokenVerifier.from_keys(
            {"keys": []}, settings.jwt_issuer, settings.jwt_audience
        )
        self.loaded_at = 0.0

    @property
    def active_kid(self) -> str:
        if self._active_kid is None:
            raise RuntimeError("signing keys are not loaded")
        return self._active_kid

    def knows(self, kid: str) -> bool:
        return any(k.kid == kid for k in self._keys)

    def sign(self, claims: dict[str, Any]) -> str:
        if self._private is None or self._active_kid is None:
            raise RuntimeError("signing keys are not loaded")
        return sign_token(self._private, self._active_kid, claims)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk for k in self._keys]}

    def describe(self) -> list[SigningKeyRead]:
        return [
            SigningKeyRead(
                kid=k.kid,
                algorithm="EdDSA",
                created_at=k.created_at,
                retired_at=k.retired_at,
                active=k.kid == self._active_kid,
            )
            for k in self._keys
        ]

    # --- persistence -----------------------------------------------------------------------------------

    def _validity(self) -> timedelta:
        # A retired key must verify every token it signed: the longest-lived is a refresh token.
        return timedelta(
            seconds=max(self.settings.refresh_token_ttl_seconds, self.settings.access_token_ttl_seconds) + 60
        )

    async def load(self, session: AsyncSession, *, create_if_missing: bool = True) -> None:
        rows = await self._rows(session)
        if create_if_missing and not any(r.retired_at is None for r in rows):
            await session.execute(text(_LOCK))
            rows = await self._rows(session)
            if not any(r.retired_at is None for r in rows):
                await self._insert_new(session)
                rows = await self._rows(session)
        active = [r for r in rows if r.retired_at is None]
        if not active:
            raise RuntimeError("no active signing key")
        current = max(active, key=lambda r: r.created_at)
        if current.kid != self._active_kid:
            sealed = self.sealer.open(current.private_key_sealed, _aad(current.kid))
            private = load_der_private_key(sealed, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise RuntimeError(f"signing key {current.kid} is not an Ed25519 key")
            self._private = private
            self._active_kid = current.kid
        self._keys = [_Key(r.kid, dict(r.public_jwk), r.created_at, r.retired_at) for r in rows]
        self.verifier = TokenVerifier.from_keys(
            self.jwks(), self.settings.jwt_issuer, self.settings.jwt_audience
        )
        self.loaded_at = time.monotonic()

    async def rotate(self, session: AsyncSession) -> list[str]:
        """Retire the active key(s) and make a new one active; returns the retired kids
        (call :meth:`load` once the transaction has committed)."""
        await session.execute(text(_LOCK))
        retired = (
            (
                await session.execute(
                    update(signing_key)
                    .where(signing_key.c.retired_at.is_(None))
                    .values(retired_at=utcnow())
                    .returning(signing_key.c.kid)
                )
            )
            .scalars()
            .all()
        )
        kid = await self._insert_new(session)
        logger.info("signing key rotated: {} active, retired {}", kid, ", ".join(retired) or "none")
        return list(retired)

    async def _rows(self, session: AsyncSession) -> list[Any]:
        oldest = utcnow() - self._validity()
        return list(
            (
                await session.execute(
                    select(signing_key)
                    .where(or_(signing_key.c.retired_at.is_(None), signing_key.c.retired_at > oldest))
                    .order_by(signing_key.c.created_at)
                )
            ).all()
        )

    async def _insert_new(self, session: AsyncSession) -> str:
        private, kid = generate_signing_key()
        der = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        await session.execute(
            insert(signing_key).values(
                kid=kid,
                algorithm="EdDSA",
                public_jwk=public_jwk(private, kid),
                private_key_sealed=self.sealer.seal(der, _aad(kid)),
                created_at=utcnow(),
            )
        )
        logger.info("new signing key {}", kid)
        return kid
