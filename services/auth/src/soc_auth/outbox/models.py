"""The transactional outbox's table (``soc_shared.outbox``): an event is written in the same
transaction as the change it reports, and published with broker confirms after the commit."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Integer, String, Table, func, text
from sqlalchemy.dialects.postgresql import JSONB

from soc_auth.database import metadata

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("routing_key", String(128), nullable=False),
    Column("event", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("published_at", DateTime(timezone=True)),
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
)
