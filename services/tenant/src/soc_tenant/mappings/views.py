"""Vendor tenants → companies: QRadar domains (with the contracted volume and event collectors), XSOAR
accounts and ServiceDesk Plus accounts. Many to many, as in the seed: a company may have several
vendor tenants, and a vendor tenant may serve several companies.

The read model attributes every record through these tables at query time, so a mapping made later
applies to data already ingested, and a deactivated mapping stops attributing without deleting
anything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Response
from pydantic import Field
from soc_shared.api import ApiModel, Page
from soc_shared.errors import ApiError
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.audit import views as audit
from soc_tenant.control.deps import AdminReader, AdminWriter, ControlTx, Paging, Tx, invalid, not_found, page
from soc_tenant.control.models import NO_CONTROL_CHARS, Strict, VolumeType, text_rule
from soc_tenant.control.tables import (
    company,
    integration,
    itsm_account,
    itsm_mapping,
    qradar_domain,
    qradar_mapping,
    soar_account,
    soar_mapping,
)
from soc_tenant.mappings.responses import ItsmMapping, QradarMapping, SoarMapping

router = APIRouter(tags=["mappings"])

Volume = Annotated[Decimal, Field(ge=0, le=Decimal("999999999999.99"), max_digits=14, decimal_places=2)]
CollectorIds = Annotated[list[Annotated[int, Field(ge=0, le=2**53)]], Field(max_length=1000)]
AccountText = Annotated[str, text_rule(255), NO_CONTROL_CHARS]


class QradarMappingIn(Strict):
    company_id: uuid.UUID
    integration_id: uuid.UUID
    domain_id: int = Field(ge=0, le=2**53)
    contracted_volume_type: VolumeType = VolumeType.EPS
    contracted_volume: Volume = Decimal(0)
    event_collector_ids: CollectorIds = []


class QradarMappingUpdate(Strict):
    contracted_volume_type: VolumeType | None = None
    contracted_volume: Volume | None = None
    event_collector_ids: CollectorIds | None = None
    active: bool | None = None


class SoarMappingIn(Strict):
    company_id: uuid.UUID
    integration_id: uuid.UUID
    account: AccountText


class ItsmMappingIn(Strict):
    company_id: uuid.UUID
    integration_id: uuid.UUID
    account_id: AccountText


class MappingUpdate(Strict):
    active: bool | None = None


@dataclass(frozen=True)
class MappingKind:
    name: str
    table: sa.Table
    subtype: str
    key: str  # the vendor tenant's column in the mapping table
    label: str


QRADAR = MappingKind("qradar", qradar_mapping, "IBM_QRADAR", "domain_id", "QRadar domain")
SOAR = MappingKind("soar", soar_mapping, "CORTEX_XSOAR", "account", "XSOAR account")
ITSM = MappingKind("itsm", itsm_mapping, "MANAGEENGINE_SDP", "account_id", "ServiceDesk Plus account")


async def _table_exists(session: AsyncSession, name: str) -> bool:
    return (await session.execute(sa.text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})).scalar_one()


async def vendor_tenant_known(
    session: AsyncSession, kind: MappingKind, integration_id: str, key: Any
) -> bool | None:
    """True/False when the ingestors' discoveries can tell; None while the read model has no such table."""
    if kind is QRADAR:
        d = qradar_domain
        stmt = sa.select(d.c.domain_id).where(d.c.integration_id == integration_id, d.c.domain_id == key)
    else:
        table = soar_account if kind is SOAR else itsm_account
        if not await _table_exists(session, table.name):
            return None
        match = (
            sa.or_(table.c.account_id == str(key), table.c.name == str(key))
            if kind is SOAR
            else table.c.account_id == str(key)
        )
        stmt = (
            sa.select(sa.literal(1)).select_from(table).where(table.c.integration_id == integration_id, match)
        )
    try:
        async with session.begin_nested():
            return (await session.execute(stmt.limit(1))).first() is not None
    except (ProgrammingError, DBAPIError):
        return None  # the read model's table has another shape than expected: do not block mappings on it


async def _vendor_names(
    session: AsyncSession, kind: MappingKind, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], str]:
    if not rows:
        return {}
    integration_ids = list({r["integration_id"] for r in rows})
    try:
        async with session.begin_nested():
            if kind is QRADAR:
                d = qradar_domain
                found = (
                    await session.execute(
                        sa.select(d.c.integration_id, d.c.domain_id, d.c.name).where(
                            d.c.integration_id.in_(integration_ids)
                        )
                    )
                ).all()
            elif kind is ITSM and await _table_exists(session, itsm_account.name):
                a = itsm_account
                found = (
                    await session.execute(
                        sa.select(a.c.integration_id, a.c.account_id, a.c.name).where(
                            a.c.integration_id.in_(integration_ids)
                        )
                    )
                ).all()
            else:
                return {}
    except (ProgrammingError, DBAPIError):
        return {}
    return {(str(i), str(k)): n for i, k, n in found}


async def _names(session: AsyncSession, rows: list[dict[str, Any]]) -> tuple[dict[Any, str], dict[str, str]]:
    company_ids = list({r["company_id"] for r in rows})
    integration_ids = []
    for r in rows:
        try:
            integration_ids.append(uuid.UUID(r["integration_id"]))
        except ValueError:
            pass
    companies = (
        dict(
            (
                await session.execute(
                    sa.select(company.c.id, company.c.name).where(company.c.id.in_(company_ids))
                )
            ).all()
        )
        if company_ids
        else {}
    )
    integrations = (
        {
            str(k): v
            for k, v in (
                await session.execute(
                    sa.select(integration.c.id, integration.c.instance_name).where(
                        integration.c.id.in_(integration_ids)
                    )
                )
            ).all()
        }
        if integration_ids
        else {}
    )
    return companies, integrations


async def views(session: AsyncSession, kind: MappingKind, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    companies, integrations = await _names(session, rows)
    vendor = await _vendor_names(session, kind, rows)
    out = []
    for r in rows:
        v = dict(r)
        v["company_name"] = companies.get(r["company_id"])
        v["integration_name"] = integrations.get(r["integration_id"])
        if kind is QRADAR:
            v["domain_name"] = vendor.get((r["integration_id"], str(r["domain_id"])))
        elif kind is ITSM:
            v["account_name"] = vendor.get((r["integration_id"], str(r["account_id"])))
        out.append(v)
    return out


async def get_mapping(
    session: AsyncSession, kind: MappingKind, mapping_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any]:
    stmt = sa.select(kind.table).where(kind.table.c.id == mapping_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise not_found("mapping")
    return dict(row)


async def _check_targets(
    session: AsyncSession,
    kind: MappingKind,
    company_id: uuid.UUID,
    integration_id: uuid.UUID,
    key: Any,
    loc: list[str],
) -> None:
    found = (
        await session.execute(
            sa.select(company.c.id).where(company.c.id == company_id, company.c.deleted_at.is_(None))
        )
    ).first()
    if found is None:
        raise invalid(loc + ["company_id"], "no such company", "unknown_company")
    row = (
        await session.execute(
            sa.select(integration.c.subtype).where(
                integration.c.id == integration_id, integration.c.deleted_at.is_(None)
            )
        )
    ).first()
    if row is None:
        raise invalid(loc + ["integration_id"], "no such integration", "unknown_integration")
    if row.subtype != kind.subtype:
        raise invalid(loc + ["integration_id"], f"not a {kind.subtype} integration", "wrong_integration_type")
    if await vendor_tenant_known(session, kind, str(integration_id), key) is False:
        raise invalid(
            loc + [kind.key],
            f"no such {kind.label} discovered on this integration (yet)",
            "unknown_vendor_tenant",
        )


async def create_mapping(
    tx: Tx, kind: MappingKind, values: dict[str, Any], *, loc: list[str] | None = None
) -> uuid.UUID:
    loc = loc or ["body"]
    await _check_targets(
        tx.session, kind, values["company_id"], values["integration_id"], values[kind.key], loc
    )
    mapping_id = uuid.uuid4()
    row = {
        **values,
        "integration_id": str(values["integration_id"]),
        "id": mapping_id,
        "active": True,
        "created_by": tx.principal.sub,
    }
    if kind is QRADAR:
        row["contracted_volume_type"] = str(row["contracted_volume_type"])
    try:
        async with tx.session.begin_nested():
            await tx.session.execute(sa.insert(kind.table).values(**row))
    except IntegrityError:
        t = kind.table
        existing = (
            await tx.session.execute(
                sa.select(t.c.id).where(
                    t.c.company_id == values["company_id"],
                    t.c.integration_id == str(values["integration_id"]),
                    t.c[kind.key] == values[kind.key],
                )
            )
        ).scalar_one_or_none()
        raise ApiError(
            409,
            "mapping_exists",
            f"this {kind.label} is already mapped to this company",
            {"mapping_id": str(existing) if existing else None},
        ) from None
    return mapping_id


async def update_mapping(tx: Tx, kind: MappingKind, mapping_id: uuid.UUID, changes: dict[str, Any]) -> None:
    current = await get_mapping(tx.session, kind, mapping_id, for_update=True)
    for key, value in changes.items():
        if value is None:
            raise invalid(["body", key], "must not be null")
    if "contracted_volume_type" in changes:
        changes["contracted_volume_type"] = str(changes["contracted_volume_type"])
    if changes.get("active") is True and not current["active"]:
        found = (
            await tx.session.execute(
                sa.select(company.c.id).where(
                    company.c.id == current["company_id"], company.c.deleted_at.is_(None)
                )
            )
        ).first()
        if found is None:
            raise ApiError(409, "company_deleted", "the company is deleted; restore it first")
        changes["inactive_reason"] = None
    elif changes.get("active") is False and current["active"]:
        changes["inactive_reason"] = "deactivated"
    if changes:
        await tx.session.execute(
            sa.update(kind.table)
            .where(kind.table.c.id == mapping_id)
            .values(**changes, updated_at=sa.func.now())
        )


async def list_mappings(
    session: AsyncSession,
    kind: MappingKind,
    paging: Any,
    *,
    company_id: uuid.UUID | None,
    integration_id: uuid.UUID | None,
    active: bool | None,
) -> dict[str, Any]:
    t = kind.table
    stmt = sa.select(t)
    if company_id is not None:
        stmt = stmt.where(t.c.company_id == company_id)
    if integration_id is not None:
        stmt = stmt.where(t.c.integration_id == str(integration_id))
    if active is not None:
        stmt = stmt.where(t.c.active == active)
    total = (await session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (
        (
            await session.execute(
                stmt.order_by(t.c.created_at, t.c.id).limit(paging.limit).offset(paging.offset)
            )
        )
        .mappings()
        .all()
    )
    return page(await views(session, kind, [dict(r) for r in rows]), total, paging)


async def mappings_of_company(
    session: AsyncSession, company_id: uuid.UUID
) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for kind in (QRADAR, SOAR, ITSM):
        rows = (
            (
                await session.execute(
                    sa.select(kind.table)
                    .where(kind.table.c.company_id == company_id)
                    .order_by(kind.table.c.created_at)
                )
            )
            .mappings()
            .all()
        )
        out[kind.name] = await views(session, kind, [dict(r) for r in rows])
    return out


# --- routes ----------------------------------------------------------------------------------------
def _routes(
    kind: MappingKind, body_model: type[Strict], update_model: type[Strict], view_model: type[ApiModel]
) -> None:
    base = f"/admin/mappings/{kind.name}/"

    async def list_route(
        tx: ControlTx,
        principal: AdminReader,
        paging: Paging,
        company_id: uuid.UUID | None = None,
        integration_id: uuid.UUID | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        return await list_mappings(
            tx.session, kind, paging, company_id=company_id, integration_id=integration_id, active=active
        )

    async def create_route(tx: ControlTx, principal: AdminWriter, body: body_model) -> dict[str, Any]:  # type: ignore[valid-type]
        mapping_id = await create_mapping(tx, kind, body.model_dump())  # type: ignore[attr-defined]
        view = (await views(tx.session, kind, [await get_mapping(tx.session, kind, mapping_id)]))[0]
        await audit.record(
            tx,
            f"mapping.{kind.name}.created",
            "mapping",
            mapping_id,
            company_id=view["company_id"],
            after=view,
        )
        return view

    async def get_route(tx: ControlTx, principal: AdminReader, mapping_id: uuid.UUID) -> dict[str, Any]:
        return (await views(tx.session, kind, [await get_mapping(tx.session, kind, mapping_id)]))[0]

    async def update_route(
        tx: ControlTx,
        principal: AdminWriter,
        mapping_id: uuid.UUID,
        body: update_model,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        before = (await views(tx.session, kind, [await get_mapping(tx.session, kind, mapping_id)]))[0]
        await update_mapping(tx, kind, mapping_id, body.model_dump(exclude_unset=True))  # type: ignore[attr-defined]
        view = (await views(tx.session, kind, [await get_mapping(tx.session, kind, mapping_id)]))[0]
        await audit.record(
            tx,
            f"mapping.{kind.name}.updated",
            "mapping",
            mapping_id,
            company_id=view["company_id"],
            before=before,
            after=view,
        )
        return view

    async def delete_route(tx: ControlTx, principal: AdminWriter, mapping_id: uuid.UUID) -> Response:
        row = await get_mapping(tx.session, kind, mapping_id, for_update=True)
        before = (await views(tx.session, kind, [row]))[0]
        await tx.session.execute(sa.delete(kind.table).where(kind.table.c.id == mapping_id))
        await audit.record(
            tx,
            f"mapping.{kind.name}.deleted",
            "mapping",
            mapping_id,
            company_id=row["company_id"],
            before=before,
        )
        return Response(status_code=204)

    # Postponed annotations name closure variables, which FastAPI cannot resolve: give it the classes.
    create_route.__annotations__["body"] = body_model
    update_route.__annotations__["body"] = update_model
    tag: list[str | Enum] = ["mappings"]
    router.add_api_route(
        base,
        list_route,
        methods=["GET"],
        name=f"list_{kind.name}_mappings",
        tags=tag,
        response_model=Page[view_model],  # type: ignore[valid-type]
    )
    router.add_api_route(
        base,
        create_route,
        methods=["POST"],
        status_code=201,
        name=f"create_{kind.name}_mapping",
        tags=tag,
        response_model=view_model,
    )
    router.add_api_route(
        base + "{mapping_id}/",
        get_route,
        methods=["GET"],
        name=f"get_{kind.name}_mapping",
        tags=tag,
        response_model=view_model,
    )
    router.add_api_route(
        base + "{mapping_id}/",
        update_route,
        methods=["PUT"],
        name=f"update_{kind.name}_mapping",
        tags=tag,
        response_model=view_model,
    )
    router.add_api_route(
        base + "{mapping_id}/",
        delete_route,
        methods=["DELETE"],
        status_code=204,
        name=f"delete_{kind.name}_mapping",
        tags=tag,
        response_class=Response,
    )


_routes(QRADAR, QradarMappingIn, QradarMappingUpdate, QradarMapping)
_routes(SOAR, SoarMappingIn, MappingUpdate, SoarMapping)
_routes(ITSM, ItsmMappingIn, MappingUpdate, ItsmMapping)
