"""TOTP factors (RFC 6238), one-time recovery codes and the short-lived login challenges."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Uuid,
    func,
)

from soc_auth.database import metadata

mfa_factor = Table(
    "mfa_factor",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # The TOTP secret, sealed with the suite's sealing keys (bound to the user id).
    Column("secret_sealed", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # NULL while enrolment waits for the first code.
    Column("confirmed_at", DateTime(timezone=True)),
    # The last accepted time step: a code of this step or an earlier one is a replay.
    Column("last_used_step", BigInteger, nullable=False, server_default="0"),
)

mfa_recovery_code = Table(
    "mfa_recovery_code",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hash", LargeBinary(32), nullable=False),
    Column("used_at", DateTime(timezone=True)),
)

mfa_challenge = Table(
    "mfa_challenge",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(16), nullable=False),  # verify | enrol
    Column("method", String(16), nullable=False),  # how the first step signed in: local | ldap
    Column("endpoint", String(16), nullable=False),
    Column("username", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_mfa_challenge_expires_at", "expires_at"),
)

Purpose = Literal["verify", "enrol"]


class MfaChallengeResponse(BaseModel):
    """The first sign-in step's answer for an account with MFA: no tokens yet."""

    mfa_required: Literal[True] = True
    challenge: str = Field(
        description="present it to POST /auth/mfa/verify/ (and /auth/mfa/challenge/enrol/)"
    )
    purpose: Purpose = Field(
        description="verify: ask for a code; enrol: the policy requires MFA and the account has none yet — "
        "call POST /auth/mfa/challenge/enrol/ first, show the QR code, then verify the first code"
    )
    expires_in: int = Field(description="seconds the challenge stays valid")
    methods: list[Literal["totp", "recovery_code"]]


class MfaEnrolment(BaseModel):
    """Shown once: the secret, its provisioning URI and QR code, and the recovery codes."""

    secret: str = Field(description="base32 TOTP secret (for manual entry)")
    provisioning_uri: str = Field(description="otpauth://totp/... (RFC 6238: SHA1, 6 digits, 30 s)")
    qr_svg: str = Field(description="the provisioning URI as a QR code: a data:image/svg+xml URI")
    recovery_codes: list[str] = Field(description="one-time codes, each usable once instead of a TOTP code")
    issuer: str
    digits: int = 6
    period: int = 30


class MfaStatus(BaseModel):
    enabled: bool = Field(description="a confirmed TOTP factor")
    pending: bool = Field(description="enrolment started, waiting for the first code")
    confirmed_at: datetime | None = None
    recovery_codes_left: int
    required: bool = Field(description="the MFA policy requires MFA for this account")


class MfaCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=6, max_length=32, description="a 6-digit TOTP code or a recovery code")


class MfaVerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge: str = Field(min_length=10, max_length=128)
    code: str = Field(min_length=6, max_length=32, description="a 6-digit TOTP code or a recovery code")


class MfaChallengeRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge: str = Field(min_length=10, max_length=128)
