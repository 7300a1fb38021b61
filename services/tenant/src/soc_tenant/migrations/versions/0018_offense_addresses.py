"""QRadar offenses keep the addresses their source and local destination address ids name
(resolved by the ingestor through ``siem/source_addresses`` and ``siem/local_destination_addresses``),
so the detail shows them and threat-intel matching reads them. Two columns with a constant default:
no table rewrite.

Revision ID: 0018_offense_addresses
Revises: 0017_vendor_action_request
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0018_offense_addresses"
down_revision = "0017_vendor_action_request"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in ("source_addresses", "local_destination_addresses"):
        op.add_column(
            "qradar_offense",
            sa.Column(name, JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        )


def downgrade() -> None:
    for name in ("local_destination_addresses", "source_addresses"):
        op.drop_column("qradar_offense", name)
