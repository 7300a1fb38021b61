"""Bodies of the internal API the tenant service calls (service token required)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from soc_auth.role.models import Permission, TenantRole
from soc_auth.user.models import AuthSource, Email, UserRead


class InternalUserCreate(BaseModel):
    """A tenant user of a company. Idempotent on ``username``: repeating it answers 200 with the
    user (updated to this body, except the password, which is only set when the user has none)."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
    email: Email | None = None
    full_name: str = Field(default="", max_length=255)
    company_id: str = Field(min_length=1, max_length=64)
    tenant_role: TenantRole = TenantRole.TENANT_USER
    permissions: list[Permission] | None = Field(
        default=None, description="default: the tenant role's permissions"
    )
    auth_source: AuthSource = AuthSource.LOCAL
    password: str | None = Field(
        default=None, max_length=1024, description="local accounts; none = cannot sign in yet"
    )
    is_active: bool = True


class InternalUserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    full_name: str | None = Field(default=None, max_length=255)
    company_id: str | None = Field(default=None, min_length=1, max_length=64)
    tenant_role: TenantRole | None = None
    permissions: list[Permission] | None = None
    is_active: bool | None = None
    is_deleted: bool | None = None
    password: str | None = Field(default=None, max_length=1024)


class InternalUserResult(BaseModel):
    created: bool
    user: UserRead


class CompanyUsersStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled: bool = Field(
        default=True,
        description="true: disable the company's users; false: re-enable those "
        "the company's inactivation disabled",
    )


class CompanyUsersResult(BaseModel):
    company_id: str
    disabled: bool
    users_changed: int
