"""Real processes on loopback: stand-ins for the auth and tenant services (echo apps that answer with
what they received) and gateways in front of them, each under uvicorn in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from soc_gateway.config import DEFAULT_ROUTES_FILE, Settings
from soc_gateway.main import create_app
from soc_shared.testing import TokenFactory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_url() -> str:
    """An address where nothing listens: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws="websockets-sansio",
        proxy_headers=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture(scope="session")
def serve_app() -> Callable[[Any], Any]:
    return serve


# --- the stand-in upstreams ------------------------------------------------------------------------


async def echo(service: str, request: Request) -> JSONResponse:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return JSONResponse(
        {
            "service": service,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": headers,
            "body_length": size,
        }
    )


class LoginIn(BaseModel):
    username: str
    password: str


class AuthPage(BaseModel):
    """A page of user names (deliberately unlike the tenant service's Page)."""

    items: list[str]
    total: int


class TenantPage(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


class Company(BaseModel):
    id: str
    name: str


@dataclass
class Upstream:
    url: str
    app: FastAPI
    state: dict[str, Any] = field(default_factory=dict)


def fake_auth(jwks: dict[str, Any]) -> FastAPI:
    app = FastAPI(title="auth")

    async def _echo(request: Request) -> JSONResponse:
        return await echo("auth", request)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/.well-known/jwks.json")
    async def jwks_document() -> dict[str, Any]:
        return jwks

    @app.post("/auth/login/")
    async def login(body: LoginIn, request: Request) -> JSONResponse:
        return await _echo(request)

    @app.post("/auth/admin/login/")
    async def admin_login(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.post("/auth/token/refresh/")
    async def refresh(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.get("/auth/me/")
    async def me(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.get("/admin/users/", response_model=AuthPage)
    async def list_users(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.put("/admin/users/{user_id}/")
    async def update_user(user_id: str, request: Request) -> JSONResponse:
        return await _echo(request)

    @app.post("/auth/internal/token")
    async def service_token(request: Request) -> JSONResponse:
        return await _echo(request)

    app.add_api_route(
        "/{path:path}",
        _echo,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        include_in_schema=False,
    )
    app.openapi_schema = _rename_page(app, "AuthPage")
    return app


def fake_tenant(state: dict[str, Any]) -> FastAPI:
    app = FastAPI(title="tenant")

    async def _echo(request: Request) -> JSONResponse:
        return await echo("tenant", request)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/tenant/")
    async def tenant_info(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.get("/tenant/dashboard/")
    async def dashboard(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.get("/tenant/soar-incidents/", response_model=TenantPage)
    async def soar_incidents(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.get("/integration/")
    async def integrations(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.get("/admin/companies/", response_model=list[Company])
    async def companies(request: Request) -> JSONResponse:
        return await _echo(request)

    @app.get("/internal/integrations/{integration_id}/credentials")
    async def credentials(integration_id: str) -> dict[str, str]:
        return {"secret": "never through the gateway"}

    @app.get("/tenant/slow/", include_in_schema=False)
    async def slow() -> dict[str, str]:
        await asyncio.sleep(2)
        return {"status": "late"}

    @app.get("/tenant/big/", include_in_schema=False)
    async def big(mb: int = 50) -> StreamingResponse:
        chunk = b"x" * 65536
        count = mb * 16
        state["big_finished_at"] = None

        async def generate() -> AsyncIterator[bytes]:
            for _ in range(count):
                yield chunk
            state["big_finished_at"] = time.monotonic()

        return StreamingResponse(
            generate(),
            media_type="application/octet-stream",
            headers={"Content-Length": str(count * len(chunk))},
        )

    @app.get("/tenant/hop/", include_in_schema=False)
    async def hop() -> Response:
        return Response(
            b"{}",
            media_type="application/json",
            headers={
                "Connection": "X-Upstream-Hop",
                "X-Upstream-Hop": "drop me",
                "Keep-Alive": "timeout=5",
                "Proxy-Authenticate": "Basic",
                "X-Upstream-Kept": "keep me",
            },
        )

    @app.get("/tenant/redirect/", include_in_schema=False)
    async def redirect(request: Request) -> Response:
        return Response(status_code=307, headers={"Location": f"{str(request.base_url).rstrip('/')}/tenant/"})

    @app.websocket("/ws/echo/")
    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(
            {
                "authorization": websocket.headers.get("authorization", "")[:7],
                "user_id": websocket.headers.get("x-soc-user-id"),
                "request_id": websocket.headers.get("x-request-id"),
            }
        )
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is not None and text.startswith("close:"):
                    await websocket.close(code=int(text.split(":", 1)[1]), reason="asked to")
                    return
                if text is not None:
                    await websocket.send_text(text)
                else:
                    await websocket.send_bytes(message.get("bytes") or b"")
        except WebSocketDisconnect:
            return

    app.add_api_route(
        "/{path:path}",
        _echo,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
        include_in_schema=False,
    )
    app.openapi_schema = _rename_page(app, "TenantPage")
    return app


def _rename_page(app: FastAPI, model: str) -> dict[str, Any]:
    """Both stand-ins call their page model `Page`, with different fields: a clash to merge."""
    import json

    text = json.dumps(app.openapi()).replace(f'#/components/schemas/{model}"', '#/components/schemas/Page"')
    document = json.loads(text)
    schemas = document["components"]["schemas"]
    schemas["Page"] = schemas.pop(model)
    schemas["Page"]["title"] = "Page"
    return document


@pytest.fixture(scope="session")
def auth_upstream(tokens: TokenFactory) -> Iterator[Upstream]:
    app = fake_auth(tokens.jwks)
    with serve(app) as url:
        yield Upstream(url, app)


@pytest.fixture(scope="session")
def tenant_upstream() -> Iterator[Upstream]:
    state: dict[str, Any] = {}
    app = fake_tenant(state)
    with serve(app) as url:
        yield Upstream(url, app, state)


# --- gateways ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def routes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped table plus one entry with a tiny timeout, for the slow-upstream test."""
    table = yaml.safe_load(DEFAULT_ROUTES_FILE.read_text())
    table["routes"].append({"prefix": "/tenant/slow/", "service": "tenant", "timeout": 0.3})
    path = tmp_path_factory.mktemp("gateway") / "routes.yaml"
    path.write_text(yaml.safe_dump(table))
    return path


def gateway_settings(auth_url: str, tenant_url: str, routes_file: Path, **overrides: Any) -> Settings:
    upstreams = {
        "auth": auth_url,
        "tenant": tenant_url,
        "siem-ingest": closed_url(),
        "soar-ingest": closed_url(),
        "itsm-ingest": closed_url(),
        "threatintel": closed_url(),
    }
    values: dict[str, Any] = {
        "upstreams": upstreams,
        "routes_file": routes_file,
        "environment": "test",
        "log_level": "WARNING",
        "rate_limit_user_per_second": 1000,
        "rate_limit_user_burst": 1000,
        "rate_limit_address_per_second": 1000,
        "rate_limit_address_burst": 1000,
        "rate_limit_login_per_minute": 6000,
        "rate_limit_login_burst": 1000,
        "openapi_min_refresh_interval": 0,
        "console_dir": None,  # the console has its own tests (test_console.py), with a build of its own
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class RunningGateway:
    url: str
    app: FastAPI

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, trust_env=False, **kw)


@pytest.fixture(scope="session")
def start_gateway(
    auth_upstream: Upstream, tenant_upstream: Upstream, routes_file: Path
) -> Iterator[Callable[..., RunningGateway]]:
    """Start a gateway (auth and tenant stand-ins, other upstreams closed) with settings overrides."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(
            *,
            transport_overrides: dict[str, httpx.AsyncBaseTransport] | None = None,
            auth_url: str | None = None,
            tenant_url: str | None = None,
            **overrides: Any,
        ) -> RunningGateway:
            settings = gateway_settings(
                auth_url or auth_upstream.url, tenant_url or tenant_upstream.url, routes_file, **overrides
            )
            app = create_app(settings, transport_overrides=transport_overrides)
            url = stack.enter_context(serve(app))
            return RunningGateway(url, app)

        yield start


@pytest.fixture(scope="session")
def gateway(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    return start_gateway()


@pytest.fixture(scope="session")
def strict_gateway(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    """Tiny body limit and rate limits. It trusts loopback as a proxy, so that every test gives its
    requests their own client address in X-Forwarded-For and buckets do not leak between tests."""
    return start_gateway(
        max_body_bytes=1024,
        rate_limit_user_per_second=0.01,
        rate_limit_user_burst=3,
        rate_limit_address_per_second=0.01,
        rate_limit_address_burst=5,
        rate_limit_login_per_minute=1,
        rate_limit_login_burst=2,
        trusted_proxies=["127.0.0.1/32"],
    )


@pytest.fixture
def client_address() -> str:
    """A fresh documentation-range address (RFC 5737) to stand for the caller behind the proxy."""
    n = uuid.uuid4().int
    return f"198.51.{n % 250}.{(n >> 8) % 250 + 1}"
