"""Read model: offenses, assets, incidents, tickets, alerts, metrics, rollups (owned by soc_tenant.readmodel)

Revision ID: 0003_read_model
"""

revision = "0003_read_model"
down_revision = "0002_control_plane"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
