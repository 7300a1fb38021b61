"""QRadar JSON → the shared event models. Pure functions, tested against recorded payloads.

QRadar times are epoch milliseconds; 0 or null means "never" (a log source that never sent an
event). Scores outside 0–10 are clamped rather than rejected: one odd record must not stop the
whole offense stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from soc_shared.events import (
    Granularity,
    OffenseStatus,
    SiemDomain,
    SiemEpsSample,
    SiemEventCollector,
    SiemLogSource,
    SiemLogSourceGroup,
    SiemLogSourceType,
    SiemMetricSample,
    SiemOffense,
    SiemOffenseNotes,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUSES = {s.value: s for s in OffenseStatus}


def ms_to_datetime(value: Any) -> datetime | None:
    """Epoch milliseconds → aware UTC datetime; None, 0 and negative values → None."""
    if value is None or isinstance(value, bool):
        return None
    ms = int(value)
    if ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    return int((value - _EPOCH).total_seconds() * 1000)


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values or () if v is not None]


def _score(value: Any) -> int:
    return min(10, max(0, int(value or 0)))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


# --------------------------------------------------------------------------------- reference data
def domain(raw: Mapping[str, Any]) -> SiemDomain:
    return SiemDomain(
        domain_id=int(raw["id"]),
        # The default domain (id 0) has an empty name on real consoles.
        name=str(raw.get("name") or ("Default Domain" if int(raw["id"]) == 0 else f"Domain {raw['id']}")),
        description=str(raw.get("description") or ""),
        deleted=bool(raw.get("deleted", False)),
        tenant_id=_opt_int(raw.get("tenant_id")),
        event_collector_ids=_ints(raw.get("event_collector_ids")),
        log_source_ids=_ints(raw.get("log_source_ids")),
    )


def event_collector(raw: Mapping[str, Any]) -> SiemEventCollector:
    return SiemEventCollector(
        collector_id=int(raw["id"]),
        name=str(raw.get("name") or f"Event collector {raw['id']}"),
        host_id=_opt_int(raw.get("host_id")),
        component_name=_opt_str(raw.get("component_name")),
    )


def log_source_type(raw: Mapping[str, Any]) -> SiemLogSourceType:
    return SiemLogSourceType(
        type_id=int(raw["id"]),
        name=str(raw.get("name") or f"Log source type {raw['id']}"),
        version=_opt_str(raw.get("version")),
    )


def log_source_group(raw: Mapping[str, Any]) -> SiemLogSourceGroup:
    return SiemLogSourceGroup(
        group_id=int(raw["id"]),
        name=str(raw.get("name") or f"Group {raw['id']}"),
        description=str(raw.get("description") or ""),
        owner=_opt_str(raw.get("owner")),
        parent_id=_opt_int(raw.get("parent_id")),
        child_group_ids=_ints(raw.get("child_group_ids")),
        assignable=bool(raw.get("assignable", False)),
    )


def log_source(
    raw: Mapping[str, Any], *, type_names: Mapping[int, str], domain_of: Mapping[int, int]
) -> SiemLogSource:
    """A log source (the seed's "asset"). QRadar's log source has no domain field: the domain is the
    one whose ``log_source_ids`` lists it; the type name comes from the log source types."""
    source_id = int(raw["id"])
    type_id = _opt_int(raw.get("type_id"))
    status = raw.get("status") or {}
    messages = status.get("messages") if isinstance(status, dict) else None
    return SiemLogSource(
        log_source_id=source_id,
        name=str(raw.get("name") or f"Log source {source_id}"),
        description=str(raw.get("description") or ""),
        domain_id=domain_of.get(source_id),
        type_id=type_id,
        type_name=type_names.get(type_id) if type_id is not None else None,
        event_collector_id=_opt_int(raw.get("target_event_collector_id")),
        sending_ip=_opt_str(raw.get("sending_ip")),
        enabled=bool(raw.get("enabled", True)),
        status=_opt_str(status.get("status")) if isinstance(status, dict) else _opt_str(status),
        status_messages=[str(m.get("text") or "") for m in messages or () if isinstance(m, dict)],
        group_ids=_ints(raw.get("group_ids")),
        average_eps=max(0.0, float(raw.get("average_eps") or 0)),
        creation_time=ms_to_datetime(raw.get("creation_date")),
        modified_time=ms_to_datetime(raw.get("modified_date")),
        last_event_time=ms_to_datetime(raw.get("last_event_time")),
    )


# ---------------------------------------------------------------------------------------- offenses
ADDRESSES_PER_OFFENSE = 1000
"""Address ids of one kind resolved per offense (the XSOAR QRadar integration's cap)."""


def resolved(ids: Sequence[int], addresses: Mapping[int, str] | None) -> list[str]:
    """The addresses of an offense's first :data:`ADDRESSES_PER_OFFENSE` ids, in their order, once each."""
    if not addresses:
        return []
    found = (addresses.get(i) for i in ids[:ADDRESSES_PER_OFFENSE])
    return list(dict.fromkeys(a for a in found if a))


def offense_note(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One ``siem/offenses/{id}/notes`` entry (validated with its offense)."""
    created = ms_to_datetime(raw["create_time"])
    if created is None:
        raise ValueError("a note without create_time")
    return {
        "id": int(raw["id"]),
        "text": str(raw.get("note_text") or ""),
        "username": _opt_str(raw.get("username")),
        "create_time": created,
    }


def offense(
    raw: Mapping[str, Any],
    *,
    closing_reasons: Mapping[int, str],
    notes: Sequence[Mapping[str, Any]] | None = None,
    source_addresses: Mapping[int, str] | None = None,
    local_destination_addresses: Mapping[int, str] | None = None,
) -> SiemOffense:
    """An offense version; ``version`` is QRadar's ``last_persisted_time`` (epoch ms), which an
    analyst's close or assignment moves too (``last_updated_time`` alone when a console omits it).

    ``source_addresses`` / ``local_destination_addresses``: id → address as the console's address
    lists answered them; the offense carries the addresses of its first
    :data:`ADDRESSES_PER_OFFENSE` ids of each kind, in their order (an unknown id is left out)."""
    source_ids = _ints(raw.get("source_address_ids"))
    destination_ids = _ints(raw.get("local_destination_address_ids"))
    last_updated = int(raw["last_updated_time"])
    persisted_raw = raw.get("last_persisted_time")
    persisted = int(persisted_raw) if persisted_raw is not None else None
    reason_id = _opt_int(raw.get("closing_reason_id"))
    start = ms_to_datetime(raw.get("start_time")) or ms_to_datetime(last_updated)
    return SiemOffense(
        offense_id=int(raw["id"]),
        domain_id=int(raw.get("domain_id") or 0),
        description=str(raw.get("description") or "").strip(),
        status=_STATUSES.get(str(raw.get("status") or "").upper(), OffenseStatus.OPEN),
        severity=_score(raw.get("severity")),
        magnitude=_score(raw.get("magnitude")),
        credibility=_score(raw.get("credibility")),
        relevance=_score(raw.get("relevance")),
        event_count=max(0, int(raw.get("event_count") or 0)),
        flow_count=max(0, int(raw.get("flow_count") or 0)),
        assigned_to=_opt_str(raw.get("assigned_to")),
        categories=[str(c) for c in raw.get("categories") or ()],
        # Plain dicts: validated once with the offense instead of one model call each (hot path).
        rules=[{"id": int(r["id"]), "type": _opt_str(r.get("type"))} for r in raw.get("rules") or ()],
        offense_source=_opt_str(raw.get("offense_source")),
        offense_type=_opt_int(raw.get("offense_type")),
        source_address_ids=source_ids,
        local_destination_address_ids=destination_ids,
        source_addresses=resolved(source_ids, source_addresses),
        local_destination_addresses=resolved(destination_ids, local_destination_addresses),
        destination_networks=[str(n) for n in raw.get("destination_networks") or ()],
        log_sources=[
            {
                "id": int(s["id"]),
                "name": _opt_str(s.get("name")),
                "type_id": _opt_int(s.get("type_id")),
                "type_name": _opt_str(s.get("type_name")),
            }
            for s in raw.get("log_sources") or ()
        ],
        start_time=start,
        last_updated_time=ms_to_datetime(last_updated),
        close_time=ms_to_datetime(raw.get("close_time")),
        closing_reason_id=reason_id,
        closing_reason=closing_reasons.get(reason_id) if reason_id is not None else None,
        closing_user=_opt_str(raw.get("closing_user")),
        follow_up=bool(raw.get("follow_up", False)),
        protected=bool(raw.get("protected", False)),
        last_persisted_time=ms_to_datetime(persisted) if persisted is not None else None,
        notes=None if notes is None else sorted((offense_note(n) for n in notes), key=_note_order),
        version=max(last_updated, persisted) if persisted is not None else last_updated,
    )


def _note_order(note: dict[str, Any]) -> tuple[datetime, int]:
    return note["create_time"], note["id"]


def offense_notes(
    offense_id: int, domain_id: int, notes: Sequence[Mapping[str, Any]], read_at_ms: int
) -> SiemOffenseNotes:
    """Every note of one offense as read at ``read_at_ms`` (the version: a later read wins)."""
    return SiemOffenseNotes(
        offense_id=offense_id,
        domain_id=domain_id,
        notes=sorted((offense_note(n) for n in notes), key=_note_order),
        version=read_at_ms,
    )


# ---------------------------------------------------------------------------- Ariel-computed data
def eps_sample(
    domain_id: int,
    granularity: Granularity,
    window_start_ms: int,
    window_end_ms: int,
    rows: Sequence[Mapping[str, Any]],
) -> SiemEpsSample:
    """EPS of one domain over one window from per-minute event counts (``event_count`` per row).

    Average = all events / window seconds (minutes without events count as zero); peak = the
    busiest minute's rate.
    """
    counts = [max(0.0, float(r.get("event_count") or 0)) for r in rows]
    seconds = max(1.0, (window_end_ms - window_start_ms) / 1000)
    return SiemEpsSample(
        domain_id=domain_id,
        granularity=granularity,
        window_start=ms_to_datetime(window_start_ms) or _EPOCH,
        window_end=ms_to_datetime(window_end_ms) or _EPOCH,
        average_eps=round(sum(counts) / seconds, 3),
        peak_eps=round(max(counts, default=0.0) / 60, 3),
    )


def metric_rows(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], measures: Sequence[str]
) -> list[dict[str, Any]]:
    """Keep the catalogue's declared columns, measures as numbers (QRadar answers null for "none")."""
    out = []
    measure_set = set(measures)
    for row in rows:
        clean: dict[str, Any] = {}
        for name in columns:
            value = row.get(name)
            if name in measure_set:
                value = 0 if value is None else value
                if isinstance(value, float) and value.is_integer() and not name.endswith("eps"):
                    value = int(value)
            clean[name] = value
        out.append(clean)
    return out


def metric_sample(
    family: str,
    domain_id: int,
    granularity: Granularity,
    window_start_ms: int,
    window_end_ms: int,
    rows: list[dict[str, Any]],
) -> SiemMetricSample:
    return SiemMetricSample(
        family=family,
        domain_id=domain_id,
        granularity=granularity,
        window_start=ms_to_datetime(window_start_ms) or _EPOCH,
        window_end=ms_to_datetime(window_end_ms) or _EPOCH,
        rows=rows,
    )
