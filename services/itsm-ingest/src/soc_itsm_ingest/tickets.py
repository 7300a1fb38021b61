"""Tickets from incidents (step 3 of the seed's Incident Enrichment Flow), exactly once.

itsm-ingest consumes ``soar.incident.upserted`` (an incident of a mapped company that meets the
company's policy gets a ticket) and the ``itsm.ticket.create`` command from its own quorum queue.
However often an incident is delivered, however many replicas see it and wherever a replica dies,
one incident gets at most one ticket per ITSM integration:

1. A row in ``itsm_ingest.ticket_request`` keyed (and unique) on the incident's identity —
   ``(integration_id, soar_integration_id, soar_account, incident_id)``: XSOAR accounts number
   their incidents independently — is inserted as ``pending`` with this replica as owner, a lease
   and the incident's idempotency reference (``SOC-…``, see :func:`normalize.ticket_reference`),
   and committed, *before* any vendor call. A replica that loses the insert does nothing while
   the lease runs.
2. The owner searches the SDP account for the incident's request (a ticket made by hand, or one
   whose create answer was lost): one list call whose criteria match the incident-id field *or*
   the reference tag in the subject, asking with ``fields_required`` for the fields that carry
   them (SDP list rows show the list view's columns only), then confirms each candidate on the
   full record (``GET requests/{id}``): the reference is ours, or the incident id is exact and no
   other reference is on it. Only when there is none does it write ``create_sent_at`` (committed)
   and create the request, reference included; then it marks the row ``created`` with the
   ticket id and publishes the ticket (``itsm.ticket.upserted``).
3. A ``pending`` row whose lease ran out (its owner crashed between the vendor call and step 2, or
   a failed attempt's backoff elapsed) is taken over, by a redelivery or by the periodic
   reconciler, and always resolved by that search before anything is created again. A create
   whose outcome is unknown (``create_sent_at`` set: dropped connection, 5xx, timeout, crash) is
   never repeated without that search, and never before SDP has had time to list it.

A failed attempt keeps the row ``pending`` with a growing backoff (the error and its category on
the row); after ``max_attempts`` it becomes ``failed``. ``created`` and ``failed`` rows are final.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from loguru import logger
from prometheus_client import Counter
from soc_shared.bus import BatchConsumer, Bus, Delivery
from soc_shared.errors import ApiError
from soc_shared.events import ItsmTicketCreate, SoarIncident
from soc_shared.lease import Lease
from soc_shared.loop import BackgroundLoop, backoff_delay
from soc_shared.sync import ClientFactory, CredentialsProvider, Ingestor, describe_error
from soc_shared.vendor_http import VendorError, VendorErrorCategory
from sqlalchemy.dialects.postgresql import JSONB, insert

from soc_itsm_ingest import normalize
from soc_itsm_ingest.mapping import RoutingUnavailable, TicketRouting
from soc_itsm_ingest.resources import options_of, source_of, ticket_event
from soc_itsm_ingest.tables import metadata

TICKET_REQUESTS = Counter(
    "soc_itsm_ticket_requests_total", "Incidents handled by the ticket service, by outcome", ["outcome"]
)


ticket_request_table = sa.Table(
    "ticket_request",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True, comment="the ITSM (SDP) integration"),
    sa.Column(
        "soar_integration_id",
        sa.Text,
        primary_key=True,
        server_default="",
        comment="the SOAR integration ('' if unknown)",
    ),
    sa.Column(
        "soar_account",
        sa.Text,
        primary_key=True,
        server_default="",
        comment="the XSOAR account (vendor tenant)",
    ),
    sa.Column("incident_id", sa.Text, primary_key=True, comment="the SOAR incident id"),
    sa.Column("account_id", sa.Text, nullable=False, comment="the SDP account the ticket is filed under"),
    sa.Column("company_id", sa.Text),
    sa.Column("reference", sa.Text, comment="the idempotency reference written into the request"),
    sa.Column(
        "create_sent_at", sa.DateTime(timezone=True), comment="last create sent (outcome may be unknown)"
    ),
    sa.Column("creates", sa.Integer, nullable=False, server_default="0", comment="creates sent"),
    sa.Column("origin", sa.Text, nullable=False, comment="incident (policy) or command"),
    sa.Column(
        "request", JSONB, nullable=False, comment="subject, description, priority of the ticket to open"
    ),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("ticket_id", sa.Text),
    sa.Column(
        "ticket_found",
        sa.Boolean,
        nullable=False,
        server_default=sa.false(),
        comment="true: an existing SDP request was adopted instead of creating one",
    ),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("owner", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_category", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("state IN ('pending', 'created', 'failed')", name="ck_ticket_request_state"),
    sa.Index("ix_ticket_request_stale", "lease_until", postgresql_where=sa.text("state = 'pending'")),
)


ticket_unrouted_table = sa.Table(
    "ticket_unrouted",
    metadata,
    sa.Column("soar_integration_id", sa.Text, primary_key=True),
    sa.Column("soar_account", sa.Text, primary_key=True),
    sa.Column("incident_id", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("incident", JSONB, nullable=False, comment="the incident as last delivered"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
OPEN_STATUSES = frozenset({"pending", "active"})


class Outcome(StrEnum):
    CREATED = "created"
    """This call created the ticket."""
    FOUND = "found"
    """An existing SDP request for the incident was adopted (made by hand, or before a crash)."""
    ALREADY = "already"
    """The incident already has its ticket (a duplicate delivery)."""
    IN_PROGRESS = "in_progress"
    """Another handler or replica holds the lease and is on it."""
    DEFERRED = "deferred"
    """The attempt failed; the reconciler retries after a backoff."""
    FAILED = "failed"
    """Given up after the maximum number of attempts."""
    SKIPPED = "skipped"
    """Unmapped incident, or the company's policy wants no ticket for it."""


class IntegrationUnavailable(RuntimeError):
    """The ITSM integration of a route is not (or no longer) known to this ingestor."""

    category = "integration_unavailable"

    @property
    def message(self) -> str:
        return str(self)


class TicketKey(NamedTuple):
    """An incident's identity, for one ITSM integration: XSOAR accounts (vendor tenants) number
    their incidents independently, so the account is part of it."""

    integration_id: str
    soar_integration_id: str
    soar_account: str
    incident_id: str

    @classmethod
    def of(cls, row: Any) -> TicketKey:
        return cls(row["integration_id"], row["soar_integration_id"], row["soar_account"], row["incident_id"])

    def where(self) -> list[Any]:
        t = ticket_request_table
        return [
            t.c.integration_id == self.integration_id,
            t.c.soar_integration_id == self.soar_integration_id,
            t.c.soar_account == self.soar_account,
            t.c.incident_id == self.incident_id,
        ]


@dataclass(frozen=True)
class TicketWork:
    """One ticket to make sure of."""

    integration_id: str
    incident_id: str
    account_id: str
    subject: str
    description: str
    priority: str | None
    company_id: str | None = None
    soar_integration_id: str = ""
    soar_account: str = ""
    origin: str = "incident"

    @property
    def key(self) -> TicketKey:
        return TicketKey(self.integration_id, self.soar_integration_id, self.soar_account, self.incident_id)

    @property
    def reference(self) -> str:
        return normalize.ticket_reference(self.soar_integration_id, self.soar_account, self.incident_id)

    @classmethod
    def from_command(cls, command: ItsmTicketCreate) -> TicketWork:
        return cls(
            integration_id=command.integration_id,
            incident_id=command.incident_id,
            account_id=command.account_id,
            subject=command.subject,
            description=command.description,
            priority=command.priority,
            company_id=command.company_id,
            soar_integration_id=command.soar_integration_id or "",
            soar_account=command.soar_account or "",
            origin="command",
        )


class TicketService:
    """The ticket side of itsm-ingest: consumer, exactly-once creation, reconciler."""

    def __init__(
        self,
        *,
        ingestor: Ingestor,
        routing: TicketRouting,
        bus: Bus | None = None,
        client_factory: ClientFactory | None = None,
        credentials: CredentialsProvider | None = None,
        queue: str = "itsm-ingest.tickets",
        lease_seconds: float = 300,
        max_attempts: int = 12,
        retry_max_seconds: float = 900,
        concurrency: int = 8,
        reconcile_interval: float = 30.0,
        search_before_create: bool = True,
    ) -> None:
        self.ingestor = ingestor
        self.db = ingestor.db
        self.bus = bus or ingestor.bus
        self.routing = routing
        self.client_factory = client_factory or ingestor.client_factory
        self.credentials = credentials or ingestor.credentials
        self.queue = queue
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retry_max_seconds = retry_max_seconds
        self.concurrency = concurrency
        self.reconcile_interval = reconcile_interval
        self.search_before_create = search_before_create
        self.owner = f"{socket.gethostname()}:{os.getpid()}:tickets:{uuid.uuid4().hex[:6]}"
        # ``lease_until`` is also when a pending row is due again: a failed attempt keeps its row
        # until the backoff ends, then any replica's reconciler takes it over.
        self.lease = Lease(
            ticket_request_table,
            key=("integration_id", "soar_integration_id", "soar_account", "incident_id"),
            owner="owner",
            until="lease_until",
            holder=self.owner,
            seconds=lease_seconds,
        )
        self._slots = asyncio.Semaphore(concurrency)
        # Keys known to be ``created`` (a final state): later versions of the same incident, the
        # common case, then cost no database round trip. Bounded, oldest forgotten first.
        self._created: OrderedDict[TicketKey, None] = OrderedDict()
        self._created_limit = 100_000
        self._consumer: BatchConsumer | None = None
        self._reconciler: BackgroundLoop | None = None

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self, *, consume: bool = True, reconcile: bool = True) -> None:
        if consume:
            self._consumer = BatchConsumer(
                self.bus,
                self.queue,
                ["soar.incident.upserted", ("soc.commands", "itsm.ticket.create")],
                self.on_deliveries,
                batch_size=100,
                max_wait=0.05,
            )
            await self._consumer.start()
        if reconcile:
            self._reconciler = BackgroundLoop(
                "ticket-reconciler", self._reconcile_round, interval=self.reconcile_interval, immediate=True
            )
            self._reconciler.start()

    async def stop(self) -> None:
        if self._reconciler is not None:
            await self._reconciler.stop(grace_seconds=0)  # a vendor call in flight is abandoned
            self._reconciler = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    # -------------------------------------------------------------------------------- consuming
    async def on_deliveries(self, deliveries: list[Delivery]) -> None:
        """A batch from the queue. Raising makes the consumer retry message by message (and park a
        message that keeps failing); vendor failures do not raise, they are on the row."""
        work: dict[TicketKey, TicketWork] = {}
        unrouted: list[tuple[SoarIncident, str]] = []
        for delivery in deliveries:
            item = await self.work_for(delivery, unrouted)
            if item is not None:
                work[item.key] = item  # the newest version of an incident in the batch wins
        if unrouted:
            await self._remember_unrouted(unrouted)
        results = await asyncio.gather(*(self.ensure(w) for w in work.values()), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def work_for(
        self, delivery: Delivery, unrouted: list[tuple[SoarIncident, str]] | None = None
    ) -> TicketWork | None:
        payload = delivery.payload
        if isinstance(payload, ItsmTicketCreate):
            return TicketWork.from_command(payload)
        if not isinstance(payload, SoarIncident):
            return None
        soar_integration_id = delivery.envelope.integrationid
        if not soar_integration_id:
            logger.warning(
                "incident {} arrived without an integration id; no ticket routing possible",
                payload.incident_id,
            )
            return None
        return await self.work_for_incident(payload, soar_integration_id, unrouted)

    async def work_for_incident(
        self,
        incident: SoarIncident,
        soar_integration_id: str,
        unrouted: list[tuple[SoarIncident, str]] | None = None,
    ) -> TicketWork | None:
        """The ticket an incident needs under its company's policy, or None. An open incident of an
        account not mapped yet is remembered (``unrouted``: collected by the caller, else written
        now) and reconsidered once the mapping exists (:meth:`reconsider_unrouted`)."""
        route = await self.routing.resolve(incident, soar_integration_id=soar_integration_id)
        if route is None:
            if unrouted is None:
                await self._remember_unrouted([(incident, soar_integration_id)])
            else:
                unrouted.append((incident, soar_integration_id))
        if route is None or not route.policy.applies(incident):
            TICKET_REQUESTS.labels(Outcome.SKIPPED.value).inc()
            return None
        return TicketWork(
            integration_id=route.itsm_integration_id,
            incident_id=incident.incident_id,
            account_id=route.account_id,
            subject=normalize.ticket_subject(incident),
            description=normalize.ticket_description(incident),
            priority=incident.priority,
            company_id=route.company_id,
            soar_integration_id=soar_integration_id,
            soar_account=incident.account or "",
        )

    async def handle_incident(self, incident: SoarIncident, soar_integration_id: str) -> Outcome:
        """Route, apply the policy and make sure of the ticket (the consumer's path, callable directly)."""
        work = await self.work_for_incident(incident, soar_integration_id)
        return Outcome.SKIPPED if work is None else await self.ensure(work)

    # ------------------------------------------------------------------------------ exactly once
    async def ensure(self, work: TicketWork) -> Outcome:
        """Make sure ``work``'s incident has its one ticket."""
        if work.key in self._created:
            TICKET_REQUESTS.labels(Outcome.ALREADY.value).inc()
            return Outcome.ALREADY
        async with self._slots:
            row = await self._insert_pending(work)
            if row is not None:
                outcome = await self._run(row, search=self.search_before_create)
            else:
                row = await self._take_over(work.key)
                outcome = (
                    await self._run(row, search=True) if row is not None else await self._state_of(work.key)
                )
        if outcome in (Outcome.CREATED, Outcome.FOUND, Outcome.ALREADY):
            self._remember_created(work.key)
        TICKET_REQUESTS.labels(outcome.value).inc()
        return outcome

    def _remember_created(self, key: TicketKey) -> None:
        self._created[key] = None
        self._created.move_to_end(key)
        while len(self._created) > self._created_limit:
            self._created.popitem(last=False)

    async def _insert_pending(self, work: TicketWork) -> dict[str, Any] | None:
        t = ticket_request_table
        stmt = (
            insert(t)
            .values(
                integration_id=work.integration_id,
                incident_id=work.incident_id,
                account_id=work.account_id,
                company_id=work.company_id,
                soar_integration_id=work.soar_integration_id,
                soar_account=work.soar_account,
                reference=work.reference,
                origin=work.origin,
                request={"subject": work.subject, "description": work.description, "priority": work.priority},
                state="pending",
                **self.lease.held(),
            )
            .on_conflict_do_nothing(
                index_elements=["integration_id", "soar_integration_id", "soar_account", "incident_id"]
            )
            .returning(*t.c)
        )
        async with self.db.session() as session:  # committed before any vendor call
            row = (await session.execute(stmt)).mappings().first()
        return dict(row) if row else None

    async def _take_over(self, key: TicketKey) -> dict[str, Any] | None:
        """Claim a pending row whose lease ran out. The row lock serialises competing replicas and
        PostgreSQL re-checks the lease after the first one committed, so only one wins."""
        t = ticket_request_table
        async with self.db.session() as session:
            return await self.lease.take(
                session, *key.where(), t.c.state == "pending", values={"updated_at": sa.func.now()}
            )

    async def _state_of(self, key: TicketKey) -> Outcome:
        t = ticket_request_table
        async with self.db.session() as session:
            state = (await session.execute(sa.select(t.c.state).where(*key.where()))).scalar()
        return {"created": Outcome.ALREADY, "failed": Outcome.FAILED}.get(str(state), Outcome.IN_PROGRESS)

    async def _run(self, row: dict[str, Any], *, search: bool) -> Outcome:
        """Owner's work on one pending row: search, create if none, record, publish."""
        integration_id, incident_id = row["integration_id"], row["incident_id"]
        key = TicketKey.of(row)
        reference = row.get("reference") or normalize.ticket_reference(
            key.soar_integration_id, key.soar_account, incident_id
        )
        # A create was sent before and its outcome is unknown: never again without the search.
        search = search or row.get("create_sent_at") is not None
        creating = False
        client = None
        try:
            async with asyncio.timeout(self.lease_seconds / 2):  # never still at it when the lease runs out
                integration = await self.ingestor.load_integration(integration_id)
                if integration is None or integration["deleted"] or integration["status"] == "disabled":
                    raise IntegrationUnavailable(
                        f"ITSM integration {integration_id} is unknown, deleted or disabled"
                    )
                client = self.client_factory(integration, await self.credentials(integration_id))
                options = options_of(client)
                ticket: dict[str, Any] | None = None
                if search:
                    ticket = await self._find_existing(
                        client, options, incident_id, reference, row["account_id"]
                    )
                found = ticket is not None
                if ticket is None:
                    request = row["request"] or {}
                    fields = normalize.request_fields(
                        subject=str(request.get("subject") or f"Security incident #{incident_id}"),
                        description=str(request.get("description") or ""),
                        incident_id=incident_id,
                        account_id=row["account_id"],
                        priority=request.get("priority"),
                        incident_id_field=options.incident_id_field,
                        priority_map=options.priority_map,
                        defaults=options.ticket_defaults,
                        reference=reference,
                        reference_field=options.reference_field,
                    )
                    await self._mark_create_sent(key)  # committed before the request leaves
                    creating = True
                    ticket = await client.create_request(fields, account_id=row["account_id"])
                    creating = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the vendor, the credentials, the integration: retried later
            return await self._defer(
                row, exc, maybe_processed=creating and not getattr(exc, "not_processed", False)
            )
        finally:
            if client is not None:
                await client.aclose()
        await self._mark_created(row, str(ticket["id"]), found=found)
        await self._publish(integration_id, ticket, options.incident_id_field, integration.get("base_url"))
        logger.info(
            "incident {} → SDP request {} ({})", incident_id, ticket["id"], "found" if found else "created"
        )
        return Outcome.FOUND if found else Outcome.CREATED

    async def _mark_create_sent(self, key: TicketKey) -> None:
        t = ticket_request_table
        async with self.db.session() as session:
            await session.execute(
                sa.update(t)
                .where(*key.where(), t.c.state == "pending", t.c.owner == self.owner)
                .values(create_sent_at=sa.func.now(), creates=t.c.creates + 1, updated_at=sa.func.now())
            )

    @staticmethod
    async def _find_existing(
        client: Any, options: Any, incident_id: str, reference: str, account_id: str
    ) -> dict[str, Any] | None:
        """The incident's request in the SDP account, confirmed on its full record, or None.

        One list call: the incident-id field ``is`` the incident id, *or* the subject contains the
        reference tag (*or* the reference field is the reference, when configured), with
        ``fields_required`` naming those fields — without it SDP list rows carry the list view's
        columns only and every match would look foreign. A candidate is then read whole and
        decided on: our reference on it → ours (the oldest such wins); no reference but the exact
        incident id → a ticket made by hand or by the old portal, adopted; another incident's
        reference → not ours. An SDP that cannot filter on the incident-id field (4001 and the
        like) is searched by the subject tag alone.
        """
        field_name = options.incident_id_field
        reference_field = options.reference_field
        # User fields are asked for by their group (``udf_fields``), as the ticket sync does.
        heads = {f.split(".", 1)[0] for f in (field_name, *([reference_field] if reference_field else []))}
        wanted = ["subject", "created_time", *sorted(heads)]
        or_criteria = [{"field": "subject", "condition": "contains", "value": reference}]
        if reference_field:
            or_criteria.append({"field": reference_field, "condition": "is", "value": reference})
        try:
            rows = await client.find_requests(
                field_name,
                incident_id,
                account_id=account_id,
                limit=25,
                fields_required=wanted,
                or_criteria=or_criteria,
            )
        except VendorError as exc:
            if exc.category != VendorErrorCategory.INVALID_REQUEST:
                raise
            logger.warning(
                "SDP refused a search on {} ({}); searching by the subject tag {} alone",
                field_name,
                exc,
                reference,
            )
            rows = await client.find_requests(
                "subject", reference, account_id=account_id, limit=25, fields_required=wanted
            )
            rows = [r for r in rows if reference in normalize.references_in(r.get("subject"))]

        def claim(record: dict[str, Any]) -> int:
            """2: carries our reference; 1: the exact incident id and no reference; 0: not ours."""
            refs = normalize.references_in(record.get("subject"))
            if reference_field:
                value = normalize.field_value(record, reference_field)
                if value:
                    refs.add(str(value).upper())
            if reference in refs:
                return 2
            exact = str(normalize.field_value(record, field_name) or "") == incident_id
            return 1 if exact and not refs else 0

        candidates = [r for r in rows if claim(r) > 0 or not rows_have(r, field_name)]
        best: tuple[int, dict[str, Any]] | None = None
        for row in candidates:
            try:
                record = await client.get_request(str(row["id"]), account_id=account_id)
            except VendorError as exc:
                if exc.category == VendorErrorCategory.NOT_FOUND:
                    continue  # deleted between the list and the read
                raise
            score = claim(record)
            account = record.get("account")
            if isinstance(account, dict) and account.get("id") and str(account["id"]) != account_id:
                score = 0
            if score and (best is None or score > best[0]):
                best = (score, record)
            if score == 2:
                break  # oldest first: the first of ours is the one
        return best[1] if best else None

    async def _mark_created(self, row: dict[str, Any], ticket_id: str, *, found: bool) -> None:
        t = ticket_request_table
        async with self.db.session() as session:  # whoever holds it now: the ticket exists
            await self.lease.release(
                session,
                *TicketKey.of(row).where(),
                t.c.state == "pending",
                only_holder=False,
                values={
                    "state": "created",
                    "ticket_id": ticket_id,
                    "ticket_found": found,
                    "attempts": t.c.attempts + 1,
                    "last_error": None,
                    "last_error_category": None,
                    "updated_at": sa.func.now(),
                },
            )

    async def _defer(self, row: dict[str, Any], exc: BaseException, *, maybe_processed: bool) -> Outcome:
        if isinstance(exc, TimeoutError):
            category, message = "timeout", f"not done within {self.lease_seconds / 2:g}s; abandoned"
        else:
            error = describe_error(exc)
            category, message = error.category, error.message
        attempts = int(row.get("attempts") or 0) + 1
        give_up = attempts >= self.max_attempts
        # After a create that may have reached SDP, wait long enough for it to be searchable.
        floor = 60.0 if maybe_processed else 5.0
        retry_after = getattr(exc, "retry_after", None)  # SDP's rate limit says how long to stay away
        if retry_after:
            floor = max(floor, float(retry_after))
        delay = min(
            self.retry_max_seconds,
            max(floor, backoff_delay(attempts, base=5.0, cap=self.retry_max_seconds, jitter=0.2)),
        )
        t = ticket_request_table
        async with self.db.session() as session:
            await self.lease.release(
                session,
                *TicketKey.of(row).where(),
                t.c.state == "pending",
                retry_in=None if give_up else delay,
                values={
                    "state": "failed" if give_up else "pending",
                    "attempts": attempts,
                    "last_error": message,
                    "last_error_category": category,
                    "updated_at": sa.func.now(),
                },
            )
        logger.warning(
            "ticket for incident {} on {} {} (attempt {}): [{}] {}",
            row["incident_id"],
            row["integration_id"],
            "given up" if give_up else f"retried in {delay:.0f}s",
            attempts,
            category,
            message,
        )
        return Outcome.FAILED if give_up else Outcome.DEFERRED

    async def _publish(
        self, integration_id: str, raw: dict[str, Any], incident_id_field: str, base_url: str | None = None
    ) -> None:
        """Publish the ticket at once; a failure only delays it (the ticket sync reads it anyway)."""
        try:
            ticket = normalize.ticket(raw, incident_id_field=incident_id_field, base_url=base_url)
            await self.bus.publish([ticket_event(source_of(integration_id), integration_id, ticket)])
        except Exception as exc:
            logger.warning(
                "ticket {} not published now ({}); the next ticket sync publishes it", raw.get("id"), exc
            )

    # ------------------------------------------------------------------------------- reconciler
    async def reconcile_once(self, limit: int = 50) -> int:
        """Take over pending rows whose lease ran out (crashed owners, elapsed backoffs) and resolve
        each by searching SDP before creating; returns how many were handled."""
        t = ticket_request_table
        async with self.db.session() as session:
            rows = await self.lease.claim(
                session, t.c.state == "pending", limit=limit, values={"updated_at": sa.func.now()}
            )

        async def one(row: dict[str, Any]) -> None:
            async with self._slots:
                outcome = await self._run(row, search=True)
            if outcome in (Outcome.CREATED, Outcome.FOUND):
                self._remember_created(TicketKey.of(row))
            TICKET_REQUESTS.labels(outcome.value).inc()

        await asyncio.gather(*(one(r) for r in rows))
        return len(rows)

    # ------------------------------------------------------------------ incidents not routed yet
    async def _remember_unrouted(self, items: list[tuple[SoarIncident, str]]) -> None:
        """Keep open incidents of unmapped accounts (newest version wins); forget closed ones."""
        u = ticket_unrouted_table
        latest: dict[tuple[str, str, str], tuple[SoarIncident, str]] = {}
        for incident, soar_integration_id in items:
            key = (soar_integration_id, incident.account or "", incident.incident_id)
            if key not in latest or latest[key][0].version <= incident.version:
                latest[key] = (incident, soar_integration_id)
        keep = [
            {
                "soar_integration_id": key[0],
                "soar_account": key[1],
                "incident_id": key[2],
                "version": incident.version,
                "incident": incident.model_dump(mode="json"),
            }
            for key, (incident, _) in latest.items()
            if incident.status.value in OPEN_STATUSES
        ]
        gone = [key for key, (incident, _) in latest.items() if incident.status.value not in OPEN_STATUSES]
        async with self.db.session() as session:
            if keep:
                stmt = insert(u).values(keep)
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["soar_integration_id", "soar_account", "incident_id"],
                        set_={
                            "version": stmt.excluded.version,
                            "incident": stmt.excluded.incident,
                            "updated_at": sa.func.now(),
                        },
                        where=u.c.version <= stmt.excluded.version,
                    )
                )
            if gone:
                await session.execute(
                    sa.delete(u).where(
                        sa.tuple_(u.c.soar_integration_id, u.c.soar_account, u.c.incident_id).in_(gone)
                    )
                )

    async def reconsider_unrouted(self, limit: int = 500) -> int:
        """Incidents skipped because their account was not mapped: once a mapping routes their
        (SOAR integration, account), each is judged by the company's rule as if it had just
        arrived (a mapping applies to data already ingested) and forgotten. Returns how many
        were reconsidered."""
        u = ticket_unrouted_table
        async with self.db.session() as session:
            pairs = (
                await session.execute(sa.select(u.c.soar_integration_id, u.c.soar_account).distinct())
            ).all()
        handled = 0
        for soar_integration_id, account in pairs:
            async with self.db.session() as session:
                rows = (
                    await session.execute(
                        sa.select(u.c.incident_id, u.c.version, u.c.incident)
                        .where(u.c.soar_integration_id == soar_integration_id, u.c.soar_account == account)
                        .order_by(u.c.updated_at)
                        .limit(limit)
                    )
                ).all()
            if not rows:
                continue
            incidents = [SoarIncident.model_validate(r.incident) for r in rows]
            route = await self.routing.resolve(incidents[0], soar_integration_id=soar_integration_id)
            if route is None:
                continue
            work = [
                w
                for i in incidents
                if (w := await self.work_for_incident(i, soar_integration_id)) is not None
            ]
            results = await asyncio.gather(*(self.ensure(w) for w in work), return_exceptions=True)
            for failure in [r for r in results if isinstance(r, BaseException)]:
                logger.warning("reconsidering an unrouted incident failed: {}", failure)
            async with self.db.session() as session:  # a later version meanwhile stays for the next pass
                await session.execute(
                    sa.delete(u).where(
                        u.c.soar_integration_id == soar_integration_id,
                        u.c.soar_account == account,
                        sa.tuple_(u.c.incident_id, u.c.version).in_(
                            [(r.incident_id, r.version) for r in rows]
                        ),
                    )
                )
            handled += len(rows)
            logger.info(
                "{} incident(s) of {}/{} reconsidered now that the account is mapped ({} qualify)",
                len(rows),
                soar_integration_id,
                account or "-",
                len(work),
            )
        return handled

    async def _reconcile_round(self) -> None:
        while await self.reconcile_once():
            pass
        await self.reconsider_unrouted()

    async def retry(
        self,
        integration_id: str,
        incident_id: str,
        *,
        soar_integration_id: str | None = None,
        soar_account: str | None = None,
    ) -> bool:
        """Give a ``failed`` request a fresh start now: attempts reset, due at once for the
        reconciler, which searches SDP first as every retry does. Only ``failed``: a ``pending`` row
        may be in a vendor call right now, and its lease is what keeps a second create out."""
        t = ticket_request_table
        async with self.db.session() as session:
            result = await session.execute(
                sa.update(t)
                .where(
                    t.c.integration_id == integration_id,
                    t.c.incident_id == incident_id,
                    t.c.state == "failed",
                    *(
                        [t.c.soar_integration_id == soar_integration_id]
                        if soar_integration_id is not None
                        else []
                    ),
                    *([t.c.soar_account == soar_account] if soar_account is not None else []),
                )
                .values(
                    state="pending",
                    attempts=0,
                    owner=None,
                    lease_until=sa.func.now(),
                    updated_at=sa.func.now(),
                )
                .returning(t.c.incident_id)
            )
            return result.first() is not None

    async def requests(
        self,
        *,
        integration_id: str | None = None,
        incident_id: str | None = None,
        states: Sequence[str] | None = None,
        limit: int = 100,
        soar_account: str | None = None,
    ) -> list[dict[str, Any]]:
        """Ticket request rows (the internal API and tests)."""
        t = ticket_request_table
        stmt = sa.select(t).order_by(t.c.created_at.desc()).limit(limit)
        if integration_id:
            stmt = stmt.where(t.c.integration_id == integration_id)
        if incident_id:
            stmt = stmt.where(t.c.incident_id == incident_id)
        if soar_account is not None:
            stmt = stmt.where(t.c.soar_account == soar_account)
        if states:
            stmt = stmt.where(t.c.state.in_(list(states)))
        async with self.db.session() as session:
            return [dict(r) for r in (await session.execute(stmt)).mappings().all()]


def rows_have(row: dict[str, Any], dotted: str) -> bool:
    """Whether a list row shows ``dotted`` at all (a row without it cannot be judged unread)."""
    head = dotted.split(".", 1)[0]
    return head in row


def ticket_router(service_getter: Callable[[], TicketService], service_dep: Any) -> APIRouter:
    """``GET /internal/ticket-requests``: where the ticket of an incident stands (support, tenant)."""
    router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(service_dep)])

    @router.get("/ticket-requests")
    async def ticket_requests(
        integration_id: str | None = None,
        incident_id: str | None = None,
        soar_account: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        rows = await service_getter().requests(
            integration_id=integration_id,
            incident_id=incident_id,
            soar_account=soar_account,
            states=[state] if state else None,
            limit=max(1, min(limit, 1000)),
        )
        for r in rows:
            r.pop("owner", None)
        return {"items": rows, "total": len(rows)}

    @router.post("/ticket-requests/{integration_id}/{incident_id}/retry")
    async def retry_ticket_request(
        integration_id: str,
        incident_id: str,
        soar_integration_id: str | None = None,
        soar_account: str | None = None,
    ) -> dict[str, Any]:
        """Retry a request that was given up (e.g. after fixing the integration's settings); the
        XSOAR account (and SOAR integration) narrow it down when several accounts share the id."""
        if not await service_getter().retry(
            integration_id, incident_id, soar_integration_id=soar_integration_id, soar_account=soar_account
        ):
            raise ApiError(404, "not_found", "no failed ticket request for this incident")
        return {"scheduled": True}

    return router


__all__ = [
    "Outcome",
    "RoutingUnavailable",
    "TicketService",
    "TicketWork",
    "metadata",
    "ticket_request_table",
    "ticket_unrouted_table",
    "ticket_router",
]
