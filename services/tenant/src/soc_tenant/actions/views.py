"""Actions on the vendors, asked through the portal: escalate a QRadar offense to an XSOAR incident,
update an XSOAR incident (owner, severity, status, close with reason and notes), run a playbook
on an incident (and list an account's playbooks first), add a note to an SDP request or change
its status.

Each accepted action is a row here (``202`` with its command id; ``GET /tenant/actions/{id}/``
reads the outcome) and a command on ``soc.commands`` (``soar.action.requested`` /
``itsm.action.requested``) that the owning ingestor runs against the vendor. Everything about an
action is decided here, before the command leaves:

- who may act: the XSOAR actions are for administrators and tenant administrators, a note or a
  status on a ticket for any user who may write; read-only accounts never act;
- on what: the record is looked up under the caller's scope — a tenant user reaches only their own
  company's offenses, incidents and tickets (another company's answers 404, as if it did not
  exist), enforced by the read model's scope and row-level security on this table;
- exactly once: the ``Idempotency-Key`` header (the asker's key) is unique per asker; asking again
  with the same key answers the same command and sends nothing, asking with the same key for
  something else is refused (409); the ingestor keeps the key too, so a redelivered command never
  acts twice;
- the audit trail records the request when it is accepted and its outcome when it comes back.

The outcome (``<domain>.action.completed``) is consumed here, stored on the row, audited, and
pushed to the asker's open WebSockets (``action.outcome`` frames, through ``tenant.action.updated``
so that every replica reaches the sockets it holds). The changed record itself comes back through
the normal sync.

An action without an outcome ``action_expiry_seconds`` after it was accepted (no ingestor took the
command, or it is still retrying the vendor) ends ``expired`` — stored, audited and pushed like any
outcome — and the command carries that time (``expires_at``): the ingestor never starts it later.
Should an outcome still arrive (the ingestor had sent it to the vendor just before), it replaces
``expired``: what the vendor did is what the row says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Header, Path, Query
from loguru import logger
from pydantic import Field, field_validator
from soc_shared.api import ApiModel, Page
from soc_shared.bus import BatchConsumer, Delivery
from soc_shared.errors import ApiError
from soc_shared.events import (
    ActionCompleted,
    ActionError,
    ActionRequested,
    EscalateOffense,
    RunPlaybook,
    TicketNote,
    TicketStatus,
    UpdateIncident,
)
from soc_shared.loop import BackgroundLoop
from soc_shared.security import Principal, company_scope
from sqlalchemy.dialects.postgresql import insert

from soc_tenant.audit import views as audit
from soc_tenant.control.deps import (
    ControlTx,
    ManagerWriter,
    Paging,
    Person,
    Tx,
    UserWriter,
    invalid,
    not_found,
    page,
    scoped_tx,
)
from soc_tenant.control.models import Strict, storable
from soc_tenant.integrations.clients import call_ingestor, ingestor_error
from soc_tenant.readmodel import tables as rt
from soc_tenant.readmodel.common import Scope, load_scope
from soc_tenant.tables import integration, itsm_mapping, qradar_mapping, soar_mapping, vendor_action

router = APIRouter(tags=["actions"])

BIGINT = 2**63 - 1
SEVERITIES: dict[str, float] = {
    "unknown": 0,
    "informational": 0.5,
    "low": 1,
    "medium": 2,
    "high": 3,
    "critical": 4,
}
Severity = Literal["unknown", "informational", "low", "medium", "high", "critical"]
ROUTING = {"xsoar": "soar.action.requested", "sdp": "itsm.action.requested"}
OUTCOME_SOURCES = {"soar.action.completed": "/soar-ingest/", "itsm.action.completed": "/itsm-ingest/"}


# --- request and response models ------------------------------------------------------------------
def _text(value: str | None) -> str | None:
    if value is None:
        return None
    if not storable(value) or any(ord(c) < 32 and c not in "\n\r\t" for c in value):
        raise ValueError("contains control characters")
    return value


class EscalateIn(Strict):
    name: str | None = Field(
        default=None, min_length=1, max_length=500, description="default: the offense's description"
    )
    details: str | None = Field(default=None, max_length=20_000, description="default: the offense's summary")
    severity: Severity | None = Field(default=None, description="default: from the offense's severity")
    incident_type: str | None = Field(default=None, max_length=200, description="XSOAR incident type")
    owner: str | None = Field(default=None, max_length=200)
    soar_integration_id: uuid.UUID | None = Field(
        default=None, description="with account: which of the company's XSOAR accounts (when it has several)"
    )
    account: str | None = Field(default=None, max_length=128)
    start_playbook: bool = Field(default=True, description="start the incident type's playbook")

    _clean = field_validator("name", "details", "incident_type", "owner", "account")(_text)


class IncidentUpdateIn(Strict):
    owner: str | None = Field(default=None, max_length=200, description="'' unassigns")
    severity: Severity | None = None
    status: Literal["pending", "active", "closed"] | None = None
    close_reason: str | None = Field(default=None, min_length=1, max_length=200)
    close_notes: str | None = Field(default=None, max_length=20_000)

    _clean = field_validator("owner", "close_reason", "close_notes")(_text)


class PlaybookRunIn(Strict):
    playbook_id: str = Field(min_length=1, max_length=300)

    _clean = field_validator("playbook_id")(_text)


class TicketNoteIn(Strict):
    description: str = Field(min_length=1, max_length=20_000)
    show_to_requester: bool = False
    notify_technician: bool = False

    _clean = field_validator("description")(_text)


class TicketStatusIn(Strict):
    status: str = Field(min_length=1, max_length=100, description="the SDP status name, e.g. Resolved")
    resolution: str | None = Field(default=None, max_length=20_000)

    _clean = field_validator("status", "resolution")(_text)


class ActionErrorView(ApiModel):
    category: str
    message: str


class VendorAction(ApiModel):
    """An action asked of a vendor and where it stands."""

    id: uuid.UUID = Field(description="the command id")
    action: str = Field(description="xsoar.offense.escalate, xsoar.incident.update, xsoar.playbook.run, ...")
    status: Literal["accepted", "succeeded", "failed", "expired"]
    company_id: uuid.UUID | None
    requested_by: str
    requested_by_name: str | None
    idempotency_key: str
    integration_id: str
    vendor_tenant: str = Field(description="the XSOAR account or SDP account acted on")
    target_type: Literal["offense", "incident", "ticket"]
    target_id: str = Field(description="our id of the offense, incident or ticket")
    params: dict[str, Any]
    result: dict[str, Any] | None = Field(description="what the vendor answered (e.g. the new incident id)")
    error: ActionErrorView | None
    attempts: int
    requested_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="without an outcome by then the action ends expired")


class PlaybookView(ApiModel):
    id: str
    name: str
    tags: list[str]
    system: bool | None = None


# --- who and what ----------------------------------------------------------------------------------
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="the asker's key: the same key never acts twice",
    ),
]


async def _scope(tx: Tx) -> Scope:
    return await load_scope(tx.session, tx.principal, company_scope(tx.principal, None))


async def _company_of(tx: Tx, table: sa.Table, *where: Any) -> uuid.UUID | None:
    row = (
        await tx.session.execute(sa.select(table.c.company_id).where(table.c.active, *where).limit(2))
    ).all()
    return row[0][0] if len(row) == 1 else None


async def _integration_available(tx: Tx, integration_id: str) -> None:
    try:
        key = uuid.UUID(integration_id)
    except ValueError:
        raise ApiError(409, "integration_unavailable", "the integration is not available") from None
    row = (
        await tx.session.execute(
            sa.select(integration.c.deleted_at, integration.c.status).where(integration.c.id == key)
        )
    ).first()
    if row is None or row.deleted_at is not None or row.status == "disabled":
        raise ApiError(409, "integration_unavailable", "the integration is not available")


def fingerprint(action: str, target_type: str, target_id: str, body: Any) -> str:
    """What the client asked for (not what we derived from the record, which may change between a
    request and its retry): the same key must come with the same request."""
    import hashlib
    import json

    request = body.model_dump(mode="json", exclude_unset=True) if body is not None else {}
    text = json.dumps([action, target_type, target_id, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def replay(tx: Tx, key: str, request_fingerprint: str) -> dict[str, Any] | None:
    """The action this asker's key already asked for (answered again, nothing sent), or None; the
    key with another request is refused (409). Looked up before the record, so a retry gets its
    answer even when the record or the integration changed meanwhile."""
    a = vendor_action.c
    existing = (
        (
            await tx.session.execute(
                sa.select(vendor_action).where(a.requested_by == tx.principal.sub, a.idempotency_key == key)
            )
        )
        .mappings()
        .first()
    )
    if existing is None:
        return None
    if existing["request_fingerprint"] != request_fingerprint:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used for another request",
            {"command_id": str(existing["id"])},
        )
    return dict(existing)


async def accept(
    tx: Tx,
    key: str,
    *,
    action: str,
    vendor: Literal["xsoar", "sdp"],
    integration_id: str,
    vendor_tenant: str,
    company_id: uuid.UUID | None,
    target_type: str,
    target_id: str,
    params: dict[str, Any],
    request_fingerprint: str,
) -> dict[str, Any]:
    """Store the action and stage its command (the routes asked :func:`replay` first)."""
    p = tx.principal
    command_id = uuid.uuid4()
    now = datetime.now(UTC)
    expiry = float(tx.app.state.settings.action_expiry_seconds)
    expires_at = now + timedelta(seconds=expiry) if expiry > 0 else None
    values = {
        "id": command_id,
        "company_id": company_id,
        "requested_by": p.sub,
        "requested_by_name": p.username,
        "idempotency_key": key,
        "action": action,
        "integration_id": integration_id,
        "vendor_tenant": vendor_tenant,
        "target_type": target_type,
        "target_id": target_id,
        "params": params,
        "request_fingerprint": request_fingerprint,
        "status": "accepted",
        "requested_at": now,
        "expires_at": expires_at,
    }
    # Two requests with one key at once: the unique key lets one in, the other waits and conflicts.
    inserted = (
        (
            await tx.session.execute(
                insert(vendor_action)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["requested_by", "idempotency_key"])
                .returning(*vendor_action.c)
            )
        )
        .mappings()
        .first()
    )
    if inserted is None:
        raise ApiError(409, "idempotency_key_in_use", "a request with this Idempotency-Key is in progress")
    await audit.record(
        tx,
        "vendor_action.requested",
        "vendor_action",
        command_id,
        company_id=company_id,
        after={
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "integration_id": integration_id,
            "vendor_tenant": vendor_tenant,
            "idempotency_key": key,
            "params": params,
        },
    )
    await tx.publish(
        ROUTING[vendor],
        ActionRequested(
            command_id=str(command_id),
            idempotency_key=key,
            action=action,
            integration_id=integration_id,
            vendor_tenant=vendor_tenant,
            company_id=str(company_id) if company_id else None,
            requested_by=p.sub,
            requested_by_name=p.username,
            params=params,
            requested_at=now,
            expires_at=expires_at,
        ),
        subject=str(command_id),
        integration_id=integration_id,
    )
    return dict(inserted)


def _as_view(row: dict[str, Any]) -> dict[str, Any]:
    return dict(row)


# --- routes ----------------------------------------------------------------------------------------
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted: the command id; GET /tenant/actions/{id}/ reads the outcome"},
    409: {"description": "The Idempotency-Key was used for another request, or the integration is gone"},
}


@router.post(
    "/tenant/offenses/{offense_pk}/escalate/",
    status_code=202,
    response_model=VendorAction,
    responses=ACCEPTED,
)
async def escalate_offense(
    tx: ControlTx,
    principal: ManagerWriter,
    offense_pk: Annotated[int, Path(ge=0, le=BIGINT)],
    body: EscalateIn,
    idempotency_key: IdempotencyKey,
) -> dict[str, Any]:
    """Open an XSOAR incident for this offense in the XSOAR account of the offense's company; the
    incident names the offense the way the QRadar fetch does, so it shows on the offense detail
    once synced. Administrators and tenant administrators (their own company's offenses)."""
    fp = fingerprint("xsoar.offense.escalate", "offense", str(offense_pk), body)
    if (done := await replay(tx, idempotency_key, fp)) is not None:
        return done
    scope = await _scope(tx)
    o = rt.qradar_offense
    row = (
        (await tx.session.execute(sa.select(o).where(o.c.id == offense_pk, scope.qradar_filter(o))))
        .mappings()
        .first()
    )
    if row is None:
        raise not_found("offense")
    company_id = await _company_of(
        tx,
        qradar_mapping,
        qradar_mapping.c.integration_id == row["integration_id"],
        qradar_mapping.c.domain_id == row["domain_id"],
    )
    if company_id is None:
        raise ApiError(409, "offense_unmapped", "the offense's QRadar domain is not mapped to a company")
    accounts = (
        await tx.session.execute(
            sa.select(soar_mapping.c.integration_id, soar_mapping.c.account).where(
                soar_mapping.c.company_id == company_id, soar_mapping.c.active
            )
        )
    ).all()
    if body.soar_integration_id is not None or body.account is not None:
        chosen = [
            (i, a)
            for i, a in accounts
            if (body.soar_integration_id is None or i == str(body.soar_integration_id))
            and (body.account is None or a == body.account)
        ]
        if len(chosen) != 1:
            raise invalid(["body", "account"], "not one of the company's XSOAR accounts")
    else:
        chosen = list(accounts)
        if len(chosen) != 1:
            raise invalid(
                ["body", "account"],
                "the company has no XSOAR account"
                if not chosen
                else "the company has several XSOAR accounts: choose soar_integration_id and account",
                "missing",
            )
    soar_integration_id, account = chosen[0]
    await _integration_available(tx, soar_integration_id)
    severity = body.severity
    if severity is None:
        offense_severity = int(row["severity"] or 0)  # QRadar 0-10
        severity = (
            "critical"
            if offense_severity >= 9
            else "high"
            if offense_severity >= 7
            else "medium"
            if offense_severity >= 4
            else "low"
        )
    params = EscalateOffense(
        offense_id=int(row["offense_id"]),
        qradar_integration_id=row["integration_id"],
        name=body.name or (row["description"] or f"QRadar offense {row['offense_id']}").strip()[:500],
        details=body.details
        if body.details is not None
        else (
            f"QRadar offense {row['offense_id']} (magnitude {row['magnitude']}, severity {row['severity']}), "
            f"source {row['offense_source'] or '-'}: {(row['description'] or '').strip()}"
        )[:20_000],
        severity=SEVERITIES[severity],
        type=body.incident_type,
        owner=body.owner,
        create_investigation=body.start_playbook,
    ).model_dump(mode="json")
    return _as_view(
        await accept(
            tx,
            idempotency_key,
            action="xsoar.offense.escalate",
            vendor="xsoar",
            integration_id=soar_integration_id,
            vendor_tenant=account,
            company_id=company_id,
            target_type="offense",
            target_id=str(offense_pk),
            params=params,
            request_fingerprint=fp,
        )
    )


async def _record(
    tx: Tx,
    table: sa.Table,
    pk: int,
    what: str,
    visible: Callable[[Scope, sa.Table], Any],
    mapping: sa.Table,
    mapping_key: str,
    row_key: str,
) -> tuple[dict[str, Any], uuid.UUID | None]:
    """The record the asker may see (else 404), the company it belongs to, and its integration
    still usable (else 409) — the same checks for every record an action targets."""
    scope = await _scope(tx)
    row = (
        (await tx.session.execute(sa.select(table).where(table.c.id == pk, visible(scope, table))))
        .mappings()
        .first()
    )
    if row is None:
        raise not_found(what)
    company_id = await _company_of(
        tx,
        mapping,
        mapping.c.integration_id == row["integration_id"],
        mapping.c[mapping_key] == (row[row_key] or ""),
    )
    await _integration_available(tx, row["integration_id"])
    return dict(row), company_id


async def _incident(tx: Tx, incident_pk: int) -> tuple[dict[str, Any], uuid.UUID | None]:
    return await _record(
        tx, rt.soar_incident, incident_pk, "incident", Scope.soar_filter, soar_mapping, "account", "account"
    )


@router.post(
    "/tenant/soar-incidents/{incident_pk}/update/",
    status_code=202,
    response_model=VendorAction,
    responses=ACCEPTED,
)
async def update_incident(
    tx: ControlTx,
    principal: ManagerWriter,
    incident_pk: Annotated[int, Path(ge=0, le=BIGINT)],
    body: IncidentUpdateIn,
    idempotency_key: IdempotencyKey,
) -> dict[str, Any]:
    """Change the incident in XSOAR: owner, severity, status (pending/active), or close it with a
    reason and notes (``status: closed`` needs ``close_reason``)."""
    fp = fingerprint("xsoar.incident.update", "incident", str(incident_pk), body)
    if (done := await replay(tx, idempotency_key, fp)) is not None:
        return done
    given = body.model_dump(exclude_unset=True)
    if not {"owner", "severity", "status"} & given.keys():
        raise invalid(["body"], "give at least one of owner, severity, status")
    if body.status == "closed" and not body.close_reason:
        raise invalid(["body", "close_reason"], "closing needs a close_reason", "missing")
    if body.status != "closed" and (body.close_reason is not None or body.close_notes is not None):
        raise invalid(["body", "close_reason"], "close_reason and close_notes go with status closed")
    row, company_id = await _incident(tx, incident_pk)
    params = UpdateIncident(
        incident_id=row["incident_id"],
        owner=body.owner,
        severity=SEVERITIES[body.severity] if body.severity else None,
        status=body.status,
        close_reason=body.close_reason,
        close_notes=body.close_notes,
    ).model_dump(mode="json")
    return _as_view(
        await accept(
            tx,
            idempotency_key,
            action="xsoar.incident.update",
            vendor="xsoar",
            integration_id=row["integration_id"],
            vendor_tenant=row["account"] or "",
            company_id=company_id,
            target_type="incident",
            target_id=str(incident_pk),
            params=params,
            request_fingerprint=fp,
        )
    )


@router.post(
    "/tenant/soar-incidents/{incident_pk}/run-playbook/",
    status_code=202,
    response_model=VendorAction,
    responses=ACCEPTED,
)
async def run_playbook(
    tx: ControlTx,
    principal: ManagerWriter,
    incident_pk: Annotated[int, Path(ge=0, le=BIGINT)],
    body: PlaybookRunIn,
    idempotency_key: IdempotencyKey,
) -> dict[str, Any]:
    """Run a playbook (an id from ``GET /tenant/soar-playbooks/``) on the incident's investigation."""
    fp = fingerprint("xsoar.playbook.run", "incident", str(incident_pk), body)
    if (done := await replay(tx, idempotency_key, fp)) is not None:
        return done
    row, company_id = await _incident(tx, incident_pk)
    params = RunPlaybook(incident_id=row["incident_id"], playbook_id=body.playbook_id).model_dump(mode="json")
    return _as_view(
        await accept(
            tx,
            idempotency_key,
            action="xsoar.playbook.run",
            vendor="xsoar",
            integration_id=row["integration_id"],
            vendor_tenant=row["account"] or "",
            company_id=company_id,
            target_type="incident",
            target_id=str(incident_pk),
            params=params,
            request_fingerprint=fp,
        )
    )


@router.get("/tenant/soar-playbooks/", response_model=Page[PlaybookView])
async def list_playbooks(
    tx: ControlTx,
    principal: ManagerWriter,
    integration_id: Annotated[uuid.UUID, Query(description="the XSOAR integration")],
    account: Annotated[str, Query(max_length=128, description="the XSOAR account ('' for none)")] = "",
) -> dict[str, Any]:
    """The playbooks an analyst may run in an XSOAR account (not hidden, not deprecated), asked of
    XSOAR now. Tenant administrators: their own company's accounts only."""
    scope = await _scope(tx)
    if not scope.everything and (str(integration_id), account) not in scope.soar:
        raise not_found("XSOAR account")
    await _integration_available(tx, str(integration_id))
    try:
        answer = await call_ingestor(
            tx.app,
            "CORTEX_XSOAR",
            "/internal/playbooks",
            {"integration_id": str(integration_id), "account": account},
        )
    except Exception as exc:  # noqa: BLE001 - the ingestor's and the vendor's faults, in our shape
        from soc_tenant.integrations.clients import UpstreamRejected

        if isinstance(exc, UpstreamRejected) and exc.status in (404, 502):
            err = exc.error()
            raise ApiError(
                502,
                "vendor_error",
                str(err.get("message") or "XSOAR did not answer"),
                {"category": (err.get("details") or {}).get("category", "vendor_error")},
            ) from None
        raise ingestor_error("CORTEX_XSOAR", exc) from None
    items = list((answer or {}).get("items") or [])
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


async def _ticket(tx: Tx, ticket_pk: int) -> tuple[dict[str, Any], uuid.UUID | None]:
    return await _record(
        tx, rt.itsm_ticket, ticket_pk, "ticket", Scope.itsm_filter, itsm_mapping, "account_id", "account_id"
    )


@router.post(
    "/tenant/itsm-tickets/{ticket_pk}/notes/",
    status_code=202,
    response_model=VendorAction,
    responses=ACCEPTED,
)
async def add_ticket_note(
    tx: ControlTx,
    principal: UserWriter,
    ticket_pk: Annotated[int, Path(ge=0, le=BIGINT)],
    body: TicketNoteIn,
    idempotency_key: IdempotencyKey,
) -> dict[str, Any]:
    """Add a note to the SDP request. Any user who may write (tenant users: their own company's
    tickets)."""
    fp = fingerprint("sdp.ticket.note", "ticket", str(ticket_pk), body)
    if (done := await replay(tx, idempotency_key, fp)) is not None:
        return done
    row, company_id = await _ticket(tx, ticket_pk)
    params = TicketNote(ticket_id=row["ticket_id"], **body.model_dump()).model_dump(mode="json")
    return _as_view(
        await accept(
            tx,
            idempotency_key,
            action="sdp.ticket.note",
            vendor="sdp",
            integration_id=row["integration_id"],
            vendor_tenant=row["account_id"] or "",
            company_id=company_id,
            target_type="ticket",
            target_id=str(ticket_pk),
            params=params,
            request_fingerprint=fp,
        )
    )


@router.post(
    "/tenant/itsm-tickets/{ticket_pk}/status/",
    status_code=202,
    response_model=VendorAction,
    responses=ACCEPTED,
)
async def change_ticket_status(
    tx: ControlTx,
    principal: UserWriter,
    ticket_pk: Annotated[int, Path(ge=0, le=BIGINT)],
    body: TicketStatusIn,
    idempotency_key: IdempotencyKey,
) -> dict[str, Any]:
    """Change the SDP request's status (optionally with a resolution). Any user who may write
    (tenant users: their own company's tickets)."""
    fp = fingerprint("sdp.ticket.status", "ticket", str(ticket_pk), body)
    if (done := await replay(tx, idempotency_key, fp)) is not None:
        return done
    row, company_id = await _ticket(tx, ticket_pk)
    params = TicketStatus(ticket_id=row["ticket_id"], **body.model_dump()).model_dump(mode="json")
    return _as_view(
        await accept(
            tx,
            idempotency_key,
            action="sdp.ticket.status",
            vendor="sdp",
            integration_id=row["integration_id"],
            vendor_tenant=row["account_id"] or "",
            company_id=company_id,
            target_type="ticket",
            target_id=str(ticket_pk),
            params=params,
            request_fingerprint=fp,
        )
    )


def _visible(principal: Principal) -> list[Any]:
    """Admins see every action (row-level security); others the ones they asked for."""
    return [] if principal.is_admin else [vendor_action.c.requested_by == principal.sub]


@router.get("/tenant/actions/{command_id}/", response_model=VendorAction)
async def get_action(
    tx: ControlTx, principal: Person, command_id: Annotated[uuid.UUID, Path()]
) -> dict[str, Any]:
    """One action and its outcome (the asker's own; admins any)."""
    row = (
        (
            await tx.session.execute(
                sa.select(vendor_action).where(vendor_action.c.id == command_id, *_visible(principal))
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found("action")
    return _as_view(dict(row))


@router.get("/tenant/actions/", response_model=Page[VendorAction])
async def list_actions(
    tx: ControlTx,
    principal: Person,
    paging: Paging,
    status: Literal["accepted", "succeeded", "failed", "expired"] | None = None,
    target_type: Literal["offense", "incident", "ticket"] | None = None,
    target_id: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """The caller's actions, newest first (admins: everyone's)."""
    a = vendor_action.c
    where = _visible(principal)
    if status:
        where.append(a.status == status)
    if target_type:
        where.append(a.target_type == target_type)
    if target_id:
        where.append(a.target_id == target_id)
    total = (
        await tx.session.execute(sa.select(sa.func.count()).select_from(vendor_action).where(*where))
    ).scalar_one()
    rows = (
        await tx.session.execute(
            sa.select(vendor_action)
            .where(*where)
            .order_by(a.requested_at.desc(), a.id)
            .limit(paging.limit)
            .offset(paging.offset)
        )
    ).mappings()
    return page([_as_view(dict(r)) for r in rows], total, paging)


# --- outcomes --------------------------------------------------------------------------------------
def _ingestor_principal(name: str) -> Principal:
    return Principal(sub=name, username=name, kind="service", jti=f"outcome-{uuid.uuid4().hex}", exp=0)


async def apply_outcome(app: FastAPI, outcome: ActionCompleted, ingestor: str) -> bool:
    """Store an outcome on its action (once: a repeat changes nothing), audit it and stage the live
    push. Answers whether it changed the row."""
    try:
        command_id = uuid.UUID(outcome.command_id)
    except ValueError:
        logger.warning("outcome for a command id that is not ours: {!r}", outcome.command_id[:64])
        return False
    async with scoped_tx(app, _ingestor_principal(ingestor)) as tx:
        a = vendor_action.c
        before = (
            (await tx.session.execute(sa.select(vendor_action).where(a.id == command_id).with_for_update()))
            .mappings()
            .first()
        )
        if before is None or before["action"] != outcome.action:
            return False
        # An outcome finishes an accepted action; after an expiry only what the vendor really did
        # (a late success or failure, not the ingestor's own "expired") replaces it.
        late = before["status"] == "expired" and not (
            outcome.status == "expired" or (outcome.error is not None and outcome.error.category == "expired")
        )
        if before["status"] != "accepted" and not late:
            return False
        after = (
            (
                await tx.session.execute(
                    sa.update(vendor_action)
                    .where(a.id == command_id)
                    .values(
                        status=outcome.status,
                        result=outcome.result or None,
                        error=outcome.error.model_dump() if outcome.error else None,
                        attempts=outcome.attempts,
                        finished_at=outcome.finished_at,
                    )
                    .returning(*vendor_action.c)
                )
            )
            .mappings()
            .one()
        )
        await audit.record(
            tx,
            f"vendor_action.{outcome.status}",
            "vendor_action",
            command_id,
            company_id=before["company_id"],
            before={"status": before["status"]},
            after={
                "status": outcome.status,
                "requested_by": before["requested_by"],
                "result": outcome.result or None,
                "error": outcome.error.model_dump() if outcome.error else None,
            },
        )
        await tx.publish(
            "tenant.action.updated",
            ActionCompleted.model_validate({**outcome.model_dump(), "requested_by": after["requested_by"]}),
            subject=str(command_id),
        )
    return True


EXPIRED_MESSAGE = "no outcome from the ingestor before the action expired; it will not be started any more"


async def expire_due(app: FastAPI, now: datetime | None = None, limit: int = 200) -> int:
    """End ``expired`` the accepted actions whose ``expires_at`` passed (``now``: for tests), each
    audited and pushed to its asker like an outcome. Replicas share the work (SKIP LOCKED).
    Answers how many expired."""
    now = now or datetime.now(UTC)
    a = vendor_action.c
    async with scoped_tx(app, _ingestor_principal("tenant")) as tx:
        due = (
            sa.select(a.id)
            .where(a.status == "accepted", a.expires_at <= now)
            .order_by(a.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        error = {"category": "expired", "message": EXPIRED_MESSAGE}
        rows = (
            (
                await tx.session.execute(
                    sa.update(vendor_action)
                    .where(a.id.in_(due), a.status == "accepted")
                    .values(status="expired", error=error, finished_at=now)
                    .returning(*vendor_action.c)
                )
            )
            .mappings()
            .all()
        )
        for row in rows:
            await audit.record(
                tx,
                "vendor_action.expired",
                "vendor_action",
                row["id"],
                company_id=row["company_id"],
                before={"status": "accepted"},
                after={
                    "status": "expired",
                    "requested_by": row["requested_by"],
                    "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
                    "error": error,
                },
            )
            await tx.publish(
                "tenant.action.updated",
                ActionCompleted(
                    command_id=str(row["id"]),
                    idempotency_key=row["idempotency_key"],
                    action=row["action"],
                    company_id=str(row["company_id"]) if row["company_id"] else None,
                    requested_by=row["requested_by"],
                    status="expired",
                    error=ActionError(**error),
                    attempts=int(row["attempts"] or 0),
                    finished_at=now,
                ),
                subject=str(row["id"]),
            )
    if rows:
        logger.info("{} vendor action(s) expired without an outcome", len(rows))
    return len(rows)


def expiry_loop(app: FastAPI) -> BackgroundLoop:
    """:func:`expire_due` every ``action_expiry_check_seconds``."""
    settings = app.state.settings

    async def step() -> None:
        while await expire_due(app) >= 200:  # a backlog goes at once, a page at a time
            pass

    return BackgroundLoop(
        "tenant-action-expiry", step, interval=settings.action_expiry_check_seconds, immediate=True
    )


async def start_consumer(app: FastAPI) -> BatchConsumer:
    async def handle(deliveries: list[Delivery]) -> None:
        for d in deliveries:
            if not isinstance(d.payload, ActionCompleted):
                continue
            prefix = OUTCOME_SOURCES.get(d.routing_key)
            if prefix is None or not d.envelope.source.startswith(prefix):
                logger.warning("{} from {!r} ignored", d.routing_key, d.envelope.source[:64])
                continue
            await apply_outcome(app, d.payload, prefix.strip("/"))

    consumer = BatchConsumer(
        app.state.bus,
        "tenant.control.actions",
        list(OUTCOME_SOURCES),
        handle,
        batch_size=50,
        max_wait=0.02,
    )
    await consumer.start()
    return consumer
