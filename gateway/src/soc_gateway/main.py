"""The gateway application: the suite's one public entry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from soc_shared.app import RequestContextMiddleware, create_service_app, instrument_httpx
from soc_shared.security import RevocationFeed, ServiceTokenProvider, TokenVerifier
from soc_shared.settings import internal_tls
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Scope

from soc_gateway.config import Settings
from soc_gateway.console import ConsoleApp
from soc_gateway.docs import STATIC_URL, docs_router, static_files
from soc_gateway.health import readiness_router
from soc_gateway.identity import Authenticator
from soc_gateway.middleware import AccessLogMiddleware, DispatchMiddleware, SecurityHeadersMiddleware
from soc_gateway.openapi import OpenApiAggregator
from soc_gateway.proxy import Gateway, Upstreams
from soc_gateway.routing import RouteTable
from soc_gateway.websocket import WebSocketRelay

VERSION = "1.0.0"
# Paths the gateway answers itself; everything else is looked up in the routing table.
OWN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/swagger.json", "/swagger.yaml", "/openapi.json", "/docs", "/redoc"}
)


def is_own_path(path: str) -> bool:
    return path.rstrip("/") in OWN_PATHS or path.startswith(STATIC_URL + "/")


# JWKS and health checks; OpenAPI documents pass their own (longer) timeout.
CONTROL_TIMEOUT = 5.0


def create_app(
    settings: Settings | None = None,
    *,
    transport_overrides: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The gateway. ``transport_overrides`` (service name -> httpx transport) lets tests watch or
    replace what goes to one upstream."""
    settings = settings or Settings()
    table = RouteTable.load(settings.routes_file, default_timeout=settings.default_timeout)
    upstreams = Upstreams(settings, transport_overrides)
    # Control-plane HTTP (JWKS, OpenAPI documents, health checks) has its own small client, so that
    # it never queues behind proxied traffic in the shared pool.
    control_http = httpx.AsyncClient(trust_env=False, timeout=CONTROL_TIMEOUT, verify=internal_tls())
    verifier = TokenVerifier(settings.jwks_url, settings.jwt_issuer, settings.jwt_audience, http=control_http)
    authenticator = Authenticator(verifier, settings.token_cache_size)
    gateway = Gateway(settings, table, authenticator, upstreams)
    gateway.websocket_relay = WebSocketRelay(gateway)
    aggregator = OpenApiAggregator(
        table,
        settings.upstream_urls,
        control_http,
        fetch_timeout=settings.openapi_fetch_timeout,
        min_refresh_interval=settings.openapi_min_refresh_interval,
        version=VERSION,
    )

    service_tokens = ServiceTokenProvider(
        settings.service_token_url,
        "gateway",
        settings.service_client_secret.get_secret_value(),
        http=control_http,
    )
    feed = RevocationFeed(
        verifier.revocations,
        settings.revocations_url,
        service_tokens.token,
        http=control_http,
        interval=settings.revocation_poll_seconds or 1.0,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        refresher = asyncio.create_task(
            aggregator.run(settings.openapi_refresh_seconds), name="openapi-refresh"
        )
        if settings.revocation_poll_seconds > 0:
            feed.start()
        try:
            yield
        finally:
            await feed.stop()
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await upstreams.aclose()
            await control_http.aclose()

    app = create_service_app(
        settings,
        title="SOC Portal gateway",
        description="The public entry of the SOC Portal: routing, tokens, rate limits, merged API docs.",
        routers=[
            readiness_router(
                control_http,
                settings.upstream_urls,
                settings.readiness_timeout,
                extra={"openapi": lambda: {s.service: s.status for s in aggregator.upstreams.values()}},
            ),
            docs_router(aggregator),
        ],
        lifespan=lifespan,
        version=VERSION,
    )
    # The gateway's own /openapi.json is the merged document (served by docs_router), not FastAPI's.
    app.router.routes[:] = [r for r in app.router.routes if not _is_fastapi_openapi_route(r)]
    app.router.routes.append(Mount(STATIC_URL, app=static_files(), name="docs-static"))
    app.router.redirect_slashes = True  # /docs -> /docs/ for the gateway's own pages only
    app.router.default = gateway  # safety net: the dispatch middleware sends proxied paths directly

    console = ConsoleApp(gateway, table, settings.console_dir)
    _arrange_middleware(app, settings, console)
    instrument_httpx()  # client spans for the control-plane clients (JWKS, OpenAPI, health)

    app.state.gateway = gateway
    app.state.console = console
    app.state.openapi = aggregator
    app.state.route_table = table
    app.state.token_verifier = verifier
    return app


def _server_span_details(scope: Scope) -> tuple[str, dict[str, str]]:
    # Proxied requests get their routing-table entry as the name once admitted (Gateway.admit);
    # until then the method alone keeps span names low-cardinality.
    method = scope.get("method", "WS")
    path = scope.get("path", "")
    return (f"{method} {path}" if is_own_path(path) else method), {}


def _tracing_middleware() -> list[Middleware]:
    """The server span, from the generic ASGI instrumentation, in the gateway's own middleware stack.

    create_service_app instruments with FastAPIInstrumentor; the gateway swaps that for the same
    OpenTelemetryMiddleware configured for a proxy: no child span per ``send``/``receive`` (a 50 MB
    download is hundreds of messages) and no route look-up per request (the routing table names
    the span). FastAPI's native telemetry sees this middleware in the stack and stays out of the way.
    """
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:  # pragma: no cover - tracing is optional, as in soc_shared.app
        return []
    return [
        Middleware(
            OpenTelemetryMiddleware,
            excluded_urls="healthz,readyz,metrics",
            default_span_details=_server_span_details,
            exclude_spans=["receive", "send"],
        )
    ]


def _is_fastapi_openapi_route(route: object) -> bool:
    endpoint = getattr(route, "endpoint", None)
    return getattr(route, "path", None) == "/openapi.json" and getattr(endpoint, "__module__", "") in (
        "fastapi.applications",
        "soc_shared.app",
    )


def _arrange_middleware(app: FastAPI, settings: Settings, gateway: ASGIApp) -> None:
    """Tracing -> SecurityHeaders -> RequestContext -> AccessLog -> CORS -> Dispatch (outermost first)."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.uninstrument_app(app)
        app.middleware_stack = None  # uninstrument_app built one; build ours on the first call
    request_context = [m for m in app.user_middleware if m.cls is RequestContextMiddleware]
    others = [m for m in app.user_middleware if m.cls is not RequestContextMiddleware]
    stack = [
        *_tracing_middleware(),
        Middleware(
            SecurityHeadersMiddleware,
            hsts_max_age=settings.hsts_max_age,
            hsts_include_subdomains=settings.hsts_include_subdomains,
        ),
        *request_context,
        Middleware(AccessLogMiddleware),
    ]
    if settings.cors_origins:
        wildcard = "*" in settings.cors_origins
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_credentials=settings.cors_allow_credentials and not wildcard,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
                allow_headers=["Authorization", "Content-Type", "Accept", "Accept-Language", "X-Request-ID"],
                expose_headers=["X-Request-ID", "Retry-After", "Content-Disposition"],
                max_age=settings.cors_max_age,
            )
        )
    stack.append(
        Middleware(
            DispatchMiddleware,
            proxy=gateway,
            is_own_path=is_own_path,
            internal_paths=frozenset({"/metrics", "/readyz"}),
            internal_networks=settings.ops_networks,
        )
    )
    app.user_middleware[:] = [*stack, *others]
