"""Directory look-ups for administrators (used when mapping directory groups to companies)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from soc_shared.errors import ApiError, NotFound
from sqlalchemy import select

from soc_auth.deps import AdminReader, AppState, PageDep
from soc_auth.ldap.client import DirectoryUnavailable
from soc_auth.ldap.dn import normalize_dn
from soc_auth.ldap.models import (
    DirectoryGroupList,
    DirectoryGroupRead,
    DirectoryServerStatus,
    DirectoryStatus,
    DirectoryUserList,
    DirectoryUserRead,
)
from soc_auth.user.models import users

router = APIRouter(prefix="/admin/directory", tags=["admin directory"])


AdFlag = Literal["CUSTOMER", "ADMIN"]
AdFlagQuery = Annotated[
    AdFlag,
    Query(
        description="which directory: CUSTOMER (tenant users) or ADMIN (the administrators' directory; "
        "the customer directory when none is configured)"
    ),
]


def _directory(state: Any, ad_flag: str) -> Any:
    return state.admin_directory if ad_flag == "ADMIN" else state.directory


async def _ask(state: Any, method: str, *args: Any, ad_flag: str = "CUSTOMER") -> Any:
    if any(isinstance(a, str) and any(ord(c) < 32 for c in a) for a in args):
        raise ApiError(422, "validation_error", "control characters are not allowed in directory look-ups")
    directory = _directory(state, ad_flag)
    if not directory.enabled:
        raise ApiError(503, "directory_unavailable", "no directory (LDAP) server is configured")
    try:
        return await asyncio.to_thread(getattr(directory, method), *args)
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
    actor: AdminReader,
    state: AppState,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100)] = None,
    ad_flag: AdFlagQuery = "CUSTOMER",
) -> DirectoryUserList:
    people = await _ask(state, "search_users", q, ad_flag=ad_flag)
    window = people[page.offset : page.offset + page.limit]
    return DirectoryUserList(
        items=[_user(p) for p in window], total=len(people), limit=page.limit, offset=page.offset
    )


@router.get("/groups/", response_model=DirectoryGroupList)
async def directory_groups(
    actor: AdminReader,
    state: AppState,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100)] = None,
    ad_flag: AdFlagQuery = "CUSTOMER",
) -> DirectoryGroupList:
    groups = await _ask(state, "list_groups", q, ad_flag=ad_flag)
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
    ad_flag: AdFlagQuery = "CUSTOMER",
    exclude_assigned: Annotated[
        bool,
        Query(description="leave out people who already have a tenant user account (assigned to a company)"),
    ] = False,
) -> DirectoryUserList:
    people = await _ask(state, "group_members", name, ad_flag=ad_flag)
    if people is None:
        raise NotFound("directory group")
    if exclude_assigned and people:
        async with state.db.session() as session:
            rows = await session.execute(
                select(users.c.username, users.c.directory_dn).where(
                    users.c.is_tenant, users.c.company_id.isnot(None), users.c.is_deleted.is_(False)
                )
            )
            names, dns = set(), set()
            for username, dn in rows:
                names.add(username.lower())
                if dn:
                    dns.add(normalize_dn(dn))
        people = [p for p in people if p.username.lower() not in names and normalize_dn(p.dn) not in dns]
    window = people[page.offset : page.offset + page.limit]
    return DirectoryUserList(
        items=[_user(p) for p in window], total=len(people), limit=page.limit, offset=page.offset
    )


@router.get("/status/", response_model=DirectoryStatus)
async def directory_status(
    actor: AdminReader, state: AppState, ad_flag: AdFlagQuery = "CUSTOMER"
) -> DirectoryStatus:
    """The directory test: each configured server tried on its own — reachable, TLS (certificate
    verified), the service account's bind, the flavour — with what failed in words."""
    directory = _directory(state, ad_flag)
    if not directory.enabled:
        raise ApiError(503, "directory_unavailable", "no directory (LDAP) server is configured")
    servers = [DirectoryServerStatus(**s) for s in await asyncio.to_thread(directory.diagnose)]
    return DirectoryStatus(ok=all(s.service_bind for s in servers), servers=servers)
