"""The FastAPI application factory every service uses.

It wires, once: logging, telemetry (server spans, httpx client spans), request ids, the error
shape, Prometheus ``/metrics``, ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from soc_shared.api import ERROR_RESPONSES
from soc_shared.context import request_id_var
from soc_shared.errors import error_response, install_error_handlers, is_nul_input
from soc_shared.logging import setup_logging
from soc_shared.settings import ServiceSettings
from soc_shared.telemetry import setup_telemetry

HTTP_REQUESTS = Counter(
    "soc_http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "soc_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

ReadinessCheck = Callable[[], Awaitable[None]]


class RequestContextMiddleware:
    """Takes or makes ``X-Request-ID``, returns it, and measures every request (pure ASGI: no body
    buffering, so streaming responses stay streaming)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = (
            incoming if incoming and len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Starlette's outermost error middleware would answer outside this one (no request
            # id, its own body): answer here in the project's shape unless a response began.
            if scope["type"] != "http" or response_started:
                raise
            if is_nul_input(exc):
                response = error_response(422, "invalid_input", "text values must not contain NUL characters")
            else:
                logger.opt(exception=exc).error(
                    "unhandled error on {} {}", scope.get("method"), scope.get("path")
                )
                response = error_response(
                    500, "internal_error", "an internal error occurred; it has been logged"
                )
            await response(scope, receive, send_wrapper)
        finally:
            if scope["type"] == "http":
                route = scope.get("route")
                route_name = getattr(route, "path", "unmatched")
                HTTP_REQUESTS.labels(self.service, scope["method"], route_name, str(status)).inc()
                HTTP_LATENCY.labels(self.service, scope["method"], route_name).observe(
                    time.perf_counter() - started
                )
            request_id_var.reset(token)


def ops_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        report: dict[str, Any] = {}
        ok = True
        for name, check in checks.items():
            try:
                await check()
                report[name] = "ok"
            except Exception as exc:  # a readiness probe reports, it never raises
                ok = False
                report[name] = f"unavailable: {type(exc).__name__}"
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": report}, status_code=200 if ok else 503
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def openapi_router(app: FastAPI) -> APIRouter:
    """``/openapi.json``, built once off the event loop: FastAPI builds the document on the first
    request, which takes seconds for a service with many response models and would stall every
    request the service is serving meanwhile."""
    router = APIRouter()
    lock = asyncio.Lock()

    @router.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        if app.openapi_schema is None:
            async with lock:
                if app.openapi_schema is None:
                    await asyncio.to_thread(app.openapi)
        return JSONResponse(app.openapi_schema)

    return router


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: dict[str, ReadinessCheck] | None = None,
    version: str = "1.0.0",
) -> FastAPI:
    setup_logging(settings.service_name, settings.log_level, settings.json_logs)
    setup_telemetry(settings.service_name, settings.otel_exporter, settings.otel_endpoint)

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("{} starting on {}:{}", settings.service_name, settings.host, settings.port)
        if lifespan is None:
            yield
        else:
            async with lifespan(app):
                yield
        logger.info("{} stopped", settings.service_name)

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    app.include_router(ops_router(readiness or {}))
    app.include_router(openapi_router(app))
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    except Exception as exc:  # instrumentation must never keep a service from starting
        logger.warning("OpenTelemetry FastAPI instrumentation unavailable: {}", exc)
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    return app


def instrument_httpx() -> None:
    """Client spans and ``traceparent`` injection for every httpx client in the process."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument()
