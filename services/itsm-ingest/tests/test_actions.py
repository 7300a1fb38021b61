"""ServiceDesk Plus actions on command against the simulator: the note and status requests SDP
receives, exactly once per idempotency key (also when the answer to a note is lost), faults
retried with backoff, refusals recorded, and the changed request coming back through the sync."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from soc_itsm_ingest import actions
from soc_itsm_ingest.resources import client_for
from soc_shared.actions import ActionRunner
from soc_shared.events import ActionRequested

from .conftest import ACME, FAST_RETRY


def command(
    integration_id: str, action: str, params: dict[str, Any], key: str | None = None
) -> ActionRequested:
    return ActionRequested(
        command_id=str(uuid.uuid4()),
        idempotency_key=key or uuid.uuid4().hex,
        action=action,  # type: ignore[arg-type]
        integration_id=integration_id,
        vendor_tenant=ACME.id,
        company_id=str(uuid.uuid4()),
        requested_by="customer-user-1",
        params=params,
        requested_at=datetime.now(UTC),
    )


def runner_for(harness: Any, ingestor: Any) -> ActionRunner:
    options = {"retry": FAST_RETRY, "transport": harness.transport()}
    return ActionRunner(
        ingestor=ingestor,
        table=actions.action_rows,
        requested_key="itsm.action.requested",
        completed_key="itsm.action.completed",
        handlers=actions.HANDLERS,
        queue="itsm-ingest.actions-tests",
        client_factory=lambda i, c: client_for(i, c, harness.settings, **options),
        retry_base_seconds=0.01,
        sync_after=actions.SYNC_AFTER,
    )


async def settle(runner: ActionRunner, command_id: str) -> dict[str, Any]:
    for _ in range(200):
        rows = await runner.rows(command_id=command_id)
        if rows and rows[0]["state"] != "pending":
            return rows[0]
        await asyncio.sleep(0.03)
        await runner.reconcile_once()
    raise AssertionError(f"action {command_id} still pending")


def open_request(harness: Any) -> Any:
    return next(
        rec
        for rec in harness.state.records.values()
        if rec.account_id == ACME.id and rec.doc["status"]["name"] == "Open"
    )


async def test_a_note_is_added_once_and_the_request_comes_back_through_the_sync(
    harness: Any, tap: Any
) -> None:
    ingestor = harness.ingestor()
    integration = await harness.add_integration(ingestor)
    runner = runner_for(harness, ingestor)
    rec = open_request(harness)
    before = int(rec.doc["last_updated_time"]["value"])
    note = {
        "ticket_id": rec.id,
        "description": "Blocked the source address; please confirm.",
        "show_to_requester": True,
    }
    # SDP adds the note, then the answer is lost: the retry finds the note instead of adding it again.
    await harness.control().post(
        "/_sim/faults", json={"kind": "500_after", "path": "/notes", "method": "POST"}
    )
    cmd = command(integration, "sdp.ticket.note", note, key="note-1")
    assert await runner.handle(cmd) == "pending"
    row = await settle(runner, cmd.command_id)
    assert row["state"] == "succeeded" and row["result"]["adopted"] is True
    assert await runner.handle(command(integration, "sdp.ticket.note", note, key="note-1")) == "succeeded"

    [added] = harness.state.notes[rec.id]
    assert added["description"] == note["description"] and added["show_to_requester"] is True
    assert int(rec.doc["last_updated_time"]["value"]) > before  # the request changed

    await harness.sync(ingestor, integration, "tickets")
    await tap.settle()
    synced = [e.data for e in tap.of(integration, "itsm.ticket.upserted") if e.data["ticket_id"] == rec.id]
    assert synced and synced[-1]["version"] == int(rec.doc["last_updated_time"]["value"])
    outcomes = [e.data for e in tap.events if e.type == "soc.itsm.action.completed.v1"]
    assert [o["status"] for o in outcomes if o["command_id"] == cmd.command_id] == ["succeeded", "succeeded"]


async def test_a_status_change_reaches_sdp_after_faults_and_bad_ones_are_refused(
    harness: Any, tap: Any
) -> None:
    ingestor = harness.ingestor()
    integration = await harness.add_integration(ingestor)
    runner = runner_for(harness, ingestor)
    rec = open_request(harness)
    await harness.control().post(
        "/_sim/faults", json={"kind": "503", "path": f"/requests/{rec.id}", "count": 4}
    )
    change = {"ticket_id": rec.id, "status": "Resolved", "resolution": "False positive: scanner"}
    cmd = command(integration, "sdp.ticket.status", change)
    await runner.handle(cmd)
    row = await settle(runner, cmd.command_id)
    assert row["state"] == "succeeded" and row["attempts"] >= 2 and row["result"]["status"] == "Resolved"
    assert rec.doc["status"]["name"] == "Resolved"
    assert rec.doc["resolution"]["content"] == "False positive: scanner"

    await harness.sync(ingestor, integration, "tickets")
    await tap.settle()
    synced = [e.data for e in tap.of(integration, "itsm.ticket.upserted") if e.data["ticket_id"] == rec.id]
    assert synced[-1]["status"] == "Resolved"

    bad = command(integration, "sdp.ticket.status", {"ticket_id": rec.id, "status": "No Such Status"})
    assert await runner.handle(bad) == "failed"
    [row] = await runner.rows(command_id=bad.command_id)
    assert row["attempts"] == 1 and row["error_category"] == "invalid_request"
    gone = command(integration, "sdp.ticket.note", {"ticket_id": "999", "description": "x"})
    assert await runner.handle(gone) == "failed"
    [row] = await runner.rows(command_id=gone.command_id)
    assert row["error_category"] == "not_found"
