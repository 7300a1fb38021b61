"""Tunables of the control plane's background work and outgoing calls.

Pluggable for tests and deployments without touching the service's settings class: set
``app.state.control_options`` (a :class:`ControlOptions`) before the lifespan starts. Outgoing HTTP
calls use ``app.state.auth_transport`` / ``app.state.ingestor_transport`` (httpx transports) when
set, which is how tests stand in for the auth service and the ingestors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ControlOptions:
    # Retry of calls to the auth service that must eventually happen (disable a company's users).
    pending_retry_seconds: float = 15.0
    pending_backoff_max_seconds: float = 600.0
    # Outbox relay: publishes events whose immediate publication failed.
    outbox_relay_seconds: float = 5.0
    auth_timeout_seconds: float = 10.0
    # Test-connection waits on the vendor through an ingestor (the gateway allows 60 s).
    ingestor_timeout_seconds: float = 45.0
    # A resource failing this many times in a row (or with a credentials error) marks the
    # integration as in error.
    error_after_failures: int = 3
    # Live sockets: a client that does not take a frame within this time is dropped.
    live_send_timeout_seconds: float = 5.0
    # Admin sockets opened with ?metrics=true get the live figures this often.
    live_metrics_seconds: float = 10.0
    background_tasks: bool = True
    # The control plane's bus consumers (auth.user.changed, ingest.sync.reported): None follows the
    # service's ``consumers_enabled`` setting; tests may run them while the read model's are off.
    consumers: bool | None = None


def options(app: Any) -> ControlOptions:
    current = getattr(app.state, "control_options", None)
    if current is None:
        current = ControlOptions()
        app.state.control_options = current
    return current
