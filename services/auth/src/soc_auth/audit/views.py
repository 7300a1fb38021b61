"""The login audit, for administrators."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from soc_auth.audit import service as audit
from soc_auth.audit.models import LoginAttemptList
from soc_auth.database import SessionDep
from soc_auth.deps import AdminReader, PageDep

router = APIRouter(tags=["admin"])


@router.get("/admin/login-audit/", response_model=LoginAttemptList)
async def login_audit(
    actor: AdminReader,
    session: SessionDep,
    page: PageDep,
    username: Annotated[str | None, Query(max_length=255)] = None,
    user_id: uuid.UUID | None = None,
    outcome: Literal["succeeded", "failed"] | None = None,
    method: Literal["local", "ldap", "oidc", "mfa"] | None = None,
    client_ip: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="inclusive, ISO 8601")] = None,
    until: Annotated[datetime | None, Query(description="exclusive, ISO 8601")] = None,
) -> LoginAttemptList:
    """Every sign-in attempt, newest first."""
    flt = audit.AttemptFilter(
        username=username,
        user_id=user_id,
        outcome=outcome,
        method=method,
        client_ip=client_ip,
        since=since,
        until=until,
    )
    items, total = await audit.list_attempts(session, flt, limit=page.limit, offset=page.offset)
    return LoginAttemptList(items=items, total=total, limit=page.limit, offset=page.offset)
