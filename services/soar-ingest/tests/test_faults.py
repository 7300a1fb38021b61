"""Vendor faults are retried or recorded, never lose or repeat data: the cursor stays at the last
page the broker confirmed, and a resync after the fault delivers the rest exactly once."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest
from soc_shared.bus import PublishError
from soc_simulators import xsoar
from soc_simulators.faults import Fault


def of_type(events: list[dict[str, Any]], routing_key: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == f"soc.{routing_key}.v1"]


def incident_keys(events: list[dict[str, Any]]) -> Counter[tuple[tuple[str, str], int]]:
    # Ids are per account: (account, id) names an incident.
    return Counter(
        ((e["data"]["account"], e["data"]["incident_id"]), e["data"]["version"])
        for e in of_type(events, "soar.incident.upserted")
    )


def current_versions(state: xsoar.XsoarSim) -> Counter[tuple[tuple[str, str], int]]:
    return Counter((rec.key, rec.doc["version"]) for rec in state.records.values())


def acme_in_modified_order(state: xsoar.XsoarSim) -> list[xsoar.IncidentRecord]:
    return sorted((r for r in state.records.values() if r.account == "acme"), key=lambda r: r.modified_us)


class ArmAfter(httpx.AsyncBaseTransport):
    """Lets ``after`` incident searches through, then arms a fault on the simulator's board:
    a failure in the middle of a sync, after some pages were confirmed."""

    def __init__(self, sim: Any, after: int, fault: Fault) -> None:
        self.inner = httpx.ASGITransport(app=sim)
        self.board = sim.state.faults
        self.after, self.fault, self.searches = after, fault, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/incidents/search"):
            self.searches += 1
            if self.searches == self.after + 1:
                self.board.arm(self.fault)
        return await self.inner.handle_async_request(request)


async def test_retries_exhausted_mid_sync_keep_the_cursor_at_the_last_confirmed_page(
    make_harness, tap_factory
):
    sim = xsoar.create_app(seed=17)
    state: xsoar.XsoarSim = sim.state.sim
    transport = ArmAfter(sim, after=2, fault=Fault(kind="500", count=20, path="/incidents/search"))
    h = await make_harness(sim, transport=transport)
    tap = await tap_factory()
    integration_id = await h.add_integration(settings={"page_size": 50, "fetch_notes": False})

    await h.sync()
    events = await tap.drain()
    row = await h.state(integration_id, "incidents")
    assert row["last_error_category"] == "server_error" and row["consecutive_failures"] == 1
    # Two pages of acme (the first account) were confirmed: 50, then 49 new ones (each later page
    # starts at the boundary time again, ">=", and drops the incident it already has).
    confirmed = acme_in_modified_order(state)[:99]
    assert row["cursor"] == {
        "accounts": {"acme": {"modified": confirmed[-1].doc["modified"], "ids": [confirmed[-1].id]}}
    }
    assert sorted(incident_keys(events)) == sorted((r.key, r.doc["version"]) for r in confirmed)
    reports = [
        e["data"] for e in of_type(events, "ingest.sync.reported") if e["data"]["resource"] == "incidents"
    ]
    assert reports[-1]["outcome"] == "error" and reports[-1]["error_category"] == "server_error"

    await h.clear_faults()
    await h.sync(integration_id)
    events += await tap.drain()
    assert incident_keys(events) == current_versions(state)  # everything, each exactly once
    row = await h.state(integration_id, "incidents")
    assert row["last_error"] is None and row["consecutive_failures"] == 0


@pytest.mark.parametrize(
    ("fault", "path"),
    [
        (Fault(kind="429", count=2, retry_after=0), "/incidents/search"),
        (Fault(kind="503", count=2), "/incidents/search"),
        (Fault(kind="502", count=2), "/investigation/"),
        (Fault(kind="truncate", count=2), "/incidents/search"),
        (Fault(kind="garbage", count=2), "/investigation/"),
        (Fault(kind="500", count=2), "/accounts"),
        (Fault(kind="shift_page", count=3), "/incidents/search"),
    ],
)
async def test_transient_faults_are_retried_without_loss(make_harness, tap_factory, fault: Fault, path: str):
    sim = xsoar.create_app(seed=19, incidents=60)
    state: xsoar.XsoarSim = sim.state.sim
    h = await make_harness(sim)
    tap = await tap_factory()
    integration_id = await h.add_integration(settings={"page_size": 8})
    sim.state.faults.arm(fault.model_copy(update={"path": path}))

    await h.sync()
    events = await tap.drain()
    assert sim.state.faults.fired[fault.kind] >= 1
    for row in await h.ingestor.states(integration_id):
        assert row["last_error"] is None, row
    # shift_page adds incidents while we read: they are there too, every change exactly once.
    assert incident_keys(events) == current_versions(state)
    notes = Counter((e["data"]["account"], e["data"]["note_id"]) for e in of_type(events, "soar.note.added"))
    expected_notes = {
        (r.account, e.doc["id"]) for r in state.records.values() for e in state.entries_of(r) if e.doc["note"]
    }
    assert set(notes) == expected_notes and max(notes.values()) == 1


async def test_retry_after_is_honoured(make_harness, tap_factory):
    sim = xsoar.create_app(seed=19, incidents=20)
    h = await make_harness(sim)
    tap = await tap_factory(("soar.incident.upserted",))
    integration_id = await h.add_integration(settings={"fetch_notes": False})
    sim.state.faults.arm(Fault(kind="429", count=1, retry_after=1, path="/acc_acme/incidents/search"))
    started = time.monotonic()
    await h.sync()
    assert time.monotonic() - started >= 1.0
    assert len(await tap.drain()) == 20
    assert (await h.state(integration_id, "incidents"))["last_error"] is None


async def test_a_persistent_failure_is_recorded_and_recovers(make_harness, tap_factory):
    sim = xsoar.create_app(seed=23, incidents=60)
    state: xsoar.XsoarSim = sim.state.sim
    h = await make_harness(sim)
    tap = await tap_factory()
    integration_id = await h.add_integration()
    sim.state.faults.arm(Fault(kind="503", count=1000, path="/incidents/search"))

    await h.sync()
    await h.sync(integration_id)
    for resource in ("incidents", "notes"):
        row = await h.state(integration_id, resource)
        assert row["cursor"] is None and row["consecutive_failures"] == 2
        assert row["last_error_category"] == "server_error" and "503" in row["last_error"]
    assert (await h.state(integration_id, "accounts"))[
        "last_error"
    ] is None  # the other resource is unaffected
    events = await tap.drain()
    assert not of_type(events, "soar.incident.upserted")
    failed = [e["data"] for e in of_type(events, "ingest.sync.reported") if e["data"]["outcome"] == "error"]
    assert {r["resource"] for r in failed} == {"incidents", "notes"}
    assert max(r["consecutive_failures"] for r in failed) == 2

    await h.clear_faults()
    await h.sync(integration_id)
    assert incident_keys(await tap.drain()) == current_versions(state)
    assert all(r["consecutive_failures"] == 0 for r in await h.ingestor.states(integration_id))


async def test_a_war_room_failure_holds_back_notes_only(make_harness, tap_factory):
    sim = xsoar.create_app(seed=29, incidents=80)
    state: xsoar.XsoarSim = sim.state.sim
    h = await make_harness(sim)
    tap = await tap_factory()
    integration_id = await h.add_integration(settings={"page_size": 30})
    sim.state.faults.arm(Fault(kind="500", count=10_000, path="/investigation/"))

    await h.sync()
    events = await tap.drain()
    assert incident_keys(events) == current_versions(state)  # incidents flow regardless
    assert not of_type(events, "soar.note.added")
    notes_row = await h.state(integration_id, "notes")
    assert notes_row["last_error_category"] == "server_error" and notes_row["cursor"] is None

    await h.clear_faults()
    await h.sync(integration_id)
    notes = Counter(
        (e["data"]["account"], e["data"]["note_id"]) for e in of_type(await tap.drain(), "soar.note.added")
    )
    expected = {
        (r.account, e.doc["id"]) for r in state.records.values() for e in state.entries_of(r) if e.doc["note"]
    }
    assert set(notes) == expected and max(notes.values()) == 1


async def test_a_publish_failure_does_not_advance_the_cursor(make_harness, tap_factory):
    sim = xsoar.create_app(seed=31, incidents=200)
    state: xsoar.XsoarSim = sim.state.sim
    h = await make_harness(sim)
    tap = await tap_factory(("soar.#",))
    integration_id = await h.add_integration(
        settings={"page_size": 40, "fetch_notes": False, "accounts": ["acme"]}
    )
    real_publish = h.bus.publish
    pages = {"n": 0}

    async def failing_publish(events: Any, **kwargs: Any) -> None:
        if events and events[0].type == "soc.soar.incident.upserted.v1":
            pages["n"] += 1
            if pages["n"] == 2:  # the broker refuses the second page
                raise PublishError("1 of 40 events not confirmed: nack")
        await real_publish(events, **kwargs)

    h.bus.publish = failing_publish  # type: ignore[method-assign]
    await h.sync()
    row = await h.state(integration_id, "incidents")
    first_page = acme_in_modified_order(state)[:40]
    assert row["last_error_category"] == "bus"
    assert row["cursor"]["accounts"]["acme"]["modified"] == first_page[-1].doc["modified"]
    assert sorted(incident_keys(await tap.drain())) == sorted((r.key, r.doc["version"]) for r in first_page)

    h.bus.publish = real_publish  # type: ignore[method-assign]
    await h.sync(integration_id)
    rest = incident_keys(await tap.drain())
    acme = {(r.key, r.doc["version"]) for r in acme_in_modified_order(state)}
    assert set(rest) == acme - {(r.key, r.doc["version"]) for r in first_page} and max(rest.values()) == 1


async def test_a_hung_request_times_out_and_is_retried(make_harness, tap_factory, socket_sim):
    """On a real socket: the read timeout fires, the search (idempotent) is repeated."""
    h = await make_harness(socket_sim.app, network=True, timeout=httpx.Timeout(0.5, connect=2.0))
    tap = await tap_factory(("soar.incident.upserted",))
    integration_id = await h.add_integration(
        base_url=socket_sim.url, settings={"fetch_notes": False, "accounts": ["umbrella"]}
    )
    async with httpx.AsyncClient(base_url=socket_sim.url) as control:
        await control.post(
            "/_sim/faults",
            json={"kind": "hang", "count": 1, "hang_seconds": 2, "path": "/acc_umbrella/incidents/search"},
        )
        await h.sync()
        stats = (await control.get("/_sim/stats")).json()
        umbrella = (
            await control.post(
                "/acc_umbrella/incidents/search",
                headers={"Authorization": xsoar.API_KEY},
                json={"filter": {"page": 0, "size": 1}},
            )
        ).json()["total"]
    assert stats["fired"].get("hang") == 1
    assert (await h.state(integration_id, "incidents"))["last_error"] is None
    assert len(await tap.drain()) == umbrella
