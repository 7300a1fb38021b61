"""Simulator → itsm-ingest → RabbitMQ: accounts and tickets, incremental tickets across ticks,
faults, exhausted retries, publish failures and two replicas, counted on a queue bound to
soc.events."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from soc_shared.bus import Bus, PublishError
from soc_simulators.faults import Fault
from soc_simulators.sdp import ACCOUNTS, UDF_SOAR_ID

REQUESTS = "/api/v3/requests"


def ticket_versions(tap: Any, integration_id: str) -> list[tuple[str, int]]:
    return [(e.data["ticket_id"], e.data["version"]) for e in tap.of(integration_id, "itsm.ticket.upserted")]


def sim_versions(state: Any) -> set[tuple[str, int]]:
    return {(rec.id, rec.updated_ms) for rec in state.records.values()}


async def test_full_sync_publishes_accounts_and_every_ticket_normalised(harness: Any, tap: Any) -> None:
    ingestor = harness.ingestor()
    integration = await harness.add_integration(ingestor)
    states = await harness.sync(ingestor, integration)
    await tap.settle()
    assert {s["resource"] for s in states} == {"accounts", "tickets"}
    assert all(s["last_error"] is None and s["last_success_at"] is not None for s in states), states

    accounts = {e.data["account_id"]: e for e in tap.of(integration, "itsm.account.upserted")}
    assert {a: e.data["name"] for a, e in accounts.items()} == {a.id: a.name for a in ACCOUNTS}
    assert all(
        e.vendortenant == a and e.source == f"/itsm-ingest/sdp/{integration}" for a, e in accounts.items()
    )

    sim = harness.state
    tickets = tap.of(integration, "itsm.ticket.upserted")
    assert len(tickets) == len(sim.records) == len({e.data["ticket_id"] for e in tickets})
    names = {a.id: a.name for a in ACCOUNTS}
    linked = 0
    for event in tickets:
        doc = sim.records[event.data["ticket_id"]].doc
        data = event.data
        assert event.subject == doc["id"] and event.vendortenant == doc["account"]["id"]
        assert data["version"] == int(doc["last_updated_time"]["value"])
        assert (data["subject"], data["status"], data["priority"]) == (
            doc["subject"],
            doc["status"]["name"],
            doc["priority"]["name"],
        )
        assert (data["account_id"], data["account_name"]) == (
            doc["account"]["id"],
            names[doc["account"]["id"]],
        )
        assert (
            data["short_description"] == doc["short_description"] and data["is_overdue"] == doc["is_overdue"]
        )
        assert data["created_by_name"] == doc["created_by"]["name"]
        assert data["soar_incident_id"] == doc["udf_fields"][UDF_SOAR_ID]
        linked += data["soar_incident_id"] is not None
    assert linked > 0, "the history links tickets to XSOAR incidents"

    before = len(tickets)
    await harness.sync(ingestor, integration, "tickets")  # nothing changed: nothing published
    await tap.settle()
    assert len(tap.of(integration, "itsm.ticket.upserted")) == before


async def test_incremental_sync_sees_every_change_exactly_once(harness: Any, tap: Any) -> None:
    sim = harness.state
    ingestor = harness.ingestor(["tickets"])
    integration = await harness.add_integration(ingestor, settings={"page_size": 40})
    await harness.sync(ingestor, integration)
    expected = len(sim.records)
    async with harness.control() as control:
        for _ in range(5):
            change = (await control.post("/_sim/tick")).json()
            touched = set(change["created"]) | set(change["status_changed"]) | set(change["overdue_changed"])
            expected += len(touched)
            await harness.sync(ingestor, integration)
    await tap.settle()
    seen = ticket_versions(tap, integration)
    assert len(seen) == len(set(seen)) == expected
    assert sim_versions(sim) <= set(seen)
    cursor = (await harness.state_of(ingestor, integration, "tickets"))["cursor"]
    newest = max(sim.records.values(), key=lambda r: r.updated_ms)
    assert cursor == {"last_updated_time": newest.updated_ms, "ids": [newest.id]}


async def test_every_fault_is_retried_and_nothing_is_lost(harness: Any, tap: Any) -> None:
    sim = harness.state
    board = harness.board
    ingestor = harness.ingestor(["tickets", "accounts"])
    integration = await harness.add_integration(ingestor, settings={"page_size": 50})
    async with harness.control() as control:
        # shift_page first: it fires once per page, and only the first (full) run has many pages.
        for fault in (
            Fault(kind="shift_page", count=3),
            Fault(kind="429", count=2, retry_after=0),
            Fault(kind="500", count=2),
            Fault(kind="502", count=1),
            Fault(kind="503", count=2, retry_after=0),
            Fault(kind="truncate", count=2),
            Fault(kind="garbage", count=2),
            Fault(kind="hang", count=1, hang_seconds=0.2),
        ):
            board.arm(fault.model_copy(update={"path": REQUESTS}))
            states = await harness.sync(ingestor, integration)
            assert all(s["last_error"] is None for s in states), (fault.kind, states)
            assert not board.armed(), fault.kind
            await control.post("/_sim/tick")  # something new for the next round
    await harness.sync(ingestor, integration)
    await tap.settle()
    seen = ticket_versions(tap, integration)
    assert len(seen) == len(set(seen))
    assert sim_versions(sim) <= set(seen)
    assert board.fired["shift_page"] == 3  # each fault kind really fired
    assert {k: board.fired[k] for k in ("429", "500", "503", "truncate", "garbage")} == dict.fromkeys(
        ("429", "500", "503", "truncate", "garbage"), 2
    )


class ArmAfter(httpx.AsyncBaseTransport):
    """Passes requests to the simulator and arms a fault once ``after`` ticket pages went through."""

    def __init__(self, inner: httpx.AsyncBaseTransport, board: Any, fault: Fault, after: int) -> None:
        self.inner, self.board, self.fault, self.after = inner, board, fault, after
        self.pages = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == REQUESTS:
            self.pages += 1
            if self.pages == self.after + 1:
                self.board.arm(self.fault)
        return await self.inner.handle_async_request(request)


async def test_exhausted_retries_keep_the_cursor_on_the_last_confirmed_page(harness: Any, tap: Any) -> None:
    sim = harness.state
    board = harness.board
    transport = ArmAfter(harness.transport(), board, Fault(kind="500", count=20, path=REQUESTS), after=3)
    ingestor = harness.ingestor(["tickets"], transport=transport)
    integration = await harness.add_integration(ingestor, settings={"page_size": 25})
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error_category"] == "server_error" and state["consecutive_failures"] == 1
    published = ticket_versions(tap, integration)
    # Pages 1-3 were published (page 4 was prefetched while page 3 was published, then failed).
    assert 0 < len(published) < len(sim.records)
    newest = max(v for _, v in published)
    assert state["cursor"]["last_updated_time"] == newest
    assert set(state["cursor"]["ids"]) == {i for i, v in published if v == newest}
    assert state["total_records"] == len(published)

    board.clear()
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error"] is None and state["consecutive_failures"] == 0
    seen = ticket_versions(tap, integration)
    assert len(seen) == len(set(seen)) == len(sim.records)


class NackingBus(Bus):
    """A real bus whose publishes fail (as a broker nack would) while ``failing`` is set."""

    failing = False
    calls = 0

    async def publish(self, events: Any, *, exchange: str | None = None) -> None:
        if any(e.type == "soc.itsm.ticket.upserted.v1" for e in events):
            self.calls += 1
            if self.failing and self.calls > 1:
                raise PublishError(f"0 of {len(events)} events confirmed (broker nack)")
        await super().publish(events, exchange=exchange)


async def test_publish_failure_does_not_advance_the_cursor(harness: Any, tap: Any) -> None:
    sim = harness.state
    bus = NackingBus(harness.settings.amqp_url.get_secret_value(), service="itsm-ingest-tests-nack")
    bus.failing = True
    try:
        ingestor = harness.ingestor(["tickets"], bus=bus)
        integration = await harness.add_integration(ingestor, settings={"page_size": 50})
        [state] = await harness.sync(ingestor, integration)
        await tap.settle()
        assert state["last_error_category"] == "bus"
        first_page = ticket_versions(tap, integration)
        assert len(first_page) == 50
        ordered = sorted(sim.records.values(), key=lambda r: (r.updated_ms, r.id))
        assert state["cursor"] == {"last_updated_time": ordered[49].updated_ms, "ids": [ordered[49].id]}

        bus.failing = False
        [state] = await harness.sync(ingestor, integration)
        await tap.settle()
        seen = ticket_versions(tap, integration)
        assert state["last_error"] is None and len(seen) == len(set(seen)) == len(sim.records)
    finally:
        await bus.close()


async def test_two_replicas_share_the_work_and_never_run_the_same_resource_at_once(
    harness: Any, tap: Any
) -> None:
    running: set[tuple[str, str]] = set()
    overlaps: list[tuple[str, str]] = []
    runs: Counter[tuple[str, str]] = Counter()
    by_replica: Counter[str] = Counter()

    def replica(name: str) -> Any:
        ingestor = harness.ingestor(concurrency=2)
        original = ingestor.run_one

        async def run_one(row: dict[str, Any]) -> None:
            key = (row["integration_id"], row["resource"])
            if key in running:
                overlaps.append(key)
            running.add(key)
            runs[key] += 1
            by_replica[name] += 1
            try:
                await asyncio.sleep(0.01)  # widen the window in which a second claim could collide
                await original(row)
            finally:
                running.discard(key)

        ingestor.run_one = run_one  # type: ignore[method-assign]
        return ingestor

    first, second = replica("a"), replica("b")
    integrations = [await harness.add_integration(first) for _ in range(3)]
    before = dict(harness.board.requests)
    while True:
        done = await asyncio.gather(first.run_due_once(), second.run_due_once())
        if not any(done):
            break
    await tap.settle()
    assert not overlaps
    assert set(runs) == {(i, r) for i in integrations for r in ("accounts", "tickets")}
    assert set(runs.values()) == {1}, "each (integration, resource) ran exactly once"
    assert by_replica["a"] > 0 and by_replica["b"] > 0
    for integration in integrations:
        seen = ticket_versions(tap, integration)
        assert len(seen) == len(set(seen)) == len(harness.state.records)
        states = await first.states(integration)
        assert all(s["lease_owner"] is None and s["last_error"] is None for s in states)
    # SDP saw one ticket pass per integration, no more: keyset pages re-read one request each.
    pages = -(-len(harness.state.records) // 99)
    after = harness.board.requests
    assert after[REQUESTS] - before.get(REQUESTS, 0) in range(3 * pages, 3 * (pages + 1) + 1)


async def test_a_leased_resource_is_not_claimed_by_another_replica(harness: Any) -> None:
    first, second = harness.ingestor(["tickets"]), harness.ingestor(["tickets"])
    integration = await harness.add_integration(first)
    claimed = [r for r in await first.claim(10) if r["integration_id"] == integration]
    assert len(claimed) == 1 and claimed[0]["lease_owner"] == first.owner
    assert not [r for r in await second.claim(10) if r["integration_id"] == integration]
    await first.run_one(claimed[0])
    await first.trigger(integration)
    assert [r["integration_id"] for r in await second.claim(10)] == [integration]


async def test_read_ahead_keeps_order_surfaces_a_failure_late_and_cleans_up() -> None:
    from soc_itsm_ingest.resources import read_ahead

    produced: list[int] = []
    closed: list[bool] = []

    async def source(fail_at: int | None = None) -> Any:
        try:
            for i in range(5):
                if i == fail_at:
                    raise RuntimeError(f"page {i} failed")
                produced.append(i)
                yield i
        finally:
            closed.append(True)

    assert [i async for i in read_ahead(source())] == [0, 1, 2, 3, 4]

    produced.clear()
    got: list[int] = []
    try:
        async for i in read_ahead(source(fail_at=2)):
            got.append(i)
            await asyncio.sleep(0.01)  # page 2 is attempted (and fails) while page 1 is handled
    except RuntimeError as exc:
        assert str(exc) == "page 2 failed"
    assert got == [0, 1], "the failure surfaces only after page 1 was handed out and taken"

    produced.clear()
    closed.clear()
    stream = read_ahead(source())
    assert await anext(stream) == 0
    await asyncio.sleep(0.01)
    await stream.aclose()  # the consumer stops early (e.g. a publish failed)
    assert produced == [0, 1] and closed == [True], "one item read ahead, then the source was closed"
