"""XSOAR actions on command (``soar.action.requested``): escalate a QRadar offense to an incident,
update an incident (owner, severity, status, close with reason and notes), run a playbook on an
incident; and the internal playbook list the portal shows before running one.

Vendor requests, as the product documents them (Cortex XSOAR REST API, demisto-py's spec):

* create: ``POST /incident`` (``CreateIncidentRequest``) with ``createInvestigation`` to start the
  type's playbook; the offense id goes where the QRadar fetch puts it — ``CustomFields.offenseid``
  and a label ``offense_id`` — which is how the read model links incidents to offenses;
* update: ``POST /incident`` with ``id`` and ``version`` (optimistic locking, see the client);
* close: ``POST /incident/batchClose`` (``UpdateDataBatch``: ids, closeReason, closeNotes);
* playbooks: ``POST /playbook/search`` (``{"query": "hidden:F AND deprecated:F"}`` → ``playbooks``)
  and ``POST /inv-playbook/new/{playbookId}/{investigationId}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from soc_shared.actions import ActionContext, ActionFailed
from soc_shared.errors import ApiError
from soc_shared.events import EscalateOffense, RunPlaybook, UpdateIncident
from soc_shared.sync import bind_credentials, describe_error
from soc_shared.vendor_http import VendorError, VendorErrorCategory

from soc_soar_ingest.client import XsoarClient
from soc_soar_ingest.state import vendor_action

COMMAND_LABEL = "soc_command_id"
STATUS_CODES = {"pending": 0, "active": 1}


def _summary(incident: dict[str, Any]) -> dict[str, Any]:
    return {
        "incident_id": str(incident.get("id") or ""),
        "investigation_id": str(incident.get("investigationId") or "") or None,
        "account": incident.get("account") or None,
        "name": incident.get("name"),
        "status": incident.get("status"),
        "severity": incident.get("severity"),
        "owner": incident.get("owner") or None,
        "version": incident.get("version"),
        "modified": incident.get("modified"),
    }


async def _escalated_before(
    client: XsoarClient, account: str, params: EscalateOffense, command_id: str
) -> Any:
    """The incident an earlier attempt of this command made, if it reached XSOAR."""
    _, found = await client.search_incidents(
        account, query=f'offenseid:"{params.offense_id}"', size=100, sort=[{"field": "id", "asc": False}]
    )
    for incident in found:
        labels = incident.get("labels") or []
        if any(
            isinstance(label, dict)
            and label.get("type") == COMMAND_LABEL
            and label.get("value") == command_id
            for label in labels
        ):
            return incident
    return None


async def escalate(ctx: ActionContext) -> dict[str, Any]:
    params = ctx.params
    assert isinstance(params, EscalateOffense)
    client: XsoarClient = ctx.client
    account = ctx.command.vendor_tenant
    if ctx.maybe_sent:
        earlier = await _escalated_before(client, account, params, ctx.command.command_id)
        if earlier is not None:
            return {**_summary(earlier), "offense_id": params.offense_id, "adopted": True}
    body: dict[str, Any] = {
        "name": params.name,
        "details": params.details,
        "severity": params.severity,
        "createInvestigation": params.create_investigation,
        "labels": [
            {"type": "offense_id", "value": str(params.offense_id)},
            {"type": COMMAND_LABEL, "value": ctx.command.command_id},
            {"type": "escalated_by", "value": ctx.command.requested_by_name or ctx.command.requested_by},
        ],
        "CustomFields": {"offenseid": str(params.offense_id)},
    }
    if params.type:
        body["type"] = params.type
    if params.owner:
        body["owner"] = params.owner
    await ctx.mark_sent()
    created = await client.create_incident(account, body)
    return {**_summary(created), "offense_id": params.offense_id, "adopted": False}


async def update(ctx: ActionContext) -> dict[str, Any]:
    params = ctx.params
    assert isinstance(params, UpdateIncident)
    client: XsoarClient = ctx.client
    account = ctx.command.vendor_tenant
    changes: dict[str, Any] = {}
    if params.owner is not None:
        changes["owner"] = params.owner
    if params.severity is not None:
        changes["severity"] = params.severity
    if params.status in STATUS_CODES:
        changes["status"] = STATUS_CODES[params.status]
    incident: dict[str, Any] | None = None
    if changes:
        try:
            incident = await client.update_incident(account, params.incident_id, changes)
        except VendorError as exc:
            if exc.category == VendorErrorCategory.NOT_FOUND:
                raise ActionFailed("not_found", f"XSOAR has no incident {params.incident_id}") from None
            raise
    if params.status == "closed":
        closed = await client.close_incident(
            account,
            params.incident_id,
            close_reason=params.close_reason or "",
            close_notes=params.close_notes or "",
        )
        incident = closed or await client.get_incident(account, params.incident_id)
        if incident is None:
            raise ActionFailed("not_found", f"XSOAR has no incident {params.incident_id}")
    if incident is None:
        raise ActionFailed("invalid_request", "nothing to change")
    return _summary(incident)


async def run_playbook(ctx: ActionContext) -> dict[str, Any]:
    params = ctx.params
    assert isinstance(params, RunPlaybook)
    client: XsoarClient = ctx.client
    account = ctx.command.vendor_tenant
    incident = await client.get_incident(account, params.incident_id)
    if incident is None:
        raise ActionFailed("not_found", f"XSOAR has no incident {params.incident_id}")
    investigation_id = str(incident.get("investigationId") or params.incident_id)
    if ctx.maybe_sent and incident.get("playbookId") == params.playbook_id:
        return {**_summary(incident), "playbook_id": params.playbook_id, "adopted": True}
    await ctx.mark_sent()
    started = await client.run_playbook(account, investigation_id, params.playbook_id)
    return {
        **_summary(incident),
        "investigation_id": investigation_id,
        "playbook_id": params.playbook_id,
        "playbook_name": started.get("name"),
        "adopted": False,
    }


action_rows = vendor_action  # the table the action runner keeps its rows in
HANDLERS = {
    "xsoar.offense.escalate": escalate,
    "xsoar.incident.update": update,
    "xsoar.playbook.run": run_playbook,
}
SYNC_AFTER = {action: "incidents" for action in HANDLERS}


# --- internal: the playbooks of an account ------------------------------------------------------
class PlaybooksRequest(BaseModel):
    integration_id: str = Field(max_length=200)
    account: str = Field(default="", max_length=128)


class PlaybookItem(BaseModel):
    id: str
    name: str
    tags: list[str] = Field(default_factory=list)
    system: bool | None = None


class PlaybookList(BaseModel):
    items: list[PlaybookItem]
    total: int


def playbooks_router(app: Any, caller: Any, client_factory: Any) -> APIRouter:
    router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(caller)])

    @router.post("/playbooks", response_model=PlaybookList)
    async def playbooks(body: PlaybooksRequest) -> dict[str, Any]:
        """The playbooks an analyst may run on the account's incidents (not hidden, not deprecated)."""
        ingestor = app.state.ingestor
        integration = await ingestor.load_integration(body.integration_id)
        if integration is None or integration.get("deleted"):
            raise ApiError(404, "not_found", "integration not known to soar-ingest")
        client = None
        try:
            credentials = bind_credentials(integration, await ingestor.credentials(body.integration_id))
            client = client_factory(integration, credentials)
            found = await client.search_playbooks(body.account)
        except VendorError as exc:
            raise ApiError(502, "vendor_error", exc.message, {"category": exc.category.value}) from None
        except Exception as exc:  # noqa: BLE001 - credentials or origin refused: say so, no stack
            error = describe_error(exc)
            raise ApiError(502, "vendor_error", error.message, {"category": error.category}) from None
        finally:
            if client is not None:
                await client.aclose()
        items = [
            {
                "id": str(p.get("id")),
                "name": str(p.get("name") or p.get("id")),
                "tags": [str(t) for t in p.get("tags") or []],
                "system": p.get("system"),
            }
            for p in found
            if p.get("id")
        ]
        items.sort(key=lambda p: p["name"].lower())
        return {"items": items, "total": len(items)}

    return router
