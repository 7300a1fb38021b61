"""Tickets: what flows back from the service desk (technician, resolution, the request's link,
the SOC reference on it) and the per-company ticket qualification rules with their audit trail.

Revision ID: 0009_tickets
Revises: 0008_incident_filter_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009_tickets"
down_revision = "0008_incident_filter_indexes"
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


def upgrade() -> None:
    op.execute(
        "ALTER TABLE itsm_ticket ADD COLUMN technician_name text, ADD COLUMN resolution text, "
        "ADD COLUMN request_url text, ADD COLUMN reference text"
    )
    op.execute("CREATE INDEX ix_ticket_reference ON itsm_ticket (reference) WHERE reference IS NOT NULL")

    # Which incidents get a ticket, per company and optionally per SOAR integration / XSOAR account
    # (NULL/NULL: the company's rule). No row: the built-in default.
    op.create_table(
        "ticket_policy",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("company_id", sa.Uuid, sa.ForeignKey("company.id"), nullable=False),
        sa.Column("soar_integration_id", sa.Text),
        sa.Column("soar_account", sa.Text),
        sa.Column("priorities", JSONB, nullable=False),
        sa.Column("statuses", JSONB, nullable=False),
        sa.Column("types", JSONB, comment="incident types; NULL = any type"),
        sa.Column("updated_by", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_index(
        "uq_ticket_policy_scope",
        "ticket_policy",
        ["company_id", sa.text("coalesce(soar_integration_id, '')"), sa.text("coalesce(soar_account, '')")],
        unique=True,
    )
    op.create_table(
        "ticket_policy_audit",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("company_id", sa.Uuid, nullable=False),
        sa.Column("soar_integration_id", sa.Text),
        sa.Column("soar_account", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("before", JSONB),
        sa.Column("after", JSONB),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.CheckConstraint("action IN ('set', 'deleted')", name="ck_ticket_policy_audit_action"),
    )
    op.create_index("ix_ticket_policy_audit_company", "ticket_policy_audit", ["company_id", "at"])
    for table in ("ticket_policy", "ticket_policy_audit"):
        for stmt in rls_policy_sql(table):
            op.execute(stmt)


def downgrade() -> None:
    op.drop_table("ticket_policy_audit")
    op.drop_table("ticket_policy")
    op.execute("DROP INDEX IF EXISTS ix_ticket_reference")
    op.execute(
        "ALTER TABLE itsm_ticket DROP COLUMN technician_name, DROP COLUMN resolution, "
        "DROP COLUMN request_url, DROP COLUMN reference"
    )
