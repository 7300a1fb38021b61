"""Directory look-ups for administrators (used when mapping directory groups to companies)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from soc_shared.errors import ApiError, NotFound

from soc_auth.deps import AdminReader, AppState, PageDep
from soc_auth.ldap.client import DirectoryUnavailable
from soc_auth.ldap.models import (
    DirectoryGroupList,
    DirectoryGroupRead,
    DirectoryServerStatus,
    DirectoryStatus,
    DirectoryUserList,
    DirectoryUserRead,
)

router = APIRouter(prefix="/admin/directory", tags=["admin directory"])


async def _ask(state: Any, method: str, *args: Any) -> Any:
    if any(isinstance(a, str) and any(ord(c) < 32 for c in a) for a in args):
        raise ApiError(422, "validation_error", "control characters are not allowed in directory look-ups")
    if not state.directory.enabled:
        raise ApiError(503, "directory_unavailable", "no directory (LDAP) server is configured")
    try:
        return await asyncio.to_thread(getattr(state.directory, method), *args)
    except DirectoryUnavailable:
        raise ApiError(
            503,
            "directory_unavailable",
            "the directory (LDAP) servers cannot be reached right now",
            {"retry_after": 30},
        ) from None


def _user(person: Any) -> DirectoryUserRead:
    return DirectoryUserRead(
        dn=person.dn,
        username=person.username,
        email=person.email,
        full_name=person.full_name,
        groups=person.member_of,
    )


@router.get("/users/", response_model=DirectoryUserList)
async def directory_users(
    actor: AdminReader, state: AppState, page: PageDep, q: Annotated[str | None, Query(max_length=100)] = None
) -> DirectoryUserList:
    people = await _ask(state, "search_users", q)
    window = people[page.offset : page.offset + page.limit]
    return DirectoryUserList(
        items=[_user(p) for p in window], total=len(people), limit=page.limit, offset=page.offset
    )


@router.get("/groups/", response_model=DirectoryGroupList)
async def directory_groups(
    actor: AdminReader, state: AppState, page: PageDep, q: Annotated[str | None, Query(max_length=100)] = None
) -> DirectoryGroupList:
    groups = await _ask(state, "list_groups", q)
    window = groups[page.offset : page.offset + page.limit]
    return DirectoryGroupList(
        items=[DirectoryGroupRead(**g.__dict__) for g in window],
        total=len(groups),
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/groups/{name}/users/", response_model=DirectoryUserList)
async def directory_group_users(
    actor: AdminReader,
    state: AppState,
    page: PageDep,
    name: Annotated[str, Path(min_length=1, max_length=512)],
) -> DirectoryUserList:
    people = await _ask(state, "group_members", name)
    if people is None:
        raise NotFound("directory group")
    window = people[page.offset : page.offset + page.limit]
    return DirectoryUserList(
        items=[_user(p) for p in window], total=len(people), limit=page.limit, offset=page.offset
    )


@router.get("/status/", response_model=DirectoryStatus)
async def directory_status(actor: AdminReader, state: AppState) -> DirectoryStatus:
    """The directory test: each configured server tried on its own — reachable, TLS (certificate
    verified), the service account's bind, the flavour — with what failed in words."""
    if not state.directory.enabled:
        raise ApiError(503, "directory_unavailable", "no directory (LDAP) server is configured")
    servers = [DirectoryServerStatus(**s) for s in await asyncio.to_thread(state.directory.diagnose)]
    return DirectoryStatus(ok=all(s.service_bind for s in servers), servers=servers)
