"""Integrations known to this ingestor and the per-(integration, resource) sync state.

Revision ID: 0001_sync_state
"""

from alembic import op
from soc_shared.sync import create_ingest_tables, drop_ingest_tables

revision = "0001_sync_state"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_ingest_tables(op)


def downgrade() -> None:
    drop_ingest_tables(op)
