"""XSOAR identities include the account; the SLA clock start per company; the vendor's own priority

* ``soar_incident`` and ``soar_note`` are keyed by integration, **account** and id: each tenant of a
  multi-tenant XSOAR master numbers its incidents (and war-room entries) from 1, so an id alone
  names one incident per account. Existing rows already carry their account (``''`` on a
  single-tenant server), so the new keys hold for them as they are; only the indexes change.
* ``soar_incident.vendor_priority``: the priority as the incident itself gave it (``P1``..``P4``,
  from labels such as ``P1 Critical``), ``NULL`` when it had none. ``priority`` stays the SLA level
  (derived from the severity when the incident has no priority). The true-positive rule needs to
  know whether the incident had a priority of its own. Existing rows are taken as having had one
  (their events are not kept); the next change of each incident corrects it, and a resync of the
  integration corrects all at once.
* ``company.sla_clock_start``: where SLA steps are measured from, ``occurred`` (the original
  product's rule, the default) or ``created``.

Revision ID: 0005_xsoar_account_keys
"""

from alembic import op

revision = "0005_xsoar_account_keys"
down_revision = "0004_read_model_filters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE soar_incident DROP CONSTRAINT soar_incident_pkey")
    op.execute("ALTER TABLE soar_incident ADD PRIMARY KEY (integration_id, account, incident_id)")
    op.execute("ALTER TABLE soar_incident ADD COLUMN vendor_priority text")
    op.execute("UPDATE soar_incident SET vendor_priority = priority")
    op.execute("ALTER TABLE soar_note DROP CONSTRAINT soar_note_pkey")
    op.execute("ALTER TABLE soar_note ADD PRIMARY KEY (integration_id, account, note_id)")
    op.execute("DROP INDEX IF EXISTS ix_note_incident")
    op.execute("CREATE INDEX ix_note_incident ON soar_note (integration_id, account, incident_id, created)")
    op.execute(
        "ALTER TABLE company ADD COLUMN sla_clock_start text NOT NULL DEFAULT 'occurred' "
        "CHECK (sla_clock_start IN ('occurred', 'created'))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE company DROP COLUMN sla_clock_start")
    op.execute("DROP INDEX IF EXISTS ix_note_incident")
    op.execute("CREATE INDEX ix_note_incident ON soar_note (integration_id, incident_id, created)")
    # Back to id-only keys: of the rows sharing one, the most recently written is kept.
    op.execute(
        "DELETE FROM soar_note n USING soar_note o WHERE n.integration_id = o.integration_id "
        "AND n.note_id = o.note_id AND (n.updated_at, n.account) < (o.updated_at, o.account)"
    )
    op.execute("ALTER TABLE soar_note DROP CONSTRAINT soar_note_pkey")
    op.execute("ALTER TABLE soar_note ADD PRIMARY KEY (integration_id, note_id)")
    op.execute(
        "DELETE FROM soar_incident n USING soar_incident o WHERE n.integration_id = o.integration_id "
        "AND n.incident_id = o.incident_id AND (n.updated_at, n.account) < (o.updated_at, o.account)"
    )
    op.execute("ALTER TABLE soar_incident DROP CONSTRAINT soar_incident_pkey")
    op.execute("ALTER TABLE soar_incident ADD PRIMARY KEY (integration_id, incident_id)")
    op.execute("ALTER TABLE soar_incident DROP COLUMN vendor_priority")
