"""Readiness: every upstream's ``/healthz``, reported one by one.

Only the auth service decides readiness (503 when it is down). Without auth nobody can log in,
refresh a token or have a token signed with a new key verified, so this replica cannot serve its
purpose. Any other upstream being down affects only its own routes, which answer 502 by themselves;
taking every gateway replica out of the load balancer for it would turn a partial outage into a
total one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

REQUIRED = frozenset({"auth"})


async def _check(http: httpx.AsyncClient, base: str, limit_seconds: float) -> str:
    try:
        response = await http.get(f"{base}/healthz", timeout=limit_seconds)
    except httpx.TimeoutException:
        return "unavailable: timeout"
    except httpx.HTTPError as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok" if response.status_code == 200 else f"unavailable: HTTP {response.status_code}"


def readiness_router(
    http: httpx.AsyncClient,
    upstream_urls: dict[str, str],
    timeout: float,
    extra: dict[str, Any] | None = None,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        services = sorted(upstream_urls)
        results = await asyncio.gather(*(_check(http, upstream_urls[s], timeout) for s in services))
        checks = dict(zip(services, results, strict=True))
        ready = all(checks.get(service) == "ok" for service in REQUIRED)
        body: dict[str, Any] = {
            "status": "ok" if ready else "unavailable",
            "checks": checks,
            "required": sorted(REQUIRED),
        }
        if extra:
            body.update({key: value() if callable(value) else value for key, value in extra.items()})
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
