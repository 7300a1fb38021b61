"""Simulator → soar-ingest → RabbitMQ: every incident change and every note arrives exactly once
across several runs with simulated SOC life in between, and an incident's lifecycle arrives in
order and complete."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import httpx
from soc_simulators import xsoar
from soc_soar_ingest.resources import client_for

SIM_URL = "http://xsoar.sim"
V8 = {
    "credential_kind": "API_KEY",
    "secrets": {"api_key": xsoar.API_KEY_V8, "api_key_id": xsoar.API_KEY_V8_ID},
    "ca_pem": None,
}


def of_type(events: list[dict[str, Any]], routing_key: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == f"soc.{routing_key}.v1"]


def sim_notes(sim_state: xsoar.XsoarSim) -> set[tuple[str, str]]:
    """(account, entry id) of every note in every war room, as the simulator holds them."""
    return {
        (rec.account, entry.doc["id"])
        for rec in sim_state.records.values()
        for entry in sim_state.entries_of(rec)
        if entry.doc["note"]
    }


def sim_versions(sim_state: xsoar.XsoarSim) -> dict[tuple[str, str], int]:
    # Ids are per account on a multi-tenant master: (account, id) names an incident.
    return {rec.key: rec.doc["version"] for rec in sim_state.records.values()}


async def test_every_change_and_note_arrives_exactly_once_across_runs(make_harness, tap_factory):
    sim = xsoar.create_app(seed=3, incidents=300)
    state: xsoar.XsoarSim = sim.state.sim
    h = await make_harness(sim)
    tap = await tap_factory()
    integration_id = await h.add_integration(settings={"page_size": 40})

    await h.sync()
    events = await tap.drain()
    accounts = of_type(events, "soar.account.upserted")
    assert sorted(e["data"]["name"] for e in accounts) == ["acme", "globex", "initech", "umbrella"]
    assert {e["data"]["account_id"] for e in accounts} == {
        "acc_acme",
        "acc_globex",
        "acc_initech",
        "acc_umbrella",
    }
    incidents = of_type(events, "soar.incident.upserted")
    assert len(incidents) == len(state.records) == 300
    assert {
        ((e["data"]["account"], e["data"]["incident_id"]), e["data"]["version"]) for e in incidents
    } == set(sim_versions(state).items())
    # Every account numbers from 1: the same ids arrive for several accounts, as distinct incidents.
    assert sum(1 for e in incidents if e["data"]["incident_id"] == "1") == 4
    assert len({e["id"] for e in incidents}) == len(incidents)
    assert all(e["subject"] == f"{e['data']['account']}/{e['data']['incident_id']}" for e in incidents)
    assert all(
        e["vendortenant"] == e["data"]["account"]
        and (e["data"]["account"], e["data"]["incident_id"]) in state.records
        for e in incidents
    )
    notes = of_type(events, "soar.note.added")
    assert {(e["data"]["account"], e["data"]["note_id"]) for e in notes} == sim_notes(state)
    assert len(notes) == len(sim_notes(state))
    account_ids = {e["id"] for e in accounts}
    seen_ids = Counter(e["id"] for e in incidents + notes)

    for _ in range(3):
        before = sim_versions(state)
        notes_before = sim_notes(state)
        for _ in range(2):
            await h.sim_post("/_sim/tick")
        await h.sync(integration_id)
        events = await tap.drain()
        after = sim_versions(state)
        changed = {(i, v) for i, v in after.items() if before.get(i) != v}
        assert changed, "the ticks changed nothing"
        got = [
            ((e["data"]["account"], e["data"]["incident_id"]), e["data"]["version"])
            for e in of_type(events, "soar.incident.upserted")
        ]
        # Two ticks between runs: an incident changed twice arrives once, at its latest version.
        assert sorted(got) == sorted(changed)
        got_notes = [(e["data"]["account"], e["data"]["note_id"]) for e in of_type(events, "soar.note.added")]
        assert sorted(got_notes) == sorted(sim_notes(state) - notes_before)
        seen_ids.update(
            e["id"] for e in of_type(events, "soar.incident.upserted") + of_type(events, "soar.note.added")
        )
        # Accounts are a snapshot, listed again each run: unchanged, they keep their event ids.
        assert {e["id"] for e in of_type(events, "soar.account.upserted")} == account_ids

    assert max(seen_ids.values()) == 1
    states = await h.ingestor.states(integration_id)
    assert {s["resource"] for s in states} == {"accounts", "incidents", "notes"}
    assert all(s["last_error"] is None and s["consecutive_failures"] == 0 for s in states), states
    cursor = (await h.state(integration_id, "incidents"))["cursor"]
    assert sorted(cursor["accounts"]) == ["acme", "globex", "initech", "umbrella"]


async def test_nothing_changed_publishes_nothing(make_harness, tap_factory):
    sim = xsoar.create_app(seed=4, incidents=50)
    h = await make_harness(sim)
    tap = await tap_factory(("soar.#",))
    integration_id = await h.add_integration()
    await h.sync()
    assert len(of_type(await tap.drain(), "soar.incident.upserted")) == 50
    await h.sync(integration_id)
    events = await tap.drain()
    assert [e["type"] for e in events] == [
        "soc.soar.account.upserted.v1"
    ] * 4  # accounts are re-listed, nothing else


async def test_incident_lifecycle_arrives_in_order_and_complete(make_harness, tap_factory, settings):
    sim = xsoar.create_app(seed=5, incidents=40)
    state: xsoar.XsoarSim = sim.state.sim
    h = await make_harness(sim)
    tap = await tap_factory(("soar.#",))
    integration_id = await h.add_integration(credentials=V8, settings={"auth_style": "xsoar8"})
    await h.sync()
    await tap.drain()

    # The enrichment flow opens an incident in acme's account through the client.
    client = client_for(
        {"id": "enrichment", "base_url": SIM_URL, "settings": {"auth_style": "xsoar8"}},
        V8,
        settings,
        transport=httpx.ASGITransport(app=sim),
    )
    try:
        created = await client.create_incident(
            "acme",
            {
                "name": "Suspicious PowerShell on acme-wks07",
                "type": "Malware",
                "severity": 3,
                "createInvestigation": True,
                "CustomFields": {
                    "incidentpriority": "P2",
                    "offenseid": "4711",
                    "sourceips": ["10.1.2.3"],
                    "mitretactics": "Execution",
                },
            },
        )
    finally:
        await client.aclose()
    rec = state.records[("acme", created["id"])]
    assert rec.account == "acme"
    rng = random.Random(1)
    expected: list[tuple[int, str, int]] = []  # (version, phase, status) as each sync saw it

    async def sync_and_remember() -> None:
        doc = rec.doc
        if not expected or expected[-1][0] != doc["version"]:
            expected.append((doc["version"], doc["CustomFields"]["incidentphase"], doc["status"]))
        await h.sync(integration_id)

    await sync_and_remember()
    for _ in range(12):
        if rec.doc["status"] == 2:
            break
        state.advance(rng, rec)
        if rec.doc["status"] != 2:
            state.add_note(rng, rec)
        await h.sim_post("/_sim/tick")  # the rest of the SOC keeps working (and may touch this one too)
        await sync_and_remember()
    assert rec.doc["status"] == 2, "the incident never closed"

    events = await tap.drain()
    mine = [
        e["data"]
        for e in of_type(events, "soar.incident.upserted")
        if (e["data"]["account"], e["data"]["incident_id"]) == rec.key
    ]
    assert [(d["version"], d["phase"]) for d in mine] == [(v, p) for v, p, _ in expected]
    assert [d["status"] for d in mine] == [
        {0: "pending", 1: "active", 2: "closed"}[s] for _, _, s in expected
    ]
    assert mine[0]["phase"] == "Detection" and mine[-1]["phase"] == "Closure"
    assert all(d["closed"] is None for d in mine[:-1])
    last = mine[-1]
    assert last["status"] == "closed" and last["closed"] is not None and last["close_reason"]
    assert last["offense_ids"] == [4711] and last["priority"] == "P2" and last["severity"] == "high"
    assert last["source_ips"] == ["10.1.2.3"] and last["mitre_tactics"] == ["Execution"]
    assert last["account"] == "acme" and last["name"] == "Suspicious PowerShell on acme-wks07"
    assert last["tta_at"] is None or last["tta_at"] >= mine[0]["created"]

    war_room = [entry.doc for entry in state.entries_of(rec) if entry.doc["note"]]
    notes = [
        e["data"]
        for e in of_type(events, "soar.note.added")
        if (e["data"]["account"], e["data"]["incident_id"]) == rec.key
    ]
    assert war_room, "no notes were written"
    assert [n["note_id"] for n in notes] == [entry["id"] for entry in war_room]  # complete, in order
    assert [n["content"] for n in notes] == [entry["contents"] for entry in war_room]
    assert all(n["author"] and n["account"] == "acme" and n["category"] == "chat" for n in notes)


async def test_an_overlap_window_rereads_with_the_same_event_ids(make_harness, tap_factory):
    """For servers whose index shows changes late: the window before the cursor is read again;
    what was already published comes again under the same event id, so consumers drop it."""
    sim = xsoar.create_app(seed=6, incidents=30)
    h = await make_harness(sim)
    tap = await tap_factory(("soar.incident.upserted",))
    integration_id = await h.add_integration(settings={"overlap_seconds": 3600, "fetch_notes": False})
    await h.sync()
    first = {e["id"]: e for e in await tap.drain()}
    assert len(first) == 30
    await h.sim_post("/_sim/tick")
    await h.sync(integration_id)
    second = await tap.drain()
    changed = [e for e in second if e["id"] not in first]
    reread = [e for e in second if e["id"] in first]
    assert changed and reread
    assert all(e["data"] == first[e["id"]]["data"] for e in reread)
