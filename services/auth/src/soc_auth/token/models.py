"""Signing keys (sealed Ed25519 private keys) and refresh tokens (stored hashed, in families)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from sqlalchemy import Column, DateTime, ForeignKey, Index, LargeBinary, String, Table, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB

from soc_auth.database import metadata

signing_key = Table(
    "signing_key",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False, server_default="EdDSA"),
    Column("public_jwk", JSONB, nullable=False),
    # soc_shared.crypto.Sealer token of the PKCS#8 private key, bound to "signing_key:<kid>".
    Column("private_key_sealed", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("retired_at", DateTime(timezone=True)),
)

refresh_token = Table(
    "refresh_token",
    metadata,
    # sha256 of the whole token: a database leak yields nothing presentable.
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("jti", String(64), nullable=False),
    Column("family_id", Uuid, nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("spent_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_reason", String(32)),
    Column("client_ip", String(64)),
    Column("user_agent", String(512)),
)
Index("ix_refresh_token_family_id", refresh_token.c.family_id)
Index("ix_refresh_token_user_id", refresh_token.c.user_id)
Index("ix_refresh_token_expires_at", refresh_token.c.expires_at)

# A user's access tokens issued before `not_before` are refused by every verifier (the list is
# served on /auth/internal/revocations and carried on auth.user.changed).
token_revocation = Table(
    "token_revocation",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("reason", String(32), nullable=False),
)
Index("ix_token_revocation_not_before", token_revocation.c.not_before)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_expires_in: int


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # "refresh" is the original product's (simplejwt) field name.
    refresh_token: str = Field(
        min_length=1, max_length=4096, validation_alias=AliasChoices("refresh_token", "refresh")
    )


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    refresh_token: str | None = Field(
        default=None, max_length=4096, validation_alias=AliasChoices("refresh_token", "refresh")
    )
    all_sessions: bool = Field(
        default=False, description="with a valid access token: end every session of the caller"
    )


class ServiceTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=64)
    client_secret: str = Field(min_length=1, max_length=1024)


class ServiceTokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


class SigningKeyRead(BaseModel):
    kid: str
    algorithm: str
    created_at: datetime
    retired_at: datetime | None
    active: bool


class RotationResult(BaseModel):
    active: SigningKeyRead
    retired: list[str]


class PublicJwk(BaseModel):
    """One Ed25519 public key (RFC 8037) that verifies access tokens."""

    kty: str = Field(description="`OKP`")
    crv: str = Field(description="`Ed25519`")
    x: str = Field(description="the public key, base64url")
    kid: str = Field(description="the key id tokens name in their header")
    use: str = Field(description="`sig`")
    alg: str = Field(description="`EdDSA`")


class Jwks(BaseModel):
    """The active signing key and the retired ones whose tokens may still be valid."""

    keys: list[PublicJwk]
