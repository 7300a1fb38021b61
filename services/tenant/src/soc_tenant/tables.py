"""Every table of the tenant service, declared once, on one metadata.

The migrations (``soc_tenant/migrations/versions``) create these tables and spell out their DDL
literally; this module is what the code queries and what ``tests/test_schema_drift.py`` compares
with a database migrated to ``head`` (Alembic autogenerate): a column, index or constraint that
exists on one side only fails that test. What autogenerate cannot see is kept in the migrations
alone: row-level-security policies (``FORCE``d on every company-scoped table), grants to the API
role, the audit trail's trigger.

Read-model rows keep the vendor's keys (integration id + QRadar domain / XSOAR account / SDP
account); which company a row belongs to is decided at read time through the mapping tables.
Everything here is SQLAlchemy Core: the consumers' bulk upserts and the read model's aggregate
queries build statements on these tables, and the API's shapes are separate pydantic models
(each domain's ``responses.py``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()
# The name the query modules have always used for it.
md = metadata
TS = sa.DateTime(timezone=True)


# --------- control plane: companies, people, integrations, mappings, SLA, chat, background work

company = sa.Table(
    "company",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("phone_number", sa.Text),
    sa.Column("industry", sa.Text),
    sa.Column("country", sa.Text),
    sa.Column("is_default_sla", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("is_default_threat_intel", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("deleted_at", TS),
    sa.Column("created_by", sa.Text),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("profile_picture", sa.LargeBinary),
    sa.Column("profile_picture_type", sa.Text),
    sa.Column("profile_picture_updated_at", TS),
    sa.Column("modified_by", sa.Text),
    sa.Column("deleted_by", sa.Text),
    sa.Column("sla_clock_start", sa.Text, nullable=False, server_default=sa.text("'occurred'::text")),
    sa.CheckConstraint(
        "sla_clock_start = ANY (ARRAY['occurred'::text, 'created'::text])",
        name="company_sla_clock_start_check",
    ),
    sa.PrimaryKeyConstraint("id", name="company_pkey"),
    sa.Index(
        "uq_company_name", sa.text("lower(name)"), unique=True, postgresql_where=sa.text("deleted_at IS NULL")
    ),
)

company_directory_group = sa.Table(
    "company_directory_group",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("ldap_group", sa.Text, nullable=False),
    sa.Column("tenant_role", sa.Text, nullable=False),
    sa.Column("permissions", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint(
        "tenant_role = ANY (ARRAY['TENANT_ADMIN'::text, 'TENANT_USER'::text])", name="ck_directory_group_role"
    ),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="company_directory_group_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="company_directory_group_pkey"),
    sa.Index("ix_directory_group_company", "company_id"),
    sa.Index("uq_directory_group", sa.text("lower(ldap_group)"), unique=True),
)

tenant_member = sa.Table(
    "tenant_member",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("ldap_group", sa.Text),
    sa.Column("country", sa.Text),
    sa.Column("tenant_role", sa.Text, nullable=False),
    sa.Column("permissions", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("created_by", sa.Text),
    sa.Column("user_changed_at", TS),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint(
        "tenant_role = ANY (ARRAY['TENANT_ADMIN'::text, 'TENANT_USER'::text])", name="ck_tenant_member_role"
    ),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="tenant_member_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="tenant_member_pkey"),
    sa.UniqueConstraint("user_id", name="uq_tenant_member_user"),
    sa.Index("ix_tenant_member_company", "company_id"),
)

integration = sa.Table(
    "integration",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("integration_type", sa.Text, nullable=False),
    sa.Column("subtype", sa.Text, nullable=False),
    sa.Column("instance_name", sa.Text, nullable=False),
    sa.Column("base_url", sa.Text, nullable=False),
    sa.Column("verify_tls", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("ca_pem", sa.Text),
    sa.Column("polling_interval_seconds", sa.Integer, nullable=False, server_default=sa.text("300")),
    sa.Column("credential_kind", sa.Text, nullable=False),
    sa.Column("credentials_sealed", sa.Text, nullable=False),
    sa.Column("credentials_masked", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("credentials_version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("credentials_rotated_at", TS),
    sa.Column("settings", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'::text")),
    sa.Column("status_message", sa.Text),
    sa.Column("status_changed_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("health_since", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("company_id", sa.Uuid),
    sa.Column("last_tested_at", TS),
    sa.Column("last_test", JSONB),
    sa.Column("created_by", sa.Text),
    sa.Column("modified_by", sa.Text),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("deleted_at", TS),
    sa.CheckConstraint(
        "(integration_type = 'THREAT_INTELLIGENCE'::text) = (company_id IS NOT NULL)", name="ck_ti_company"
    ),
    sa.CheckConstraint(
        "credential_kind = ANY (ARRAY['API_KEY'::text, 'USERNAME_PASSWORD'::text, 'SECRET_KEY_ACCESS_KEY'::text])",
        name="ck_credential_kind",
    ),
    sa.CheckConstraint(
        "integration_type = ANY (ARRAY['SIEM'::text, 'SOAR'::text, 'ITSM'::text, 'THREAT_INTELLIGENCE'::text])",
        name="ck_integration_type",
    ),
    sa.CheckConstraint(
        "polling_interval_seconds >= 30 AND polling_interval_seconds <= 86400", name="ck_polling_interval"
    ),
    sa.CheckConstraint(
        "status = ANY (ARRAY['pending'::text, 'active'::text, 'error'::text, 'disabled'::text])",
        name="ck_integration_status",
    ),
    sa.CheckConstraint(
        "subtype = ANY (ARRAY['IBM_QRADAR'::text, 'CORTEX_XSOAR'::text, 'MANAGEENGINE_SDP'::text, 'CYWARE'::text])",
        name="ck_integration_subtype",
    ),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="integration_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="integration_pkey"),
    sa.Index(
        "uq_integration_instance_name",
        "subtype",
        sa.text("lower(instance_name)"),
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
    sa.Index(
        "uq_integration_ti_company",
        "company_id",
        postgresql_where=sa.text("integration_type = 'THREAT_INTELLIGENCE'::text AND deleted_at IS NULL"),
        unique=True,
    ),
)

integration_sync_report = sa.Table(
    "integration_sync_report",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("resource", sa.Text, primary_key=True),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=False),
    sa.Column("records", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("error_category", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("last_success_at", TS),
    sa.Column("received_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "resource", name="integration_sync_report_pkey"),
)

qradar_mapping = sa.Table(
    "qradar_mapping",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("integration_id", sa.Text, nullable=False),
    sa.Column("domain_id", sa.BigInteger, nullable=False),
    sa.Column("contracted_volume_type", sa.Text, nullable=False, server_default=sa.text("'EPS'::text")),
    sa.Column("contracted_volume", sa.Numeric(14, 2), nullable=False, server_default=sa.text("'0'::numeric")),
    sa.Column("event_collector_ids", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("inactive_reason", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint(
        "contracted_volume_type = ANY (ARRAY['EPS'::text, 'GB_PER_DAY'::text])", name="ck_volume_type"
    ),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="qradar_mapping_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="qradar_mapping_pkey"),
    sa.UniqueConstraint("company_id", "integration_id", "domain_id", name="uq_qradar_mapping"),
    sa.Index("ix_qradar_mapping_domain", "integration_id", "domain_id"),
)

soar_mapping = sa.Table(
    "soar_mapping",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("integration_id", sa.Text, nullable=False),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("inactive_reason", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="soar_mapping_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="soar_mapping_pkey"),
    sa.UniqueConstraint("company_id", "integration_id", "account", name="uq_soar_mapping"),
    sa.Index("ix_soar_mapping_account", "integration_id", "account"),
)

itsm_mapping = sa.Table(
    "itsm_mapping",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("integration_id", sa.Text, nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("inactive_reason", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="itsm_mapping_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="itsm_mapping_pkey"),
    sa.UniqueConstraint("company_id", "integration_id", "account_id", name="uq_itsm_mapping"),
    sa.Index("ix_itsm_mapping_account", "integration_id", "account_id"),
)

sla_default = sa.Table(
    "sla_default",
    metadata,
    sa.Column("level", sa.Text, primary_key=True),
    sa.Column("tta_minutes", sa.Integer, nullable=False),
    sa.Column("ttn_minutes", sa.Integer, nullable=False),
    sa.Column("ttdn_minutes", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.Text),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint(
        "level = ANY (ARRAY['P1'::text, 'P2'::text, 'P3'::text, 'P4'::text])", name="ck_sla_default_level"
    ),
    sa.CheckConstraint(
        "tta_minutes > 0 AND ttn_minutes > 0 AND ttdn_minutes > 0", name="ck_sla_default_minutes"
    ),
    sa.PrimaryKeyConstraint("level", name="sla_default_pkey"),
)

sla_company = sa.Table(
    "sla_company",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("integration_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("tta_minutes", sa.Integer, nullable=False),
    sa.Column("ttn_minutes", sa.Integer, nullable=False),
    sa.Column("ttdn_minutes", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.Text),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint(
        "level = ANY (ARRAY['P1'::text, 'P2'::text, 'P3'::text, 'P4'::text])", name="ck_sla_company_level"
    ),
    sa.CheckConstraint(
        "tta_minutes > 0 AND ttn_minutes > 0 AND ttdn_minutes > 0", name="ck_sla_company_minutes"
    ),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="sla_company_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="sla_company_pkey"),
    sa.Index(
        "uq_sla_company",
        "company_id",
        sa.text("coalesce(integration_id, '')"),
        sa.text("coalesce(account, '')"),
        "level",
        unique=True,
    ),
)

chat_message = sa.Table(
    "chat_message",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True, autoincrement=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("sender_id", sa.Text, nullable=False),
    sa.Column("sender_name", sa.Text),
    sa.Column("sender_kind", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("sent_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("admin_seen_at", TS),
    sa.Column("tenant_seen_at", TS),
    sa.CheckConstraint("char_length(body) >= 1 AND char_length(body) <= 4000", name="ck_chat_body"),
    sa.CheckConstraint(
        "sender_kind = ANY (ARRAY['admin'::text, 'tenant'::text])", name="ck_chat_sender_kind"
    ),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="chat_message_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="chat_message_pkey"),
    sa.Index("ix_chat_message_company", "company_id", "id"),
)

pending_action = sa.Table(
    "pending_action",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("company_id", sa.Uuid),
    sa.Column("payload", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("done_at", TS),
    sa.PrimaryKeyConstraint("id", name="pending_action_pkey"),
    sa.Index("ix_pending_action_due", "next_attempt_at", postgresql_where=sa.text("done_at IS NULL")),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True, autoincrement=True),
    sa.Column("routing_key", sa.Text, nullable=False),
    sa.Column("event", JSONB, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("published_at", TS),
    sa.PrimaryKeyConstraint("id", name="outbox_pkey"),
    sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
)

ticket_policy = sa.Table(
    "ticket_policy",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("soar_integration_id", sa.Text),
    sa.Column("soar_account", sa.Text),
    sa.Column("priorities", JSONB, nullable=False),
    sa.Column("statuses", JSONB, nullable=False),
    sa.Column("types", JSONB, comment="incident types; NULL = any type"),
    sa.Column("updated_by", sa.Text),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="ticket_policy_company_id_fkey"),
    sa.PrimaryKeyConstraint("id", name="ticket_policy_pkey"),
    sa.Index(
        "uq_ticket_policy_scope",
        "company_id",
        sa.text("coalesce(soar_integration_id, '')"),
        sa.text("coalesce(soar_account, '')"),
        unique=True,
    ),
)

ticket_policy_audit = sa.Table(
    "ticket_policy_audit",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True, autoincrement=True),
    sa.Column("company_id", sa.Uuid, nullable=False),
    sa.Column("soar_integration_id", sa.Text),
    sa.Column("soar_account", sa.Text),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("before", JSONB),
    sa.Column("after", JSONB),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text),
    sa.Column("at", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint(
        "action = ANY (ARRAY['set'::text, 'deleted'::text])", name="ck_ticket_policy_audit_action"
    ),
    sa.PrimaryKeyConstraint("id", name="ticket_policy_audit_pkey"),
    sa.Index("ix_ticket_policy_audit_company", "company_id", "at"),
)

audit_record = sa.Table(
    "audit_record",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("company_id", sa.Uuid),
    sa.Column("actor_id", sa.Text, nullable=False),
    sa.Column("actor_username", sa.Text, nullable=False),
    sa.Column("actor_kind", sa.Text, nullable=False),
    sa.Column("actor_company_id", sa.Uuid),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target_type", sa.Text, nullable=False),
    sa.Column("target_id", sa.Text),
    sa.Column("before", JSONB),
    sa.Column("after", JSONB),
    sa.Column("client_address", sa.Text),
    sa.Column("forwarded_for", sa.Text),
    sa.Column("request_id", sa.Text),
    sa.Column("trace_id", sa.Text),
    # The service that made the change (tenant, auth), and the event a record was filed from (once).
    sa.Column("source", sa.Text, nullable=False, server_default=sa.text("'tenant'::text")),
    sa.Column("event_id", sa.Text),
    sa.PrimaryKeyConstraint("id", name="audit_record_pkey"),
    sa.Index("ix_audit_record_action", "action", sa.text("at DESC")),
    sa.Index("ix_audit_record_actor", "actor_id"),
    sa.Index("ix_audit_record_at", sa.text("at DESC"), sa.text("id DESC")),
    sa.Index("ix_audit_record_company", "company_id", sa.text("at DESC")),
    sa.Index("ix_audit_record_target", "target_type", "target_id"),
    sa.Index("ux_audit_record_event_id", "event_id", unique=True),
)

# A company's own audit retention in days; the others follow the deployment's setting.
# A company's own retention of its growing read-model records (readmodel.partitions), in days.
record_retention = sa.Table(
    "record_retention",
    metadata,
    sa.Column("company_id", sa.Uuid, primary_key=True),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("company_id", name="record_retention_pkey"),
    sa.CheckConstraint("days >= 1 AND days <= 36500", name="ck_record_retention_days"),
)

audit_retention = sa.Table(
    "audit_retention",
    metadata,
    sa.Column("company_id", sa.Uuid, primary_key=True),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("company_id", name="audit_retention_pkey"),
    sa.CheckConstraint("days >= 1 AND days <= 36500", name="ck_audit_retention_days"),
)

# Vendor actions asked through the portal (escalate, update, playbook, ticket note or status).
vendor_action = sa.Table(
    "vendor_action",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True, comment="the command id"),
    sa.Column("company_id", sa.Uuid, comment="the company whose record the action concerns"),
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("requested_by_name", sa.Text),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("integration_id", sa.Text, nullable=False),
    sa.Column("vendor_tenant", sa.Text, nullable=False),
    sa.Column("target_type", sa.Text, nullable=False),
    sa.Column("target_id", sa.Text, nullable=False, comment="our id of the offense, incident or ticket"),
    sa.Column("params", JSONB, nullable=False),
    sa.Column("request_fingerprint", sa.Text, comment="SHA-256 of what the client asked (idempotency)"),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("result", JSONB),
    sa.Column("error", JSONB),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("requested_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("finished_at", TS),
    sa.Column("expires_at", TS, comment="without an outcome by then the action ends expired"),
    sa.PrimaryKeyConstraint("id", name="vendor_action_pkey"),
    sa.UniqueConstraint("requested_by", "idempotency_key", name="uq_vendor_action_key"),
    sa.CheckConstraint(
        "status IN ('accepted', 'succeeded', 'failed', 'expired')", name="ck_vendor_action_status"
    ),
    sa.Index("ix_vendor_action_company", "company_id", sa.text("requested_at DESC")),
    sa.Index("ix_vendor_action_target", "target_type", "target_id"),
    sa.Index("ix_vendor_action_expiry", "expires_at", postgresql_where=sa.text("status = 'accepted'")),
)

# -------------------------------------------------------------------- read model: QRadar (SIEM)

qradar_domain = sa.Table(
    "qradar_domain",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=sa.text("''::text")),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "domain_id", name="qradar_domain_pkey"),
)

qradar_event_collector = sa.Table(
    "qradar_event_collector",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("collector_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("host_id", sa.BigInteger),
    sa.Column("component_name", sa.Text),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "collector_id", name="qradar_event_collector_pkey"),
)

qradar_log_source_type = sa.Table(
    "qradar_log_source_type",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("type_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("type_version", sa.Text),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "type_id", name="qradar_log_source_type_pkey"),
)

qradar_log_source_group = sa.Table(
    "qradar_log_source_group",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("group_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=sa.text("''::text")),
    sa.Column("owner", sa.Text),
    sa.Column("parent_id", sa.BigInteger),
    sa.Column("child_group_ids", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("assignable", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "group_id", name="qradar_log_source_group_pkey"),
)

qradar_log_source = sa.Table(
    "qradar_log_source",
    metadata,
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("log_source_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=sa.text("''::text")),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("type_id", sa.BigInteger),
    sa.Column("type_name", sa.Text),
    sa.Column("event_collector_id", sa.BigInteger),
    sa.Column("sending_ip", sa.Text),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("status", sa.Text),
    sa.Column("status_messages", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("group_ids", ARRAY(sa.BigInteger()), nullable=False, server_default=sa.text("'{}'::bigint[]")),
    sa.Column("average_eps", sa.Double, nullable=False, server_default=sa.text("0")),
    sa.Column("creation_time", TS),
    sa.Column("modified_time", TS),
    sa.Column("last_event_time", TS),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "log_source_id", name="qradar_log_source_pkey"),
    sa.UniqueConstraint("id", name="qradar_log_source_id_key"),
    sa.Index("ix_log_source_collector", "integration_id", "event_collector_id"),
    sa.Index("ix_log_source_domain", "integration_id", "domain_id", "name"),
)

qradar_offense = sa.Table(
    "qradar_offense",
    metadata,
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("offense_id", sa.BigInteger, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("magnitude", sa.SmallInteger, nullable=False),
    sa.Column("credibility", sa.SmallInteger, nullable=False),
    sa.Column("relevance", sa.SmallInteger, nullable=False),
    sa.Column("event_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("flow_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("assigned_to", sa.Text),
    sa.Column("categories", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("rules", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("offense_source", sa.Text),
    sa.Column("offense_type", sa.Integer),
    sa.Column("source_address_ids", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("local_destination_address_ids", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("destination_networks", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("log_sources", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("start_time", TS, primary_key=True),
    sa.Column("last_updated_time", TS, nullable=False),
    sa.Column("close_time", TS),
    sa.Column("closing_reason_id", sa.BigInteger),
    sa.Column("closing_reason", sa.Text),
    sa.Column("closing_user", sa.Text),
    sa.Column("follow_up", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("last_persisted_time", TS),
    sa.Column("notes", JSONB),
    # The addresses the id lists name (resolved by the ingestor).
    sa.Column("source_addresses", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("local_destination_addresses", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    # Partitioned by month of start_time (migration 0020): a unique key must hold the partition key.
    sa.PrimaryKeyConstraint("integration_id", "offense_id", "start_time", name="qradar_offense_pkey"),
    sa.Index("ix_offense_id", "id"),
    sa.Index("ix_offense_offense_id", "offense_id"),
    sa.Index(
        "ix_offense_scope_status",
        "integration_id",
        "domain_id",
        "status",
        sa.text("start_time DESC"),
        postgresql_include=["severity"],
    ),
    sa.Index(
        "ix_offense_scope_time", "integration_id", "domain_id", sa.text("start_time DESC"), sa.text("id DESC")
    ),
    postgresql_partition_by="RANGE (start_time)",
)

# Every note of an offense as last read (replaced whole by a later read).
qradar_offense_notes = sa.Table(
    "qradar_offense_notes",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("offense_id", sa.BigInteger, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, nullable=False),
    sa.Column("notes", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "offense_id", name="qradar_offense_notes_pkey"),
)

# Metric points: partitioned by month of window_start (migration 0020), like the offenses.
eps_sample = sa.Table(
    "eps_sample",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("granularity", sa.Text, primary_key=True),
    sa.Column("window_start", TS, primary_key=True),
    sa.Column("window_end", TS, nullable=False),
    sa.Column("collector", sa.Text, primary_key=True, server_default=sa.text("''::text")),
    sa.Column("average_eps", sa.Double, nullable=False),
    sa.Column("peak_eps", sa.Double, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint(
        "integration_id", "domain_id", "granularity", "window_start", "collector", name="eps_sample_pkey"
    ),
    postgresql_partition_by="RANGE (window_start)",
)

metric_sample = sa.Table(
    "metric_sample",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("family", sa.Text, primary_key=True),
    sa.Column("granularity", sa.Text, primary_key=True),
    sa.Column("window_start", TS, primary_key=True),
    sa.Column("window_end", TS, nullable=False),
    sa.Column("rows", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint(
        "integration_id", "domain_id", "family", "granularity", "window_start", name="metric_sample_pkey"
    ),
    postgresql_partition_by="RANGE (window_start)",
)

# --------------------------------------------------------------------- read model: XSOAR (SOAR)

soar_account = sa.Table(
    "soar_account",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "account_id", name="soar_account_pkey"),
    sa.Index("ix_soar_account_name", "integration_id", "name"),
)

soar_incident = sa.Table(
    "soar_incident",
    metadata,
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("incident_id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, primary_key=True, server_default=sa.text("''::text")),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("type", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("owner", sa.Text),
    sa.Column("playbook_id", sa.Text),
    sa.Column("investigation_id", sa.Text),
    sa.Column("created", TS, primary_key=True),
    sa.Column("modified", TS, nullable=False),
    sa.Column("occurred", TS),
    sa.Column("closed", TS),
    sa.Column("close_reason", sa.Text),
    sa.Column("close_notes", sa.Text),
    sa.Column("closing_user_id", sa.Text),
    sa.Column("phase", sa.Text),
    sa.Column("priority", sa.Text, nullable=False),
    sa.Column("tta_at", TS),
    sa.Column("ttn_at", TS),
    sa.Column("ttdn_at", TS),
    sa.Column("initial_notification_at", TS),
    sa.Column("rules", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("offense_ids", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("log_source_types", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("source_ips", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("mitre_tactics", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("mitre_techniques", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("qradar_category", sa.Text),
    sa.Column("qradar_subcategory", sa.Text),
    sa.Column("low_level_categories", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("configuration_item", sa.Text),
    sa.Column("itsm_sync_status", sa.Text),
    sa.Column("sla", sa.Integer),
    sa.Column("custom_fields", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("vendor_priority", sa.Text),
    # Partitioned by month of created (migration 0022): a unique key must hold the partition key.
    sa.PrimaryKeyConstraint("integration_id", "account", "incident_id", "created", name="soar_incident_pkey"),
    sa.Index("ix_incident_id", "id"),
    sa.Index("ix_incident_incident_id", "incident_id"),
    sa.Index(
        "ix_incident_offense_ids",
        "offense_ids",
        postgresql_ops={"offense_ids": "jsonb_path_ops"},
        postgresql_using="gin",
    ),
    sa.Index(
        "ix_incident_scope_created",
        "integration_id",
        "account",
        sa.text("created DESC"),
        sa.text("id DESC"),
        postgresql_include=["priority", "severity", "status", "tta_at", "ttn_at", "ttdn_at", "closed"],
    ),
    sa.Index(
        "ix_incident_scope_occurred",
        "integration_id",
        "account",
        sa.text("occurred DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_incident_scope_owner",
        "integration_id",
        "account",
        "owner",
        sa.text("created DESC"),
        sa.text("id DESC"),
        postgresql_include=["status", "priority"],
    ),
    sa.Index(
        "ix_incident_scope_phase",
        "integration_id",
        "account",
        "phase",
        sa.text("created DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_incident_scope_playbook",
        "integration_id",
        "account",
        "playbook_id",
        sa.text("created DESC"),
        sa.text("id DESC"),
    ),
    sa.Index("ix_incident_scope_status", "integration_id", "account", "status", sa.text("created DESC")),
    sa.Index(
        "ix_incident_scope_sync",
        "integration_id",
        "account",
        "itsm_sync_status",
        sa.text("created DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_incident_scope_ci",
        "integration_id",
        "account",
        "configuration_item",
        sa.text("created DESC"),
        sa.text("id DESC"),
    ),
    postgresql_partition_by="RANGE (created)",
)

# Filter lookups written by the read-model consumer with the incident (see migration 0020): under
# row-level security only leakproof conditions (text ``=``) can use an index, so list elements and
# substring-searched fields are looked up here with ``=`` instead of jsonb containment or ILIKE on
# the incidents themselves.
soar_incident_term = sa.Table(
    "soar_incident_term",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),  # mitre_tactic, mitre_technique, use_case
    sa.Column("value", sa.Text, primary_key=True),  # lower-cased element
    sa.Column("created", TS, primary_key=True),
    sa.Column("id", sa.BigInteger, primary_key=True),  # soar_incident.id
    sa.PrimaryKeyConstraint(
        "integration_id", "account", "field", "value", "created", "id", name="soar_incident_term_pkey"
    ),
    sa.Index("ix_incident_term_id", "id"),
)

soar_incident_value = sa.Table(
    "soar_incident_value",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),  # configuration_item, owner, phase, itsm_sync_status
    sa.Column("value", sa.Text, primary_key=True),  # as stored on the incident
    sa.PrimaryKeyConstraint("integration_id", "account", "field", "value", name="soar_incident_value_pkey"),
)

soar_note = sa.Table(
    "soar_note",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("note_id", sa.Text, primary_key=True),
    sa.Column("incident_id", sa.Text, nullable=False),
    sa.Column("account", sa.Text, primary_key=True, server_default=sa.text("''::text")),
    sa.Column("author", sa.Text),
    sa.Column("created", TS, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("category", sa.Text),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "account", "note_id", name="soar_note_pkey"),
    sa.Index("ix_note_incident", "integration_id", "account", "incident_id", "created"),
)

# ---------------------------------------------------------- read model: ServiceDesk Plus (ITSM)

itsm_account = sa.Table(
    "itsm_account",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "account_id", name="itsm_account_pkey"),
)

itsm_ticket = sa.Table(
    "itsm_ticket",
    metadata,
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, nullable=False, server_default=sa.text("''::text")),
    sa.Column("account_name", sa.Text),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("short_description", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default=sa.text("''::text")),
    sa.Column("priority", sa.Text, nullable=False, server_default=sa.text("''::text")),
    sa.Column("is_overdue", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("created_time", TS, nullable=False),
    sa.Column("last_updated_time", TS, nullable=False),
    sa.Column("created_by_name", sa.Text),
    sa.Column("soar_incident_id", sa.Text),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("technician_name", sa.Text),
    sa.Column("resolution", sa.Text),
    sa.Column("request_url", sa.Text),
    sa.Column("reference", sa.Text),
    sa.PrimaryKeyConstraint("integration_id", "ticket_id", name="itsm_ticket_pkey"),
    sa.UniqueConstraint("id", name="itsm_ticket_id_key"),
    sa.Index("ix_ticket_incident", "soar_incident_id"),
    sa.Index("ix_ticket_reference", "reference", postgresql_where=sa.text("reference IS NOT NULL")),
    sa.Index(
        "ix_ticket_scope_created",
        "integration_id",
        "account_id",
        sa.text("created_time DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_ticket_scope_created_by",
        "integration_id",
        "account_id",
        "created_by_name",
        sa.text("created_time DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_ticket_scope_account_name",
        "integration_id",
        "account_id",
        "account_name",
        sa.text("created_time DESC"),
        sa.text("id DESC"),
    ),
)

# The distinct requester and account names of an ITSM account (filter lookups, migration 0020).
itsm_ticket_value = sa.Table(
    "itsm_ticket_value",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),  # created_by, account_name
    sa.Column("value", sa.Text, primary_key=True),
    sa.PrimaryKeyConstraint("integration_id", "account_id", "field", "value", name="itsm_ticket_value_pkey"),
)

# -------------------------------------------------------------- read model: threat intelligence

ti_alert = sa.Table(
    "ti_alert",
    metadata,
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("short_id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Text),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("status", sa.Text),
    sa.Column("tlp", sa.Text),
    sa.Column("published_time", TS),
    sa.Column("content", sa.Text),
    sa.Column("push_required", sa.Boolean),
    sa.Column("push_email_notification", sa.Boolean),
    sa.Column("tracking_id", sa.Text),
    sa.Column("card_image", sa.Text),
    sa.Column("card_info", sa.Text),
    sa.Column("event", sa.Text),
    sa.Column("intel_id", sa.Text),
    sa.Column("rfi_id", sa.Text),
    sa.Column("groups", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("recipient_groups", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("tags", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("category", JSONB),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "short_id", name="ti_alert_pkey"),
    sa.UniqueConstraint("id", name="ti_alert_id_key"),
    sa.Index("ix_ti_alert_company", "company_id", sa.text("published_time DESC")),
    sa.Index("ix_ti_alert_published", "integration_id", sa.text("published_time DESC")),
)

ti_tag = sa.Table(
    "ti_tag",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("tag_id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Text),
    sa.Column("tag_name", sa.Text, nullable=False),
    sa.Column("tag_slug", sa.Text),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "tag_id", name="ti_tag_pkey"),
)

ti_group = sa.Table(
    "ti_group",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("group_id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Text),
    sa.Column("group_name", sa.Text, nullable=False),
    sa.Column("group_tlp", sa.Text),
    sa.Column("group_type", sa.Text),
    sa.Column("allowed_for_intel_submission", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("allowed_for_rfi_submission", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "group_id", name="ti_group_pkey"),
)

ti_category = sa.Table(
    "ti_category",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("category_id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Text),
    sa.Column("category_name", sa.Text, nullable=False),
    sa.Column("threat_indicator_fields", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("additional_fields", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("required_fields", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "category_id", name="ti_category_pkey"),
)

ti_custom_field = sa.Table(
    "ti_custom_field",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("field_id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Text),
    sa.Column("field_name", sa.Text, nullable=False),
    sa.Column("field_label", sa.Text),
    sa.Column("field_type", sa.Text),
    sa.Column("field_description", sa.Text),
    sa.Column("is_system", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", "field_id", name="ti_custom_field_pkey"),
)

ti_default_feed = sa.Table(
    "ti_default_feed",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("set_by", sa.Text),
    sa.Column("set_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.PrimaryKeyConstraint("integration_id", name="ti_default_feed_pkey"),
)

ti_observable = sa.Table(
    "ti_observable",
    metadata,
    sa.Column("record_type", sa.Text, primary_key=True),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("record_key", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("private", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("seen_at", TS, nullable=False),
    sa.Column("first_seen", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("last_seen", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint("length(value) <= 1100", name="ti_observable_value_check"),
    sa.CheckConstraint(
        "record_type = ANY (ARRAY['offense'::text, 'incident'::text, 'ticket'::text, 'alert'::text])",
        name="ti_observable_record_type_check",
    ),
    sa.PrimaryKeyConstraint(
        "record_type", "integration_id", "scope", "record_key", "kind", "value", name="ti_observable_pkey"
    ),
    sa.Index(
        "ix_ti_observable_lookup",
        "kind",
        "value",
        "record_type",
        "seen_at",
        postgresql_where=sa.text("NOT private"),
    ),
)

ti_match = sa.Table(
    "ti_match",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
    # read as text: the matches' API answers carry the company id as a string
    sa.Column("company_id", UUID(as_uuid=False), primary_key=True),
    sa.Column("record_type", sa.Text, primary_key=True),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("record_key", sa.Text, primary_key=True),
    sa.Column("alert_integration_id", sa.Text, primary_key=True),
    sa.Column("alert_short_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("first_seen", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("last_seen", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint(
        "record_type = ANY (ARRAY['offense'::text, 'incident'::text, 'ticket'::text])",
        name="ti_match_record_type_check",
    ),
    sa.PrimaryKeyConstraint(
        "company_id",
        "record_type",
        "integration_id",
        "scope",
        "record_key",
        "alert_integration_id",
        "alert_short_id",
        "kind",
        "value",
        name="ti_match_pkey",
    ),
    sa.UniqueConstraint("id", name="ti_match_id_key"),
    sa.Index("ix_ti_match_alert", "alert_integration_id", "alert_short_id"),
)

# The observables backfill's progress: the last row id done per record type (readmodel.tibackfill).
ti_backfill = sa.Table(
    "ti_backfill",
    metadata,
    sa.Column("record_type", sa.Text, primary_key=True),
    sa.Column("last_id", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("records", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint(
        "record_type = ANY (ARRAY['offense'::text, 'incident'::text, 'ticket'::text, 'alert'::text])",
        name="ti_backfill_record_type_check",
    ),
    sa.PrimaryKeyConstraint("record_type", name="ti_backfill_pkey"),
)

# --------------- read model: rollups, maintained by the consumers in the upsert's own statement

offense_daily = sa.Table(
    "offense_daily",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("severity", sa.SmallInteger, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint(
        "integration_id", "domain_id", "day", "severity", "status", name="offense_daily_pkey"
    ),
)

offense_category_daily = sa.Table(
    "offense_category_daily",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("category", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint(
        "integration_id", "domain_id", "day", "category", name="offense_category_daily_pkey"
    ),
)

offense_totals = sa.Table(
    "offense_totals",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("severity", sa.SmallInteger, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("integration_id", "domain_id", "severity", "status", name="offense_totals_pkey"),
)

incident_daily = sa.Table(
    "incident_daily",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("priority", sa.Text, primary_key=True),
    sa.Column("severity", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint(
        "integration_id", "account", "day", "priority", "severity", "status", name="incident_daily_pkey"
    ),
)

incident_facet_daily = sa.Table(
    "incident_facet_daily",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("facet", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint(
        "integration_id", "account", "facet", "day", "value", name="incident_facet_daily_pkey"
    ),
)

incident_totals = sa.Table(
    "incident_totals",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("priority", sa.Text, primary_key=True),
    sa.Column("severity", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint(
        "integration_id", "account", "priority", "severity", "status", name="incident_totals_pkey"
    ),
)

ticket_daily = sa.Table(
    "ticket_daily",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("priority", sa.Text, primary_key=True),
    sa.Column("is_overdue", sa.Boolean, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint(
        "integration_id", "account_id", "day", "status", "priority", "is_overdue", name="ticket_daily_pkey"
    ),
)

ticket_totals = sa.Table(
    "ticket_totals",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("priority", sa.Text, primary_key=True),
    sa.Column("is_overdue", sa.Boolean, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint(
        "integration_id", "account_id", "status", "priority", "is_overdue", name="ticket_totals_pkey"
    ),
)

# ------------------------------------------------ notifications (channels, rules, notices, deliveries)

notify_channel = sa.Table(
    "notify_channel",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # email | webhook | slack | teams | in_app
    sa.Column("config", JSONB, nullable=False),  # nothing secret
    sa.Column("secret_sealed", sa.Text),  # SMTP password, webhook secret, Slack/Teams URL
    sa.Column("secret_version", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("rate_per_minute", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("parked_at", TS),
    sa.Column("park_reason", sa.Text),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint("kind IN ('email', 'webhook', 'slack', 'teams', 'in_app')", name="ck_notify_kind"),
    sa.ForeignKeyConstraint(
        ["company_id"], ["company.id"], name="notify_channel_company_id_fkey", ondelete="CASCADE"
    ),
    sa.PrimaryKeyConstraint("id", name="notify_channel_pkey"),
    sa.Index("ix_notify_channel_company", "company_id"),
)

notify_rule = sa.Table(
    "notify_rule",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("min_offense_severity", sa.Integer),
    sa.Column("min_incident_severity", sa.Text),
    sa.Column("lead_minutes", sa.Integer),
    sa.Column("polls", sa.Integer),
    sa.Column("channel_ids", ARRAY(UUID(as_uuid=True)), nullable=False),
    sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.ForeignKeyConstraint(
        ["company_id"], ["company.id"], name="notify_rule_company_id_fkey", ondelete="CASCADE"
    ),
    sa.PrimaryKeyConstraint("id", name="notify_rule_pkey"),
    sa.Index("ix_notify_rule_trigger", "trigger", "company_id"),
)

# One per (rule, condition): the dedup key names the condition (an incident and its SLA step, an
# offense, a failing run of polls).
notify_notice = sa.Table(
    "notify_notice",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True, autoincrement=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("rule_id", sa.Uuid, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("dedup_key", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("facts", JSONB, nullable=False),
    sa.Column("due_at", TS),  # when the condition became true (an SLA deadline, the record's time)
    sa.Column("created_at", TS, nullable=False),
    sa.ForeignKeyConstraint(
        ["rule_id"], ["notify_rule.id"], name="notify_notice_rule_id_fkey", ondelete="CASCADE"
    ),
    sa.PrimaryKeyConstraint("id", name="notify_notice_pkey"),
    sa.UniqueConstraint("rule_id", "dedup_key", name="uq_notify_notice_dedup"),
    sa.Index("ix_notify_notice_company", "company_id", sa.text("id DESC")),
)

notify_delivery = sa.Table(
    "notify_delivery",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True, autoincrement=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("notice_id", sa.BigInteger, nullable=False),
    sa.Column("channel_id", sa.Uuid, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("next_attempt_at", TS, nullable=False),
    sa.Column("lease_until", TS),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.ForeignKeyConstraint(
        ["notice_id"], ["notify_notice.id"], name="notify_delivery_notice_id_fkey", ondelete="CASCADE"
    ),
    sa.ForeignKeyConstraint(
        ["channel_id"], ["notify_channel.id"], name="notify_delivery_channel_id_fkey", ondelete="CASCADE"
    ),
    sa.PrimaryKeyConstraint("id", name="notify_delivery_pkey"),
    sa.UniqueConstraint("notice_id", "channel_id", name="uq_notify_delivery"),
    sa.Index(
        "ix_notify_delivery_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'::text")
    ),
    sa.Index("ix_notify_delivery_channel", "channel_id", "status"),
)

notify_attempt = sa.Table(
    "notify_attempt",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True, autoincrement=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("delivery_id", sa.BigInteger, nullable=False),
    sa.Column("channel_id", sa.Uuid, nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),  # sent | retry | failed
    sa.Column("error_code", sa.Text),
    sa.Column("detail", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(
        ["delivery_id"], ["notify_delivery.id"], name="notify_attempt_delivery_id_fkey", ondelete="CASCADE"
    ),
    sa.PrimaryKeyConstraint("id", name="notify_attempt_pkey"),
    sa.Index("ix_notify_attempt_delivery", "delivery_id"),
    sa.Index("ix_notify_attempt_channel_at", "channel_id", "at"),
)

notify_read = sa.Table(
    "notify_read",
    metadata,
    sa.Column("notice_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("read_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.ForeignKeyConstraint(
        ["notice_id"], ["notify_notice.id"], name="notify_read_notice_id_fkey", ondelete="CASCADE"
    ),
    sa.PrimaryKeyConstraint("notice_id", "user_id", name="notify_read_pkey"),
)

# Per (integration, resource): the current run of failed or empty polls (integration triggers).
notify_sync_watch = sa.Table(
    "notify_sync_watch",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("resource", sa.Text, primary_key=True),
    sa.Column("failing_since", TS),
    sa.Column("empty_polls", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("empty_since", TS),
    sa.PrimaryKeyConstraint("integration_id", "resource", name="notify_sync_watch_pkey"),
)

# Names the code uses for two tables whose SQL name is longer.
directory_group = company_directory_group
sync_report = integration_sync_report
