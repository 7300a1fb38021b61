"""ServiceDesk Plus actions on command (``itsm.action.requested``): a note on a request, or a new
status (with an optional resolution).

Vendor requests, as ManageEngine documents API v3 (``input_data`` form field):

* note: ``POST /api/v3/requests/{id}/notes`` with ``{"request_note": {"description",
  "show_to_requester", "notify_technician", "mark_first_response", "add_to_linked_requests"}}``;
* status: ``PUT /api/v3/requests/{id}`` with ``{"request": {"status": {"name": ...},
  "resolution": {"content": ...}}}`` (the update the demisto ServiceDeskPlus pack sends).

The request goes to the ticket's MSP account (``ACCOUNTID``). The changed request comes back
through the ticket sync, which runs at once after a successful action.
"""

from __future__ import annotations

from typing import Any

from soc_shared.actions import ActionContext, ActionFailed
from soc_shared.events import TicketNote, TicketStatus
from soc_shared.vendor_http import VendorError, VendorErrorCategory

from soc_itsm_ingest.client import SdpClient
from soc_itsm_ingest.tables import vendor_action


def _not_found(exc: VendorError, ticket_id: str) -> None:
    if exc.category == VendorErrorCategory.NOT_FOUND:
        raise ActionFailed("not_found", f"ServiceDesk Plus has no request {ticket_id}") from None


async def add_note(ctx: ActionContext) -> dict[str, Any]:
    params = ctx.params
    assert isinstance(params, TicketNote)
    client: SdpClient = ctx.client
    account = ctx.command.vendor_tenant or None
    if ctx.maybe_sent:
        try:
            for note in await client.notes(params.ticket_id, account_id=account):
                if (note.get("description") or "") == params.description:
                    return {"ticket_id": params.ticket_id, "note_id": str(note.get("id")), "adopted": True}
        except VendorError as exc:
            _not_found(exc, params.ticket_id)
            raise
    note = {
        "description": params.description,
        "show_to_requester": params.show_to_requester,
        "notify_technician": params.notify_technician,
        "mark_first_response": False,
        "add_to_linked_requests": False,
    }
    await ctx.mark_sent()
    try:
        created = await client.add_note(params.ticket_id, note, account_id=account)
    except VendorError as exc:
        _not_found(exc, params.ticket_id)
        raise
    return {"ticket_id": params.ticket_id, "note_id": str(created.get("id")), "adopted": False}


async def change_status(ctx: ActionContext) -> dict[str, Any]:
    params = ctx.params
    assert isinstance(params, TicketStatus)
    client: SdpClient = ctx.client
    account = ctx.command.vendor_tenant or None
    fields: dict[str, Any] = {"status": {"name": params.status}}
    if params.resolution:
        fields["resolution"] = {"content": params.resolution}
    try:
        request = await client.update_request(params.ticket_id, fields, account_id=account)
    except VendorError as exc:
        _not_found(exc, params.ticket_id)
        if exc.category == VendorErrorCategory.INVALID_REQUEST:
            raise ActionFailed("invalid_request", exc.message) from None
        raise
    status = request.get("status")
    status = status if isinstance(status, dict) else {}
    updated = request.get("last_updated_time")
    updated = updated if isinstance(updated, dict) else {}
    return {
        "ticket_id": str(request.get("id")),
        "status": status.get("name"),
        "last_updated_time": updated.get("value"),
    }


action_rows = vendor_action  # the table the action runner keeps its rows in
HANDLERS = {"sdp.ticket.note": add_note, "sdp.ticket.status": change_status}
SYNC_AFTER = {action: "tickets" for action in HANDLERS}
