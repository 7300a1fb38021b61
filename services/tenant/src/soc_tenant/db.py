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


# The owner role passes row-level security unless its session scoped itself to a company
# (set_company_scope sets app.trusted = off): the tables FORCE it, so being the owner is not enough.
OWNER_TRUSTED = "coalesce(current_setting('app.trusted', true), '') <> 'off'"


def rls_policy_sql(table: str, column: str = "company_id") -> list[str]:
    """DDL that protects a company-scoped table with row-level security (used by migrations).

    Row-level security is forced: the owner role (consumers, migrations) passes through the
    ``owner_trusted`` policy unless its session is scoped to a company; the app role never passes.
    """
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS owner_trusted ON {table}",
        f"CREATE POLICY owner_trusted ON {table} TO CURRENT_USER USING ({OWNER_TRUSTED}) WITH CHECK ({OWNER_TRUSTED})",
        f"DROP POLICY IF EXISTS company_isolation ON {table}",
        f"""CREATE POLICY company_isolation ON {table}
            USING (current_setting('app.is_admin', true) = 'on'
                   OR {column}::text = current_setting('app.company_id', true))
            WITH CHECK (current_setting('app.is_admin', true) = 'on'
                   OR {column}::text = current_setting('app.company_id', true))""",
    ]


__all__ = ["OWNER_TRUSTED", "ScopedSession", "OwnerDb", "Principal", "rls_policy_sql"]
