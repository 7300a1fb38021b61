"""Users: local (Argon2id) and directory (LDAP) accounts, admins and tenant users."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    String,
    Table,
    Text,
    Uuid,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from soc_auth.database import metadata
from soc_auth.role.models import AdminRole, Permission, TenantRole


class AuthSource(StrEnum):
    LOCAL = "local"
    LDAP = "ldap"
    OIDC = "oidc"


users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("username", String(150), nullable=False),
    Column("email", String(254)),
    Column("full_name", String(255), nullable=False, server_default=""),
    Column("auth_source", String(16), nullable=False),
    Column("password_hash", Text),
    Column("directory_dn", Text),
    Column("directory_groups", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("is_admin", Boolean, nullable=False, server_default=false()),
    Column("is_tenant", Boolean, nullable=False, server_default=false()),
    Column("is_read_only", Boolean, nullable=False, server_default=false()),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("is_deleted", Boolean, nullable=False, server_default=false()),
    # Disabled because its company was inactivated or deleted (re-enabled with the company), as
    # opposed to disabled by an administrator (stays disabled).
    Column("disabled_by_company", Boolean, nullable=False, server_default=false()),
    Column("company_id", String(64)),
    # A tenant user's own grants (the seed's TenantRolePermissions); admins get their roles' permissions.
    Column("permissions", ARRAY(String(32)), nullable=False, server_default=text("'{}'")),
    Column("created_by", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
    Column("last_login_at", DateTime(timezone=True)),
    Column("password_changed_at", DateTime(timezone=True)),
    Column("directory_synced_at", DateTime(timezone=True)),
    CheckConstraint("auth_source IN ('local', 'ldap', 'oidc')", name="auth_source"),
    CheckConstraint("NOT (is_admin AND is_tenant)", name="one_kind"),
    CheckConstraint("NOT is_tenant OR company_id IS NOT NULL", name="tenant_has_company"),
)
Index("ux_users_username", func.lower(users.c.username), unique=True)
Index("ux_users_email", func.lower(users.c.email), unique=True, postgresql_where=users.c.email.isnot(None))
Index("ix_users_company_id", users.c.company_id)
Index("ix_users_created_at", users.c.created_at)

Kind = Literal["admin", "tenant"]
# Deliberately simple: directory e-mail addresses use internal domains (.local, .example) that
# strict validators refuse.
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
AnyRole = AdminRole | TenantRole
SORTABLE = {"username", "email", "full_name", "created_at", "updated_at", "last_login_at"}


class UserRead(BaseModel):
    """A user as the API shows it (never a password hash)."""

    id: uuid.UUID
    username: str
    email: str | None
    full_name: str
    kind: Kind
    auth_source: AuthSource
    roles: list[str]
    role: str | None = Field(description="the admin role or the tenant role")
    permissions: list[str]
    company_id: str | None
    is_admin: bool
    is_tenant: bool
    is_read_only: bool
    is_active: bool
    is_deleted: bool
    directory_dn: str | None = None
    directory_groups: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    last_login_at: datetime | None = None
    password_changed_at: datetime | None = None


class UserList(BaseModel):
    items: list[UserRead]
    total: int
    limit: int
    offset: int


class _UserFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("permissions", check_fields=False)
    @classmethod
    def _unique_permissions(cls, value: list[Permission] | None) -> list[Permission] | None:
        return None if value is None else sorted(set(value))


class UserCreate(_UserFields):
    username: str = Field(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
    email: Email | None = None
    full_name: str = Field(default="", max_length=255)
    kind: Kind = "tenant"
    role: AdminRole | TenantRole | None = Field(
        default=None, description="default ADMIN for admins, TENANT_USER for tenant users"
    )
    company_id: str | None = Field(default=None, min_length=1, max_length=64)
    permissions: list[Permission] | None = Field(
        default=None, description="tenant users: default = the tenant role's permissions"
    )
    auth_source: AuthSource = AuthSource.LOCAL
    password: str | None = Field(default=None, max_length=1024)
    is_active: bool = True


class UserReplace(_UserFields):
    """PUT: every editable field (username and kind never change)."""

    email: Email | None
    full_name: str = Field(max_length=255)
    role: AdminRole | TenantRole
    company_id: str | None = Field(default=None, min_length=1, max_length=64)
    permissions: list[Permission] = Field(default_factory=list)
    is_active: bool = True


class UserPatch(_UserFields):
    email: Email | None = None
    full_name: str | None = Field(default=None, max_length=255)
    role: AdminRole | TenantRole | None = None
    company_id: str | None = Field(default=None, min_length=1, max_length=64)
    permissions: list[Permission] | None = None
    is_active: bool | None = None
    is_deleted: bool | None = Field(default=None, description="false restores a soft-deleted user")
    password: str | None = Field(default=None, max_length=1024)


def changes_of(model: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body actually carried (an explicit null included)."""
    return model.model_dump(exclude_unset=True)
