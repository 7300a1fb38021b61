"""Indexes for the incident filters a company with a million incidents uses without a time window:
owner (assignee, unassigned), playbook, phase, occurred range.

Each is led by the company's vendor keys (integration, account) like the other incident indexes,
so one company's filter never reads another's rows. They index the plain columns: under row-level
security PostgreSQL applies a user's condition before the policy only if its functions are
leakproof, which ``=`` on text is and ``lower()``, ``ILIKE`` and jsonb containment are not — an
index on ``lower(owner)`` (0004) is never used by the API role, so it is replaced here.

Revision ID: 0008_incident_filter_indexes
Revises: 0007_default_threat_intel_feed
"""

from alembic import op

revision = "0008_incident_filter_indexes"
down_revision = "0007_default_threat_intel_feed"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_incident_scope_owner": "(integration_id, account, owner, created DESC, id DESC) INCLUDE (status, priority)",
    "ix_incident_scope_playbook": "(integration_id, account, playbook_id, created DESC, id DESC)",
    "ix_incident_scope_phase": "(integration_id, account, phase, created DESC, id DESC)",
    "ix_incident_scope_occurred": "(integration_id, account, occurred DESC, id DESC)",
}


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_incident_scope_owner")
    for name, spec in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON soar_incident {spec}")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(
        "CREATE INDEX ix_incident_scope_owner ON soar_incident "
        "(integration_id, account, lower(owner), created DESC, id DESC) INCLUDE (status, priority)"
    )
