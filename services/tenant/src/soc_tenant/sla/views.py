"""SLA targets: the defaults per level (the seed's DefaultSoarSlaMetric) and per-company overrides,
optionally per XSOAR account (the seed's SoarTenantSlaMetric). The company's ``is_default_sla`` flag
picks which apply.

:func:`effective_sla` is pure, for the read model's SLA arithmetic::

    from soc_tenant.sla.views import effective_sla, load_effective_sla
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import Field
from soc_shared.api import Page
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.audit import views as audit
from soc_tenant.company.views import get_company_row, require_live_company
from soc_tenant.control.deps import (
    AdminWriter,
    CompanyId,
    ControlTx,
    ManagerReader,
    full_list,
    invalid,
    scoped_company,
)
from soc_tenant.control.models import NO_CONTROL_CHARS, SlaLevel, Strict, text_rule
from soc_tenant.control.tables import company, integration, sla_company, sla_default
from soc_tenant.sla.responses import CompanySla, SlaLevelTargets

router = APIRouter(tags=["sla"])

LEVELS = tuple(level.value for level in SlaLevel)
AccountName = Annotated[str, text_rule(255), NO_CONTROL_CHARS]
Minutes = Annotated[int, Field(ge=1, le=525_600, description="minutes (at most a year)")]


@dataclass(frozen=True)
class SlaTargets:
    tta_minutes: int  # time to acknowledge
    ttn_minutes: int  # time to notify
    ttdn_minutes: int  # time to detect and notify (resolution target in the seed's dashboards)
    source: str = "default"  # "default" | "company" | "integration" | "account"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(row: Any, name: str, default: Any = None) -> Any:
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


def _targets(row: Any, source: str) -> SlaTargets:
    return SlaTargets(
        int(_get(row, "tta_minutes")), int(_get(row, "ttn_minutes")), int(_get(row, "ttdn_minutes")), source
    )


def effective_sla(
    company: Any,
    overrides: Iterable[Any],
    defaults: Mapping[str, Any] | Iterable[Any],
    *,
    integration_id: str | None = None,
    account: str | None = None,
) -> dict[str, SlaTargets]:
    """The SLA targets per level (P1..P4) that apply to ``company`` (and one XSOAR account).

    - ``company``: anything with ``is_default_sla`` (a row, a dict, an object);
    - ``overrides``: the company's ``sla_company`` rows (``level``, ``integration_id``, ``account``, minutes);
    - ``defaults``: ``{level: row}`` or rows with ``level``.

    With ``is_default_sla`` the defaults apply. Otherwise, per level, the most specific override
    wins: this account of this integration, then this integration, then the company's own, then
    the default. A level without defaults or overrides is absent from the answer.
    """
    if isinstance(defaults, Mapping):
        default_rows = {str(level): row for level, row in defaults.items()}
    else:
        default_rows = {str(_get(row, "level")): row for row in defaults}
    result = {
        level: (row if isinstance(row, SlaTargets) and row.source == "default" else _targets(row, "default"))
        for level, row in default_rows.items()
    }
    if _get(company, "is_default_sla", True):
        return dict(sorted(result.items()))
    rank: dict[str, int] = {}
    wanted_integration = None if integration_id is None else str(integration_id)
    for row in overrides:
        level = str(_get(row, "level"))
        o_integration, o_account = _get(row, "integration_id"), _get(row, "account")
        o_integration = None if o_integration is None else str(o_integration)
        if o_integration is None and o_account is None:
            specificity, source = 1, "company"
        elif o_integration is not None and o_integration == wanted_integration and o_account is None:
            specificity, source = 2, "integration"
        elif (
            o_integration is not None
            and o_integration == wanted_integration
            and o_account == account
            and account is not None
        ):
            specificity, source = 3, "account"
        else:
            continue
        if specificity > rank.get(level, 0):
            rank[level] = specificity
            result[level] = _targets(row, source)
    return dict(sorted(result.items()))


async def load_defaults(session: AsyncSession) -> dict[str, dict[str, Any]]:
    rows = (await session.execute(sa.select(sla_default).order_by(sla_default.c.level))).mappings().all()
    return {r["level"]: dict(r) for r in rows}


async def load_overrides(session: AsyncSession, company_id: uuid.UUID) -> list[dict[str, Any]]:
    s = sla_company
    rows = (
        (
            await session.execute(
                sa.select(s)
                .where(s.c.company_id == company_id)
                .order_by(s.c.integration_id.nulls_first(), s.c.account.nulls_first(), s.c.level)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


async def load_effective_sla(
    session: AsyncSession,
    company_id: uuid.UUID | str,
    *,
    integration_id: str | None = None,
    account: str | None = None,
) -> dict[str, SlaTargets]:
    """:func:`effective_sla` read from the database (any session: owner or scoped)."""
    cid = company_id if isinstance(company_id, uuid.UUID) else uuid.UUID(str(company_id))
    flag = (
        await session.execute(sa.select(company.c.is_default_sla).where(company.c.id == cid))
    ).scalar_one_or_none()
    return effective_sla(
        {"is_default_sla": True if flag is None else flag},
        await load_overrides(session, cid),
        await load_defaults(session),
        integration_id=integration_id,
        account=account,
    )


# --- bodies ----------------------------------------------------------------------------------------
class SlaLevelIn(Strict):
    level: SlaLevel
    tta_minutes: Minutes
    ttn_minutes: Minutes
    ttdn_minutes: Minutes


class SlaDefaultsIn(Strict):
    items: list[SlaLevelIn] = Field(min_length=1, max_length=4)


class SlaOverrideIn(SlaLevelIn):
    integration_id: uuid.UUID | None = Field(
        default=None, description="an XSOAR integration (with account: one account)"
    )
    account: AccountName | None = None


class CompanySlaIn(Strict):
    is_default_sla: bool | None = None
    sla_clock_start: Literal["occurred", "created"] | None = Field(
        default=None,
        description="where SLA steps are measured from: the incident's `occurred` (the original "
        "product's rule, the default) or its `created` (when XSOAR fetched it)",
    )
    overrides: list[SlaOverrideIn] | None = Field(
        default=None, max_length=400, description="replaces every override"
    )


# --- routes ----------------------------------------------------------------------------------------
def _defaults_view(defaults: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items()} for row in defaults.values()]


@router.get("/admin/sla/defaults/", response_model=Page[SlaLevelTargets])
async def get_defaults(tx: ControlTx, principal: ManagerReader) -> dict[str, Any]:
    return full_list(_defaults_view(await load_defaults(tx.session)))


@router.put("/admin/sla/defaults/", response_model=Page[SlaLevelTargets])
async def put_defaults(tx: ControlTx, principal: AdminWriter, body: SlaDefaultsIn) -> dict[str, Any]:
    levels = [i.level for i in body.items]
    if len(set(levels)) != len(levels):
        raise invalid(["body", "items"], "each level at most once")
    before = _defaults_view(await load_defaults(tx.session))
    for item in body.items:
        await tx.session.execute(
            sa.update(sla_default)
            .where(sla_default.c.level == item.level.value)
            .values(
                tta_minutes=item.tta_minutes,
                ttn_minutes=item.ttn_minutes,
                ttdn_minutes=item.ttdn_minutes,
                updated_by=principal.sub,
                updated_at=sa.func.now(),
            )
        )
    after = _defaults_view(await load_defaults(tx.session))
    await audit.record(
        tx, "sla.defaults_updated", "sla_defaults", None, before={"items": before}, after={"items": after}
    )
    return full_list(after)


async def company_sla_view(session: AsyncSession, company_id: uuid.UUID) -> dict[str, Any]:
    row = await get_company_row(session, company_id)
    defaults = await load_defaults(session)
    overrides = await load_overrides(session, company_id)
    effective = effective_sla(row, overrides, defaults)
    return {
        "company_id": str(company_id),
        "is_default_sla": row["is_default_sla"],
        "sla_clock_start": (
            await session.execute(sa.select(company.c.sla_clock_start).where(company.c.id == company_id))
        ).scalar_one(),
        "defaults": _defaults_view(defaults),
        "overrides": [{k: v for k, v in o.items() if k not in ("company_id",)} for o in overrides],
        "effective": {level: t.as_dict() for level, t in effective.items()},
    }


async def replace_overrides(
    session: AsyncSession, company_id: uuid.UUID, overrides: list[SlaOverrideIn], by: str, loc: list[str]
) -> None:
    seen: set[tuple[Any, Any, str]] = set()
    soar_ids: set[uuid.UUID] = set()
    for n, o in enumerate(overrides):
        if o.account is not None and o.integration_id is None:
            raise invalid(
                loc + [str(n), "integration_id"], "an account override names its XSOAR integration", "missing"
            )
        key = (o.integration_id, o.account, o.level.value)
        if key in seen:
            raise invalid(loc + [str(n)], "the same level and scope appear twice")
        seen.add(key)
        if o.integration_id is not None:
            soar_ids.add(o.integration_id)
    if soar_ids:
        found = dict(
            (
                await session.execute(
                    sa.select(integration.c.id, integration.c.subtype).where(
                        integration.c.id.in_(soar_ids), integration.c.deleted_at.is_(None)
                    )
                )
            ).all()
        )
        for n, o in enumerate(overrides):
            if o.integration_id is not None and found.get(o.integration_id) != "CORTEX_XSOAR":
                raise invalid(
                    loc + [str(n), "integration_id"], "not an XSOAR integration", "wrong_integration_type"
                )
    await session.execute(sa.delete(sla_company).where(sla_company.c.company_id == company_id))
    if overrides:
        await session.execute(
            sa.insert(sla_company).values(
                [
                    {
                        "id": uuid.uuid4(),
                        "company_id": company_id,
                        "integration_id": None if o.integration_id is None else str(o.integration_id),
                        "account": o.account,
                        "level": o.level.value,
                        "tta_minutes": o.tta_minutes,
                        "ttn_minutes": o.ttn_minutes,
                        "ttdn_minutes": o.ttdn_minutes,
                        "updated_by": by,
                    }
                    for o in overrides
                ]
            )
        )


@router.get("/admin/companies/{company_id}/sla/", response_model=CompanySla)
async def get_company_sla(tx: ControlTx, principal: ManagerReader, company_id: CompanyId) -> dict[str, Any]:
    return await company_sla_view(tx.session, scoped_company(principal, company_id))


@router.put("/admin/companies/{company_id}/sla/", response_model=CompanySla)
async def put_company_sla(
    tx: ControlTx, principal: AdminWriter, company_id: CompanyId, body: CompanySlaIn
) -> dict[str, Any]:
    await require_live_company(tx.session, company_id)
    before = await company_sla_view(tx.session, company_id)
    if body.is_default_sla is not None:
        await tx.session.execute(
            sa.update(company)
            .where(company.c.id == company_id)
            .values(is_default_sla=body.is_default_sla, updated_at=sa.func.now(), modified_by=principal.sub)
        )
    if body.sla_clock_start is not None:
        await tx.session.execute(
            sa.update(company)
            .where(company.c.id == company_id)
            .values(sla_clock_start=body.sla_clock_start, updated_at=sa.func.now(), modified_by=principal.sub)
        )
    if body.overrides is not None:
        await replace_overrides(tx.session, company_id, body.overrides, principal.sub, ["body", "overrides"])
    after = await company_sla_view(tx.session, company_id)
    await audit.record(
        tx,
        "sla.company_updated",
        "company_sla",
        company_id,
        company_id=company_id,
        before=before,
        after=after,
    )
    return after


__all__ = ["SlaTargets", "effective_sla", "load_effective_sla", "router"]
