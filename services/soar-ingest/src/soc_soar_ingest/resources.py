"""The XSOAR resources this ingestor syncs, declared as data: name, interval, fetch.

* ``accounts`` — the master's tenants (the seed's SOAR tenants) → ``soar.account.upserted``.
* ``incidents`` — every incident change, per account, keyset-paged on ``modified`` →
  ``soar.incident.upserted``. Cursor: ``{"accounts": {<account>: {"modified", "ids"}}}``.
* ``notes`` — the war-room notes of the incidents that changed since its own cursor (same shape)
  → ``soar.note.added``. Its own resource so that reading war rooms, one request per incident,
  never slows the incident stream down or holds it back when the war-room API fails.

Integration settings (``IntegrationChanged.settings``, all optional): ``auth_style``
(``xsoar6``/``xsoar8``), ``api_key_id`` (XSOAR 8 key id, if not among the secrets), ``accounts``
(names to sync; default all), ``field_map`` (see :mod:`soc_soar_ingest.normalize`), ``page_size``,
``overlap_seconds``, ``fetch_notes``, ``notes_concurrency``, ``resource_intervals``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from loguru import logger
from soc_shared.events import CloudEvent, SoarAccount, SoarNote, make_event
from soc_shared.sync import Page, Resource, SyncContext
from soc_shared.vendor_http import VendorError, VendorErrorCategory

from soc_soar_ingest import normalize
from soc_soar_ingest.client import MAX_PAGE_SIZE, Position, XsoarClient
from soc_soar_ingest.state import NoteMarks

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """An integration's sync settings, validated once per run."""

    field_map: normalize.FieldMap
    accounts: frozenset[str] | None
    page_size: int
    overlap_ns: int
    fetch_notes: bool
    notes_concurrency: int

    @classmethod
    def from_settings(cls, integration_settings: Mapping[str, Any], service_settings: Any) -> SyncOptions:
        s = integration_settings or {}
        try:
            field_map = normalize.build_field_map(s.get("field_map"))
            accounts = s.get("accounts")
            if accounts is not None and (
                not isinstance(accounts, list) or not all(isinstance(a, str) and a.strip() for a in accounts)
            ):
                raise ValueError("accounts must be a list of account names")
            page_size = int(s.get("page_size", service_settings.page_size))
            overlap = float(s.get("overlap_seconds", 0))
            concurrency = int(s.get("notes_concurrency", service_settings.notes_concurrency))
            if not 0 <= overlap <= 3600:
                raise ValueError("overlap_seconds must be between 0 and 3600")
            if not 1 <= concurrency <= 64:
                raise ValueError("notes_concurrency must be between 1 and 64")
        except (TypeError, ValueError) as exc:
            raise VendorError(
                VendorErrorCategory.INVALID_REQUEST, f"integration settings: {exc}", retryable=False
            ) from None
        return cls(
            field_map=field_map,
            accounts=frozenset(a.strip().removeprefix("acc_") for a in accounts)
            if accounts is not None
            else None,
            page_size=max(1, min(page_size, MAX_PAGE_SIZE)),
            overlap_ns=int(overlap * 1_000_000_000),
            fetch_notes=bool(s.get("fetch_notes", True)),
            notes_concurrency=concurrency,
        )


@dataclass
class XsoarSync:
    """What one sync run of one integration works with (the Ingestor closes it after the run)."""

    client: XsoarClient
    options: SyncOptions
    marks: NoteMarks | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    async def accounts(self) -> list[SoarAccount] | None:
        """The tenants this integration syncs; ``None`` on a single-tenant server."""
        found = await self.client.accounts()
        if not found:
            return None
        wanted = self.options.accounts
        if wanted is not None:
            missing = wanted - {a.name for a in found}
            if missing:
                logger.warning("XSOAR accounts {} configured but not on the server; skipped", sorted(missing))
            found = [a for a in found if a.name in wanted]
        return [normalize.soar_account(a.account_id, a.name, a.display_name) for a in found]

    async def scopes(self) -> list[str]:
        """Where incidents are read: each account's ``/acc_<name>/`` routes, or the server root."""
        accounts = await self.accounts()
        return [""] if accounts is None else sorted(a.name for a in accounts)

    async def changes(
        self, ctx: SyncContext, cursor: dict[str, Any] | None
    ) -> AsyncIterator[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
        """``(account, incidents, cursor after them)`` for every incident changed since ``cursor``."""
        positions: dict[str, Any] = dict((cursor or {}).get("accounts") or {})
        for scope in await self.scopes():
            start = Position.from_json(positions.get(scope))
            async for batch, position in self.client.changed_incidents(
                scope, start, page_size=self.options.page_size, overlap_ns=self.options.overlap_ns
            ):
                positions[scope] = position.to_json()
                yield scope, batch, {"accounts": dict(positions)}


def _subject(account: str | None, record_id: str) -> str:
    # Incident and entry ids are per tenant: two accounts may both have incident "7".
    return f"{account}/{record_id}" if account else record_id


def incident_event(
    ctx: SyncContext, raw: dict[str, Any], scope: str, field_map: normalize.FieldMap
) -> CloudEvent:
    try:
        incident = normalize.incident(raw, field_map, account=scope or None)
    except ValueError as exc:
        # Not skipped: the run stops before this page and says why, rather than losing the record.
        raise VendorError(
            VendorErrorCategory.BAD_RESPONSE,
            f"XSOAR incident {raw.get('id')!r}: {exc}"[:500],
            retryable=False,
        ) from None
    return make_event(
        "soar.incident.upserted",
        incident,
        source=ctx.source,
        subject=_subject(incident.account, incident.incident_id),
        vendor_version=incident.version,
        integration_id=ctx.integration_id,
        vendor_tenant=incident.account,
        time=incident.modified,
    )


def note_event(ctx: SyncContext, entry: dict[str, Any], note: SoarNote) -> CloudEvent:
    return make_event(
        "soar.note.added",
        note,
        source=ctx.source,
        subject=_subject(note.account, note.note_id),
        vendor_version=normalize.entry_version(entry),
        integration_id=ctx.integration_id,
        vendor_tenant=note.account,
        time=note.created,
    )


async def fetch_accounts(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    sync: XsoarSync = ctx.client
    accounts = await sync.accounts() or []
    events = [
        make_event(
            "soar.account.upserted",
            account,
            source=ctx.source,
            subject=account.name,
            integration_id=ctx.integration_id,
            vendor_tenant=account.name,
        )
        for account in accounts
    ]
    yield Page(events=events, cursor=None)


async def fetch_incidents(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    sync: XsoarSync = ctx.client
    field_map = sync.options.field_map

    def page_of(change: tuple[str, list[dict[str, Any]], dict[str, Any]]) -> Page:
        scope, batch, after = change
        return Page(events=[incident_event(ctx, raw, scope, field_map) for raw in batch], cursor=after)

    async for page in _prepared_ahead(sync.changes(ctx, cursor), page_of):
        yield page


async def _prepared_ahead(items: AsyncIterator[T], prepare: Callable[[T], U]) -> AsyncIterator[U]:
    """Yield ``prepare(item)`` for each item, preparing the next one while the consumer works on
    the current one: the Ingestor mostly waits for broker confirms of a page, and that wait is
    when the next page can be read and normalised. Nothing is saved ahead — only the Ingestor
    saves a cursor, after the page it was handed is confirmed."""

    async def next_prepared() -> tuple[bool, U | None]:
        try:
            item = await anext(items)
        except StopAsyncIteration:
            return False, None
        return True, prepare(item)

    task = asyncio.create_task(next_prepared())
    try:
        while True:
            more, prepared = await task
            if not more:
                return
            task = asyncio.create_task(next_prepared())
            yield prepared  # type: ignore[misc]
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await items.aclose()  # type: ignore[attr-defined]


async def _war_room_notes(
    ctx: SyncContext,
    sync: XsoarSync,
    scope: str,
    raw: dict[str, Any],
    mark: str | None,
    slots: asyncio.Semaphore,
) -> tuple[list[CloudEvent], tuple[str, int] | None]:
    """Notes added to one incident's war room after ``mark``, and the new mark."""
    incident_id = str(raw["id"])
    account = normalize.account_name(raw.get("account")) or scope or None
    mark_ns = normalize.parse_time_ns(mark) if mark else None
    newest: tuple[str, int] | None = None
    events: list[CloudEvent] = []
    async with slots:
        async for entries in sync.client.investigation_entries(
            scope, str(raw.get("investigationId") or incident_id), from_time=mark
        ):
            for entry in entries:
                created = entry.get("created")
                if not isinstance(created, str):
                    continue
                try:
                    created_ns = normalize.parse_time_ns(created)
                except ValueError:
                    continue
                if mark_ns is not None and created_ns <= mark_ns:
                    continue  # a server treating fromTime as inclusive
                if newest is None or created_ns > newest[1]:
                    newest = (created, created_ns)
                try:
                    note = normalize.note(entry, incident_id=incident_id, account=account)
                except ValueError as exc:
                    raise VendorError(
                        VendorErrorCategory.BAD_RESPONSE,
                        f"XSOAR war room of {incident_id}: {exc}",
                        retryable=False,
                    ) from None
                if note is not None:
                    events.append(note_event(ctx, entry, note))
    return events, newest


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def fetch_notes(ctx: SyncContext, cursor: dict[str, Any] | None) -> AsyncIterator[Page]:
    sync: XsoarSync = ctx.client
    if not sync.options.fetch_notes or sync.marks is None:
        return
    slots = asyncio.Semaphore(sync.options.notes_concurrency)
    async for scope, batch, after in sync.changes(ctx, cursor):
        marks = await sync.marks.load(ctx.integration_id, scope, [str(raw["id"]) for raw in batch])
        try:
            async with asyncio.TaskGroup() as group:  # one failed war room cancels the rest of the page
                tasks = [
                    group.create_task(
                        _war_room_notes(ctx, sync, scope, raw, marks.get(str(raw["id"])), slots)
                    )
                    for raw in batch
                ]
        except ExceptionGroup as failed:
            # The first failure speaks for the page (its category goes to sync state), not the group.
            raise _first_leaf(failed) from failed
        events: list[CloudEvent] = []
        new_marks: dict[str, tuple[str, int]] = {}
        for raw, task in zip(batch, tasks, strict=True):
            notes, newest = task.result()
            events.extend(notes)
            if newest is not None:
                new_marks[str(raw["id"])] = newest
        yield Page(events=events, cursor=after)
        # Reached only after the Ingestor confirmed this page's events and saved its cursor: a crash
        # before this line re-reads these war rooms from the old marks (same event ids), never skips.
        await sync.marks.save(ctx.integration_id, scope, new_marks)


RESOURCES = [
    Resource(
        "accounts",
        interval_seconds=3600,
        fetch=fetch_accounts,
        description="XSOAR multi-tenant accounts (the seed's SOAR tenants)",
    ),
    Resource(
        "incidents",
        interval_seconds=60,
        fetch=fetch_incidents,
        description="every incident change, per account, on modified",
    ),
    Resource(
        "notes",
        interval_seconds=60,
        fetch=fetch_notes,
        description="war-room notes of the incidents that changed",
    ),
]


def _auth_style(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).lower().replace(" ", "").replace("_", "")
    return {
        "6": "xsoar6",
        "xsoar6": "xsoar6",
        "v6": "xsoar6",
        "8": "xsoar8",
        "xsoar8": "xsoar8",
        "v8": "xsoar8",
    }.get(text, text)


def client_for(
    integration: dict[str, Any], credentials: dict[str, Any], settings: Any, **options: Any
) -> XsoarClient:
    """Build a client from an integration row and the credentials the tenant service handed over.

    ``API_KEY`` secrets: ``api_key`` and, for XSOAR 8, ``api_key_id`` (or ``key_id``; the id may also
    be a non-secret setting). ``SECRET_KEY_ACCESS_KEY``: ``secret_key`` is the key, ``access_key`` its id.
    """
    secrets = credentials.get("secrets") or {}
    integration_settings = integration.get("settings") or {}
    kind = credentials.get("credential_kind") or integration.get("credential_kind") or "API_KEY"
    if kind == "SECRET_KEY_ACCESS_KEY":
        api_key, key_id = secrets.get("secret_key"), secrets.get("access_key")
    elif kind == "API_KEY":
        api_key = secrets.get("api_key") or secrets.get("token")
        key_id = secrets.get("api_key_id") or secrets.get("key_id")
    else:
        raise VendorError(
            VendorErrorCategory.INVALID_REQUEST,
            f"XSOAR authenticates with an API key, not {kind}",
            retryable=False,
        )
    key_id = key_id or integration_settings.get("api_key_id")
    return XsoarClient(
        integration["base_url"],
        integration_id=str(integration["id"]),
        api_key=str(api_key or ""),
        api_key_id=str(key_id) if key_id not in (None, "") else None,
        auth_style=_auth_style(integration_settings.get("auth_style")),  # type: ignore[arg-type]
        verify_tls=integration.get("verify_tls", True),
        ca_pem=credentials.get("ca_pem"),
        **options,
    )


def sync_for(
    integration: dict[str, Any],
    credentials: dict[str, Any],
    settings: Any,
    *,
    marks: NoteMarks | None,
    **options: Any,
) -> XsoarSync:
    """The Ingestor's client factory: a client plus this integration's validated sync options."""
    sync_options = SyncOptions.from_settings(integration.get("settings") or {}, settings)
    options.setdefault("max_concurrency", sync_options.notes_concurrency)
    return XsoarSync(
        client=client_for(integration, credentials, settings, **options), options=sync_options, marks=marks
    )
