"""What every control-plane route declares once: who may call, the scoped transaction, pagination,
and the error helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, overload

from fastapi import Depends, FastAPI, Query, Request
from loguru import logger
from soc_shared.client_address import client_address as shared_client_address
from soc_shared.client_address import trusted_networks
from soc_shared.db import set_company_scope
from soc_shared.errors import ApiError
from soc_shared.events import Payload
from soc_shared.security import CurrentPrincipal, Principal, company_scope, require_admin, require_admin_write
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.control.options import options
from soc_tenant.outbox import service as outbox


@dataclass
class Tx:
    """One scoped transaction of an API request on the RLS-bound app role.

    Events staged with :meth:`publish` are written to the outbox in the same transaction and
    published right after the commit; callbacks registered with :meth:`on_commit` run then too.
    """

    app: FastAPI
    session: AsyncSession
    principal: Principal
    outbox_ids: list[int] = field(default_factory=list)
    after_commit: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    # Where the request came from (the audit trail records it): the real client (behind trusted
    # proxies) and X-Forwarded-For as received.
    client_address: str | None = None
    forwarded_for: str | None = None

    async def publish(
        self, routing_key: str, payload: Payload, subject: str, *, integration_id: str | None = None
    ) -> None:
        event = outbox.build_event(routing_key, payload, subject, integration_id=integration_id)
        self.outbox_ids += await outbox.stage(self.session, [event])

    def on_commit(self, callback: Callable[[], Awaitable[Any]]) -> None:
        self.after_commit.append(callback)

    async def committed(self) -> None:
        if self.outbox_ids:
            try:
                await outbox.flush(self.app.state.db, self.app.state.bus, self.outbox_ids)
            except Exception as exc:  # the relay publishes it later
                logger.warning("outbox flush after commit failed: {}", type(exc).__name__)
        for callback in self.after_commit:
            try:
                await callback()
            except Exception as exc:  # after the commit nothing may turn a success into an error
                logger.opt(exception=exc).warning("after-commit step failed")


@asynccontextmanager
async def scoped_tx(app: FastAPI, principal: Principal) -> AsyncIterator[Tx]:
    """A transaction on the RLS-bound app role scoped to ``principal`` (the same scope as the
    service's ``ScopedSession``); events staged in it are published after the commit."""
    async with app.state.app_db.sessionmaker() as session:
        async with session.begin():
            await set_company_scope(
                session, principal.company_id, is_admin=principal.is_admin or principal.is_service
            )
            tx = Tx(app, session, principal)
            yield tx
    await tx.committed()


async def control_tx(request: Request, principal: CurrentPrincipal) -> AsyncIterator[Tx]:
    """:func:`scoped_tx` for a route, committed *before* the response is sent (function scope), so a
    client never reads before our write is visible and a failed commit is an error, not a lie."""
    async with scoped_tx(request.app, principal) as tx:
        tx.client_address = client_address(request)
        tx.forwarded_for = request.headers.get("x-forwarded-for") or None
        yield tx


def client_address(request: Request) -> str | None:
    """The caller's real address: the peer, or — when the peer is a trusted proxy (the gateway) —
    the nearest untrusted address of X-Forwarded-For. A header sent by anyone else is not believed."""
    app = request.app
    trusted = getattr(app.state, "trusted_networks", None)
    if trusted is None:
        trusted = app.state.trusted_networks = trusted_networks(app.state.settings.trusted_proxies)
    return shared_client_address(
        request.client.host if request.client else None, request.headers.get("x-forwarded-for"), trusted
    )


ControlTx = Annotated[Tx, Depends(control_tx, scope="function")]


# --- who may call ---------------------------------------------------------------------------------
async def require_manager(principal: CurrentPrincipal) -> Principal:
    """Admins (read-only ones included) and tenant admins (for their own company only)."""
    if principal.is_admin or principal.is_tenant_admin:
        return principal
    if principal.kind == "tenant":
        raise ApiError(403, "tenant_admin_required", "this action is for tenant administrators")
    raise ApiError(403, "admin_required", "this action is for administrators")


async def require_manager_write(principal: CurrentPrincipal) -> Principal:
    principal = await require_manager(principal)
    if principal.read_only:
        raise ApiError(403, "read_only", "read-only accounts cannot change anything")
    return principal


async def require_user_write(principal: CurrentPrincipal) -> Principal:
    """Admins and tenant users that are not read-only (chat)."""
    if principal.is_service:
        raise ApiError(403, "forbidden", "not for services")
    if principal.read_only:
        raise ApiError(403, "read_only", "read-only accounts cannot change anything")
    return principal


async def require_person(principal: CurrentPrincipal) -> Principal:
    if principal.is_service:
        raise ApiError(403, "forbidden", "not for services")
    return principal


AdminReader = Annotated[Principal, Depends(require_admin)]
AdminWriter = Annotated[Principal, Depends(require_admin_write)]
ManagerReader = Annotated[Principal, Depends(require_manager)]
ManagerWriter = Annotated[Principal, Depends(require_manager_write)]
UserWriter = Annotated[Principal, Depends(require_user_write)]
Person = Annotated[Principal, Depends(require_person)]


@overload
def scoped_company(principal: Principal, company_id: uuid.UUID | str) -> uuid.UUID: ...
@overload
def scoped_company(principal: Principal, company_id: None) -> uuid.UUID | None: ...
def scoped_company(principal: Principal, company_id: uuid.UUID | str | None) -> uuid.UUID | None:
    """The company a caller may address: a tenant's own (404 for any other, so other companies cannot
    even be detected), anything for admins and services (None = all; never None when one is asked
    for)."""
    scope = company_scope(principal, None if company_id is None else str(company_id))
    return None if scope is None else as_uuid(scope, "company")


async def company_in_path(company_id: uuid.UUID, principal: CurrentPrincipal) -> uuid.UUID:
    """The ``{company_id}`` of a path, checked before anything else (the body included): another
    company's id answers 404 exactly like an id that does not exist."""
    scope = scoped_company(principal, company_id)
    return company_id if scope is None else scope


CompanyId = Annotated[uuid.UUID, Depends(company_in_path)]


def as_uuid(value: Any, what: str = "resource") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise ApiError(404, "not_found", f"{what} not found") from None


# --- pagination and errors -------------------------------------------------------------------------
@dataclass
class PageParams:
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> PageParams:
    return PageParams(limit, offset)


Paging = Annotated[PageParams, Depends(page_params)]


def page(items: list[Any], total: int, paging: PageParams) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": paging.limit, "offset": paging.offset}


def full_list(items: list[Any]) -> dict[str, Any]:
    """A complete (unpaginated) list in the one list shape."""
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


def invalid(
    loc: list[str], message: str, type_: str = "value_error", *, code: str = "validation_error"
) -> ApiError:
    """A 422 in the same shape as request-model validation errors."""
    return ApiError(
        422, code, "the request is not valid", {"errors": [{"loc": loc, "msg": message, "type": type_}]}
    )


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def opts(app: FastAPI) -> Any:
    return options(app)
