"""Read model: what the original product's filters need — the first-stored time of threat alerts,
and indexes for the incident filters a 1M-incident company uses.

Revision ID: 0004_read_model_filters
Revises: 0003_read_model
"""

from __future__ import annotations

from alembic import op

revision = "0004_read_model_filters"
down_revision = "0003_read_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # when the portal first stored the alert (the original's created_at); updated_at already exists
    op.execute("ALTER TABLE ti_alert ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()")
    # assignee / dashboard owner: case-insensitive owner within a company's account, newest first
    op.execute(
        "CREATE INDEX ix_incident_scope_owner ON soar_incident "
        "(integration_id, account, lower(owner), created DESC, id DESC) INCLUDE (status, priority)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_incident_scope_owner")
    op.execute("ALTER TABLE ti_alert DROP COLUMN IF EXISTS created_at")
