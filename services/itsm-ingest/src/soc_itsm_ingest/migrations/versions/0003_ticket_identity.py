"""Ticket requests keyed by the incident's identity — (ITSM integration, SOAR integration, XSOAR
account, incident id): XSOAR accounts number their incidents independently. Each row keeps the
idempotency reference written into its request and when a create was last sent.

Revision ID: 0003_ticket_identity
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_ticket_identity"
down_revision = "0002_ticket_request"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE ticket_request SET soar_integration_id = '' WHERE soar_integration_id IS NULL")
    op.alter_column(
        "ticket_request",
        "soar_integration_id",
        existing_type=sa.Text,
        nullable=False,
        server_default="",
        comment="the SOAR integration ('' if unknown)",
    )
    op.add_column(
        "ticket_request",
        sa.Column(
            "soar_account",
            sa.Text,
            nullable=False,
            server_default="",
            comment="the XSOAR account (vendor tenant)",
        ),
    )
    op.add_column(
        "ticket_request",
        sa.Column("reference", sa.Text, comment="the idempotency reference written into the request"),
    )
    op.add_column(
        "ticket_request",
        sa.Column(
            "create_sent_at", sa.DateTime(timezone=True), comment="last create sent (outcome may be unknown)"
        ),
    )
    op.add_column(
        "ticket_request",
        sa.Column("creates", sa.Integer, nullable=False, server_default="0", comment="creates sent"),
    )
    op.drop_constraint("pk_ticket_request", "ticket_request", type_="primary")
    op.create_primary_key(
        "pk_ticket_request",
        "ticket_request",
        ["integration_id", "soar_integration_id", "soar_account", "incident_id"],
    )


def downgrade() -> None:
    op.drop_constraint("pk_ticket_request", "ticket_request", type_="primary")
    op.execute(
        "DELETE FROM ticket_request a USING ticket_request b WHERE a.integration_id = b.integration_id "
        "AND a.incident_id = b.incident_id AND a.ctid > b.ctid"
    )
    op.create_primary_key("pk_ticket_request", "ticket_request", ["integration_id", "incident_id"])
    for column in ("creates", "create_sent_at", "reference", "soar_account"):
        op.drop_column("ticket_request", column)
    op.alter_column(
        "ticket_request", "soar_integration_id", existing_type=sa.Text, nullable=True, server_default=None
    )
