"""Control plane: tenant users, integrations, mappings, SLA, chat (owned by soc_tenant.control)

Revision ID: 0002_control_plane
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_control_plane"
down_revision = "0001_core"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application): the row-level-security DDL this
# revision applies. Forced, so the owner role passes only through ``owner_trusted`` (unless its
# session scoped itself to a company: ``app.trusted = off``); the app role never passes it.
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"


def rls_policy_sql(table: str, column: str = "company_id") -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS owner_trusted ON {table}",
        f"CREATE POLICY owner_trusted ON {table} TO CURRENT_USER USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})",
        f"DROP POLICY IF EXISTS company_isolation ON {table}",
        f"""CREATE POLICY company_isolation ON {table}
            USING (current_setting('app.is_admin', true) = 'on'
                   OR {column}::text = current_setting('app.company_id', true))
            WITH CHECK (current_setting('app.is_admin', true) = 'on'
                   OR {column}::text = current_setting('app.company_id', true))""",
    ]


_NOW = sa.func.now()
_EMPTY_LIST = sa.text("'[]'::jsonb")
_EMPTY_OBJECT = sa.text("'{}'::jsonb")
_TENANT_ROLE = "tenant_role IN ('TENANT_ADMIN', 'TENANT_USER')"
_LEVEL = "level IN ('P1', 'P2', 'P3', 'P4')"
_MINUTES = "tta_minutes > 0 AND ttn_minutes > 0 AND ttdn_minutes > 0"

# Seed's DefaultSoarSlaMetric, in minutes: (TTA, TTN, TTDN).
DEFAULT_SLA = {"P1": (15, 30, 240), "P2": (30, 60, 480), "P3": (60, 120, 1440), "P4": (240, 480, 2880)}


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    ]


def _rls(table: str, column: str = "company_id") -> None:
    for stmt in rls_policy_sql(table, column):
        op.execute(stmt)


def upgrade() -> None:
    # --- company: profile picture, audit, soft delete by whom ---------------------------------
    op.add_column("company", sa.Column("profile_picture", sa.LargeBinary))
    op.add_column("company", sa.Column("profile_picture_type", sa.Text))
    op.add_column("company", sa.Column("profile_picture_updated_at", sa.DateTime(timezone=True)))
    op.add_column("company", sa.Column("modified_by", sa.Text))
    op.add_column("company", sa.Column("deleted_by", sa.Text))

    # --- the AD group -> (company, tenant role, permissions) mapping ------------------------------
    op.create_table(
        "company_directory_group",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id"), nullable=False),
        sa.Column("ldap_group", sa.Text, nullable=False),
        sa.Column("tenant_role", sa.Text, nullable=False),
        sa.Column("permissions", JSONB, nullable=False, server_default=_EMPTY_LIST),
        *_timestamps(),
        sa.CheckConstraint(_TENANT_ROLE, name="ck_directory_group_role"),
    )
    # One group decides one company: the same group on two companies would be ambiguous at login.
    op.create_index(
        "uq_directory_group", "company_directory_group", [sa.text("lower(ldap_group)")], unique=True
    )
    op.create_index("ix_directory_group_company", "company_directory_group", ["company_id"])
    _rls("company_directory_group")

    # --- tenant users (the seed's Tenant + TenantRole + TenantRolePermissions) ------------------
    op.create_table(
        "tenant_member",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id"), nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("ldap_group", sa.Text),
        sa.Column("country", sa.Text),
        sa.Column("tenant_role", sa.Text, nullable=False),
        sa.Column("permissions", JSONB, nullable=False, server_default=_EMPTY_LIST),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_by", sa.Text),
        # changed_at of the newest auth.user.changed applied (older, re-delivered ones are ignored)
        sa.Column("user_changed_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.UniqueConstraint("user_id", name="uq_tenant_member_user"),
        sa.CheckConstraint(_TENANT_ROLE, name="ck_tenant_member_role"),
    )
    op.create_index("ix_tenant_member_company", "tenant_member", ["company_id"])
    _rls("tenant_member")

    # --- integrations and their sealed credentials ---------------------------------------------
    op.create_table(
        "integration",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("integration_type", sa.Text, nullable=False),
        sa.Column("subtype", sa.Text, nullable=False),
        sa.Column("instance_name", sa.Text, nullable=False),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("verify_tls", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("ca_pem", sa.Text),
        sa.Column("polling_interval_seconds", sa.Integer, nullable=False, server_default="300"),
        sa.Column("credential_kind", sa.Text, nullable=False),
        # AES-256-GCM token bound to "integration:<id>" (soc_shared.crypto.Sealer): never the clear text.
        sa.Column("credentials_sealed", sa.Text, nullable=False),
        sa.Column("credentials_masked", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
        sa.Column("credentials_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("credentials_rotated_at", sa.DateTime(timezone=True)),
        sa.Column("settings", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("status_message", sa.Text),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        # Sync reports finished before this (the last change of address, TLS or credentials) say
        # nothing about the current configuration and do not decide the status.
        sa.Column("health_since", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id")),
        sa.Column("last_tested_at", sa.DateTime(timezone=True)),
        sa.Column("last_test", JSONB),
        sa.Column("created_by", sa.Text),
        sa.Column("modified_by", sa.Text),
        *_timestamps(),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "integration_type IN ('SIEM', 'SOAR', 'ITSM', 'THREAT_INTELLIGENCE')", name="ck_integration_type"
        ),
        sa.CheckConstraint(
            "subtype IN ('IBM_QRADAR', 'CORTEX_XSOAR', 'MANAGEENGINE_SDP', 'CYWARE')",
            name="ck_integration_subtype",
        ),
        sa.CheckConstraint(
            "credential_kind IN ('API_KEY', 'USERNAME_PASSWORD', 'SECRET_KEY_ACCESS_KEY')",
            name="ck_credential_kind",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'error', 'disabled')", name="ck_integration_status"
        ),
        sa.CheckConstraint("polling_interval_seconds BETWEEN 30 AND 86400", name="ck_polling_interval"),
        sa.CheckConstraint(
            "(integration_type = 'THREAT_INTELLIGENCE') = (company_id IS NOT NULL)", name="ck_ti_company"
        ),
    )
    op.create_index(
        "uq_integration_instance_name",
        "integration",
        ["subtype", sa.text("lower(instance_name)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    # The seed's ThreatIntelligenceTenant: one threat-intelligence integration per company.
    op.create_index(
        "uq_integration_ti_company",
        "integration",
        ["company_id"],
        unique=True,
        postgresql_where=sa.text("integration_type = 'THREAT_INTELLIGENCE' AND deleted_at IS NULL"),
    )

    # --- mappings of vendor tenants to companies -----------------------------------------------
    op.add_column("qradar_mapping", sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()))
    op.add_column("qradar_mapping", sa.Column("inactive_reason", sa.Text))
    op.add_column("qradar_mapping", sa.Column("created_by", sa.Text))
    op.add_column(
        "qradar_mapping",
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )

    op.create_table(
        "soar_mapping",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id"), nullable=False),
        sa.Column("integration_id", sa.Text, nullable=False),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("inactive_reason", sa.Text),
        sa.Column("created_by", sa.Text),
        *_timestamps(),
        sa.UniqueConstraint("company_id", "integration_id", "account", name="uq_soar_mapping"),
    )
    op.create_index("ix_soar_mapping_account", "soar_mapping", ["integration_id", "account"])
    _rls("soar_mapping")

    op.create_table(
        "itsm_mapping",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id"), nullable=False),
        sa.Column("integration_id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("inactive_reason", sa.Text),
        sa.Column("created_by", sa.Text),
        *_timestamps(),
        sa.UniqueConstraint("company_id", "integration_id", "account_id", name="uq_itsm_mapping"),
    )
    op.create_index("ix_itsm_mapping_account", "itsm_mapping", ["integration_id", "account_id"])
    _rls("itsm_mapping")

    # A tenant sees an integration that is its own (threat intelligence) or that serves it through
    # one of its mappings (whose own policies already limit them to its company); admins see all.
    op.execute("ALTER TABLE integration ENABLE ROW LEVEL SECURITY")
    op.execute("""CREATE POLICY company_isolation ON integration
        USING (current_setting('app.is_admin', true) = 'on'
               OR company_id::text = current_setting('app.company_id', true)
               OR (company_id IS NULL AND (
                    EXISTS (SELECT 1 FROM qradar_mapping m WHERE m.integration_id = integration.id::text AND m.active)
                 OR EXISTS (SELECT 1 FROM soar_mapping m WHERE m.integration_id = integration.id::text AND m.active)
                 OR EXISTS (SELECT 1 FROM itsm_mapping m WHERE m.integration_id = integration.id::text AND m.active))))
        WITH CHECK (current_setting('app.is_admin', true) = 'on')""")

    op.create_table(
        "integration_sync_report",
        sa.Column("integration_id", sa.Text, primary_key=True),
        sa.Column("resource", sa.Text, primary_key=True),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_category", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_success_at", sa.DateTime(timezone=True)),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.execute("ALTER TABLE integration_sync_report ENABLE ROW LEVEL SECURITY")
    op.execute("""CREATE POLICY company_isolation ON integration_sync_report
        USING (current_setting('app.is_admin', true) = 'on'
               OR EXISTS (SELECT 1 FROM integration i WHERE i.id::text = integration_sync_report.integration_id))
        WITH CHECK (current_setting('app.is_admin', true) = 'on')""")

    # --- SLA -------------------------------------------------------------------------------------
    sla_default = op.create_table(
        "sla_default",
        sa.Column("level", sa.Text, primary_key=True),
        sa.Column("tta_minutes", sa.Integer, nullable=False),
        sa.Column("ttn_minutes", sa.Integer, nullable=False),
        sa.Column("ttdn_minutes", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.CheckConstraint(_LEVEL, name="ck_sla_default_level"),
        sa.CheckConstraint(_MINUTES, name="ck_sla_default_minutes"),
    )
    op.bulk_insert(
        sla_default,
        [
            {"level": level, "tta_minutes": tta, "ttn_minutes": ttn, "ttdn_minutes": ttdn}
            for level, (tta, ttn, ttdn) in DEFAULT_SLA.items()
        ],
    )

    op.create_table(
        "sla_company",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id"), nullable=False),
        # NULL/NULL: the company's own targets; an integration and XSOAR account: that account's.
        sa.Column("integration_id", sa.Text),
        sa.Column("account", sa.Text),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("tta_minutes", sa.Integer, nullable=False),
        sa.Column("ttn_minutes", sa.Integer, nullable=False),
        sa.Column("ttdn_minutes", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.Text),
        *_timestamps(),
        sa.CheckConstraint(_LEVEL, name="ck_sla_company_level"),
        sa.CheckConstraint(_MINUTES, name="ck_sla_company_minutes"),
    )
    op.create_index(
        "uq_sla_company",
        "sla_company",
        ["company_id", sa.text("coalesce(integration_id, '')"), sa.text("coalesce(account, '')"), "level"],
        unique=True,
    )
    _rls("sla_company")

    # --- support chat ----------------------------------------------------------------------------
    op.create_table(
        "chat_message",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id"), nullable=False),
        sa.Column("sender_id", sa.Text, nullable=False),
        sa.Column("sender_name", sa.Text),
        sa.Column("sender_kind", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("admin_seen_at", sa.DateTime(timezone=True)),
        sa.Column("tenant_seen_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("sender_kind IN ('admin', 'tenant')", name="ck_chat_sender_kind"),
        sa.CheckConstraint("char_length(body) BETWEEN 1 AND 4000", name="ck_chat_body"),
    )
    op.create_index("ix_chat_message_company", "chat_message", ["company_id", "id"])
    _rls("chat_message")

    # --- calls to other services that must happen even if they are down (retried) -------------
    op.create_table(
        "pending_action",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("company_id", sa.Uuid),
        sa.Column("payload", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("done_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_pending_action_due",
        "pending_action",
        ["next_attempt_at"],
        postgresql_where=sa.text("done_at IS NULL"),
    )
    _rls("pending_action")

    # --- transactional outbox: events committed with the change that caused them ---------------
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("routing_key", sa.Text, nullable=False),
        sa.Column("event", JSONB, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )
    # Requests only append to the outbox (and read back the new id); the events (chat messages of every
    # company among them) are read and published by the owner role alone.
    op.execute("""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'soc_tenant_app') THEN
            REVOKE ALL ON outbox FROM soc_tenant_app;
            GRANT INSERT ON outbox TO soc_tenant_app;
            GRANT SELECT (id) ON outbox TO soc_tenant_app;
        END IF;
    END $$""")


def downgrade() -> None:
    for table in (
        "outbox",
        "pending_action",
        "chat_message",
        "sla_company",
        "sla_default",
        "integration_sync_report",
        "itsm_mapping",
        "soar_mapping",
        "integration",
        "tenant_member",
        "company_directory_group",
    ):
        op.drop_table(table)
    for column in ("updated_at", "created_by", "inactive_reason", "active"):
        op.drop_column("qradar_mapping", column)
    for column in (
        "deleted_by",
        "modified_by",
        "profile_picture_updated_at",
        "profile_picture_type",
        "profile_picture",
    ):
        op.drop_column("company", column)
