"""Incident cards of the dashboard as the original product answered them: each card's count in the
window, its change against the period just before, and its "new" count (created today, UTC).

A card is a set of incident statuses; the counts come from the daily rollup when the window is made
of whole UTC days and no per-incident filter (owner, incident id) is asked for, else from the
incidents themselves through the ``(integration, account, created)`` and ``(…, owner, created)``
indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from soc_tenant.dashboard import positives as positives
from soc_tenant.db import ScopedSession
from soc_tenant.readmodel import lookups
from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import Scope, TimeRange, bad_param

CARDS: dict[str, tuple[str, ...] | None] = {
    "total_incidents": None,  # every status
    "open": ("pending", "active"),
    "closed": ("closed", "archived"),
}
# The original's cards under the true/false-positive rule (readmodel.positives), counted from the
# incidents themselves (the rule reads fields no rollup keeps).
POSITIVE_CARDS = ("truePositives", "falsePositives", "incompleteIncidents")
PERIOD_NAMES = {1: "day", 2: "week", 3: "month"}

# ``status`` as the original took it (1 open, 2 closed) or as XSOAR names/numbers them.
STATUS_ALIASES: dict[str, tuple[str, ...]] = {
    "open": ("pending", "active"),
    "1": ("pending", "active"),
    "closed": ("closed", "archived"),
    "2": ("closed", "archived"),
    "pending": ("pending",),
    "0": ("pending",),
    "active": ("active",),
    "done": ("closed",),
    "archived": ("archived",),
    "3": ("archived",),
}


def parse_statuses(values: list[str] | None) -> list[str] | None:
    """``status`` values to incident statuses (422 naming ``status`` for an unknown one)."""
    if not values:
        return None
    out: list[str] = []
    for raw in values:
        for part in raw.split(","):
            key = part.strip().lower()
            if not key:
                continue
            if key not in STATUS_ALIASES:
                raise bad_param("status", f"unknown status {part.strip()!r}", allowed=sorted(STATUS_ALIASES))
            out += [s for s in STATUS_ALIASES[key] if s not in out]
    return out or None


@dataclass
class CardFilters:
    priority: list[str] | None = None
    status: list[str] | None = None
    owner: str | None = None
    incident_id: str | None = None

    @property
    def per_incident(self) -> bool:
        return bool(self.owner or self.incident_id)


def _whole_days(window: TimeRange) -> bool:
    def midnight(value: datetime) -> bool:
        return value.astimezone(UTC).time() == time(0)

    return (
        window.start is not None
        and midnight(window.start)
        and (window.end is None or midnight(window.end + timedelta(microseconds=1)))
    )


def _days(window: TimeRange, today: date) -> tuple[date, date]:
    assert window.start is not None
    end = window.end.astimezone(UTC).date() if window.end else today
    return window.start.astimezone(UTC).date(), end


def change_text(current: int, previous: int, period: str) -> str:
    """The original's wording: ``"↑ 12.5% from previous week"`` (bounded to ±100 %)."""
    if previous == 0:
        return f"0% from previous {period}"
    change = max(-100.0, min(100.0, (current - previous) / previous * 100))
    return f"{'↑' if change >= 0 else '↓'} {abs(round(change, 1))}% from previous {period}"


async def _status_counts(
    session: ScopedSession, scope: Scope, window: TimeRange, f: CardFilters, now: datetime
) -> tuple[dict[str, int], dict[str, int] | None, dict[str, int]]:
    """Per status: incidents in the window, in the previous period (None without one), created today."""
    today = now.date()
    previous = window.previous(now)
    everything = window.start is None and window.end is None
    if not f.per_incident and (everything or _whole_days(window)):
        return await _from_rollup(session, scope, window, previous, f, today)
    return await _from_incidents(session, scope, window, previous, f, now)


def _sums(rows: Any) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    cur: dict[str, int] = {}
    prev: dict[str, int] = {}
    new: dict[str, int] = {}
    for status, c, p, n in rows:
        cur[status], prev[status], new[status] = int(c or 0), int(p or 0), int(n or 0)
    return cur, prev, new


async def _from_rollup(
    session: ScopedSession,
    scope: Scope,
    window: TimeRange,
    previous: TimeRange | None,
    f: CardFilters,
    today: date,
) -> tuple[dict[str, int], dict[str, int] | None, dict[str, int]]:
    d = t.incident_daily
    filters: list[Any] = [scope.soar_filter(d)]
    if f.priority:
        filters.append(d.c.priority.in_(f.priority))
    if f.status:
        filters.append(d.c.status.in_(f.status))
    if window.start is None:
        # all time: the totals rollup, and today from the daily one
        r = t.incident_totals
        tf: list[Any] = [scope.soar_filter(r)]
        if f.priority:
            tf.append(r.c.priority.in_(f.priority))
        if f.status:
            tf.append(r.c.status.in_(f.status))
        rows = (
            await session.execute(
                sa.select(r.c.status, sa.func.sum(r.c.n), sa.literal(0), sa.literal(0))
                .where(*tf)
                .group_by(r.c.status)
            )
        ).all()
        cur, _, _ = _sums(rows)
        new_rows = (
            await session.execute(
                sa.select(d.c.status, sa.func.sum(d.c.n))
                .where(*filters, d.c.day == today)
                .group_by(d.c.status)
            )
        ).all()
        return cur, None, {s: int(n) for s, n in new_rows}
    first, last = _days(window, today)
    lo, hi = min(first, today), max(last, today)
    cur_col = sa.func.sum(d.c.n).filter(d.c.day >= first, d.c.day <= last)
    prev_col: Any = sa.literal(0)
    if previous is not None:
        p_first, p_last = _days(previous, today)
        lo = min(lo, p_first)
        prev_col = sa.func.sum(d.c.n).filter(d.c.day >= p_first, d.c.day <= p_last)
    new_col = sa.func.sum(d.c.n).filter(d.c.day == today)
    rows = (
        await session.execute(
            sa.select(d.c.status, cur_col, prev_col, new_col)
            .where(*filters, d.c.day >= lo, d.c.day <= hi)
            .group_by(d.c.status)
        )
    ).all()
    cur, prev, new = _sums(rows)
    return cur, (prev if previous is not None else None), new


async def _from_incidents(
    session: ScopedSession,
    scope: Scope,
    window: TimeRange,
    previous: TimeRange | None,
    f: CardFilters,
    now: datetime,
) -> tuple[dict[str, int], dict[str, int] | None, dict[str, int]]:
    i = t.soar_incident
    filters: list[Any] = [scope.soar_filter(i)]
    if f.priority:
        filters.append(i.c.priority.in_(f.priority))
    if f.status:
        filters.append(i.c.status.in_(f.status))
    if f.owner:
        filters.append(lookups.incident_value(scope, i.c.owner, "owner", f.owner, contains=False))
    if f.incident_id:
        filters.append(i.c.incident_id == f.incident_id)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)

    def within(w: TimeRange) -> Any:
        parts = []
        if w.start is not None:
            parts.append(i.c.created >= w.start)
        if w.end is not None:
            parts.append(i.c.created <= w.end)
        return sa.and_(sa.true(), *parts)

    cur_col = sa.func.count().filter(within(window))
    prev_col: Any = sa.literal(0)
    bounds: list[Any] = []
    if window.start is not None:
        lo = min(window.start, today)
        if previous is not None and previous.start is not None:
            prev_col = sa.func.count().filter(within(previous))
            lo = min(lo, previous.start)
        bounds.append(i.c.created >= lo)
    new_col = sa.func.count().filter(i.c.created >= today)
    rows = (
        await session.execute(
            sa.select(i.c.status, cur_col, prev_col, new_col).where(*filters, *bounds).group_by(i.c.status)
        )
    ).all()
    cur, prev, new = _sums(rows)
    return cur, (prev if previous is not None else None), new


async def incident_cards_with_change(
    session: ScopedSession, scope: Scope, window: TimeRange, f: CardFilters, wanted: set[str] | None
) -> dict[str, Any]:
    """``{card: {"count", "change", "change_pct", "previous", "new"}}`` for each wanted card."""
    now = datetime.now(UTC)
    cur, prev, new = await _status_counts(session, scope, window, f, now)
    period = PERIOD_NAMES.get(window.preset or 0, "period")
    out: dict[str, Any] = {}
    for card, statuses in CARDS.items():
        if wanted is not None and card not in wanted:
            continue

        def total(counts: dict[str, int], statuses: tuple[str, ...] | None = statuses) -> int:
            return sum(n for s, n in counts.items() if statuses is None or s in statuses)

        count = total(cur)
        before = total(prev) if prev is not None else None
        out[card] = {
            "count": count,
            "previous": before,
            "change_pct": round((count - before) * 100.0 / before, 1) if before else None,
            "change": change_text(count, before, period) if before is not None else None,
            "new": total(new),
        }
    return out


async def positive_cards(
    session: ScopedSession, scope: Scope, window: TimeRange, f: CardFilters, wanted: set[str] | None
) -> dict[str, Any]:
    """``truePositives`` and ``falsePositives`` (count, change, new) and ``incompleteIncidents``
    (the true-positive status with a required field missing) of the window."""
    i = t.soar_incident
    rule = positives.rule()
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    previous = window.previous(now)
    kind = sa.case(
        (rule.true_sql(i), sa.literal(positives.TRUE_POSITIVE)),
        (rule.false_sql(i), sa.literal(positives.FALSE_POSITIVE)),
        (sa.func.lower(i.c.itsm_sync_status) == rule.true_status.lower(), sa.literal("incomplete")),
        else_=sa.literal("other"),
    ).label("kind")
    filters: list[Any] = [scope.soar_filter(i)]
    if f.priority:
        filters.append(i.c.priority.in_(f.priority))
    if f.status:
        filters.append(i.c.status.in_(f.status))
    if f.owner:
        filters.append(lookups.incident_value(scope, i.c.owner, "owner", f.owner, contains=False))
    if f.incident_id:
        filters.append(i.c.incident_id == f.incident_id)

    def within(w: TimeRange) -> Any:
        return sa.and_(
            sa.true(),
            *([i.c.created >= w.start] if w.start is not None else []),
            *([i.c.created <= w.end] if w.end is not None else []),
        )

    lo = [x for x in (window.start, previous.start if previous else None, today) if x is not None]
    bounds = [i.c.created >= min(lo)] if window.start is not None else []
    rows = (
        await session.execute(
            sa.select(
                kind,
                sa.func.count().filter(within(window)),
                sa.func.count().filter(within(previous)) if previous is not None else sa.literal(0),
                sa.func.count().filter(i.c.created >= today),
            )
            .where(*filters, *bounds)
            .group_by(kind)
        )
    ).all()
    counts = {k: (int(c), int(p), int(n)) for k, c, p, n in rows}
    period = PERIOD_NAMES.get(window.preset or 0, "period")
    out: dict[str, Any] = {}
    for card, key in (
        ("truePositives", positives.TRUE_POSITIVE),
        ("falsePositives", positives.FALSE_POSITIVE),
    ):
        if wanted is not None and card not in wanted:
            continue
        count, before, new = counts.get(key, (0, 0, 0))
        prior = before if previous is not None else None
        out[card] = {
            "count": count,
            "previous": prior,
            "change_pct": round((count - prior) * 100.0 / prior, 1) if prior else None,
            "change": change_text(count, prior, period) if prior is not None else None,
            "new": new,
        }
    if wanted is None or "incompleteIncidents" in wanted:
        out["incompleteIncidents"] = {
            "count": counts.get("incomplete", (0, 0, 0))[0],
            "description": f"incidents with the {rule.true_status} status missing a field the true-positive rule requires",
        }
    return out
