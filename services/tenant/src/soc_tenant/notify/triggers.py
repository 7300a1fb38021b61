"""When a notice is due: rules matched against bus events (the ``tenant.notify`` queue) and against
the clock (SLA steps about to breach and breached).

A notice is written once per (rule, condition): the ``dedup_key`` names the condition — an incident
and its SLA step, an offense, a failing run of polls — and a unique index keeps a redelivered event,
a second replica or the next round of the SLA watch from writing it again. Its deliveries (one per
channel of the rule) are written in the same transaction, so a notice is never without them.

A rule with a company sees that company's events; a rule without one (the MSSP's own staff) sees
every company's, and the events no company owns (integrations of the MSSP).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from loguru import logger
from soc_shared.bus import Delivery
from soc_shared.events import ItsmTicket, SiemEpsSample, SiemOffense, SoarIncident, SyncReported
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from soc_tenant.notify.tables import notify_delivery, notify_notice, notify_sync_watch
from soc_tenant.readmodel.ingest import _strip_nul, integration_of
from soc_tenant.sla import rules as sla_rules

SLA_DUE_SOON, SLA_BREACHED = "sla_due_soon", "sla_breached"
OFFENSE_CREATED, INCIDENT_CREATED = "offense_created", "incident_created"
INTEGRATION_ERROR, INTEGRATION_SILENT = "integration_error", "integration_silent"
EPS_EXCEEDED, TICKET_CREATED = "eps_exceeded", "ticket_created"
TRIGGERS = (
    SLA_DUE_SOON,
    SLA_BREACHED,
    OFFENSE_CREATED,
    INCIDENT_CREATED,
    INTEGRATION_ERROR,
    INTEGRATION_SILENT,
    EPS_EXCEEDED,
    TICKET_CREATED,
)
INCIDENT_SEVERITIES = ("unknown", "informational", "low", "medium", "high", "critical")
QUEUE = "tenant.notify"
KEYS = [
    "siem.offense.upserted",
    "soar.incident.upserted",
    "itsm.ticket.upserted",
    "ingest.sync.reported",
    "siem.eps.sampled",
]
# A record first seen long after it was created (a backfill, a rule made later) is history, not news.
NEWS_WINDOW = timedelta(hours=24)
# The SLA watch looks at incidents opened within this many days.
SLA_WINDOW = timedelta(days=30)


@dataclass
class Candidate:
    """A condition that is true now; which rules it concerns is decided by ``accepts``."""

    trigger: str
    company_id: uuid.UUID | None
    dedup_key: str
    severity: str
    title: str
    summary: str
    facts: dict[str, Any]
    due_at: datetime | None = None
    accepts: Callable[[Any], bool] = field(default=lambda rule: True)


# What a rule asks beyond its trigger (``Candidate.accepts``, bound to the candidate's figure).
def _offense_at_least(severity: int, rule: Any) -> bool:
    return severity >= (rule.min_offense_severity or 0)


def _incident_at_least(severity: str, rule: Any) -> bool:
    return incident_rank(severity) >= incident_rank(rule.min_incident_severity or "unknown")


def _polls_at_least(polls: int, rule: Any) -> bool:
    return polls >= (rule.polls or 1)


def _within_lead(now: datetime, deadline: datetime, rule: Any) -> bool:
    return now >= deadline - timedelta(minutes=rule.lead_minutes or 0)


def offense_severity(severity: int) -> str:
    return "critical" if severity >= 8 else "high" if severity >= 6 else "medium" if severity >= 4 else "low"


def incident_rank(severity: str | None) -> int:
    return INCIDENT_SEVERITIES.index(severity) if severity in INCIDENT_SEVERITIES else 0


# --- writing notices ----------------------------------------------------------------------------------
RULES_SQL = sa.text("""
SELECT r.id, r.company_id, r.trigger, r.min_offense_severity, r.min_incident_severity, r.lead_minutes, r.polls,
       r.channel_ids
FROM notify_rule r
WHERE r.enabled AND r.trigger = ANY(:triggers)""")


async def load_rules(conn: AsyncConnection, triggers: Iterable[str]) -> list[Any]:
    return list((await conn.execute(RULES_SQL, {"triggers": list(triggers)})).all())


async def company_names(conn: AsyncConnection, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = [i for i in set(ids) if i is not None]
    if not wanted:
        return {}
    rows = await conn.execute(sa.text("SELECT id, name FROM company WHERE id = ANY(:ids)"), {"ids": wanted})
    return {r.id: r.name for r in rows}


async def raise_notices(
    conn: AsyncConnection, candidates: list[Candidate], rules: list[Any], now: datetime
) -> list[int]:
    """Write the notices (and their deliveries) of ``candidates`` for every rule that takes them;
    returns the ids of the notices written now (not those that existed)."""
    if not candidates or not rules:
        return []
    names = await company_names(conn, [c.company_id for c in candidates])
    channels = {
        r.id: r
        for r in await conn.execute(
            sa.text("SELECT id, company_id FROM notify_channel WHERE enabled AND id = ANY(:ids)"),
            {"ids": list({ch for r in rules for ch in r.channel_ids})},
        )
    }
    rows: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    rule_of: dict[uuid.UUID, Any] = {r.id: r for r in rules}
    for cand in candidates:
        # Vendor text may hold NUL, which PostgreSQL's text and jsonb refuse.
        title, summary, facts = _strip_nul(cand.title), _strip_nul(cand.summary), _strip_nul(cand.facts)
        company = names.get(cand.company_id, "MSSP") if cand.company_id else "MSSP"
        facts = {
            **facts,
            "company_id": None if cand.company_id is None else str(cand.company_id),
            "company": company,
        }
        for rule in rules:
            if rule.trigger != cand.trigger:
                continue
            if rule.company_id is not None and rule.company_id != cand.company_id:
                continue
            if not cand.accepts(rule):
                continue
            rows.setdefault(
                (rule.id, cand.dedup_key),
                {
                    "company_id": rule.company_id,
                    "rule_id": rule.id,
                    "trigger": cand.trigger,
                    "dedup_key": cand.dedup_key,
                    "severity": cand.severity,
                    "title": title,
                    "summary": summary,
                    "facts": facts,
                    "due_at": cand.due_at,
                    "created_at": now,
                },
            )
    if not rows:
        return []
    # One statement for the batch's notices (those that exist already are skipped), one for their
    # deliveries.
    inserted = (
        await conn.execute(
            pg_insert(notify_notice)
            .values(list(rows.values()))
            .on_conflict_do_nothing(constraint="uq_notify_notice_dedup")
            .returning(notify_notice.c.id, notify_notice.c.rule_id)
        )
    ).all()
    deliveries = []
    for notice_id, rule_id in inserted:
        rule = rule_of[rule_id]
        for ch in dict.fromkeys(rule.channel_ids):
            if ch in channels and channels[ch].company_id == rule.company_id:
                deliveries.append(
                    {
                        "company_id": rule.company_id,
                        "notice_id": notice_id,
                        "channel_id": ch,
                        "status": "pending",
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
    if deliveries:
        await conn.execute(sa.insert(notify_delivery), deliveries)
    return [r[0] for r in inserted]


# --- events -------------------------------------------------------------------------------------------
async def _mapped(
    conn: AsyncConnection, sql: str, pairs: set[tuple[str, Any]]
) -> dict[tuple[str, Any], list[uuid.UUID]]:
    out: dict[tuple[str, Any], list[uuid.UUID]] = {}
    if not pairs:
        return out
    a, b = zip(*pairs, strict=True)
    for r in await conn.execute(sa.text(sql), {"a": list(a), "b": list(b)}):
        out.setdefault((r[0], r[1]), []).append(r[2])
    return out


OFFENSE_COMPANIES = """SELECT m.integration_id, m.domain_id, m.company_id FROM qradar_mapping m
JOIN unnest(CAST(:a AS text[]), CAST(:b AS bigint[])) AS k(i, d) ON m.integration_id = k.i AND m.domain_id = k.d
WHERE m.active"""
EPS_CONTRACTS = """SELECT m.integration_id, m.domain_id, m.company_id, m.contracted_volume FROM qradar_mapping m
JOIN unnest(CAST(:a AS text[]), CAST(:b AS bigint[])) AS k(i, d) ON m.integration_id = k.i AND m.domain_id = k.d
WHERE m.active AND m.contracted_volume_type = 'EPS' AND m.contracted_volume > 0"""
INCIDENT_COMPANIES = """SELECT m.integration_id, m.account, m.company_id FROM soar_mapping m
JOIN unnest(CAST(:a AS text[]), CAST(:b AS text[])) AS k(i, acc) ON m.integration_id = k.i AND m.account = k.acc
WHERE m.active"""
TICKET_COMPANIES = """SELECT m.integration_id, m.account_id, m.company_id FROM itsm_mapping m
JOIN unnest(CAST(:a AS text[]), CAST(:b AS text[])) AS k(i, acc) ON m.integration_id = k.i AND m.account_id = k.acc
WHERE m.active"""


def _companies(found: list[uuid.UUID] | None) -> list[uuid.UUID | None]:
    return list(found) if found else [None]


async def event_candidates(
    conn: AsyncConnection, batch: list[Delivery], rules: list[Any], now: datetime
) -> list[Candidate]:
    """The conditions a batch of events makes true (for the triggers some rule asks for)."""
    wanted = {r.trigger for r in rules}
    offenses: list[tuple[str, SiemOffense]] = []
    incidents: list[tuple[str, SoarIncident]] = []
    tickets: list[tuple[str, ItsmTicket]] = []
    eps: list[tuple[str, SiemEpsSample]] = []
    reports: list[SyncReported] = []
    for d in batch:
        p, integration = d.payload, integration_of(d.envelope)
        if isinstance(p, SiemOffense) and OFFENSE_CREATED in wanted and p.start_time >= now - NEWS_WINDOW:
            offenses.append((integration, p))
        elif isinstance(p, SoarIncident) and INCIDENT_CREATED in wanted and p.created >= now - NEWS_WINDOW:
            incidents.append((integration, p))
        elif (
            isinstance(p, ItsmTicket)
            and TICKET_CREATED in wanted
            and p.soar_incident_id
            and (p.created_time or p.last_updated_time) >= now - NEWS_WINDOW
        ):
            tickets.append((integration, p))
        elif isinstance(p, SiemEpsSample) and EPS_EXCEEDED in wanted:
            eps.append((integration, p))
        elif isinstance(p, SyncReported) and wanted & {INTEGRATION_ERROR, INTEGRATION_SILENT}:
            reports.append(p)
    out: list[Candidate] = []
    if offenses:
        found = await _mapped(conn, OFFENSE_COMPANIES, {(i, p.domain_id) for i, p in offenses})
        for i, p in offenses:
            for company in _companies(found.get((i, p.domain_id))):
                out.append(
                    Candidate(
                        OFFENSE_CREATED,
                        company,
                        f"offense:{i}:{p.offense_id}",
                        offense_severity(p.severity),
                        f"New offense {p.offense_id} (severity {p.severity})",
                        p.description[:500],
                        {
                            "offense_id": p.offense_id,
                            "offense_description": p.description[:500],
                            "integration_id": i,
                            "domain_id": p.domain_id,
                        },
                        p.start_time,
                        accepts=partial(_offense_at_least, p.severity),
                    )
                )
    if incidents:
        found = await _mapped(conn, INCIDENT_COMPANIES, {(i, p.account or "") for i, p in incidents})
        for i, p in incidents:
            for company in _companies(found.get((i, p.account or ""))):
                out.append(
                    Candidate(
                        INCIDENT_CREATED,
                        company,
                        f"incident:{i}:{p.account or ''}:{p.incident_id}",
                        p.severity.value,
                        f"New incident {p.incident_id}: {p.name}"[:300],
                        f"{p.severity.value} incident {p.name!r} ({p.priority or 'no priority'}), status {p.status.value}",
                        {
                            "incident_id": p.incident_id,
                            "incident_name": p.name,
                            "priority": p.priority,
                            "integration_id": i,
                        },
                        p.created,
                        accepts=partial(_incident_at_least, p.severity.value),
                    )
                )
    if tickets:
        found = await _mapped(conn, TICKET_COMPANIES, {(i, p.account_id or "") for i, p in tickets})
        for i, p in tickets:
            for company in _companies(found.get((i, p.account_id or ""))):
                out.append(
                    Candidate(
                        TICKET_CREATED,
                        company,
                        f"ticket:{i}:{p.ticket_id}",
                        "info",
                        f"Ticket {p.ticket_id} opened for incident {p.soar_incident_id}",
                        p.subject[:500],
                        {
                            "ticket_id": p.ticket_id,
                            "ticket_subject": p.subject[:500],
                            "incident_id": p.soar_incident_id,
                            "integration_id": i,
                        },
                        p.created_time or p.last_updated_time,
                    )
                )
    if eps:
        contracts: dict[tuple[str, int], list[tuple[uuid.UUID, float]]] = {}
        pairs = {(i, p.domain_id) for i, p in eps}
        a, b = zip(*pairs, strict=True)
        for r in await conn.execute(sa.text(EPS_CONTRACTS), {"a": list(a), "b": list(b)}):
            contracts.setdefault((r[0], r[1]), []).append((r[2], float(r[3])))
        for i, p in eps:
            for company, contracted in contracts.get((i, p.domain_id), []):
                if p.average_eps <= contracted:
                    continue
                out.append(
                    Candidate(
                        EPS_EXCEEDED,
                        company,
                        f"eps:{i}:{p.domain_id}:{p.window_start.astimezone(UTC).date().isoformat()}",
                        "medium",
                        f"Contracted EPS exceeded: {p.average_eps:.1f} of {contracted:g}",
                        f"Domain {p.domain_id} averaged {p.average_eps:.1f} events/s (peak {p.peak_eps:.1f}) "
                        f"from {p.window_start.isoformat()} to {p.window_end.isoformat()}; contracted {contracted:g}.",
                        {
                            "eps": round(p.average_eps, 2),
                            "contracted_eps": contracted,
                            "domain_id": p.domain_id,
                            "integration_id": i,
                        },
                        p.window_end,
                    )
                )
    if reports:
        out += await report_candidates(conn, reports)
    return out


async def report_candidates(conn: AsyncConnection, reports: list[SyncReported]) -> list[Candidate]:
    """Integration in error for N polls in a row, or N polls in a row that brought nothing: the run is
    tracked per (integration, resource) in ``notify_sync_watch``; one notice per run."""
    out: list[Candidate] = []
    ids = list({r.integration_id for r in reports})
    info = {
        str(r.id): r
        for r in await conn.execute(
            sa.text(
                "SELECT id, instance_name, subtype, company_id FROM integration WHERE id::text = ANY(:ids)"
            ),
            {"ids": ids},
        )
    }
    for rep in sorted(reports, key=lambda r: r.finished_at):
        key = {"integration_id": rep.integration_id, "resource": rep.resource}
        row = (
            await conn.execute(
                sa.select(notify_sync_watch).where(*(notify_sync_watch.c[k] == v for k, v in key.items()))
            )
        ).one_or_none()
        failing_since = row.failing_since if row else None
        empty_polls = row.empty_polls if row else 0
        empty_since = row.empty_since if row else None
        if rep.outcome == "error":
            failing_since = failing_since or rep.started_at
            empty_polls, empty_since = 0, None
        else:
            failing_since = None
            if rep.records == 0:
                empty_polls += 1
                empty_since = empty_since or rep.started_at
            else:
                empty_polls, empty_since = 0, None
        stmt = pg_insert(notify_sync_watch).values(
            **key, failing_since=failing_since, empty_polls=empty_polls, empty_since=empty_since
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["integration_id", "resource"],
                set_={"failing_since": failing_since, "empty_polls": empty_polls, "empty_since": empty_since},
            )
        )
        integ = info.get(rep.integration_id)
        name = f"{integ.subtype} {integ.instance_name!r}" if integ else rep.integration_id
        company = integ.company_id if integ else None
        facts = {"integration_id": rep.integration_id, "integration": name, "resource": rep.resource}
        if rep.outcome == "error" and failing_since is not None:
            failures = rep.consecutive_failures
            out.append(
                Candidate(
                    INTEGRATION_ERROR,
                    company,
                    f"error:{rep.integration_id}:{rep.resource}:{failing_since.isoformat()}",
                    "high",
                    f"Integration {name} failing ({rep.resource})",
                    f"{failures} poll(s) in a row failed: {rep.error_category or 'error'}: {(rep.error_message or '')[:300]}",
                    {
                        **facts,
                        "polls": failures,
                        "error": (rep.error_message or rep.error_category or "")[:300],
                    },
                    rep.finished_at,
                    accepts=partial(_polls_at_least, failures),
                )
            )
        elif empty_polls and empty_since is not None:
            out.append(
                Candidate(
                    INTEGRATION_SILENT,
                    company,
                    f"silent:{rep.integration_id}:{rep.resource}:{empty_since.isoformat()}",
                    "medium",
                    f"Integration {name} silent ({rep.resource})",
                    f"{empty_polls} poll(s) in a row brought no records since {empty_since.isoformat()}",
                    {**facts, "polls": empty_polls},
                    rep.finished_at,
                    accepts=partial(_polls_at_least, empty_polls),
                )
            )
    return out


# --- the SLA clock ------------------------------------------------------------------------------------
OPEN_INCIDENTS = sa.text("""
SELECT i.integration_id, i.account, i.incident_id, i.name, i.priority, i.occurred, i.created,
       i.tta_at, i.ttn_at, i.ttdn_at, m.company_id
FROM soar_incident i
JOIN soar_mapping m ON m.active AND m.integration_id = i.integration_id AND m.account = i.account
WHERE i.status IN ('pending', 'active') AND i.created >= :since
  AND (i.tta_at IS NULL OR i.ttn_at IS NULL OR i.ttdn_at IS NULL)
  AND (CAST(:all_companies AS boolean) OR m.company_id = ANY(:companies))""")


async def sla_candidates(conn: AsyncConnection, rules: list[Any], now: datetime) -> list[Candidate]:
    """Open incidents' pending SLA steps: breached (the deadline passed) or due within a rule's lead
    time. The deadline is the step's target from the clock start (readmodel.sla, the same rule the
    compliance figures use)."""
    sla_rules_ = [r for r in rules if r.trigger in (SLA_DUE_SOON, SLA_BREACHED)]
    if not sla_rules_:
        return []
    companies = {r.company_id for r in sla_rules_}
    rows = (
        await conn.execute(
            OPEN_INCIDENTS,
            {
                "since": now - SLA_WINDOW,
                "all_companies": None in companies,
                "companies": [c for c in companies if c is not None],
            },
        )
    ).all()
    if not rows:
        return []
    max_lead = (
        max((r.lead_minutes or 0) for r in sla_rules_ if r.trigger == SLA_DUE_SOON)
        if any(r.trigger == SLA_DUE_SOON for r in sla_rules_)
        else 0
    )
    defaults = await sla_rules.load_defaults(conn)  # type: ignore[arg-type]
    slas: dict[uuid.UUID, sla_rules.CompanySla] = {}
    out: list[Candidate] = []
    for r in rows:
        if r.company_id not in slas:
            slas[r.company_id] = await sla_rules.load_company_sla(conn, str(r.company_id), defaults)  # type: ignore[arg-type]
        company_sla = slas[r.company_id]
        target = company_sla.target(r.priority or "P4", r.integration_id, r.account)
        start = sla_rules.clock_start(company_sla.clock_start, r.occurred, r.created)
        if target is None or start is None:
            continue
        done = {"tta": r.tta_at, "ttn": r.ttn_at, "ttdn": r.ttdn_at}
        for step in sla_rules.STEPS:
            minutes = target.minutes(step)
            if minutes is None or done[step] is not None:
                continue
            deadline = start + timedelta(minutes=minutes)
            if now < deadline - timedelta(minutes=max_lead):
                continue
            ref = f"{r.integration_id}:{r.account}:{r.incident_id}:{step}"
            facts = {
                "incident_id": r.incident_id,
                "incident_name": r.name,
                "priority": r.priority,
                "step": step.upper(),
                "deadline": deadline.isoformat(),
                "integration_id": r.integration_id,
            }
            label = f"{step.upper()} of incident {r.incident_id} ({r.priority})"
            if sla_rules.step_status(start, None, minutes, now) == sla_rules.BREACHED:
                out.append(
                    Candidate(
                        SLA_BREACHED,
                        r.company_id,
                        ref,
                        "critical" if r.priority in ("P1", "P2") else "high",
                        f"SLA breached: {label}",
                        f"{r.name!r}: the {step.upper()} deadline {deadline.isoformat()} passed without it.",
                        facts,
                        deadline,
                    )
                )
            else:
                left = deadline - now
                out.append(
                    Candidate(
                        SLA_DUE_SOON,
                        r.company_id,
                        ref,
                        "high" if r.priority in ("P1", "P2") else "medium",
                        f"SLA about to breach: {label}",
                        f"{r.name!r}: {step.upper()} is due at {deadline.isoformat()} "
                        f"({int(left.total_seconds() // 60)} min left).",
                        {**facts, "lead_minutes": int(left.total_seconds() // 60)},
                        deadline,
                        accepts=partial(_within_lead, now, deadline),
                    )
                )
    return out


async def watch_sla(db: Any, now: datetime) -> list[int]:
    """One round of the SLA clock (the owner role: every company's incidents)."""
    async with db.engine.begin() as conn:
        rules = await load_rules(conn, (SLA_DUE_SOON, SLA_BREACHED))
        if not rules:
            return []
        written = await raise_notices(conn, await sla_candidates(conn, rules, now), rules, now)
    if written:
        logger.info("SLA watch raised {} notice(s)", len(written))
    return written


async def handle_events(db: Any, batch: list[Delivery], now: datetime) -> list[int]:
    triggers = (
        OFFENSE_CREATED,
        INCIDENT_CREATED,
        TICKET_CREATED,
        EPS_EXCEEDED,
        INTEGRATION_ERROR,
        INTEGRATION_SILENT,
    )
    async with db.engine.begin() as conn:
        rules = await load_rules(conn, triggers)
        if not rules:
            return []
        return await raise_notices(conn, await event_candidates(conn, batch, rules, now), rules, now)


async def purge(db: Any, now: datetime, days: int) -> int:
    """Delete notices older than ``days`` whose deliveries are all finished (sent or failed); their
    deliveries, attempts and read marks go with them. Returns how many notices went."""
    if days <= 0:
        return 0
    async with db.engine.begin() as conn:
        result = await conn.execute(
            sa.text(
                "DELETE FROM notify_notice n WHERE n.created_at < :before AND NOT EXISTS ("
                "SELECT 1 FROM notify_delivery d WHERE d.notice_id = n.id AND d.status = 'pending') RETURNING n.id"
            ),
            {"before": now - timedelta(days=days)},
        )
        return len(result.all())
