"""The event-log catalogue is data: every family renders to AQL the console accepts, over the
window it claims, and becomes exactly one sync resource."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from soc_siem_ingest.catalogue import CATALOGUE, EPS_AQL, FAMILIES, Step, due_windows, render_eps
from soc_siem_ingest.resources import RESOURCES
from soc_simulators import qradar as qradar_sim


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


SEED_FAMILIES = {
    "event_counts",
    "daily_events",
    "correlated_events",
    "weekly_correlated_events",
    "suspicious_events",
    "dos_events",
    "top_dos_events",
    "top_alert_events",
    "daily_closure_reasons",
    "total_traffic",
    "destination_addresses",
    "top_destination_connections",
    "successful_logons",
    "remote_users",
    "total_events",
    "daily_event_counts",
    "weekly_avg_eps",
    "monthly_avg_eps",
    "last_month_avg_eps",
}


def test_catalogue_covers_the_seed_families_once_each_as_a_resource() -> None:
    assert SEED_FAMILIES <= set(FAMILIES)
    assert len(FAMILIES) == len(CATALOGUE)
    names = [r.name for r in RESOURCES]
    assert len(names) == len(set(names))
    assert {n.removeprefix("metric.") for n in names if n.startswith("metric.")} == set(FAMILIES)


def test_every_template_renders_to_aql_over_its_window() -> None:
    now = at("2024-03-13 10:17:00")
    for family in CATALOGUE:
        [(start, end)] = due_windows(
            family.step,
            last_end_ms=None,
            now_ms=now,
            settle_ms=300_000,
            max_windows=5,
            span_days=family.span_days,
        )
        aql = family.render(domain_id=3, start_ms=start, end_ms=end)
        assert "{" not in aql and "}" not in aql, family.name
        query = qradar_sim.parse_aql(aql, now)
        assert (query.start_ms, query.stop_ms, query.domain_id) == (start, end, 3), family.name
        names = {c.name for c in query.columns}
        assert set(family.columns) <= names, (family.name, names)
        assert family.measures, family.name
        if "{seconds}" in family.aql:
            assert re.search(rf"/ {(end - start) // 1000}\b", aql), family.name
    eps = qradar_sim.parse_aql(
        render_eps(domain_id=1, start_ms=at("2024-03-13 09:00"), end_ms=at("2024-03-13 10:00")), now
    )
    assert {c.name for c in eps.columns} == {"minute", "event_count"} and "domainid = {domain_id}" in EPS_AQL


def test_windows_are_aligned_settled_and_caught_up_within_limits() -> None:
    now = at("2024-03-13 10:03:00")  # a Wednesday
    # The 09:00-10:00 hour closed 3 minutes ago: not settled yet with a 5-minute settle.
    assert due_windows(Step.HOUR, last_end_ms=None, now_ms=now, settle_ms=300_000, max_windows=3) == [
        (at("2024-03-13 08:00"), at("2024-03-13 09:00"))
    ]
    assert due_windows(Step.HOUR, last_end_ms=None, now_ms=now, settle_ms=0, max_windows=3) == [
        (at("2024-03-13 09:00"), at("2024-03-13 10:00"))
    ]
    # Nothing new since the cursor; after an outage only the last max_windows are caught up.
    assert (
        due_windows(Step.HOUR, last_end_ms=at("2024-03-13 10:00"), now_ms=now, settle_ms=0, max_windows=3)
        == []
    )
    assert due_windows(
        Step.HOUR, last_end_ms=at("2024-03-12 10:00"), now_ms=now, settle_ms=0, max_windows=3
    ) == [
        (at("2024-03-13 07:00"), at("2024-03-13 08:00")),
        (at("2024-03-13 08:00"), at("2024-03-13 09:00")),
        (at("2024-03-13 09:00"), at("2024-03-13 10:00")),
    ]
    assert due_windows(
        Step.DAY, last_end_ms=at("2024-03-12 00:00"), now_ms=now, settle_ms=0, max_windows=7
    ) == [(at("2024-03-12 00:00"), at("2024-03-13 00:00"))]
    assert due_windows(Step.WEEK, last_end_ms=None, now_ms=now, settle_ms=0, max_windows=1) == [
        (at("2024-03-04 00:00"), at("2024-03-11 00:00"))
    ]  # Monday to Monday
    assert due_windows(Step.MONTH, last_end_ms=None, now_ms=now, settle_ms=0, max_windows=1) == [
        (at("2024-02-01 00:00"), at("2024-03-01 00:00"))
    ]
    assert due_windows(Step.DAY, last_end_ms=None, now_ms=now, settle_ms=0, max_windows=1, span_days=30) == [
        (at("2024-02-12 00:00"), at("2024-03-13 00:00"))
    ]
