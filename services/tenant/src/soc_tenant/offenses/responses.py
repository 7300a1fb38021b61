"""What the offenses routes answer: one pydantic model per shape.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field
from soc_shared.api import ApiModel, Page

from soc_tenant.incidents.responses import TicketRef
from soc_tenant.threatintel.responses import TiMatch


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


OffenseDetail.model_rebuild()
