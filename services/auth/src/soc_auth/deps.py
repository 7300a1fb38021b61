"""Typed dependencies declared once: who is calling, and what they may do here.

Access tokens are snapshots; for administration the caller's account is read again, so a
disabled, deleted or demoted administrator loses access at once rather than at token expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from soc_shared.client_address import client_address as shared_client_address
from soc_shared.errors import ApiError
from soc_shared.security import InvalidToken, Principal

from soc_auth.audit.service import AttemptContext
from soc_auth.config import Settings
from soc_auth.database import SessionDep
from soc_auth.token import service as tokens
from soc_auth.user import service as users
from soc_auth.user.service import UserRecord

_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def current_principal(request: Request, credentials: Credentials) -> Principal:
    """Like ``soc_shared.security.current_principal``, verifying with this service's own key ring."""
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "not_authenticated", "authentication required")
    try:
        principal = await tokens.verify(request.app.state, credentials.credentials)
    except InvalidToken:
        raise ApiError(401, "invalid_token", "invalid or expired token") from None
    request.state.principal = principal
    return principal


async def optional_principal(request: Request, credentials: Credentials) -> Principal | None:
    if credentials is None or not credentials.credentials:
        return None
    return await current_principal(request, credentials)


AuthPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def service_principal(principal: AuthPrincipal) -> Principal:
    if not principal.is_service:
        raise ApiError(403, "service_required", "this endpoint is for internal services")
    return principal


ServiceCaller = Annotated[Principal, Depends(service_principal)]


async def tenant_service(principal: Annotated[Principal, Depends(service_principal)]) -> Principal:
    """The tenant service alone manages tenant users (a stolen ingestor credential cannot)."""
    if principal.sub != "tenant" or (principal.scope and not principal.has_scope("auth.users:write")):
        raise ApiError(403, "tenant_service_required", "only the tenant service manages tenant users")
    return principal


TenantServiceCaller = Annotated[Principal, Depends(tenant_service)]


@dataclass(frozen=True)
class Actor:
    """A signed-in person, with their account as it is now."""

    principal: Principal
    user: UserRecord

    @property
    def id(self):  # noqa: ANN201
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return bool(self.user.is_admin)

    @property
    def is_super_admin(self) -> bool:
        return self.user.is_super_admin

    @property
    def is_tenant_admin(self) -> bool:
        return bool(self.user.is_tenant) and "TENANT_ADMIN" in self.user.roles

    @property
    def read_only(self) -> bool:
        return bool(self.user.is_read_only or self.principal.read_only)

    @property
    def company_id(self) -> str | None:
        return self.user.company_id


async def current_actor(principal: AuthPrincipal, session: SessionDep) -> Actor:
    if principal.is_service:
        raise ApiError(403, "forbidden", "this endpoint is for people, not services")
    record = await users.get(session, principal.sub)
    if record is None or not record.can_log_in:
        raise ApiError(401, "invalid_token", "invalid or expired token")
    return Actor(principal, record)


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def user_manager_reader(actor: CurrentActor) -> Actor:
    """Administrators, and tenant administrators for their own company."""
    if not (actor.is_admin or actor.is_tenant_admin):
        raise ApiError(403, "admin_required", "this action is for administrators")
    return actor


async def user_manager_writer(actor: Annotated[Actor, Depends(user_manager_reader)]) -> Actor:
    if actor.read_only:
        raise ApiError(403, "read_only", "read-only administrators cannot change anything")
    return actor


async def admin_reader(actor: CurrentActor) -> Actor:
    if not actor.is_admin:
        raise ApiError(403, "admin_required", "this action is for administrators")
    return actor


async def admin_writer(actor: Annotated[Actor, Depends(admin_reader)]) -> Actor:
    if actor.read_only:
        raise ApiError(403, "read_only", "read-only administrators cannot change anything")
    return actor


async def super_admin_writer(actor: Annotated[Actor, Depends(admin_writer)]) -> Actor:
    if not actor.is_super_admin:
        raise ApiError(403, "super_admin_required", "this action is for super administrators")
    return actor


UserManagerReader = Annotated[Actor, Depends(user_manager_reader)]
UserManagerWriter = Annotated[Actor, Depends(user_manager_writer)]
AdminReader = Annotated[Actor, Depends(admin_reader)]
AdminWriter = Annotated[Actor, Depends(admin_writer)]
SuperAdminWriter = Annotated[Actor, Depends(super_admin_writer)]


def client_address(request: Request) -> str | None:
    """The caller's address: the peer, or — when the peer is a trusted proxy — the nearest
    untrusted address of X-Forwarded-For."""
    return shared_client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        request.app.state.trusted_proxies,
    )


ClientAddress = Annotated[str | None, Depends(client_address)]


def app_state(request: Request):  # noqa: ANN201 - starlette's State is untyped
    return request.app.state


AppState = Annotated[Any, Depends(app_state)]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def page(limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page)]


def attempt_context(request: Request, endpoint: str = "login") -> AttemptContext:
    return AttemptContext(client_address(request), request.headers.get("user-agent"), endpoint)
