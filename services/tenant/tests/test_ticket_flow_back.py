"""What the service desk does on a ticket reaches the incident detail: status, technician,
resolution and the link into SDP; a ticket the SOC opened shows on exactly its incident (its
reference names SOAR integration, XSOAR account and incident id)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from soc_shared.bus import Bus
from soc_shared.events import IncidentSeverity, IncidentStatus, ItsmTicket, SoarIncident, ticket_reference
from soc_tenant.main import create_app
from soc_tenant.readmodel.testing import add_company, event, eventually, map_itsm, map_soar

RUN = uuid.uuid4().hex[:8]
SOAR = f"xsoar-flow-{RUN}"
ITSM = f"sdp-flow-{RUN}"


def incident(account: str) -> SoarIncident:
    now = datetime.now(UTC)
    return SoarIncident(
        incident_id="5",
        account=account,
        name=f"Phishing wave at {account}",
        status=IncidentStatus.ACTIVE,
        severity=IncidentSeverity.HIGH,
        created=now,
        modified=now,
        priority="P1",
        version=1,
    )


def ticket(ticket_id: str, version: int, reference: str | None, **changes: object) -> ItsmTicket:
    fields: dict[str, object] = {
        "ticket_id": ticket_id,
        "account_id": "11",
        "subject": f"Security incident #5 [{reference}]" if reference else "Phishing, reported by phone",
        "status": "Open",
        "last_updated_time": datetime.fromtimestamp(1_790_000_000 + version, tz=UTC),
        "soar_incident_id": "5",
        "version": version,
        "request_url": f"https://sdp.example.com/app/itdesk/ui/requests/{ticket_id}/details",
        "reference": reference,
    }
    return ItsmTicket.model_validate({**fields, **changes})


async def test_ticket_changes_reach_the_incident_detail_of_exactly_its_incident(migrated, tokens):
    app = create_app(migrated, verifier=tokens.verifier())  # with the read model's consumers
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenant.test") as client,
    ):
        await flow(app, client, tokens.headers, migrated)


async def flow(app, client, headers, migrated) -> None:
    db = app.state.db
    company = await add_company(db, f"Flow {RUN}")
    await map_soar(db, company, SOAR, "acme")
    await map_soar(db, company, SOAR, "acme-emea")  # one company, two XSOAR accounts, both with an incident 5
    await map_itsm(db, company, ITSM, "11")
    ours = ticket_reference(SOAR, "acme", "5")
    bus = Bus(migrated.amqp_url.get_secret_value(), service="ticket-flow-tests")
    await bus.connect()
    try:
        await bus.publish(
            [
                event("soar.incident.upserted", incident(a), SOAR, f"{a}/5", version=1, vendor_tenant=a)
                for a in ("acme", "acme-emea")
            ]
        )
        await bus.publish(
            [
                event(
                    "itsm.ticket.upserted",
                    ticket("9001", 1, ours),
                    ITSM,
                    "9001",
                    version=1,
                    vendor_tenant="11",
                ),
                event(
                    "itsm.ticket.upserted",
                    ticket("9002", 1, None),
                    ITSM,
                    "9002",
                    version=1,
                    vendor_tenant="11",
                ),
            ]
        )
        h = headers(kind="tenant", company_id=company)

        async def detail(account: str, wanted: int) -> dict | None:
            listed = (await client.get("/tenant/soar-incidents/", headers=h, params={"limit": 500})).json()
            row = next(
                (x for x in listed["items"] if x["account"] == account and x["incident_id"] == "5"), None
            )
            if row is None:
                return None
            found = (await client.get(f"/tenant/soar-incidents/{row['id']}/", headers=h)).json()
            return found if len(found["tickets"]) == wanted else None

        acme = await eventually(lambda: detail("acme", 2))
        assert sorted(t["ticket_id"] for t in acme["tickets"]) == ["9001", "9002"]
        # The other account's incident 5 gets the hand-made ticket only, never the SOC's ticket of acme/5.
        emea = await eventually(lambda: detail("acme-emea", 1))
        assert [t["ticket_id"] for t in emea["tickets"]] == ["9002"]

        # The service desk resolves the ticket: the next version carries what they did.
        await bus.publish(
            [
                event(
                    "itsm.ticket.upserted",
                    ticket(
                        "9001",
                        2,
                        ours,
                        status="Resolved",
                        technician_name="Mei Chen",
                        resolution="Mailbox rules removed, sender blocked.",
                    ),
                    ITSM,
                    "9001",
                    version=2,
                    vendor_tenant="11",
                )
            ]
        )

        async def resolved() -> dict | None:
            found = await detail("acme", 2)
            mine = [t for t in (found or {}).get("tickets", []) if t["ticket_id"] == "9001"]
            return mine[0] if mine and mine[0]["status"] == "Resolved" else None

        done = await eventually(resolved)
        assert (done["technician_name"], done["resolution"], done["request_url"]) == (
            "Mei Chen",
            "Mailbox rules removed, sender blocked.",
            "https://sdp.example.com/app/itdesk/ui/requests/9001/details",
        )
        listed = (await client.get("/tenant/itsm-tickets/", headers=h, params={"limit": 50})).json()
        [row] = [x for x in listed["items"] if x["ticket_id"] == "9001"]
        assert (row["status"], row["technician_name"]) == ("Resolved", "Mei Chen")
    finally:
        await bus.close()
