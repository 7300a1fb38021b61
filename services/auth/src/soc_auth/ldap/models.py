"""What the directory tells us about a person or a group."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    username: str
    email: str | None
    full_name: str
    member_of: list[str] = field(default_factory=list)
    # False for an account the directory disabled or let expire (Active Directory's
    # userAccountControl / accountExpires).
    enabled: bool = True
    upn: str | None = None


@dataclass(frozen=True)
class DirectoryGroup:
    dn: str
    name: str
    description: str
    member_count: int


class DirectoryUserRead(BaseModel):
    dn: str
    username: str
    email: str | None
    full_name: str
    groups: list[str]


class DirectoryUserList(BaseModel):
    items: list[DirectoryUserRead]
    total: int
    limit: int
    offset: int


class DirectoryGroupRead(BaseModel):
    dn: str
    name: str
    description: str
    member_count: int


class DirectoryGroupList(BaseModel):
    items: list[DirectoryGroupRead]
    total: int
    limit: int
    offset: int


class DirectoryServerStatus(BaseModel):
    url: str
    transport: str = Field(description="ldaps, starttls or plain (the explicit opt-in)")
    reachable: bool
    tls: bool | None = Field(description="TLS established and the certificate verified")
    service_bind: bool = Field(description="the service account's bind succeeded")
    flavor: str | None = Field(description="active_directory or openldap (from the root DSE)")
    error: str | None = Field(description="what failed, in words (TLS, bind, network)")


class DirectoryStatus(BaseModel):
    ok: bool = Field(description="every server answered over the configured transport and accepted the bind")
    servers: list[DirectoryServerStatus]
