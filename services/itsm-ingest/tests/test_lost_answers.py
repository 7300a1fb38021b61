"""Exactly one ticket per incident when ServiceDesk Plus creates the request and the answer is lost.

The simulator runs on a loopback socket and answers as SDP does (list rows carry list-view columns
only); 30 % of creates lose their answer after the request exists: the connection is cut after
the headers, a 500 comes back, or the answer arrives after the client's timeout. Every incident
must end with exactly one request in SDP.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from soc_itsm_ingest.tickets import ticket_request_table
from soc_simulators import sdp as sdp_sim
from soc_simulators.faults import Fault

SOAR = "soar-test"
CLIENT_TIMEOUT = httpx.Timeout(0.5, connect=2.0)


def lose_answers(board: Any, share: float = 0.3, seed: int = 25, hang_seconds: float = 1.0) -> None:
    """``share`` of the creates lose their answer, one third each way."""
    board.seed(seed)
    kinds = ("drop_after", "500_after", "slow_after")
    left = 1.0
    for kind in kinds:
        p = share / len(kinds)
        board.arm(
            Fault(
                kind=kind,
                path="/api/v3/requests",
                method="POST",
                count=1_000_000,
                probability=p / left,
                hang_seconds=hang_seconds,
            )
        )
        left -= p


@pytest.fixture(scope="module")
def lossy_sim(kit: Any) -> Iterator[tuple[Any, str]]:
    app = sdp_sim.create_app(seed=25, requests=30, xsoar_incidents=50)
    with kit.ServerThread(app) as server:
        yield app, f"http://127.0.0.1:{server.port}"


async def settle(harness: Any, service: Any, integration: str, rounds: int = 12) -> None:
    """Let the reconciler run as time passes: every backoff elapses, every pending row is retried."""
    t = ticket_request_table
    for _ in range(rounds):
        async with harness.db.session() as session:
            await session.execute(
                sa.update(t)
                .where(t.c.integration_id == integration, t.c.state == "pending")
                .values(lease_until=sa.func.now() - sa.text("interval '1 second'"))
            )
        while await service.reconcile_once():
            pass
        rows = await service.requests(integration_id=integration)
        if rows and all(r["state"] != "pending" for r in rows):
            return


async def test_answers_lost_after_create_never_make_a_second_ticket(
    harness: Any, lossy_sim: tuple[Any, str], kit: Any
) -> None:
    app, url = lossy_sim
    board, state = app.state.faults, app.state.sim
    ingestor = harness.ingestor([], transport=httpx.AsyncHTTPTransport(), timeout=CLIENT_TIMEOUT)
    integration = await harness.add_integration(ingestor, base_url=url)
    service = harness.tickets(harness.routing(integration), ingestor=ingestor)
    incidents = [kit.incident(f"lost-{uuid.uuid4().hex[:8]}") for _ in range(20)]
    lose_answers(board)
    try:
        await asyncio.gather(*(service.handle_incident(i, SOAR) for i in incidents))
        await settle(harness, service, integration)
    finally:
        board.clear()
    lost = sum(board.fired[k] for k in ("drop_after", "500_after", "slow_after"))
    assert lost >= 3, "the fault mix fired"

    def tickets(incident_id: str) -> list[str]:
        return [
            r.id
            for r in list(state.records.values())
            if r.doc["udf_fields"][sdp_sim.UDF_SOAR_ID] == incident_id
        ]

    per_incident = {i.incident_id: len(tickets(i.incident_id)) for i in incidents}
    assert per_incident == {i.incident_id: 1 for i in incidents}, f"{lost} answers lost: {per_incident}"
    rows = {r["incident_id"]: r for r in await service.requests(integration_id=integration)}
    for incident in incidents:
        row = rows[incident.incident_id]
        assert row["state"] == "created" and row["ticket_id"] == tickets(incident.incident_id)[0]
