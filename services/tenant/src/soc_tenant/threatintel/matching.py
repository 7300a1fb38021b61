"""Threat-intel matching as data arrives, inside the read model's batch transaction.

For each offense, incident, ticket and alert of a batch (its newest version), the observables are
extracted (``readmodel.observables``) and merged into ``ti_observable``: ones the record no longer
names are removed, ones it still names keep their first sighting. Then, both ways:

- a new or changed offense/incident/ticket's indicators are looked up among the alerts (published within
  ``ti_alert_max_age_days``) the record's company is entitled to: alerts addressed to it, broadcast
  alerts of its own threat-intel integrations, and broadcast alerts of the default feeds when its
  ``is_default_threat_intel`` flag is set;
- a new or changed alert's indicators are looked up among the offenses, incidents and tickets seen within
  the look-back window (``ti_match_lookback_days``) of every company entitled to that alert.

Each (company, record, alert, indicator) is stored once in ``ti_match`` (first and last seen). The
new ones are published as ``ti.match.found`` before the transaction commits, with a deterministic
event id: a batch retried after a failed commit publishes the same ids again (subscribers dedupe on
the id), never a match that was not stored. Private observables and MITRE technique ids (shared by
too many unrelated records to mean anything) are never matched.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from soc_shared.events import CloudEvent, Payload, TiMatchFound, make_event

from soc_tenant.threatintel import observables as obs

LOCK_KEY = zlib.crc32(b"soc_tenant.readmodel.ti_observable")
MAX_VALUE = 1_100  # the table's check; the extractor never produces longer ones

Record = tuple[str, str, str, str, int, datetime | None, list[obs.Observable]]


def _text(value: str | None) -> str:
    return (value or "").replace("\x00", "")


def record_of(envelope: CloudEvent, payload: Payload, routing_key: str, integration_id: str) -> Record | None:
    """(record type, integration, scope, key, version, seen at, observables) of one delivery."""
    p: Any = payload
    if routing_key == "siem.offense.upserted":
        return (
            "offense",
            integration_id,
            str(p.domain_id),
            str(p.offense_id),
            p.version,
            p.last_updated_time or p.start_time,
            obs.offense_observables(p),
        )
    if routing_key == "soar.incident.upserted":
        return (
            "incident",
            integration_id,
            _text(p.account),
            _text(p.incident_id),
            p.version,
            p.modified or p.created,
            obs.incident_observables(p),
        )
    if routing_key == "itsm.ticket.upserted":
        return (
            "ticket",
            integration_id,
            _text(p.account_id),
            _text(p.ticket_id),
            p.version,
            p.last_updated_time or p.created_time,
            obs.ticket_observables(p),
        )
    if routing_key == "ti.alert.upserted":
        return (
            "alert",
            integration_id,
            _text(p.company_id),
            _text(p.short_id),
            p.version,
            p.published_time,
            obs.alert_observables(p),
        )
    return None


def _key(routing_key: str, p: Any) -> tuple[str, str, str]:
    if routing_key == "siem.offense.upserted":
        return ("offense", str(p.domain_id), str(p.offense_id))
    if routing_key == "soar.incident.upserted":
        return ("incident", _text(p.account), _text(p.incident_id))
    if routing_key == "itsm.ticket.upserted":
        return ("ticket", _text(p.account_id), _text(p.ticket_id))
    return ("alert", _text(p.company_id), _text(p.short_id))


def latest_records(
    deliveries: Sequence[tuple[CloudEvent, Payload, str]], integration_of: Any
) -> list[Record]:
    """One record per key, the highest version (its observables extracted once)."""
    best: dict[tuple[str, str, str, str], tuple[int, CloudEvent, Payload, str]] = {}
    for envelope, payload, routing_key in deliveries:
        if routing_key not in (
            "siem.offense.upserted",
            "soar.incident.upserted",
            "itsm.ticket.upserted",
            "ti.alert.upserted",
        ):
            continue
        p: Any = payload
        integration = integration_of(envelope)
        key = _key(routing_key, p)
        k = (key[0], integration, key[1], key[2])
        kept = best.get(k)
        if kept is None or kept[0] <= p.version:
            best[k] = (p.version, envelope, payload, routing_key)
    out = []
    for (_, integration, _, _), (_, envelope, payload, routing_key) in best.items():
        record = record_of(envelope, payload, routing_key, integration)
        if record is not None:
            out.append(record)
    return out


# ``cur`` probes ti_observable's key per batch record (LATERAL): joined plainly, the planner knows
# nothing of the temp table and may hash the whole table's public observables per batch, which
# made a backfill quadratic (bench/ti_backfill_bench.py: 0.6 s per 500-offense batch at 100k).
MATCH_SQL = """
WITH cur AS (
    SELECT o.record_type, o.integration_id, o.scope, o.record_key, o.kind, o.value
    FROM _in_ti_rec r CROSS JOIN LATERAL (
        SELECT n.record_type, n.integration_id, n.scope, n.record_key, n.kind, n.value
        FROM ti_observable n
        WHERE n.record_type = r.record_type AND n.integration_id = r.integration_id AND n.scope = r.scope
          AND n.record_key = r.record_key AND n.version = r.version AND NOT n.private AND n.kind <> 'mitre'
        OFFSET 0) o  -- kept a per-record probe (not pulled up into a join the planner may hash)
),
pairs AS (
    SELECT c.record_type, c.integration_id, c.scope, c.record_key,
           a.integration_id AS a_int, a.record_key AS a_key, a.scope AS a_scope, c.kind, c.value
    FROM cur c JOIN ti_observable a
      ON a.kind = c.kind AND a.value = c.value AND a.record_type = 'alert' AND NOT a.private
     AND a.seen_at >= now() - make_interval(days => %(alert_days)s)
    WHERE c.record_type IN ('offense', 'incident', 'ticket')
    UNION
    SELECT r.record_type, r.integration_id, r.scope, r.record_key,
           c.integration_id, c.record_key, c.scope, c.kind, c.value
    FROM cur c JOIN ti_observable r
      ON r.kind = c.kind AND r.value = c.value AND r.record_type IN ('offense', 'incident', 'ticket')
     AND NOT r.private
     AND r.seen_at >= now() - make_interval(days => %(record_days)s)
    WHERE c.record_type = 'alert'
),
owned AS (
    SELECT p.*, m.company_id FROM pairs p JOIN qradar_mapping m
      ON p.record_type = 'offense' AND m.active AND m.integration_id::text = p.integration_id
     AND m.domain_id::text = p.scope
    UNION
    SELECT p.*, m.company_id FROM pairs p JOIN soar_mapping m
      ON p.record_type = 'incident' AND m.active AND m.integration_id::text = p.integration_id
     AND m.account = p.scope
    UNION
    SELECT p.*, m.company_id FROM pairs p JOIN itsm_mapping m
      ON p.record_type = 'ticket' AND m.active AND m.integration_id::text = p.integration_id
     AND m.account_id = p.scope
),
entitled AS (
    SELECT o.* FROM owned o
    WHERE o.a_scope = o.company_id::text
       OR (o.a_scope = '' AND EXISTS (
            SELECT 1 FROM integration i
            WHERE i.id::text = o.a_int AND i.deleted_at IS NULL AND i.company_id = o.company_id))
       OR (o.a_scope = '' AND EXISTS (SELECT 1 FROM ti_default_feed f WHERE f.integration_id = o.a_int)
           AND EXISTS (SELECT 1 FROM company co WHERE co.id = o.company_id AND co.is_default_threat_intel))
),
ins AS (
    INSERT INTO ti_match AS t (company_id, record_type, integration_id, scope, record_key,
                               alert_integration_id, alert_short_id, kind, value)
    SELECT DISTINCT company_id, record_type, integration_id, scope, record_key, a_int, a_key, kind, value
    FROM entitled
    ON CONFLICT (company_id, record_type, integration_id, scope, record_key,
                 alert_integration_id, alert_short_id, kind, value)
    DO UPDATE SET last_seen = now()
    RETURNING t.company_id, t.record_type, t.integration_id, t.scope, t.record_key,
              t.alert_integration_id, t.alert_short_id, t.kind, t.value, t.first_seen, (t.xmax = 0) AS inserted
)
SELECT ins.company_id::text, ins.record_type, ins.integration_id, ins.scope, ins.record_key,
       ins.alert_integration_id, ins.alert_short_id, ins.kind, ins.value, ins.first_seen,
       al.title, al.tlp
FROM ins LEFT JOIN ti_alert al ON al.integration_id = ins.alert_integration_id AND al.short_id = ins.alert_short_id
WHERE ins.inserted
"""


async def write_and_match(
    pg: Any, records: Sequence[Record], *, record_days: int, alert_days: int
) -> list[TiMatchFound]:
    """Merge the records' observables and store their new matches (``pg``: the batch's psycopg
    connection, inside its transaction); return the matches stored for the first time."""
    if not records:
        return []
    async with pg.cursor() as cur:
        await cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _in_ti_obs (LIKE ti_observable INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        await cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _in_ti_rec (record_type text, integration_id text, scope text, "
            "record_key text, version bigint) ON COMMIT DELETE ROWS"
        )
        async with cur.copy(
            "COPY _in_ti_rec (record_type, integration_id, scope, record_key, version) FROM STDIN"
        ) as copy:
            for rtype, integration, scope, key, version, _, _ in records:
                await copy.write_row((rtype, integration, scope, key, version))
        async with cur.copy(
            "COPY _in_ti_obs (record_type, integration_id, scope, record_key, kind, value, private, "
            "version, seen_at) FROM STDIN"
        ) as copy:
            for rtype, integration, scope, key, version, seen_at, found in records:
                for o in found:
                    if len(o.value) <= MAX_VALUE:
                        await copy.write_row(
                            (rtype, integration, scope, key, o.kind, o.value, o.private, version, seen_at)
                        )
        await cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        # What a record no longer names (the same or a newer version arrived) goes. Both statements
        # probe ti_observable's key per batch record (LATERAL, scalar max): joined plainly, the
        # planner knows nothing of the temp tables and scans every stored observable (seconds at
        # 1M records; bench/ti_match_bench.py).
        await cur.execute("SET LOCAL enable_hashjoin = off")
        await cur.execute("""
DELETE FROM ti_observable o
USING (SELECT x.ctid AS row_id
       FROM _in_ti_rec r
       CROSS JOIN LATERAL (
           SELECT n.ctid, n.kind, n.value FROM ti_observable n
           WHERE n.record_type = r.record_type AND n.integration_id = r.integration_id
             AND n.scope = r.scope AND n.record_key = r.record_key AND n.version <= r.version) x
       WHERE NOT EXISTS (SELECT 1 FROM _in_ti_obs i
                         WHERE i.record_type = r.record_type AND i.integration_id = r.integration_id
                           AND i.scope = r.scope AND i.record_key = r.record_key
                           AND i.kind = x.kind AND i.value = x.value)) gone
WHERE o.ctid = gone.row_id""")
        await cur.execute("SET LOCAL enable_hashjoin = on")
        # an older version never overwrites a newer one's observables
        await cur.execute("""
INSERT INTO ti_observable AS o (record_type, integration_id, scope, record_key, kind, value, private, version,
                                seen_at)
SELECT i.record_type, i.integration_id, i.scope, i.record_key, i.kind, i.value, i.private, i.version,
       coalesce(i.seen_at, now())
FROM _in_ti_obs i JOIN _in_ti_rec r USING (record_type, integration_id, scope, record_key)
WHERE r.version >= coalesce((SELECT max(n.version) FROM ti_observable n
                             WHERE n.record_type = r.record_type AND n.integration_id = r.integration_id
                               AND n.scope = r.scope AND n.record_key = r.record_key), 0)
ON CONFLICT (record_type, integration_id, scope, record_key, kind, value) DO UPDATE
SET private = EXCLUDED.private, version = EXCLUDED.version, seen_at = EXCLUDED.seen_at, last_seen = now()
WHERE o.version <= EXCLUDED.version""")
        await cur.execute(MATCH_SQL, {"record_days": record_days, "alert_days": alert_days})
        rows = await cur.fetchall()
    return _found(rows)


async def rematch(
    pg: Any, keys: Sequence[tuple[str, str, str, str, int]], *, record_days: int, alert_days: int
) -> list[TiMatchFound]:
    """Match stored records again, their observables as stored (``keys``: record type, integration,
    scope, record key, the stored observables' version) — after a mapping made them a company's;
    return the matches stored for the first time."""
    if not keys:
        return []
    async with pg.cursor() as cur:
        await cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _in_ti_rec (record_type text, integration_id text, scope text, "
            "record_key text, version bigint) ON COMMIT DELETE ROWS"
        )
        async with cur.copy(
            "COPY _in_ti_rec (record_type, integration_id, scope, record_key, version) FROM STDIN"
        ) as copy:
            for key in keys:
                await copy.write_row(key)
        await cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        await cur.execute(MATCH_SQL, {"record_days": record_days, "alert_days": alert_days})
        rows = await cur.fetchall()
    return _found(rows)


def _found(rows: Sequence[Any]) -> list[TiMatchFound]:
    return [
        TiMatchFound(
            company_id=r[0],
            record_type=r[1],
            integration_id=r[2],
            record_scope=r[3],
            record_id=r[4],
            alert_integration_id=r[5],
            alert_short_id=r[6],
            indicator_kind=r[7],
            indicator=r[8],
            first_seen=r[9],
            alert_title=r[10],
            alert_tlp=r[11],
        )
        for r in rows
    ]


def match_events(matches: Sequence[TiMatchFound]) -> list[CloudEvent]:
    """``ti.match.found`` events with ids fixed by the match's identity."""
    return [
        make_event(
            "ti.match.found",
            m,
            source="/tenant/readmodel/ti-matches",
            subject=f"{m.company_id}/{m.record_type}/{m.integration_id}/{m.record_scope}/{m.record_id}",
            vendor_version=f"{m.alert_integration_id}/{m.alert_short_id}/{m.indicator_kind}/{m.indicator}",
            time=m.first_seen,
        )
        for m in matches
    ]
