"""The control plane's tables (created by migrations 0001 and 0002), as SQLAlchemy Core tables.

Company-scoped tables carry row-level security keyed on ``company_id`` (see ``rls_policy_sql``):
API routes read and write them through the RLS-bound app role, so a forgotten filter cannot leak
another company's rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

md = sa.MetaData()


def _ts() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    ]


company = sa.Table(
    "company",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("phone_number", sa.Text),
    sa.Column("industry", sa.Text),
    sa.Column("country", sa.Text),
    sa.Column("is_default_sla", sa.Boolean),
    sa.Column("sla_clock_start", sa.Text),
    sa.Column("is_default_threat_intel", sa.Boolean),
    sa.Column("is_active", sa.Boolean),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.Column("deleted_by", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("modified_by", sa.Text),
    sa.Column("profile_picture", sa.LargeBinary),
    sa.Column("profile_picture_type", sa.Text),
    sa.Column("profile_picture_updated_at", sa.DateTime(timezone=True)),
    *_ts(),
)

directory_group = sa.Table(
    "company_directory_group",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("ldap_group", sa.Text, nullable=False),
    sa.Column("tenant_role", sa.Text, nullable=False),
    sa.Column("permissions", JSONB, nullable=False),
    *_ts(),
)

tenant_member = sa.Table(
    "tenant_member",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("ldap_group", sa.Text),
    sa.Column("country", sa.Text),
    sa.Column("tenant_role", sa.Text, nullable=False),
    sa.Column("permissions", JSONB, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_by", sa.Text),
    sa.Column("user_changed_at", sa.DateTime(timezone=True)),
    *_ts(),
)

integration = sa.Table(
    "integration",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("integration_type", sa.Text, nullable=False),
    sa.Column("subtype", sa.Text, nullable=False),
    sa.Column("instance_name", sa.Text, nullable=False),
    sa.Column("base_url", sa.Text, nullable=False),
    sa.Column("verify_tls", sa.Boolean, nullable=False),
    sa.Column("ca_pem", sa.Text),
    sa.Column("polling_interval_seconds", sa.Integer, nullable=False),
    sa.Column("credential_kind", sa.Text, nullable=False),
    sa.Column("credentials_sealed", sa.Text, nullable=False),
    sa.Column("credentials_masked", JSONB, nullable=False),
    sa.Column("credentials_version", sa.Integer, nullable=False),
    sa.Column("credentials_rotated_at", sa.DateTime(timezone=True)),
    sa.Column("settings", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("status_message", sa.Text),
    sa.Column("status_changed_at", sa.DateTime(timezone=True)),
    sa.Column("health_since", sa.DateTime(timezone=True)),
    sa.Column("company_id", sa.Uuid),
    sa.Column("last_tested_at", sa.DateTime(timezone=True)),
    sa.Column("last_test", JSONB),
    sa.Column("created_by", sa.Text),
    sa.Column("modified_by", sa.Text),
    *_ts(),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
)

sync_report = sa.Table(
    "integration_sync_report",
    md,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("resource", sa.Text, primary_key=True),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("error_category", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    sa.Column("last_success_at", sa.DateTime(timezone=True)),
    sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

qradar_mapping = sa.Table(
    "qradar_mapping",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("integration_id", sa.Text, nullable=False),
    sa.Column("domain_id", sa.BigInteger, nullable=False),
    sa.Column("contracted_volume_type", sa.Text, nullable=False),
    sa.Column("contracted_volume", sa.Numeric(14, 2), nullable=False),
    sa.Column("event_collector_ids", JSONB, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("inactive_reason", sa.Text),
    sa.Column("created_by", sa.Text),
    *_ts(),
)

soar_mapping = sa.Table(
    "soar_mapping",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("integration_id", sa.Text, nullable=False),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("inactive_reason", sa.Text),
    sa.Column("created_by", sa.Text),
    *_ts(),
)

itsm_mapping = sa.Table(
    "itsm_mapping",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("integration_id", sa.Text, nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("inactive_reason", sa.Text),
    sa.Column("created_by", sa.Text),
    *_ts(),
)

# Vendor tenants discovered by the ingestors, owned by the read model (0001: qradar_domain; 0003:
# the others). The control plane only reads them, to validate mappings and to show names.
qradar_domain = sa.Table(
    "qradar_domain",
    md,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("deleted", sa.Boolean),
)
soar_account = sa.Table(
    "soar_account",
    md,
    sa.Column("integration_id", sa.Text),
    sa.Column("account_id", sa.Text),
    sa.Column("name", sa.Text),
)
itsm_account = sa.Table(
    "itsm_account",
    md,
    sa.Column("integration_id", sa.Text),
    sa.Column("account_id", sa.Text),
    sa.Column("name", sa.Text),
)

sla_default = sa.Table(
    "sla_default",
    md,
    sa.Column("level", sa.Text, primary_key=True),
    sa.Column("tta_minutes", sa.Integer, nullable=False),
    sa.Column("ttn_minutes", sa.Integer, nullable=False),
    sa.Column("ttdn_minutes", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

sla_company = sa.Table(
    "sla_company",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("integration_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("tta_minutes", sa.Integer, nullable=False),
    sa.Column("ttn_minutes", sa.Integer, nullable=False),
    sa.Column("ttdn_minutes", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.Text),
    *_ts(),
)

chat_message = sa.Table(
    "chat_message",
    md,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("sender_id", sa.Text, nullable=False),
    sa.Column("sender_name", sa.Text),
    sa.Column("sender_kind", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("admin_seen_at", sa.DateTime(timezone=True)),
    sa.Column("tenant_seen_at", sa.DateTime(timezone=True)),
)

pending_action = sa.Table(
    "pending_action",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("company_id", sa.Uuid),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("done_at", sa.DateTime(timezone=True)),
)

outbox = sa.Table(
    "outbox",
    md,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("routing_key", sa.Text, nullable=False),
    sa.Column("event", JSONB, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("published_at", sa.DateTime(timezone=True)),
)
