"""SLA arithmetic: which target applies to an incident, and whether each step (TTA: time to
acknowledge, TTN: time to notify, TTDN: time to detailed notification) was met, breached or is
still pending. Pure functions (unit-tested) plus the identical rule as SQL expressions for the
aggregate views, and the loading of the targets from the control plane's SLA tables.

The original product's rules (its admin SLA matrix), the default:

* each step is measured from the clock start — the incident's ``occurred`` by default; a company
  may choose ``created`` (``company.sla_clock_start``);
* a step is **met** when ``done - start <= target`` (inclusive: exactly at the target is met, one
  second later is breached);
* only **counted** incidents enter the compliance figures: true positives (see
  :mod:`soc_tenant.dashboard.positives`, which asks for all three step times) whose level has a
  target and whose clock start is known;
* per-step compliance = met ÷ counted; overall compliance = fully compliant (all three steps met)
  ÷ counted; partially compliant = one or two steps breached; non-compliant = all three.

Our additions, kept as separately named figures and never mixed into the original's: the status
of every incident's steps (counted or not) including ``pending`` (not done, target not yet
passed), breaches in progress (not done, target passed: status ``breached`` with no time), and
incidents without the timestamps to judge them (``no_start``: no clock start).

Per step: ``no_sla`` without a target, ``no_start`` without a clock start, else ``met`` /
``breached`` when done, ``pending`` / ``breached`` while not done. Overall (ours): breached if any
step is, else pending if any is, else met if any is, else no_start / no_sla.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

MET, BREACHED, PENDING, NO_SLA, NO_START = "met", "breached", "pending", "no_sla", "no_start"
STATUSES = (MET, BREACHED, PENDING, NO_SLA, NO_START)
STEPS = ("tta", "ttn", "ttdn")
LEVELS = ("P1", "P2", "P3", "P4")
# The original's labels of the levels (its SlaLevelChoices), and its level numbers.
LEVEL_LABELS = {"P1": "P1 Critical", "P2": "P2 High", "P3": "P3 Medium", "P4": "P4 Low"}
CLOCK_OCCURRED, CLOCK_CREATED = "occurred", "created"
CLOCK_STARTS = (CLOCK_OCCURRED, CLOCK_CREATED)


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
    start: datetime | None, done_at: datetime | None, target_minutes: int | None, now: datetime
) -> str:
    if target_minutes is None:
        return NO_SLA
    if start is None:
        return NO_START
    deadline = start + timedelta(minutes=target_minutes)
    if done_at is not None:
        return MET if done_at <= deadline else BREACHED
    return PENDING if now <= deadline else BREACHED


def elapsed_minutes(start: datetime | None, done_at: datetime | None) -> float | None:
    if done_at is None or start is None:
        return None
    return round((done_at - start).total_seconds() / 60, 2)


def overall_status(statuses: Iterable[str]) -> str:
    seen = set(statuses)
    for status in (BREACHED, PENDING, MET, NO_START):
        if status in seen:
            return status
    return NO_SLA


def clock_start(clock: str, occurred: datetime | None, created: datetime | None) -> datetime | None:
    return created if clock == CLOCK_CREATED else occurred


def incident_sla(
    start: datetime | None,
    done: Mapping[str, datetime | None],
    target: SlaTarget | None,
    now: datetime,
    *,
    clock: str = CLOCK_OCCURRED,
    true_positive: bool | None = None,
) -> dict[str, Any]:
    """Per step: status, measured minutes, target minutes and deadline; the overall status (ours);
    whether the incident is counted in compliance and, if so, the original's verdict."""
    out: dict[str, Any] = {
        "level": target.level if target else None,
        "source": target.source if target else None,
        "clock_start": clock,
        "started": start.isoformat() if start else None,
    }
    for step in STEPS:
        minutes = target.minutes(step) if target else None
        out[step] = {
            "status": step_status(start, done.get(step), minutes, now),
            "elapsed_minutes": elapsed_minutes(start, done.get(step)),
            "target_minutes": minutes,
            "deadline": (start + timedelta(minutes=minutes)).isoformat()
            if minutes is not None and start is not None
            else None,
        }
    out["overall"] = overall_status(out[s]["status"] for s in STEPS)
    counted = bool(true_positive) and all(out[s]["status"] in (MET, BREACHED) for s in STEPS)
    out["counted"] = counted
    breaches = sum(out[s]["status"] == BREACHED for s in STEPS)
    out["compliance"] = (
        None
        if not counted
        else "fully_compliant"
        if breaches == 0
        else "non_compliant"
        if breaches == len(STEPS)
        else "partially_compliant"
    )
    return out


def compliance_pct(met: int, counted: int) -> float | None:
    """The original's compliance: met ÷ counted incidents, in % (two decimals); null when none."""
    return round(met * 100.0 / counted, 2) if counted else None


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
    clock_start: str = CLOCK_OCCURRED

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
SELECT 'flag', is_default_sla::text, NULL, NULL, NULL, NULL, NULL FROM company WHERE id::text = :c
UNION ALL
SELECT 'clock', sla_clock_start, NULL, NULL, NULL, NULL, NULL FROM company WHERE id::text = :c""")


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
    clock = next((r[1] for r in rows if r[0] == "clock"), None) or CLOCK_OCCURRED
    use_default = None if flag is None else flag == "true"
    # A company with overrides uses them unless it is explicitly on the default SLA.
    return CompanySla(
        company_id,
        use_default is False or (use_default is None and bool(overrides)),
        defaults if defaults is not None else loaded,
        overrides,
        clock if clock in CLOCK_STARTS else CLOCK_OCCURRED,
    )


def targets_values(pairs: Iterable[tuple[str, str, str | None]], slas: Mapping[str, CompanySla]) -> Any:
    """The targets (company, integration, account, level, tta, ttn, ttdn, clock) for the SQL aggregates,
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
                        sla.clock_start,
                        target.tta_minutes,
                        target.ttn_minutes,
                        target.ttdn_minutes,
                    )
                )
    columns: list[Sequence[Any]] = list(zip(*data, strict=True)) if data else [[] for _ in range(8)]
    from sqlalchemy.dialects.postgresql import ARRAY

    text_array, int_array = ARRAY(sa.Text), ARRAY(sa.Integer)
    names = (
        "company_id",
        "integration_id",
        "account",
        "level",
        "clock",
        "tta_minutes",
        "ttn_minutes",
        "ttdn_minutes",
    )
    binds = [
        sa.bindparam(f"sla_{n}", list(values), type_=text_array if k < 5 else int_array)
        for k, (n, values) in enumerate(zip(names, columns, strict=True))
    ]
    stmt = sa.text(
        "SELECT * FROM unnest(:sla_company_id, :sla_integration_id, :sla_account, :sla_level, :sla_clock, "
        ":sla_tta_minutes, :sla_ttn_minutes, :sla_ttdn_minutes) AS t(company_id, integration_id, account, "
        "level, clock, tta_minutes, ttn_minutes, ttdn_minutes)"
    ).bindparams(*binds)
    return stmt.columns(
        sa.column("company_id", sa.Text),
        sa.column("integration_id", sa.Text),
        sa.column("account", sa.Text),
        sa.column("level", sa.Text),
        sa.column("clock", sa.Text),
        sa.column("tta_minutes", sa.Integer),
        sa.column("ttn_minutes", sa.Integer),
        sa.column("ttdn_minutes", sa.Integer),
    )


def start_sql(clock: Any, occurred: Any, created: Any) -> sa.ColumnElement[Any]:
    """:func:`clock_start` as a SQL expression (``clock`` is the company's setting)."""
    return sa.case((clock == CLOCK_CREATED, created), else_=occurred)


def status_sql(start: Any, done: Any, minutes: Any, now: datetime) -> sa.ColumnElement[str]:
    """:func:`step_status` as a SQL expression."""
    deadline = start + sa.func.make_interval(0, 0, 0, 0, 0, sa.cast(minutes, sa.Integer))
    return sa.case(
        (minutes.is_(None), sa.literal(NO_SLA)),
        (start.is_(None), sa.literal(NO_START)),
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
        (sa.or_(*[s == NO_START for s in statuses]), sa.literal(NO_START)),
        else_=sa.literal(NO_SLA),
    )
