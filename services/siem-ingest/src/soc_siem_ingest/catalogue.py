"""The seed's event-log catalogue as data: one Ariel (AQL) query per family, per domain and window.

Each family becomes one sync resource (``metric.<name>``) with its own cursor (the end of the last
window published) and one ``siem.metric.sampled`` event per (domain, window), ``family`` = the
name below. Adding a family is adding an entry here; no code changes.

Templates take ``{domain_id}``, ``{start}`` and ``{end}`` (epoch ms, ``START``/``STOP``) and
``{seconds}`` (the window length, for average-rate columns). Windows are aligned to UTC
boundaries (weeks start on Monday) and a window is computed only ``settle`` seconds after it
closed, because QRadar keeps receiving late events for a while.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from soc_shared.events import Granularity

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class Step(StrEnum):
    """How often a new window closes (and so how often a family produces a sample)."""

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class MetricFamily:
    name: str
    seed_model: str
    description: str
    aql: str
    step: Step
    granularity: Granularity
    dimensions: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()
    span_days: int | None = None
    """A rolling window of this many days ending at each step boundary; None: the step itself."""

    @property
    def resource(self) -> str:
        return f"metric.{self.name}"

    @property
    def columns(self) -> tuple[str, ...]:
        return self.dimensions + self.measures

    def render(self, *, domain_id: int, start_ms: int, end_ms: int) -> str:
        return " ".join(
            self.aql.format(
                domain_id=int(domain_id),
                start=int(start_ms),
                end=int(end_ms),
                seconds=max(1, (end_ms - start_ms) // 1000),
            ).split()
        )


_WINDOW = "START {start} STOP {end}"
_CORRELATED = "creeventlist IS NOT NULL"
_CLOSURE_BUCKET = (
    "CASE WHEN magnitude <= 3 THEN 'False Positive - Tuned' WHEN magnitude >= 7 THEN 'True Positive - Incident Raised' "
    "ELSE 'True Positive - Existing Incident Updated' END"
)

CATALOGUE: tuple[MetricFamily, ...] = (
    MetricFamily(
        "event_counts",
        "EventCountLog",
        "Events per high-level category in the hour",
        "SELECT CATEGORYNAME(highlevelcategory) AS category, COUNT(*) AS event_count FROM events "
        "WHERE domainid = {domain_id} GROUP BY highlevelcategory ORDER BY event_count DESC " + _WINDOW,
        Step.HOUR,
        Granularity.HOUR,
        ("category",),
        ("event_count",),
    ),
    MetricFamily(
        "daily_events",
        "DailyEventLog",
        "Correlated (rule-matched) events per day",
        "SELECT DATEFORMAT(starttime, 'yyyy-MM-dd') AS date, COUNT(*) AS daily_count FROM events "
        "WHERE domainid = {domain_id} AND " + _CORRELATED + " GROUP BY DATEFORMAT(starttime, 'yyyy-MM-dd') "
        "ORDER BY date " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("date",),
        ("daily_count",),
    ),
    MetricFamily(
        "correlated_events",
        "CorrelatedEventLog",
        "Correlated (rule-matched) events in the hour",
        "SELECT COUNT(*) AS correlated_events_count FROM events WHERE domainid = {domain_id} AND "
        + _CORRELATED
        + " "
        + _WINDOW,
        Step.HOUR,
        Granularity.HOUR,
        (),
        ("correlated_events_count",),
    ),
    MetricFamily(
        "weekly_correlated_events",
        "WeeklyCorrelatedEventLog",
        "Correlated events per ISO week",
        "SELECT DATEFORMAT(starttime, 'yyyy-ww') AS week, COUNT(*) AS weekly_count FROM events "
        "WHERE domainid = {domain_id} AND " + _CORRELATED + " GROUP BY DATEFORMAT(starttime, 'yyyy-ww') "
        "ORDER BY week " + _WINDOW,
        Step.WEEK,
        Granularity.WEEK,
        ("week",),
        ("weekly_count",),
    ),
    MetricFamily(
        "suspicious_events",
        "SuspiciousEventLog",
        "Top 10 suspicious event names of the day",
        "SELECT QIDNAME(qid) AS event_name, COUNT(*) AS event_count FROM events WHERE domainid = {domain_id} "
        "AND (LOWER(CATEGORYNAME(category)) LIKE '%suspicious%' OR LOWER(QIDNAME(qid)) LIKE '%suspicious%' "
        "OR LOWER(QIDNAME(qid)) LIKE '%leakage%' OR LOWER(QIDNAME(qid)) LIKE '%unauthorized%') "
        "GROUP BY qid ORDER BY event_count DESC LIMIT 10 " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("event_name",),
        ("event_count",),
    ),
    MetricFamily(
        "recon_events",
        "ReconEventLog",
        "Reconnaissance events of the day",
        "SELECT COUNT(*) AS total_recon_events FROM events WHERE domainid = {domain_id} "
        "AND (highlevelcategory = 1000 OR LOWER(QIDNAME(qid)) LIKE '%scan%') " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        (),
        ("total_recon_events",),
    ),
    MetricFamily(
        "dos_events",
        "DosEventLog",
        "Denial-of-service events of the day",
        "SELECT COUNT(*) AS total_dos_events FROM events WHERE domainid = {domain_id} "
        "AND highlevelcategory = 2000 " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        (),
        ("total_dos_events",),
    ),
    MetricFamily(
        "top_dos_events",
        "TopDosEventLog",
        "Top 10 denial-of-service event names of the day",
        "SELECT QIDNAME(qid) AS event_name, COUNT(*) AS event_count FROM events WHERE domainid = {domain_id} "
        "AND highlevelcategory = 2000 GROUP BY qid ORDER BY event_count DESC LIMIT 10 " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("event_name",),
        ("event_count",),
    ),
    MetricFamily(
        "top_alert_events",
        "TopAlertEventLog",
        "Top 10 rules (alerts) by matched events of the day",
        "SELECT RULENAME(creeventlist) AS alert_name, COUNT(*) AS event_count FROM events "
        "WHERE domainid = {domain_id} AND " + _CORRELATED + " GROUP BY creeventlist "
        "ORDER BY event_count DESC LIMIT 10 " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("alert_name",),
        ("event_count",),
    ),
    MetricFamily(
        # The seed buckets correlated events by magnitude under closure-reason labels; offense
        # closing reasons proper travel with siem.offense.upserted (closing_reason).
        "daily_closure_reasons",
        "DailyClosureReasonLog",
        "Correlated events per day by closure-reason bucket",
        "SELECT DATEFORMAT(starttime, 'yyyy-MM-dd') AS date, " + _CLOSURE_BUCKET + " AS closure_reason, "
        "COUNT(*) AS reason_count FROM events WHERE domainid = {domain_id} AND " + _CORRELATED + " "
        "GROUP BY DATEFORMAT(starttime, 'yyyy-MM-dd'), "
        + _CLOSURE_BUCKET
        + " ORDER BY reason_count DESC "
        + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("date", "closure_reason"),
        ("reason_count",),
    ),
    MetricFamily(
        "total_traffic",
        "TotalTrafficLog",
        "All events (coalesced counts added up) of the day",
        "SELECT SUM(eventcount) AS total_traffic FROM events WHERE domainid = {domain_id} " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        (),
        ("total_traffic",),
    ),
    MetricFamily(
        "destination_addresses",
        "DestinationAddressLog",
        "Top 20 destination addresses by event records of the day",
        "SELECT destinationip AS destination_ip, COUNT(*) AS address_count FROM events WHERE domainid = {domain_id} "
        "GROUP BY destinationip ORDER BY address_count DESC LIMIT 20 " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("destination_ip",),
        ("address_count",),
    ),
    MetricFamily(
        "top_destination_connections",
        "TopDestinationConnectionLog",
        "Top 10 destination addresses by connections (events) of the day",
        "SELECT destinationip AS destination_ip, SUM(eventcount) AS connection_count FROM events "
        "WHERE domainid = {domain_id} GROUP BY destinationip ORDER BY connection_count DESC LIMIT 10 "
        + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("destination_ip",),
        ("connection_count",),
    ),
    MetricFamily(
        "successful_logons",
        "SuccessfulLogonEvent",
        "Successful logons by user, logon type, source and log source",
        "SELECT username, QIDNAME(qid) AS logon_type, sourceip AS source_ip, LOGSOURCENAME(logsourceid) AS log_source, "
        "COUNT(*) AS event_count FROM events WHERE domainid = {domain_id} AND highlevelcategory = 3000 "
        "AND username IS NOT NULL AND LOWER(QIDNAME(qid)) LIKE '%success%' "
        "GROUP BY username, qid, sourceip, logsourceid ORDER BY event_count DESC LIMIT 100 " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("username", "logon_type", "source_ip", "log_source"),
        ("event_count",),
    ),
    MetricFamily(
        "remote_users",
        "RemoteUsersCount",
        "Distinct users seen by VPN, remote-access or SSH rules in the day",
        "SELECT UNIQUECOUNT(username) AS total_remote_users FROM events WHERE domainid = {domain_id} "
        "AND username IS NOT NULL AND (LOWER(RULENAME(creeventlist)) LIKE '%vpn%' "
        "OR LOWER(RULENAME(creeventlist)) LIKE '%remote%' OR LOWER(RULENAME(creeventlist)) LIKE '%ssh%') "
        + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        (),
        ("total_remote_users",),
    ),
    MetricFamily(
        "total_events",
        "TotalEvents",
        "Event records of the hour",
        "SELECT COUNT(*) AS total_events FROM events WHERE domainid = {domain_id} " + _WINDOW,
        Step.HOUR,
        Granularity.HOUR,
        (),
        ("total_events",),
    ),
    MetricFamily(
        "daily_event_counts",
        "DailyEventCountLog",
        "All events (coalesced counts added up) per day",
        "SELECT DATEFORMAT(starttime, 'yyyy-MM-dd') AS date, SUM(eventcount) AS daily_count FROM events "
        "WHERE domainid = {domain_id} GROUP BY DATEFORMAT(starttime, 'yyyy-MM-dd') ORDER BY date " + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("date",),
        ("daily_count",),
    ),
    MetricFamily(
        "weekly_avg_eps",
        "WeeklyAvgEpsLog",
        "Average events per second over the ISO week",
        "SELECT SUM(eventcount) / {seconds} AS weekly_avg_eps FROM events WHERE domainid = {domain_id} "
        + _WINDOW,
        Step.WEEK,
        Granularity.WEEK,
        (),
        ("weekly_avg_eps",),
    ),
    MetricFamily(
        "monthly_avg_eps",
        "MonthlyAvgEpsLog",
        "Average events per second over the last 30 days (rolling, daily)",
        "SELECT SUM(eventcount) / {seconds} AS monthly_avg_eps FROM events WHERE domainid = {domain_id} "
        + _WINDOW,
        Step.DAY,
        Granularity.MONTH,
        (),
        ("monthly_avg_eps",),
        span_days=30,
    ),
    MetricFamily(
        "last_month_avg_eps",
        "LastMonthAvgEpsLog",
        "Average events per second over the previous calendar month",
        "SELECT SUM(eventcount) / {seconds} AS last_month_avg_eps FROM events WHERE domainid = {domain_id} "
        + _WINDOW,
        Step.MONTH,
        Granularity.MONTH,
        (),
        ("last_month_avg_eps",),
    ),
    MetricFamily(
        "source_geolocation",
        "SourceGeolocation",
        "Top 20 source countries by event records of the day",
        "SELECT sourcegeographiclocation AS country, COUNT(*) AS event_count FROM events "
        "WHERE domainid = {domain_id} GROUP BY sourcegeographiclocation ORDER BY event_count DESC LIMIT 20 "
        + _WINDOW,
        Step.DAY,
        Granularity.DAY,
        ("country",),
        ("event_count",),
    ),
)

FAMILIES: dict[str, MetricFamily] = {f.name: f for f in CATALOGUE}

# EPS per domain for the contracted-volume views (siem.eps.sampled): per-minute event counts, from
# which the average (all events / window) and the peak (busiest minute) follow.
EPS_AQL = (
    "SELECT DATEFORMAT(starttime, 'yyyy-MM-dd HH:mm') AS minute, SUM(eventcount) AS event_count FROM events "
    "WHERE domainid = {domain_id} GROUP BY DATEFORMAT(starttime, 'yyyy-MM-dd HH:mm') " + _WINDOW
)
EPS_STEPS: dict[Step, Granularity] = {Step.HOUR: Granularity.HOUR, Step.DAY: Granularity.DAY}

# How often each kind of family looks for a newly closed window.
CHECK_SECONDS: dict[Step, int] = {Step.HOUR: 600, Step.DAY: 1800, Step.WEEK: 3600, Step.MONTH: 3600}


def render_eps(*, domain_id: int, start_ms: int, end_ms: int) -> str:
    return " ".join(EPS_AQL.format(domain_id=int(domain_id), start=int(start_ms), end=int(end_ms)).split())


# ------------------------------------------------------------------------------------- windows
def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def floor_boundary(step: Step, ms: int) -> int:
    """The latest window boundary at or before ``ms``."""
    if step is Step.HOUR:
        return ms - ms % HOUR_MS
    if step is Step.DAY:
        return ms - ms % DAY_MS
    moment = _dt(ms)
    if step is Step.WEEK:
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return _ms(day - timedelta(days=day.weekday()))
    return _ms(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0))


def previous_boundary(step: Step, boundary_ms: int) -> int:
    """The boundary one step before ``boundary_ms`` (itself a boundary)."""
    if step is Step.HOUR:
        return boundary_ms - HOUR_MS
    if step is Step.DAY:
        return boundary_ms - DAY_MS
    if step is Step.WEEK:
        return boundary_ms - 7 * DAY_MS
    return floor_boundary(Step.MONTH, boundary_ms - 1)


def window_for(step: Step, end_ms: int, span_days: int | None = None) -> tuple[int, int]:
    start = end_ms - span_days * DAY_MS if span_days else previous_boundary(step, end_ms)
    return start, end_ms


def due_windows(
    step: Step,
    *,
    last_end_ms: int | None,
    now_ms: int,
    settle_ms: int,
    max_windows: int,
    span_days: int | None = None,
) -> list[tuple[int, int]]:
    """Closed windows not yet computed, oldest first.

    A window counts as closed ``settle_ms`` after its end. Without a cursor only the latest closed
    window is computed (no history backfill on a new integration); after an outage at most
    ``max_windows`` of the most recent missed windows are caught up, the older ones are skipped.
    """
    newest_end = floor_boundary(step, now_ms - settle_ms)
    ends: list[int] = []
    end = newest_end
    limit = 1 if last_end_ms is None else max(1, max_windows)
    while len(ends) < limit and (last_end_ms is None or end > last_end_ms):
        ends.append(end)
        end = previous_boundary(step, end)
    return [window_for(step, e, span_days) for e in reversed(ends)]
