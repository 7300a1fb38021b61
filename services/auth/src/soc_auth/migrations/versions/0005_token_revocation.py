"""Per-user token revocation times: access tokens issued before them are refused everywhere.

Revision ID: 0005_token_revocation
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_token_revocation"
down_revision = "0004_oidc_session"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_revocation",
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
    )
    op.create_index("ix_token_revocation_not_before", "token_revocation", ["not_before"])


def downgrade() -> None:
    op.drop_table("token_revocation")
