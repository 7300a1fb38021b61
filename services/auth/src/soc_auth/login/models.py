"""Login requests and the brute-force counters (per account and per client address)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Column, DateTime, Integer, String, Table

from soc_auth.database import metadata
from soc_auth.user.models import UserRead

login_throttle = Table(
    "login_throttle",
    metadata,
    # "user:<id>", "name:<login name>" (no such local user) or "ip:<address>".
    Column("key", String(320), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("first_failure_at", DateTime(timezone=True), nullable=False),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
)


class LoginRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    username: str = Field(
        min_length=1,
        max_length=254,
        validation_alias=AliasChoices("username", "email", "login"),
        description="user name, e-mail address or user@domain",
    )
    password: str = Field(min_length=1, max_length=1024)

    @field_validator("username")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(c) < 32 for c in value):
            raise ValueError("must not contain control characters")
        return value


class LoginResponse(BaseModel):
    mfa_required: Literal[False] = False
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_expires_in: int
    user: UserRead


class ChangePasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)
