"""Two XSOAR accounts that share incident ids, end to end.

A multi-tenant XSOAR master numbers each tenant's incidents from 1 (the simulator does as the real
one). The incidents and war-room notes are read by soar-ingest's own sync code from the simulator,
published on the real bus, consumed into the read model, and read back through the API by two
companies: each must see all of its own incidents, notes, tickets and dashboard counts, and none
of the other's, although the ids are the same.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest_asyncio
from soc_shared.bus import Bus
from soc_shared.events import ItsmTicket, SoarIncident
from soc_shared.sync import SyncContext
from soc_shared.vendor_http import RetryPolicy
from soc_simulators import xsoar
from soc_soar_ingest import resources
from soc_soar_ingest.client import XsoarClient
from soc_tenant.main import create_app
from soc_tenant.readmodel.testing import add_company, event, eventually, map_itsm, map_soar

RUN = uuid.uuid4().hex[:8]
SOAR = f"xsoar-accounts-{RUN}"
ITSM = f"sdp-accounts-{RUN}"


class Marks:
    """soar-ingest's war-room watermarks, in memory (its own table lives in its own schema)."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str, str], str] = {}

    async def load(self, integration_id: str, account: str, ids: list[str]) -> dict[str, str]:
        return {i: m for i in ids if (m := self.marks.get((integration_id, account, i)))}

    async def save(self, integration_id: str, account: str, marks: dict[str, tuple[str, int]]) -> None:
        for incident_id, (at, _) in marks.items():
            self.marks[(integration_id, account, incident_id)] = at


async def sync_from_simulator(sim: Any) -> tuple[list[Any], list[Any]]:
    """Incident and note events exactly as soar-ingest's resources build them."""
    client = XsoarClient(
        "http://xsoar.sim",
        integration_id=SOAR,
        api_key=xsoar.API_KEY,
        transport=httpx.ASGITransport(app=sim),
        retry=RetryPolicy(attempts=2, base_delay=0.01),
    )
    options = resources.SyncOptions.from_settings(
        {"accounts": ["acme", "globex"]}, type("S", (), {"page_size": 50, "notes_concurrency": 4})()
    )
    sync = resources.XsoarSync(client=client, options=options, marks=Marks())  # type: ignore[arg-type]
    ctx = SyncContext(
        integration={"id": SOAR}, credentials={}, client=sync, source=f"/soar-ingest/xsoar/{SOAR}"
    )
    try:
        incidents = [
            e for page in [p async for p in resources.fetch_incidents(ctx, None)] for e in page.events
        ]
        notes = [e for page in [p async for p in resources.fetch_notes(ctx, None)] for e in page.events]
    finally:
        await sync.aclose()
    return incidents, notes


@pytest_asyncio.fixture(scope="module")
async def world(migrated, tokens):
    sim = xsoar.create_app(seed=23, incidents=90)
    state: xsoar.XsoarSim = sim.state.sim
    incidents, notes = await sync_from_simulator(sim)
    app = create_app(migrated, verifier=tokens.verifier())
    async with app.router.lifespan_context(app):
        db = app.state.db
        a = await add_company(db, f"Acme accounts {RUN}")
        b = await add_company(db, f"Globex accounts {RUN}")
        await map_soar(db, a, SOAR, "acme")
        await map_soar(db, b, SOAR, "globex")
        await map_itsm(db, a, ITSM, "11")
        await map_itsm(db, b, ITSM, "22")
        bus = Bus(migrated.amqp_url.get_secret_value(), service="xsoar-accounts-tests")
        await bus.connect()
        # Each company's SDP account holds a ticket for "its" incident 1.
        tickets = [
            event(
                "itsm.ticket.upserted",
                ItsmTicket(
                    ticket_id=f"{account_id}01",
                    account_id=account_id,
                    subject=f"Security incident #1 of {account}",
                    last_updated_time=state.records[(account, "1")].doc["modified"],
                    soar_incident_id="1",
                    version=1,
                ),
                ITSM,
                f"{account_id}01",
                version=1,
                vendor_tenant=account_id,
            )
            for account, account_id in (("acme", "11"), ("globex", "22"))
        ]
        await bus.publish(incidents)
        await bus.publish(notes)
        await bus.publish(tickets)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenant.test")
        async with client:
            yield {
                "client": client,
                "tokens": tokens,
                "state": state,
                "incidents": incidents,
                "notes": notes,
                "companies": {"acme": a, "globex": b},
            }
        await bus.close()


def as_company(world: dict, account: str) -> dict[str, str]:
    return world["tokens"].headers(kind="tenant", company_id=world["companies"][account])


async def get(world: dict, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = await world["client"].get(path, headers=headers, params=params)
    assert response.status_code == 200, (path, response.status_code, response.text[:400])
    return response.json()


def expected(world: dict, account: str) -> dict[str, int]:
    """The simulator's own incidents of ``account``: id → version."""
    return {rec.id: rec.doc["version"] for rec in world["state"].records.values() if rec.account == account}


@pytest_asyncio.fixture(scope="module")
async def loaded(world):
    async def all_in() -> bool:
        for account in ("acme", "globex"):
            listed = await get(world, "/tenant/soar-incidents/", as_company(world, account), limit=500)
            if listed["total"] != len(expected(world, account)):
                return False
        return True

    await eventually(all_in, within=30)
    return world


async def test_the_simulated_master_numbers_each_account_from_one(loaded):
    acme, globex = expected(loaded, "acme"), expected(loaded, "globex")
    shared = set(acme) & set(globex)
    assert "1" in shared and len(shared) == min(len(acme), len(globex)) > 10
    # The events name the account in their subject, vendor tenant and payload, and their ids differ.
    ones = [e for e in loaded["incidents"] if e.data["incident_id"] == "1"]
    assert sorted(e.subject for e in ones) == ["acme/1", "globex/1"]
    assert {e.vendortenant for e in ones} == {"acme", "globex"} and len({e.id for e in ones}) == 2


async def test_each_company_sees_every_one_of_its_incidents_at_its_version(loaded):
    for account in ("acme", "globex"):
        listed = await get(loaded, "/tenant/soar-incidents/", as_company(loaded, account), limit=500)
        got = {x["incident_id"]: x["version"] for x in listed["items"]}
        assert got == expected(loaded, account)
        assert {x["account"] for x in listed["items"]} == {account}
    # The admin sees both incident 1s, each under its own company.
    admin = loaded["tokens"].headers(kind="admin")
    ones = []
    for account in ("acme", "globex"):
        company = loaded["companies"][account]
        listed = await get(loaded, "/tenant/soar-incidents/", admin, company_id=company, limit=500)
        ones += [x for x in listed["items"] if x["incident_id"] == "1" and x["integration_id"] == SOAR]
    assert sorted(x["account"] for x in ones) == ["acme", "globex"]


async def test_notes_stay_with_the_incident_of_their_own_account(loaded):
    state: xsoar.XsoarSim = loaded["state"]
    by_incident = Counter((e.data["account"], e.data["incident_id"]) for e in loaded["notes"])
    # An incident id both accounts have, each with notes of its own.
    shared = [
        n
        for (account, n) in by_incident
        if account == "acme" and by_incident.get(("globex", n)) and n in expected(loaded, "globex")
    ]
    assert shared, "no incident id with notes in both accounts"
    number = shared[0]
    for account in ("acme", "globex"):
        headers = as_company(loaded, account)
        listed = await get(loaded, "/tenant/soar-incidents/", headers, q=number, limit=500)
        row = next(x for x in listed["items"] if x["incident_id"] == number)

        async def notes_in(row: dict = row, headers: dict = headers, account: str = account) -> list[dict]:
            detail = await get(loaded, f"/tenant/soar-incidents/{row['id']}/", headers)
            return detail["notes"] if len(detail["notes"]) == by_incident[(account, number)] else []

        notes = await eventually(notes_in, within=15)
        war_room = [e.doc["id"] for e in state.entries_of(state.records[(account, number)]) if e.doc["note"]]
        assert sorted(n["note_id"] for n in notes) == sorted(war_room)


async def test_a_ticket_links_to_the_incident_of_its_own_company(loaded):
    for account in ("acme", "globex"):
        headers = as_company(loaded, account)

        async def ticket(headers: dict = headers) -> dict | None:
            items = (await get(loaded, "/tenant/itsm-tickets/", headers, limit=50))["items"]
            mine = [x for x in items if x["integration_id"] == ITSM]
            return mine[0] if mine else None

        found = await eventually(ticket, within=15)
        detail = await get(loaded, f"/tenant/itsm-tickets/{found['id']}/", headers)
        assert detail["incident"]["incident_id"] == "1" and detail["incident"]["account"] == account
        # The incident shows this company's ticket only, although both tickets name incident "1".
        listed = await get(loaded, "/tenant/soar-incidents/", headers, q="1", limit=500)
        one = next(x for x in listed["items"] if x["incident_id"] == "1")
        incident = await get(loaded, f"/tenant/soar-incidents/{one['id']}/", headers)
        assert [t["ticket_id"] for t in incident["tickets"]] == [found["ticket_id"]]
    # The admin, who sees every ticket, still gets the one of the incident's company.
    admin = loaded["tokens"].headers(kind="admin")
    tickets = [
        x
        for company in loaded["companies"].values()
        for x in (await get(loaded, "/tenant/itsm-tickets/", admin, company_id=company, limit=50))["items"]
        if x["integration_id"] == ITSM
    ]
    assert len(tickets) == 2
    for ticket in tickets:
        detail = await get(loaded, f"/tenant/itsm-tickets/{ticket['id']}/", admin)
        assert detail["incident"]["account"] == {"11": "acme", "22": "globex"}[ticket["account_id"]]


async def test_dashboards_count_each_account_in_full(loaded):
    for account in ("acme", "globex"):
        headers = as_company(loaded, account)
        mine = [
            SoarIncident.model_validate(e.data) for e in loaded["incidents"] if e.data["account"] == account
        ]
        summary = await get(loaded, "/tenant/soar-incidents/summary/", headers)
        assert summary["total"] == len(mine) == len(expected(loaded, account))
        statuses = Counter(i.status.value for i in mine)
        assert summary["by_status"] == dict(statuses)
        dash = await get(loaded, "/tenant/dashboard/", headers, filters="incidents")
        assert dash["incidents"]["total"] == len(mine)
