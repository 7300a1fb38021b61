"""What the company routes answer: one pydantic model per shape.

The routes return dicts; FastAPI validates them against these models and serialises through
them, so a field that is not declared here never leaves the service. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field
from soc_shared.api import ApiModel

from soc_tenant.control.models import Permission, TenantRole


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
