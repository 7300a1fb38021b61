"""Control plane: tenant users, integrations, mappings, SLA, chat (owned by soc_tenant.control)

Revision ID: 0002_control_plane
"""

revision = "0002_control_plane"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
