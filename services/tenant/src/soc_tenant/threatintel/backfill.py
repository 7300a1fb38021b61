"""Backfill of threat-intel observables: records stored before matching existed (or restored from a
dump) are extracted and matched like records arriving on the bus.

The read model's rows are walked per record type (offenses, incidents, tickets, alerts) in id
order, :data:`BATCH` rows per transaction; a row whose observables are already stored at its
version is skipped. Each batch goes through the consumer's own code path
(``timatch.write_and_match``): the same advisory lock, the same version guard (a newer version
stored meanwhile by the consumer is never overwritten), the same matching both ways and the same
``ti.match.found`` events. The last id done is kept per record type in ``ti_backfill`` in the
batch's transaction, so a stopped run resumes where it left off and a finished one costs one
query per type at the next start. ``python -m soc_tenant ti-backfill`` runs it to the end; the
service runs it in the background after its consumers start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from loguru import logger
from soc_shared.db import Database
from soc_shared.loop import BackgroundLoop

from soc_tenant.threatintel import matching as timatch
from soc_tenant.threatintel import observables as obs

BATCH = 500
REMATCH_EVERY = 60.0


def _objects(items: Any) -> list[Any]:
    """A stored JSON list of ``{"id", "name", ...}`` as the objects the extractors read."""
    if not isinstance(items, list):
        return []
    return [SimpleNamespace(name=x.get("name")) for x in items if isinstance(x, dict)]


def _text(value: Any) -> str:
    return "" if value is None else str(value).replace("\x00", "")


@dataclass(frozen=True)
class Source:
    record_type: str
    table: str
    scope: str
    key: str
    seen_at: str
    columns: str

    def record(self, row: dict[str, Any]) -> timatch.Record:
        r = SimpleNamespace(**row)
        if self.record_type == "offense":
            found = obs.extract(
                r.offense_source,
                r.source_addresses,
                r.local_destination_addresses,
                r.description,
                r.categories,
                [x.name for x in _objects(r.rules) if x.name],
                [x.name for x in _objects(r.log_sources) if x.name],
            )
        elif self.record_type == "incident":
            found = obs.incident_observables(r)
        elif self.record_type == "ticket":
            found = obs.ticket_observables(r)
        else:
            found = obs.extract(
                r.title, r.content, r.card_info, r.event, [x.name for x in _objects(r.tags) if x.name]
            )
        seen_at: datetime | None = row["seen_at"]
        return (
            self.record_type,
            row["integration_id"],
            _text(row["scope"]),
            _text(row["record_key"]),
            row["version"],
            seen_at,
            found,
        )


SOURCES = (
    Source(
        "offense",
        "qradar_offense",
        "domain_id::text",
        "offense_id::text",
        "coalesce(last_updated_time, start_time)",
        "offense_source, source_addresses, local_destination_addresses, description, categories, rules, "
        "log_sources",
    ),
    Source(
        "incident",
        "soar_incident",
        "account",
        "incident_id",
        "coalesce(modified, created)",
        "name, source_ips, mitre_techniques, rules, configuration_item, close_notes, custom_fields",
    ),
    Source(
        "ticket",
        "itsm_ticket",
        "account_id",
        "ticket_id",
        "coalesce(last_updated_time, created_time)",
        "subject, short_description, resolution",
    ),
    Source(
        "alert",
        "ti_alert",
        "coalesce(company_id::text, '')",
        "short_id",
        "published_time",
        "title, content, card_info, event, tags",
    ),
)


def _select(source: Source) -> str:
    # Rows after the cursor whose observables are not stored at their version (a record without
    # any indicator has none stored: it is extracted once, then the cursor passes it).
    return f"""
SELECT x.id, x.integration_id, x.scope, x.record_key, x.version, x.seen_at, {source.columns}
FROM (SELECT *, {source.scope} AS scope, {source.key} AS record_key, {source.seen_at} AS seen_at
      FROM {source.table} WHERE id > %(after)s ORDER BY id LIMIT %(limit)s) x
WHERE NOT EXISTS (SELECT 1 FROM ti_observable o
                  WHERE o.record_type = %(record_type)s AND o.integration_id = x.integration_id
                    AND o.scope = x.scope AND o.record_key = x.record_key AND o.version >= x.version)
ORDER BY x.id"""


async def run_batch(
    db: Database,
    source: Source,
    *,
    bus: Any = None,
    batch: int = BATCH,
    record_days: int = 30,
    alert_days: int = 365,
) -> tuple[int, int, int] | None:
    """One batch of one record type in one transaction: (rows walked, records extracted, new
    matches), or None when the type is done."""
    async with db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        pg: Any = raw.driver_connection
        async with pg.cursor() as cur:
            await cur.execute(
                "INSERT INTO ti_backfill (record_type) VALUES (%s) ON CONFLICT DO NOTHING",
                (source.record_type,),
            )
            await cur.execute(
                "SELECT last_id FROM ti_backfill WHERE record_type = %s FOR UPDATE", (source.record_type,)
            )
            row = await cur.fetchone()
            after = int(row[0]) if row else 0
            await cur.execute(
                f"SELECT max(id), count(*) FROM (SELECT id FROM {source.table} WHERE id > %s "  # noqa: S608
                "ORDER BY id LIMIT %s) w",
                (after, batch),
            )
            last, walked = await cur.fetchone() or (None, 0)
            if last is None:
                return None
            await cur.execute(
                _select(source), {"after": after, "limit": batch, "record_type": source.record_type}
            )
            names = [d.name for d in cur.description or []]
            rows = [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
        records = [source.record(r) for r in rows]
        matches = await timatch.write_and_match(pg, records, record_days=record_days, alert_days=alert_days)
        if matches and bus is not None:
            await bus.publish(timatch.match_events(matches))
        async with pg.cursor() as cur:
            await cur.execute(
                "UPDATE ti_backfill SET last_id = %s, records = records + %s, updated_at = now() "
                "WHERE record_type = %s",
                (last, len(records), source.record_type),
            )
    return int(walked), len(records), len(matches)


async def backfill(
    db: Database,
    *,
    bus: Any = None,
    batch: int = BATCH,
    max_batches: int | None = None,
    record_days: int = 30,
    alert_days: int = 365,
    pause: float = 0.0,
) -> dict[str, int]:
    """Walk every record type to the end (or ``max_batches`` batches in all); return the counts.
    Records first, then alerts: an alert's batch then matches every record already extracted."""
    totals = {"walked": 0, "extracted": 0, "matches": 0, "batches": 0}
    for source in SOURCES:
        while max_batches is None or totals["batches"] < max_batches:
            done = await run_batch(
                db, source, bus=bus, batch=batch, record_days=record_days, alert_days=alert_days
            )
            if done is None:
                break
            totals["batches"] += 1
            totals["walked"] += done[0]
            totals["extracted"] += done[1]
            totals["matches"] += done[2]
            if pause:
                await asyncio.sleep(pause)
    return totals


MAPPINGS = (
    ("offense", "qradar_mapping", "domain_id::text"),
    ("incident", "soar_mapping", "account"),
    ("ticket", "itsm_mapping", "account_id"),
)


async def rematch_mappings(
    db: Database,
    since: datetime,
    *,
    bus: Any = None,
    batch: int = BATCH,
    record_days: int = 30,
    alert_days: int = 365,
) -> int:
    """Match again the stored records (seen within ``record_days``) of every vendor tenant whose
    entitlement may have grown after ``since``: matching resolves a record's company and what it
    is entitled to when the record or an alert arrives, so records and alerts both stored before
    the change would otherwise never meet. A vendor tenant is matched again when

    - its mapping was made, changed or re-activated;
    - its company's ``is_default_threat_intel`` is on and the company changed (the flag switched
      on later: the default feeds' alerts are now its own);
    - a threat-intel integration of its company changed (e.g. moved to this company: its
      broadcast alerts are now the company's);
    - a default feed was named, for a company with the flag on.

    Only new matches are stored and published (on ``bus``); a second pass finds none. Returns
    how many were found."""
    found = 0
    for record_type, table, key in MAPPINGS:
        async with db.engine.begin() as conn:
            raw = await conn.get_raw_connection()
            pg: Any = raw.driver_connection
            async with pg.cursor() as cur:
                await cur.execute(
                    f"SELECT DISTINCT m.integration_id, m.{key} FROM {table} m "  # noqa: S608 - fixed names
                    "WHERE m.active AND (m.updated_at > %(since)s"
                    " OR EXISTS (SELECT 1 FROM company c WHERE c.id = m.company_id AND c.is_default_threat_intel"
                    "            AND (c.updated_at > %(since)s"
                    "                 OR EXISTS (SELECT 1 FROM ti_default_feed f WHERE f.set_at > %(since)s)))"
                    " OR EXISTS (SELECT 1 FROM integration i WHERE i.company_id = m.company_id"
                    "            AND i.integration_type = 'THREAT_INTELLIGENCE' AND i.deleted_at IS NULL"
                    "            AND i.updated_at > %(since)s))",
                    {"since": since},
                )
                tenants = await cur.fetchall()
        for integration_id, scope in tenants:
            after = ""
            while True:
                async with db.engine.begin() as conn:
                    raw = await conn.get_raw_connection()
                    pg = raw.driver_connection
                    async with pg.cursor() as cur:
                        await cur.execute(
                            "SELECT record_key, max(version) FROM ti_observable WHERE record_type = %s "
                            "AND integration_id = %s AND scope = %s AND record_key > %s AND NOT private "
                            "AND seen_at >= now() - make_interval(days => %s) "
                            "GROUP BY record_key ORDER BY record_key LIMIT %s",
                            (record_type, str(integration_id), str(scope), after, record_days, batch),
                        )
                        rows = await cur.fetchall()
                    if not rows:
                        break
                    after = rows[-1][0]
                    matches = await timatch.rematch(
                        pg,
                        [(record_type, str(integration_id), str(scope), k, v) for k, v in rows],
                        record_days=record_days,
                        alert_days=alert_days,
                    )
                    if matches and bus is not None:
                        await bus.publish(timatch.match_events(matches))
                    found += len(matches)
    return found


async def run_in_background(db: Database, bus: Any, settings: Any) -> None:
    """The service's start: backfill to the end, gently (a short pause between batches), logging
    what it did; then, every :data:`REMATCH_EVERY` seconds, match again the records of vendor
    tenants mapped since the last pass (the first pass looks back ``ti_match_lookback_days``: a
    mapping made while the service was down is caught). An error is logged and retried later."""
    record_days = getattr(settings, "ti_match_lookback_days", 30)
    alert_days = getattr(settings, "ti_alert_max_age_days", 365)
    since = datetime.now(UTC) - timedelta(days=record_days)
    try:
        totals = await backfill(
            db,
            bus=bus,
            record_days=getattr(settings, "ti_match_lookback_days", 30),
            alert_days=getattr(settings, "ti_alert_max_age_days", 365),
            pause=0.05,
        )
        if totals["extracted"]:
            logger.info(
                "threat-intel backfill: {} records walked, {} extracted, {} new matches",
                totals["walked"],
                totals["extracted"],
                totals["matches"],
            )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a background job: logged, resumed at the next start
        logger.warning("threat-intel backfill stopped: {}", type(exc).__name__)

    async def rematch() -> None:
        nonlocal since
        started = datetime.now(UTC)
        found = await rematch_mappings(db, since, bus=bus, record_days=record_days, alert_days=alert_days)
        since = started - timedelta(seconds=5)  # a mapping committed during the pass is seen again
        if found:
            logger.info("threat-intel: {} new matches after mapping or entitlement changes", found)

    # A failed pass is logged and retried after a backoff; cancelling the task ends the loop.
    await BackgroundLoop("ti-rematch", rematch, interval=REMATCH_EVERY, immediate=True).run()
