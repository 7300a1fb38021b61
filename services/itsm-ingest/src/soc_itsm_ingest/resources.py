"""The ServiceDesk Plus resources this ingestor syncs, declared as data: name, interval, fetch.

Every fetch yields :class:`Page` objects in cursor order; the shared Ingestor publishes each page
with confirms and only then saves its cursor, so a failure anywhere leaves the cursor at the last
confirmed page.

| resource | interval | cursor | event |
|---|---|---|---|
| accounts | 15 min | snapshot | itsm.account.upserted |
| tickets | the integration's polling interval | (last_updated_time, ids read at that time) | itsm.ticket.upserted |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loguru import logger
from prometheus_client import Counter
from pydantic import ValidationError
from soc_shared.events import CloudEvent, ItsmTicket, make_event
from soc_shared.sync import Page, Resource, SyncContext
from soc_shared.vendor_http import VendorError, VendorErrorCategory

from soc_itsm_ingest import normalize
from soc_itsm_ingest.client import SdpClient, TicketPosition
from soc_itsm_ingest.oauth import OAUTH_KIND, ZohoAuth, ZohoCredentials, ZohoTokens, accounts_url_for

T = TypeVar("T")
DAY_MS = 86_400_000
SOURCE_PREFIX = "/itsm-ingest/sdp"

REJECTED = Counter(
    "soc_itsm_records_rejected_total",
    "ServiceDesk Plus records that could not be normalised (skipped)",
    ["resource"],
)

# What the normaliser reads; asking for these alone shrinks a list page several times over.
TICKET_FIELDS = (
    "subject",
    "short_description",
    "status",
    "priority",
    "is_overdue",
    "created_time",
    "last_updated_time",
    "created_by",
    "account",
    "technician",
    "resolution",
)


@dataclass(frozen=True)
class SyncOptions:
    """Sync knobs: service defaults (env), overridable per integration through its ``settings``."""

    incident_id_field: str = normalize.DEFAULT_INCIDENT_ID_FIELD
    ticket_backfill_days: int = 0
    ticket_overlap_ms: int = 0
    fields_required: bool = True
    """Kept for compatibility: lists always name the fields they read (see :meth:`list_fields`)."""
    priority_map: dict[str, str] = field(default_factory=dict)
    ticket_defaults: dict[str, Any] = field(default_factory=dict)
    reference_field: str | None = None
    """A request field (dotted, e.g. ``udf_fields.udf_sline_4507``) that keeps the ticket's
    idempotency reference besides the subject tag; searched on when set."""

    @classmethod
    def resolve(cls, settings: Any, overrides: Mapping[str, Any] | None) -> SyncOptions:
        o = dict(overrides or {})
        return cls(
            incident_id_field=str(o.get("incident_id_field") or settings.incident_id_field),
            ticket_backfill_days=int(o.get("ticket_backfill_days", settings.ticket_backfill_days)),
            ticket_overlap_ms=int(o.get("ticket_overlap_ms", settings.ticket_overlap_ms)),
            fields_required=bool(o.get("fields_required", True)),
            priority_map={str(k): str(v) for k, v in (o.get("priority_map") or {}).items()},
            ticket_defaults=dict(o.get("ticket_defaults") or {}),
            reference_field=str(o["reference_field"]) if o.get("reference_field") else None,
        )

    def list_fields(self) -> list[str]:
        """The fields a ticket list names: SDP list rows carry the list view's columns only (no
        priority, account, last_updated_time or user fields), so they are always named (the
        ``fields_required`` setting is kept for compatibility and no longer turns this off)."""
        head = self.incident_id_field.split(".", 1)[0]
        return [*TICKET_FIELDS, *([head] if head not in TICKET_FIELDS else [])]


def options_of(client: Any) -> SyncOptions:
    return getattr(client, "options", None) or SyncOptions()


def source_of(integration_id: str) -> str:
    return f"{SOURCE_PREFIX}/{integration_id}"


def ticket_event(source: str, integration_id: str, ticket: ItsmTicket) -> CloudEvent:
    """The event of one ticket version; the same version always gets the same id, whether the
    sync read it or the ticket service just created it."""
    return make_event(
        "itsm.ticket.upserted",
        ticket,
        source=source,
        subject=ticket.ticket_id,
        vendor_version=ticket.version,
        integration_id=integration_id,
        vendor_tenant=ticket.account_id,
        time=ticket.last_updated_time,
    )


def _normalised(
    resource: str, records: Iterable[dict[str, Any]], convert: Callable[[dict[str, Any]], T]
) -> list[T]:
    """Convert every record; one that cannot be converted is logged and skipped instead of
    stopping the stream behind it forever."""
    out: list[T] = []
    for raw in records:
        try:
            out.append(convert(raw))
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            REJECTED.labels(resource).inc()
            logger.error(
                "SDP {} record {} skipped: cannot normalise ({}: {})",
                resource,
                raw.get("id") if isinstance(raw, dict) else "?",
                type(exc).__name__,
                str(exc)[:200],
            )
    return out


async def fetch_accounts(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """MSP accounts (the seed's DuITSMTenants), a snapshot every run."""
    client: SdpClient = ctx.client
    async for raw_page in client.accounts():
        events = [
            make_event(
                "itsm.account.upserted",
                a,
                source=ctx.source,
                subject=a.account_id,
                integration_id=ctx.integration_id,
                vendor_tenant=a.account_id,
            )
            for a in _normalised("accounts", raw_page, normalize.account)
        ]
        yield Page(events=events, cursor=None, records=len(raw_page))


def ticket_start(cursor: Mapping[str, Any] | None, options: SyncOptions, now_ms: int) -> TicketPosition:
    """Where this run starts: at the cursor (less the overlap), or at the backfill horizon."""
    since = now_ms - options.ticket_backfill_days * DAY_MS if options.ticket_backfill_days else 0
    position = TicketPosition.from_cursor(dict(cursor) if cursor else None, since)
    if cursor and options.ticket_overlap_ms:
        position = TicketPosition(max(0, position.last_updated_time - options.ticket_overlap_ms))
    return position


async def fetch_tickets(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    """Requests (tickets) incrementally by last_updated_time: every change is a new version."""
    client: SdpClient = ctx.client
    options = options_of(client)
    position = ticket_start(cursor, options, int(time.time() * 1000))

    def convert(raw: dict[str, Any]) -> CloudEvent:
        return ticket_event(
            ctx.source,
            ctx.integration_id,
            normalize.ticket(
                raw, incident_id_field=options.incident_id_field, base_url=ctx.integration.get("base_url")
            ),
        )

    async def pages() -> AsyncIterator[Page]:
        async for raw_page, after in client.ticket_pages(position, fields_required=options.list_fields()):
            yield Page(
                events=_normalised("tickets", raw_page, convert), cursor=after.cursor(), records=len(raw_page)
            )

    async for page in read_ahead(pages()):
        yield page


async def read_ahead(source: AsyncIterator[T]) -> AsyncIterator[T]:
    """Yield ``source``'s items in order, producing the next one in the background meanwhile.

    While the Ingestor waits for the broker to confirm a page and saves its cursor, the next page
    is fetched, parsed, normalised and wrapped in its envelopes. Order, and therefore the cursor
    rule, is unchanged: an item is handed out only after the previous one was taken, and a failure
    of the next page surfaces only once the current page is done with.
    """
    iterator = aiter(source)
    pending: asyncio.Future[T] | None = asyncio.ensure_future(anext(iterator))
    try:
        while pending is not None:
            try:
                item = await pending
            except StopAsyncIteration:
                pending = None
                return
            pending = asyncio.ensure_future(anext(iterator))
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()


RESOURCES: list[Resource] = [
    Resource("accounts", 900, fetch_accounts, "MSP accounts (the seed's ITSM tenants)"),
    Resource("tickets", 60, fetch_tickets, "requests, incrementally by last_updated_time"),
]


def credential_token(credentials: Mapping[str, Any]) -> str | None:
    """The technician key from the secrets the tenant service handed over."""
    secrets = credentials.get("secrets") or {}
    for key in ("api_key", "token", "authtoken", "technician_key"):
        if secrets.get(key):
            return str(secrets[key])
    return None


def client_for(
    integration: dict[str, Any],
    credentials: dict[str, Any],
    settings: Any,
    *,
    oauth_tokens: ZohoTokens | None = None,
    **options: Any,
) -> SdpClient:
    """Build a client from an integration row and its credentials.

    ``OAUTH_CLIENT`` credentials (client id, client secret, refresh token: ServiceDesk Plus Cloud)
    authenticate with Zoho OAuth access tokens from ``oauth_tokens`` (the service's store shared by
    every replica; without it, tokens live in this process only, as for test-connection); any
    other kind sends the on-premises technician key in the ``authtoken`` header.
    """
    overrides = integration.get("settings") or {}
    options.setdefault("max_concurrency", settings.http_concurrency)
    kind = credentials.get("credential_kind") or integration.get("credential_kind")
    token: str | None = None
    oauth: ZohoAuth | None = None
    if kind == OAUTH_KIND:
        zoho = ZohoCredentials.from_secrets(
            credentials.get("secrets") or {},
            accounts_url_for(integration["base_url"], overrides.get("accounts_url")),
        )
        oauth = ZohoAuth(oauth_tokens or ZohoTokens(), str(integration["id"]), zoho, http_options=options)
    else:
        token = credential_token(credentials) or ""
        if not token:
            raise VendorError(
                VendorErrorCategory.INVALID_REQUEST,
                "ServiceDesk Plus needs a technician key (API_KEY) or Zoho OAuth credentials (OAUTH_CLIENT)",
                retryable=False,
            )
    client = SdpClient(
        integration["base_url"],
        integration_id=str(integration["id"]),
        token=token,
        oauth=oauth,
        verify_tls=integration.get("verify_tls", True),
        ca_pem=credentials.get("ca_pem"),
        page_size=int(overrides.get("page_size", settings.page_size)),
        **options,
    )
    client.options = SyncOptions.resolve(settings, overrides)
    return client
