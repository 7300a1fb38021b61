"""The Cyware CSAP resources this ingestor syncs, declared as data: name, interval, fetch.

Every fetch yields :class:`Page` objects in cursor order; the shared Ingestor publishes each page
with confirms and only then saves its cursor, so a failure anywhere leaves the cursor at the last
confirmed page. A threat-intel integration belongs to one company (the seed's
ThreatIntelligenceTenant): every payload carries that ``company_id``.

| resource | interval | cursor | event |
|---|---|---|---|
| alerts | the integration's polling interval (default 5 min) | ``{published_time, short_ids}`` keyset | ti.alert.upserted |
| alert_updates | 1 h | ``{digests: {short_id: fingerprint}}`` of the re-read window | ti.alert.upserted |
| tags | 1 h | snapshot | ti.tag.upserted |
| recipient_groups | 1 h | snapshot | ti.group.upserted |
| categories | 1 h | snapshot | ti.category.upserted |
| custom_fields | 1 h | snapshot | ti.custom_field.upserted |

``alerts`` hands out every newly published alert once, with its details. ``alert_updates`` covers
what a publication-time cursor cannot see: an alert edited after it was read. It re-reads the alerts
published in the last ``alert_revisit_hours`` with their details and publishes those whose content
fingerprint differs from the one it saw last time (on its first run: all of them once; identical
content gives the identical event id, so a consumer recognises the duplicate).

Integration settings (``IntegrationChanged.settings``, all optional, defaults from the service's
environment): ``page_size`` (1–1000), ``http_concurrency`` (1–128), ``signature_window_seconds``
(1–30), ``alert_backfill_days``, ``alert_overlap_seconds`` (0–86400), ``alert_revisit_hours``
(0–720), ``resource_intervals`` (the shared scheduler's).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from loguru import logger
from prometheus_client import Counter
from pydantic import ValidationError
from soc_shared.events import CloudEvent, Payload, TiAlert, TiCustomField, make_event
from soc_shared.sync import Page, Resource, SyncContext
from soc_shared.vendor_http import VendorError, VendorErrorCategory

from soc_threatintel import normalize
from soc_threatintel.client import MAX_PAGE_SIZE, AlertPosition, CywareClient

T = TypeVar("T")
JSON = dict[str, Any]
DAY_S = 86_400

REJECTED = Counter(
    "soc_threatintel_records_rejected_total",
    "Cyware records that could not be normalised (skipped)",
    ["resource"],
)


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Sync knobs: service defaults (env), overridable per integration through its ``settings``."""

    page_size: int = 500
    alert_backfill_days: int = 0
    alert_overlap_seconds: int = 0
    alert_revisit_hours: int = 24

    @classmethod
    def resolve(cls, settings: Any, overrides: Mapping[str, Any] | None) -> SyncOptions:
        o = dict(overrides or {})
        try:
            options = cls(
                page_size=int(o.get("page_size", settings.page_size)),
                alert_backfill_days=int(o.get("alert_backfill_days", settings.alert_backfill_days)),
                alert_overlap_seconds=int(o.get("alert_overlap_seconds", settings.alert_overlap_seconds)),
                alert_revisit_hours=int(o.get("alert_revisit_hours", settings.alert_revisit_hours)),
            )
            if not 1 <= options.page_size <= MAX_PAGE_SIZE:
                raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
            if options.alert_backfill_days < 0:
                raise ValueError("alert_backfill_days must not be negative")
            if not 0 <= options.alert_overlap_seconds <= DAY_S:
                raise ValueError("alert_overlap_seconds must be between 0 and 86400")
            if not 0 <= options.alert_revisit_hours <= 720:
                raise ValueError("alert_revisit_hours must be between 0 and 720")
        except (TypeError, ValueError) as exc:
            raise VendorError(
                VendorErrorCategory.INVALID_REQUEST, f"integration settings: {exc}", retryable=False
            ) from None
        return options


def _options(ctx: SyncContext) -> SyncOptions:
    return getattr(ctx.client, "options", None) or SyncOptions()


def _company(ctx: SyncContext) -> str | None:
    company_id = ctx.integration.get("company_id")
    return None if company_id is None else str(company_id)


def _event(
    ctx: SyncContext, routing_key: str, payload: Payload, subject: str, *, version: str | int | None = None
) -> CloudEvent:
    return make_event(
        routing_key,
        payload,
        source=ctx.source,
        subject=subject,
        vendor_version=version,
        integration_id=ctx.integration_id,
    )


_UNREADABLE = (KeyError, TypeError, ValueError, ValidationError)


class Rejects:
    """Records of a run that cannot be normalised: the run publishes the others, then ends as a
    ``bad_response`` naming them, so the integration's sync health shows the vendor's bad data
    instead of a record silently missing."""

    def __init__(self, resource: str) -> None:
        self.resource = resource
        self.ids: list[str] = []
        self.reason = ""

    def add(self, raw: Any, exc: Exception) -> None:
        REJECTED.labels(self.resource).inc()
        first = raw[0] if isinstance(raw, tuple) and raw else raw  # (summary, detail) pairs
        ident = None
        if isinstance(first, dict):
            ident = next(
                (
                    first.get(k)
                    for k in ("short_id", "tag_id", "group_id", "category_id", "field_id")
                    if first.get(k)
                ),
                None,
            )
        self.ids.append(str(ident or "?"))
        self.reason = self.reason or f"{type(exc).__name__}: {str(exc)[:200]}"
        logger.error(
            "Cyware {} record {} cannot be normalised ({})", self.resource, self.ids[-1], self.reason
        )

    def raise_if_any(self) -> None:
        if self.ids:
            shown = ", ".join(self.ids[:10]) + (" …" if len(self.ids) > 10 else "")
            raise VendorError(
                VendorErrorCategory.BAD_RESPONSE,
                f"Cyware answered {len(self.ids)} {self.resource} record(s) that cannot be read "
                f"({shown}): {self.reason}",
                retryable=False,
                details={"reason": "unreadable_record", "resource": self.resource, "ids": self.ids[:50]},
            )


def _normalised(
    resource: str, records: Iterable[T], convert: Callable[[T], Any], rejects: Rejects | None = None
) -> list[Any]:
    """Convert every record; one that cannot be converted (a vendor bug, a field of the wrong type)
    goes to ``rejects`` (the run then ends as a ``bad_response``) instead of holding the others."""
    rejects = rejects or Rejects(resource)
    out: list[Any] = []
    for raw in records:
        try:
            out.append(convert(raw))
        except _UNREADABLE as exc:
            rejects.add(raw, exc)
    return out


def _alert_payloads(
    resource: str,
    summaries: Sequence[JSON],
    details: Sequence[JSON | None],
    company_id: str | None,
    rejects: Rejects,
) -> list[TiAlert]:
    pairs = [(s, d) for s, d in zip(summaries, details, strict=True) if d is not None]
    return _normalised(resource, pairs, lambda p: normalize.alert(p[1], p[0], company_id=company_id), rejects)


def _alert_event(ctx: SyncContext, alert: TiAlert, digest: str | None = None) -> CloudEvent:
    version = f"{alert.version}:{digest or normalize.alert_digest(alert)}"
    return _event(ctx, "ti.alert.upserted", alert, alert.short_id, version=version)


# ------------------------------------------------------------------------------------------ alerts
def alert_start(cursor: Mapping[str, Any] | None, options: SyncOptions, now_s: int) -> AlertPosition:
    """Where this run starts: at the cursor's second (re-read), or at the backfill horizon."""
    since = now_s - options.alert_backfill_days * DAY_S if options.alert_backfill_days else None
    return AlertPosition.from_cursor(
        dict(cursor) if cursor else None, since=since, overlap_seconds=options.alert_overlap_seconds
    )


async def fetch_alerts(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """New alerts by (published_time, short id), each with its details; one page per list page.

    An alert that cannot be read stops the run right before it (bad_response on the sync state):
    the alerts in front of it are published and the cursor stays at the last of them, so it is
    neither skipped nor lost, and the scheduler retries with its backoff. An alert whose detail
    answers 404 was deleted meanwhile and is passed over.
    """
    client: CywareClient = ctx.client
    options = _options(ctx)
    company_id = _company(ctx)
    if company_id is None:
        logger.warning(
            "Cyware integration {} has no company: alerts are published without company_id",
            ctx.integration_id,
        )
    position = alert_start(cursor, options, int(time.time()))
    previous = position
    async for chunk in client.alert_chunks(position, page_size=options.page_size):
        events: list[CloudEvent] = []
        for index, (summary, detail) in enumerate(zip(chunk.summaries, chunk.details, strict=True)):
            if detail is None:
                continue
            try:
                alert = normalize.alert(detail, summary, company_id=company_id)
            except _UNREADABLE as exc:
                REJECTED.labels("alerts").inc()
                if index:
                    done = previous.advanced(chunk.summaries[:index])
                    yield Page(events=events, cursor=done.to_cursor(), records=index)
                raise VendorError(
                    VendorErrorCategory.BAD_RESPONSE,
                    f"Cyware answered alert {summary.get('short_id')} in a form that cannot be read "
                    f"({type(exc).__name__}: {str(exc)[:200]}); sync stays before it until it can",
                    retryable=False,
                    details={
                        "reason": "unreadable_record",
                        "resource": "alerts",
                        "id": summary.get("short_id"),
                    },
                ) from exc
            events.append(_alert_event(ctx, alert))
        yield Page(events=events, cursor=chunk.position.to_cursor(), records=len(chunk.summaries))
        previous = chunk.position


async def fetch_alert_updates(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """Alerts of the revisit window whose content changed since the last look (see module doc)."""
    client: CywareClient = ctx.client
    options = _options(ctx)
    if not options.alert_revisit_hours:
        return
    company_id = _company(ctx)
    known: dict[str, str] = dict((cursor or {}).get("digests") or {})
    since = int(time.time()) - options.alert_revisit_hours * 3600
    current: dict[str, str] = {}
    changed: list[CloudEvent] = []
    rejects = Rejects("alert_updates")
    async for summaries in client.alerts_between(since, page_size=options.page_size):
        fresh = [s for s in summaries if str(s["short_id"]) not in current]
        details = await client.alert_details([str(s["short_id"]) for s in fresh])
        for alert in _alert_payloads("alert_updates", fresh, details, company_id, rejects):
            digest = normalize.alert_digest(alert)
            current[alert.short_id] = digest
            if known.get(alert.short_id) != digest:
                changed.append(_alert_event(ctx, alert, digest))
    # One page at the end: the window is small, and a run that fails half way simply starts over.
    yield Page(events=changed, cursor={"digests": current, "since": since}, records=len(changed))
    rejects.raise_if_any()


# ----------------------------------------------------------------------------- reference snapshots
async def fetch_tags(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: CywareClient = ctx.client
    company_id = _company(ctx)
    rejects = Rejects("tags")
    tags = _normalised(
        "tags", await client.tags(), lambda r: normalize.tag(r, company_id=company_id), rejects
    )
    yield Page(events=[_event(ctx, "ti.tag.upserted", t, t.tag_id) for t in tags], cursor=None)
    rejects.raise_if_any()


async def fetch_recipient_groups(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: CywareClient = ctx.client
    company_id = _company(ctx)
    rejects = Rejects("recipient_groups")
    groups = _normalised(
        "recipient_groups",
        await client.recipient_groups(),
        lambda r: normalize.group(r, company_id=company_id),
        rejects,
    )
    yield Page(events=[_event(ctx, "ti.group.upserted", g, g.group_id) for g in groups], cursor=None)
    rejects.raise_if_any()


async def fetch_categories(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: CywareClient = ctx.client
    company_id = _company(ctx)
    rejects = Rejects("categories")
    categories = _normalised(
        "categories",
        await client.categories(),
        lambda r: normalize.category(r, company_id=company_id),
        rejects,
    )
    yield Page(
        events=[_event(ctx, "ti.category.upserted", c, c.category_id) for c in categories], cursor=None
    )
    rejects.raise_if_any()


async def fetch_custom_fields(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    client: CywareClient = ctx.client
    company_id = _company(ctx)
    fields: list[TiCustomField] = []
    rejects = Rejects("custom_fields")
    for raw_group in await client.additional_fields():
        is_system = normalize.is_system_key(raw_group.get("key"))
        fields += _normalised(
            "custom_fields",
            raw_group.get("values") or [],
            partial(normalize.custom_field, is_system=is_system, company_id=company_id),
            rejects,
        )
    yield Page(events=[_event(ctx, "ti.custom_field.upserted", f, f.field_id) for f in fields], cursor=None)
    rejects.raise_if_any()


RESOURCES: list[Resource] = [
    Resource("alerts", 300, fetch_alerts, "alerts with details, incrementally by published_time"),
    Resource("alert_updates", 3600, fetch_alert_updates, "recently published alerts whose content changed"),
    Resource("tags", 3600, fetch_tags, "tags"),
    Resource("recipient_groups", 3600, fetch_recipient_groups, "recipient groups"),
    Resource("categories", 3600, fetch_categories, "categories with their fields"),
    Resource("custom_fields", 3600, fetch_custom_fields, "system and custom (additional) fields"),
]


def client_for(
    integration: dict[str, Any], credentials: dict[str, Any], settings: Any, **options: Any
) -> CywareClient:
    """Build a client from an integration row and the credentials the tenant service handed over.

    Secrets: ``access_key`` (also accepted as ``access_id``) and ``secret_key`` (or ``secret``).
    ``options`` go to the client (tests: ``transport``, ``retry``, ``clock``, ``timeout``).
    """
    secrets = credentials.get("secrets") or {}
    access_id = secrets.get("access_key") or secrets.get("access_id") or ""
    secret_key = secrets.get("secret_key") or secrets.get("secret") or ""
    overrides = integration.get("settings") or {}
    sync_options = SyncOptions.resolve(settings, overrides)
    try:
        concurrency = int(overrides.get("http_concurrency", settings.http_concurrency))
        window = int(overrides.get("signature_window_seconds", settings.signature_window_seconds))
        if not 1 <= concurrency <= 128:
            raise ValueError("http_concurrency must be between 1 and 128")
        if not 1 <= window <= 30:
            raise ValueError("signature_window_seconds must be between 1 and 30 (Cyware's limit)")
    except (TypeError, ValueError) as exc:
        raise VendorError(
            VendorErrorCategory.INVALID_REQUEST, f"integration settings: {exc}", retryable=False
        ) from None
    options.setdefault("max_concurrency", concurrency)
    options.setdefault("signature_window_seconds", window)
    if not access_id or not secret_key:
        raise VendorError(
            VendorErrorCategory.INVALID_REQUEST,
            "the Cyware credentials need an access id (access_key) and a secret key (secret_key)",
            retryable=False,
        )
    client = CywareClient(
        integration["base_url"],
        integration_id=str(integration["id"]),
        access_id=str(access_id),
        secret_key=str(secret_key),
        page_size=sync_options.page_size,
        verify_tls=integration.get("verify_tls", True),
        ca_pem=credentials.get("ca_pem"),
        **options,
    )
    client.options = sync_options
    return client
