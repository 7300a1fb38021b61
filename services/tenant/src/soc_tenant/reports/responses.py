"""What the reports routes answer: one pydantic model per shape.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field
from soc_shared.api import ApiModel

from soc_tenant.dashboard.responses import LatestThreatAlert, OffenseWidget, TicketWidget
from soc_tenant.incidents.responses import IncidentCards, IncidentOwnerCount, IncidentTypeCount
from soc_tenant.offenses.responses import AssetCounts, EpsUsage
from soc_tenant.sla.responses import SlaCompliance, SlaIncident, SlaOverview
from soc_tenant.threatintel.responses import TiMatch
from soc_tenant.tickets.responses import TicketTotals


class EpsReportPoint(ApiModel):
    day: date
    average_eps: float
    peak_eps: float


class IncidentReportData(ApiModel):
    summary: IncidentCards
    sla: SlaCompliance
    sla_overview: SlaOverview
    types: list[IncidentTypeCount]
    owners: list[IncidentOwnerCount]
    incidents: list[SlaIncident] | None = Field(default=None, description="detailed-incident only")
    incidents_truncated: bool | None = Field(default=None, description="detailed-incident: more than 2000")


class EpsReportData(ApiModel):
    daily: list[EpsUsage]
    hourly: list[EpsUsage]
    series: list[EpsReportPoint]


class TopLogSource(ApiModel):
    name: str
    type_name: str | None
    status: str | None
    average_eps: float
    sending_ip: str | None


class AssetReportData(ApiModel):
    health: AssetCounts
    top_log_sources: list[TopLogSource]


class TicketReportData(ApiModel):
    summary: TicketWidget
    per_tenant: list[TicketTotals]


class Report(ApiModel):
    """A report over the window (default: the last 30 days). Which sections are present depends
    on `kind`: `incident` and `detailed-incident` (summary, sla, sla_overview, types, owners, and
    for the detailed one incidents), `eps` (daily, hourly, series), `assets` (health,
    top_log_sources), `consolidated` (offenses, incidents, tickets, eps, assets, threat_alerts)."""

    kind: str = Field(description="`incident`, `detailed-incident`, `eps`, `assets` or `consolidated`")
    title: str
    company_id: str | None
    company_name: str | None
    from_: datetime = Field(alias="from")
    to: datetime
    generated_at: datetime
    summary: IncidentCards | None = None
    sla: SlaCompliance | None = None
    sla_overview: SlaOverview | None = None
    types: list[IncidentTypeCount] | None = None
    owners: list[IncidentOwnerCount] | None = None
    incidents: list[SlaIncident] | IncidentReportData | None = Field(
        default=None, description="detailed-incident: the incidents; consolidated: the incident report"
    )
    incidents_truncated: bool | None = None
    daily: list[EpsUsage] | None = None
    hourly: list[EpsUsage] | None = None
    series: list[EpsReportPoint] | None = None
    health: AssetCounts | None = None
    top_log_sources: list[TopLogSource] | None = None
    offenses: OffenseWidget | None = None
    tickets: TicketReportData | None = None
    eps: EpsReportData | None = None
    assets: AssetReportData | None = None
    threat_intel_matches: list[TiMatch] | None = Field(
        default=None, description="consolidated: the company's threat-intel matches first seen in the window"
    )
    threat_alerts: list[LatestThreatAlert] | None = None


Report.model_rebuild()
