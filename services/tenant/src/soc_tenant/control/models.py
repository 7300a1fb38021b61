"""Shared API vocabulary of the control plane: enums, constrained strings, choices."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


class Permission(StrEnum):
    DASHBOARD = "DASHBOARD"
    REPORTS = "REPORTS"
    THREAT_INTELLIGENCE = "THREAT_INTELLIGENCE"
    ASSETS = "ASSETS"


PERMISSION_LABELS = {
    Permission.DASHBOARD: "Dashboard",
    Permission.REPORTS: "Reports",
    Permission.THREAT_INTELLIGENCE: "Threat intelligence",
    Permission.ASSETS: "Assets",
}


class TenantRole(StrEnum):
    TENANT_ADMIN = "TENANT_ADMIN"
    TENANT_USER = "TENANT_USER"


# What a tenant role gets when nobody said otherwise.
DEFAULT_PERMISSIONS = {
    TenantRole.TENANT_ADMIN: sorted(p.value for p in Permission),
    TenantRole.TENANT_USER: [Permission.DASHBOARD.value],
}


class VolumeType(StrEnum):
    EPS = "EPS"
    GB_PER_DAY = "GB_PER_DAY"


VOLUME_TYPE_LABELS = {VolumeType.EPS: "Events per second (EPS)", VolumeType.GB_PER_DAY: "GB per day"}


class SlaLevel(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


SLA_LEVEL_LABELS = {
    SlaLevel.P1: "P1 — Critical",
    SlaLevel.P2: "P2 — High",
    SlaLevel.P3: "P3 — Medium",
    SlaLevel.P4: "P4 — Low",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_NUL_OR_SURROGATE = re.compile(r"[\x00\ud800-\udfff]")


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def storable(value: str) -> bool:
    """PostgreSQL text and jsonb refuse NUL and lone UTF-16 surrogates (JSON allows both)."""
    return _NUL_OR_SURROGATE.search(value) is None


def _clean_query(value: str | None) -> str | None:
    return None if value is None else _no_control_chars(value)


def storable_json(value: object) -> bool:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return all(storable(str(k)) and storable_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable_json(v) for v in value)
    return True


def _unique_sorted(values: list[Permission]) -> list[Permission]:
    return sorted(set(values))


NO_CONTROL_CHARS = AfterValidator(_no_control_chars)


def text_rule(max_length: int, min_length: int = 1) -> StringConstraints:
    """Stripped, ``min_length``..``max_length`` characters: ``Annotated[str, text_rule(n), NO_CONTROL_CHARS]``."""
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


def text(max_length: int, min_length: int = 1):  # noqa: ANN201 - an Annotated type
    """The same as an inline annotation (type checkers cannot read it: module aliases spell it out)."""
    return Annotated[str, text_rule(max_length, min_length), NO_CONTROL_CHARS]


Name = Annotated[str, text_rule(200), NO_CONTROL_CHARS]
ShortText = Annotated[str, text_rule(100), NO_CONTROL_CHARS]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=40, pattern=r"^[0-9+()./\s-]{3,40}$")
]
# Deliberately loose (auth's rule too): directory e-mail domains such as .local fail strict validators.
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"),
    AfterValidator(_no_control_chars),
]
Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=150, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"
    ),
]
LdapGroup = Annotated[str, text_rule(512), NO_CONTROL_CHARS]
# Free-text search in query strings.
SearchText = Annotated[str | None, Query(max_length=200), AfterValidator(_clean_query)]
# Database ids in query strings and bodies (bigint).
BigId = Annotated[int, Field(ge=0, le=2**63 - 1)]
Permissions = Annotated[list[Permission], Field(max_length=10), AfterValidator(_unique_sorted)]


class Strict(BaseModel):
    """Request bodies: unknown fields are an error (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class DirectoryGroupIn(Strict):
    ldap_group: LdapGroup
    tenant_role: TenantRole = TenantRole.TENANT_USER
    permissions: Permissions | None = None


def choices(labels: dict) -> list[dict[str, str]]:
    return [{"value": str(k), "label": v} for k, v in labels.items()]
