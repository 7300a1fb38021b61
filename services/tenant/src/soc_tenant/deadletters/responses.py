"""What the deadletters routes answer: one pydantic model per shape.

The routes build JSON-ready dicts (see :class:`~soc_tenant.readmodel.common.ReadRoute`); these
models are their contract — the OpenAPI schemas a client is generated from, and what the tests
validate every answer against. Times are ISO 8601 with an offset, in UTC unless stated; EPS is
events per second; percentages are 0-100 (above 100 when a contract is exceeded).
"""

from __future__ import annotations

from pydantic import Field
from soc_shared.api import ApiModel


class DeadLetterQueue(ApiModel):
    queue: str
    dead_letter_queue: str
    bindings: list[str] = Field(description="the routing keys the queue consumes")
    parked: int = Field(description="messages parked in the dead-letter queue")


class DeadLetter(ApiModel):
    message_id: str | None
    event_id: str | None
    event_type: str | None
    routing_key: str | None
    reason: str = Field(description="why the consumer parked it")
    dead_at: str | None = Field(description="when it was parked (ISO 8601)")
    body_preview: str = Field(description="the first 500 bytes of the message")


class DeadLetters(ApiModel):
    """Without `queue`: the read-model queues (`items` are DeadLetterQueue); with it: that queue's
    parked messages (`items` are DeadLetter, `total` the queue's depth)."""

    queue: str | None = None
    items: list[DeadLetter] | list[DeadLetterQueue]
    total: int
    limit: int
    offset: int


class ReplayResult(ApiModel):
    queue: str
    replayed: int = Field(description="messages sent back to the queue")


class RollupsRebuilt(ApiModel):
    rebuilt: bool
