"""Tickets from incidents: exactly one ticket per incident in the right account, published at
once — through duplicate deliveries, a crash between the vendor call and the record, concurrent
replicas and vendor failures. Tickets are counted in the simulator."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from soc_itsm_ingest.mapping import RoutingUnavailable, StaticTicketRouting, TenantTicketRouting
from soc_itsm_ingest.normalize import ticket_reference
from soc_itsm_ingest.tickets import Outcome, TicketService, ticket_request_table
from soc_shared.events import IncidentStatus, ItsmTicketCreate, make_event
from soc_simulators.faults import Fault
from soc_simulators.sdp import ACCOUNTS

SOAR = "soar-test"


class Crash(BaseException):
    """The process dies (a BaseException: nothing on the way catches it)."""


class DiesAfterVendorCreate(TicketService):
    """Creates the ticket at the vendor, then dies before recording it."""

    async def _mark_created(self, row: dict[str, Any], ticket_id: str, *, found: bool) -> None:
        raise Crash(f"killed after SDP created {ticket_id}")


class SlowCreates(httpx.AsyncBaseTransport):
    """Holds every create for a moment, so concurrent handlers overlap in the vendor call."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float = 0.2) -> None:
        self.inner, self.delay, self.creates = inner, delay, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.creates += 1
            await asyncio.sleep(self.delay)
        return await self.inner.handle_async_request(request)


async def expire_lease(harness: Any, integration_id: str, incident_id: str) -> None:
    """As if ``ticket_lease_seconds`` had passed."""
    t = ticket_request_table
    async with harness.db.session() as session:
        await session.execute(
            sa.update(t)
            .where(t.c.integration_id == integration_id, t.c.incident_id == incident_id)
            .values(lease_until=sa.func.now() - sa.text("interval '1 second'"))
        )


async def row_of(service: TicketService, integration_id: str, incident_id: str) -> dict[str, Any]:
    [row] = await service.requests(integration_id=integration_id, incident_id=incident_id)
    return row


async def test_a_p1_incident_gets_one_ticket_in_its_account_published_at_once(
    harness: Any, tap: Any, kit: Any
) -> None:
    ingestor = harness.ingestor([])
    integration = await harness.add_integration(ingestor)
    service = harness.tickets(harness.routing(integration), ingestor=ingestor)
    incident = kit.incident(priority="P1")
    assert await service.handle_incident(incident, SOAR) is Outcome.CREATED
    [ticket_id] = harness.tickets_for(incident.incident_id)
    doc = harness.state.records[ticket_id].doc
    assert doc["account"]["id"] == kit.ACME.id and doc["priority"]["name"] == "Urgent"
    reference = ticket_reference(SOAR, kit.ACME.soar_account, incident.incident_id)
    assert doc["subject"] == f"Security incident #{incident.incident_id}: Brute force on VPN [{reference}]"
    assert "vpn-gw-01" in doc["description"]
    row = await row_of(service, integration, incident.incident_id)
    assert (row["state"], row["ticket_id"], row["ticket_found"], row["attempts"]) == (
        "created",
        ticket_id,
        False,
        1,
    )
    assert (row["company_id"], row["soar_integration_id"], row["owner"]) == ("company-acme", SOAR, None)
    assert (row["soar_account"], row["reference"], row["creates"]) == (kit.ACME.soar_account, reference, 1)

    await tap.settle()
    [event] = [e for e in tap.of(integration, "itsm.ticket.upserted") if e.data["ticket_id"] == ticket_id]
    assert event.data["soar_incident_id"] == incident.incident_id and event.vendortenant == kit.ACME.id
    assert event.data["version"] == int(doc["last_updated_time"]["value"])
    # The ticket sync reads the same version later: same event id, a duplicate the tenant ignores.
    await harness.sync(harness.ingestor(["tickets"]), integration)
    await tap.settle()
    synced = [e for e in tap.of(integration, "itsm.ticket.upserted") if e.data["ticket_id"] == ticket_id]
    assert {e.id for e in synced} == {event.id}


async def test_the_policy_and_the_mapping_decide_which_incidents_get_a_ticket(harness: Any, kit: Any) -> None:
    ingestor = harness.ingestor([])
    integration = await harness.add_integration(ingestor)
    service = harness.tickets(harness.routing(integration), ingestor=ingestor)
    p2, p3 = kit.incident(priority="P2"), kit.incident(priority="P3")
    closed = kit.incident(priority="P1", status=IncidentStatus.CLOSED)
    unmapped = kit.incident(priority="P1", account="no-such-account")
    assert await service.handle_incident(p2, SOAR) is Outcome.CREATED
    for incident in (p3, closed, unmapped):
        assert await service.handle_incident(incident, SOAR) is Outcome.SKIPPED
    assert await service.handle_incident(kit.incident(priority="P1"), "another-soar") is Outcome.SKIPPED
    assert [len(harness.tickets_for(i.incident_id)) for i in (p2, p3, closed, unmapped)] == [1, 0, 0, 0]
    assert harness.state.records[harness.tickets_for(p2.incident_id)[0]].doc["priority"]["name"] == "High"
    # A company whose policy includes P3.
    wide = harness.tickets(harness.routing(integration, priorities=["P1", "P2", "P3"]), ingestor=ingestor)
    assert await wide.handle_incident(p3, SOAR) is Outcome.CREATED


async def test_duplicate_deliveries_give_one_ticket(harness: Any, kit: Any) -> None:
    ingestor = harness.ingestor([])
    integration = await harness.add_integration(ingestor)
    service = harness.tickets(harness.routing(integration), ingestor=ingestor)
    incident_id = f"dup-{uuid.uuid4().hex[:8]}"
    outcomes = [
        await service.handle_incident(kit.incident(incident_id, version=v), SOAR) for v in range(1, 6)
    ]
    assert outcomes == [Outcome.CREATED] + [Outcome.ALREADY] * 4
    # After a restart (nothing remembered in memory) the record itself answers.
    restarted = harness.tickets(harness.routing(integration), ingestor=ingestor)
    assert await restarted.handle_incident(kit.incident(incident_id, version=6), SOAR) is Outcome.ALREADY
    assert len(harness.tickets_for(incident_id)) == 1


async def test_a_crash_between_the_vendor_call_and_the_record_is_reconciled_without_a_second_ticket(
    harness: Any, tap: Any, kit: Any
) -> None:
    integration = await harness.add_integration(harness.ingestor([]))
    doomed = harness.tickets(harness.routing(integration), cls=DiesAfterVendorCreate)
    incident = kit.incident()
    with pytest.raises(Crash):
        await doomed.handle_incident(incident, SOAR)
    [created_before_crash] = harness.tickets_for(incident.incident_id)
    row = await row_of(doomed, integration, incident.incident_id)
    assert (row["state"], row["owner"], row["ticket_id"]) == ("pending", doomed.owner, None)

    # Restart: a new process (new Ingestor, new TicketService) gets the event again.
    restarted = harness.tickets(harness.routing(integration))
    assert (
        await restarted.handle_incident(incident, SOAR) is Outcome.IN_PROGRESS
    )  # the dead owner's lease runs
    assert await restarted.reconcile_once() == 0
    await expire_lease(harness, integration, incident.incident_id)
    # Two restarted replicas get it at the same moment: one takes over, the other stands back.
    other = harness.tickets(harness.routing(integration))
    outcomes = await asyncio.gather(
        restarted.handle_incident(incident, SOAR), other.handle_incident(incident, SOAR)
    )
    assert outcomes.count(Outcome.FOUND) == 1 and set(outcomes) <= {
        Outcome.FOUND,
        Outcome.IN_PROGRESS,
        Outcome.ALREADY,
    }
    assert harness.tickets_for(incident.incident_id) == [created_before_crash]
    row = await row_of(restarted, integration, incident.incident_id)
    assert (row["state"], row["ticket_id"], row["ticket_found"]) == ("created", created_before_crash, True)
    await tap.settle()
    assert [e.data["ticket_id"] for e in tap.of(integration, "itsm.ticket.upserted")] == [
        created_before_crash
    ]


async def test_the_reconciler_resolves_an_abandoned_request_on_its_own(harness: Any, kit: Any) -> None:
    integration = await harness.add_integration(harness.ingestor([]))
    doomed = harness.tickets(harness.routing(integration), cls=DiesAfterVendorCreate)
    incidents = [kit.incident() for _ in range(3)]
    for incident in incidents:
        with pytest.raises(Crash):
            await doomed.handle_incident(incident, SOAR)
    for incident in incidents[:2]:
        await expire_lease(harness, integration, incident.incident_id)
    restarted = harness.tickets(harness.routing(integration))
    handled = 0
    while n := await restarted.reconcile_once():
        handled += n
    assert handled >= 2  # other tests' rows may be due as well
    rows = [await row_of(restarted, integration, i.incident_id) for i in incidents]
    assert [r["state"] for r in rows] == ["created", "created", "pending"]
    assert all(len(harness.tickets_for(i.incident_id)) == 1 for i in incidents)


async def test_concurrent_replicas_give_one_ticket_per_incident(harness: Any, kit: Any) -> None:
    slow = SlowCreates(harness.transport())
    first = harness.ingestor([], transport=slow)
    integration = await harness.add_integration(first)
    replicas = [
        harness.tickets(harness.routing(integration), ingestor=i)
        for i in (first, harness.ingestor([], transport=slow))
    ]
    incidents = [kit.incident() for _ in range(4)]
    outcomes = await asyncio.gather(
        *(
            replica.handle_incident(incident, SOAR)
            for incident in incidents
            for replica in replicas
            for _ in range(3)
        )
    )
    assert outcomes.count(Outcome.CREATED) == len(incidents)
    assert set(outcomes) <= {Outcome.CREATED, Outcome.IN_PROGRESS, Outcome.ALREADY}
    assert slow.creates == len(incidents), "the vendor saw one create per incident"
    assert all(len(harness.tickets_for(i.incident_id)) == 1 for i in incidents)


async def test_replicas_consuming_the_bus_create_one_ticket_per_incident_and_command(
    harness: Any, tap: Any, kit: Any
) -> None:
    integration = await harness.add_integration(harness.ingestor([]))
    queue = f"itsm-ingest-tests.tickets.{uuid.uuid4().hex[:6]}"
    replicas = [harness.tickets(harness.routing(integration), queue=queue) for _ in range(2)]
    for replica in replicas:
        await replica.start(reconcile=False)
    incidents = [kit.incident() for _ in range(5)]
    command = ItsmTicketCreate(
        incident_id=f"cmd-{uuid.uuid4().hex[:8]}",
        integration_id=integration,
        account_id=ACCOUNTS[2].id,
        company_id="company-initech",
        subject="Escalated by hand",
        description="analyst asked for a ticket",
        priority="P3",
    )
    try:
        for version in range(1, 4):  # every incident delivered three times, in three versions
            await harness.bus.publish(
                [
                    make_event(
                        "soar.incident.upserted",
                        i.model_copy(update={"version": version}),
                        source=f"/soar-ingest/xsoar/{SOAR}",
                        subject=i.incident_id,
                        vendor_version=version,
                        integration_id=SOAR,
                    )
                    for i in incidents
                ]
            )
        for _ in range(2):
            await harness.bus.publish(
                [make_event("itsm.ticket.create", command, source="/tenant", subject=command.incident_id)]
            )
        wanted = [i.incident_id for i in incidents] + [command.incident_id]
        for _ in range(100):
            rows = [
                r
                for r in await replicas[0].requests(integration_id=integration)
                if r["incident_id"] in wanted
            ]
            if len(rows) == len(wanted) and all(r["state"] == "created" for r in rows):
                break
            await asyncio.sleep(0.1)
    finally:
        for replica in replicas:
            await replica.stop()
    assert all(len(harness.tickets_for(i)) == 1 for i in wanted)
    [by_command] = harness.tickets_for(command.incident_id)
    doc = harness.state.records[by_command].doc
    assert (doc["account"]["id"], doc["priority"]["name"], doc["subject"]) == (
        ACCOUNTS[2].id,
        "Medium",
        f"Escalated by hand [{ticket_reference('', '', command.incident_id)}]",
    )
    await tap.settle()
    published = {e.data["soar_incident_id"] for e in tap.of(integration, "itsm.ticket.upserted")}
    assert published == set(wanted)


async def test_a_ticket_already_in_sdp_is_adopted_not_duplicated(harness: Any, kit: Any) -> None:
    ingestor = harness.ingestor([])
    integration = await harness.add_integration(ingestor)
    linked = next(
        rec
        for rec in harness.state.records.values()
        if rec.doc["udf_fields"].get("udf_sline_4506") and rec.account_id == kit.ACME.id
    )
    incident_id = linked.doc["udf_fields"]["udf_sline_4506"]
    service = harness.tickets(harness.routing(integration), ingestor=ingestor)
    assert await service.handle_incident(kit.incident(incident_id), SOAR) is Outcome.FOUND
    assert harness.tickets_for(incident_id) == [linked.id]


async def test_a_failed_create_is_retried_after_a_backoff_by_searching_first(harness: Any, kit: Any) -> None:
    ingestor = harness.ingestor([])
    integration = await harness.add_integration(ingestor)
    service = harness.tickets(harness.routing(integration), ingestor=ingestor)
    harness.board.arm(Fault(kind="500", count=1, path="/api/v3/requests"))
    original_request = harness.board.requests["/api/v3/requests"]
    incident = kit.incident()
    # The search (GET) takes the 500 and is retried; the create then goes through.
    assert await service.handle_incident(incident, SOAR) is Outcome.CREATED
    assert harness.board.requests["/api/v3/requests"] - original_request == 3

    incident = kit.incident()

    class FailCreate(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if (
                request.method == "POST"
            ):  # a 500 on a create is not repeated in line: it may have been processed
                return httpx.Response(500, json={"message": "Internal server error"})
            return await harness.transport().handle_async_request(request)

    flaky = harness.tickets(
        harness.routing(integration), ingestor=harness.ingestor([], transport=FailCreate())
    )
    assert await flaky.handle_incident(incident, SOAR) is Outcome.DEFERRED
    row = await row_of(flaky, integration, incident.incident_id)
    assert (row["state"], row["attempts"], row["last_error_category"]) == ("pending", 1, "server_error")
    assert (
        await service.handle_incident(incident, SOAR) is Outcome.IN_PROGRESS
    )  # backing off (≥ 60 s after a 500)
    await expire_lease(harness, integration, incident.incident_id)
    assert await service.reconcile_once() >= 1
    row = await row_of(service, integration, incident.incident_id)
    assert (row["state"], row["attempts"], row["last_error"]) == ("created", 2, None)
    assert len(harness.tickets_for(incident.incident_id)) == 1


async def test_a_create_that_keeps_failing_is_given_up_and_recorded(harness: Any, kit: Any) -> None:
    ingestor = harness.ingestor([])
    integration = await harness.add_integration(ingestor, settings={"priority_map": {"P1": "Cosmic"}})
    service = harness.tickets(harness.routing(integration), ingestor=ingestor, max_attempts=2)
    incident = kit.incident()
    assert await service.handle_incident(incident, SOAR) is Outcome.DEFERRED
    await expire_lease(harness, integration, incident.incident_id)
    assert await service.handle_incident(incident, SOAR) is Outcome.FAILED
    row = await row_of(service, integration, incident.incident_id)
    assert (row["state"], row["attempts"], row["last_error_category"]) == ("failed", 2, "invalid_request")
    assert "priority" in row["last_error"]
    assert await service.handle_incident(incident, SOAR) is Outcome.FAILED  # final: no third attempt
    assert harness.tickets_for(incident.incident_id) == []

    # Once the integration's settings are fixed, an operator retries it.
    async with ingestor.db.session() as session:
        await ingestor.apply_integration(session, kit.change(integration, settings={}))
    assert await service.retry(integration, incident.incident_id) is True
    assert await service.retry(integration, "never-seen") is False
    while await service.reconcile_once():
        pass
    row = await row_of(service, integration, incident.incident_id)
    assert (row["state"], row["attempts"]) == ("created", 1)
    assert len(harness.tickets_for(incident.incident_id)) == 1


async def test_an_unknown_itsm_integration_is_deferred_not_dropped(harness: Any, kit: Any) -> None:
    service = harness.tickets(harness.routing("sdp-not-yet-known"))
    incident = kit.incident()
    assert await service.handle_incident(incident, SOAR) is Outcome.DEFERRED
    row = await row_of(service, "sdp-not-yet-known", incident.incident_id)
    assert (row["state"], row["last_error_category"]) == ("pending", "integration_unavailable")


async def test_a_routing_outage_fails_the_delivery_so_the_queue_retries_it(harness: Any, kit: Any) -> None:
    class Down:
        async def resolve(self, incident: Any, *, soar_integration_id: str) -> Any:
            raise RoutingUnavailable("tenant service unreachable")

    service = harness.tickets(Down())  # type: ignore[arg-type]
    event = make_event(
        "soar.incident.upserted",
        kit.incident(),
        source="/soar-ingest/xsoar/x",
        subject="1",
        integration_id=SOAR,
    )

    class FakeDelivery:
        envelope, payload = event, event.payload()

    with pytest.raises(RoutingUnavailable):
        await service.on_deliveries([FakeDelivery()])  # type: ignore[list-item]


# ---------------------------------------------------------------------------------- routing
def tenant_stub(calls: list[dict[str, str]], expected_token: str) -> FastAPI:
    """The endpoint the tenant team is to add, as documented in soc_itsm_ingest.mapping."""
    app = FastAPI()

    @app.get("/internal/ticket-routing")
    async def route(request: Request, soar_integration_id: str, account: str) -> JSONResponse:
        calls.append({"soar_integration_id": soar_integration_id, "account": account})
        if request.headers.get("authorization") != f"Bearer {expected_token}":
            return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
        if account == "broken":
            return JSONResponse({"error": {"code": "internal"}}, status_code=500)
        if account != "acme":
            return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
        return JSONResponse(
            {
                "company_id": "c-1",
                "itsm_integration_id": "sdp-1",
                "account_id": "301001",
                "policy": {"priorities": ["P1"]},
            }
        )

    return app


async def test_tenant_routing_asks_with_a_service_token_and_caches(kit: Any) -> None:
    calls: list[dict[str, str]] = []
    tokens = iter(["stale-token", "fresh-token", "fresh-token", "fresh-token", "fresh-token"])
    invalidated: list[bool] = []

    async def token() -> str:
        return next(tokens)

    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tenant_stub(calls, "fresh-token")), base_url="http://tenant"
    )
    routing = TenantTicketRouting(
        "http://tenant", token, ttl=60, http=http, invalidate_token=lambda: invalidated.append(True)
    )
    try:
        routes = await asyncio.gather(
            *(routing.resolve(kit.incident(account="acme"), soar_integration_id="soar-1") for _ in range(5))
        )
        assert len({r for r in routes}) == 1 and routes[0] is not None
        route = routes[0]
        assert (route.itsm_integration_id, route.account_id, route.company_id) == ("sdp-1", "301001", "c-1")
        assert route.policy.priorities == frozenset({"P1"})
        assert (
            invalidated == [True] and len(calls) == 2
        )  # one 401 → new token → one answer, shared by all five
        assert calls[-1] == {"soar_integration_id": "soar-1", "account": "acme"}
        assert await routing.resolve(kit.incident(account="globex"), soar_integration_id="soar-1") is None
        assert await routing.resolve(kit.incident(account="globex"), soar_integration_id="soar-1") is None
        assert len(calls) == 3  # "unmapped" is cached as well
        with pytest.raises(RoutingUnavailable):
            await routing.resolve(kit.incident(account="broken"), soar_integration_id="soar-1")
    finally:
        await http.aclose()


async def test_static_routing_from_settings_json(kit: Any) -> None:
    from soc_itsm_ingest.config import Settings
    from soc_itsm_ingest.mapping import routing_from_settings

    settings = Settings(
        routing="static",
        static_routes='[{"soar_integration_id": "*", "account": "acme", '
        '"company_id": "c", "itsm_integration_id": "s", "account_id": "a"}]',
    )
    routing = routing_from_settings(settings, token=lambda: None)  # type: ignore[arg-type,return-value]
    assert isinstance(routing, StaticTicketRouting)
    incident = kit.incident
    route = await routing.resolve(incident(account="acme"), soar_integration_id="any")
    assert route is not None and route.policy.priorities == frozenset({"P1", "P2"})
    assert await routing.resolve(incident(account="other"), soar_integration_id="any") is None


async def test_the_service_app_consumes_incidents_and_reports_ticket_requests(
    harness: Any, tokens: Any, kit: Any
) -> None:
    import json

    from soc_itsm_ingest.config import Settings
    from soc_itsm_ingest.main import create_app

    integration = f"sdp-{uuid.uuid4().hex[:10]}"
    routes = [
        {
            "soar_integration_id": SOAR,
            "account": kit.ACME.soar_account,
            "company_id": "company-acme",
            "itsm_integration_id": integration,
            "account_id": kit.ACME.id,
        }
    ]
    settings = Settings(
        scheduler_enabled=False,
        routing="static",
        static_routes=json.dumps(routes),
        ticket_queue=f"itsm-ingest-tests.app.{uuid.uuid4().hex[:6]}",
    )

    async def credentials(_: str) -> dict[str, Any]:
        return kit.token_credentials()

    app = create_app(
        settings,
        verifier=tokens.verifier(),
        credentials=credentials,
        client_options={"transport": harness.transport(), "retry": kit.FAST_RETRY},
    )
    incident = kit.incident()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://itsm-ingest") as client,
    ):
        async with app.state.db.session() as session:
            await app.state.ingestor.apply_integration(session, kit.change(integration))
        harness.integrations.append(integration)
        await harness.bus.publish(
            [
                make_event(
                    "soar.incident.upserted",
                    incident,
                    source=f"/soar-ingest/xsoar/{SOAR}",
                    subject=incident.incident_id,
                    vendor_version=1,
                    integration_id=SOAR,
                )
            ]
        )
        for _ in range(100):
            r = await client.get(
                "/internal/ticket-requests",
                params={"incident_id": incident.incident_id},
                headers=tokens.headers(kind="service"),
            )
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            if items and items[0]["state"] == "created":
                break
            await asyncio.sleep(0.1)
        retry = await client.post(
            f"/internal/ticket-requests/{integration}/{incident.incident_id}/retry",
            headers=tokens.headers(kind="service"),
        )
        assert (
            retry.status_code == 404 and retry.json()["error"]["code"] == "not_found"
        )  # created: nothing to retry
    assert items[0]["integration_id"] == integration and "owner" not in items[0]
    assert harness.tickets_for(incident.incident_id) == [items[0]["ticket_id"]]


async def test_accounts_numbering_incidents_alike_get_a_ticket_each_and_never_adopt_the_other(
    harness: Any, kit: Any
) -> None:
    """Two XSOAR accounts served by one SDP account both have an incident 7: two tickets, each
    found again as its own (the reference decides, not the incident id)."""
    ingestor = harness.ingestor([])
    integration = await harness.add_integration(ingestor)
    routes = [
        {
            "soar_integration_id": SOAR,
            "account": account,
            "company_id": "company-acme",
            "itsm_integration_id": integration,
            "account_id": kit.ACME.id,
        }
        for account in (kit.ACME.soar_account, "acme-emea")
    ]
    service = harness.tickets(StaticTicketRouting.from_json(routes), ingestor=ingestor)
    incident_id = f"7{uuid.uuid4().hex[:6]}"
    first = kit.incident(incident_id, account=kit.ACME.soar_account)
    second = kit.incident(incident_id, account="acme-emea")
    assert await service.handle_incident(first, SOAR) is Outcome.CREATED
    assert await service.handle_incident(second, SOAR) is Outcome.CREATED
    tickets = harness.tickets_for(incident_id)
    assert len(tickets) == 2
    rows = {
        r["soar_account"]: r
        for r in await service.requests(integration_id=integration, incident_id=incident_id)
    }
    assert set(rows) == {kit.ACME.soar_account, "acme-emea"}
    assert {r["ticket_id"] for r in rows.values()} == set(tickets)

    # Both records lost (a restored database): each search finds its own request again.
    t = ticket_request_table
    async with harness.db.session() as session:
        await session.execute(
            sa.delete(t).where(t.c.integration_id == integration, t.c.incident_id == incident_id)
        )
    restarted = harness.tickets(StaticTicketRouting.from_json(routes), ingestor=ingestor)
    assert await restarted.handle_incident(second, SOAR) is Outcome.FOUND
    assert await restarted.handle_incident(first, SOAR) is Outcome.FOUND
    again = {
        r["soar_account"]: r["ticket_id"]
        for r in await restarted.requests(integration_id=integration, incident_id=incident_id)
    }
    assert again == {account: row["ticket_id"] for account, row in rows.items()}
    assert len(harness.tickets_for(incident_id)) == 2


async def test_the_search_names_the_fields_it_reads_and_confirms_on_the_whole_record(
    harness: Any, kit: Any
) -> None:
    """What the search sends: fields_required naming the incident field and the subject, criteria on
    the incident field OR the reference tag, then one GET of the candidate."""
    seen: list[tuple[str, str, dict[str, Any]]] = []

    class Recorder(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            import json as _json

            data = request.url.params.get("input_data")
            seen.append((request.method, request.url.path, _json.loads(data) if data else {}))
            return await harness.transport().handle_async_request(request)

    ingestor = harness.ingestor([], transport=Recorder())
    integration = await harness.add_integration(ingestor)
    service = harness.tickets(harness.routing(integration), ingestor=ingestor)
    incident = kit.incident()
    assert await service.handle_incident(incident, SOAR) is Outcome.CREATED
    assert await service.handle_incident(incident.model_copy(update={"version": 2}), SOAR) is Outcome.ALREADY
    seen.clear()
    async with harness.db.session() as session:  # as after a crash between the create and the record
        await session.execute(
            sa.update(ticket_request_table)
            .where(ticket_request_table.c.integration_id == integration)
            .values(state="pending", ticket_id=None, create_sent_at=sa.func.now(), lease_until=sa.func.now())
        )
    assert await service.reconcile_once() >= 1
    # (rows of other tests may be due as well: look at this incident's calls only)
    [search] = [
        s
        for s in seen
        if s[0] == "GET"
        and s[1].endswith("/requests")
        and s[2]["list_info"]["search_criteria"][0]["value"] == incident.incident_id
    ]
    list_info = search[2]["list_info"]
    assert {"subject", "udf_fields"} <= set(list_info["fields_required"])
    criteria = list_info["search_criteria"]
    reference = ticket_reference(SOAR, kit.ACME.soar_account, incident.incident_id)
    assert criteria[0] == {"field": kit.UDF, "condition": "is", "value": incident.incident_id}
    assert {
        "field": "subject",
        "condition": "contains",
        "value": reference,
        "logical_operator": "OR",
    } in criteria
    [ticket_id] = harness.tickets_for(incident.incident_id)
    assert [s[1] for s in seen].count(f"/api/v3/requests/{ticket_id}") == 1
    assert harness.tickets_for(incident.incident_id) == [ticket_id]
    [row] = await service.requests(integration_id=integration)
    assert (row["state"], row["ticket_id"], row["ticket_found"], row["creates"]) == (
        "created",
        ticket_id,
        True,
        1,
    )


async def test_status_technician_and_resolution_changed_in_sdp_flow_back_with_the_ticket_link(
    harness: Any, tap: Any, kit: Any
) -> None:
    ingestor = harness.ingestor(["tickets"])
    integration = await harness.add_integration(ingestor, base_url="https://sdp.example.com/app/itdesk")
    service = harness.tickets(harness.routing(integration), ingestor=ingestor)
    incident = kit.incident()
    assert await service.handle_incident(incident, SOAR) is Outcome.CREATED
    [ticket_id] = harness.tickets_for(incident.incident_id)
    await harness.sync(ingestor, integration)
    # The service desk works the ticket.
    harness.state.update(
        harness.state.records[ticket_id],
        {
            "request": {
                "status": {"name": "Resolved"},
                "technician": {"name": "Mei Chen"},
                "resolution": {"content": "Contained: VPN account locked, password reset."},
            }
        },
    )
    await harness.sync(ingestor, integration)
    await tap.settle()
    versions = [
        e.data for e in tap.of(integration, "itsm.ticket.upserted") if e.data["ticket_id"] == ticket_id
    ]
    first, last = versions[0], versions[-1]
    link = f"https://sdp.example.com/app/itdesk/ui/requests/{ticket_id}/details"
    reference = ticket_reference(SOAR, kit.ACME.soar_account, incident.incident_id)
    assert (first["status"], first["technician_name"], first["request_url"], first["reference"]) == (
        "Open",
        None,
        link,
        reference,
    )
    assert (last["status"], last["technician_name"], last["resolution"], last["request_url"]) == (
        "Resolved",
        "Mei Chen",
        "Contained: VPN account locked, password reset.",
        link,
    )
    assert last["soar_incident_id"] == incident.incident_id and last["version"] > first["version"]


def test_a_rule_in_the_original_words_and_with_incident_types(kit: Any) -> None:
    from soc_itsm_ingest.mapping import RouteModel

    route = RouteModel.model_validate(
        {
            "company_id": "c",
            "itsm_integration_id": "s",
            "account_id": "a",
            "policy": {"priorities": ["P1 Critical", "P2 - High", 2, "bogus"], "types": ["Phishing"]},
        }
    ).route()
    policy = route.policy
    assert policy.priorities == frozenset({"P1", "P2", "P3"})
    assert policy.statuses == frozenset({"pending", "active"})  # not given: today's rule
    phishing = kit.incident(priority="P3").model_copy(update={"type": "phishing"})
    assert policy.applies(phishing)
    assert not policy.applies(phishing.model_copy(update={"type": "Malware"}))
    assert not policy.applies(phishing.model_copy(update={"priority": "P4"}))
    any_type = RouteModel.model_validate(
        {"company_id": "c", "itsm_integration_id": "s", "account_id": "a", "policy": {"types": None}}
    ).route()
    assert any_type.policy.applies(kit.incident(priority="P1").model_copy(update={"type": None}))


async def test_incidents_skipped_as_unmapped_get_their_ticket_once_the_mapping_is_made(
    harness: Any, kit: Any
) -> None:
    from soc_itsm_ingest.mapping import StaticRouteModel
    from soc_itsm_ingest.tickets import ticket_unrouted_table

    ingestor = harness.ingestor([])
    integration = await harness.add_integration(ingestor)
    account = f"late-{uuid.uuid4().hex[:6]}"
    routing = StaticTicketRouting([])  # the account is not mapped yet
    service = harness.tickets(routing, ingestor=ingestor)
    waiting = kit.incident(account=account, priority="P1")
    low = kit.incident(account=account, priority="P4")
    closed = kit.incident(account=account, priority="P1", status=IncidentStatus.CLOSED)
    reopened = kit.incident(account=account, priority="P2")
    for incident in (waiting, low, closed, reopened):
        assert await service.handle_incident(incident, SOAR) is Outcome.SKIPPED
    # The reopened one is closed in a later version: nothing to remember for it any more.
    closing = reopened.model_copy(update={"status": IncidentStatus.CLOSED, "version": 2})
    assert await service.handle_incident(closing, SOAR) is Outcome.SKIPPED
    u = ticket_unrouted_table
    async with harness.db.session() as session:
        kept = set(
            (await session.execute(sa.select(u.c.incident_id).where(u.c.soar_account == account))).scalars()
        )
    assert kept == {waiting.incident_id, low.incident_id}
    assert await service.reconsider_unrouted() == 0  # still unmapped: nothing happens

    # The admin maps the account: the incidents already ingested are judged by the rule now,
    # without waiting for them to change.
    routing.routes.append(
        StaticRouteModel(
            soar_integration_id=SOAR,
            account=account,
            company_id="company-late",
            itsm_integration_id=integration,
            account_id=kit.ACME.id,
        )
    )
    assert await service.reconsider_unrouted() == 2
    assert len(harness.tickets_for(waiting.incident_id)) == 1
    assert [len(harness.tickets_for(i.incident_id)) for i in (low, closed, reopened)] == [0, 0, 0]
    [row] = await service.requests(integration_id=integration, incident_id=waiting.incident_id)
    assert (row["state"], row["soar_account"], row["company_id"]) == ("created", account, "company-late")
    assert await service.reconsider_unrouted() == 0  # forgotten once reconsidered
    assert await service.handle_incident(waiting.model_copy(update={"version": 3}), SOAR) is Outcome.ALREADY
