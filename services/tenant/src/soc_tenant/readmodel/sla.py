"""SLA arithmetic: which target applies to an incident, and whether each step (TTA: time to
acknowledge, TTN: time to notify, TTDN: time to detailed notification) was met, breached or is
still pending. Pure functions (unit-tested) plus the identical rule as SQL expressions for the
aggregate views, and the loading of the targets from the control plane's SLA tables.

Rules (each step measured from the incident's ``created``):

* done and ``done - created <= target``                    → met
* done and later than the target                           → breached
* not done (timestamp missing) and ``now - created <= target`` → pending
* not done and past the target                             → breached
* no target for the incident's level                       → no_sla

Overall: breached if any step is, else pending if any is, else met if any is, else no_sla.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

MET, BREACHED, PENDING, NO_SLA = "met", "breached", "pending", "no_sla"
STEPS = ("tta", "ttn", "ttdn")
LEVELS = ("P1", "P2", "P3", "P4")


@dataclass(frozen=True)
class SlaTarget:
    level: str
    tta_minutes: int | None
    ttn_minutes: int | None
    ttdn_minutes: int | None
    source: str = "default"  # "default" or "company"

    def minutes(self, step: str) -> int | None:
        return getattr(self, f"{step}_minutes")


def step_status(
    created: datetime, done_at: datetime | None, target_minutes: int | None, now: datetime
) -> str:
    if target_minutes is None:
        return NO_SLA
    deadline = created + timedelta(minutes=target_minutes)
    if done_at is not None:
        return MET if done_at <= deadline else BREACHED
    return PENDING if now <= deadline else BREACHED


def elapsed_minutes(created: datetime, done_at: datetime | None) -> float | None:
    if done_at is None:
        return None
    return round((done_at - created).total_seconds() / 60, 2)


def overall_status(statuses: Iterable[str]) -> str:
    seen = set(statuses)
    for status in (BREACHED, PENDING, MET):
        if status in seen:
            return status
    return NO_SLA


def incident_sla(
    created: datetime, done: Mapping[str, datetime | None], target: SlaTarget | None, now: datetime
) -> dict[str, Any]:
    """Per step: status, measured minutes, target minutes and deadline; plus the overall status."""
    out: dict[str, Any] = {
        "level": target.level if target else None,
        "source": target.source if target else None,
    }
    for step in STEPS:
        minutes = target.minutes(step) if target else None
        out[step] = {
            "status": step_status(created, done.get(step), minutes, now),
            "elapsed_minutes": elapsed_minutes(created, done.get(step)),
            "target_minutes": minutes,
            "deadline": (created + timedelta(minutes=minutes)).isoformat() if minutes is not None else None,
        }
    out["overall"] = overall_status(out[s]["status"] for s in STEPS)
    return out


def compliance_pct(met: int, breached: int) -> float | None:
    """Share of decided steps that met the target (pending ones are not decided yet)."""
    decided = met + breached
    return round(met * 100.0 / decided, 2) if decided else None


def choose_target(
    level: str,
    integration_id: str,
    account: str,
    defaults: Mapping[str, SlaTarget],
    overrides: Iterable[tuple[str | None, str | None, SlaTarget]],
    use_company: bool,
) -> SlaTarget | None:
    """The company's own target for this level (the most specific: integration and account, then
    integration, then any) when the company does not use the default SLA; the default otherwise."""
    if use_company:
        best: tuple[int, SlaTarget] | None = None
        for o_integration, o_account, target in overrides:
            if target.level != level:
                continue
            if o_integration not in (None, "", integration_id) or o_account not in (None, "", account):
                continue
            rank = (2 if o_integration else 0) + (1 if o_account else 0)
            if best is None or rank > best[0]:
                best = (rank, target)
        if best is not None:
            return best[1]
    return defaults.get(level)


def mean(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return round(sum(xs) / len(xs), 2) if xs else None


# ------------------------------------------------------------------------------------ storage
@dataclass
class CompanySla:
    company_id: str
    use_company: bool
    defaults: dict[str, SlaTarget]
    overrides: list[tuple[str | None, str | None, SlaTarget]]

    def target(self, level: str, integration_id: str, account: str) -> SlaTarget | None:
        return choose_target(level, integration_id, account, self.defaults, self.overrides, self.use_company)


async def load_defaults(session: AsyncSession) -> dict[str, SlaTarget]:
    rows = (
        await session.execute(
            sa.text("SELECT level::text, tta_minutes, ttn_minutes, ttdn_minutes FROM sla_default")
        )
    ).all()
    return {r[0]: SlaTarget(r[0], r[1], r[2], r[3]) for r in rows}


COMPANY_SLA_SQL = sa.text("""
SELECT 'default' AS kind, level::text, tta_minutes, ttn_minutes, ttdn_minutes, NULL AS integration_id, NULL AS account
FROM sla_default
UNION ALL
SELECT 'company', level::text, tta_minutes, ttn_minutes, ttdn_minutes, integration_id::text, account::text
FROM sla_company WHERE company_id::text = :c
UNION ALL
SELECT 'flag', is_default_sla::text, NULL, NULL, NULL, NULL, NULL FROM company WHERE id::text = :c""")


async def load_company_sla(
    session: AsyncSession, company_id: str, defaults: dict[str, SlaTarget] | None = None
) -> CompanySla:
    """The control plane's SLA tables (``sla_default``, ``sla_company``; ``company.is_default_sla``),
    in one round trip."""
    rows = (await session.execute(COMPANY_SLA_SQL, {"c": company_id})).all()
    loaded = {r[1]: SlaTarget(r[1], r[2], r[3], r[4]) for r in rows if r[0] == "default"}
    overrides = [
        (r[5], r[6], SlaTarget(r[1], r[2], r[3], r[4], "company")) for r in rows if r[0] == "company"
    ]
    flag = next((r[1] for r in rows if r[0] == "flag"), None)
    use_default = None if flag is None else flag == "true"
    # A company with overrides uses them unless it is explicitly on the default SLA.
    return CompanySla(
        company_id,
        use_default is False or (use_default is None and bool(overrides)),
        defaults if defaults is not None else loaded,
        overrides,
    )


def targets_values(pairs: Iterable[tuple[str, str, str | None]], slas: Mapping[str, CompanySla]) -> Any:
    """The targets (company, integration, account, level, tta, ttn, ttdn) for the SQL aggregates,
    one row per (company's SOAR tenant, level), as ``unnest`` of array parameters (so the statement
    around it stays one cached SQL text whatever the targets)."""
    data: list[tuple[Any, ...]] = []
    for integration_id, account, company_id in pairs:
        sla = slas.get(company_id or "")
        if sla is None:
            continue
        for level in LEVELS:
            target = sla.target(level, integration_id, account)
            if target is not None:
                data.append(
                    (
                        company_id,
                        integration_id,
                        account,
                        level,
                        target.tta_minutes,
                        target.ttn_minutes,
                        target.ttdn_minutes,
                    )
                )
    columns = list(zip(*data, strict=True)) if data else [[] for _ in range(7)]
    from sqlalchemy.dialects.postgresql import ARRAY

    text_array, int_array = ARRAY(sa.Text), ARRAY(sa.Integer)
    names = ("company_id", "integration_id", "account", "level", "tta_minutes", "ttn_minutes", "ttdn_minutes")
    binds = [
        sa.bindparam(f"sla_{n}", list(values), type_=text_array if k < 4 else int_array)
        for k, (n, values) in enumerate(zip(names, columns, strict=True))
    ]
    stmt = sa.text(
        "SELECT * FROM unnest(:sla_company_id, :sla_integration_id, :sla_account, :sla_level, :sla_tta_minutes, "
        ":sla_ttn_minutes, :sla_ttdn_minutes) AS t(company_id, integration_id, account, level, tta_minutes, "
        "ttn_minutes, ttdn_minutes)"
    ).bindparams(*binds)
    return stmt.columns(
        sa.column("company_id", sa.Text),
        sa.column("integration_id", sa.Text),
        sa.column("account", sa.Text),
        sa.column("level", sa.Text),
        sa.column("tta_minutes", sa.Integer),
        sa.column("ttn_minutes", sa.Integer),
        sa.column("ttdn_minutes", sa.Integer),
    )


def status_sql(created: Any, done: Any, minutes: Any, now: datetime) -> sa.ColumnElement[str]:
    """:func:`step_status` as a SQL expression."""
    deadline = created + sa.func.make_interval(0, 0, 0, 0, 0, sa.cast(minutes, sa.Integer))
    return sa.case(
        (minutes.is_(None), sa.literal(NO_SLA)),
        (done.is_not(None), sa.case((done <= deadline, sa.literal(MET)), else_=sa.literal(BREACHED))),
        (sa.literal(now, sa.DateTime(timezone=True)) <= deadline, sa.literal(PENDING)),
        else_=sa.literal(BREACHED),
    )


def overall_sql(*statuses: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """:func:`overall_status` as a SQL expression."""
    return sa.case(
        (sa.or_(*[s == BREACHED for s in statuses]), sa.literal(BREACHED)),
        (sa.or_(*[s == PENDING for s in statuses]), sa.literal(PENDING)),
        (sa.or_(*[s == MET for s in statuses]), sa.literal(MET)),
        else_=sa.literal(NO_SLA),
    )
