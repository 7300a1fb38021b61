"""XSOAR actions on command against the simulator: what XSOAR receives, exactly once per
idempotency key (also when an answer is lost), vendor faults retried with backoff, failures
recorded and published, and the change coming back through the normal incident sync."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from soc_shared.events import ActionRequested, make_event
from soc_simulators import xsoar

from .conftest import of_type

ESCALATE = "xsoar.offense.escalate"


def command(
    integration_id: str, account: str, action: str, params: dict[str, Any], **kw: Any
) -> ActionRequested:
    return ActionRequested(
        command_id=kw.get("command_id") or str(uuid.uuid4()),
        idempotency_key=kw.get("key") or uuid.uuid4().hex,
        action=action,  # type: ignore[arg-type]
        integration_id=integration_id,
        vendor_tenant=account,
        company_id=str(uuid.uuid4()),
        requested_by=kw.get("requested_by") or "analyst-1",
        requested_by_name="analyst.one",
        params=params,
        requested_at=datetime.now(UTC),
    )


def escalation(offense_id: int) -> dict[str, Any]:
    return {
        "offense_id": offense_id,
        "qradar_integration_id": "qradar-1",
        "name": f"Escalated offense {offense_id}",
        "details": "Brute force from 10.1.2.3",
        "severity": 3,
        "owner": "soc.analyst",
    }


def by_offense(sim: Any, account: str, offense_id: int) -> list[dict[str, Any]]:
    return [
        rec.doc
        for (acc, _), rec in sim.state.sim.records.items()
        if acc == account and rec.doc["CustomFields"].get("offenseid") == str(offense_id)
    ]


async def started(make_harness: Any, **sim_config: Any) -> tuple[Any, Any, str, str]:
    sim = xsoar.create_app(seed=31, incidents=30, **sim_config)
    harness = await make_harness(sim)
    integration_id = await harness.add_integration()
    account = sorted(sim.state.sim.accounts)[0]
    runner = harness.app.state.actions
    runner.retry_base_seconds = 0.01  # backoffs elapse at once; the reconciler is driven by hand
    return harness, sim, integration_id, account


async def settle(runner: Any, command_id: str) -> dict[str, Any]:
    """Drive the reconciler until the action is final."""
    for _ in range(200):
        rows = await runner.rows(command_id=command_id)
        if rows and rows[0]["state"] != "pending":
            return rows[0]
        await asyncio.sleep(0.03)
        await runner.reconcile_once()
    raise AssertionError(f"action {command_id} still pending: {rows}")


async def test_escalation_creates_one_incident_linked_to_the_offense(make_harness, tap_factory):
    harness, sim, integration_id, account = await started(make_harness)
    runner = harness.app.state.actions
    tap = await tap_factory(("soar.action.completed", "soar.incident.upserted"))
    cmd = command(integration_id, account, ESCALATE, escalation(90001), key="esc-1")
    assert await runner.handle(cmd) == "succeeded"

    # What XSOAR received: POST /acc_<account>/incident with the offense where the QRadar fetch puts it.
    [doc] = by_offense(sim, account, 90001)
    assert doc["name"] == "Escalated offense 90001"
    assert doc["severity"] == 3 and doc["owner"] == "soc.analyst"
    assert {"type": "offense_id", "value": "90001"} in doc["labels"]
    assert {"type": "soc_command_id", "value": cmd.command_id} in doc["labels"]
    assert doc["status"] == 1  # createInvestigation started it

    # The same key again (a retried request, a redelivered command): nothing more is created, the
    # recorded outcome is published again.
    again = command(integration_id, account, ESCALATE, escalation(90001), key="esc-1")
    assert await runner.handle(again) == "succeeded"
    assert await runner.handle(cmd) == "succeeded"
    assert len(by_offense(sim, account, 90001)) == 1
    events = await tap.drain()
    outcomes = [e["data"] for e in of_type(events, "soar.action.completed")]
    assert len(outcomes) == 3 and {o["command_id"] for o in outcomes} == {cmd.command_id}
    assert outcomes[0]["status"] == "succeeded" and outcomes[0]["result"]["incident_id"] == doc["id"]

    # The new incident comes back through the normal sync, carrying the offense id.
    await harness.sync(integration_id)
    synced = [e["data"] for e in of_type(await tap.drain(), "soar.incident.upserted")]
    mine = [i for i in synced if i["incident_id"] == doc["id"] and i["account"] == account]
    assert mine and 90001 in mine[-1]["offense_ids"] and mine[-1]["owner"] == "soc.analyst"


async def test_a_create_whose_answer_was_lost_is_not_made_twice(make_harness):
    harness, sim, integration_id, account = await started(make_harness)
    runner = harness.app.state.actions
    # XSOAR creates the incident, then the answer is lost (a 500 after the work).
    await harness.sim_post("/_sim/faults", {"kind": "500_after", "path": "/incident", "method": "POST"})
    cmd = command(integration_id, account, ESCALATE, escalation(90002))
    assert await runner.handle(cmd) == "pending"
    row = await settle(runner, cmd.command_id)
    assert row["state"] == "succeeded" and row["result"]["adopted"] is True
    assert row["attempts"] == 2
    assert len(by_offense(sim, account, 90002)) == 1


async def test_update_and_close_reach_xsoar_and_come_back_through_the_sync(make_harness, tap_factory):
    harness, sim, integration_id, account = await started(make_harness)
    runner = harness.app.state.actions
    records = sim.state.sim.records
    rec = next(r for (acc, _), r in records.items() if acc == account and r.status != 2)
    version = rec.doc["version"]
    update = {"incident_id": rec.id, "owner": "jane.doe", "severity": 4}
    assert (
        await runner.handle(command(integration_id, account, "xsoar.incident.update", update)) == "succeeded"
    )
    assert rec.doc["owner"] == "jane.doe" and rec.doc["severity"] == 4
    assert rec.doc["version"] == version + 1

    # Closing goes through batchClose with the reason and notes; XSOAR answers 503 twice first.
    await harness.sim_post("/_sim/faults", {"kind": "503", "path": "/incident/batchClose", "count": 4})
    close = {
        "incident_id": rec.id,
        "status": "closed",
        "close_reason": "False Positive",
        "close_notes": "Scanner of the customer's IT",
    }
    cmd = command(integration_id, account, "xsoar.incident.update", close)
    await runner.handle(cmd)
    row = await settle(runner, cmd.command_id)
    assert row["state"] == "succeeded" and row["attempts"] >= 2  # retried with backoff, then done
    assert rec.status == 2
    assert (rec.doc["closeReason"], rec.doc["closeNotes"]) == (
        "False Positive",
        "Scanner of the customer's IT",
    )
    assert rec.doc["closed"] != xsoar.NULL_TIME

    tap = await tap_factory(("soar.incident.upserted",))
    await harness.sync(integration_id)
    synced = [
        e["data"]
        for e in of_type(await tap.drain(), "soar.incident.upserted")
        if e["data"]["incident_id"] == rec.id and e["data"]["account"] == account
    ]
    assert synced[-1]["status"] == "closed" and synced[-1]["owner"] == "jane.doe"
    assert synced[-1]["close_reason"] == "False Positive"


async def test_playbooks_run_and_refusals_are_recorded_not_retried(make_harness, tap_factory):
    harness, sim, integration_id, account = await started(make_harness)
    runner = harness.app.state.actions
    rec = next(r for (acc, _), r in sim.state.sim.records.items() if acc == account and r.status != 2)
    before = len(sim.state.sim.entries_of(rec))  # the seeded war room, generated on first read
    run = {"incident_id": rec.id, "playbook_id": "Block IP - Generic v3"}
    cmd = command(integration_id, account, "xsoar.playbook.run", run, key="pb-1")
    assert await runner.handle(cmd) == "succeeded"
    assert rec.doc["playbookId"] == "Block IP - Generic v3"
    assert (
        await runner.handle(command(integration_id, account, "xsoar.playbook.run", run, key="pb-1"))
        == "succeeded"
    )
    added = [e.doc["contents"] for e in sim.state.sim.entries_of(rec)[before:]]
    assert added == ["Playbook **Block IP - Generic v3** started."]  # started once

    tap = await tap_factory(("soar.action.completed",))
    unknown = command(
        integration_id, account, "xsoar.playbook.run", {**run, "playbook_id": "No Such Playbook"}
    )
    assert await runner.handle(unknown) == "failed"
    [row] = await runner.rows(command_id=unknown.command_id)
    assert row["attempts"] == 1 and row["error_category"] == "invalid_request"
    missing = command(
        integration_id, account, "xsoar.incident.update", {"incident_id": "987654", "owner": "x"}
    )
    assert await runner.handle(missing) == "failed"
    outcomes = {
        e["data"]["command_id"]: e["data"] for e in of_type(await tap.drain(), "soar.action.completed")
    }
    assert outcomes[unknown.command_id]["status"] == "failed"
    assert outcomes[missing.command_id]["error"]["category"] == "not_found"


async def test_faults_that_outlast_every_attempt_end_failed_and_published(make_harness, tap_factory):
    harness, sim, integration_id, account = await started(make_harness)
    runner = harness.app.state.actions
    runner.max_attempts = 3
    tap = await tap_factory(("soar.action.completed",))
    await harness.sim_post(
        "/_sim/faults", {"kind": "429", "path": "/incident", "count": 1000, "retry_after": 0}
    )
    cmd = command(integration_id, account, ESCALATE, escalation(90003))
    await runner.handle(cmd)
    row = await settle(runner, cmd.command_id)
    assert row["state"] == "failed" and row["attempts"] == 3 and row["error_category"] == "rate_limited"
    [outcome] = [e["data"] for e in of_type(await tap.drain(), "soar.action.completed")]
    assert outcome["status"] == "failed" and outcome["error"]["category"] == "rate_limited"
    await harness.clear_faults()
    assert by_offense(sim, account, 90003) == []


async def test_commands_arrive_over_the_bus(make_harness, tap_factory):
    harness, sim, integration_id, account = await started(make_harness)
    tap = await tap_factory(("soar.action.completed",))
    cmd = command(integration_id, account, ESCALATE, escalation(90004))
    await harness.bus.publish(
        [make_event("soar.action.requested", cmd, source="/tenant", subject=cmd.command_id)]
    )
    for _ in range(300):
        outcomes = [e.data for e in tap.events if e.routing_key == "soar.action.completed"]
        if outcomes:
            break
        await asyncio.sleep(0.05)
    assert outcomes and outcomes[0]["command_id"] == cmd.command_id
    assert len(by_offense(sim, account, 90004)) == 1


async def test_playbook_list_of_an_account(make_harness, tokens):
    import httpx

    harness, sim, integration_id, account = await started(make_harness)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.app), base_url="http://soar-ingest.test"
    ) as client:
        body = {"integration_id": integration_id, "account": account}
        r = await client.post(
            "/internal/playbooks", json=body, headers=tokens.headers(kind="service", sub="tenant")
        )
        assert r.status_code == 200, r.text
        names = [p["name"] for p in r.json()["items"]]
        assert "Block IP - Generic v3" in names
        assert (
            "Block IP - Generic" not in names and "Playbook Debugger Helper" not in names
        )  # deprecated, hidden
        r = await client.post("/internal/playbooks", json=body, headers=tokens.headers(kind="admin"))
        assert r.status_code == 403


async def test_a_vendor_that_times_out_is_retried_with_backoff(make_harness, socket_sim):
    """XSOAR hangs on the close call longer than the client waits, again and again: the in-line
    retries run out, the action waits out a backoff and succeeds once XSOAR answers."""
    import httpx

    harness = await make_harness(socket_sim.app, network=True, timeout=httpx.Timeout(0.3, connect=2.0))
    integration_id = await harness.add_integration(base_url=socket_sim.url)
    runner = harness.app.state.actions
    runner.retry_base_seconds = 0.01
    sim = socket_sim.app.state.sim
    rec = next(r for (acc, _), r in sim.records.items() if acc == "acme" and r.status != 2)
    async with httpx.AsyncClient(base_url=socket_sim.url) as control:
        fault = {"kind": "hang", "count": 4, "hang_seconds": 1, "path": "/incident/batchClose"}
        await control.post("/_sim/faults", json=fault)
        close = {"incident_id": rec.id, "status": "closed", "close_reason": "Resolved"}
        cmd = command(integration_id, "acme", "xsoar.incident.update", close)
        assert await runner.handle(cmd) == "pending"
        row = await settle(runner, cmd.command_id)
        stats = (await control.get("/_sim/stats")).json()
    assert row["state"] == "succeeded" and row["attempts"] >= 2
    assert stats["fired"]["hang"] == 4 and rec.status == 2


async def test_an_outcome_the_broker_did_not_confirm_is_published_again(make_harness, tap_factory):
    from soc_shared.bus import PublishError

    harness, sim, integration_id, account = await started(make_harness)
    runner = harness.app.state.actions
    runner.outcome_retry_seconds = 0
    tap = await tap_factory(("soar.action.completed",))
    broker = runner.bus

    class RefusesOnce:
        """The real broker, except that the first publish is never confirmed."""

        refused = 0

        async def publish(self, events: Any, **kw: Any) -> None:
            if not self.refused:
                self.refused += 1
                raise PublishError("1 of 1 events not confirmed (test)")
            await broker.publish(events, **kw)

    runner.bus = RefusesOnce()
    cmd = command(integration_id, account, ESCALATE, escalation(90005))
    assert await runner.handle(cmd) == "succeeded"
    assert of_type(await tap.drain(), "soar.action.completed") == []
    [row] = await runner.rows(command_id=cmd.command_id)
    assert row["lease_until"] is not None  # marked: not out yet
    assert await runner.republish_once() == 1
    [outcome] = of_type(await tap.drain(), "soar.action.completed")
    assert outcome["data"]["command_id"] == cmd.command_id and outcome["data"]["status"] == "succeeded"
    [row] = await runner.rows(command_id=cmd.command_id)
    assert row["lease_until"] is None
    assert await runner.republish_once() == 0
    assert len(by_offense(sim, account, 90005)) == 1


async def test_a_command_past_its_expiry_is_never_started(make_harness, tap_factory):
    """The tenant service told the asker the action expired: a command taken after its
    ``expires_at`` is recorded failed ("expired") without a vendor call; one with time left acts.
    A retry that comes due after the deadline is not started either."""
    from datetime import timedelta

    harness, sim, integration_id, account = await started(make_harness)
    runner = harness.app.state.actions
    rec = next(r for (acc, _), r in sim.state.sim.records.items() if acc == account and r.status != 2)
    version = rec.doc["version"]
    tap = await tap_factory(("soar.action.completed",))
    update = {"incident_id": rec.id, "owner": "late.owner"}
    late = command(integration_id, account, "xsoar.incident.update", update).model_copy(
        update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)}
    )
    assert await runner.handle(late) == "failed"
    [row] = await runner.rows(command_id=late.command_id)
    assert row["error_category"] == "expired" and row["attempts"] == 1
    assert rec.doc["version"] == version and rec.doc.get("owner") != "late.owner"
    [published] = [e["data"] for e in of_type(await tap.drain(), "soar.action.completed")]
    assert published["status"] == "failed" and published["error"]["category"] == "expired"

    # XSOAR answers 503 (more often than the HTTP retries absorb): the action waits for its next
    # attempt, which comes due after the deadline and is not started.
    await harness.sim_post(
        "/_sim/faults", {"kind": "503", "path": "/incident", "method": "POST", "count": 50}
    )
    soon = command(integration_id, account, "xsoar.incident.update", update).model_copy(
        update={"expires_at": datetime.now(UTC) + timedelta(seconds=0.5)}
    )
    assert await runner.handle(soon) == "pending"
    await asyncio.sleep(0.6)
    row = await settle(runner, soon.command_id)
    assert row["state"] == "failed" and row["error_category"] == "expired"
    assert rec.doc.get("owner") != "late.owner"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim") as control:
        assert (await control.delete("/_sim/faults")).status_code == 204

    in_time = command(integration_id, account, "xsoar.incident.update", update).model_copy(
        update={"expires_at": datetime.now(UTC) + timedelta(minutes=5)}
    )
    assert await runner.handle(in_time) == "succeeded"
    assert rec.doc["owner"] == "late.owner"
