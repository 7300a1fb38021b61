"""What the threatintel routes answer: one pydantic model per shape.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from soc_shared.api import ApiModel


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


class DefaultFeed(ApiModel):
    integration_id: str
    set_by: str | None
    set_at: datetime
    instance_name: str | None
    owner_company_id: str | None


class DefaultFeedSet(ApiModel):
    integration_id: str
    default_feed: bool


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
