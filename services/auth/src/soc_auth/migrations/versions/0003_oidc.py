"""OpenID Connect sign-in: accounts from identity providers, pending authorisation requests.

Revision ID: 0003_oidc
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_oidc"
down_revision = "0002_mfa"
branch_labels = None
depends_on = None


def _auth_sources(values: str) -> None:
    # Whatever the check on auth_source was named, replace it.
    op.execute(
        """DO $$ DECLARE c text; BEGIN
          FOR c IN SELECT conname FROM pg_constraint
                   WHERE conrelid = 'users'::regclass AND contype = 'c'
                     AND pg_get_constraintdef(oid) LIKE '%auth_source%' LOOP
            EXECUTE format('ALTER TABLE users DROP CONSTRAINT %I', c);
          END LOOP;
        END $$"""
    )
    op.execute(f"ALTER TABLE users ADD CONSTRAINT ck_users_auth_source CHECK (auth_source IN ({values}))")


def upgrade() -> None:
    _auth_sources("'local', 'ldap', 'oidc'")
    op.create_table(
        "oidc_login",
        sa.Column("state_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_oidc_login_expires_at", "oidc_login", ["expires_at"])


def downgrade() -> None:
    op.drop_table("oidc_login")
    op.execute("DELETE FROM users WHERE auth_source = 'oidc'")
    _auth_sources("'local', 'ldap'")
