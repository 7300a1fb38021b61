"""Core: companies, QRadar domains and their mapping to companies.

Revision ID: 0001_core
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_core"
down_revision = None
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


def upgrade() -> None:
    op.create_table(
        "company",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("phone_number", sa.Text),
        sa.Column("industry", sa.Text),
        sa.Column("country", sa.Text),
        sa.Column("is_default_sla", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("is_default_threat_intel", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index(
        "uq_company_name",
        "company",
        [sa.text("lower(name)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    # The company row itself is scoped too: a tenant user sees only its own company.
    for stmt in rls_policy_sql("company", "id"):
        op.execute(stmt)

    op.create_table(
        "qradar_domain",
        sa.Column("integration_id", sa.Text, primary_key=True),
        sa.Column("domain_id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("event_id", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )

    op.create_table(
        "qradar_mapping",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id"), nullable=False),
        sa.Column("integration_id", sa.Text, nullable=False),
        sa.Column("domain_id", sa.BigInteger, nullable=False),
        sa.Column("contracted_volume_type", sa.Text, nullable=False, server_default="EPS"),
        sa.Column("contracted_volume", sa.Numeric(14, 2), nullable=False, server_default="0"),
        sa.Column("event_collector_ids", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("company_id", "integration_id", "domain_id", name="uq_qradar_mapping"),
        sa.CheckConstraint("contracted_volume_type IN ('EPS', 'GB_PER_DAY')", name="ck_volume_type"),
    )
    op.create_index("ix_qradar_mapping_domain", "qradar_mapping", ["integration_id", "domain_id"])
    for stmt in rls_policy_sql("qradar_mapping"):
        op.execute(stmt)


def downgrade() -> None:
    op.drop_table("qradar_mapping")
    op.drop_table("qradar_domain")
    op.drop_table("company")
