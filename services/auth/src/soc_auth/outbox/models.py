"""Transactional outbox: an event is written in the same transaction as the change it reports,
and a relay publishes it with broker confirms afterwards, so a change is never committed without
its event (nor an event sent for a change that rolled back)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Identity, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

from soc_auth.database import metadata

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("routing_key", String(128), nullable=False),
    Column("event", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
