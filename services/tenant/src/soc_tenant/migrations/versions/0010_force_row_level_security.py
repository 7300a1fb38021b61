"""FORCE ROW LEVEL SECURITY on every company-scoped table: the owner role is no longer exempt.

Owner sessions (consumers, background work, migrations) stay trusted through the ``owner_trusted``
policy unless a session scopes itself to a company (``soc_shared.db.set_company_scope`` sets
``app.trusted = off``): then the company policies apply to the owner exactly as to the API role.

Revision ID: 0010_force_row_level_security
"""

from alembic import op

revision = "0010_force_row_level_security"
down_revision = "0009_tickets"
branch_labels = None
depends_on = None

# Frozen here (a migration never imports the application): how the owner role stays trusted.
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"

_PROTECTED = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relrowsecurity
"""


def upgrade() -> None:
    bind = op.get_bind()
    for (table,) in bind.exec_driver_sql(_PROTECTED).fetchall():
        op.execute(f'DROP POLICY IF EXISTS owner_trusted ON "{table}"')
        op.execute(
            f'CREATE POLICY owner_trusted ON "{table}" TO CURRENT_USER USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})'
        )
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')


def downgrade() -> None:
    bind = op.get_bind()
    for (table,) in bind.exec_driver_sql(_PROTECTED).fetchall():
        op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
        op.execute(f'DROP POLICY IF EXISTS owner_trusted ON "{table}"')
