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
| offenses | the integration's polling interval | (last_updated_time, id) | siem.offense.upserted |
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
from soc_siem_ingest.client import OffensePosition, QRadarClient

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
    offense_overlap_ms: int = 0
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


def _normalised(
    resource: str, records: Iterable[dict[str, Any]], convert: Callable[[dict[str, Any]], T]
) -> list[T]:
    """Convert every record; one that cannot be converted (a console bug, a field of the wrong type)
    is logged and skipped instead of stopping the stream behind it forever."""
    out: list[T] = []
    for raw in records:
        try:
            out.append(convert(raw))
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            REJECTED.labels(resource).inc()
            logger.error(
                "QRadar {} record {} skipped: cannot normalise ({}: {})",
                resource,
                raw.get("id") if isinstance(raw, dict) else "?",
                type(exc).__name__,
                str(exc)[:200],
            )
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
    async for raw_page in client.pages(DOMAINS):
        events = [
            _event(ctx, "siem.domain.upserted", d, str(d.domain_id), vendor_tenant=d.domain_id)
            for d in _normalised("domains", raw_page, normalize.domain)
        ]
        yield Page(events=events, cursor=None)


async def fetch_event_collectors(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: QRadarClient = ctx.client
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
            for c in _normalised("event_collectors", raw_page, normalize.event_collector)
        ]
        yield Page(events=events, cursor=None)


async def fetch_log_source_types(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: QRadarClient = ctx.client
    async for raw_page in client.pages(LOG_SOURCE_TYPES, params={"fields": "id,name,version"}):
        events = [
            _event(ctx, "siem.log_source_type.upserted", t, str(t.type_id))
            for t in _normalised("log_source_types", raw_page, normalize.log_source_type)
        ]
        yield Page(events=events, cursor=None)


async def fetch_log_source_groups(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: QRadarClient = ctx.client
    async for raw_page in client.pages(LOG_SOURCE_GROUPS):
        events = [
            _event(ctx, "siem.log_source_group.upserted", g, str(g.group_id))
            for g in _normalised("log_source_groups", raw_page, normalize.log_source_group)
        ]
        yield Page(events=events, cursor=None)


async def fetch_log_sources(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """Log sources (the seed's assets), with the type name and the domain resolved once per run."""
    client: QRadarClient = ctx.client
    types = await client.collection(LOG_SOURCE_TYPES, params={"fields": "id,name"})
    type_names = {int(t["id"]): str(t.get("name") or "") for t in types}
    _, domain_of, _ = await _domain_membership(client)
    convert = partial(normalize.log_source, type_names=type_names, domain_of=domain_of)
    async for raw_page in client.pages(LOG_SOURCES):
        events = [
            _event(ctx, "siem.log_source.upserted", s, str(s.log_source_id), vendor_tenant=s.domain_id)
            for s in _normalised("log_sources", raw_page, convert)
        ]
        yield Page(events=events, cursor=None)


# ---------------------------------------------------------------------------------------- offenses
def offense_start(cursor: Mapping[str, Any] | None, options: SyncOptions, now_ms: int) -> OffensePosition:
    """Where this run starts: after the cursor (less the overlap), or at the backfill horizon."""
    if cursor and cursor.get("last_updated_time") is not None:
        position = OffensePosition(int(cursor["last_updated_time"]), int(cursor.get("id") or 0))
        if options.offense_overlap_ms:
            position = OffensePosition(position.last_updated_time - options.offense_overlap_ms, -1)
        return position
    since = now_ms - options.offense_backfill_days * DAY_MS if options.offense_backfill_days else 0
    return OffensePosition(since - 1, -1)


async def fetch_offenses(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """Offenses incrementally by (last_updated_time, id): every update or closure is a new version."""
    client: QRadarClient = ctx.client
    reasons = await client.closing_reasons()
    refreshed = False
    position = offense_start(cursor, _options(ctx), _now_ms())

    def convert(raw: dict[str, Any]) -> CloudEvent:
        o = normalize.offense(raw, closing_reasons=reasons)
        return _event(
            ctx, "siem.offense.upserted", o, str(o.offense_id), version=o.version, vendor_tenant=o.domain_id
        )

    async for raw_page in client.offense_pages(position):
        if not refreshed and any(
            r.get("closing_reason_id") is not None and int(r["closing_reason_id"]) not in reasons
            for r in raw_page
        ):
            reasons = await client.closing_reasons()  # a reason created since the run began
            refreshed = True
        last = raw_page[-1]
        yield Page(
            events=_normalised("offenses", raw_page, convert),
            cursor={"last_updated_time": int(last["last_updated_time"]), "id": int(last["id"])},
            records=len(raw_page),
        )


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


RESOURCES: list[Resource] = [
    Resource("domains", 900, fetch_domains, "QRadar domains (the seed's QRadar tenants)"),
    Resource("event_collectors", 3600, fetch_event_collectors, "event collectors"),
    Resource("log_source_types", 86_400, fetch_log_source_types, "log source types"),
    Resource("log_source_groups", 3600, fetch_log_source_groups, "log source groups"),
    Resource("log_sources", 900, fetch_log_sources, "log sources (the seed's assets)"),
    Resource("offenses", 60, fetch_offenses, "offenses, incrementally by last_updated_time"),
    Resource("eps", 600, fetch_eps, "EPS per domain, hourly and daily (Ariel)"),
    *(
        Resource(f.resource, CHECK_SECONDS[f.step], partial(fetch_metric, f), f.description)
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
