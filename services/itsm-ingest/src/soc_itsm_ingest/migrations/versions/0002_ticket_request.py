"""Ticket requests: the idempotency record of tickets opened for incidents, unique on
(integration_id, incident_id), pending → created | failed.

Revision ID: 0002_ticket_request
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_ticket_request"
down_revision = "0001_sync_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_request",
        sa.Column("integration_id", sa.Text, nullable=False, comment="the ITSM (SDP) integration"),
        sa.Column("incident_id", sa.Text, nullable=False, comment="the SOAR incident id"),
        sa.Column("account_id", sa.Text, nullable=False, comment="the SDP account the ticket is filed under"),
        sa.Column("company_id", sa.Text),
        sa.Column("soar_integration_id", sa.Text),
        sa.Column("origin", sa.Text, nullable=False, comment="incident (policy) or command"),
        sa.Column(
            "request", JSONB, nullable=False, comment="subject, description, priority of the ticket to open"
        ),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("ticket_id", sa.Text),
        sa.Column(
            "ticket_found",
            sa.Boolean,
            nullable=False,
            server_default=sa.false(),
            comment="true: an existing SDP request was adopted instead of creating one",
        ),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("owner", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_category", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("integration_id", "incident_id", name="pk_ticket_request"),
        sa.CheckConstraint("state IN ('pending', 'created', 'failed')", name="ck_ticket_request_state"),
    )
    op.create_index(
        "ix_ticket_request_stale",
        "ticket_request",
        ["lease_until"],
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_ticket_request_stale", table_name="ticket_request")
    op.drop_table("ticket_request")
