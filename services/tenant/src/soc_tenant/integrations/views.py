"""Integrations: CRUD, credential sealing and rotation, test-connection and sync-now through the owning
ingestor, sync reports and status, and the internal API the ingestors call.

Credentials are sealed with ``app.state.sealer`` bound to ``integration:<id>`` before they touch the
database, are never returned (only masked), never logged and never published: ingestors fetch them
just in time from ``GET /internal/integrations/{id}/credentials`` with a service token.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Query, Response
from loguru import logger
from pydantic import Field
from soc_shared.api import Choice, Page
from soc_shared.bus import BatchConsumer, Delivery
from soc_shared.crypto import SealError, mask
from soc_shared.egress import origin_of
from soc_shared.errors import ApiError
from soc_shared.events import IntegrationChanged, SyncReported
from soc_shared.security import Principal, ServicePrincipal, require_caller
from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult, SyncNowRequest
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.audit import views as audit
from soc_tenant.control.deps import (
    AdminReader,
    AdminWriter,
    ControlTx,
    Paging,
    Tx,
    as_uuid,
    full_list,
    invalid,
    not_found,
    page,
)
from soc_tenant.control.models import NO_CONTROL_CHARS, SearchText, Strict, text_rule
from soc_tenant.control.options import options
from soc_tenant.control.tables import (
    company,
    integration,
    itsm_mapping,
    qradar_mapping,
    soar_mapping,
    sync_report,
)
from soc_tenant.integrations.catalog import CREDENTIAL_KIND_LABELS, SUBTYPES, TYPES, types_view
from soc_tenant.integrations.clients import (
    INGESTOR_BY_SUBTYPE,
    UpstreamRejected,
    UpstreamUnavailable,
    call_ingestor,
    ingestor_error,
)
from soc_tenant.integrations.responses import (
    ConnectionTest,
    Integration,
    IntegrationInstances,
    IntegrationTypeInfo,
    SyncScheduled,
    VendorSyncStarted,
)
from soc_tenant.integrations.validation import Connection, ca_summary, check_connection
from soc_tenant.tickets.policy import resolve_rule

router = APIRouter(tags=["integrations"])
internal_router = APIRouter(prefix="/internal", tags=["internal"])

IntegrationType = Literal["SIEM", "SOAR", "ITSM", "THREAT_INTELLIGENCE"]
SubtypeName = Literal["IBM_QRADAR", "CORTEX_XSOAR", "MANAGEENGINE_SDP", "CYWARE"]
CredentialKindName = Literal["API_KEY", "USERNAME_PASSWORD", "SECRET_KEY_ACCESS_KEY", "OAUTH_CLIENT"]
Status = Literal["pending", "active", "error", "disabled"]
InstanceName = Annotated[str, text_rule(100), NO_CONTROL_CHARS]

# Failures that no retry will fix: the integration is in error at once.
CREDENTIAL_CATEGORIES = {"bad_credentials", "permission", "tls", "clock"}

HINTS = {
    "unreachable": "The vendor host could not be reached: check the base URL, DNS, port and firewall rules.",
    "timeout": "The vendor did not answer in time: check the network path and the vendor's load.",
    "tls": "The TLS handshake failed: provide the vendor's CA certificate, or check the host name in the URL.",
    "bad_credentials": "The vendor refused the credentials: check or rotate them.",
    "permission": "The credentials are valid but lack a permission the sync needs.",
    "not_found": "The vendor answered 404: check the base URL's path (and the API version).",
    "invalid_request": "The vendor refused the request: check the settings (API version, account).",
    "rate_limited": "The vendor is rate limiting: try again in a moment.",
    "server_error": "The vendor answered with a server error: try again later.",
    "bad_response": "The vendor's answer was not what its API should return: is this the right product and URL?",
    "clock": "A signature or token was refused for its time: check the clocks.",
    "invalid_request_settings": "The ingestor could not build a client from these settings.",
    "egress_denied": "The URL resolves to an internal address (loopback, link-local, private): an operator "
    "must admit it with SOC_EGRESS_ALLOW.",
}

# A saved integration's credentials were entered for one origin (scheme, host, port): sending them
# anywhere else needs them typed again, or whoever can edit an integration could aim the stored
# secret at a host of their own.
CREDENTIALS_REQUIRED = "credentials_required_for_new_origin"


def require_credentials_for(old_url: str, new_url: str, has_credentials: bool) -> None:
    if has_credentials or origin_of(old_url) == origin_of(new_url):
        return
    raise ApiError(
        422,
        CREDENTIALS_REQUIRED,
        "the scheme, host or port changed: enter the credentials again for the new address",
        {
            "errors": [
                {"loc": ["body", "credentials"], "msg": "required for a new origin", "type": "missing"}
            ],
            "saved_origin": origin_of(old_url),
            "new_origin": origin_of(new_url),
        },
    )


# --- bodies ----------------------------------------------------------------------------------------
class ConnectionFields(Strict):
    base_url: str = Field(max_length=2048)
    port: int | None = Field(default=None, ge=1, le=65535, description="when the base URL names none")
    verify_tls: bool = True
    ca_pem: str | None = Field(default=None, max_length=65536, description="custom CA certificate(s), PEM")
    credential_kind: CredentialKindName | None = Field(
        default=None, description="default: the subtype's first kind"
    )
    credentials: dict[str, Any]
    settings: dict[str, Any] = Field(default_factory=dict)


class IntegrationCreate(ConnectionFields):
    integration_type: IntegrationType | None = None
    subtype: SubtypeName
    instance_name: InstanceName
    polling_interval_seconds: int = Field(default=300, ge=30, le=86400)
    company_id: uuid.UUID | None = Field(
        default=None, description="threat intelligence: the company it belongs to"
    )


class IntegrationUpdate(Strict):
    """Partial update; ``credentials`` (with ``credential_kind``) rotates them like ``PUT .../credentials/``."""

    instance_name: InstanceName | None = None
    base_url: str | None = Field(default=None, max_length=2048)
    port: int | None = Field(default=None, ge=1, le=65535)
    verify_tls: bool | None = None
    ca_pem: str | None = Field(default=None, max_length=65536)
    polling_interval_seconds: int | None = Field(default=None, ge=30, le=86400)
    settings: dict[str, Any] | None = None
    enabled: bool | None = Field(
        default=None, description="false disables (status disabled); true re-enables (pending)"
    )
    company_id: uuid.UUID | None = None
    credential_kind: CredentialKindName | None = None
    credentials: dict[str, Any] | None = None


class CredentialsRotate(Strict):
    credential_kind: CredentialKindName | None = None
    credentials: dict[str, Any]


class TestConnectionBody(Strict):
    """Either a saved integration (``integration_id`` alone), or a full unsaved configuration, or a saved
    integration with some fields replaced (tested as given, nothing saved)."""

    integration_id: uuid.UUID | None = None
    integration_type: IntegrationType | None = None
    subtype: SubtypeName | None = None
    instance_name: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=2048)
    port: int | None = Field(default=None, ge=1, le=65535)
    verify_tls: bool | None = None
    ca_pem: str | None = Field(default=None, max_length=65536)
    credential_kind: CredentialKindName | None = None
    credentials: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    polling_interval_seconds: int | None = Field(default=None, ge=30, le=86400)
    company_id: uuid.UUID | None = None


class SyncNowBody(Strict):
    resource: str | None = Field(default=None, max_length=100, pattern=r"^[a-z0-9_.-]+$")


class VendorSyncBody(SyncNowBody):
    integration_id: uuid.UUID | None = Field(
        default=None, description="one integration; without it, every enabled integration of the vendor"
    )


class RepublishBody(Strict):
    subtype: SubtypeName | None = None


# --- service ---------------------------------------------------------------------------------------
def aad(integration_id: uuid.UUID | str) -> str:
    return f"integration:{integration_id}"


def masked(credentials: dict[str, str]) -> dict[str, str]:
    return {name: mask(value) for name, value in credentials.items()}


_PUBLIC_COLUMNS = [c for c in integration.c if c.name not in ("credentials_sealed", "ca_pem")]


async def get_row(
    session: AsyncSession,
    integration_id: uuid.UUID,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> dict[str, Any]:
    stmt = sa.select(integration).where(integration.c.id == integration_id)
    if not include_deleted:
        stmt = stmt.where(integration.c.deleted_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise not_found("integration")
    return dict(row)


async def sync_reports_for(session: AsyncSession, ids: list[uuid.UUID]) -> dict[str, list[dict[str, Any]]]:
    if not ids:
        return {}
    r = sync_report
    rows = (
        (
            await session.execute(
                sa.select(r)
                .where(r.c.integration_id.in_([str(i) for i in ids]))
                .order_by(r.c.integration_id, r.c.resource)
            )
        )
        .mappings()
        .all()
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["integration_id"], []).append(
            {k: v for k, v in row.items() if k != "integration_id"}
        )
    return out


def integration_view(row: dict[str, Any], reports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {c.name: row[c.name] for c in _PUBLIC_COLUMNS}
    out["credentials"] = out.pop("credentials_masked")
    out["ca"] = ca_summary(row.get("ca_pem"))
    out["has_custom_ca"] = bool(row.get("ca_pem"))
    out["ingestor"] = INGESTOR_BY_SUBTYPE[row["subtype"]][0]
    out["deleted"] = row["deleted_at"] is not None
    if reports is not None:
        out["sync"] = reports
        out["last_sync_at"] = max((r["finished_at"] for r in reports), default=None)
    return out


def change_payload(row: dict[str, Any]) -> IntegrationChanged:
    return IntegrationChanged(
        integration_id=str(row["id"]),
        integration_type=row["integration_type"],
        subtype=row["subtype"],
        instance_name=row["instance_name"],
        status=row["status"],
        deleted=row["deleted_at"] is not None,
        base_url=row["base_url"],
        verify_tls=row["verify_tls"],
        polling_interval_seconds=row["polling_interval_seconds"],
        credential_kind=row["credential_kind"],
        credentials_version=row["credentials_version"],
        company_id=str(row["company_id"]) if row["company_id"] else None,
        settings=dict(row["settings"] or {}),
        changed_at=datetime.now(UTC),
    )


async def publish_integration_changed(tx: Tx, integration_id: uuid.UUID) -> None:
    row = await get_row(tx.session, integration_id, include_deleted=True)
    await tx.publish(
        "tenant.integration.changed",
        change_payload(row),
        subject=str(integration_id),
        integration_id=str(integration_id),
    )


def open_credentials(app: FastAPI, row: dict[str, Any]) -> dict[str, str]:
    try:
        return app.state.sealer.open_json(row["credentials_sealed"], aad(row["id"]))
    except SealError as exc:
        logger.error("credentials of integration {} cannot be opened: {}", row["id"], exc)
        raise ApiError(
            500,
            "credentials_unreadable",
            "the stored credentials cannot be opened (sealing key missing?); rotate them",
        ) from None


async def _check_company(
    session: AsyncSession, spec_company_scoped: bool, company_id: uuid.UUID | None, loc: list[str]
) -> None:
    if spec_company_scoped:
        if company_id is None:
            raise invalid(
                loc + ["company_id"], "a threat-intelligence integration belongs to one company", "missing"
            )
        found = (
            await session.execute(
                sa.select(company.c.id).where(company.c.id == company_id, company.c.deleted_at.is_(None))
            )
        ).first()
        if found is None:
            raise invalid(loc + ["company_id"], "no such company", "unknown_company")
    elif company_id is not None:
        raise invalid(
            loc + ["company_id"],
            "only threat-intelligence integrations belong to a company",
            "extra_forbidden",
        )


def _conflict_from(exc: IntegrityError) -> ApiError:
    text_ = str(exc.orig) if exc.orig is not None else str(exc)
    if "uq_integration_ti_company" in text_:
        return ApiError(
            409,
            "threat_intel_exists",
            "this company already has a threat-intelligence integration",
            {"field": "company_id"},
        )
    if "uq_integration_instance_name" in text_:
        return ApiError(
            409,
            "instance_name_taken",
            "an integration of this subtype already has this instance name",
            {"field": "instance_name"},
        )
    return ApiError(409, "conflict", "the integration conflicts with an existing one")


async def create_integration(tx: Tx, body: IntegrationCreate) -> uuid.UUID:
    conn = check_connection(
        subtype=body.subtype,
        integration_type=body.integration_type,
        base_url=body.base_url,
        port=body.port,
        verify_tls=body.verify_tls,
        ca_pem=body.ca_pem,
        credential_kind=body.credential_kind,
        credentials=body.credentials,
        settings=body.settings,
    )
    spec = SUBTYPES[conn.subtype]
    await _check_company(tx.session, spec.company_scoped, body.company_id, ["body"])
    integration_id = uuid.uuid4()
    values = {
        "id": integration_id,
        "integration_type": spec.integration_type,
        "subtype": spec.subtype,
        "instance_name": body.instance_name,
        "base_url": conn.base_url,
        "verify_tls": conn.verify_tls,
        "ca_pem": conn.ca_pem,
        "polling_interval_seconds": body.polling_interval_seconds,
        "credential_kind": conn.credential_kind,
        "credentials_sealed": tx.app.state.sealer.seal(conn.credentials, aad(integration_id)),
        "credentials_masked": masked(conn.credentials),
        "credentials_version": 1,
        "credentials_rotated_at": sa.func.now(),
        "settings": conn.settings,
        "status": "pending",
        "company_id": body.company_id,
        "created_by": tx.principal.sub,
        "modified_by": tx.principal.sub,
    }
    try:
        async with tx.session.begin_nested():
            await tx.session.execute(sa.insert(integration).values(**values))
    except IntegrityError as exc:
        raise _conflict_from(exc) from None
    await publish_integration_changed(tx, integration_id)
    logger.info(
        "integration {} ({} {!r}) created by {}",
        integration_id,
        spec.subtype,
        body.instance_name,
        tx.principal.sub,
    )
    return integration_id


def _rotation_values(tx: Tx, row: dict[str, Any], conn: Connection) -> dict[str, Any]:
    return {
        "credential_kind": conn.credential_kind,
        "credentials_sealed": tx.app.state.sealer.seal(conn.credentials, aad(row["id"])),
        "credentials_masked": masked(conn.credentials),
        "credentials_version": row["credentials_version"] + 1,
        "credentials_rotated_at": sa.func.now(),
    }


async def update_integration(tx: Tx, integration_id: uuid.UUID, body: IntegrationUpdate) -> None:
    row = await get_row(tx.session, integration_id, for_update=True)
    changes = body.model_dump(exclude_unset=True)
    for key in ("instance_name", "base_url", "verify_tls", "polling_interval_seconds", "enabled"):
        if key in changes and changes[key] is None:
            raise invalid(["body", key], "must not be null")
    if "credential_kind" in changes and "credentials" not in changes:
        raise invalid(["body", "credentials"], "a new credential kind needs its credentials", "missing")
    spec = SUBTYPES[row["subtype"]]
    stored = open_credentials(tx.app, row) if "credentials" not in changes else None
    conn = check_connection(
        subtype=row["subtype"],
        integration_type=None,
        base_url=changes.get("base_url", row["base_url"]),
        port=changes.get("port"),
        verify_tls=changes.get("verify_tls", row["verify_tls"]),
        ca_pem=changes["ca_pem"] if "ca_pem" in changes else row["ca_pem"],
        credential_kind=changes.get("credential_kind") or row["credential_kind"],
        credentials=changes["credentials"] if "credentials" in changes else stored,
        settings=changes["settings"] if changes.get("settings") is not None else row["settings"],
    )
    values: dict[str, Any] = {
        "base_url": conn.base_url,
        "verify_tls": conn.verify_tls,
        "ca_pem": conn.ca_pem,
        "settings": conn.settings,
    }
    if "instance_name" in changes:
        values["instance_name"] = changes["instance_name"]
    if "polling_interval_seconds" in changes:
        values["polling_interval_seconds"] = changes["polling_interval_seconds"]
    if "company_id" in changes:
        await _check_company(tx.session, spec.company_scoped, changes["company_id"], ["body"])
        values["company_id"] = changes["company_id"]
    connection_changed = (
        conn.base_url != row["base_url"]
        or conn.verify_tls != row["verify_tls"]
        or conn.ca_pem != row["ca_pem"]
    )
    require_credentials_for(row["base_url"], conn.base_url, "credentials" in changes)
    if "credentials" in changes:
        values.update(_rotation_values(tx, row, conn))
        connection_changed = True
    status = row["status"]
    if changes.get("enabled") is False:
        status = "disabled"
    elif changes.get("enabled") is True and status == "disabled":
        status = "pending"
        values["health_since"] = sa.func.now()
    elif connection_changed and status != "disabled":
        status = "pending"  # a new address or new credentials must prove themselves again
    if connection_changed:
        values["health_since"] = sa.func.now()
    if status != row["status"]:
        values.update(status=status, status_message=None, status_changed_at=sa.func.now())
    try:
        async with tx.session.begin_nested():
            await tx.session.execute(
                sa.update(integration)
                .where(integration.c.id == integration_id)
                .values(**values, modified_by=tx.principal.sub, updated_at=sa.func.now())
            )
    except IntegrityError as exc:
        raise _conflict_from(exc) from None
    await publish_integration_changed(tx, integration_id)


async def rotate_credentials(tx: Tx, integration_id: uuid.UUID, body: CredentialsRotate) -> None:
    await update_integration(
        tx,
        integration_id,
        IntegrationUpdate(credential_kind=body.credential_kind, credentials=body.credentials),
    )
    logger.info("credentials of integration {} rotated by {}", integration_id, tx.principal.sub)


async def delete_integration(tx: Tx, integration_id: uuid.UUID) -> None:
    await get_row(tx.session, integration_id, for_update=True)
    await tx.session.execute(
        sa.update(integration)
        .where(integration.c.id == integration_id)
        .values(
            deleted_at=sa.func.now(),
            status="disabled",
            status_changed_at=sa.func.now(),
            modified_by=tx.principal.sub,
            updated_at=sa.func.now(),
        )
    )
    for table in (qradar_mapping, soar_mapping, itsm_mapping):
        await tx.session.execute(
            sa.update(table)
            .where(table.c.integration_id == str(integration_id), table.c.active)
            .values(active=False, inactive_reason="integration_deleted", updated_at=sa.func.now())
        )
    await publish_integration_changed(tx, integration_id)
    logger.info("integration {} deleted by {}", integration_id, tx.principal.sub)


# --- test-connection -------------------------------------------------------------------------------
async def ask_ingestor_to_test(app: FastAPI, conn: Connection) -> ConnectionTestResult:
    request = ConnectionTestRequest(
        subtype=conn.subtype,
        base_url=conn.base_url,
        verify_tls=conn.verify_tls,
        ca_pem=conn.ca_pem,
        credential_kind=conn.credential_kind,
        credentials=conn.credentials,
        settings=conn.settings,
    )
    try:
        answer = await call_ingestor(
            app, conn.subtype, "/internal/test-connection", request.model_dump(mode="json")
        )
    except (UpstreamUnavailable, UpstreamRejected) as exc:
        raise ingestor_error(conn.subtype, exc) from None
    try:
        return ConnectionTestResult.model_validate(answer)
    except Exception:
        name = INGESTOR_BY_SUBTYPE[conn.subtype][0]
        raise ApiError(
            502,
            "ingestor_error",
            f"the {name} service gave an answer that is not a test result",
            {"category": "ingestor_bad_response", "ingestor": name},
        ) from None


def result_view(result: ConnectionTestResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "category": None if result.ok else (result.category or "unknown"),
        "message": result.message,
        "hint": None if result.ok else HINTS.get(result.category or ""),
        "details": result.details,
        "tested_at": datetime.now(UTC),
    }


async def test_connection(tx: Tx, body: TestConnectionBody) -> dict[str, Any]:
    """:func:`_test_connection`, recorded in the audit trail with who asked and the outcome (a saved
    integration's status may change with it); never the credentials tried."""
    result = await _test_connection(tx, body)
    company_id = None
    if body.integration_id is not None:
        company_id = (await get_row(tx.session, body.integration_id))["company_id"]
    await audit.record(
        tx,
        "integration.connection_tested",
        "integration",
        body.integration_id,
        company_id=company_id,
        after={
            "ok": result.get("ok"),
            "category": result.get("category"),
            "saved": result.get("saved"),
            "status": result.get("status"),
            **({"subtype": body.subtype, "base_url": body.base_url} if body.integration_id is None else {}),
        },
    )
    return result


async def _test_connection(tx: Tx, body: TestConnectionBody) -> dict[str, Any]:
    given = body.model_dump(
        exclude_unset=True,
        exclude={"integration_id", "instance_name", "polling_interval_seconds", "company_id"},
    )
    if body.integration_id is None:
        if body.subtype is None or body.base_url is None or body.credentials is None:
            missing = [k for k in ("subtype", "base_url", "credentials") if getattr(body, k) is None]
            raise ApiError(
                422,
                "validation_error",
                "the request is not valid",
                {
                    "errors": [
                        {
                            "loc": ["body", k],
                            "msg": "required to test an unsaved integration (or send integration_id)",
                            "type": "missing",
                        }
                        for k in missing
                    ]
                },
            )
        conn = check_connection(
            subtype=body.subtype,
            integration_type=body.integration_type,
            base_url=body.base_url,
            port=body.port,
            verify_tls=True if body.verify_tls is None else body.verify_tls,
            ca_pem=body.ca_pem,
            credential_kind=body.credential_kind,
            credentials=body.credentials,
            settings=body.settings or {},
        )
        result = await ask_ingestor_to_test(tx.app, conn)
        return {**result_view(result), "integration_id": None, "saved": False}

    row = await get_row(tx.session, body.integration_id)
    if body.subtype is not None and body.subtype != row["subtype"]:
        raise invalid(["body", "subtype"], "differs from the saved integration's subtype", "subtype_mismatch")
    overrides = {k: v for k, v in given.items() if k not in ("subtype", "integration_type")}
    if "credential_kind" in overrides and "credentials" not in overrides:
        raise invalid(["body", "credentials"], "a new credential kind needs its credentials", "missing")
    conn = check_connection(
        subtype=row["subtype"],
        integration_type=None,
        base_url=overrides.get("base_url") or row["base_url"],
        port=overrides.get("port"),
        verify_tls=row["verify_tls"] if overrides.get("verify_tls") is None else overrides["verify_tls"],
        ca_pem=overrides["ca_pem"] if "ca_pem" in overrides else row["ca_pem"],
        credential_kind=overrides.get("credential_kind") or row["credential_kind"],
        credentials=overrides["credentials"]
        if overrides.get("credentials") is not None
        else open_credentials(tx.app, row),
        settings=overrides["settings"] if overrides.get("settings") is not None else row["settings"],
    )
    require_credentials_for(row["base_url"], conn.base_url, overrides.get("credentials") is not None)
    result = await ask_ingestor_to_test(tx.app, conn)
    view = result_view(result)
    if overrides:
        # Replaced fields were tested, not saved: the saved integration's status says nothing of them.
        return {**view, "integration_id": str(row["id"]), "saved": False, "status": row["status"]}
    return {
        **view,
        "integration_id": str(row["id"]),
        "saved": True,
        "status": await record_test(tx, row, view),
    }


async def record_test(tx: Tx, row: dict[str, Any], view: dict[str, Any]) -> str:
    """A tested saved integration: success activates it, failure puts it in error (unless disabled)."""
    status = row["status"]
    if status != "disabled":
        status = "active" if view["ok"] else "error"
    values: dict[str, Any] = {
        "last_tested_at": sa.func.now(),
        "last_test": {k: v for k, v in view.items() if k != "tested_at"},
    }
    if status != row["status"] or (status == "error" and row["status_message"] != view["message"]):
        values.update(
            status=status,
            status_message=None if view["ok"] else str(view["message"])[:500],
            status_changed_at=sa.func.now(),
        )
    await tx.session.execute(sa.update(integration).where(integration.c.id == row["id"]).values(**values))
    if status != row["status"]:
        await publish_integration_changed(tx, row["id"])
    return status


# --- sync reports from the ingestors ----------------------------------------------------------------
async def apply_sync_reports(app: FastAPI, reports: list[SyncReported]) -> None:
    latest: dict[tuple[str, str], SyncReported] = {}
    for report in reports:
        key = (report.integration_id, report.resource)
        if key not in latest or report.finished_at >= latest[key].finished_at:
            latest[key] = report
    if not latest:
        return
    r = sync_report
    async with app.state.db.sessionmaker() as session:
        async with session.begin():
            for report in latest.values():
                values = {
                    "outcome": report.outcome,
                    "started_at": report.started_at,
                    "finished_at": report.finished_at,
                    "records": report.records,
                    "error_category": report.error_category,
                    "error_message": (report.error_message or None) and report.error_message[:1000],
                    "consecutive_failures": report.consecutive_failures,
                    "last_success_at": report.finished_at if report.outcome == "ok" else None,
                }
                stmt = insert(r).values(
                    integration_id=report.integration_id, resource=report.resource, **values
                )
                update: dict[str, Any] = {k: stmt.excluded[k] for k in values if k != "last_success_at"}
                update["last_success_at"] = sa.func.coalesce(
                    stmt.excluded.last_success_at, r.c.last_success_at
                )
                update["received_at"] = sa.func.now()
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["integration_id", "resource"],
                        set_=update,
                        where=r.c.finished_at <= stmt.excluded.finished_at,
                    )
                )
            tx = Tx(app, session, None)  # type: ignore[arg-type]
            for integration_id in {k[0] for k in latest}:
                await _status_from_reports(tx, integration_id)
        await tx.committed()


async def _status_from_reports(tx: Tx, integration_id: str) -> None:
    try:
        iid = uuid.UUID(integration_id)
    except ValueError:
        return
    row = (
        (await tx.session.execute(sa.select(integration).where(integration.c.id == iid).with_for_update()))
        .mappings()
        .first()
    )
    if row is None or row["deleted_at"] is not None or row["status"] == "disabled":
        return
    reports = (
        (
            await tx.session.execute(
                sa.select(sync_report).where(
                    sync_report.c.integration_id == integration_id,
                    sync_report.c.finished_at >= row["health_since"],
                )
            )
        )
        .mappings()
        .all()
    )
    threshold = options(tx.app).error_after_failures
    failing = [
        x
        for x in reports
        if x["outcome"] == "error"
        and (x["error_category"] in CREDENTIAL_CATEGORIES or x["consecutive_failures"] >= threshold)
    ]
    if failing:
        worst = failing[0]
        status, message = (
            "error",
            f"{worst['resource']}: [{worst['error_category']}] {worst['error_message'] or ''}".strip(),
        )
    elif any(x["outcome"] == "ok" for x in reports):
        status, message = "active", None
    else:
        return
    if status == row["status"] and (message or None) == (row["status_message"] or None):
        return
    await tx.session.execute(
        sa.update(integration)
        .where(integration.c.id == iid)
        .values(status=status, status_message=message and message[:500], status_changed_at=sa.func.now())
    )
    if status != row["status"]:
        logger.info("integration {} is now {} ({})", iid, status, message or "sync ok")
        await publish_integration_changed(tx, iid)


async def start_consumer(app: FastAPI) -> BatchConsumer:
    async def handle(deliveries: list[Delivery]) -> None:
        await apply_sync_reports(app, [d.payload for d in deliveries if isinstance(d.payload, SyncReported)])

    consumer = BatchConsumer(
        app.state.bus, "tenant.control.sync-reports", ["ingest.sync.reported"], handle, batch_size=200
    )
    await consumer.start()
    return consumer


# --- routes ----------------------------------------------------------------------------------------
@router.get("/integration/types/", response_model=Page[IntegrationTypeInfo])
async def integration_types(principal: AdminReader) -> dict[str, Any]:
    """Types, subtypes, the credential kinds each accepts and their fields (which are secret)."""
    return full_list(types_view())


@router.get("/integration/credential-types/", response_model=Page[Choice])
async def credential_types(principal: AdminReader) -> dict[str, Any]:
    return full_list([{"value": k, "label": v} for k, v in CREDENTIAL_KIND_LABELS.items()])


@router.get("/integration/instances/", response_model=Page[IntegrationInstances])
async def integration_instances(
    tx: ControlTx,
    principal: AdminReader,
    integration_type: Annotated[IntegrationType | None, Query()] = None,
) -> dict[str, Any]:
    """Instances per type and subtype (for pickers)."""
    i = integration
    stmt = (
        sa.select(i.c.id, i.c.integration_type, i.c.subtype, i.c.instance_name, i.c.status, i.c.company_id)
        .where(i.c.deleted_at.is_(None))
        .order_by(i.c.integration_type, i.c.subtype, sa.func.lower(i.c.instance_name))
    )
    if integration_type:
        stmt = stmt.where(i.c.integration_type == integration_type)
    rows = (await tx.session.execute(stmt)).mappings().all()
    groups: dict[str, dict[str, Any]] = {}
    for t in TYPES:
        if integration_type and t != integration_type:
            continue
        for s in (s for s in SUBTYPES.values() if s.integration_type == t):
            groups[s.subtype] = {
                "integration_type": t,
                "subtype": s.subtype,
                "label": s.label,
                "instances": [],
            }
    for row in rows:
        groups[row["subtype"]]["instances"].append(
            {
                "id": row["id"],
                "instance_name": row["instance_name"],
                "status": row["status"],
                "company_id": row["company_id"],
            }
        )
    return full_list(list(groups.values()))


@router.get("/integration/", response_model=Page[Integration])
async def list_integrations(
    tx: ControlTx,
    principal: AdminReader,
    paging: Paging,
    integration_type: IntegrationType | None = None,
    subtype: SubtypeName | None = None,
    status: Status | None = None,
    company_id: uuid.UUID | None = None,
    q: SearchText = None,
    include_deleted: bool = False,
    sort: Literal["instance_name", "-instance_name", "created_at", "-created_at", "status"] = "instance_name",
) -> dict[str, Any]:
    i = integration
    stmt = sa.select(integration)
    if not include_deleted:
        stmt = stmt.where(i.c.deleted_at.is_(None))
    for column, value in (
        (i.c.integration_type, integration_type),
        (i.c.subtype, subtype),
        (i.c.status, status),
        (i.c.company_id, company_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if q:
        stmt = stmt.where(
            i.c.instance_name.ilike(
                "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", escape="\\"
            )
        )
    total = (await tx.session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    order = {
        "instance_name": sa.func.lower(i.c.instance_name),
        "created_at": i.c.created_at,
        "status": i.c.status,
    }[sort.lstrip("-")]
    stmt = stmt.order_by(order.desc() if sort.startswith("-") else order, i.c.id)
    rows = [
        dict(r)
        for r in (await tx.session.execute(stmt.limit(paging.limit).offset(paging.offset))).mappings().all()
    ]
    reports = await sync_reports_for(tx.session, [r["id"] for r in rows])
    return page([integration_view(r, reports.get(str(r["id"]), [])) for r in rows], total, paging)


@router.post("/integration/", status_code=201, response_model=Integration)
async def create_integration_route(
    tx: ControlTx, principal: AdminWriter, body: IntegrationCreate
) -> dict[str, Any]:
    integration_id = await create_integration(tx, body)
    row = await get_row(tx.session, integration_id)
    view = integration_view(row, [])
    await audit.record(
        tx, "integration.created", "integration", integration_id, company_id=row["company_id"], after=view
    )
    return view


@router.post("/integration/test-connection/", response_model=ConnectionTest)
async def test_connection_route(
    tx: ControlTx, principal: AdminWriter, body: TestConnectionBody
) -> dict[str, Any]:
    """Asks the owning ingestor to reach the vendor: ``ok`` with a message, or the failure's
    ``category`` (unreachable, timeout, tls, bad_credentials, permission, not_found, rate_limited,
    server_error, bad_response...) with a hint. An ingestor that cannot be reached answers 502
    ``ingestor_unavailable``. Success activates a saved integration."""
    return await test_connection(tx, body)


@router.get("/integration/{integration_id}/", response_model=Integration)
async def get_integration_route(
    tx: ControlTx, principal: AdminReader, integration_id: uuid.UUID
) -> dict[str, Any]:
    row = await get_row(tx.session, integration_id, include_deleted=True)
    return integration_view(
        row, (await sync_reports_for(tx.session, [integration_id])).get(str(integration_id), [])
    )


@router.put("/integration/{integration_id}/", response_model=Integration)
async def update_integration_route(
    tx: ControlTx, principal: AdminWriter, integration_id: uuid.UUID, body: IntegrationUpdate
) -> dict[str, Any]:
    before = await get_integration_route(tx, principal, integration_id)
    await update_integration(tx, integration_id, body)
    view = await get_integration_route(tx, principal, integration_id)
    await audit.record(
        tx,
        "integration.updated",
        "integration",
        integration_id,
        company_id=view.get("company_id"),
        before=before,
        after=view,
    )
    return view


@router.put("/integration/{integration_id}/credentials/", response_model=Integration)
async def rotate_credentials_route(
    tx: ControlTx, principal: AdminWriter, integration_id: uuid.UUID, body: CredentialsRotate
) -> dict[str, Any]:
    before = await get_integration_route(tx, principal, integration_id)
    await rotate_credentials(tx, integration_id, body)
    view = await get_integration_route(tx, principal, integration_id)
    await audit.record(
        tx,
        "integration.credentials_rotated",
        "integration",
        integration_id,
        company_id=view.get("company_id"),
        before=before,
        after=view,
    )
    return view


@router.delete("/integration/{integration_id}/", status_code=204)
async def delete_integration_route(
    tx: ControlTx, principal: AdminWriter, integration_id: uuid.UUID
) -> Response:
    before = await get_integration_route(tx, principal, integration_id)
    await delete_integration(tx, integration_id)
    await audit.record(
        tx,
        "integration.deleted",
        "integration",
        integration_id,
        company_id=before.get("company_id"),
        before=before,
    )
    return Response(status_code=204)


@router.post("/integration/{integration_id}/test-connection/", response_model=ConnectionTest)
async def test_saved_connection_route(
    tx: ControlTx, principal: AdminWriter, integration_id: uuid.UUID
) -> dict[str, Any]:
    return await test_connection(tx, TestConnectionBody(integration_id=integration_id))


# --- sync now ---------------------------------------------------------------------------------------
async def sync_now(
    tx: Tx, integration_id: uuid.UUID, resource: str | None, *, subtype: str | None = None
) -> dict[str, Any]:
    row = await get_row(tx.session, integration_id)
    if subtype is not None and row["subtype"] != subtype:
        raise invalid(["body", "integration_id"], f"not a {subtype} integration", "wrong_integration_type")
    if row["status"] == "disabled":
        raise ApiError(409, "integration_disabled", "the integration is disabled; enable it first")
    try:
        answer = await call_ingestor(
            tx.app,
            row["subtype"],
            "/internal/sync-now",
            SyncNowRequest(integration_id=str(integration_id), resource=resource).model_dump(),
        )
    except (UpstreamUnavailable, UpstreamRejected) as exc:
        raise ingestor_error(row["subtype"], exc) from None
    scheduled = answer.get("scheduled") if isinstance(answer, dict) else None
    result = {
        "integration_id": str(integration_id),
        "resource": resource,
        "ingestor": INGESTOR_BY_SUBTYPE[row["subtype"]][0],
        "scheduled": scheduled,
    }
    await audit.record(
        tx,
        "integration.sync_requested",
        "integration",
        integration_id,
        company_id=row["company_id"],
        after={k: v for k, v in result.items() if k != "integration_id"},
    )
    return result


@router.post("/admin/integrations/{integration_id}/sync-now/", response_model=SyncScheduled)
async def sync_now_route(
    tx: ControlTx, principal: AdminWriter, integration_id: uuid.UUID, body: SyncNowBody | None = None
) -> dict[str, Any]:
    return await sync_now(tx, integration_id, body.resource if body else None)


async def sync_vendor(tx: Tx, subtype: str, resource: str | None) -> dict[str, Any]:
    """Sync now every enabled integration of one vendor (the original's ``/admin/sync_qradar/``
    and its siblings); one that cannot be reached is reported, the others are still asked."""
    ids = (
        await tx.session.execute(
            sa.text(
                "SELECT id FROM integration WHERE subtype = :s AND deleted_at IS NULL AND status <> 'disabled' "
                "ORDER BY id"
            ),
            {"s": subtype},
        )
    ).scalars()
    scheduled: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for integration_id in list(ids):
        try:
            scheduled.append(await sync_now(tx, integration_id, resource, subtype=subtype))
        except ApiError as exc:
            failed.append({"integration_id": str(integration_id), "code": exc.code, "message": exc.message})
    label = SUBTYPES[subtype].label
    return {
        "subtype": subtype,
        "message": f"sync of {len(scheduled)} {label} integration(s) started"
        + (f", {len(failed)} could not be asked" if failed else ""),
        "integrations": scheduled,
        "failed": failed,
    }


def _vendor_sync(subtype: str):  # noqa: ANN202 - a route factory
    async def route(
        tx: ControlTx, principal: AdminWriter, body: VendorSyncBody | None = None
    ) -> dict[str, Any]:
        if body is not None and body.integration_id is not None:
            return await sync_now(tx, body.integration_id, body.resource, subtype=subtype)
        return await sync_vendor(tx, subtype, body.resource if body else None)

    route.__doc__ = (
        f"Sync {SUBTYPES[subtype].label} now: one integration (``integration_id``) or, without it, every "
        "enabled one of the vendor (optional ``resource``)."
    )
    return route


for _path, _subtype in (
    ("qradar", "IBM_QRADAR"),
    ("soar", "CORTEX_XSOAR"),
    ("itsm", "MANAGEENGINE_SDP"),
    ("threat-intel", "CYWARE"),
):
    router.add_api_route(
        f"/admin/sync/{_path}/",
        _vendor_sync(_subtype),
        methods=["POST"],
        name=f"sync_{_path.replace('-', '_')}",
        response_model=SyncScheduled | VendorSyncStarted,
        tags=["integrations"],
    )


# --- internal API for the ingestors -----------------------------------------------------------------
# Each internal route names its callers (client id of the service token, and its scope when the
# token carries scopes): a stolen credential of one service opens no more than that service needs.
IngestorCaller = Annotated[
    Principal,
    Depends(
        require_caller(*(name for name, _ in INGESTOR_BY_SUBTYPE.values()), scope="tenant.integrations:read")
    ),
]
TicketCaller = Annotated[Principal, Depends(require_caller("itsm-ingest", scope="tenant.tickets"))]


@internal_router.get("/integrations/{integration_id}/credentials/", include_in_schema=False)
@internal_router.get("/integrations/{integration_id}/credentials")
async def internal_credentials(
    tx: ControlTx, principal: ServicePrincipal, integration_id: str
) -> dict[str, Any]:
    """The one place credentials come out: to the ingestor of the integration's vendor only, just in
    time, with its service token (and its ``tenant.credentials:<subtype>`` scope when it has scopes)."""
    row = await get_row(tx.session, as_uuid(integration_id, "integration"))
    owner = INGESTOR_BY_SUBTYPE[row["subtype"]][0]
    if principal.sub != owner or (
        principal.scope and not principal.has_scope(f"tenant.credentials:{row['subtype']}")
    ):
        logger.warning("credentials of integration {} refused to {}", row["id"], principal.sub)
        raise ApiError(
            403, "not_credential_owner", f"only the {owner} service reads this integration's credentials"
        )
    secrets = open_credentials(tx.app, row)
    logger.info(
        "credentials of integration {} (v{}) handed to {}",
        row["id"],
        row["credentials_version"],
        principal.sub,
    )
    return {
        "integration_id": str(row["id"]),
        # The only origin these secrets may be sent to: the ingestor refuses any other.
        "origin": origin_of(row["base_url"]),
        "base_url": row["base_url"],
        "credential_kind": row["credential_kind"],
        "secrets": secrets,
        "ca_pem": row["ca_pem"],
        "credentials_version": row["credentials_version"],
    }


@internal_router.get("/integrations", include_in_schema=False)
@internal_router.get("/integrations/")
async def internal_integrations(
    tx: ControlTx,
    principal: IngestorCaller,
    subtype: SubtypeName | None = None,
    include_deleted: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Every integration as ``tenant.integration.changed`` describes it (no secret), so that a restarted
    ingestor can resync its table."""
    stmt = sa.select(integration)
    if subtype:
        stmt = stmt.where(integration.c.subtype == subtype)
    if not include_deleted:
        stmt = stmt.where(integration.c.deleted_at.is_(None))
    total = (await tx.session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (
        (
            await tx.session.execute(
                stmt.order_by(integration.c.created_at, integration.c.id).limit(limit).offset(offset)
            )
        )
        .mappings()
        .all()
    )
    return {
        "items": [change_payload(dict(r)).model_dump(mode="json") for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@internal_router.post("/integrations/republish/", include_in_schema=False)
@internal_router.post("/integrations/republish")
async def internal_republish(
    tx: ControlTx, principal: IngestorCaller, body: RepublishBody | None = None
) -> dict[str, Any]:
    """Publish ``tenant.integration.changed`` again for every integration (deleted ones included)."""
    stmt = sa.select(integration.c.id)
    if body is not None and body.subtype:
        stmt = stmt.where(integration.c.subtype == body.subtype)
    ids = (await tx.session.execute(stmt)).scalars().all()
    for integration_id in ids:
        await publish_integration_changed(tx, integration_id)
    return {"published": len(ids)}


@internal_router.get("/ticket-routing/", include_in_schema=False)
@internal_router.get("/ticket-routing")
async def internal_ticket_routing(
    tx: ControlTx,
    principal: TicketCaller,
    soar_integration_id: Annotated[str, Query(min_length=1, max_length=200)],
    account: Annotated[str, Query(max_length=200)] = "",
) -> dict[str, Any]:
    """Where a ticket for an incident of (SOAR integration, account) goes (itsm-ingest asks this):
    the company mapped to that SOAR account, that company's active ITSM mapping, and the ticket
    rule that applies to that account (see :mod:`soc_tenant.tickets.policy`).
    404 when the incident's company has no ITSM mapping (no ticket is created)."""
    stmt = (
        sa.select(soar_mapping.c.company_id, itsm_mapping.c.integration_id, itsm_mapping.c.account_id)
        .join(
            itsm_mapping,
            sa.and_(itsm_mapping.c.company_id == soar_mapping.c.company_id, itsm_mapping.c.active),
        )
        .join(company, company.c.id == soar_mapping.c.company_id)
        .where(
            soar_mapping.c.integration_id == soar_integration_id,
            soar_mapping.c.account == account,
            soar_mapping.c.active,
            company.c.deleted_at.is_(None),
            company.c.is_active,
        )
        .order_by(itsm_mapping.c.created_at, itsm_mapping.c.id)
        .limit(1)
    )
    row = (await tx.session.execute(stmt)).mappings().first()
    if row is None:
        raise ApiError(404, "not_mapped", "no company with an ITSM mapping serves this SOAR account")
    return {
        "company_id": str(row["company_id"]),
        "itsm_integration_id": str(row["integration_id"]),
        "account_id": row["account_id"],
        "policy": await resolve_rule(tx.session, row["company_id"], soar_integration_id, account),
    }
