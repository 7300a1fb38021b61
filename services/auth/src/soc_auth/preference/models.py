"""Per-user UI preferences: one JSON object per user."""

from __future__ import annotations

from typing import Any

from pydantic import RootModel
from sqlalchemy import Column, DateTime, ForeignKey, Table, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB

from soc_auth.database import metadata

user_preference = Table(
    "user_preference",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("data", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


class Preferences(RootModel[dict[str, Any]]):
    """The caller's UI preferences: any JSON object the console stores (at most
    ``preferences_max_bytes`` once encoded); ``{}`` until something was saved."""
