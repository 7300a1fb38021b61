"""The QRadar resources this ingestor syncs, declared as data: name, interval, fetch.

Every fetch yields :class:`Page` objects in cursor order; the shared Ingestor publishes each page
with confirms and only then saves its cursor, so a failure anywhere leaves the cursor at the last
confirmed page.

| resource | interval | cursor | event |
|---|---|---|---|
| domains | 15 min | snapshot | siem.domain.upserted |
| event_collectors | 1 h | snapshot | siem.event_collector.upserted |
| log_source_types | 24 h | snapshot | siem.log_source_type.upserted |
| log_source_groups | 1 h | snapshot | siem.log_source_group.upserted |
| log_sources | 15 min | snapshot | siem.log_source.upserted |
| offenses | the integration's polling interval | (last_persisted_time, id) | siem.offense.upserted |
| offense_notes | the integration's polling interval | (last_persisted_time, id) + open sweep | siem.offense_notes.read |
| eps | 10 min | end of the last hour / day done | siem.eps.sampled |
| metric.<family> | 10 min – 1 h | end of the last window done | siem.metric.sampled |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from loguru import logger
from prometheus_client import Counter
from pydantic import ValidationError
from soc_shared.events import CloudEvent, Payload, make_event
from soc_shared.sync import Page, Resource, SyncContext
from soc_shared.vendor_http import VendorError, VendorErrorCategory

from soc_siem_ingest import normalize
from soc_siem_ingest.catalogue import (
    CATALOGUE,
    CHECK_SECONDS,
    DAY_MS,
    EPS_STEPS,
    MetricFamily,
    due_windows,
    render_eps,
)
from soc_siem_ingest.client import OffensePosition, QRadarClient, persisted_time

T = TypeVar("T")

REJECTED = Counter(
    "soc_siem_records_rejected_total", "QRadar records that could not be normalised (skipped)", ["resource"]
)

DOMAINS = "config/domain_management/domains"
EVENT_COLLECTORS = "config/event_sources/event_collectors"
LOG_SOURCES = "config/event_sources/log_source_management/log_sources"
LOG_SOURCE_TYPES = "config/event_sources/log_source_management/log_source_types"
LOG_SOURCE_GROUPS = "config/event_sources/log_source_management/log_source_groups"


@dataclass(frozen=True)
class SyncOptions:
    """Sync knobs: service defaults (env), overridable per integration through its ``settings``."""

    offense_backfill_days: int = 0
    offense_overlap_ms: int = 60_000
    offense_notes: bool = True
    """Sync offense notes (their own resource: one request per offense whose notes can have changed)."""
    notes_sweep_per_run: int = 100
    """Open offenses whose notes are re-read per notes run although the offense did not change."""
    offense_addresses: bool = True
    """Resolve offenses' source and local destination address ids to addresses."""
    ariel_timeout_seconds: float = 120.0
    metrics_settle_seconds: int = 300
    metrics_catch_up_windows: int = 24
    metric_families: frozenset[str] | None = None
    """Only these catalogue families (None: all)."""
    eps_enabled: bool = True

    @classmethod
    def resolve(cls, settings: Any, overrides: Mapping[str, Any] | None) -> SyncOptions:
        o = dict(overrides or {})
        families = o.get("metric_families")
        return cls(
            offense_backfill_days=int(o.get("offense_backfill_days", settings.offense_backfill_days)),
            offense_overlap_ms=int(o.get("offense_overlap_ms", settings.offense_overlap_ms)),
            offense_notes=bool(o.get("offense_notes", getattr(settings, "offense_notes", True))),
            notes_sweep_per_run=int(
                o.get("notes_sweep_per_run", getattr(settings, "notes_sweep_per_run", 100))
            ),
            offense_addresses=bool(o.get("offense_addresses", getattr(settings, "offense_addresses", True))),
            ariel_timeout_seconds=float(o.get("ariel_timeout_seconds", settings.ariel_timeout_seconds)),
            metrics_settle_seconds=int(o.get("metrics_settle_seconds", settings.metrics_settle_seconds)),
            metrics_catch_up_windows=int(
                o.get("metrics_catch_up_windows", settings.metrics_catch_up_windows)
            ),
            metric_families=None if families is None else frozenset(str(f) for f in families),
            eps_enabled=bool(o.get("eps_enabled", True)),
        )


def _options(ctx: SyncContext) -> SyncOptions:
    return getattr(ctx.client, "options", None) or SyncOptions()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _event(
    ctx: SyncContext,
    routing_key: str,
    payload: Payload,
    subject: str,
    *,
    version: int | None = None,
    vendor_tenant: int | None = None,
) -> CloudEvent:
    return make_event(
        routing_key,
        payload,
        source=ctx.source,
        subject=subject,
        vendor_version=version,
        integration_id=ctx.integration_id,
        vendor_tenant=vendor_tenant,
    )


class Rejects:
    """Records of a run that could not be normalised. A snapshot resource publishes the others and
    then fails the run with a ``bad_response`` naming them, so the integration's sync health shows
    the vendor's bad data instead of a record silently missing."""

    def __init__(self, resource: str) -> None:
        self.resource = resource
        self.ids: list[str] = []
        self.reason = ""

    def add(self, raw: Any, exc: Exception) -> None:
        REJECTED.labels(self.resource).inc()
        record_id = str(raw.get("id") if isinstance(raw, dict) else "?")
        self.ids.append(record_id)
        self.reason = self.reason or f"{type(exc).__name__}: {str(exc)[:200]}"
        logger.error("QRadar {} record {} cannot be normalised ({})", self.resource, record_id, self.reason)

    def raise_if_any(self) -> None:
        if self.ids:
            shown = ", ".join(self.ids[:10]) + (" …" if len(self.ids) > 10 else "")
            raise VendorError(
                VendorErrorCategory.BAD_RESPONSE,
                f"QRadar answered {len(self.ids)} {self.resource} record(s) that cannot be read "
                f"(ids {shown}): {self.reason}",
                retryable=False,
                details={"reason": "unreadable_record", "resource": self.resource, "ids": self.ids[:50]},
            )


def _normalised(
    resource: str,
    records: Iterable[dict[str, Any]],
    convert: Callable[[dict[str, Any]], T],
    rejects: Rejects | None = None,
) -> list[T]:
    """Convert every record; one that cannot be converted (a console bug, a field of the wrong type)
    is recorded in ``rejects`` (the run then ends as a ``bad_response``) instead of stopping the
    records behind it."""
    rejects = rejects or Rejects(resource)
    out: list[T] = []
    for raw in records:
        try:
            out.append(convert(raw))
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            rejects.add(raw, exc)
    return out


async def _gather_all(coroutines: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently and let every one finish, then raise the first failure itself (not an
    ExceptionGroup, so its category reaches the sync state). Siblings are not cancelled: a search
    cancelled between its POST and the answer would be left running on the console, undeleted."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


async def _domain_membership(
    client: QRadarClient,
) -> tuple[list[dict[str, Any]], dict[int, int], dict[int, int]]:
    """Domains, and which domain holds each log source and each event collector."""
    domains = await client.collection(
        DOMAINS, params={"fields": "id,deleted,log_source_ids,event_collector_ids"}
    )
    log_source_domain: dict[int, int] = {}
    collector_domain: dict[int, int] = {}
    for d in domains:
        if d.get("deleted"):
            continue
        for ls in d.get("log_source_ids") or ():
            log_source_domain[int(ls)] = int(d["id"])
        for ec in d.get("event_collector_ids") or ():
            collector_domain.setdefault(int(ec), int(d["id"]))
    return domains, log_source_domain, collector_domain


async def _active_domain_ids(client: QRadarClient) -> list[int]:
    domains = await client.collection(DOMAINS, params={"fields": "id,deleted"})
    return sorted(int(d["id"]) for d in domains if not d.get("deleted"))


# --------------------------------------------------------------------------- reference snapshots
async def fetch_domains(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: QRadarClient = ctx.client
    rejects = Rejects("domains")
    async for raw_page in client.pages(DOMAINS):
        events = [
            _event(ctx, "siem.domain.upserted", d, str(d.domain_id), vendor_tenant=d.domain_id)
            for d in _normalised("domains", raw_page, normalize.domain, rejects)
        ]
        yield Page(events=events, cursor=None)
    rejects.raise_if_any()


async def fetch_event_collectors(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: QRadarClient = ctx.client
    rejects = Rejects("event_collectors")
    _, _, collector_domain = await _domain_membership(client)
    async for raw_page in client.pages(EVENT_COLLECTORS):
        events = [
            _event(
                ctx,
                "siem.event_collector.upserted",
                c,
                str(c.collector_id),
                vendor_tenant=collector_domain.get(c.collector_id),
            )
            for c in _normalised("event_collectors", raw_page, normalize.event_collector, rejects)
        ]
        yield Page(events=events, cursor=None)
    rejects.raise_if_any()


async def fetch_log_source_types(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: QRadarClient = ctx.client
    rejects = Rejects("log_source_types")
    async for raw_page in client.pages(LOG_SOURCE_TYPES, params={"fields": "id,name,version"}):
        events = [
            _event(ctx, "siem.log_source_type.upserted", t, str(t.type_id))
            for t in _normalised("log_source_types", raw_page, normalize.log_source_type, rejects)
        ]
        yield Page(events=events, cursor=None)
    rejects.raise_if_any()


async def fetch_log_source_groups(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: QRadarClient = ctx.client
    rejects = Rejects("log_source_groups")
    async for raw_page in client.pages(LOG_SOURCE_GROUPS):
        events = [
            _event(ctx, "siem.log_source_group.upserted", g, str(g.group_id))
            for g in _normalised("log_source_groups", raw_page, normalize.log_source_group, rejects)
        ]
        yield Page(events=events, cursor=None)
    rejects.raise_if_any()


async def fetch_log_sources(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """Log sources (the seed's assets), with the type name and the domain resolved once per run."""
    client: QRadarClient = ctx.client
    rejects = Rejects("log_sources")
    types = await client.collection(LOG_SOURCE_TYPES, params={"fields": "id,name"})
    type_names = {int(t["id"]): str(t.get("name") or "") for t in types}
    _, domain_of, _ = await _domain_membership(client)
    convert = partial(normalize.log_source, type_names=type_names, domain_of=domain_of)
    async for raw_page in client.pages(LOG_SOURCES):
        events = [
            _event(ctx, "siem.log_source.upserted", s, str(s.log_source_id), vendor_tenant=s.domain_id)
            for s in _normalised("log_sources", raw_page, convert, rejects)
        ]
        yield Page(events=events, cursor=None)
    rejects.raise_if_any()


# ---------------------------------------------------------------------------------------- offenses
def offense_start(cursor: Mapping[str, Any] | None, options: SyncOptions, now_ms: int) -> OffensePosition:
    """Where this run starts: after the cursor less the overlap window, or at the backfill horizon.

    The overlap re-reads offenses persisted shortly before the cursor: a console stamps
    ``last_persisted_time`` when it persists, and a change persisted a moment after another may
    carry a slightly earlier time. Re-read versions carry the same event id (version = persisted
    time), so consumers recognise them.
    """
    if cursor and cursor.get("last_persisted_time") is not None:
        position = OffensePosition(int(cursor["last_persisted_time"]), int(cursor.get("id") or 0))
        if options.offense_overlap_ms:
            position = OffensePosition(position.last_persisted_time - options.offense_overlap_ms, -1)
        return position
    if cursor and cursor.get("last_updated_time") is not None:
        # A cursor from the last_updated_time era: persisted >= updated, so start from there.
        return OffensePosition(int(cursor["last_updated_time"]) - max(options.offense_overlap_ms, 0), -1)
    since = now_ms - options.offense_backfill_days * DAY_MS if options.offense_backfill_days else 0
    return OffensePosition(since - 1, -1)


def _address_ids(raw_page: list[Any], field: str) -> list[int]:
    """The address ids of one kind a page's offenses carry (each offense's first
    ``ADDRESSES_PER_OFFENSE``; a malformed entry is the normaliser's to refuse)."""
    ids: list[int] = []
    for raw in raw_page:
        values = raw.get(field) if isinstance(raw, dict) else None
        if isinstance(values, list):
            ids.extend(
                v
                for v in values[: normalize.ADDRESSES_PER_OFFENSE]
                if isinstance(v, int) and not isinstance(v, bool)
            )
    return ids


async def _page_addresses(client: QRadarClient, raw_page: list[Any]) -> tuple[dict[int, str], dict[int, str]]:
    """The addresses behind a page's source and local destination address ids (both lists at once;
    ids resolved in earlier runs come from the client's cache)."""
    source, destination = await _gather_all(
        (
            client.addresses("source", _address_ids(raw_page, "source_address_ids")),
            client.addresses("local_destination", _address_ids(raw_page, "local_destination_address_ids")),
        )
    )
    return source, destination


def _later(cursor: Mapping[str, Any] | None, position: tuple[int, int]) -> dict[str, int]:
    """The cursor after a page: never behind the saved one (an overlap re-reads older offenses)."""
    if cursor and cursor.get("last_persisted_time") is not None:
        saved = (int(cursor["last_persisted_time"]), int(cursor.get("id") or 0))
        position = max(saved, position)
    return {"last_persisted_time": position[0], "id": position[1]}


async def fetch_offenses(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """Offenses incrementally by (last_persisted_time, id): new events and an analyst's close,
    assignment, follow-up or protect each arrive as a new version (notes: ``fetch_offense_notes``).

    An offense that cannot be read stops the run right before it (bad_response on the sync state):
    the offenses in front of it are published and the cursor stays at the last of them, so it is
    neither skipped nor lost, and the run is retried with the scheduler's backoff.

    Each page's source and local destination address ids are resolved to addresses
    (``siem/source_addresses``, ``siem/local_destination_addresses``, batched and cached) before
    the page is published: a resolution that fails after the HTTP base's retries fails the run
    before that page, so the cursor never passes offenses published without their addresses.
    """
    client: QRadarClient = ctx.client
    options = _options(ctx)
    reasons = await client.closing_reasons()
    refreshed = False
    position = offense_start(cursor, options, _now_ms())

    async for raw_page in client.offense_pages(position):
        if not refreshed and any(
            isinstance(r, dict)
            and r.get("closing_reason_id") is not None
            and str(r["closing_reason_id"]).isdigit()
            and int(r["closing_reason_id"]) not in reasons
            for r in raw_page
        ):
            reasons = await client.closing_reasons()  # a reason created since the run began
            refreshed = True
        sources: dict[int, str] = {}
        destinations: dict[int, str] = {}
        if options.offense_addresses:
            sources, destinations = await _page_addresses(client, raw_page)
        events: list[CloudEvent] = []
        last: tuple[int, int] | None = None
        for raw in raw_page:
            try:
                o = normalize.offense(
                    raw,
                    closing_reasons=reasons,
                    source_addresses=sources,
                    local_destination_addresses=destinations,
                )
                here = (persisted_time(raw), int(raw["id"]))
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                REJECTED.labels("offenses").inc()
                if events and last is not None:
                    yield Page(events=events, cursor=_later(cursor, last), records=len(events))
                record_id = raw.get("id") if isinstance(raw, dict) else "?"
                raise VendorError(
                    VendorErrorCategory.BAD_RESPONSE,
                    f"QRadar answered offense {record_id} in a form that cannot be read "
                    f"({type(exc).__name__}: {str(exc)[:200]}); sync stays before it until it can",
                    retryable=False,
                    details={"reason": "unreadable_record", "resource": "offenses", "id": record_id},
                ) from exc
            events.append(
                _event(
                    ctx,
                    "siem.offense.upserted",
                    o,
                    str(o.offense_id),
                    version=o.version,
                    vendor_tenant=o.domain_id,
                )
            )
            last = here
        if last is not None:
            cursor = _later(cursor, last)
            yield Page(events=events, cursor=cursor, records=len(events))


def _has_id(raw: Any) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get("id"), int)


NOTE_KEYS = "id,domain_id,last_persisted_time,last_updated_time"


async def _notes_events(ctx: SyncContext, offenses: list[dict[str, Any]]) -> list[CloudEvent]:
    """Every note of each offense, one event per offense (read time = version: a later read
    replaces an earlier one whole). An offense deleted meanwhile (404) has no notes to read."""
    client: QRadarClient = ctx.client

    async def read(offense_id: int) -> list[dict[str, Any]] | None:
        try:
            return await client.offense_notes(offense_id)
        except VendorError as exc:
            if exc.category == VendorErrorCategory.NOT_FOUND:
                return None
            raise

    wanted = [r for r in offenses if _has_id(r) and isinstance(r.get("domain_id"), int)]
    read_at = _now_ms()
    answers = await _gather_all(read(int(r["id"])) for r in wanted)
    events = []
    for raw, notes in zip(wanted, answers, strict=True):
        if notes is None:
            continue
        try:
            payload = normalize.offense_notes(int(raw["id"]), int(raw["domain_id"]), notes, read_at)
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            REJECTED.labels("offense_notes").inc()
            raise VendorError(
                VendorErrorCategory.BAD_RESPONSE,
                f"QRadar answered notes of offense {raw['id']} in a form that cannot be read "
                f"({type(exc).__name__}: {str(exc)[:200]}); notes sync stays before it until it can",
                retryable=False,
                details={"reason": "unreadable_record", "resource": "offense_notes", "id": raw["id"]},
            ) from exc
        events.append(
            _event(
                ctx,
                "siem.offense_notes.read",
                payload,
                str(payload.offense_id),
                version=read_at,
                vendor_tenant=payload.domain_id,
            )
        )
    return events


async def fetch_offense_notes(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """Offense notes as their own resource, read only where they can have changed.

    1. Offenses whose ``last_persisted_time`` moved since this resource's own cursor (the same
       keyset and overlap as the offenses; only ids are listed): a close with a note, any analyst
       action, new events. The cursor is the last offense of each page whose notes were published.
    2. A few open offenses per run (``notes_sweep_per_run``, in id order, wrapping round): QRadar
       does not document that adding a note persists the offense, so a note added to an open
       offense that otherwise stays still is found by this sweep — every open offense is re-read
       once per (open offenses / notes_sweep_per_run) runs.
    """
    client: QRadarClient = ctx.client
    options = _options(ctx)
    if not options.offense_notes:
        return
    state = dict(cursor or {})
    position = offense_start(state, options, _now_ms())
    async for raw_page in client.offense_pages(position, fields=NOTE_KEYS):
        last = max(
            ((persisted_time(r), int(r["id"])) for r in raw_page if _has_id(r)),
            default=None,
        )
        events = await _notes_events(ctx, raw_page)
        if last is not None:
            state.update(_later(state, last))
        yield Page(events=events, cursor=dict(state), records=len(events))
    if options.notes_sweep_per_run <= 0:
        return
    after = int(state.get("sweep_id") or -1)
    records, _, _ = await client.get_page(
        "siem/offenses",
        0,
        options.notes_sweep_per_run,
        params={"filter": f'status = "OPEN" and id > {after}', "sort": "+id", "fields": "id,domain_id"},
    )
    events = await _notes_events(ctx, records)
    ids = [int(r["id"]) for r in records if _has_id(r)]
    # Fewer than asked for: the sweep reached the last open offense; the next one starts over.
    state["sweep_id"] = max(ids) if ids and len(records) >= options.notes_sweep_per_run else -1
    yield Page(events=events, cursor=dict(state), records=len(events))


# ----------------------------------------------------------------------------- Ariel-computed data
async def fetch_eps(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """EPS per domain, hourly and daily windows; the cursor holds the end of the last window done."""
    client: QRadarClient = ctx.client
    options = _options(ctx)
    if not options.eps_enabled:
        return
    progress = dict(cursor or {})
    now = _now_ms()
    plan = {
        step: due_windows(
            step,
            last_end_ms=progress.get(step.value),
            now_ms=now,
            settle_ms=options.metrics_settle_seconds * 1000,
            max_windows=options.metrics_catch_up_windows,
        )
        for step in EPS_STEPS
    }
    if not any(plan.values()):
        return
    domain_ids = await _active_domain_ids(client)
    for step, windows in plan.items():
        for start, end in windows:
            results = await _gather_all(
                client.ariel_search(
                    render_eps(domain_id=d, start_ms=start, end_ms=end),
                    max_seconds=options.ariel_timeout_seconds,
                )
                for d in domain_ids
            )
            events = [
                _event(
                    ctx,
                    "siem.eps.sampled",
                    normalize.eps_sample(d, EPS_STEPS[step], start, end, rows),
                    f"{d}/{step.value}/{start}",
                    version=end,
                    vendor_tenant=d,
                )
                for d, rows in zip(domain_ids, results, strict=True)
            ]
            progress[step.value] = end
            yield Page(events=events, cursor=dict(progress))


async def fetch_metric(
    family: MetricFamily, ctx: SyncContext, cursor: dict[str, Any] | None
) -> AsyncIterator[Page]:
    """One catalogue family: one AQL search per domain for every newly closed window."""
    client: QRadarClient = ctx.client
    options = _options(ctx)
    if options.metric_families is not None and family.name not in options.metric_families:
        return
    windows = due_windows(
        family.step,
        last_end_ms=(cursor or {}).get("window_end"),
        now_ms=_now_ms(),
        settle_ms=options.metrics_settle_seconds * 1000,
        max_windows=options.metrics_catch_up_windows,
        span_days=family.span_days,
    )
    if not windows:
        return
    domain_ids = await _active_domain_ids(client)
    for start, end in windows:
        results = await _gather_all(
            client.ariel_search(
                family.render(domain_id=d, start_ms=start, end_ms=end),
                max_seconds=options.ariel_timeout_seconds,
            )
            for d in domain_ids
        )
        events = [
            _event(
                ctx,
                "siem.metric.sampled",
                normalize.metric_sample(
                    family.name,
                    d,
                    family.granularity,
                    start,
                    end,
                    normalize.metric_rows(rows, family.columns, family.measures),
                ),
                f"{family.name}/{d}/{start}",
                vendor_tenant=d,
            )
            for d, rows in zip(domain_ids, results, strict=True)
        ]
        yield Page(events=events, cursor={"window_end": end})


def _family_enabled(name: str, settings: dict[str, Any]) -> bool:
    """A metric family runs unless the integration's ``metric_families`` leaves it out."""
    families = settings.get("metric_families")
    return families is None or name in {str(f) for f in families}


RESOURCES: list[Resource] = [
    Resource("domains", 900, fetch_domains, "QRadar domains (the seed's QRadar tenants)"),
    Resource("event_collectors", 3600, fetch_event_collectors, "event collectors"),
    Resource("log_source_types", 86_400, fetch_log_source_types, "log source types"),
    Resource("log_source_groups", 3600, fetch_log_source_groups, "log source groups"),
    Resource("log_sources", 900, fetch_log_sources, "log sources (the seed's assets)"),
    Resource("offenses", 60, fetch_offenses, "offenses, incrementally by last_persisted_time"),
    Resource(
        "offense_notes",
        60,
        fetch_offense_notes,
        "notes of the offenses that changed, and a sweep of the open ones",
        enabled=lambda settings: bool(settings.get("offense_notes", True)),
    ),
    Resource(
        "eps",
        600,
        fetch_eps,
        "EPS per domain, hourly and daily (Ariel)",
        enabled=lambda settings: bool(settings.get("eps_enabled", True)),
    ),
    *(
        Resource(
            f.resource,
            CHECK_SECONDS[f.step],
            partial(fetch_metric, f),
            f.description,
            enabled=partial(_family_enabled, f.name),
        )
        for f in CATALOGUE
    ),
]


def client_for(
    integration: dict[str, Any], credentials: dict[str, Any], settings: Any, **options: Any
) -> QRadarClient:
    """Build a client from an integration row and the credentials the tenant service handed over.

    ``USERNAME_PASSWORD`` credentials authenticate with basic; anything else with the authorised
    service token in ``SEC`` (secret ``api_key``, also accepted as ``token``).
    """
    secrets = credentials.get("secrets") or {}
    kind = credentials.get("credential_kind") or integration.get("credential_kind")
    token = None if kind == "USERNAME_PASSWORD" else (secrets.get("api_key") or secrets.get("token"))
    overrides = integration.get("settings") or {}
    options.setdefault("max_concurrency", settings.http_concurrency)
    client = QRadarClient(
        integration["base_url"],
        integration_id=str(integration["id"]),
        token=token,
        username=secrets.get("username"),
        password=secrets.get("password"),
        api_version=str(overrides.get("api_version", settings.qradar_api_version)),
        verify_tls=integration.get("verify_tls", True),
        ca_pem=credentials.get("ca_pem"),
        page_size=int(overrides.get("page_size", settings.page_size)),
        ariel_poll_initial=settings.ariel_poll_initial_seconds,
        ariel_poll_max=settings.ariel_poll_max_seconds,
        ariel_concurrency=int(overrides.get("ariel_concurrency", settings.ariel_concurrency)),
        **options,
    )
    client.options = SyncOptions.resolve(settings, overrides)
    return client
