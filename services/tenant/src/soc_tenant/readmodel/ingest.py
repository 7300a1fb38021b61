"""Events in: one BatchConsumer per concern, batched idempotent upserts, rollups in the same statement.

Each batch is one transaction on the owner role:

1. rows are built from the payloads (pure functions below) and deduplicated per key, keeping the
   highest version (a batch may hold several versions of one offense, in any order);
2. they are COPYed into a session-local temp table (``ON COMMIT DELETE ROWS``, created once per
   connection) and merged with one ``INSERT .. SELECT .. ON CONFLICT DO UPDATE .. WHERE
   stored.version <= excluded.version`` — a re-delivered or older version never overwrites a newer;
3. for offenses, incidents and tickets the same statement reads the rows as they were (``old``),
   and what the upsert actually wrote (``up`` … ``RETURNING``), and adds the difference to the
   daily rollup tables, so dashboards stay exact without scanning millions of rows.

Writers of one table are serialised with a transaction-level advisory lock, so two replicas can
never compute rollup deltas from the same stale ``old`` snapshot.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from fastapi import FastAPI
from loguru import logger
from soc_shared.bus import BatchConsumer, Delivery
from soc_shared.db import Database
from soc_shared.events import (
    CloudEvent,
    ItsmAccount,
    ItsmTicket,
    Payload,
    SiemDomain,
    SiemEpsSample,
    SiemEventCollector,
    SiemLogSource,
    SiemLogSourceGroup,
    SiemLogSourceType,
    SiemMetricSample,
    SiemOffense,
    SiemOffenseNotes,
    SoarAccount,
    SoarIncident,
    SoarNote,
    TiAlert,
    TiCategory,
    TiCustomField,
    TiGroup,
    TiTag,
)

Row = tuple[Any, ...]


# ------------------------------------------------------------------------------------- cleaning
def text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: a vendor string with one must not poison the batch."""
    if value is not None and "\x00" in value:
        return value.replace("\x00", "")
    return value


def _strip_nul(obj: Any) -> Any:
    if isinstance(obj, str):
        return obj.replace("\x00", "")
    if isinstance(obj, list):
        return [_strip_nul(x) for x in obj]
    if isinstance(obj, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in obj.items()}
    return obj


# orjson: a row carries up to six JSON columns, and json.dumps for them was the consumer's largest
# cost per row after decoding (12 µs → 2 µs per offense). The options keep the stdlib's output:
# datetimes through str(), non-string keys as strings.
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def _dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj, default=str, option=_JSON_OPTIONS).decode()
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits, which the stdlib can write
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def jsonb(obj: Any) -> str:
    dumped = _dumps(obj)
    if "\\u0000" in dumped:  # PostgreSQL's jsonb cannot hold NUL
        dumped = _dumps(_strip_nul(obj))
    return dumped


def models_json(items: list[Any]) -> str:
    """A JSON array of pydantic models (rules, log sources, references)."""
    if not items:
        return "[]"
    return jsonb([x.model_dump() for x in items])


def integration_of(envelope: CloudEvent) -> str:
    """The integration id: the envelope's extension, else the last segment of ``source``
    (``/siem-ingest/qradar/<integration_id>``)."""
    if envelope.integrationid:
        return envelope.integrationid
    parts = [p for p in envelope.source.split("/") if p]
    return parts[-1] if len(parts) >= 3 else ""


def micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


# ------------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """How one kind of payload lands in one table."""

    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    build: Callable[[CloudEvent, Any], Row]
    version_column: str = "version"
    touch: bool = True  # set updated_at = now() on every write
    rollup_columns: tuple[str, ...] = ()
    rollups: str = ""
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def lock_key(self) -> int:
        return zlib.crc32(f"soc_tenant.readmodel.{self.table}".encode())

    @property
    def temp(self) -> str:
        return f"_in_{self.table}"

    def key_of(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(k)] for k in self.key)

    def version_of(self, row: Row) -> Any:
        return row[self.columns.index(self.version_column)]

    def sql(self) -> str:
        cols = ", ".join(self.columns)
        key = ", ".join(self.key)
        sets = [f"{c} = {self.overrides.get(c, 'EXCLUDED.' + c)}" for c in self.columns if c not in self.key]
        if self.touch:
            sets.append("updated_at = now()")
        insert = (
            f"INSERT INTO {self.table} AS t ({cols}) SELECT {cols} FROM {self.temp} "
            f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)} "
            f"WHERE t.{self.version_column} <= EXCLUDED.{self.version_column}"
        )
        if not self.rollups:
            return insert
        carried = self.key + tuple(c for c in self.rollup_columns if c not in self.key)
        old_cols = ", ".join(f"t.{c}" for c in carried)
        return f"""
WITH old AS (SELECT {old_cols} FROM {self.table} t JOIN {self.temp} i USING ({key})),
up AS ({insert} RETURNING {", ".join(carried)}),
delta AS (
    SELECT {", ".join(carried)}, 1 AS d FROM up
    UNION ALL
    SELECT {", ".join("o." + c for c in carried)}, -1 AS d FROM old o JOIN up u USING ({key})
){self.rollups}
SELECT 1"""


async def write(pg: Any, target: Target, rows: Sequence[Row]) -> None:
    """COPY ``rows`` into the target's temp table and merge them (``pg`` is a psycopg
    AsyncConnection inside the batch's transaction)."""
    if not rows:
        return
    async with pg.cursor() as cur:
        await cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {target.temp} (LIKE {target.table} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        async with cur.copy(f"COPY {target.temp} ({', '.join(target.columns)}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        # The lock only around the merge: the COPY into this connection's own temp table overlaps
        # another batch's merge. Held to commit, it orders the merges of one table, so each one's
        # rollup delta (old row → new row) is computed against the rows the previous one committed.
        await cur.execute(
            "SELECT pg_advisory_xact_lock(%s), set_config('jit', 'off', true)", (target.lock_key,)
        )
        await cur.execute(target.sql())


def latest(target: Target, rows: Iterable[Row]) -> list[Row]:
    """One row per key: the highest version (the later one on a tie)."""
    best: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        k = target.key_of(row)
        kept = best.get(k)
        if kept is None or target.version_of(kept) <= target.version_of(row):
            best[k] = row
    return list(best.values())


# ------------------------------------------------------------------------------- row builders
def domain_row(e: CloudEvent, p: SiemDomain) -> Row:
    details = {
        "tenant_id": p.tenant_id,
        "event_collector_ids": p.event_collector_ids,
        "log_source_ids": p.log_source_ids,
    }
    return (
        integration_of(e),
        p.domain_id,
        text(p.name),
        text(p.description),
        p.deleted,
        jsonb(details),
        e.id,
        e.time,
    )


def collector_row(e: CloudEvent, p: SiemEventCollector) -> Row:
    return (
        integration_of(e),
        p.collector_id,
        text(p.name),
        p.host_id,
        text(p.component_name),
        micros(e.time),
    )


def log_source_type_row(e: CloudEvent, p: SiemLogSourceType) -> Row:
    return (integration_of(e), p.type_id, text(p.name), text(p.version), micros(e.time))


def log_source_group_row(e: CloudEvent, p: SiemLogSourceGroup) -> Row:
    return (
        integration_of(e),
        p.group_id,
        text(p.name),
        text(p.description),
        text(p.owner),
        p.parent_id,
        jsonb(p.child_group_ids),
        p.assignable,
        micros(e.time),
    )


def log_source_row(e: CloudEvent, p: SiemLogSource) -> Row:
    version = micros(p.modified_time) if p.modified_time else micros(e.time)
    return (
        integration_of(e),
        p.log_source_id,
        text(p.name),
        text(p.description),
        p.domain_id,
        p.type_id,
        text(p.type_name),
        p.event_collector_id,
        text(p.sending_ip),
        p.enabled,
        text(p.status),
        jsonb(p.status_messages),
        list(p.group_ids),
        p.average_eps,
        p.creation_time,
        p.modified_time,
        p.last_event_time,
        max(version, micros(e.time)),
    )


def offense_row(e: CloudEvent, p: SiemOffense) -> Row:
    return (
        integration_of(e),
        p.offense_id,
        p.domain_id,
        text(p.description),
        p.status.value,
        p.severity,
        p.magnitude,
        p.credibility,
        p.relevance,
        p.event_count,
        p.flow_count,
        text(p.assigned_to),
        jsonb(p.categories),
        models_json(p.rules),
        text(p.offense_source),
        p.offense_type,
        jsonb(p.source_address_ids),
        jsonb(p.local_destination_address_ids),
        jsonb(p.destination_networks),
        models_json(p.log_sources),
        p.start_time,
        p.last_updated_time,
        p.close_time,
        p.closing_reason_id,
        text(p.closing_reason),
        text(p.closing_user),
        p.follow_up,
        p.protected,
        p.version,
        e.id,
        p.last_persisted_time,
        None if p.notes is None else models_json(p.notes),
        jsonb(p.source_addresses),
        jsonb(p.local_destination_addresses),
    )


def offense_notes_row(e: CloudEvent, p: SiemOffenseNotes) -> Row:
    return (integration_of(e), p.offense_id, p.domain_id, models_json(p.notes), p.version, e.id)


def eps_row(e: CloudEvent, p: SiemEpsSample) -> Row:
    return (
        integration_of(e),
        p.domain_id,
        p.granularity.value,
        p.window_start,
        p.window_end,
        text(p.collector) or "",
        p.average_eps,
        p.peak_eps,
        micros(e.time),
    )


def metric_row(e: CloudEvent, p: SiemMetricSample) -> Row:
    return (
        integration_of(e),
        p.domain_id,
        text(p.family),
        p.granularity.value,
        p.window_start,
        p.window_end,
        jsonb(p.rows),
        micros(e.time),
    )


PRIORITY_OF_SEVERITY = {"critical": "P1", "high": "P2", "medium": "P3"}


def incident_priority(p: SoarIncident) -> str:
    """The incident's SLA level: its own priority, else one derived from the severity."""
    return p.priority or PRIORITY_OF_SEVERITY.get(p.severity.value, "P4")


def incident_row(e: CloudEvent, p: SoarIncident) -> Row:
    return (
        integration_of(e),
        p.incident_id,
        text(p.account) or "",
        text(p.name),
        text(p.type),
        p.status.value,
        p.severity.value,
        text(p.owner),
        text(p.playbook_id),
        text(p.investigation_id),
        p.created,
        p.modified,
        p.occurred,
        p.closed,
        text(p.close_reason),
        text(p.close_notes),
        text(p.closing_user_id),
        text(p.phase),
        incident_priority(p),
        p.tta_at,
        p.ttn_at,
        p.ttdn_at,
        p.initial_notification_at,
        jsonb(p.rules),
        jsonb(p.offense_ids),
        jsonb(p.log_source_types),
        jsonb(p.source_ips),
        jsonb(p.mitre_tactics),
        jsonb(p.mitre_techniques),
        text(p.qradar_category),
        text(p.qradar_subcategory),
        jsonb(p.low_level_categories),
        text(p.configuration_item),
        text(p.itsm_sync_status),
        p.sla,
        jsonb(p.custom_fields),
        p.version,
        e.id,
        p.priority,
    )


def soar_account_row(e: CloudEvent, p: SoarAccount) -> Row:
    return (integration_of(e), text(p.account_id), text(p.name), text(p.display_name), micros(e.time))


def note_row(e: CloudEvent, p: SoarNote) -> Row:
    return (
        integration_of(e),
        text(p.note_id),
        text(p.incident_id),
        text(p.account) or "",
        text(p.author),
        p.created,
        text(p.content),
        text(p.category),
        micros(e.time),
    )


def itsm_account_row(e: CloudEvent, p: ItsmAccount) -> Row:
    return (integration_of(e), text(p.account_id), text(p.name), micros(e.time))


def ticket_row(e: CloudEvent, p: ItsmTicket) -> Row:
    return (
        integration_of(e),
        text(p.ticket_id),
        text(p.account_id) or "",
        text(p.account_name),
        text(p.subject),
        text(p.short_description),
        text(p.status) or "",
        text(p.priority) or "",
        p.is_overdue,
        p.created_time or p.last_updated_time,
        p.last_updated_time,
        text(p.created_by_name),
        text(p.soar_incident_id),
        p.version,
        e.id,
        text(p.technician_name),
        text(p.resolution),
        text(p.request_url),
        text(p.reference),
    )


def alert_row(e: CloudEvent, p: TiAlert) -> Row:
    refs = lambda xs: jsonb([x.model_dump() for x in xs])  # noqa: E731
    return (
        integration_of(e),
        text(p.short_id),
        text(p.company_id),
        text(p.title),
        text(p.status),
        text(p.tlp),
        p.published_time,
        text(p.content),
        p.push_required,
        p.push_email_notification,
        text(p.tracking_id),
        text(p.card_image),
        text(p.card_info),
        text(p.event),
        text(p.intel_id),
        text(p.rfi_id),
        refs(p.groups),
        refs(p.recipient_groups),
        refs(p.tags),
        jsonb(p.category.model_dump()) if p.category else None,
        p.version,
        e.id,
    )


def tag_row(e: CloudEvent, p: TiTag) -> Row:
    return (
        integration_of(e),
        text(p.tag_id),
        text(p.company_id),
        text(p.tag_name),
        text(p.tag_slug),
        p.is_active,
        micros(e.time),
    )


def group_row(e: CloudEvent, p: TiGroup) -> Row:
    return (
        integration_of(e),
        text(p.group_id),
        text(p.company_id),
        text(p.group_name),
        text(p.group_tlp),
        text(p.group_type),
        p.allowed_for_intel_submission,
        p.allowed_for_rfi_submission,
        micros(e.time),
    )


def category_row(e: CloudEvent, p: TiCategory) -> Row:
    return (
        integration_of(e),
        text(p.category_id),
        text(p.company_id),
        text(p.category_name),
        jsonb(p.threat_indicator_fields),
        jsonb(p.additional_fields),
        jsonb(p.required_fields),
        micros(e.time),
    )


def custom_field_row(e: CloudEvent, p: TiCustomField) -> Row:
    return (
        integration_of(e),
        text(p.field_id),
        text(p.company_id),
        text(p.field_name),
        text(p.field_label),
        text(p.field_type),
        text(p.field_description),
        p.is_system,
        micros(e.time),
    )


# ------------------------------------------------------------------------------------- rollups
OFFENSE_ROLLUPS = """,
r_daily AS (
    INSERT INTO offense_daily AS r (integration_id, domain_id, day, severity, status, n)
    SELECT integration_id, domain_id, (start_time AT TIME ZONE 'UTC')::date, severity, status, sum(d)
    FROM delta GROUP BY 1, 2, 3, 4, 5 HAVING sum(d) <> 0
    ON CONFLICT (integration_id, domain_id, day, severity, status) DO UPDATE SET n = r.n + EXCLUDED.n
    RETURNING 1),
r_totals AS (
    INSERT INTO offense_totals AS r (integration_id, domain_id, severity, status, n)
    SELECT integration_id, domain_id, severity, status, sum(d)
    FROM delta GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0
    ON CONFLICT (integration_id, domain_id, severity, status) DO UPDATE SET n = r.n + EXCLUDED.n
    RETURNING 1),
r_category AS (
    INSERT INTO offense_category_daily AS r (integration_id, domain_id, day, category, n)
    SELECT integration_id, domain_id, (start_time AT TIME ZONE 'UTC')::date, c.category, sum(d)
    FROM delta CROSS JOIN LATERAL jsonb_array_elements_text(categories) AS c(category)
    GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0
    ON CONFLICT (integration_id, domain_id, day, category) DO UPDATE SET n = r.n + EXCLUDED.n
    RETURNING 1)"""

INCIDENT_ROLLUPS = """,
r_daily AS (
    INSERT INTO incident_daily AS r (integration_id, account, day, priority, severity, status, n)
    SELECT integration_id, account, (created AT TIME ZONE 'UTC')::date, priority, severity, status, sum(d)
    FROM delta GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(d) <> 0
    ON CONFLICT (integration_id, account, day, priority, severity, status) DO UPDATE SET n = r.n + EXCLUDED.n
    RETURNING 1),
r_totals AS (
    INSERT INTO incident_totals AS r (integration_id, account, priority, severity, status, n)
    SELECT integration_id, account, priority, severity, status, sum(d)
    FROM delta GROUP BY 1, 2, 3, 4, 5 HAVING sum(d) <> 0
    ON CONFLICT (integration_id, account, priority, severity, status) DO UPDATE SET n = r.n + EXCLUDED.n
    RETURNING 1),
r_facet AS (
    INSERT INTO incident_facet_daily AS r (integration_id, account, day, facet, value, n)
    SELECT integration_id, account, (created AT TIME ZONE 'UTC')::date, f.facet, f.value, sum(d)
    FROM delta CROSS JOIN LATERAL (VALUES ('type', coalesce(type, '')), ('owner', coalesce(owner, '')))
         AS f(facet, value)
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(d) <> 0
    ON CONFLICT (integration_id, account, facet, day, value) DO UPDATE SET n = r.n + EXCLUDED.n
    RETURNING 1),
-- The filter lookups (tables.soar_incident_term, soar_incident_value): list elements, and the
-- distinct configuration items, owners, phases and sync statuses, as rows a leakproof ``=`` finds
-- under row-level security.
terms AS (
    SELECT DISTINCT u.integration_id, u.account, f.field, lower(f.value) AS value, u.created, u.id
    FROM up u CROSS JOIN LATERAL (
        SELECT 'mitre_tactic', jsonb_array_elements_text(u.mitre_tactics)
        UNION ALL SELECT 'mitre_technique', jsonb_array_elements_text(u.mitre_techniques)
        UNION ALL SELECT 'use_case', jsonb_array_elements_text(u.rules)
    ) AS f(field, value)),
t_gone AS (
    DELETE FROM soar_incident_term x USING up u
    WHERE x.id = u.id AND NOT EXISTS (
        SELECT 1 FROM terms n
        WHERE n.id = x.id AND n.integration_id = x.integration_id AND n.account = x.account
          AND n.field = x.field AND n.value = x.value AND n.created = x.created)
    RETURNING 1),
t_new AS (
    INSERT INTO soar_incident_term (integration_id, account, field, value, created, id)
    SELECT integration_id, account, field, value, created, id FROM terms
    ON CONFLICT DO NOTHING
    RETURNING 1),
v_new AS (
    INSERT INTO soar_incident_value (integration_id, account, field, value)
    SELECT DISTINCT u.integration_id, u.account, f.field, f.value
    FROM up u CROSS JOIN LATERAL (VALUES ('configuration_item', u.configuration_item), ('owner', u.owner),
        ('phase', u.phase), ('itsm_sync_status', u.itsm_sync_status)) AS f(field, value)
    WHERE f.value IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING 1)"""

TICKET_ROLLUPS = """,
r_daily AS (
    INSERT INTO ticket_daily AS r (integration_id, account_id, day, status, priority, is_overdue, n)
    SELECT integration_id, account_id, (created_time AT TIME ZONE 'UTC')::date, status, priority, is_overdue, sum(d)
    FROM delta GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(d) <> 0
    ON CONFLICT (integration_id, account_id, day, status, priority, is_overdue) DO UPDATE SET n = r.n + EXCLUDED.n
    RETURNING 1),
r_totals AS (
    INSERT INTO ticket_totals AS r (integration_id, account_id, status, priority, is_overdue, n)
    SELECT integration_id, account_id, status, priority, is_overdue, sum(d)
    FROM delta GROUP BY 1, 2, 3, 4, 5 HAVING sum(d) <> 0
    ON CONFLICT (integration_id, account_id, status, priority, is_overdue) DO UPDATE SET n = r.n + EXCLUDED.n
    RETURNING 1),
-- The filter lookup (tables.itsm_ticket_value): requester and account names, substring-matched
-- there and found on the tickets with a leakproof ``=``.
v_new AS (
    INSERT INTO itsm_ticket_value (integration_id, account_id, field, value)
    SELECT DISTINCT u.integration_id, u.account_id, f.field, f.value
    FROM up u CROSS JOIN LATERAL (VALUES ('created_by', u.created_by_name), ('account_name', u.account_name))
         AS f(field, value)
    WHERE f.value IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING 1)"""

OFFENSE = Target(
    "qradar_offense",
    # The table is partitioned by start_time (readmodel.partitions), so its unique key holds it: QRadar
    # sets an offense's start_time when it opens and never changes it.
    ("integration_id", "offense_id", "start_time"),
    (
        "integration_id",
        "offense_id",
        "domain_id",
        "description",
        "status",
        "severity",
        "magnitude",
        "credibility",
        "relevance",
        "event_count",
        "flow_count",
        "assigned_to",
        "categories",
        "rules",
        "offense_source",
        "offense_type",
        "source_address_ids",
        "local_destination_address_ids",
        "destination_networks",
        "log_sources",
        "start_time",
        "last_updated_time",
        "close_time",
        "closing_reason_id",
        "closing_reason",
        "closing_user",
        "follow_up",
        "protected",
        "version",
        "event_id",
        "last_persisted_time",
        "notes",
        "source_addresses",
        "local_destination_addresses",
    ),
    offense_row,
    rollup_columns=("domain_id", "start_time", "severity", "status", "categories"),
    rollups=OFFENSE_ROLLUPS,
    # Notes are their own resource now (siem.offense_notes.read): a version read without them
    # keeps what an older version carried.
    overrides={"notes": "coalesce(EXCLUDED.notes, t.notes)"},
)
OFFENSE_NOTES = Target(
    "qradar_offense_notes",
    ("integration_id", "offense_id"),
    ("integration_id", "offense_id", "domain_id", "notes", "version", "event_id"),
    offense_notes_row,
)
INCIDENT = Target(
    "soar_incident",
    # Incident ids are per XSOAR account (each tenant counts from 1): the account is part of the key.
    # The table is partitioned by created (readmodel.partitions): XSOAR sets it once.
    ("integration_id", "account", "incident_id", "created"),
    (
        "integration_id",
        "incident_id",
        "account",
        "name",
        "type",
        "status",
        "severity",
        "owner",
        "playbook_id",
        "investigation_id",
        "created",
        "modified",
        "occurred",
        "closed",
        "close_reason",
        "close_notes",
        "closing_user_id",
        "phase",
        "priority",
        "tta_at",
        "ttn_at",
        "ttdn_at",
        "initial_notification_at",
        "rules",
        "offense_ids",
        "log_source_types",
        "source_ips",
        "mitre_tactics",
        "mitre_techniques",
        "qradar_category",
        "qradar_subcategory",
        "low_level_categories",
        "configuration_item",
        "itsm_sync_status",
        "sla",
        "custom_fields",
        "version",
        "event_id",
        "vendor_priority",
    ),
    incident_row,
    rollup_columns=(
        "created",
        "priority",
        "severity",
        "status",
        "type",
        "owner",
        # for the filter lookups
        "id",
        "mitre_tactics",
        "mitre_techniques",
        "rules",
        "configuration_item",
        "phase",
        "itsm_sync_status",
    ),
    rollups=INCIDENT_ROLLUPS,
)
TICKET = Target(
    "itsm_ticket",
    ("integration_id", "ticket_id"),
    (
        "integration_id",
        "ticket_id",
        "account_id",
        "account_name",
        "subject",
        "short_description",
        "status",
        "priority",
        "is_overdue",
        "created_time",
        "last_updated_time",
        "created_by_name",
        "soar_incident_id",
        "version",
        "event_id",
        "technician_name",
        "resolution",
        "request_url",
        "reference",
    ),
    ticket_row,
    rollup_columns=(
        "account_id",
        "created_time",
        "status",
        "priority",
        "is_overdue",
        "created_by_name",  # for the filter lookup
        "account_name",
    ),
    rollups=TICKET_ROLLUPS,
)

TARGETS: dict[str, Target] = {
    "siem.domain.upserted": Target(
        "qradar_domain",
        ("integration_id", "domain_id"),
        (
            "integration_id",
            "domain_id",
            "name",
            "description",
            "deleted",
            "details",
            "event_id",
            "updated_at",
        ),
        domain_row,
        version_column="updated_at",
        touch=False,
    ),
    "siem.event_collector.upserted": Target(
        "qradar_event_collector",
        ("integration_id", "collector_id"),
        ("integration_id", "collector_id", "name", "host_id", "component_name", "version"),
        collector_row,
    ),
    "siem.log_source_type.upserted": Target(
        "qradar_log_source_type",
        ("integration_id", "type_id"),
        ("integration_id", "type_id", "name", "type_version", "version"),
        log_source_type_row,
    ),
    "siem.log_source_group.upserted": Target(
        "qradar_log_source_group",
        ("integration_id", "group_id"),
        (
            "integration_id",
            "group_id",
            "name",
            "description",
            "owner",
            "parent_id",
            "child_group_ids",
            "assignable",
            "version",
        ),
        log_source_group_row,
    ),
    "siem.log_source.upserted": Target(
        "qradar_log_source",
        ("integration_id", "log_source_id"),
        (
            "integration_id",
            "log_source_id",
            "name",
            "description",
            "domain_id",
            "type_id",
            "type_name",
            "event_collector_id",
            "sending_ip",
            "enabled",
            "status",
            "status_messages",
            "group_ids",
            "average_eps",
            "creation_time",
            "modified_time",
            "last_event_time",
            "version",
        ),
        log_source_row,
    ),
    "siem.offense.upserted": OFFENSE,
    "siem.offense_notes.read": OFFENSE_NOTES,
    "siem.eps.sampled": Target(
        "eps_sample",
        ("integration_id", "domain_id", "granularity", "window_start", "collector"),
        (
            "integration_id",
            "domain_id",
            "granularity",
            "window_start",
            "window_end",
            "collector",
            "average_eps",
            "peak_eps",
            "version",
        ),
        eps_row,
    ),
    "siem.metric.sampled": Target(
        "metric_sample",
        ("integration_id", "domain_id", "family", "granularity", "window_start"),
        (
            "integration_id",
            "domain_id",
            "family",
            "granularity",
            "window_start",
            "window_end",
            "rows",
            "version",
        ),
        metric_row,
    ),
    "soar.account.upserted": Target(
        "soar_account",
        ("integration_id", "account_id"),
        ("integration_id", "account_id", "name", "display_name", "version"),
        soar_account_row,
    ),
    "soar.incident.upserted": INCIDENT,
    "soar.note.added": Target(
        "soar_note",
        ("integration_id", "account", "note_id"),
        (
            "integration_id",
            "note_id",
            "incident_id",
            "account",
            "author",
            "created",
            "content",
            "category",
            "version",
        ),
        note_row,
    ),
    "itsm.account.upserted": Target(
        "itsm_account",
        ("integration_id", "account_id"),
        ("integration_id", "account_id", "name", "version"),
        itsm_account_row,
    ),
    "itsm.ticket.upserted": TICKET,
    "ti.alert.upserted": Target(
        "ti_alert",
        ("integration_id", "short_id"),
        (
            "integration_id",
            "short_id",
            "company_id",
            "title",
            "status",
            "tlp",
            "published_time",
            "content",
            "push_required",
            "push_email_notification",
            "tracking_id",
            "card_image",
            "card_info",
            "event",
            "intel_id",
            "rfi_id",
            "groups",
            "recipient_groups",
            "tags",
            "category",
            "version",
            "event_id",
        ),
        alert_row,
    ),
    "ti.tag.upserted": Target(
        "ti_tag",
        ("integration_id", "tag_id"),
        ("integration_id", "tag_id", "company_id", "tag_name", "tag_slug", "is_active", "version"),
        tag_row,
    ),
    "ti.group.upserted": Target(
        "ti_group",
        ("integration_id", "group_id"),
        (
            "integration_id",
            "group_id",
            "company_id",
            "group_name",
            "group_tlp",
            "group_type",
            "allowed_for_intel_submission",
            "allowed_for_rfi_submission",
            "version",
        ),
        group_row,
    ),
    "ti.category.upserted": Target(
        "ti_category",
        ("integration_id", "category_id"),
        (
            "integration_id",
            "category_id",
            "company_id",
            "category_name",
            "threat_indicator_fields",
            "additional_fields",
            "required_fields",
            "version",
        ),
        category_row,
    ),
    "ti.custom_field.upserted": Target(
        "ti_custom_field",
        ("integration_id", "field_id"),
        (
            "integration_id",
            "field_id",
            "company_id",
            "field_name",
            "field_label",
            "field_type",
            "field_description",
            "is_system",
            "version",
        ),
        custom_field_row,
    ),
}

# One durable quorum queue per concern (BatchConsumer adds <queue>.dead and the delivery limit).
QUEUES: dict[str, list[str]] = {
    "tenant.siem": [
        "siem.domain.upserted",
        "siem.event_collector.upserted",
        "siem.log_source_type.upserted",
        "siem.log_source_group.upserted",
        "siem.log_source.upserted",
        "siem.offense.upserted",
        "siem.offense_notes.read",
    ],
    "tenant.metrics": ["siem.eps.sampled", "siem.metric.sampled"],
    "tenant.soar": ["soar.account.upserted", "soar.incident.upserted", "soar.note.added"],
    "tenant.itsm": ["itsm.account.upserted", "itsm.ticket.upserted"],
    "tenant.ti": [
        "ti.alert.upserted",
        "ti.tag.upserted",
        "ti.group.upserted",
        "ti.category.upserted",
        "ti.custom_field.upserted",
    ],
}


def rows_by_target(deliveries: Iterable[tuple[CloudEvent, Payload, str]]) -> list[tuple[Target, list[Row]]]:
    """Group a batch per target table, build rows, keep the highest version per key."""
    grouped: dict[str, list[Row]] = {}
    for envelope, payload, routing_key in deliveries:
        target = TARGETS.get(routing_key)
        if target is None:
            continue
        grouped.setdefault(routing_key, []).append(target.build(envelope, payload))
    # Stable table order (the order of TARGETS) so concurrent batches take advisory locks alike.
    return [(TARGETS[rk], latest(TARGETS[rk], grouped[rk])) for rk in TARGETS if rk in grouped]


async def store(
    db: Database,
    deliveries: Iterable[tuple[CloudEvent, Payload, str]],
    *,
    bus: Any = None,
    record_days: int = 30,
    alert_days: int = 365,
) -> int:
    """Write one batch in one transaction (with the records' observables and their new threat-intel
    matches, published on ``bus`` before the commit); return the number of rows merged."""
    from soc_tenant.threatintel import matching as timatch

    deliveries = list(deliveries)
    work = rows_by_target(deliveries)
    if not work:
        return 0
    records = timatch.latest_records(deliveries, integration_of)
    async with db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        pg = raw.driver_connection
        for target, rows in work:
            await write(pg, target, rows)
        matches = await timatch.write_and_match(pg, records, record_days=record_days, alert_days=alert_days)
        if matches and bus is not None:
            await bus.publish(timatch.match_events(matches))
    return sum(len(rows) for _, rows in work)


def consumer_handler(db: Database, bus: Any = None, settings: Any = None) -> Callable[[list[Delivery]], Any]:
    record_days = getattr(settings, "ti_match_lookback_days", 30)
    alert_days = getattr(settings, "ti_alert_max_age_days", 365)

    async def handle(batch: list[Delivery]) -> None:
        # The envelope's type names the event: a replayed dead letter arrives with the queue's name
        # as its routing key.
        await store(
            db,
            ((d.envelope, d.payload, d.envelope.routing_key) for d in batch),
            bus=bus,
            record_days=record_days,
            alert_days=alert_days,
        )

    return handle


# ------------------------------------------------------------------------------------- consumer
# Five batches in flight: with two the broker idles while a batch commits; five measured 30-60 %
# more events/s on bench/tenant_bench.py.
PREFETCH_BATCHES = 5
# Two batches written at once (each on its own connection): one is built and copied while the
# other merges, so the consumer's CPU and the database's overlap (bench/tenant_bench.py).
CONCURRENT_BATCHES = 2


async def start_consumers(app: FastAPI) -> None:
    settings = app.state.settings
    consumers: list[BatchConsumer] = []
    app.state.readmodel_consumers = consumers
    for queue, keys in QUEUES.items():
        consumer = BatchConsumer(
            app.state.bus,
            queue,
            keys,
            consumer_handler(app.state.db, app.state.bus, settings),
            batch_size=settings.consumer_batch_size,
            prefetch_batches=PREFETCH_BATCHES,
            concurrency=CONCURRENT_BATCHES,
        )
        await consumer.start()
        consumers.append(consumer)
    logger.info("read model consuming {} queues", len(consumers))


async def stop_consumers(app: FastAPI) -> None:
    for consumer in getattr(app.state, "readmodel_consumers", []):
        await consumer.stop()
    app.state.readmodel_consumers = []


# Recompute every rollup from the base tables (after a bulk load that bypassed the consumers, or
# to verify the incremental maintenance). Runs on the owner role.
REBUILD_ROLLUPS = [
    "TRUNCATE offense_daily, offense_category_daily, incident_daily, incident_facet_daily, ticket_daily, "
    "offense_totals, incident_totals, ticket_totals",
    """INSERT INTO offense_totals (integration_id, domain_id, severity, status, n)
       SELECT integration_id, domain_id, severity, status, count(*) FROM qradar_offense GROUP BY 1, 2, 3, 4""",
    """INSERT INTO incident_totals (integration_id, account, priority, severity, status, n)
       SELECT integration_id, account, priority, severity, status, count(*) FROM soar_incident GROUP BY 1, 2, 3, 4, 5""",
    """INSERT INTO ticket_totals (integration_id, account_id, status, priority, is_overdue, n)
       SELECT integration_id, account_id, status, priority, is_overdue, count(*) FROM itsm_ticket GROUP BY 1, 2, 3, 4, 5""",
    """INSERT INTO offense_daily (integration_id, domain_id, day, severity, status, n)
       SELECT integration_id, domain_id, (start_time AT TIME ZONE 'UTC')::date, severity, status, count(*)
       FROM qradar_offense GROUP BY 1, 2, 3, 4, 5""",
    """INSERT INTO offense_category_daily (integration_id, domain_id, day, category, n)
       SELECT integration_id, domain_id, (start_time AT TIME ZONE 'UTC')::date, c.category, count(*)
       FROM qradar_offense CROSS JOIN LATERAL jsonb_array_elements_text(categories) AS c(category)
       GROUP BY 1, 2, 3, 4""",
    """INSERT INTO incident_daily (integration_id, account, day, priority, severity, status, n)
       SELECT integration_id, account, (created AT TIME ZONE 'UTC')::date, priority, severity, status, count(*)
       FROM soar_incident GROUP BY 1, 2, 3, 4, 5, 6""",
    """INSERT INTO incident_facet_daily (integration_id, account, day, facet, value, n)
       SELECT integration_id, account, (created AT TIME ZONE 'UTC')::date, f.facet, f.value, count(*)
       FROM soar_incident CROSS JOIN LATERAL (VALUES ('type', coalesce(type, '')), ('owner', coalesce(owner, '')))
            AS f(facet, value)
       GROUP BY 1, 2, 3, 4, 5""",
    """INSERT INTO ticket_daily (integration_id, account_id, day, status, priority, is_overdue, n)
       SELECT integration_id, account_id, (created_time AT TIME ZONE 'UTC')::date, status, priority, is_overdue, count(*)
       FROM itsm_ticket GROUP BY 1, 2, 3, 4, 5, 6""",
    # the filter lookups
    "TRUNCATE soar_incident_term, soar_incident_value, itsm_ticket_value",
    """INSERT INTO soar_incident_term (integration_id, account, field, value, created, id)
       SELECT DISTINCT i.integration_id, i.account, f.field, lower(f.value), i.created, i.id
       FROM soar_incident i CROSS JOIN LATERAL (
           SELECT 'mitre_tactic', jsonb_array_elements_text(i.mitre_tactics)
           UNION ALL SELECT 'mitre_technique', jsonb_array_elements_text(i.mitre_techniques)
           UNION ALL SELECT 'use_case', jsonb_array_elements_text(i.rules)
       ) AS f(field, value)""",
    """INSERT INTO soar_incident_value (integration_id, account, field, value)
       SELECT DISTINCT integration_id, account, f.field, f.value
       FROM soar_incident CROSS JOIN LATERAL (VALUES ('configuration_item', configuration_item), ('owner', owner),
           ('phase', phase), ('itsm_sync_status', itsm_sync_status)) AS f(field, value)
       WHERE f.value IS NOT NULL""",
    """INSERT INTO itsm_ticket_value (integration_id, account_id, field, value)
       SELECT DISTINCT integration_id, account_id, f.field, f.value
       FROM itsm_ticket CROSS JOIN LATERAL (VALUES ('created_by', created_by_name), ('account_name', account_name))
            AS f(field, value)
       WHERE f.value IS NOT NULL""",
]


async def rebuild_rollups(db: Database) -> None:
    async with db.session() as session:
        from sqlalchemy import text as sql

        for key in ("qradar_offense", "soar_incident", "itsm_ticket"):
            await session.execute(
                sql("SELECT pg_advisory_xact_lock(:k)"),
                {"k": zlib.crc32(f"soc_tenant.readmodel.{key}".encode())},
            )
        for stmt in REBUILD_ROLLUPS:
            await session.execute(sql(stmt))
