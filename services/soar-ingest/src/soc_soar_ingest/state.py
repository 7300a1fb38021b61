"""Per-incident war-room watermarks: the newest entry already turned into notes.

XSOAR has no "entries changed since" across investigations, and an incident's ``modified`` says
nothing about which of its entries were already read. So each incident whose notes we read keeps
the creation time of its newest entry; the next read of that war room asks only for entries after
it. A watermark moves only after the notes read up to it were confirmed by the broker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from soc_shared.actions import action_table
from soc_shared.db import Database
from sqlalchemy.dialects.postgresql import insert

metadata = sa.MetaData()

note_mark_table = sa.Table(
    "note_mark",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, primary_key=True),  # "" on a single-tenant server
    sa.Column("incident_id", sa.Text, primary_key=True),
    sa.Column("last_entry_at", sa.Text, nullable=False),  # as XSOAR wrote it: sent back as fromTime
    sa.Column("last_entry_ns", sa.BigInteger, nullable=False),  # for "only ever forward"
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Actions on command (escalate, update, run a playbook), one row per asker's idempotency key; the
# soar-ingest schema's one metadata holds it with the watermarks (see migrations/env.py).
vendor_action = action_table(metadata)


class NoteMarks:
    """The watermarks of one ingestor's integrations (its own schema)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, integration_id: str, account: str, incident_ids: Sequence[str]) -> dict[str, str]:
        if not incident_ids:
            return {}
        t = note_mark_table
        stmt = sa.select(t.c.incident_id, t.c.last_entry_at).where(
            t.c.integration_id == integration_id,
            t.c.account == account,
            t.c.incident_id.in_(list(incident_ids)),
        )
        async with self.db.session() as session:
            rows = (await session.execute(stmt)).all()
        return {row.incident_id: row.last_entry_at for row in rows}

    async def save(self, integration_id: str, account: str, marks: Mapping[str, tuple[str, int]]) -> None:
        """Upsert ``incident_id → (last_entry_at, last_entry_ns)``; a mark never moves back."""
        if not marks:
            return
        t = note_mark_table
        stmt = insert(t).values(
            [
                {
                    "integration_id": integration_id,
                    "account": account,
                    "incident_id": incident_id,
                    "last_entry_at": at,
                    "last_entry_ns": ns,
                }
                for incident_id, (at, ns) in sorted(
                    marks.items()
                )  # a stable order: no deadlocks between writers
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["integration_id", "account", "incident_id"],
            set_={
                "last_entry_at": stmt.excluded.last_entry_at,
                "last_entry_ns": stmt.excluded.last_entry_ns,
                "updated_at": sa.func.now(),
            },
            where=t.c.last_entry_ns < stmt.excluded.last_entry_ns,
        )
        async with self.db.session() as session:
            await session.execute(stmt)
