"""What the incidents routes answer: one pydantic model per shape.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from soc_shared.api import ApiModel

from soc_tenant.threatintel.responses import TiMatch


class TicketRef(ApiModel):
    """A ServiceDesk Plus ticket opened for a SOAR incident."""

    id: int
    integration_id: str
    ticket_id: str = Field(description="ServiceDesk Plus's request id")
    subject: str
    status: str
    priority: str
    is_overdue: bool
    created_time: datetime
    soar_incident_id: str | None
    last_updated_time: datetime | None = None
    technician_name: str | None = Field(default=None, description="the technician working the ticket")
    resolution: str | None = Field(default=None, description="the resolution the service desk wrote")
    request_url: str | None = Field(
        default=None, description="the ticket link: the request in ServiceDesk Plus"
    )


class SoarTenant(ApiModel):
    """An XSOAR account (the seed's "SOAR tenant")."""

    integration_id: str
    account_id: str
    name: str = Field(description="the account name incidents carry (what mappings match)")
    display_name: str | None
    updated_at: datetime


class IncidentSummary(ApiModel):
    """An XSOAR incident as lists show it."""

    id: int = Field(description="our id (the detail route's `incident_pk`)")
    integration_id: str
    incident_id: str = Field(description="XSOAR's incident id")
    account: str = Field(description="the XSOAR account (tenant) the incident belongs to")
    name: str
    type: str | None
    status: str = Field(description="`pending`, `active`, `closed` or `archived`")
    severity: str = Field(description="`unknown`, `informational`, `low`, `medium`, `high` or `critical`")
    priority: str = Field(description="`P1` (critical) to `P4` (low)")
    owner: str | None
    phase: str | None
    created: datetime
    modified: datetime
    occurred: datetime | None
    closed: datetime | None
    close_reason: str | None
    tta_at: datetime | None = Field(description="when the incident was acknowledged (time to acknowledge)")
    ttn_at: datetime | None = Field(description="when the customer was notified (time to notify)")
    ttdn_at: datetime | None = Field(description="when the detailed notification went out")
    offense_ids: list[int] = Field(description="QRadar offense ids the incident came from")
    mitre_tactics: list[Any]
    mitre_techniques: list[Any]
    qradar_category: str | None
    version: int = Field(description="grows with every change XSOAR reports")
    positive: str = Field(
        description="`true_positive`, `false_positive` or `not_counted` (the deployment's rule)"
    )


class FileTypeChoice(ApiModel):
    value: str = Field(description="what `file_type` takes: `xlsx`, `csv` or `json`")
    label: str
    id: int = Field(description="the original product's number for it (also accepted)")


class UseCaseCount(ApiModel):
    use_case: str = Field(description="the QRadar rule that raised the incidents")
    incidents: int
    open: int = Field(description="of which pending or active")


class IncidentCards(ApiModel):
    """Summary cards; the `by_*` maps go from a status/priority/severity value to a count."""

    total: int
    open: int = Field(description="pending or active")
    closed: int = Field(description="closed or archived")
    by_status: dict[str, int]
    by_priority: dict[str, int]
    open_by_priority: dict[str, int]
    by_severity: dict[str, int]
    critical_open: int = Field(description="open incidents of critical severity")


class IncidentTypeCount(ApiModel):
    type: str | None
    incidents: int


class IncidentOwnerCount(ApiModel):
    owner: str | None
    incidents: int


class SlaStep(ApiModel):
    status: str = Field(description="`met`, `breached`, `pending`, `no_sla` or `no_start` (no clock start)")
    elapsed_minutes: float | None = Field(description="from the clock start to the step, when it happened")
    target_minutes: int | None
    deadline: datetime | None = Field(description="clock start + target")


class IncidentSla(ApiModel):
    """An incident's SLA per step: acknowledge (tta), notify (ttn), detailed notification (ttdn)."""

    level: str | None = Field(description="the SLA level applied (`P1`-`P4`)")
    source: str | None = Field(description="`default` or `company`: whose targets applied")
    clock_start: str = Field(description="`occurred` (default) or `created`: the company's clock start")
    started: datetime | None = Field(description="the clock start of this incident")
    tta: SlaStep
    ttn: SlaStep
    ttdn: SlaStep
    overall: str = Field(
        description="the worst step status: `breached`, `pending`, `met`, `no_start` or `no_sla`"
    )
    counted: bool = Field(description="counted in compliance (a true positive with all three step times)")
    compliance: str | None = Field(
        description="when counted: `fully_compliant`, `partially_compliant` or `non_compliant`"
    )
    positive: str = Field(description="`true_positive`, `false_positive` or `not_counted`")


class IncidentNote(ApiModel):
    note_id: str
    author: str | None
    created: datetime
    content: str
    category: str | None


class IncidentMitre(ApiModel):
    tactics: list[Any] = Field(description="the incident's own MITRE tactics")
    techniques: list[Any] = Field(description="the incident's own MITRE techniques")
    alert_techniques: list[str] | None = Field(
        default=None,
        description="MITRE technique ids the threat-intel alerts matching this incident name; null "
        "without the THREAT_INTELLIGENCE permission",
    )


class IncidentOffense(ApiModel):
    """A QRadar offense an incident came from."""

    id: int
    integration_id: str
    offense_id: int
    domain_id: int
    description: str
    status: str
    severity: int
    magnitude: int
    start_time: datetime
    close_time: datetime | None


class IncidentDetail(IncidentSummary):
    """One incident with its notes, SLA, offenses and tickets."""

    playbook_id: str | None
    investigation_id: str | None
    close_notes: str | None
    closing_user_id: str | None
    initial_notification_at: datetime | None
    rules: list[str] = Field(description="the QRadar rules (use cases) that raised it")
    log_source_types: list[Any]
    source_ips: list[Any]
    qradar_subcategory: str | None
    low_level_categories: list[str]
    configuration_item: str | None
    itsm_sync_status: str | None
    sla: IncidentSla | None = Field(description="null when the incident's account maps to no company")
    custom_fields: dict[str, Any]
    event_id: str | None
    updated_at: datetime
    notes: list[IncidentNote]
    mitre: IncidentMitre
    offenses: list[IncidentOffense]
    tickets: list[TicketRef]
    ti_matches: list[TiMatch] | None = Field(
        default=None,
        description="the threat-intel alerts naming this incident's indicators (title, TLP, link), newest "
        "first, at most 500; null without the THREAT_INTELLIGENCE permission",
    )


IncidentDetail.model_rebuild()
