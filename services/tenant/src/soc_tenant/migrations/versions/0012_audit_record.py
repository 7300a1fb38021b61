"""Append-only audit trail of the changes made through the control plane.

Requests (the RLS-bound app role) may only INSERT and SELECT audit records — never UPDATE or DELETE
them; a trigger refuses UPDATE for every role, the owner included. Row-level security keys on the
company the change concerns: a tenant administrator reads their own company's records, admins all
(records without a company — integrations, SLA defaults — are for admins only).

Revision ID: 0012_audit_record
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012_audit_record"
down_revision = "0011_threat_intel_matches"
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
        "audit_record",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
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
    )
    op.create_index("ix_audit_record_at", "audit_record", [sa.text("at DESC"), sa.text("id DESC")])
    op.create_index("ix_audit_record_company", "audit_record", ["company_id", sa.text("at DESC")])
    op.create_index("ix_audit_record_target", "audit_record", ["target_type", "target_id"])
    op.create_index("ix_audit_record_actor", "audit_record", ["actor_id"])
    for stmt in rls_policy_sql("audit_record"):
        op.execute(stmt)
    op.execute("""CREATE FUNCTION audit_record_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit records are append-only' USING ERRCODE = 'insufficient_privilege'; END $$""")
    op.execute(
        "CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON audit_record "
        "FOR EACH ROW EXECUTE FUNCTION audit_record_immutable()"
    )
    op.execute("""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'soc_tenant_app') THEN
            REVOKE ALL ON audit_record FROM soc_tenant_app;
            GRANT INSERT, SELECT ON audit_record TO soc_tenant_app;
        END IF;
    END $$""")


def downgrade() -> None:
    op.drop_table("audit_record")
    op.execute("DROP FUNCTION IF EXISTS audit_record_immutable()")
