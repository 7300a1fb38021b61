"""Offenses keep QRadar's last_persisted_time and their notes (shown with the offense)

Revision ID: 0006_offense_notes
"""

from alembic import op

revision = "0006_offense_notes"
down_revision = "0005_xsoar_account_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE qradar_offense ADD COLUMN IF NOT EXISTS last_persisted_time timestamptz, "
        "ADD COLUMN IF NOT EXISTS notes jsonb"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE qradar_offense DROP COLUMN IF EXISTS notes, DROP COLUMN IF EXISTS last_persisted_time"
    )
