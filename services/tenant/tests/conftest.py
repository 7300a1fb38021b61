"""Fixtures of the tenant service's tests (control plane and read model alike).

- ``settings`` / ``migrated``: the service's settings, and the schema migrated once per session
  (the root conftest gave the session a fresh database and vhost);
- ``app``: ``create_app(settings, verifier=tokens.verifier())`` running its lifespan for the whole
  session, with the auth service and the ingestors replaced by in-process fakes (``fake_auth``,
  ``fake_ingestors``) and service tokens signed by the session's key;
- ``client``: an ``httpx.AsyncClient`` on the app (ASGI, no network);
- ``make_app``: another, not yet started, instance of the service (a second replica);
- ``serve_app``: runs an ASGI app on a loopback socket (replicas for WebSockets, vendor simulators);
- ``headers``: ``headers(kind=..., company_id=..., ...)`` → an Authorization header;
- ``event_tap``: collects events from the real bus (``async with event_tap("tenant.#") as tap``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import pytest_asyncio
from soc_shared.bus import EVENTS_EXCHANGE, Bus, declare_exchanges, decode_message
from soc_shared.db import migrate
from soc_shared.events import CloudEvent
from soc_shared.testing import TokenFactory
from soc_tenant.config import Settings
from soc_tenant.control.options import ControlOptions
from soc_tenant.main import create_app
from soc_tenant.notify.options import NotifyOptions

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "soc_tenant" / "migrations"


class StaticServiceTokens:
    """Stands in for ServiceTokenProvider: service tokens signed with the session's test key."""

    def __init__(self, tokens: TokenFactory, client_id: str = "tenant") -> None:
        self.tokens = tokens
        self.client_id = client_id

    async def token(self) -> str:
        return self.tokens.token(kind="service", sub=self.client_id, roles=[], permissions=[], typ="access")

    def invalidate(self) -> None:
        return None


class FakeAuth:
    """The auth service's internal user API, in process (an httpx transport). ``down = True`` makes
    every call fail to connect."""

    def __init__(self, tokens: TokenFactory) -> None:
        self.verifier = tokens.verifier()
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.down = False
        self.reject: dict[str, tuple[int, dict[str, Any]]] = {}  # username -> (status, error body)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("auth is down (test)", request=request)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        principal = await self.verifier.verify(token)
        assert principal.is_service, "auth's internal API takes service tokens only"
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.calls.append((request.method, path, body))
        if request.method == "POST" and path == "/auth/internal/users":
            if body["username"] in self.reject:
                status, err = self.reject[body["username"]]
                return httpx.Response(status, json={"error": err})
            existing = next((u for u in self.users.values() if u["username"] == body["username"]), None)
            if existing is not None:
                return httpx.Response(200, json={"created": False, "user": existing})
            user = {
                "id": str(uuid.uuid4()),
                "is_active": True,
                "is_deleted": False,
                **{k: v for k, v in body.items() if k != "password"},
            }
            self.users[user["id"]] = user
            return httpx.Response(201, json={"created": True, "user": user})
        if request.method == "PATCH" and path.startswith("/auth/internal/users/"):
            user = self.users.get(path.rsplit("/", 1)[1])
            if user is None:
                return httpx.Response(
                    404, json={"error": {"code": "not_found", "message": "tenant user not found"}}
                )
            user.update({k: v for k, v in body.items() if k != "password"})
            return httpx.Response(200, json=user)
        if request.method == "POST" and path.endswith("/disable-users"):
            company_id = path.split("/")[-2]
            disabled = (body or {}).get("disabled", True)
            changed = 0
            for user in self.users.values():
                if user.get("company_id") == company_id:
                    user["is_active"] = not disabled
                    changed += 1
            return httpx.Response(
                200, json={"company_id": company_id, "disabled": disabled, "users_changed": changed}
            )
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such route"}})


class FakeIngestors:
    """The four ingestors' internal APIs. ``results[subtype]`` is what test-connection answers (a dict
    in ConnectionTestResult's shape), or ``"unreachable"`` / ``"http500"`` / ``"garbage"``."""

    def __init__(self, tokens: TokenFactory) -> None:
        self.verifier = tokens.verifier()
        self.results: dict[str, Any] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.down: set[str] = set()  # hosts (e.g. "127.0.0.1:8011") that refuse connections

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        host = f"{request.url.host}:{request.url.port}"
        if host in self.down:
            raise httpx.ConnectError("ingestor is down (test)", request=request)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        principal = await self.verifier.verify(token)
        assert principal.is_service
        body = json.loads(request.content)
        self.requests.append((host, request.url.path, body))
        if request.url.path == "/internal/sync-now":
            return httpx.Response(200, json={"scheduled": 3})
        if request.url.path == "/internal/test-connection":
            result = self.results.get(body["subtype"], {"ok": True, "message": "connected", "details": {}})
            if result == "unreachable":
                raise httpx.ConnectError("ingestor is down (test)", request=request)
            if result == "http500":
                return httpx.Response(500, json={"error": {"code": "internal_error", "message": "boom"}})
            if result == "garbage":
                return httpx.Response(200, content=b"<html>not json</html>")
            return httpx.Response(200, json=result)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such route"}})


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> Settings:
    migrate(settings, MIGRATIONS)
    return settings


@pytest.fixture(scope="session")
def fake_auth(tokens: TokenFactory) -> FakeAuth:
    return FakeAuth(tokens)


@pytest.fixture(scope="session")
def fake_ingestors(tokens: TokenFactory) -> FakeIngestors:
    return FakeIngestors(tokens)


def build_app(
    settings: Settings,
    tokens: TokenFactory,
    fake_auth: FakeAuth | None = None,
    fake_ingestors: FakeIngestors | None = None,
) -> Any:
    """A tenant app wired to the fakes. Background loops are off (tests drive retries themselves) and
    so are the read model's consumers (this app must not compete for the read model tests' events);
    the control plane's own consumers run."""
    app = create_app(settings.model_copy(update={"consumers_enabled": False}), verifier=tokens.verifier())
    app.state.control_options = ControlOptions(background_tasks=False, consumers=True)
    app.state.notify_options = NotifyOptions(background_tasks=False, consumer=False)
    if fake_auth is not None:
        app.state.auth_transport = fake_auth.transport()
    if fake_ingestors is not None:
        app.state.ingestor_transport = fake_ingestors.transport()
    return app


@asynccontextmanager
async def running(app: Any, tokens: TokenFactory) -> AsyncIterator[Any]:
    async with app.router.lifespan_context(app):
        app.state.service_tokens = StaticServiceTokens(tokens)
        yield app


@pytest_asyncio.fixture(scope="session")
async def app(
    migrated: Settings, tokens: TokenFactory, fake_auth: FakeAuth, fake_ingestors: FakeIngestors
) -> AsyncIterator[Any]:
    async with running(build_app(migrated, tokens, fake_auth, fake_ingestors), tokens) as started:
        yield started


@pytest.fixture(scope="session")
def make_app(
    migrated: Settings, tokens: TokenFactory, fake_auth: FakeAuth, fake_ingestors: FakeIngestors
) -> Callable[[], Any]:
    """Another instance of the service (a second replica) wired like ``app``, lifespan not started."""
    return lambda: build_app(migrated, tokens, fake_auth, fake_ingestors)


@pytest_asyncio.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenant.test") as c:
        yield c


@pytest.fixture(scope="session")
def headers(tokens: TokenFactory) -> Callable[..., dict[str, str]]:
    def make(**claims: Any) -> dict[str, str]:
        return tokens.headers(**claims)

    return make


@asynccontextmanager
async def serve(asgi_app: Any) -> AsyncIterator[str]:
    """Run an ASGI app on a real loopback socket (its own lifespan); yields ``host:port``."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(asgi_app, host="127.0.0.1", port=0, lifespan="on", log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture(scope="session")
def serve_app() -> Callable[[Any], Any]:
    """``async with serve_app(app) as "host:port"``: an app (e.g. a second replica, a simulator) on a socket."""
    return serve


class EventTap:
    """Events seen on the real bus by a private queue."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    def of(self, routing_key: str) -> list[Any]:
        return [e.payload() for e in self.events if e.routing_key == routing_key]

    async def wait_for(self, predicate: Callable[[list[CloudEvent]], Any], within: float = 10.0) -> Any:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            found = predicate(self.events)
            if found:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"event not seen in {within}s; saw {[e.type for e in self.events]}")
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def event_tap(settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    bus = Bus(settings.amqp_url.get_secret_value(), service="tenant-tests")
    await bus.connect()

    @asynccontextmanager
    async def tap(*keys: str) -> AsyncIterator[EventTap]:
        collected = EventTap()
        channel = await bus.channel()
        await declare_exchanges(channel)
        queue = await channel.declare_queue(
            f"test.tap.{uuid.uuid4().hex[:10]}", exclusive=True, auto_delete=True
        )
        for key in keys:
            await queue.bind(EVENTS_EXCHANGE, routing_key=key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            events, _ = decode_message(message.body, message.content_type)
            collected.events.extend(envelope for envelope, _ in events)

        tag = await queue.consume(on_message, no_ack=True)
        try:
            yield collected
        finally:
            await queue.cancel(tag)
            await channel.close()

    try:
        yield tap
    finally:
        await bus.close()
