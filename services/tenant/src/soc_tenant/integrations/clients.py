"""Calls to other services' internal APIs, each with a short-lived service token.

- the auth service creates and changes users (``/auth/internal/...``);
- each ingestor tests credentials and syncs on demand (``/internal/test-connection``,
  ``/internal/sync-now``).

Both are pluggable: ``app.state.auth_transport`` and ``app.state.ingestor_transport`` (httpx
transports, e.g. ``httpx.MockTransport``) replace the network; ``app.state.service_tokens`` (anything
with ``async token()``) supplies the bearer token.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from soc_shared.errors import ApiError
from soc_shared.security import ServiceTokenError
from soc_shared.settings import internal_tls

from soc_tenant.control.options import options


class UpstreamUnavailable(Exception):
    """The other service could not be reached (or no service token could be had)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service
        self.reason = reason


class UpstreamRejected(Exception):
    """The other service answered with an error."""

    def __init__(self, service: str, status: int, body: Any) -> None:
        super().__init__(f"{service} answered HTTP {status}")
        self.service = service
        self.status = status
        self.body = body

    def error(self) -> dict[str, Any]:
        err = self.body.get("error") if isinstance(self.body, dict) else None
        return err if isinstance(err, dict) else {}


async def _service_token(app: FastAPI, service: str) -> str:
    provider = getattr(app.state, "service_tokens", None)
    if provider is None:
        raise UpstreamUnavailable(service, "no service token provider")
    try:
        return await provider.token()
    except ServiceTokenError as exc:
        raise UpstreamUnavailable(service, f"no service token: {exc}") from None
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(service, f"no service token: {type(exc).__name__}") from None


async def call_service(
    app: FastAPI,
    service: str,
    base_url: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout_seconds: float = 10.0,
) -> Any:
    """One JSON call with the service token; answers the decoded body of a 2xx response."""
    token = await _service_token(app, service)
    try:
        async with httpx.AsyncClient(
            # Internal hosts: never through HTTP(S)_PROXY (which would see the service token).
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout_seconds,
            trust_env=False,
            verify=internal_tls(),
        ) as http:
            response = await http.request(
                method, path, json=json, headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code == 401:
                # A rotated signing key: one more try with a fresh token.
                invalidate = getattr(app.state.service_tokens, "invalidate", None)
                if invalidate is not None:
                    invalidate()
                    token = await _service_token(app, service)
                    response = await http.request(
                        method, path, json=json, headers={"Authorization": f"Bearer {token}"}
                    )
    except httpx.TimeoutException:
        raise UpstreamUnavailable(service, "timed out") from None
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(service, type(exc).__name__) from None
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    if response.status_code >= 300:
        raise UpstreamRejected(service, response.status_code, body)
    return body


# --- auth -------------------------------------------------------------------------------------------
class AuthDirectory:
    """The auth service's internal user API (auth alone creates users and holds their passwords)."""

    service = "auth"

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        return await call_service(
            self.app,
            self.service,
            self.app.state.settings.auth_url,
            method,
            path,
            json=json,
            transport=getattr(self.app.state, "auth_transport", None),
            timeout_seconds=options(self.app).auth_timeout_seconds,
        )

    async def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body``: username, email, password?, company_id, tenant_role, permissions, auth_source
        ("local" or "ldap"). Answers the user (auth wraps it as ``{"created": ..., "user": {...}}``)."""
        answer = dict(await self._call("POST", "/auth/internal/users", body) or {})
        return dict(answer["user"]) if isinstance(answer.get("user"), dict) else answer

    async def update_user(self, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("PATCH", f"/auth/internal/users/{user_id}", changes) or {})

    async def disable_company_users(self, company_id: str) -> None:
        await self._call("POST", f"/auth/internal/companies/{company_id}/disable-users", {"disabled": True})

    async def enable_company_users(self, company_id: str) -> None:
        """Re-enable the users that the company's inactivation disabled (same endpoint, ``disabled: false``)."""
        await self._call("POST", f"/auth/internal/companies/{company_id}/disable-users", {"disabled": False})


def auth_directory(app: FastAPI) -> AuthDirectory:
    factory = getattr(app.state, "auth_directory_factory", None)
    return factory(app) if factory is not None else AuthDirectory(app)


def auth_error(exc: Exception) -> ApiError:
    """A failed call to auth, for the caller of our API."""
    if isinstance(exc, UpstreamUnavailable):
        return ApiError(
            502,
            "auth_unavailable",
            "the auth service cannot be reached; nothing was changed",
            {"service": "auth", "reason": exc.reason},
        )
    if isinstance(exc, UpstreamRejected):
        err = exc.error()
        if 400 <= exc.status < 500 and exc.status not in (401, 403):
            # Auth's own verdict on the user (taken name, weak password...) is for the caller.
            return ApiError(
                exc.status,
                str(err.get("code") or "auth_rejected"),
                str(err.get("message") or "the auth service refused the user"),
                {"service": "auth", **({"auth_details": err["details"]} if err.get("details") else {})},
            )
        return ApiError(
            502,
            "auth_error",
            f"the auth service answered HTTP {exc.status}",
            {"service": "auth", "status": exc.status},
        )
    raise exc


# --- ingestors --------------------------------------------------------------------------------------
INGESTOR_BY_SUBTYPE = {
    "IBM_QRADAR": ("siem-ingest", "siem_ingest_url"),
    "CORTEX_XSOAR": ("soar-ingest", "soar_ingest_url"),
    "MANAGEENGINE_SDP": ("itsm-ingest", "itsm_ingest_url"),
    "CYWARE": ("threatintel", "threatintel_url"),
}


async def call_ingestor(app: FastAPI, subtype: str, path: str, body: dict[str, Any]) -> Any:
    name, setting = INGESTOR_BY_SUBTYPE[subtype]
    return await call_service(
        app,
        name,
        getattr(app.state.settings, setting),
        "POST",
        path,
        json=body,
        transport=getattr(app.state, "ingestor_transport", None),
        timeout_seconds=options(app).ingestor_timeout_seconds,
    )


def ingestor_error(subtype: str, exc: Exception) -> ApiError:
    name = INGESTOR_BY_SUBTYPE[subtype][0]
    if isinstance(exc, UpstreamUnavailable):
        return ApiError(
            502,
            "ingestor_unavailable",
            f"the {name} service cannot be reached",
            {"category": "ingestor_unavailable", "ingestor": name, "reason": exc.reason},
        )
    if isinstance(exc, UpstreamRejected):
        return ApiError(
            502,
            "ingestor_error",
            f"the {name} service answered HTTP {exc.status}",
            {"category": "ingestor_error", "ingestor": name, "status": exc.status},
        )
    raise exc
