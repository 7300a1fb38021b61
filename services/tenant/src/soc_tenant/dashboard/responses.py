"""What the dashboard routes answer: one pydantic model per shape.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field
from soc_shared.api import ApiModel, Page

from soc_tenant.incidents.responses import IncidentCards
from soc_tenant.offenses.responses import AssetCounts, EpsUsage
from soc_tenant.sla.responses import SlaOverallCounts
from soc_tenant.threatintel.responses import MatchSummary


class OffenseWidget(ApiModel):
    total: int
    open: int
    by_status: dict[str, int]
    open_by_severity: dict[str, int] = Field(description="severity (0-10, as a string) -> open offenses")


class DashboardSlaPriority(ApiModel):
    counted: int = Field(description="the original's: true positives with all three step times")
    compliance_pct: float | None = Field(description="the original's: fully compliant ÷ counted")
    incidents: int = Field(description="ours: every incident of the level")
    breached: int = Field(description="ours: incidents with a breached step")
    pending: int = Field(description="ours: incidents with a pending step and none breached")


class DashboardSla(ApiModel):
    from_: datetime = Field(alias="from")
    to: datetime
    clock_start: str
    true_positives: int = Field(description="incidents of the window the true-positive rule admits")
    false_positives: int = Field(description="incidents of the window the false-positive rule admits")
    counted: int
    compliance_pct: float | None = Field(description="the original's: fully compliant ÷ counted")
    overall: SlaOverallCounts
    by_priority: dict[str, DashboardSlaPriority]


class TicketWidget(ApiModel):
    total: int
    open: int
    overdue: int
    closed: int


class DashboardEps(ApiModel):
    tenants: list[EpsUsage] = Field(description="per mapped QRadar domain, the last 24 h")
    average_eps: float
    peak_eps: float
    contracted_eps: float | None


class LatestThreatAlert(ApiModel):
    id: int
    short_id: str
    title: str
    status: str | None
    tlp: str | None
    published_time: datetime | None


class Trends(ApiModel):
    """Counts per day of the last 30 days (UTC days, oldest first), aligned with `days`."""

    days: list[date]
    offenses: list[int]
    incidents: list[int]
    tickets: list[int]


class IncidentCard(ApiModel):
    """One of the original product's incident cards, over the window."""

    count: int
    previous: int | None = Field(description="the same count over the previous period (presets only)")
    change_pct: float | None = Field(description="change against the previous period, in %")
    change: str | None = Field(
        description="the change in the original's words, e.g. `↑ 12.5% from previous week` (bounded to ±100 %)"
    )
    new: int = Field(description="created today (UTC)")


class IncompleteCard(ApiModel):
    count: int
    description: str


class Dashboard(ApiModel):
    """The summary widgets. With `filters`, only the widgets named there are present; `from`/`to`
    only when a window was asked for."""

    company_id: str | None
    generated_at: datetime
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None
    total_incidents: IncidentCard | None = None
    open: IncidentCard | None = None
    closed: IncidentCard | None = None
    truePositives: IncidentCard | None = Field(  # noqa: N815 - the original's name
        default=None, description="when named in `filters`"
    )
    falsePositives: IncidentCard | None = Field(
        default=None, description="with a window or when named in `filters`"
    )  # noqa: N815
    incompleteIncidents: IncompleteCard | None = Field(  # noqa: N815
        default=None,
        description="when named in `filters`: the true-positive status with a required field missing",
    )
    offenses: OffenseWidget | None = None
    incidents: IncidentCards | None = None
    sla: DashboardSla | None = None
    tickets: TicketWidget | None = None
    eps: DashboardEps | None = None
    assets: AssetCounts | None = Field(default=None, description="null without the ASSETS permission")
    threat_alerts: list[LatestThreatAlert] | None = Field(
        default=None, description="null without THREAT_INTELLIGENCE"
    )
    ti_matches: MatchSummary | None = Field(
        default=None,
        description="open incidents and offenses a threat-intel alert names; null without THREAT_INTELLIGENCE",
    )
    trends: Trends | None = None


class SyncReport(ApiModel):
    """The last sync of one (integration, resource), as the ingestor reported it."""

    integration_id: str
    resource: str = Field(description="what was synced, e.g. `offenses`, `incidents`, `tickets`")
    outcome: str = Field(description="`ok` or `error`")
    started_at: datetime
    finished_at: datetime
    records: int = Field(description="records published by that sync")
    error_category: str | None
    error_message: str | None
    consecutive_failures: int
    last_success_at: datetime | None
    received_at: datetime = Field(description="when the read model received the report")
    source: str | None = Field(description="`SIEM`, `SOAR`, `ITSM` or `THREAT_INTELLIGENCE`")


class LastSync(Page[SyncReport]):
    by_source: dict[str, datetime | None] = Field(description="source -> its latest successful sync")


class CompanyIncidentCounts(ApiModel):
    company_id: str
    company_name: str | None
    total: int


class IncidentsPerPriority(CompanyIncidentCounts):
    by_priority: dict[str, int]


class IncidentsPerStatus(CompanyIncidentCounts):
    by_status: dict[str, int]


class CompletionStatus(IncidentsPerStatus):
    open: int
    closed: int
    completion_pct: float | None = Field(description="closed / total, in %")


class SlaMatrixCell(ApiModel):
    """The original's cell (counted incidents), then ours (`incidents`, `breached`, `pending`)."""

    priority_label: str | None = Field(description="the original's label, e.g. `P1 Critical`")
    counted: int
    compliance_pct: float | None = Field(description="fully compliant ÷ counted")
    fully_compliant: int
    partially_compliant: int
    non_compliant: int
    tta_met: int
    ttn_met: int
    ttdn_met: int
    tta_breached: int
    ttn_breached: int
    ttdn_breached: int
    tta_compliance_pct: float | None
    ttn_compliance_pct: float | None
    ttdn_compliance_pct: float | None
    incidents: int
    breached: int
    pending: int


class SlaMatrixRow(ApiModel):
    company_id: str
    company_name: str | None
    priorities: dict[str, SlaMatrixCell]


class SlaMatrix(Page[SlaMatrixRow]):
    from_: datetime = Field(alias="from")
    to: datetime


class CompanyEpsUsage(EpsUsage):
    company_name: str | None


class CompanyAssets(ApiModel):
    company_id: str
    company_name: str | None
    total: int
    enabled: int
    average_eps: float
    by_status: dict[str, int]


Dashboard.model_rebuild()
