"""Threat-intel matches for tickets, and the progress of the observables backfill.

``ti_match`` takes ticket matches (a ticket's subject, description and resolution are matched
like offenses and incidents). ``ti_backfill`` keeps, per record type, the last read-model row id
whose observables were extracted by the backfill (``readmodel.tibackfill``): records stored before
matching existed are extracted and matched in bounded batches, resuming where the last run
stopped.

Revision ID: 0014_ti_tickets_backfill
Revises: 0013_offense_notes_resource
"""

from alembic import op

revision = "0014_ti_tickets_backfill"
down_revision = "0013_offense_notes_resource"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ti_match DROP CONSTRAINT IF EXISTS ti_match_record_type_check")
    op.execute(
        "ALTER TABLE ti_match ADD CONSTRAINT ti_match_record_type_check "
        "CHECK (record_type IN ('offense', 'incident', 'ticket'))"
    )
    op.execute("""
CREATE TABLE ti_backfill (
    record_type text PRIMARY KEY
        CONSTRAINT ti_backfill_record_type_check CHECK (record_type IN ('offense', 'incident', 'ticket', 'alert')),
    last_id bigint NOT NULL DEFAULT 0,
    records bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
)""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ti_backfill")
    op.execute("DELETE FROM ti_match WHERE record_type = 'ticket'")
    op.execute("ALTER TABLE ti_match DROP CONSTRAINT IF EXISTS ti_match_record_type_check")
    op.execute(
        "ALTER TABLE ti_match ADD CONSTRAINT ti_match_record_type_check "
        "CHECK (record_type IN ('offense', 'incident'))"
    )
