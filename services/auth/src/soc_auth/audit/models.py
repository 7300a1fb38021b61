"""Every login attempt, successful or not."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    String,
    Table,
    Uuid,
    func,
)

from soc_auth.database import metadata

login_attempt = Table(
    "login_attempt",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("username", String(255), nullable=False),
    Column("user_id", Uuid),
    Column("client_ip", String(64)),
    Column("user_agent", String(512)),
    Column("outcome", String(16), nullable=False),
    Column("method", String(16), nullable=False),
    Column("reason", String(64)),
    Column("endpoint", String(16), nullable=False, server_default="login"),
    CheckConstraint("outcome IN ('succeeded', 'failed')", name="outcome"),
)
Index("ix_login_attempt_at", login_attempt.c.at)
Index("ix_login_attempt_username_at", func.lower(login_attempt.c.username), login_attempt.c.at)
Index("ix_login_attempt_user_id_at", login_attempt.c.user_id, login_attempt.c.at)


class LoginAttemptRead(BaseModel):
    id: int
    at: datetime
    username: str
    user_id: uuid.UUID | None
    client_ip: str | None
    user_agent: str | None
    outcome: Literal["succeeded", "failed"]
    method: Literal["local", "ldap", "oidc", "mfa"]
    reason: str | None
    endpoint: str


class LoginAttemptList(BaseModel):
    items: list[LoginAttemptRead]
    total: int
    limit: int
    offset: int
