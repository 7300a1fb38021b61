"""Session-wide test setup: real PostgreSQL and RabbitMQ (testcontainers where a Docker engine
answers, the project's local servers otherwise), a fresh database and vhost for the session."""

from __future__ import annotations

import pytest
from soc_shared.testing import Stack, TokenFactory, prepare_session

# The ingestors' shared test harness (fixtures db, bus, tap, harness, socket_sim; see the module).
pytest_plugins = ["soc_shared.testing.ingestor"]

_stack: Stack | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _stack
    # Environment first: service settings read it when test modules import them.
    _stack = prepare_session()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _stack is not None:
        _stack.stop()


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()
