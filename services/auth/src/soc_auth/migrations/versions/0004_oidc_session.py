"""OIDC users' refresh tokens at their identity provider (sealed), to re-check them at refresh.

Revision ID: 0004_oidc_session
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_oidc_session"
down_revision = "0003_oidc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_session",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("refresh_token_sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )


def downgrade() -> None:
    op.drop_table("oidc_session")
