"""The tenant service's two database roles and the session dependencies built on them.

- the owner role (``soc_tenant``) runs migrations and the bus consumers (they write every company's
  rows);
- the app role (``soc_tenant_app``) serves API requests; row-level-security policies keyed on
  ``app.company_id`` / ``app.is_admin`` decide which rows it sees, so a forgotten filter in a
  query still cannot leak another company's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from soc_shared.db import Database, set_company_scope
from soc_shared.security import CurrentPrincipal, Principal
from sqlalchemy.ext.asyncio import AsyncSession


def owner_db(request: Request) -> Database:
    return request.app.state.db


def app_db(request: Request) -> Database:
    return request.app.state.app_db


async def scoped_session(request: Request, principal: CurrentPrincipal) -> AsyncIterator[AsyncSession]:
    """A transaction on the RLS-bound role, scoped to the caller (admins see every company)."""
    db: Database = request.app.state.app_db
    async with db.session() as session:
        await set_company_scope(
            session, principal.company_id, is_admin=principal.is_admin or principal.is_service
        )
        yield session


ScopedSession = Annotated[AsyncSession, Depends(scoped_session)]
OwnerDb = Annotated[Database, Depends(owner_db)]


__all__ = ["ScopedSession", "OwnerDb", "Principal"]
