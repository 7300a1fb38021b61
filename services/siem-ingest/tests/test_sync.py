"""Simulator → siem-ingest → RabbitMQ: every resource, incremental offenses, faults, publish
failures, Ariel timeouts and two replicas, counted on a queue bound to soc.events."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from soc_shared.bus import Bus, PublishError
from soc_siem_ingest.catalogue import CATALOGUE
from soc_siem_ingest.resources import RESOURCES
from soc_simulators.faults import Fault


def distinct(events: list[Any]) -> list[Any]:
    """Events as a consumer keeps them: one per event id (the overlap window re-reads offenses
    persisted just before the cursor; a re-read version has the same deterministic id)."""
    return list({e.id: e for e in events}.values())


def offense_versions(tap: Any, integration_id: str) -> list[tuple[int, int]]:
    return [
        (e.data["offense_id"], e.data["version"])
        for e in distinct(tap.of(integration_id, "siem.offense.upserted"))
    ]


def sim_versions(state: Any) -> set[tuple[int, int]]:
    return {(o["id"], o["last_persisted_time"]) for o in state.offenses.values()}


async def test_full_sync_publishes_every_resource(harness: Any, tap: Any) -> None:
    ingestor = harness.ingestor()
    integration = await harness.add_integration(ingestor)
    states = await harness.sync(ingestor, integration)
    await tap.settle()
    assert {s["resource"] for s in states} == {r.name for r in RESOURCES}
    assert all(s["last_error"] is None and s["last_success_at"] is not None for s in states), [
        (s["resource"], s["last_error"]) for s in states if s["last_error"]
    ]

    sim = harness.state
    count = Counter(e.type.removeprefix("soc.").removesuffix(".v1") for e in tap.of(integration))
    active = [d for d in sim.domains if not d["deleted"]]
    assert count["siem.domain.upserted"] == len(sim.domains)
    assert count["siem.event_collector.upserted"] == len(sim.event_collectors)
    assert count["siem.log_source_type.upserted"] == len(sim.log_source_types)
    assert count["siem.log_source_group.upserted"] == len(sim.log_source_groups)
    assert count["siem.log_source.upserted"] == len(sim.log_sources)
    assert count["siem.offense.upserted"] == len(sim.offenses)
    assert count["siem.eps.sampled"] == 2 * len(active)
    assert count["siem.metric.sampled"] == len(CATALOGUE) * len(active)

    assets = {e.data["log_source_id"]: e for e in tap.of(integration, "siem.log_source.upserted")}
    type_names = {t["id"]: t["name"] for t in sim.log_source_types}
    for raw in sim.log_sources:
        asset = assets[raw["id"]].data
        assert asset["type_name"] == type_names[raw["type_id"]]
        assert asset["sending_ip"] == raw["sending_ip"] and asset["group_ids"] == raw["group_ids"]
        assert asset["event_collector_id"] == raw["target_event_collector_id"]
    owner = {ls: d["id"] for d in active for ls in d["log_source_ids"]}
    assert all(
        e.data["domain_id"] == owner.get(i) and e.vendortenant == str(owner.get(i))
        for i, e in assets.items()
        if i in owner
    )

    offenses = tap.of(integration, "siem.offense.upserted")
    reasons = {r["id"]: r["text"] for r in sim.closing_reasons}
    for event in offenses:
        raw = sim.offenses[event.data["offense_id"]]
        assert (
            event.vendortenant == str(raw["domain_id"])
            and event.data["version"] == raw["last_persisted_time"]
        )
        assert event.data["closing_reason"] == reasons.get(raw["closing_reason_id"])
    eps = tap.of(integration, "siem.eps.sampled")
    assert {(e.data["domain_id"], e.data["granularity"]) for e in eps} == {
        (d["id"], g) for d in active for g in ("hour", "day")
    }
    # Peak = the busiest minute: above the average, but of the same order (per-minute buckets).
    assert all(
        5 * e.data["average_eps"] >= e.data["peak_eps"] >= e.data["average_eps"] > 0
        for e in eps
        if e.data["domain_id"] != 0
    )
    metrics = tap.of(integration, "siem.metric.sampled")
    assert {e.data["family"] for e in metrics} == {f.name for f in CATALOGUE}
    for event in metrics:
        family = next(f for f in CATALOGUE if f.name == event.data["family"])
        assert all(set(row) == set(family.columns) for row in event.data["rows"]), family.name
        for row in event.data["rows"]:
            assert all(isinstance(row[m], int | float) for m in family.measures), (family.name, row)
            assert all(isinstance(row[d], str | list | None) for d in family.dimensions), (family.name, row)
    assert not sim.searches, "every Ariel search was deleted"

    # Nothing new: a second run publishes no new offense version and computes no window twice.
    def siem_events() -> int:
        return sum(e.type.startswith("soc.siem.") for e in distinct(tap.of(integration)))

    before = siem_events()
    await harness.sync(ingestor, integration, "offenses")
    await harness.sync(ingestor, integration, "metric.suspicious_events")
    await tap.settle()
    assert siem_events() == before


async def test_analyst_assignment_follow_up_and_close_each_give_a_version(harness: Any, tap: Any) -> None:
    """On a console an analyst's action moves last_persisted_time only: each one still reaches the
    bus as a new version, although the offense's last_updated_time never moves."""
    sim = harness.state
    ingestor = harness.ingestor(["offenses"])
    integration = await harness.add_integration(ingestor)
    await harness.sync(ingestor, integration)
    offense = sim.new_offense(domain_id=2)
    await harness.sync(ingestor, integration)
    sim.analyst_change(offense, assigned_to="soc.l2.priya")
    await harness.sync(ingestor, integration)
    sim.analyst_change(offense, follow_up=True)
    await harness.sync(ingestor, integration)
    sim.add_note(offense, "escalated to the customer", "soc.l2.priya")
    sim.close_offense(offense, 54, "soc.l2.priya")
    await harness.sync(ingestor, integration)
    await tap.settle()

    versions = distinct(
        [e for e in tap.of(integration, "siem.offense.upserted") if e.data["offense_id"] == offense["id"]]
    )
    assert len(versions) == 4
    assert [e.data["version"] for e in versions] == sorted({e.data["version"] for e in versions})
    first, assigned, flagged, closed = (e.data for e in versions)
    assert len({v["last_updated_time"] for v in (first, assigned, flagged, closed)}) == 1
    assert (first["status"], first["assigned_to"], first["follow_up"]) == ("OPEN", None, False)
    assert (assigned["assigned_to"], assigned["follow_up"]) == ("soc.l2.priya", False)
    assert flagged["follow_up"] is True
    assert (
        closed["status"],
        closed["closing_reason_id"],
        closed["closing_reason"],
        closed["closing_user"],
    ) == (
        "CLOSED",
        54,
        "True Positive - Incident Raised",
        "soc.l2.priya",
    )
    assert closed["close_time"] is not None and all(e.vendortenant == "2" for e in versions)
    assert all(e.data["notes"] is None for e in versions)  # notes are their own resource


async def test_notes_are_read_where_they_can_have_changed(harness: Any, tap: Any, kit: Any) -> None:
    """Offense notes are their own resource: read for offenses whose last_persisted_time moved
    (a close with a note), and for open offenses by a sweep (a note added alone does not persist
    the offense) — never for every offense on every run."""
    sim = harness.state
    ingestor = harness.ingestor(["offenses", "offense_notes"])
    integration = await harness.add_integration(
        ingestor, settings={"offense_overlap_ms": 0, "notes_sweep_per_run": 0}
    )
    await harness.sync(ingestor, integration)
    await tap.settle()

    def notes_of(offense_id: int) -> list[list[str]]:
        return [
            [n["text"] for n in e.data["notes"]]
            for e in tap.of(integration, "siem.offense_notes.read")
            if e.data["offense_id"] == offense_id
        ]

    seeded = len(tap.of(integration, "siem.offense_notes.read"))
    assert seeded == len(sim.offenses)  # the first run reads every offense's notes once
    with_notes = next(i for i, n in sim.notes.items() if n)
    assert notes_of(with_notes)[-1] == [n["note_text"] for n in sim.notes[with_notes]]

    # nothing changed: no notes read at all
    await harness.sync(ingestor, integration)
    await tap.settle()
    assert len(tap.of(integration, "siem.offense_notes.read")) == seeded

    # a close with a note persists the offense: its notes are read, no other offense's
    offense = sim.new_offense(domain_id=2)
    await harness.sync(ingestor, integration)
    sim.add_note(offense, "escalated to the customer", "soc.l2.priya")
    sim.close_offense(offense, 54, "soc.l2.priya")
    await harness.sync(ingestor, integration)
    await tap.settle()
    assert notes_of(offense["id"]) == [[], ["escalated to the customer"]]
    assert len(tap.of(integration, "siem.offense_notes.read")) == seeded + 2
    state = await harness.state_of(ingestor, integration, "offense_notes")
    assert state["cursor"]["last_persisted_time"] == offense["last_persisted_time"]

    # a note alone on an open offense does not persist it: the sweep of open offenses finds it
    other = sim.new_offense(domain_id=2)
    await harness.sync(ingestor, integration)
    sim.add_note(other, "customer asked for a call", "soc.l1.sara")
    await harness.sync(ingestor, integration)
    await tap.settle()
    assert notes_of(other["id"]) == [[]]
    async with ingestor.db.session() as session:
        await ingestor.apply_integration(
            session,
            kit.change(integration, settings={"offense_overlap_ms": 0, "notes_sweep_per_run": 50}),
        )
    open_ids = sorted(i for i, r in sim.offenses.items() if r["status"] == "OPEN")
    for _ in range(len(open_ids) // 50 + 1):
        await harness.sync(ingestor, integration, "offense_notes")
    await tap.settle()
    assert notes_of(other["id"])[-1] == ["customer asked for a call"]


async def test_incremental_sync_sees_every_change_exactly_once(harness: Any, tap: Any) -> None:
    sim = harness.state
    ingestor = harness.ingestor(["offenses"])
    integration = await harness.add_integration(ingestor)
    await harness.sync(ingestor, integration)
    expected = len(sim.offenses)
    async with httpx.AsyncClient(transport=harness.transport(), base_url="http://qradar.sim") as control:
        for _ in range(4):
            change = (await control.post("/_sim/tick")).json()
            expected += len({*change["created"], *change["updated"], *change["closed"], *change["assigned"]})
            await harness.sync(ingestor, integration)
    await tap.settle()
    seen = offense_versions(tap, integration)
    assert len(seen) == len(set(seen)) == expected
    assert sim_versions(sim) <= set(seen)
    cursor = (await harness.state_of(ingestor, integration, "offenses"))["cursor"]
    assert cursor["last_persisted_time"] == max(o["last_persisted_time"] for o in sim.offenses.values())


async def test_every_fault_is_retried_and_nothing_is_lost(harness: Any, tap: Any) -> None:
    sim = harness.state
    board = harness.sim.state.faults
    ingestor = harness.ingestor(["offenses", "domains"])
    integration = await harness.add_integration(ingestor, settings={"page_size": 40})
    # The first round reads all offenses (several pages): new offenses land while we page.
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
        if fault.kind != "shift_page":
            sim.add_events(sim.offenses[min(sim.offenses)], event_count=1)  # something new to read this round
        board.arm(fault.model_copy(update={"path": "/api/siem/offenses"}))
        states = await harness.sync(ingestor, integration)
        assert all(s["last_error"] is None for s in states), (fault.kind, states)
        assert not board.armed(), fault.kind
    await tap.settle()
    seen = offense_versions(tap, integration)
    assert len(seen) == len(set(seen))
    assert sim_versions(sim) <= set(seen)
    assert board.fired["shift_page"] == 3  # each fault kind really fired
    assert {k: board.fired[k] for k in ("429", "500", "503", "truncate", "garbage")} == dict.fromkeys(
        ("429", "500", "503", "truncate", "garbage"), 2
    )


async def test_a_hanging_console_times_out_and_is_retried_over_real_sockets(
    harness: Any, tap: Any, socket_sim: Any
) -> None:
    app, url = socket_sim
    ingestor = harness.ingestor(["offenses"], network=True, timeout=httpx.Timeout(0.5, connect=1.0))
    integration = await harness.add_integration(ingestor, base_url=url, settings={"page_size": 15})
    app.state.faults.arm(Fault(kind="hang", count=2, hang_seconds=2, path="/api/siem/offenses"))
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error"] is None and app.state.faults.fired["hang"] == 2
    seen = offense_versions(tap, integration)
    assert len(seen) == len(set(seen)) == len(app.state.sim.offenses)


class ArmAfter(httpx.AsyncBaseTransport):
    """Passes requests to the simulator and arms a fault once ``after`` offense pages went through."""

    def __init__(self, inner: httpx.AsyncBaseTransport, board: Any, fault: Fault, after: int) -> None:
        self.inner, self.board, self.fault, self.after = inner, board, fault, after
        self.pages = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/siem/offenses":
            self.pages += 1
            if self.pages == self.after + 1:
                self.board.arm(self.fault)
        return await self.inner.handle_async_request(request)


async def test_exhausted_retries_keep_the_cursor_on_the_last_confirmed_page(harness: Any, tap: Any) -> None:
    sim = harness.state
    board = harness.sim.state.faults
    transport = ArmAfter(
        harness.transport(), board, Fault(kind="500", count=10_000, path="/api/siem/offenses"), after=3
    )
    ingestor = harness.ingestor(["offenses"], transport=transport)
    integration = await harness.add_integration(ingestor, settings={"page_size": 25})
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error_category"] == "server_error" and state["consecutive_failures"] == 1
    published = offense_versions(tap, integration)
    assert 0 < len(published) < len(sim.offenses)
    newest = max(sim.offenses[i]["last_persisted_time"] for i, _ in published)
    last_id = max(i for i, v in published if v == newest)
    assert state["cursor"] == {"last_persisted_time": newest, "id": last_id}
    assert state["total_records"] == len(published)

    board.clear()
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error"] is None and state["consecutive_failures"] == 0
    seen = offense_versions(tap, integration)
    assert len(seen) == len(set(seen)) == len(sim.offenses)


class NackingBus(Bus):
    """A real bus whose publishes fail (as a broker nack would) while ``failing`` is set."""

    failing = False
    calls = 0

    async def publish(self, events: Any, *, exchange: str | None = None) -> None:
        if any(e.type == "soc.siem.offense.upserted.v1" for e in events):
            self.calls += 1
            if self.failing and self.calls > 1:
                raise PublishError(f"0 of {len(events)} events confirmed (broker nack)")
        await super().publish(events, exchange=exchange)


async def test_publish_failure_does_not_advance_the_cursor(harness: Any, tap: Any) -> None:
    sim = harness.state
    bus = NackingBus(harness.settings.amqp_url.get_secret_value(), service="siem-ingest-tests-nack")
    bus.failing = True
    try:
        ingestor = harness.ingestor(["offenses"], bus=bus)
        integration = await harness.add_integration(ingestor, settings={"page_size": 50})
        [state] = await harness.sync(ingestor, integration)
        await tap.settle()
        assert state["last_error_category"] == "bus"
        first_page = offense_versions(tap, integration)
        assert len(first_page) == 50
        ordered = sorted(sim.offenses.values(), key=lambda o: (o["last_persisted_time"], o["id"]))
        assert state["cursor"] == {
            "last_persisted_time": ordered[49]["last_persisted_time"],
            "id": ordered[49]["id"],
        }

        bus.failing = False
        [state] = await harness.sync(ingestor, integration)
        await tap.settle()
        seen = offense_versions(tap, integration)
        assert state["last_error"] is None and len(seen) == len(set(seen)) == len(sim.offenses)
    finally:
        await bus.close()


async def test_ariel_timeout_cancels_the_search_and_is_recorded(harness: Any, tap: Any) -> None:
    sim = harness.state
    sim.ariel_delay = 30
    ingestor = harness.ingestor(["eps", "metric.total_events"])
    integration = await harness.add_integration(ingestor, settings={"ariel_timeout_seconds": 0.3})
    states = await harness.sync(ingestor, integration)
    assert {s["last_error_category"] for s in states} == {"timeout"}
    assert all(s["cursor"] is None and "cancelled" in s["last_error"] for s in states)
    assert not sim.searches, "timed-out searches are deleted on the console"
    sim.ariel_delay = 0.05
    states = await harness.sync(ingestor, integration)
    assert all(s["last_error"] is None and s["cursor"] for s in states)


async def test_two_replicas_share_the_work_and_never_run_the_same_resource_at_once(
    harness: Any, tap: Any
) -> None:
    running: set[tuple[str, str]] = set()
    overlaps: list[tuple[str, str]] = []
    runs: Counter[tuple[str, str]] = Counter()
    by_replica: Counter[str] = Counter()

    def replica(name: str) -> Any:
        ingestor = harness.ingestor(["offenses", "domains", "log_sources", "event_collectors"], concurrency=2)
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
    before = dict(harness.sim.state.faults.requests)
    while True:
        done = await asyncio.gather(first.run_due_once(), second.run_due_once())
        if not any(done):
            break
    await tap.settle()
    assert not overlaps
    assert set(runs) == {
        (i, r) for i in integrations for r in ("offenses", "domains", "log_sources", "event_collectors")
    }
    assert set(runs.values()) == {1}, "each (integration, resource) ran exactly once"
    assert by_replica["a"] > 0 and by_replica["b"] > 0
    for integration in integrations:
        assert len(distinct(tap.of(integration, "siem.offense.upserted"))) == len(harness.state.offenses)
        states = await first.states(integration)
        assert all(s["lease_owner"] is None and s["last_error"] is None for s in states)
    # The console saw one offense pass per integration, no more.
    after = harness.sim.state.faults.requests
    per_answer = min(harness.settings.page_size, 500)  # the console answers at most 500 at a time
    pages = -(-len(harness.state.offenses) // per_answer)
    assert after["/api/siem/offenses"] - before.get("/api/siem/offenses", 0) == 3 * pages


async def test_a_leased_resource_is_not_claimed_by_another_replica(harness: Any) -> None:
    first, second = harness.ingestor(["offenses"]), harness.ingestor(["offenses"])
    integration = await harness.add_integration(first)
    claimed = [r for r in await first.claim(10) if r["integration_id"] == integration]
    assert len(claimed) == 1 and claimed[0]["lease_owner"] == first.owner
    assert not [r for r in await second.claim(10) if r["integration_id"] == integration]
    await first.run_one(claimed[0])
    await first.trigger(integration)
    assert [r["integration_id"] for r in await second.claim(10)] == [integration]


async def test_a_malformed_offense_stops_the_run_before_it_and_is_read_once_fixed(
    harness: Any, tap: Any
) -> None:
    """Garbage in one record: the records in front of it are published, the cursor stays right
    before it (it neither vanishes nor is skipped), the sync state says bad_response, and the run
    backs off instead of looping; once the console answers it properly, it is read."""
    sim = harness.state
    ingestor = harness.ingestor(["offenses"])
    integration = await harness.add_integration(ingestor, settings={"page_size": 50})
    ordered = sorted(sim.offenses.values(), key=lambda o: (o["last_persisted_time"], o["id"]))
    broken = ordered[57]
    broken["severity"] = "very high"  # a console bug: a score that is not a number
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    seen = {i for i, _ in offense_versions(tap, integration)}
    assert state["last_error_category"] == "bad_response" and str(broken["id"]) in state["last_error"]
    assert seen == {o["id"] for o in ordered[:57]}
    assert state["cursor"] == {
        "last_persisted_time": ordered[56]["last_persisted_time"],
        "id": ordered[56]["id"],
    }
    assert state["consecutive_failures"] == 1 and state["next_run_at"] > state["last_started_at"]

    [state] = await harness.sync(ingestor, integration)  # still broken: no progress, no loss
    assert state["cursor"]["id"] == ordered[56]["id"] and state["consecutive_failures"] == 2

    sim.add_events(broken, severity=7)
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    seen = {i for i, _ in offense_versions(tap, integration)}
    assert state["last_error"] is None and seen == set(sim.offenses)


async def test_an_offense_changing_between_two_pages_is_neither_skipped_nor_lost(
    harness: Any, tap: Any
) -> None:
    sim = harness.state
    ordered = sorted(sim.offenses.values(), key=lambda o: (o["last_persisted_time"], o["id"]))

    class ChangeBetweenPages(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = harness.transport()
            self.pages = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            if request.url.path == "/api/siem/offenses":
                self.pages += 1
                if self.pages == 1:  # after the first page: one read and one unread offense change
                    sim.analyst_change(ordered[3], assigned_to="soc.l1.sara")
                    sim.close_offense(ordered[40], 1, "soc.l1.omar")
            return response

    transport = ChangeBetweenPages()
    ingestor = harness.ingestor(["offenses"], transport=transport)
    integration = await harness.add_integration(ingestor, settings={"page_size": 20})
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error"] is None and transport.pages > 2
    assert sim_versions(sim) <= set(offense_versions(tap, integration))


async def test_a_refused_token_is_a_credential_error_that_keeps_the_cursor_and_backs_off(
    harness: Any, tap: Any
) -> None:
    sim = harness.state
    ingestor = harness.ingestor(["offenses"])
    integration = await harness.add_integration(ingestor)
    [state] = await harness.sync(ingestor, integration)
    cursor = state["cursor"]
    assert state["last_error"] is None and cursor
    harness.default_credentials = {
        "credential_kind": "API_KEY",
        "secrets": {"api_key": "revoked"},
        "ca_pem": None,
    }
    sim.add_events(sim.offenses[min(sim.offenses)], event_count=1)
    requests_before = harness.sim.state.faults.requests["/api/siem/offense_closing_reasons"]
    [state] = await harness.sync(ingestor, integration)
    assert (
        state["last_error_category"] == "bad_credentials"
        and "QRadar rejected the credentials" in (state["last_error"])
    )
    assert state["cursor"] == cursor and state["consecutive_failures"] == 1
    assert state["next_run_at"] > state["last_started_at"]
    # a refused credential is not retried in line: one request, then the run backs off
    assert harness.sim.state.faults.requests["/api/siem/offense_closing_reasons"] == requests_before + 1
    await tap.settle()
    reports = [
        e.data
        for e in tap.events
        if e.type == "soc.ingest.sync.reported.v1" and e.data["integration_id"] == integration
    ]
    assert reports[-1]["error_category"] == "bad_credentials"


class AddressRequests(ArmAfter):
    """ArmAfter that also records each address-list request's number of ids."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("_addresses"):
            ids = request.url.params["filter"].removeprefix("id in (").removesuffix(")").split(",")
            self.asked.append((request.url.path.rsplit("/", 1)[-1], len(ids)))
        return await super().handle_async_request(request)


def expected_addresses(sim: Any, offense: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The addresses the console's address lists name for an offense's ids (the simulator's truth)."""
    return tuple(  # type: ignore[return-value]
        list(dict.fromkeys(sim.addresses[kind].rows[i - 1][0] for i in offense[f"{kind}_address_ids"]))
        for kind in ("source", "local_destination")
    )


async def test_offense_addresses_are_resolved_batched_cached_and_a_failed_resolution_keeps_the_cursor(
    harness: Any, tap: Any
) -> None:
    """Every published offense carries the addresses its ids name (a source-IP offense's source among
    them); ids go 100 at most per request and are not asked again in a later run; when the address
    lists keep failing, the run stops before the page it was resolving — what was published carries
    its addresses, the cursor is the last of it — and the next run publishes the rest."""
    sim = harness.state
    board = harness.sim.state.faults
    transport = AddressRequests(
        harness.transport(),
        board,
        Fault(kind="500", count=10_000, path="/api/siem/source_addresses"),
        after=3,
    )
    ingestor = harness.ingestor(["offenses"], transport=transport)
    integration = await harness.add_integration(ingestor, settings={"page_size": 25})
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error_category"] == "server_error", state
    published = {e.data["offense_id"]: e.data for e in distinct(tap.of(integration, "siem.offense.upserted"))}
    assert 0 < len(published) < len(sim.offenses)
    newest = max(sim.offenses[i]["last_persisted_time"] for i in published)
    assert state["cursor"] == {
        "last_persisted_time": newest,
        "id": max(i for i in published if sim.offenses[i]["last_persisted_time"] == newest),
    }

    board.clear()
    transport.after = 10**9
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error"] is None
    events = {e.data["offense_id"]: e.data for e in distinct(tap.of(integration, "siem.offense.upserted"))}
    assert set(events) == set(sim.offenses)
    for offense_id, data in events.items():
        raw = sim.offenses[offense_id]
        assert (data["source_addresses"], data["local_destination_addresses"]) == expected_addresses(sim, raw)
        if raw["offense_type"] == 0:
            assert data["source_addresses"][0] == raw["offense_source"]
    assert transport.asked and all(n <= 100 for _, n in transport.asked)
    assert {path for path, _ in transport.asked} == {"source_addresses", "local_destination_addresses"}

    # a later run re-reads a changed offense: its ids are known, the console is not asked again
    asked = len(transport.asked)
    sim.add_events(sim.offenses[min(sim.offenses)], event_count=1)
    [state] = await harness.sync(ingestor, integration)
    assert state["last_error"] is None and len(transport.asked) == asked


async def test_resources_switched_off_in_the_settings_get_no_run(harness: Any, tap: Any) -> None:
    """EPS off and one metric family chosen: the other 20 families and EPS are never claimed
    (not a run per interval that returns at once)."""
    ingestor = harness.ingestor()
    family = CATALOGUE[0]
    integration = await harness.add_integration(
        ingestor, settings={"eps_enabled": False, "metric_families": [family.name]}
    )
    states = {s["resource"]: s for s in await harness.sync(ingestor, integration)}
    off = {"eps", *(f.resource for f in CATALOGUE if f is not family)}
    assert {r for r, s in states.items() if not s["enabled"]} == off
    assert all(states[r]["last_started_at"] is None for r in off)
    assert all(s["last_success_at"] is not None for r, s in states.items() if r not in off)
    await tap.settle()
    reported = {e.data["resource"] for e in tap.of(integration, "ingest.sync.reported")}
    assert not reported & off and family.resource in reported
    assert {e.data["family"] for e in tap.of(integration, "siem.metric.sampled")} == {family.name}
    assert not tap.of(integration, "siem.eps.sampled")


async def test_kept_credentials_are_replaced_by_a_rotation_on_the_next_run(harness: Any, tap: Any) -> None:
    """One client per integration serves its runs; a rotation (a new credentials version) is used
    by the next run, and refused credentials are fetched again by the run after."""
    sim = harness.state
    ingestor = harness.ingestor(["offenses", "domains"], keep_clients=True)
    fetched: list[str] = []
    original = ingestor.credentials

    async def counting(integration_id: str) -> dict[str, Any]:
        fetched.append(integration_id)
        return await original(integration_id)

    ingestor.credentials = counting
    integration = await harness.add_integration(ingestor)
    await harness.sync(ingestor, integration)
    await harness.sync(ingestor, integration)
    assert fetched == [integration]  # four runs, one fetch

    harness.default_credentials = {"credential_kind": "API_KEY", "secrets": {"api_key": "revoked"}}
    rotated = harness.change(integration).model_copy(update={"credentials_version": 2})
    async with ingestor.db.session() as session:
        await ingestor.apply_integration(session, rotated)
    sim.add_events(sim.offenses[min(sim.offenses)], event_count=1)
    await harness.sync(ingestor, integration, "offenses")
    state = await harness.state_of(ingestor, integration, "offenses")
    assert state["last_error_category"] == "bad_credentials" and len(fetched) == 2

    harness.default_credentials = None  # fixed at the tenant; no change announced
    await harness.sync(ingestor, integration, "offenses")
    state = await harness.state_of(ingestor, integration, "offenses")
    assert state["last_error"] is None and len(fetched) == 3
    await tap.settle()
    assert sim_versions(sim) <= set(offense_versions(tap, integration))
    await ingestor.stop()
