"""Zoho OAuth access tokens of ServiceDesk Plus Cloud integrations, shared by every replica
(sealed; one row per integration, replaced when renewed or when the credentials change).

Revision ID: 0004_oauth_token
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_oauth_token"
down_revision = "0003_ticket_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_token",
        sa.Column("integration_id", sa.Text, primary_key=True),
        sa.Column(
            "credentials_fingerprint",
            sa.Text,
            nullable=False,
            comment="SHA-256 of the credentials the token was issued for",
        ),
        sa.Column("access_token", sa.Text, nullable=False, comment="sealed (AES-256-GCM)"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshes", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("oauth_token")
