"""What the tenants routes answer: one pydantic model per shape.

The routes return dicts; FastAPI validates them against these models and serialises through
them, so a field that is not declared here never leaves the service. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field
from soc_shared.api import ApiModel, Choice

from soc_tenant.company.responses import Company, CompanyDetail
from soc_tenant.integrations.responses import Integration
from soc_tenant.mappings.responses import ItsmMapping, QradarMapping, SoarMapping
from soc_tenant.members.responses import Member
from soc_tenant.sla.responses import CompanySla


class CompanyMappings(ApiModel):
    qradar: list[QradarMapping]
    soar: list[SoarMapping]
    itsm: list[ItsmMapping]


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
