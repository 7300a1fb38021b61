"""The service's table metadata and the typed dependencies every route uses.

Tables carry no schema name: each service's role has its own schema as ``search_path`` (set by
``soc_shared.db.Database`` and by the migrations), so the auth tables live in ``auth``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns (before the response is
    sent, see ``scope="function"``), rolled back when it raises."""
    from soc_auth.outbox.service import transaction

    async with transaction(request.app.state) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
