"""Integrations known to this ingestor, the per-(integration, resource) sync state, and the
per-incident war-room watermarks of the notes resource.

Revision ID: 0001_initial
"""

from alembic import op
from soc_shared.sync import create_ingest_tables, drop_ingest_tables
from soc_soar_ingest.state import create_note_mark_table, drop_note_mark_table

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_ingest_tables(op)
    create_note_mark_table(op)


def downgrade() -> None:
    drop_note_mark_table(op)
    drop_ingest_tables(op)
