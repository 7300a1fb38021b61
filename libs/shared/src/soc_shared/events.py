"""The event contract of the bus: a CloudEvents 1.0 envelope and one payload model per routing key.

Every event type is declared once in :data:`REGISTRY` (routing key → payload model, version, kind).
The JSON Schemas under ``libs/shared/schemas/`` and the AsyncAPI document are generated from this
module (``python -m soc_shared.events export``) and a test fails when they drift apart.

Payload field names follow the vendor's meaning but lean on OCSF where a class fits: offenses are
close to a Detection Finding, SOAR incidents to an Incident Finding (``severity``, ``status``,
``time`` style names and enums), so outside subscribers can map them cheaply.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Deterministic ids: same vendor record + same vendor version -> same event id, anywhere.
EVENT_NAMESPACE = uuid.UUID("6f2b8c1e-3d4a-5b6c-8d7e-9f0a1b2c3d4e")


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------- siem
class SiemDomain(Payload):
    """A QRadar domain: the seed's "QRadar tenant" of one customer."""

    domain_id: int
    name: str
    description: str = ""
    deleted: bool = False
    tenant_id: int | None = None
    event_collector_ids: list[int] = Field(default_factory=list)
    log_source_ids: list[int] = Field(default_factory=list)


class SiemEventCollector(Payload):
    collector_id: int
    name: str
    host_id: int | None = None
    component_name: str | None = None


class SiemLogSourceType(Payload):
    type_id: int
    name: str
    version: str | None = None


class SiemLogSourceGroup(Payload):
    group_id: int
    name: str
    description: str = ""
    owner: str | None = None
    parent_id: int | None = None
    child_group_ids: list[int] = Field(default_factory=list)
    assignable: bool = False


class SiemLogSource(Payload):
    """A QRadar log source: the seed's "asset"."""

    log_source_id: int
    name: str
    description: str = ""
    domain_id: int | None = None
    type_id: int | None = None
    type_name: str | None = None
    event_collector_id: int | None = None
    sending_ip: str | None = None
    enabled: bool = True
    status: str | None = None
    status_messages: list[str] = Field(default_factory=list)
    group_ids: list[int] = Field(default_factory=list)
    average_eps: float = 0.0
    creation_time: datetime | None = None
    modified_time: datetime | None = None
    last_event_time: datetime | None = None


class OffenseStatus(StrEnum):
    OPEN = "OPEN"
    HIDDEN = "HIDDEN"
    CLOSED = "CLOSED"


class OffenseRule(Payload):
    id: int
    type: str | None = None
    name: str | None = None


class OffenseLogSource(Payload):
    id: int
    name: str | None = None
    type_id: int | None = None
    type_name: str | None = None


class OffenseNote(Payload):
    """A note an analyst (or an API caller) wrote on a QRadar offense."""

    id: int
    text: str
    username: str | None = None
    create_time: datetime


class SiemOffense(Payload):
    """A QRadar offense (≈ OCSF Detection Finding). Each change arrives as a new ``version``:
    QRadar's ``last_persisted_time`` in epoch ms, which moves on new events *and* on an analyst's
    close, assignment, follow-up or protect (``last_updated_time`` moves on events only)."""

    offense_id: int
    domain_id: int
    description: str
    status: OffenseStatus
    severity: int = Field(ge=0, le=10)
    magnitude: int = Field(ge=0, le=10)
    credibility: int = Field(ge=0, le=10)
    relevance: int = Field(ge=0, le=10)
    event_count: int = 0
    flow_count: int = 0
    assigned_to: str | None = None
    categories: list[str] = Field(default_factory=list)
    rules: list[OffenseRule] = Field(default_factory=list)
    offense_source: str | None = None
    offense_type: int | None = None
    source_address_ids: list[int] = Field(default_factory=list)
    local_destination_address_ids: list[int] = Field(default_factory=list)
    source_addresses: list[str] = Field(default_factory=list, max_length=1000)
    """The addresses ``source_address_ids`` name (QRadar's ``siem/source_addresses``), in their
    order; an id the console no longer knows, or past the per-offense cap, is left out."""
    local_destination_addresses: list[str] = Field(default_factory=list, max_length=1000)
    """The addresses ``local_destination_address_ids`` name (``siem/local_destination_addresses``)."""
    destination_networks: list[str] = Field(default_factory=list)
    log_sources: list[OffenseLogSource] = Field(default_factory=list)
    start_time: datetime
    last_updated_time: datetime
    close_time: datetime | None = None
    closing_reason_id: int | None = None
    closing_reason: str | None = None
    closing_user: str | None = None
    follow_up: bool = False
    protected: bool = False
    last_persisted_time: datetime | None = None
    notes: list[OffenseNote] | None = None
    """The offense's notes, oldest first (None: not read with this version; since notes are their
    own resource, ``siem.offense_notes.read`` carries them)."""
    version: int


class SiemOffenseNotes(Payload):
    """Every note of one QRadar offense as read at ``read_time`` (its ``version``, epoch ms): notes
    are their own resource, read for the offenses whose notes can have changed, and a later read
    replaces an earlier one whole (a note deleted on the console disappears too)."""

    offense_id: int
    domain_id: int
    notes: list[OffenseNote] = Field(default_factory=list)
    version: int


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    WINDOW = "window"


class SiemEpsSample(Payload):
    """Events per second of one domain over one window (hourly and daily rollups)."""

    domain_id: int
    granularity: Granularity
    window_start: datetime
    window_end: datetime
    average_eps: float = Field(ge=0)
    peak_eps: float = Field(ge=0)
    collector: str | None = None


class SiemMetricSample(Payload):
    """One result of the event-log catalogue (an Ariel AQL query) for a domain and a window:
    ``rows`` hold the query's dimensions and values, e.g. ``{"event_name": ..., "count": 12}``."""

    family: str
    domain_id: int
    granularity: Granularity
    window_start: datetime
    window_end: datetime
    rows: list[dict[str, Any]] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------- soar
class SoarAccount(Payload):
    """A Cortex XSOAR multi-tenant account: the seed's "SOAR tenant"."""

    account_id: str
    name: str
    display_name: str | None = None


class IncidentStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    CLOSED = "closed"
    ARCHIVED = "archived"


class IncidentSeverity(StrEnum):
    UNKNOWN = "unknown"
    INFORMATIONAL = "informational"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class SoarIncident(Payload):
    """A Cortex XSOAR incident (≈ OCSF Incident Finding) with the custom fields the SOC relies on.
    Missing TTA/TTN/TTDN timestamps stay ``None``: that SLA step is pending, not a reason to drop."""

    incident_id: str
    account: str | None = None
    name: str
    type: str | None = None
    status: IncidentStatus
    severity: IncidentSeverity
    owner: str | None = None
    playbook_id: str | None = None
    investigation_id: str | None = None
    created: datetime
    modified: datetime
    occurred: datetime | None = None
    closed: datetime | None = None
    close_reason: str | None = None
    close_notes: str | None = None
    closing_user_id: str | None = None
    phase: str | None = None
    priority: Literal["P1", "P2", "P3", "P4"] | None = None
    tta_at: datetime | None = None
    ttn_at: datetime | None = None
    ttdn_at: datetime | None = None
    initial_notification_at: datetime | None = None
    rules: list[str] = Field(default_factory=list)
    offense_ids: list[int] = Field(default_factory=list)
    log_source_types: list[str] = Field(default_factory=list)
    source_ips: list[str] = Field(default_factory=list)
    mitre_tactics: list[str] = Field(default_factory=list)
    mitre_techniques: list[str] = Field(default_factory=list)
    qradar_category: str | None = None
    qradar_subcategory: str | None = None
    low_level_categories: list[str] = Field(default_factory=list)
    configuration_item: str | None = None
    itsm_sync_status: str | None = None
    sla: int | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    version: int


class SoarNote(Payload):
    note_id: str
    incident_id: str
    account: str | None = None
    author: str | None = None
    created: datetime
    content: str
    category: str | None = None


# --------------------------------------------------------------------------------------------- itsm
class ItsmAccount(Payload):
    """A ServiceDesk Plus MSP account: the seed's "ITSM tenant"."""

    account_id: str
    name: str


class ItsmTicket(Payload):
    ticket_id: str
    account_id: str | None = None
    account_name: str | None = None
    subject: str
    short_description: str | None = None
    status: str | None = None
    priority: str | None = None
    is_overdue: bool = False
    created_time: datetime | None = None
    last_updated_time: datetime
    created_by_name: str | None = None
    soar_incident_id: str | None = None
    version: int
    technician_name: str | None = None
    resolution: str | None = None
    request_url: str | None = None
    """The request in the service desk's web UI (the ticket link)."""
    reference: str | None = None
    """The SOC's idempotency reference tagged on the request (``SOC-…``; see
    :func:`ticket_reference`), None on a request made by hand."""


def ticket_reference(soar_integration_id: str, soar_account: str, incident_id: str) -> str:
    """The idempotency reference of the one ticket of an incident: ``SOC-`` and 16 base32
    characters of SHA-256 over (SOAR integration, XSOAR account, incident id). itsm-ingest writes
    it into the request it creates; a reader recomputes it from an incident to find that
    incident's ticket exactly (XSOAR accounts number their incidents independently, so the
    incident id alone is ambiguous)."""
    import base64
    import hashlib

    key = "\x1f".join((soar_integration_id, soar_account, incident_id)).encode()
    return "SOC-" + base64.b32encode(hashlib.sha256(key).digest()).decode()[:16]


class ItsmTicketCreate(Payload):
    """Command: open one ticket for a SOAR incident (idempotent on the incident's identity:
    ``integration_id``, ``soar_integration_id``, ``soar_account``, ``incident_id``)."""

    incident_id: str
    integration_id: str
    account_id: str
    company_id: str
    subject: str
    description: str = ""
    priority: str | None = None
    soar_integration_id: str = ""
    soar_account: str = ""


# ------------------------------------------------------------------------------- vendor actions
ActionName = Literal[
    "xsoar.offense.escalate",
    "xsoar.incident.update",
    "xsoar.playbook.run",
    "sdp.ticket.note",
    "sdp.ticket.status",
]


class EscalateOffense(Payload):
    """Open an XSOAR incident for a QRadar offense; the incident carries the offense id in the
    QRadar fetch's own field (``CustomFields.offenseid``) and label (``offense_id``), which is how
    the read model links an incident to its offenses."""

    offense_id: int = Field(ge=0)
    qradar_integration_id: str
    name: str = Field(min_length=1, max_length=500)
    details: str = Field(default="", max_length=20_000)
    severity: float = Field(default=2, description="XSOAR severity: 0, 0.5, 1, 2, 3 or 4")
    type: str | None = Field(default=None, max_length=200, description="XSOAR incident type")
    owner: str | None = Field(default=None, max_length=200)
    create_investigation: bool = Field(
        default=True, description="start the type's playbook (XSOAR createInvestigation)"
    )


class UpdateIncident(Payload):
    """Change an XSOAR incident; ``status`` closed needs ``close_reason`` (closing goes through
    XSOAR's close call with the reason and notes)."""

    incident_id: str
    owner: str | None = Field(default=None, max_length=200)
    severity: float | None = None
    status: Literal["pending", "active", "closed"] | None = None
    close_reason: str | None = Field(default=None, max_length=200)
    close_notes: str | None = Field(default=None, max_length=20_000)


class RunPlaybook(Payload):
    """Run a playbook on an incident's investigation (XSOAR ``inv-playbook/new``)."""

    incident_id: str
    playbook_id: str = Field(min_length=1, max_length=300)


class TicketNote(Payload):
    """Add a note to an SDP request."""

    ticket_id: str
    description: str = Field(min_length=1, max_length=20_000)
    show_to_requester: bool = False
    notify_technician: bool = False


class TicketStatus(Payload):
    """Change an SDP request's status (by name, e.g. ``Resolved``, ``Closed``)."""

    ticket_id: str
    status: str = Field(min_length=1, max_length=100)
    resolution: str | None = Field(default=None, max_length=20_000)


ACTION_PARAMS: dict[str, type[Payload]] = {
    "xsoar.offense.escalate": EscalateOffense,
    "xsoar.incident.update": UpdateIncident,
    "xsoar.playbook.run": RunPlaybook,
    "sdp.ticket.note": TicketNote,
    "sdp.ticket.status": TicketStatus,
}


class ActionRequested(Payload):
    """Command: act on a vendor on behalf of a person (one consumer: the owning ingestor).
    ``idempotency_key`` is the asker's: the ingestor acts at most once per key."""

    command_id: str
    idempotency_key: str
    action: ActionName
    integration_id: str
    vendor_tenant: str = Field(description="XSOAR account or SDP account id ('' for none)")
    company_id: str | None = None
    requested_by: str
    requested_by_name: str | None = None
    params: dict[str, Any]
    requested_at: datetime
    expires_at: datetime | None = Field(
        default=None,
        description="past this time the action is no longer wanted: not started then, it is never started",
    )

    def typed_params(self) -> Payload:
        return ACTION_PARAMS[self.action].model_validate(self.params)


class ActionError(Payload):
    category: str
    message: str


class ActionCompleted(Payload):
    """An action's outcome, as the ingestor recorded it (published again for a duplicate)."""

    command_id: str
    idempotency_key: str
    action: ActionName
    company_id: str | None = None
    requested_by: str
    # expired: the tenant service gave up waiting (no outcome by the command's expires_at)
    status: Literal["succeeded", "failed", "expired"]
    result: dict[str, Any] = Field(default_factory=dict)
    error: ActionError | None = None
    attempts: int = 0
    finished_at: datetime


# ----------------------------------------------------------------------------------- threat intel
class TiRef(Payload):
    id: str
    name: str | None = None


class TiAlert(Payload):
    """A Cyware CSAP alert with its details. A threat-intel integration belongs to one company."""

    short_id: str
    title: str
    status: str | None = None
    tlp: str | None = None
    published_time: datetime | None = None
    content: str | None = None
    push_required: bool | None = None
    push_email_notification: bool | None = None
    tracking_id: str | None = None
    card_image: str | None = None
    card_info: str | None = None
    event: str | None = None
    intel_id: str | None = None
    rfi_id: str | None = None
    groups: list[TiRef] = Field(default_factory=list)
    recipient_groups: list[TiRef] = Field(default_factory=list)
    tags: list[TiRef] = Field(default_factory=list)
    category: TiRef | None = None
    company_id: str | None = None
    version: int


class TiTag(Payload):
    tag_id: str
    tag_name: str
    tag_slug: str | None = None
    is_active: bool = True
    company_id: str | None = None


class TiGroup(Payload):
    group_id: str
    group_name: str
    group_tlp: str | None = None
    group_type: str | None = None
    allowed_for_intel_submission: bool = False
    allowed_for_rfi_submission: bool = False
    company_id: str | None = None


class TiCustomField(Payload):
    field_id: str
    field_name: str
    field_label: str | None = None
    field_type: str | None = None
    field_description: str | None = None
    is_system: bool = False
    company_id: str | None = None


class TiMatchFound(Payload):
    """An indicator of a company's offense, incident or ticket is named by a threat-intel alert the
    company is entitled to (its own feed, or the shared feed it takes). Published once per
    (company, record, alert, indicator), when first seen."""

    company_id: str
    record_type: Literal["offense", "incident", "ticket"]
    integration_id: str
    record_scope: str = Field(
        description="QRadar domain id, XSOAR account or ServiceDesk Plus account of the record"
    )
    record_id: str = Field(description="QRadar offense id, XSOAR incident id or ServiceDesk Plus request id")
    alert_integration_id: str
    alert_short_id: str
    alert_title: str | None = None
    alert_tlp: str | None = None
    indicator_kind: Literal["ipv4", "ipv6", "domain", "url", "email", "md5", "sha1", "sha256", "cve", "mitre"]
    indicator: str
    first_seen: datetime


class TiCategory(Payload):
    category_id: str
    category_name: str
    threat_indicator_fields: list[str] = Field(default_factory=list)
    additional_fields: list[str] = Field(default_factory=list)
    required_fields: list[str] = Field(default_factory=list)
    company_id: str | None = None


# ------------------------------------------------------------------------------------ control plane
class IntegrationChanged(Payload):
    """An integration was created, changed, rotated or deleted. Never carries a secret: ingestors
    fetch credentials just in time from the tenant service's internal API."""

    integration_id: str
    integration_type: Literal["SIEM", "SOAR", "ITSM", "THREAT_INTELLIGENCE"]
    subtype: Literal["IBM_QRADAR", "CORTEX_XSOAR", "MANAGEENGINE_SDP", "CYWARE"]
    instance_name: str
    status: Literal["pending", "active", "error", "disabled"]
    deleted: bool = False
    base_url: str
    verify_tls: bool = True
    polling_interval_seconds: int = 300
    credential_kind: Literal["API_KEY", "USERNAME_PASSWORD", "SECRET_KEY_ACCESS_KEY"]
    credentials_version: int = 1
    company_id: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    changed_at: datetime


class DirectoryGroupRole(Payload):
    ldap_group: str
    tenant_role: Literal["TENANT_ADMIN", "TENANT_USER"]
    permissions: list[str] = Field(default_factory=list)


class CompanyChanged(Payload):
    """A company and its directory-group mapping (auth learns which AD group gives which company
    and tenant role from this, never from the tenant service's tables)."""

    company_id: str
    name: str
    active: bool = True
    deleted: bool = False
    directory_groups: list[DirectoryGroupRole] = Field(default_factory=list)
    changed_at: datetime


class AuditRecorded(Payload):
    """A change made through the portal, as written to the audit trail (secrets already masked).
    ``id`` is the record's number in the tenant service's audit store; other services leave it out
    (the store numbers their records when it files them, once per event id)."""

    id: int | None = None
    at: datetime
    company_id: str | None = None
    actor_id: str
    actor_username: str
    actor_kind: str
    actor_company_id: str | None = None
    action: str
    target_type: str
    target_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    client_address: str | None = None
    request_id: str | None = None
    trace_id: str | None = None


class TenantMembershipChanged(Payload):
    """A user's membership of a company (the seed's Tenant mapping) was set or removed."""

    user_id: str
    company_id: str
    tenant_role: Literal["TENANT_ADMIN", "TENANT_USER"]
    permissions: list[str] = Field(default_factory=list)
    active: bool = True
    changed_at: datetime


class ChatMessagePosted(Payload):
    message_id: str
    company_id: str
    sender_id: str
    sender_name: str | None = None
    sender_kind: Literal["admin", "tenant"]
    body: str
    sent_at: datetime


class NotificationPosted(Payload):
    """An in-app notification for a company's users (``company_id`` None: the MSSP's staff), fanned
    out to the WebSockets of every tenant replica."""

    notice_id: int
    company_id: str | None = None
    trigger: str
    severity: str
    title: str
    summary: str
    at: datetime


class SyncReported(Payload):
    """An ingestor's report of one sync run of one (integration, resource)."""

    integration_id: str
    resource: str
    outcome: Literal["ok", "error"]
    started_at: datetime
    finished_at: datetime
    records: int = 0
    error_category: str | None = None
    error_message: str | None = None
    consecutive_failures: int = 0


# --------------------------------------------------------------------------------------------- auth
class UserChanged(Payload):
    user_id: str
    username: str
    email: str | None = None
    kind: Literal["admin", "tenant"]
    company_id: str | None = None
    active: bool = True
    deleted: bool = False
    read_only: bool = False
    roles: list[str] = Field(default_factory=list)
    changed_at: datetime
    # Set when the user's sessions were revoked (disabled, deleted, demoted, password or company
    # changed, logout everywhere, company deactivated): tokens issued before it are refused.
    tokens_not_before: datetime | None = None


class LoginAttempt(Payload):
    username: str
    user_id: str | None = None
    # local / ldap: the password step; mfa: the second factor; oidc: a sign-in at an identity provider.
    method: Literal["local", "ldap", "oidc", "mfa"]
    client_ip: str | None = None
    user_agent: str | None = None
    outcome: Literal["succeeded", "failed"]
    reason: str | None = None
    at: datetime


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class EventSpec:
    routing_key: str
    model: type[Payload]
    version: int = 1
    kind: Literal["event", "command"] = "event"
    description: str = ""

    @property
    def type(self) -> str:
        return f"soc.{self.routing_key}.v{self.version}"

    @property
    def exchange(self) -> str:
        return "soc.commands" if self.kind == "command" else "soc.events"


_SPECS = [
    EventSpec("siem.domain.upserted", SiemDomain, description="QRadar domain seen or changed"),
    EventSpec("siem.event_collector.upserted", SiemEventCollector),
    EventSpec("siem.log_source_type.upserted", SiemLogSourceType),
    EventSpec("siem.log_source_group.upserted", SiemLogSourceGroup),
    EventSpec("siem.log_source.upserted", SiemLogSource, description="QRadar log source (asset)"),
    EventSpec("siem.offense.upserted", SiemOffense, description="QRadar offense version"),
    EventSpec("siem.offense_notes.read", SiemOffenseNotes, description="all notes of a QRadar offense"),
    EventSpec("siem.eps.sampled", SiemEpsSample),
    EventSpec("siem.metric.sampled", SiemMetricSample, description="event-log catalogue result"),
    EventSpec("soar.account.upserted", SoarAccount),
    EventSpec("soar.incident.upserted", SoarIncident, description="XSOAR incident version"),
    EventSpec("soar.note.added", SoarNote),
    EventSpec("itsm.account.upserted", ItsmAccount),
    EventSpec("itsm.ticket.upserted", ItsmTicket),
    EventSpec(
        "itsm.ticket.create", ItsmTicketCreate, kind="command", description="open a ticket for an incident"
    ),
    EventSpec(
        "soar.action.requested",
        ActionRequested,
        kind="command",
        description="act on XSOAR for a person (escalate, update, run a playbook)",
    ),
    EventSpec("soar.action.completed", ActionCompleted, description="outcome of an XSOAR action"),
    EventSpec(
        "itsm.action.requested",
        ActionRequested,
        kind="command",
        description="act on ServiceDesk Plus for a person (note, status)",
    ),
    EventSpec("itsm.action.completed", ActionCompleted, description="outcome of an SDP action"),
    EventSpec("ti.alert.upserted", TiAlert),
    EventSpec("ti.tag.upserted", TiTag),
    EventSpec("ti.group.upserted", TiGroup),
    EventSpec("ti.category.upserted", TiCategory),
    EventSpec("ti.custom_field.upserted", TiCustomField),
    EventSpec(
        "ti.match.found", TiMatchFound, description="an offense or incident matched threat intelligence"
    ),
    EventSpec("tenant.integration.changed", IntegrationChanged),
    EventSpec("tenant.company.changed", CompanyChanged),
    EventSpec("tenant.membership.changed", TenantMembershipChanged),
    EventSpec("tenant.chat.posted", ChatMessagePosted),
    EventSpec("tenant.notification.posted", NotificationPosted, description="an in-app notification"),
    EventSpec(
        "tenant.action.updated",
        ActionCompleted,
        description="an action's outcome as the portal stored it (pushed live to the asker)",
    ),
    EventSpec("audit.recorded", AuditRecorded, description="a change made through the portal"),
    EventSpec("ingest.sync.reported", SyncReported),
    EventSpec("auth.user.changed", UserChanged),
    EventSpec("auth.login.succeeded", LoginAttempt),
    EventSpec("auth.login.failed", LoginAttempt),
]
REGISTRY: dict[str, EventSpec] = {s.routing_key: s for s in _SPECS}
BY_TYPE: dict[str, EventSpec] = {s.type: s for s in _SPECS}


# ------------------------------------------------------------------------------------------ envelope
class CloudEvent(BaseModel):
    """CloudEvents 1.0, structured JSON mode, with the suite's extension attributes."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: dict[str, Any]
    integrationid: str | None = None
    vendortenant: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def routing_key(self) -> str:
        return BY_TYPE[self.type].routing_key if self.type in BY_TYPE else self.type

    def payload(self) -> Payload:
        spec = BY_TYPE.get(self.type)
        if spec is None:
            raise InvalidEvent(f"unknown event type {self.type!r}")
        try:
            return spec.model.model_validate(self.data)
        except ValidationError as exc:
            raise InvalidEvent(
                f"payload does not match {self.type}: {exc.error_count()} error(s): {_first_error(exc)}"
            ) from exc

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class InvalidEvent(ValueError):
    """A message that is not a valid event of the contract (it is dead-lettered with this reason)."""


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"


def event_id(type_: str, source: str, subject: str, vendor_version: str | int) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{type_}|{source}|{subject}|{vendor_version}"))


def make_event(
    routing_key: str,
    payload: Payload,
    *,
    source: str,
    subject: str,
    vendor_version: str | int | None = None,
    integration_id: str | None = None,
    vendor_tenant: str | int | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    """Build the envelope for ``payload``. ``vendor_version`` (e.g. QRadar ``last_updated_time``)
    makes the id deterministic; without one the payload's own content decides it."""
    spec = REGISTRY[routing_key]
    if not isinstance(payload, spec.model):
        raise TypeError(f"{routing_key} carries {spec.model.__name__}, not {type(payload).__name__}")
    data = payload.model_dump(mode="json")
    version = (
        vendor_version
        if vendor_version is not None
        else uuid.uuid5(EVENT_NAMESPACE, json.dumps(data, sort_keys=True)).hex
    )
    from soc_shared.telemetry import inject

    carrier = inject({})
    return CloudEvent(
        id=event_id(spec.type, source, subject, version),
        source=source,
        type=spec.type,
        subject=subject,
        time=time or datetime.now(UTC),
        dataschema=f"urn:soc-portal:schema:{spec.type}",
        data=data,
        integrationid=integration_id,
        vendortenant=None if vendor_tenant is None else str(vendor_tenant),
        traceparent=carrier.get("traceparent"),
        tracestate=carrier.get("tracestate"),
    )


def parse_event(body: bytes) -> tuple[CloudEvent, Payload]:
    """Parse and validate a message body; raise :class:`InvalidEvent` with a precise reason."""
    try:
        envelope = CloudEvent.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidEvent(f"not a CloudEvents 1.0 envelope: {_first_error(exc)}") from exc
    return envelope, envelope.payload()


# ------------------------------------------------------------------------------- schemas & AsyncAPI
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, for the envelope and every payload."""
    out: dict[str, dict[str, Any]] = {"cloudevent.json": CloudEvent.model_json_schema()}
    for spec in _SPECS:
        schema = spec.model.model_json_schema()
        schema["$id"] = f"urn:soc-portal:schema:{spec.type}"
        schema["x-routing-key"] = spec.routing_key
        out[f"{spec.type}.json"] = schema
    return out


def asyncapi_document() -> dict[str, Any]:
    """AsyncAPI 2.6 description of the bus: one channel per routing key, payload = its schema."""
    channels: dict[str, Any] = {}
    for spec in _SPECS:
        channels[spec.routing_key] = {
            "description": spec.description
            or f"{spec.model.__doc__ or spec.model.__name__}".strip().splitlines()[0],
            "subscribe": {
                "operationId": "on_" + spec.routing_key.replace(".", "_"),
                "message": {"$ref": f"#/components/messages/{spec.type}"},
            },
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {"name": spec.exchange, "type": "topic", "durable": True, "vhost": "soc"},
                    "bindingVersion": "0.2.0",
                }
            },
        }
    messages = {
        spec.type: {
            "name": spec.type,
            "contentType": "application/cloudevents+json",
            "headers": {"$ref": "#/components/schemas/CloudEventEnvelope"},
            "payload": {"$ref": f"./{spec.type}.json"},
        }
        for spec in _SPECS
    }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "SOC Portal event bus",
            "version": "1.0.0",
            "description": "Normalised vendor events and control-plane events, CloudEvents 1.0 in JSON: a message "
            "is either one structured event (content type application/cloudevents+json) or a batch of events "
            "of the same type (application/cloudevents-batch+json, a JSON array; header ce-count gives its "
            "length). Event ids are deterministic, so duplicates are recognisable. Bind your own queue to "
            "exchange soc.events with the routing keys you need.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {"local": {"url": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}},
        "channels": channels,
        "components": {
            "messages": messages,
            "schemas": {"CloudEventEnvelope": {"$ref": "./cloudevent.json"}},
        },
    }


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    path = directory / "asyncapi.yaml"
    path.write_text(yaml.safe_dump(asyncapi_document(), sort_keys=False, width=120))
    written.append(path)
    return written


if __name__ == "__main__":  # python -m soc_shared.events export
    for p in export():
        print(p)  # noqa: T201 - a command-line tool's output
