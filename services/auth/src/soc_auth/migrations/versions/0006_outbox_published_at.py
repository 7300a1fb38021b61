"""The outbox keeps a published event for a while (``published_at``) and counts failed publishes
(``attempts``), as every service's outbox does; unpublished rows are found by a partial index.

Revision ID: 0006_outbox_published_at
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_outbox_published_at"
down_revision = "0005_token_revocation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("outbox", sa.Column("published_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )


def downgrade() -> None:
    # Published rows were deleted before this revision.
    op.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_column("outbox", "published_at")
    op.drop_column("outbox", "attempts")
