"""What the read model's routes answer: one pydantic model per shape, named in the SOC's language.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field
from soc_shared.api import ApiModel, Page

__all__ = ["Page"]

# ------------------------------------------------------------------------------------------ siem


class QradarTenant(ApiModel):
    """A QRadar domain (the seed's "QRadar tenant") and, when mapped, its contracted volume."""

    integration_id: str = Field(description="the QRadar integration the domain belongs to")
    domain_id: int = Field(description="QRadar's domain id")
    name: str
    description: str
    deleted: bool = Field(description="QRadar reports the domain as deleted")
    updated_at: datetime = Field(description="when the read model last changed this row")
    mapped_company_id: uuid.UUID | None = Field(description="the company the domain is mapped to, if any")
    contracted_volume_type: str | None = Field(description="`EPS` or `GB_PER_DAY`")
    contracted_volume: float | None = Field(description="in the unit of `contracted_volume_type`")


class EventCollector(ApiModel):
    integration_id: str
    collector_id: int = Field(description="QRadar's event collector id")
    name: str
    host_id: int | None
    component_name: str | None
    updated_at: datetime


class OffenseSummary(ApiModel):
    """A QRadar offense as lists show it."""

    id: int = Field(description="our id (the detail route's `offense_pk`)")
    integration_id: str
    offense_id: int = Field(description="QRadar's own offense id")
    domain_id: int
    description: str
    status: str = Field(description="`OPEN`, `HIDDEN` or `CLOSED`")
    severity: int = Field(description="0-10")
    magnitude: int = Field(description="0-10")
    credibility: int = Field(description="0-10")
    relevance: int = Field(description="0-10")
    event_count: int
    flow_count: int
    assigned_to: str | None
    categories: list[str]
    offense_source: str | None
    offense_type: int | None = Field(description="QRadar's offense type id")
    start_time: datetime
    last_updated_time: datetime
    close_time: datetime | None
    closing_reason: str | None
    version: int = Field(description="QRadar's last_updated_time in epoch ms: grows with every change")


class OffenseRule(ApiModel):
    id: int
    type: str | None = None
    name: str | None = None


class OffenseLogSourceRef(ApiModel):
    id: int
    name: str | None = None
    type_id: int | None = None
    type_name: str | None = None


class OffenseAsset(ApiModel):
    """A log source named by an offense."""

    id: int
    log_source_id: int
    name: str
    type_name: str | None
    status: str | None
    sending_ip: str | None
    average_eps: float
    enabled: bool


class OffenseFlows(ApiModel):
    flow_count: int
    event_count: int
    source_address_ids: list[int]
    local_destination_address_ids: list[int]
    source_addresses: list[str] = Field(
        default_factory=list, description="the addresses `source_address_ids` name, in their order"
    )
    local_destination_addresses: list[str] = Field(
        default_factory=list, description="the addresses `local_destination_address_ids` name"
    )
    destination_networks: list[str]


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


class OffenseIncident(ApiModel):
    """A SOAR incident raised from an offense, with its tickets."""

    id: int
    integration_id: str
    incident_id: str
    name: str
    status: str
    severity: str
    priority: str
    created: datetime
    closed: datetime | None
    tickets: list[TicketRef]


class OffenseNoteOut(ApiModel):
    """A note an analyst (or an API caller) wrote on the offense in QRadar."""

    id: int
    text: str
    username: str | None = None
    create_time: datetime


class OffenseDetail(OffenseSummary):
    """One offense with everything the read model knows about it."""

    last_persisted_time: datetime | None = Field(
        default=None,
        description="when QRadar last persisted a change of the offense (events or an analyst's)",
    )
    notes: list[OffenseNoteOut] | None = Field(
        default=None, description="the offense's notes, oldest first (null: not read yet)"
    )

    rules: list[OffenseRule]
    source_address_ids: list[int]
    local_destination_address_ids: list[int]
    source_addresses: list[str] = Field(
        default_factory=list,
        description="the addresses `source_address_ids` name (QRadar's source addresses), in their order",
    )
    local_destination_addresses: list[str] = Field(
        default_factory=list,
        description="the addresses `local_destination_address_ids` name (QRadar's local destinations)",
    )
    destination_networks: list[str]
    log_sources: list[OffenseLogSourceRef]
    closing_reason_id: int | None
    closing_user: str | None
    follow_up: bool
    protected: bool
    event_id: str | None = Field(description="the CloudEvent id that last changed the offense")
    updated_at: datetime
    domain_name: str | None
    assets: list[OffenseAsset]
    flows: OffenseFlows
    incidents: list[OffenseIncident]
    ti_matches: list[TiMatch] | None = Field(
        default=None,
        description="the threat-intel alerts naming this offense's indicators (title, TLP, link), newest "
        "first, at most 500; null without the THREAT_INTELLIGENCE permission",
    )


class OffenseCategoryCount(ApiModel):
    category: str
    offenses: int = Field(description="offenses that started within the window in this category")


class LogSourceGroup(ApiModel):
    id: int | None
    name: str | None


class Asset(ApiModel):
    """A QRadar log source (the seed's "asset")."""

    id: int
    integration_id: str
    log_source_id: int = Field(description="QRadar's log source id")
    name: str
    description: str
    domain_id: int | None
    domain_name: str | None
    type_id: int | None
    type_name: str | None
    event_collector_id: int | None
    event_collector_name: str | None
    sending_ip: str | None
    enabled: bool
    status: str | None = Field(description="QRadar's status, e.g. `SUCCESS`, `WARN`, `ERROR`, `NA`")
    status_messages: list[Any]
    group_ids: list[int]
    groups: list[LogSourceGroup]
    average_eps: float = Field(description="events per second, as QRadar averages them")
    creation_time: datetime | None
    modified_time: datetime | None
    last_event_time: datetime | None


class AssetTypeCount(ApiModel):
    type_name: str
    count: int


class AssetCounts(ApiModel):
    total: int
    enabled: int
    disabled: int
    total_average_eps: float = Field(description="the sum of the log sources' average EPS")
    by_status: dict[str, int] = Field(description="upper-case status (`UNKNOWN` when none) -> count")
    by_type: list[AssetTypeCount] = Field(description="the 50 commonest types, most first")


class AssetsPerTenant(ApiModel):
    integration_id: str
    domain_id: int | None
    domain_name: str | None
    total: int
    enabled: int
    error: int = Field(description="log sources whose status is ERROR")
    average_eps: float


class EpsUsage(ApiModel):
    """EPS of one mapped QRadar domain over a window, against its contract."""

    company_id: str
    integration_id: str
    domain_id: int
    domain_name: str | None
    granularity: str = Field(description="`hour` or `day`: the samples averaged")
    from_: datetime = Field(alias="from", description="the window's start")
    to: datetime = Field(description="the window's end")
    average_eps: float | None = Field(
        description="the mean of the samples' average EPS; null without samples"
    )
    peak_eps: float | None
    samples: int
    last_window_end: datetime | None
    contracted_volume_type: str | None = Field(description="`EPS` or `GB_PER_DAY`")
    contracted_volume: float | None
    estimated_gb_per_day: float = Field(
        description="average EPS × 86 400 s × 700 bytes (QRadar reports no event sizes), in GB (10^9 bytes)"
    )
    utilisation_pct: float | None = Field(description="average against the contract, in %")
    peak_utilisation_pct: float | None = Field(description="peak EPS against an EPS contract, in %")


class EpsPoint(ApiModel):
    window_start: datetime
    average_eps: float
    peak_eps: float


class EpsGraph(ApiModel):
    granularity: str = Field(description="`hour` or `day`")
    from_: datetime = Field(alias="from")
    to: datetime
    contracted_eps: float | None = Field(description="the sum of the company's EPS contracts")
    points: list[EpsPoint]


class EventLogFamilies(Page[str]):
    """The event-log catalogue's family names."""


class EventLogSample(ApiModel):
    """One AQL query's result for one domain and window."""

    integration_id: str
    domain_id: int
    family: str
    granularity: str = Field(description="`hour`, `day`, `week`, `month` or `window`")
    window_start: datetime
    window_end: datetime
    rows: list[dict[str, Any]] = Field(description="the query's dimensions and values per row")


# ------------------------------------------------------------------------------------------ soar
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


# ------------------------------------------------------------------------------------------ itsm
class ItsmTenant(ApiModel):
    """A ServiceDesk Plus account (the seed's "ITSM tenant")."""

    integration_id: str
    account_id: str
    name: str
    updated_at: datetime


class TicketSummary(ApiModel):
    """A ServiceDesk Plus request as lists show it."""

    id: int = Field(description="our id (the detail route's `ticket_pk`)")
    integration_id: str
    ticket_id: str = Field(description="ServiceDesk Plus's request id")
    account_id: str
    account_name: str | None
    subject: str
    short_description: str | None
    status: str = Field(description="ServiceDesk Plus's status name, e.g. `Open`, `On Hold`, `Closed`")
    priority: str = Field(description="ServiceDesk Plus's priority name")
    is_overdue: bool
    created_time: datetime
    last_updated_time: datetime
    created_by_name: str | None
    soar_incident_id: str | None = Field(description="the XSOAR incident the ticket was opened for")
    version: int
    technician_name: str | None = Field(default=None, description="the technician working the ticket")
    resolution: str | None = Field(default=None, description="the resolution the service desk wrote")
    request_url: str | None = Field(
        default=None, description="the ticket link: the request in ServiceDesk Plus"
    )


class TicketTotals(ApiModel):
    """Tickets of one ServiceDesk Plus account (created within the window)."""

    integration_id: str
    account_id: str
    account_name: str | None
    total: int
    open: int
    overdue: int = Field(description="open and overdue")
    closed: int


class TicketIncident(ApiModel):
    id: int
    integration_id: str
    incident_id: str
    name: str
    status: str
    severity: str
    priority: str
    created: datetime
    closed: datetime | None
    offense_ids: list[int]


class TicketDetail(TicketSummary):
    event_id: str | None
    updated_at: datetime
    incident: TicketIncident | None = Field(description="the SOAR incident, when the company can see it")
    offenses: list[IncidentOffense] = Field(description="that incident's QRadar offenses")
    ti_matches: list[TiMatch] | None = Field(
        default=None,
        description="the threat-intel alerts naming this ticket's indicators (subject, description, "
        "resolution), newest first, at most 500; null without the THREAT_INTELLIGENCE permission",
    )


# -------------------------------------------------------------------------------- threat intel
class ThreatAlertSummary(ApiModel):
    """A Cyware CSAP alert as lists show it. `tags`, `groups` and `category` are Cyware's
    references (`{"id", "name"}`)."""

    id: int = Field(description="our id (the detail route's `alert_pk`)")
    integration_id: str
    short_id: str = Field(description="Cyware's alert id")
    title: str
    status: str | None
    tlp: str | None = Field(description="traffic light protocol: `WHITE`/`CLEAR`, `GREEN`, `AMBER`, `RED`")
    published_time: datetime | None
    tags: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    category: dict[str, Any] | None
    version: int


class ThreatAlertTag(ApiModel):
    id: str | None
    name: str | None
    slug: str | None
    is_active: bool | None


class ThreatAlertGroup(ApiModel):
    id: str | None
    name: str | None
    group_id: str | None = None
    group_name: str | None = None
    group_tlp: str | None = None
    group_type: str | None = None


class ThreatAlertDetail(ThreatAlertSummary):
    """One alert with its content and resolved tags, groups, recipient groups and category (with
    the category's fields)."""

    company_id: str | None
    content: str | None = Field(description="the alert body (HTML, as Cyware stores it)")
    push_required: bool | None
    push_email_notification: bool | None
    tracking_id: str | None
    card_image: str | None
    card_info: str | None
    event: str | None
    intel_id: str | None
    rfi_id: str | None
    tags: list[ThreatAlertTag]  # type: ignore[assignment]
    groups: list[ThreatAlertGroup]  # type: ignore[assignment]
    recipient_groups: list[ThreatAlertGroup]
    event_id: str | None
    updated_at: datetime


# ------------------------------------------------------------------------------------------- sla
class SlaStepOfIncident(ApiModel):
    status: str | None = Field(description="`met`, `breached`, `pending`, `no_sla` or `no_start`")
    elapsed_minutes: float | None = Field(description="from the clock start to the step, when it happened")
    target_minutes: int | None


class SlaOfIncident(ApiModel):
    tta: SlaStepOfIncident = Field(description="time to acknowledge")
    ttn: SlaStepOfIncident = Field(description="time to notify")
    ttdn: SlaStepOfIncident = Field(description="time to the detailed notification")
    overall: str | None = Field(description="the worst step status")
    clock_start: str = Field(description="`occurred` or `created`: the company's clock start")
    started: datetime | None = Field(description="the clock start of this incident")
    counted: bool = Field(description="counted in compliance (a true positive with all three step times)")
    compliance: str | None = Field(
        description="when counted: `fully_compliant`, `partially_compliant` or `non_compliant`"
    )


class SlaIncident(ApiModel):
    """An incident created within the window, with the status of each SLA step."""

    id: int
    integration_id: str
    incident_id: str
    account: str
    name: str
    status: str
    severity: str
    priority: str
    owner: str | None
    created: datetime
    occurred: datetime | None
    closed: datetime | None
    tta_at: datetime | None
    ttn_at: datetime | None
    ttdn_at: datetime | None
    itsm_sync_status: str | None
    positive: str = Field(description="`true_positive`, `false_positive` or `not_counted`")
    resolution_minutes: float | None = Field(description="from the clock start to closure")
    sla: SlaOfIncident


class SlaStepCounts(ApiModel):
    """The original's figures for one step, over the counted incidents."""

    met: int = Field(description="counted incidents that reached the step within the target (inclusive)")
    breached: int = Field(description="counted incidents that reached it later")
    compliance_pct: float | None = Field(description="met ÷ counted, in %; null when nothing is counted")


class SlaOverallCounts(ApiModel):
    """The original's overall figures, over the counted incidents."""

    fully_compliant: int = Field(description="all three steps met")
    partially_compliant: int = Field(description="one or two steps breached")
    non_compliant: int = Field(description="all three steps breached")
    compliance_pct: float | None = Field(description="fully compliant ÷ counted, in %")


class OurStepCounts(ApiModel):
    """Ours, for one step, over every incident of the window (counted or not)."""

    met: int
    breached: int = Field(description="done, later than the target")
    pending: int = Field(description="not done, target not passed yet")
    breaching: int = Field(description="not done and the target already passed: a breach in progress")
    no_sla: int = Field(description="no target for the incident's level")
    no_start: int = Field(description="no clock start (e.g. no `occurred`)")


class OurSlaCounts(ApiModel):
    """Figures the original did not have, kept apart from its own."""

    true_positives: int
    false_positives: int
    not_counted: int = Field(description="incidents of the window outside the compliance figures")
    missing_timestamps: int = Field(description="no clock start or a step without its time")
    steps: dict[str, OurStepCounts] = Field(description="`tta`, `ttn`, `ttdn` -> counts")
    overall: dict[str, int] = Field(description="incidents by their worst step status")


class SlaCountsByStep(ApiModel):
    incidents: int = Field(description="ours: every incident of the window")
    counted: int = Field(description="the original's: true positives with all three step times")
    tta: SlaStepCounts
    ttn: SlaStepCounts
    ttdn: SlaStepCounts
    overall: SlaOverallCounts
    ours: OurSlaCounts


class SlaStepTargets(ApiModel):
    tta: int | None = Field(description="minutes")
    ttn: int | None = Field(description="minutes")
    ttdn: int | None = Field(description="minutes")


class SlaCompliance(ApiModel):
    """SLA compliance of the incidents created within the window (default: the last 30 days)."""

    from_: datetime = Field(alias="from")
    to: datetime
    clock_start: str = Field(description="`occurred` (the original's, default) or `created`")
    counted_rule: dict[str, Any] = Field(description="the deployment's true/false-positive rule")
    by_priority: dict[str, SlaCountsByStep] = Field(description="priority (`P1`-`P4`) -> counts")
    total: SlaCountsByStep
    default_targets: dict[str, SlaStepTargets | None] = Field(description="level -> the default targets")
    uses_company_sla: bool = Field(description="the company has its own targets instead of the defaults")


class SeverityGraphPoint(ApiModel):
    day: date
    counts: dict[str, int] = Field(description="priority or severity -> incidents created that day")


class SeverityGraph(ApiModel):
    by: str = Field(description="`priority` or `severity`")
    from_: datetime = Field(alias="from")
    to: datetime
    points: list[SeverityGraphPoint]


class SeverityMetrics(ApiModel):
    """One priority's incidents within the window; averages in minutes from the clock start.
    `counted`, `*_met`, `*_breached`: the original's (counted incidents); the rest ours."""

    priority: str
    incidents: int
    counted: int
    tta_met: int
    ttn_met: int
    ttdn_met: int
    open: int
    closed: int
    avg_tta_minutes: float | None
    avg_ttn_minutes: float | None
    avg_ttdn_minutes: float | None
    avg_resolution_minutes: float | None
    tta_breached: int
    ttn_breached: int
    ttdn_breached: int
    tta_target_minutes: int | None
    ttn_target_minutes: int | None
    ttdn_target_minutes: int | None


class SeverityMetricsPage(Page[SeverityMetrics]):
    from_: datetime = Field(alias="from")
    to: datetime


class SlaOverview(ApiModel):
    """SLA cards for the window. The original's: `counted`, fully / partially / non compliant,
    `compliance_pct` (fully compliant ÷ counted), `steps`. Ours: the rest; `mtt*_minutes` are means
    in minutes from the clock start."""

    from_: datetime = Field(alias="from")
    to: datetime
    clock_start: str
    counted: int
    fully_compliant: int
    partially_compliant: int
    non_compliant: int
    compliance_pct: float | None
    steps: dict[str, SlaStepCounts] = Field(description="`tta`, `ttn`, `ttdn` -> the original's counts")
    total_incidents: int
    open_incidents: int
    closed_incidents: int
    true_positives: int
    false_positives: int
    missing_timestamps: int
    pending: int = Field(description="incidents with a pending step and none breached")
    breached: int = Field(description="incidents with a breached step (done late or overdue)")
    breaching: int = Field(description="steps not done and already overdue")
    mtta_minutes: float | None = Field(description="mean time to acknowledge")
    mttn_minutes: float | None = Field(description="mean time to notify")
    mttdn_minutes: float | None = Field(description="mean time to the detailed notification")
    mttr_minutes: float | None = Field(description="mean time to resolve (closure)")


# ------------------------------------------------------------------------------------- dashboard
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


# --------------------------------------------------------------------------------------- reports
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


# ---------------------------------------------------------------------------------- dead letters
class DeadLetterQueue(ApiModel):
    queue: str
    dead_letter_queue: str
    bindings: list[str] = Field(description="the routing keys the queue consumes")
    parked: int = Field(description="messages parked in the dead-letter queue")


class DeadLetter(ApiModel):
    message_id: str | None
    event_id: str | None
    event_type: str | None
    routing_key: str | None
    reason: str = Field(description="why the consumer parked it")
    dead_at: str | None = Field(description="when it was parked (ISO 8601)")
    body_preview: str = Field(description="the first 500 bytes of the message")


class DeadLetters(ApiModel):
    """Without `queue`: the read-model queues (`items` are DeadLetterQueue); with it: that queue's
    parked messages (`items` are DeadLetter, `total` the queue's depth)."""

    queue: str | None = None
    items: list[DeadLetter] | list[DeadLetterQueue]
    total: int
    limit: int
    offset: int


class ReplayResult(ApiModel):
    queue: str
    replayed: int = Field(description="messages sent back to the queue")


class RollupsRebuilt(ApiModel):
    rebuilt: bool


class DefaultFeed(ApiModel):
    integration_id: str
    set_by: str | None
    set_at: datetime
    instance_name: str | None
    owner_company_id: str | None


class DefaultFeedSet(ApiModel):
    integration_id: str
    default_feed: bool


# ------------------------------------------------------------------------------ threat-intel matches
class TiMatch(ApiModel):
    """One indicator of a record named by one threat-intel alert."""

    id: int = Field(description="the match's id")
    record_type: Literal["offense", "incident", "ticket"]
    integration_id: str = Field(
        description="the offense's QRadar / incident's XSOAR / ticket's ServiceDesk Plus integration"
    )
    record_scope: str = Field(description="QRadar domain id / XSOAR account / ServiceDesk Plus account")
    record_id: str = Field(description="QRadar's offense id / XSOAR's incident id / the ticket's request id")
    indicator_kind: str = Field(description="ipv4, ipv6, domain, url, email, md5, sha1, sha256, cve")
    indicator: str = Field(description="the normalised indicator (refanged, lower-cased where case is noise)")
    first_seen: datetime = Field(description="when the match was first found")
    last_seen: datetime = Field(description="when it was last confirmed (record or alert changed)")
    alert_id: int = Field(description="our id of the alert (the threat-alert detail route's `alert_pk`)")
    alert_integration_id: str
    alert_short_id: str = Field(description="Cyware's alert id")
    alert_title: str
    alert_tlp: str | None = Field(description="traffic light protocol of the alert")
    alert_published_time: datetime | None
    alert_link: str = Field(description="the portal's route of the alert's detail")


class RecordMatches(ApiModel):
    """The threat-intel matches of one offense, incident or ticket."""

    record_type: Literal["offense", "incident", "ticket"]
    id: int = Field(description="our id of the offense / incident / ticket")
    items: list[TiMatch]
    total: int


class IncidentMatches(RecordMatches):
    """An incident's matches, with the MITRE ATT&CK techniques the matched alerts name beside the
    incident's own tactics and techniques."""

    mitre_tactics: list[str] = Field(description="the incident's own MITRE tactics")
    mitre_techniques: list[str] = Field(description="the incident's own MITRE techniques")
    alert_mitre_techniques: list[str] = Field(description="technique ids named in the matched alerts")


class MatchSummary(ApiModel):
    """The dashboard's threat-intel figures for the company (admins: every company)."""

    open_incidents_with_matches: int = Field(
        description="pending or active incidents a threat-intel alert names"
    )
    open_offenses_with_matches: int = Field(description="open offenses a threat-intel alert names")
    open_tickets_with_matches: int = Field(description="open tickets a threat-intel alert names")
    matches: int = Field(description="stored matches (record, alert, indicator)")
    alerts_matched: int = Field(description="distinct alerts with at least one match")
    by_kind: dict[str, int] = Field(description="matches per indicator kind")


Report.model_rebuild()
OffenseDetail.model_rebuild()
Dashboard.model_rebuild()
TicketDetail.model_rebuild()
IncidentDetail.model_rebuild()
