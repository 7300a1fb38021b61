"""What the control plane's routes answer: one pydantic model per shape.

The routes return dicts; FastAPI validates them against these models and serialises through
them, so a field that is not declared here never leaves the service. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field
from soc_shared.api import ApiModel, Page

from soc_tenant.control.models import Permission, TenantRole

__all__ = ["Page"]


class Choice(ApiModel):
    value: str = Field(description="what the API accepts")
    label: str = Field(description="what a person reads")


# ------------------------------------------------------------------------------------ companies
class DirectoryGroup(ApiModel):
    """A directory (LDAP/AD) group whose members log in as the company's tenant users."""

    ldap_group: str = Field(description="the group's DN or name, as the directory reports it in memberOf")
    tenant_role: TenantRole
    permissions: list[Permission]


class Company(ApiModel):
    """A customer company."""

    id: uuid.UUID
    name: str
    phone_number: str | None
    industry: str | None
    country: str | None
    is_default_sla: bool = Field(description="uses the default SLA targets (not its own)")
    is_default_threat_intel: bool = Field(description="gets the shared threat-intelligence feed")
    is_active: bool
    status: str = Field(description="`active`, `inactive` (its users cannot log in) or `deleted`")
    deleted_at: datetime | None
    deleted_by: str | None
    created_by: str | None
    modified_by: str | None
    created_at: datetime
    updated_at: datetime
    profile_picture_updated_at: datetime | None
    has_profile_picture: bool
    profile_picture_url: str | None = Field(description="relative URL of the picture, when there is one")


class CompanyDetail(Company):
    directory_groups: list[DirectoryGroup]


class NameAvailability(ApiModel):
    name: str = Field(description="the name checked, trimmed")
    available: bool = Field(description="no other (not deleted) company has it, ignoring case")


class PictureStored(ApiModel):
    company_id: uuid.UUID
    content_type: str = Field(description="`image/png`, `image/jpeg` or `image/webp` (from the bytes)")
    size: int = Field(description="bytes")
    profile_picture_url: str


# -------------------------------------------------------------------------------------- members
class Member(ApiModel):
    """A tenant user: a login (held by the auth service) that belongs to one company."""

    user_id: str = Field(description="the auth service's user id")
    company_id: uuid.UUID
    username: str
    email: str | None
    tenant_role: TenantRole
    permissions: list[Permission]
    ldap_group: str | None = Field(description="the directory group that made this member, if any")
    country: str | None
    active: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class CallerUser(ApiModel):
    id: str
    username: str | None
    kind: str = Field(description="`admin`, `tenant` or `service`")
    read_only: bool


class WhoAmI(ApiModel):
    """The caller's identity, company, tenant role and permissions."""

    user: CallerUser
    is_admin: bool
    roles: list[str]
    tenant_role: TenantRole | None = Field(description="tenant users only")
    permissions: list[str]
    company: Company | None = Field(description="the caller's company (admins: the one asked for)")
    membership: Member | None


class RoleChoice(Choice):
    default_permissions: list[str]


# ----------------------------------------------------------------------------------------- chat
class ChatMessage(ApiModel):
    id: int = Field(description="grows with every message of every company")
    company_id: uuid.UUID
    sender_id: str
    sender_name: str | None
    sender_kind: str = Field(description="`admin` or `tenant`")
    body: str
    sent_at: datetime
    admin_seen_at: datetime | None = Field(description="when an admin first saw it")
    tenant_seen_at: datetime | None = Field(description="when a tenant user first saw it")


class MessagesSeen(ApiModel):
    company_id: uuid.UUID
    marked: int = Field(description="messages newly marked as seen")


class TenantUnread(ApiModel):
    """A tenant user's unread count: the admins' messages not seen yet."""

    company_id: uuid.UUID
    unread: int


class CompanyUnread(ApiModel):
    company_id: uuid.UUID
    company_name: str
    unread: int
    last_message_id: int


class AdminUnread(Page[CompanyUnread]):
    """For admins: per company, the tenants' messages no admin has seen."""

    unread_total: int


# ------------------------------------------------------------------------------------------ sla
class SlaLevelTargets(ApiModel):
    """The default targets of one level, in minutes from the incident's creation."""

    level: str = Field(description="`P1` (critical) to `P4` (low)")
    tta_minutes: int = Field(description="time to acknowledge")
    ttn_minutes: int = Field(description="time to notify")
    ttdn_minutes: int = Field(description="time to the detailed notification")
    updated_by: str | None
    updated_at: datetime


class SlaOverride(ApiModel):
    """A company's own targets for one level, for every account, one XSOAR integration or one account."""

    id: uuid.UUID
    integration_id: str | None
    account: str | None
    level: str
    tta_minutes: int
    ttn_minutes: int
    ttdn_minutes: int
    updated_by: str | None
    created_at: datetime
    updated_at: datetime


class EffectiveSla(ApiModel):
    tta_minutes: int
    ttn_minutes: int
    ttdn_minutes: int
    source: str = Field(
        description="`default`, `company`, `integration` or `account`: the most specific that applies"
    )


class CompanySla(ApiModel):
    company_id: uuid.UUID
    is_default_sla: bool
    sla_clock_start: str = Field(
        description="where SLA steps are measured from: `occurred` (the original's rule, default) or `created`"
    )
    defaults: list[SlaLevelTargets]
    overrides: list[SlaOverride]
    effective: dict[str, EffectiveSla] = Field(description="level -> the targets that apply company-wide")


# ------------------------------------------------------------------------------------- mappings
class MappingBase(ApiModel):
    id: uuid.UUID
    company_id: uuid.UUID
    company_name: str | None
    integration_id: str
    integration_name: str | None = Field(description="the integration's instance name")
    active: bool = Field(description="data is attributed to the company only through active mappings")
    inactive_reason: str | None = Field(description="e.g. `company_deleted`")
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class QradarMapping(MappingBase):
    """A QRadar domain attributed to a company, with its contracted volume."""

    domain_id: int
    domain_name: str | None
    contracted_volume_type: str = Field(description="`EPS` or `GB_PER_DAY`")
    contracted_volume: float = Field(description="in the unit of `contracted_volume_type`")
    event_collector_ids: list[int] = Field(
        description="QRadar event collectors that also count as the company's"
    )


class SoarMapping(MappingBase):
    """An XSOAR account attributed to a company."""

    account: str


class ItsmMapping(MappingBase):
    """A ServiceDesk Plus account attributed to a company."""

    account_id: str
    account_name: str | None


class CompanyMappings(ApiModel):
    qradar: list[QradarMapping]
    soar: list[SoarMapping]
    itsm: list[ItsmMapping]


# --------------------------------------------------------------------------------- integrations
class CredentialField(ApiModel):
    name: str
    label: str
    secret: bool = Field(description="never returned once saved (masked)")
    required: bool
    max_length: int | None


class CredentialKind(ApiModel):
    kind: str
    label: str
    description: str | None
    settings: Any = None
    fields: list[CredentialField]


class SubtypeSetting(ApiModel):
    name: str
    label: str
    type: str
    choices: list[Any]
    default: Any = None
    description: str | None


class IntegrationSubtype(ApiModel):
    subtype: str = Field(description="e.g. `IBM_QRADAR`, `CORTEX_XSOAR`, `MANAGEENGINE_SDP`, `CYWARE`")
    label: str
    vendor: str
    ingestor: str = Field(description="the service that syncs it")
    one_per_company: bool
    requires_company: bool
    credential_kinds: list[CredentialKind]
    settings: list[SubtypeSetting]


class IntegrationTypeInfo(ApiModel):
    integration_type: str = Field(description="`SIEM`, `SOAR`, `ITSM` or `THREAT_INTELLIGENCE`")
    label: str
    subtypes: list[IntegrationSubtype]


class IntegrationInstance(ApiModel):
    id: uuid.UUID
    instance_name: str
    status: str
    company_id: uuid.UUID | None


class IntegrationInstances(ApiModel):
    integration_type: str
    subtype: str
    label: str
    instances: list[IntegrationInstance]


class CaCertificate(ApiModel):
    subject: str
    issuer: str
    not_after: datetime
    fingerprint_sha256: str


class IntegrationSync(ApiModel):
    """The last sync of one resource of the integration, as its ingestor reported it."""

    resource: str
    outcome: str = Field(description="`ok` or `error`")
    started_at: datetime
    finished_at: datetime
    records: int
    error_category: str | None
    error_message: str | None
    consecutive_failures: int
    last_success_at: datetime | None
    received_at: datetime


class Integration(ApiModel):
    """A connection to a vendor product. Secrets are never returned: `credentials` is masked."""

    id: uuid.UUID
    integration_type: str = Field(description="`SIEM`, `SOAR`, `ITSM` or `THREAT_INTELLIGENCE`")
    subtype: str
    instance_name: str
    base_url: str
    verify_tls: bool
    polling_interval_seconds: int
    credential_kind: str
    credentials: dict[str, Any] = Field(description="field -> masked value (secrets as `****`)")
    credentials_version: int = Field(description="grows with every rotation")
    credentials_rotated_at: datetime | None
    settings: dict[str, Any]
    status: str = Field(description="`pending` (not tested yet), `active`, `error` or `disabled`")
    status_message: str | None
    status_changed_at: datetime
    health_since: datetime
    company_id: uuid.UUID | None = Field(description="threat intelligence: the company it belongs to")
    last_tested_at: datetime | None
    last_test: dict[str, Any] | None = Field(description="the last connection test's result")
    created_by: str | None
    modified_by: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    ca: list[CaCertificate] | None = Field(description="the custom CA bundle's certificates, if any")
    has_custom_ca: bool
    ingestor: str
    deleted: bool
    sync: list[IntegrationSync] | None = None
    last_sync_at: datetime | None = None


class ConnectionTest(ApiModel):
    """The vendor reached (or not) by the owning ingestor."""

    ok: bool
    category: str | None = Field(
        description="on failure: `unreachable`, `timeout`, `tls`, `bad_credentials`, `permission`, "
        "`not_found`, `rate_limited`, `server_error`, `bad_response`, ..."
    )
    message: str
    hint: str | None = Field(description="what to check, for a person")
    details: dict[str, Any]
    tested_at: datetime
    integration_id: str | None = Field(description="the saved integration tested, if any")
    saved: bool = Field(description="the result was recorded on the saved integration")
    status: str | None = Field(default=None, description="the saved integration's status afterwards")


class SyncScheduled(ApiModel):
    integration_id: str
    resource: str | None = Field(description="the one resource asked for; null: every resource")
    ingestor: str
    scheduled: Any = Field(description="what the ingestor scheduled (resource names)")


class SyncFailed(ApiModel):
    integration_id: str
    code: str
    message: str


class VendorSyncStarted(ApiModel):
    subtype: str
    message: str
    integrations: list[SyncScheduled] = Field(description="the integrations whose sync was started")
    failed: list[SyncFailed] = Field(description="the integrations whose ingestor could not be asked")


# -------------------------------------------------------------------------------------- tenants
class TenantListItem(Company):
    user_count: int = Field(description="active tenant users")
    mapping_count: int = Field(description="active QRadar, XSOAR and ServiceDesk Plus mappings")


class PendingAction(ApiModel):
    """Work towards another service (e.g. disabling the company's users in auth) not done yet."""

    id: uuid.UUID
    kind: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime


class TenantDetail(ApiModel):
    company: CompanyDetail
    users: list[Member]
    mappings: CompanyMappings
    integrations: list[Integration]
    sla: CompanySla
    pending_actions: list[PendingAction]


class ToolInUse(ApiModel):
    id: uuid.UUID
    integration_type: str
    subtype: str
    instance_name: str
    status: str
    last_sync_at: datetime | None


class CompanyTools(ApiModel):
    company_id: uuid.UUID
    company_name: str
    is_active: bool
    tools: list[ToolInUse]
    types: list[str]


class SlaLevelDefault(ApiModel):
    tta_minutes: int | None = None
    ttn_minutes: int | None = None
    ttdn_minutes: int | None = None


class SlaLevelChoice(Choice):
    default: SlaLevelDefault


class ApiVersion(ApiModel):
    service: str
    api_version: str
    version: str = Field(description="the installed package's version")
