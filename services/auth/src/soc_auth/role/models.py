"""Roles and permissions (the seed's Role, RolePermission, UserRole)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, SmallInteger, String, Table, Uuid

from soc_auth.database import metadata


class RoleName(StrEnum):
    SUPER_ADMIN = "SUPER_ADMIN"
    ADMIN = "ADMIN"
    READ_ONLY_ADMIN = "READ_ONLY_ADMIN"
    USER = "USER"
    TENANT_ADMIN = "TENANT_ADMIN"
    TENANT_USER = "TENANT_USER"


class AdminRole(StrEnum):
    SUPER_ADMIN = "SUPER_ADMIN"
    ADMIN = "ADMIN"
    READ_ONLY_ADMIN = "READ_ONLY_ADMIN"


class TenantRole(StrEnum):
    TENANT_ADMIN = "TENANT_ADMIN"
    TENANT_USER = "TENANT_USER"


class Permission(StrEnum):
    DASHBOARD = "DASHBOARD"
    REPORTS = "REPORTS"
    THREAT_INTELLIGENCE = "THREAT_INTELLIGENCE"
    ASSETS = "ASSETS"


PERMISSION_TEXT = {
    Permission.DASHBOARD: "Dashboard",
    Permission.REPORTS: "Reports",
    Permission.THREAT_INTELLIGENCE: "Threat Intelligence",
    Permission.ASSETS: "Assets",
}

# Fixed ids: seeded by migration 0001, referenced by user_role rows.
ROLE_IDS: dict[str, int] = {
    RoleName.SUPER_ADMIN: 1,
    RoleName.ADMIN: 2,
    RoleName.READ_ONLY_ADMIN: 3,
    RoleName.USER: 4,
    RoleName.TENANT_ADMIN: 5,
    RoleName.TENANT_USER: 6,
}
ROLE_NAMES = {v: k for k, v in ROLE_IDS.items()}

role = Table(
    "role",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("name", String(32), nullable=False, unique=True),
    Column("scope", String(16), nullable=False),  # admin | tenant | base
    Column("description", String(255), nullable=False, server_default=""),
)

role_permission = Table(
    "role_permission",
    metadata,
    Column("role_id", SmallInteger, ForeignKey("role.id", ondelete="CASCADE"), primary_key=True),
    Column("permission", String(32), primary_key=True),
    Column("permission_text", String(64), nullable=False),
)

user_role = Table(
    "user_role",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", SmallInteger, ForeignKey("role.id"), primary_key=True),
)


class RoleRead(BaseModel):
    id: int
    name: str
    scope: str
    description: str
    permissions: list[str]


class PermissionChoice(BaseModel):
    value: str
    label: str
