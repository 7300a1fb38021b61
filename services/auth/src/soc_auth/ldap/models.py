"""What the directory tells us about a person or a group."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    username: str
    email: str | None
    full_name: str
    member_of: list[str] = field(default_factory=list)


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
