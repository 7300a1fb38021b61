"""What the chat routes answer: one pydantic model per shape.

The routes return dicts; FastAPI validates them against these models and serialises through
them, so a field that is not declared here never leaves the service. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field
from soc_shared.api import ApiModel, Page


class ChatMessage(ApiModel):
    id: int = Field(description="grows with every message of every company")
    company_id: uuid.UUID
    sender_id: str
    sender_name: str | None
    sender_kind: str = Field(description="`admin` or `tenant`")
    body: str
    sent_at: datetime
    admin_seen_at: datetime | None = Field(description="when an admin first saw it")
    tenant_seen_at: datetime | None = Field(description="when a tenant user first saw it")


class MessagesSeen(ApiModel):
    company_id: uuid.UUID
    marked: int = Field(description="messages newly marked as seen")


class TenantUnread(ApiModel):
    """A tenant user's unread count: the admins' messages not seen yet."""

    company_id: uuid.UUID
    unread: int


class CompanyUnread(ApiModel):
    company_id: uuid.UUID
    company_name: str
    unread: int
    last_message_id: int


class AdminUnread(Page[CompanyUnread]):
    """For admins: per company, the tenants' messages no admin has seen."""

    unread_total: int
