"""What auth knows of companies: learnt from ``tenant.company.changed`` events, never read from
the tenant service's tables. A directory group decides a directory user's company and tenant role."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, String, Table, Text, text, true
from sqlalchemy.dialects.postgresql import ARRAY

from soc_auth.database import metadata

company = Table(
    "company",
    metadata,
    Column("company_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    # The newest event applied: an older (re-delivered, reordered) one is ignored.
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

directory_group = Table(
    "directory_group",
    metadata,
    Column("company_id", String(64), ForeignKey("company.company_id", ondelete="CASCADE"), primary_key=True),
    # Normalised: a full DN lower-cased without blanks ("cn=acme-soc-users,ou=groups,dc=soc,dc=local")
    # or a bare group name ("acme-soc-users").
    Column("group_key", String(512), primary_key=True),
    Column("ldap_group", Text, nullable=False),
    Column("tenant_role", String(32), nullable=False),
    Column("permissions", ARRAY(String(32)), nullable=False, server_default=text("'{}'")),
)
Index("ix_directory_group_group_key", directory_group.c.group_key)
