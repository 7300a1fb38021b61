"""The read model's growing tables: monthly partitions made ahead of time, and retention per company.

``qradar_offense`` (by ``start_time``), ``eps_sample`` and ``metric_sample`` (by ``window_start``)
(migration 0020) and ``soar_incident`` (by ``created``, migration 0022) are partitioned by calendar
month (UTC) of the vendor's time for the record. A
partition ``<table>_pYYYYMM`` holds one month; ``<table>_default`` catches any row no monthly
partition covers (far past or future vendor times), so an insert never fails for want of one.

One maintenance round (a ``BackgroundLoop`` of the read model, hourly by default):

1. **Partitions ahead**: the current month and ``partition_months_ahead`` months after it exist.
   A month the default partition already holds rows of is made by moving those rows into a new
   table and attaching it, since PostgreSQL refuses to create a partition over rows its default
   partition holds. Partitions carry no grants (the schema's default privileges would give the API
   role rights on them): every query goes through the partitioned table and its row-level security.
2. **Retention**: a record is kept ``days`` after its vendor time, where ``days`` is the longest
   retention of the companies its vendor tenant (integration + QRadar domain or XSOAR account) is
   mapped to — a
   company's own (``record_retention``) or else the deployment's ``record_retention_days``; 0 keeps
   for ever. Partitions are by time, not by company, so:
   - a **whole partition** is dropped once its month ended before every company's retention (none
     keeps for ever) — and, while the deployment keeps unmapped records for ever, only if it holds
     no record of an unmapped vendor tenant;
   - otherwise a company's records past its retention are deleted in **bounded batches**
     (``record_retention_batch`` rows a statement, oldest first, at most
     ``record_retention_max_batches`` statements per table and round; the next round goes on).
   An offense or incident removed either way takes its notes, its threat-intel observables and
   matches, its filter terms and its share of the dashboard rollups with it, in the same statement (under the consumers' lock of
   the table, as their upserts maintain the rollups). Records of a vendor tenant mapped to no
   company are removed only with their partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from soc_shared.db import Database
from soc_shared.loop import BackgroundLoop
from soc_shared.provision import TENANT_APP_ROLE
from sqlalchemy import text

from soc_tenant.readmodel import ingest


@dataclass(frozen=True)
class Family:
    """One partitioned table of vendor records."""

    table: str
    column: str  # the partition key: the vendor's time for the record, never changed
    lock_key: int  # the consumers' advisory lock of the table
    # what a removed row carries on (``gone``) and the statements removing what hangs off it
    gone_columns: str = ""
    retire: str = ""
    # the vendor tenant of a row (with ``integration_id``) and the mapping table naming its companies
    scope: str = "domain_id"
    mapping: str = "qradar_mapping"

    @property
    def default(self) -> str:
        return f"{self.table}_default"

    def partition(self, month: datetime) -> str:
        return f"{self.table}_p{month:%Y%m}"


OFFENSE_RETIRE = (
    """,
notes AS (
    DELETE FROM qradar_offense_notes n USING gone g
    WHERE n.integration_id = g.integration_id AND n.offense_id = g.offense_id RETURNING 1),
observables AS (
    DELETE FROM ti_observable x USING gone g
    WHERE x.record_type = 'offense' AND x.integration_id = g.integration_id
      AND x.scope = g.domain_id::text AND x.record_key = g.offense_id::text RETURNING 1),
matches AS (
    DELETE FROM ti_match x USING gone g, qradar_mapping m
    WHERE m.integration_id::text = g.integration_id AND m.domain_id = g.domain_id
      AND x.company_id = m.company_id AND x.record_type = 'offense' AND x.integration_id = g.integration_id
      AND x.scope = g.domain_id::text AND x.record_key = g.offense_id::text RETURNING 1),
delta AS (SELECT integration_id, domain_id, start_time, severity, status, categories, -1 AS d FROM gone)"""
    + ingest.OFFENSE_ROLLUPS
)

# The incident rollups of the consumer's statement, without its filter lookups (which read ``up``).
INCIDENT_COUNTS = ingest.INCIDENT_ROLLUPS.split(",\n-- The filter lookups")[0]
if "up u" in INCIDENT_COUNTS:  # pragma: no cover - the consumer's statement changed shape
    raise RuntimeError("the incident rollups read the upsert's rows: retiring incidents needs its own")
INCIDENT_RETIRE = (
    """,
notes AS (
    DELETE FROM soar_note n USING gone g
    WHERE n.integration_id = g.integration_id AND n.account = g.account AND n.incident_id = g.incident_id
    RETURNING 1),
terms AS (DELETE FROM soar_incident_term x USING gone g WHERE x.id = g.id RETURNING 1),
observables AS (
    DELETE FROM ti_observable x USING gone g
    WHERE x.record_type = 'incident' AND x.integration_id = g.integration_id
      AND x.scope = g.account AND x.record_key = g.incident_id RETURNING 1),
matches AS (
    DELETE FROM ti_match x USING gone g, soar_mapping m
    WHERE m.integration_id::text = g.integration_id AND m.account = g.account
      AND x.company_id = m.company_id AND x.record_type = 'incident' AND x.integration_id = g.integration_id
      AND x.scope = g.account AND x.record_key = g.incident_id RETURNING 1),
delta AS (SELECT integration_id, account, created, priority, severity, status, type, owner, -1 AS d FROM gone)"""
    + INCIDENT_COUNTS
)

OFFENSES = Family(
    "qradar_offense",
    "start_time",
    ingest.OFFENSE.lock_key,
    "integration_id, offense_id, domain_id, start_time, severity, status, categories",
    OFFENSE_RETIRE,
)
INCIDENTS = Family(
    "soar_incident",
    "created",
    ingest.INCIDENT.lock_key,
    "id, integration_id, account, incident_id, created, priority, severity, status, type, owner",
    INCIDENT_RETIRE,
    scope="account",
    mapping="soar_mapping",
)
FAMILIES: tuple[Family, ...] = (
    OFFENSES,
    INCIDENTS,
    Family("eps_sample", "window_start", ingest.TARGETS["siem.eps.sampled"].lock_key),
    Family("metric_sample", "window_start", ingest.TARGETS["siem.metric.sampled"].lock_key),
)

_PARTITION = re.compile(r"_p(\d{4})(\d{2})$")

# The retention of every mapped vendor tenant: the longest of its companies' (0: one keeps for ever).
SCOPES = """
SELECT m.integration_id::text AS integration_id, m.{scope} AS scope,
       CASE WHEN bool_or(coalesce(r.days, :default_days) = 0) THEN 0
            ELSE max(coalesce(r.days, :default_days)) END AS days
FROM {mapping} m LEFT JOIN record_retention r ON r.company_id = m.company_id
GROUP BY 1, 2"""


def month_start(at: datetime, add: int = 0) -> datetime:
    at = at.astimezone(UTC)
    n = at.year * 12 + at.month - 1 + add
    return datetime(n // 12, n % 12 + 1, 1, tzinfo=UTC)


@dataclass
class Round:
    """What one maintenance round did."""

    created: list[str]
    dropped: list[str]
    deleted: dict[str, int]


async def _lock(conn: Any, family: Family) -> None:
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(:k), set_config('lock_timeout', '10s', true)"),
        {"k": family.lock_key},
    )


async def partitions_of(conn: Any, family: Family) -> dict[str, datetime | None]:
    """Every partition of the table with the month it holds (None: the default partition)."""
    rows = (
        await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST(:t AS regclass)"
            ),
            {"t": family.table},
        )
    ).scalars()
    out: dict[str, datetime | None] = {}
    for name in rows:
        m = _PARTITION.search(name)
        out[name] = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC) if m else None
    return out


async def ensure_partition(db: Database, family: Family, month: datetime) -> bool:
    """Make the partition of ``month`` if it is missing (moving any rows of that month out of the
    default partition into it); True when it was made."""
    lo, hi = month_start(month), month_start(month, 1)
    name = family.partition(lo)
    async with db.engine.begin() as conn:
        if name in await partitions_of(conn, family):
            return False
        await _lock(conn, family)
        if name in await partitions_of(conn, family):  # another replica's round made it meanwhile
            return False
        bounds = f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
        held = (
            await conn.execute(
                text(
                    f"SELECT EXISTS (SELECT 1 FROM {family.default} WHERE {family.column} >= :lo "
                    f"AND {family.column} < :hi)"
                ),
                {"lo": lo, "hi": hi},
            )
        ).scalar_one()
        if not held:
            await conn.execute(text(f"CREATE TABLE {name} PARTITION OF {family.table} {bounds}"))
        else:
            await conn.execute(text(f"CREATE TABLE {name} (LIKE {family.table} INCLUDING DEFAULTS)"))
            await conn.execute(
                text(
                    f"WITH moved AS (DELETE FROM {family.default} WHERE {family.column} >= :lo "
                    f"AND {family.column} < :hi RETURNING *) INSERT INTO {name} SELECT * FROM moved"
                ),
                {"lo": lo, "hi": hi},
            )
            await conn.execute(text(f"ALTER TABLE {family.table} ATTACH PARTITION {name} {bounds}"))
        await conn.execute(text(f"REVOKE ALL ON {name} FROM {TENANT_APP_ROLE}"))
    logger.info("read model: partition {} made{}", name, " (rows moved from the default)" if held else "")
    return True


async def _retention(conn: Any, family: Family, default_days: int) -> tuple[list[tuple[str, Any, int]], bool]:
    """(integration, vendor tenant, days) of every mapped vendor tenant, and whether none keeps for ever."""
    sql = SCOPES.format(scope=family.scope, mapping=family.mapping)
    rows = (await conn.execute(text(sql), {"default_days": default_days})).all()
    scopes = [(r.integration_id, r.scope, int(r.days)) for r in rows]
    return scopes, all(days > 0 for _, _, days in scopes)


async def drop_partitions(db: Database, family: Family, default_days: int, now: datetime) -> list[str]:
    """Drop the monthly partitions whose month ended before every company's retention."""
    async with db.engine.connect() as conn:
        scopes, bounded = await _retention(conn, family, default_days)
        parts = await partitions_of(conn, family)
    if not bounded or (not scopes and default_days == 0):
        return []
    longest = max([days for _, _, days in scopes] + [default_days])
    horizon = now - timedelta(days=longest)
    dropped = []
    for name, month in sorted(parts.items(), key=lambda x: x[1] or now):
        if month is None or month_start(month, 1) > horizon:
            continue
        async with db.engine.begin() as conn:
            await _lock(conn, family)
            if name not in await partitions_of(conn, family):  # another replica's round dropped it
                continue
            if default_days == 0:
                unmapped = (
                    await conn.execute(
                        text(
                            f"SELECT EXISTS (SELECT 1 FROM {name} p WHERE NOT EXISTS (SELECT 1 FROM {family.mapping} m "
                            f"WHERE m.integration_id::text = p.integration_id AND m.{family.scope} = p.{family.scope}))"
                        )
                    )
                ).scalar_one()
                if unmapped:
                    continue
            if family.retire:
                await conn.execute(
                    text(
                        f"WITH gone AS (SELECT {family.gone_columns} FROM {name}){family.retire}\nSELECT count(*) FROM gone"
                    )
                )
            await conn.execute(text(f"DROP TABLE {name}"))
        dropped.append(name)
        logger.info("read model retention: partition {} dropped", name)
    return dropped


async def delete_expired(
    db: Database, family: Family, default_days: int, now: datetime, *, batch: int, max_batches: int
) -> int:
    """Delete the records past their companies' retention, oldest first, ``batch`` rows a statement."""
    async with db.engine.connect() as conn:
        scopes, _ = await _retention(conn, family, default_days)
    col = family.column
    deleted = batches = 0
    returning = f" RETURNING {family.gone_columns}" if family.retire else " RETURNING 1"
    for integration_id, scope, days in scopes:
        if days == 0:
            continue
        cutoff = now - timedelta(days=days)
        where = f"integration_id = :i AND {family.scope} = :s AND {col} < :cutoff"
        while batches < max_batches:
            batches += 1
            async with db.engine.begin() as conn:
                await _lock(conn, family)
                # The time of the (batch+1)-th oldest row bounds this statement to ``batch`` rows.
                bound = (
                    await conn.execute(
                        text(
                            f"SELECT {col} FROM {family.table} WHERE {where} ORDER BY {col} LIMIT 1 OFFSET :n"
                        ),
                        {"i": integration_id, "s": scope, "cutoff": cutoff, "n": batch},
                    )
                ).scalar_one_or_none()
                upto = cutoff if bound is None else bound
                params = {"i": integration_id, "s": scope, "cutoff": cutoff, "upto": upto}
                # Rows sharing the bound's time all go when none is older (else the loop would stall).
                for op in ("<", "<="):
                    n = (
                        await conn.execute(
                            text(
                                f"WITH gone AS (DELETE FROM {family.table} WHERE {where} AND {col} {op} :upto"
                                f"{returning}){family.retire}\nSELECT count(*) FROM gone"
                            ),
                            params,
                        )
                    ).scalar_one()
                    if n or bound is None:
                        break
            deleted += n
            if bound is None:
                break
    return deleted


async def maintain(db: Database, settings: Any, now: datetime | None = None) -> Round:
    """One round: partitions ahead, then retention (whole partitions first, then batches)."""
    now = now or datetime.now(UTC)
    done = Round([], [], {})
    for family in FAMILIES:
        for ahead in range(settings.partition_months_ahead + 1):
            month = month_start(now, ahead)
            if await ensure_partition(db, family, month):
                done.created.append(family.partition(month))
        done.dropped += await drop_partitions(db, family, settings.record_retention_days, now)
        done.deleted[family.table] = await delete_expired(
            db,
            family,
            settings.record_retention_days,
            now,
            batch=settings.record_retention_batch,
            max_batches=settings.record_retention_max_batches,
        )
        if done.deleted[family.table]:
            logger.info("read model retention: {} {} rows deleted", done.deleted[family.table], family.table)
    return done


def maintenance_loop(db: Database, settings: Any) -> BackgroundLoop:
    async def step() -> None:
        await maintain(db, settings)

    return BackgroundLoop(
        "read-model-partitions",
        step,
        interval=settings.partition_maintenance_interval_seconds,
        max_backoff=settings.partition_maintenance_interval_seconds,
        immediate=True,
    )
