"""The audit trail of the changes made through the auth service (users, roles, passwords, MFA,
sessions ended, signing keys).

Each change writes its record into the outbox in the change's own transaction (a change that rolls
back leaves no record, a committed one always has its record); the relay publishes it as
``audit.recorded`` and the tenant service files it in the suite's audit store, once per event id.
Only the fields that changed are kept, and anything secret-looking is masked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from soc_shared.audit import changes, trace_id, unchanged
from soc_shared.context import request_id_var
from soc_shared.events import AuditRecorded
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.database import utcnow
from soc_auth.deps import Actor, client_address
from soc_auth.outbox.service import enqueue
from soc_auth.user.service import UserRecord

# What a user record says that is not a change someone made (bookkeeping of every write or sign-in).
_USER_BOOKKEEPING = {"created_at", "updated_at", "last_login_at"}


def user_view(record: UserRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return record.read().model_dump(mode="json", exclude=_USER_BOOKKEEPING)


@dataclass(frozen=True)
class Who:
    id: str
    username: str
    kind: str
    company_id: str | None = None


# Changes the directory makes: an account created or updated from its groups at a sign-in.
DIRECTORY = Who("directory", "directory", "service")


def _who(actor: Actor | UserRecord | Who) -> Who:
    if isinstance(actor, Who):
        return actor
    user = actor.user if isinstance(actor, Actor) else actor
    return Who(str(user.id), user.username, user.kind, user.company_id)


async def record(
    session: AsyncSession,
    request: Request | None,
    actor: Actor | UserRecord | Who,
    action: str,
    target_type: str,
    target_id: Any,
    *,
    company_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> bool:
    """Stage one audit record in ``session`` (the change's transaction). Given both sides and nothing
    differs, nothing changed and nothing is recorded."""
    if unchanged(before, after):
        return False
    b, a = changes(before, after)
    who = _who(actor)
    target = None if target_id is None else str(target_id)
    await enqueue(
        session,
        "audit.recorded",
        AuditRecorded(
            at=utcnow(),
            company_id=None if company_id is None else str(company_id),
            actor_id=who.id,
            actor_username=who.username,
            actor_kind=who.kind,
            actor_company_id=who.company_id,
            action=action,
            target_type=target_type,
            target_id=target,
            before=b,
            after=a,
            client_address=None if request is None else client_address(request),
            request_id=request_id_var.get(),
            trace_id=trace_id(),
        ),
        subject=f"{target_type}/{target or '-'}/{uuid.uuid4().hex}",
    )
    return True
