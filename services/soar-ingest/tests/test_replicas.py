"""Two soar-ingest replicas on one database share the integrations' work: no (integration,
resource) runs on both at once or twice, both do some of it, and together they finish it — the
same vendor requests and the same events as one replica alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from soc_shared.sync import Ingestor
from soc_simulators import xsoar


def of_type(events: list[dict[str, Any]], routing_key: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == f"soc.{routing_key}.v1"]


class RunLog:
    """Wraps replicas' ``run_one``: who ran what, and whether anything ran twice at once."""

    def __init__(self) -> None:
        self.running: set[tuple[str, str]] = set()
        self.overlaps: list[tuple[str, str]] = []
        self.runs: list[tuple[str, str, str]] = []

    def watch(self, ingestor: Ingestor, name: str) -> None:
        original = ingestor.run_one

        async def run_one(row: dict[str, Any]) -> None:
            key = (row["integration_id"], row["resource"])
            if key in self.running:
                self.overlaps.append(key)
            self.running.add(key)
            self.runs.append((name, *key))
            try:
                await asyncio.sleep(0.01)  # widen the window in which a double claim would show
                await original(row)
            finally:
                self.running.discard(key)

        ingestor.run_one = run_one  # type: ignore[method-assign]


async def sim_requests(sim: Any) -> Counter[str]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim), base_url="http://xsoar.sim"
    ) as client:
        return Counter((await client.get("/_sim/stats")).json()["requests"])


async def test_two_replicas_share_the_work_without_overlap(make_harness, tap_factory):
    integrations = ["xsoar-a", "xsoar-b", "xsoar-c"]

    # Baseline: one replica alone, on an identical simulator.
    alone_sim = xsoar.create_app(seed=37, incidents=60)
    alone = await make_harness(alone_sim)
    tap = await tap_factory(("soar.#",))
    for integration_id in integrations:
        await alone.add_integration(f"alone-{integration_id}", settings={"page_size": 15})
    await alone.sync()
    alone_events = await tap.drain()
    alone_requests = await sim_requests(alone_sim)

    sim = xsoar.create_app(seed=37, incidents=60)
    first, second = await make_harness(sim), await make_harness(sim)
    for replica in (first, second):
        replica.ingestor.concurrency = 2  # so that one replica cannot claim everything at once
    log = RunLog()
    log.watch(first.ingestor, "first")
    log.watch(second.ingestor, "second")
    tap = await tap_factory(("soar.#",))
    for integration_id in integrations:
        await first.add_integration(integration_id, settings={"page_size": 15})
        second.credentials[integration_id] = first.credentials[integration_id]

    await asyncio.gather(first.sync(), second.sync())
    events = await tap.drain()

    assert not log.overlaps
    keys = Counter((integration_id, resource) for _, integration_id, resource in log.runs)
    assert set(keys) == {(i, r) for i in integrations for r in ("accounts", "incidents", "notes")}
    assert max(keys.values()) == 1  # every (integration, resource) ran once, on one replica
    assert {name for name, _, _ in log.runs} == {"first", "second"}  # both worked

    # Together: exactly the work and the events of one replica alone.
    assert await sim_requests(sim) == alone_requests
    for routing_key in ("soar.incident.upserted", "soar.note.added", "soar.account.upserted"):
        ours = Counter(
            (e["source"].rsplit("/", 1)[1], e["subject"], e["id"] is not None)
            for e in of_type(events, routing_key)
        )
        theirs = Counter(
            (e["source"].rsplit("/", 1)[1].removeprefix("alone-"), e["subject"], e["id"] is not None)
            for e in of_type(alone_events, routing_key)
        )
        assert ours == theirs, routing_key
    assert len(of_type(events, "soar.incident.upserted")) == 3 * 60

    rows = [r for r in await first.ingestor.states() if r["integration_id"] in integrations]
    for row in rows:
        assert row["lease_owner"] is None and row["lease_until"] is None  # every lease released
        assert row["last_error"] is None and row["last_success_at"] is not None
    incident_rows = [r for r in rows if r["resource"] == "incidents"]
    assert sorted(r["total_records"] for r in incident_rows) == [60, 60, 60]

    # A second round after SOC life: still each change once, whichever replica picks it up.
    for _ in range(3):
        await first.sim_post("/_sim/tick")
    for integration_id in integrations:
        await first.ingestor.trigger(integration_id)
    await asyncio.gather(first.sync(), second.sync())
    again = of_type(await tap.drain(), "soar.incident.upserted")
    assert not log.overlaps
    per_integration = Counter(e["source"].rsplit("/", 1)[1] for e in again)
    assert len(set(per_integration.values())) == 1 and per_integration["xsoar-a"] > 0
    assert max(Counter((e["source"], e["id"]) for e in again).values()) == 1
