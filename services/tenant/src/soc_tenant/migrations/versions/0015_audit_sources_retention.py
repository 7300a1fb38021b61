"""The audit store files every service's records and the sign-ins, and keeps them for a retention
period that only the purge deletes.

- ``source``: the service that made the change (``tenant``, ``auth``); ``event_id``: the id of the
  ``audit.recorded`` / ``auth.login.*`` event a record was filed from — unique, so a re-delivered
  event is filed once.
- ``audit_retention``: a company's own retention in days (else the deployment's setting).
- ``audit_record_purge(default_days)`` deletes the records older than their retention and is the
  only way to delete one: a statement trigger refuses DELETE unless the purge set
  ``soc.audit_purge`` for its own transaction, and TRUNCATE always. The API role has no DELETE
  privilege (nor EXECUTE on the purge); the purge runs as the owner.

Revision ID: 0015_audit_sources_retention
Revises: 0014_ti_tickets_backfill
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_audit_sources_retention"
down_revision = "0014_ti_tickets_backfill"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application): the row-level-security DDL this
# revision applies, as in 0012_audit_record.
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
    op.add_column("audit_record", sa.Column("source", sa.Text, nullable=False, server_default="tenant"))
    op.add_column("audit_record", sa.Column("event_id", sa.Text))
    op.create_index("ux_audit_record_event_id", "audit_record", ["event_id"], unique=True)
    op.create_index("ix_audit_record_action", "audit_record", ["action", sa.text("at DESC")])

    op.create_table(
        "audit_retention",
        sa.Column("company_id", sa.Uuid, primary_key=True),
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("days >= 1 AND days <= 36500", name="ck_audit_retention_days"),
    )
    for stmt in rls_policy_sql("audit_retention"):
        op.execute(stmt)

    op.execute("""CREATE FUNCTION audit_record_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND current_setting('soc.audit_purge', true) = 'on' THEN
                RETURN NULL;
            END IF;
            RAISE EXCEPTION 'audit records are deleted by the retention purge only'
                USING ERRCODE = 'insufficient_privilege';
        END $$""")
    op.execute(
        "CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON audit_record "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_record_guard_delete()"
    )
    op.execute(
        "CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_record_guard_delete()"
    )
    op.execute("""CREATE FUNCTION audit_record_purge(default_days integer) RETURNS bigint
        LANGUAGE plpgsql AS $$
        DECLARE
            purged bigint;
        BEGIN
            PERFORM set_config('soc.audit_purge', 'on', true);
            -- A company's own setting, else the deployment's; none (0) keeps the records.
            DELETE FROM audit_record a
             WHERE a.at < now() - make_interval(days => COALESCE(
                       (SELECT r.days FROM audit_retention r WHERE r.company_id = a.company_id),
                       NULLIF(GREATEST(default_days, 0), 0)));
            GET DIAGNOSTICS purged = ROW_COUNT;
            PERFORM set_config('soc.audit_purge', 'off', true);
            RETURN purged;
        END $$""")
    op.execute("REVOKE ALL ON FUNCTION audit_record_purge(integer) FROM PUBLIC")
    op.execute("""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'soc_tenant_app') THEN
            REVOKE ALL ON audit_record FROM soc_tenant_app;
            GRANT INSERT, SELECT ON audit_record TO soc_tenant_app;
            GRANT SELECT, INSERT, UPDATE, DELETE ON audit_retention TO soc_tenant_app;
        END IF;
    END $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS audit_record_purge(integer)")
    op.execute("DROP TRIGGER IF EXISTS audit_record_no_truncate ON audit_record")
    op.execute("DROP TRIGGER IF EXISTS audit_record_no_delete ON audit_record")
    op.execute("DROP FUNCTION IF EXISTS audit_record_guard_delete()")
    op.drop_table("audit_retention")
    op.drop_index("ix_audit_record_action", table_name="audit_record")
    op.drop_index("ux_audit_record_event_id", table_name="audit_record")
    op.drop_column("audit_record", "event_id")
    op.drop_column("audit_record", "source")
