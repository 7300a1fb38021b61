"""Tunables of notification delivery; tests and benches set ``app.state.notify_options`` (and
``app.state.notify_clock``) before the lifespan starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from soc_shared.egress import EgressPolicy


@dataclass
class NotifyOptions:
    background_tasks: bool = True
    # The bus consumer of the triggers (None: the service's consumers_enabled setting).
    consumer: bool | None = None
    sla_watch_seconds: float = 15.0
    # The delivery loop wakes on every new notice of this replica; otherwise it looks this often.
    deliver_idle_seconds: float = 2.0
    batch: int = 200
    # Sends in flight at once, all channels together; one slow endpoint takes one slot at most
    # per delivery, never the loop.
    concurrency: int = 32
    send_timeout_seconds: float = 10.0
    lease_seconds: float = 60.0
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    max_attempts: int = 8
    # A channel failing this many deliveries in a row is parked (its deliveries wait, others go on).
    park_after: int = 5
    egress: EgressPolicy | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def notify_options(app: Any) -> NotifyOptions:
    current = getattr(app.state, "notify_options", None)
    if current is None:
        current = app.state.notify_options = NotifyOptions()
    return current
