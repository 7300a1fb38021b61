"""What the members routes answer: one pydantic model per shape.

The routes return dicts; FastAPI validates them against these models and serialises through
them, so a field that is not declared here never leaves the service. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field
from soc_shared.api import ApiModel, Choice

from soc_tenant.company.responses import Company
from soc_tenant.control.models import Permission, TenantRole


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
