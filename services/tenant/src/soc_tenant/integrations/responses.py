"""What the integrations routes answer: one pydantic model per shape.

The routes return dicts; FastAPI validates them against these models and serialises through
them, so a field that is not declared here never leaves the service. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field
from soc_shared.api import ApiModel


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
