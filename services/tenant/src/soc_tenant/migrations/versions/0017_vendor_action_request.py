"""Vendor actions keep a fingerprint of what the client asked (action, target, request body), so a
retried request with the same Idempotency-Key is recognised even when the record it concerns
changed meanwhile (the parameters derived from the record may differ).

Revision ID: 0017_vendor_action_request
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_vendor_action_request"
down_revision = "0016_vendor_action"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "vendor_action",
        sa.Column("request_fingerprint", sa.Text, comment="SHA-256 of what the client asked (idempotency)"),
    )


def downgrade() -> None:
    op.drop_column("vendor_action", "request_fingerprint")
