"""Public keys, key rotation and service tokens."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from soc_shared.errors import ApiError

from soc_auth.audit import trail
from soc_auth.database import utcnow
from soc_auth.deps import AdminReader, AppState, SuperAdminWriter, client_address
from soc_auth.outbox.service import transaction
from soc_auth.token import service as tokens
from soc_auth.token.models import (
    Jwks,
    RotationResult,
    ServiceTokenRequest,
    ServiceTokenResponse,
    SigningKeyRead,
)

router = APIRouter(tags=["tokens"])


def _jwks(state: Any) -> JSONResponse:
    return JSONResponse(state.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})


@router.get(
    "/.well-known/jwks.json", response_model=Jwks, summary="JWKS: active and still-valid retired public keys"
)
async def well_known_jwks(state: AppState) -> JSONResponse:
    return _jwks(state)


@router.get("/auth/jwks/", response_model=Jwks, summary="JWKS (same document as /.well-known/jwks.json)")
async def jwks(state: AppState) -> JSONResponse:
    return _jwks(state)


@router.get("/admin/keys/", response_model=list[SigningKeyRead], tags=["admin"])
async def list_keys(actor: AdminReader, state: AppState) -> list[SigningKeyRead]:
    return state.keys.describe()


@router.post("/admin/keys/rotate/", response_model=RotationResult, tags=["admin"])
async def rotate_keys(actor: SuperAdminWriter, state: AppState, request: Request) -> RotationResult:
    """Make a new signing key active. Retired keys stay published, and keep verifying, until every
    token they signed has expired."""
    async with transaction(state) as session:
        retired = await state.keys.rotate(session)
        # The key ids only (public): the new key's id is in the JWKS once the transaction commits.
        await trail.record(
            session,
            request,
            actor,
            "signing_key.rotated",
            "signing_key",
            None,
            after={"retired": sorted(retired)},
        )
    await tokens.reload_keys(state)
    active = next(k for k in state.keys.describe() if k.active)
    return RotationResult(active=active, retired=retired)


@router.post("/auth/internal/token", response_model=ServiceTokenResponse, tags=["internal"])
async def service_token(body: ServiceTokenRequest, request: Request, state: AppState) -> ServiceTokenResponse:
    """Client credentials for the suite's services: a short-lived access token of kind `service`."""
    ip = client_address(request)
    if ip:
        async with state.db.session() as session:
            refusal = await state.throttle.check(session, [f"ip:{ip}"], utcnow())
        if refusal is not None:
            raise refusal
    expected = state.settings.secret_for_client(body.client_id)
    # Compare even for an unknown client, so that the answer takes the same time.
    matches = hmac.compare_digest(body.client_secret.encode(), (expected or "\x00" * 32).encode())
    if not matches or expected is None:
        if ip:
            async with transaction(state) as session:
                await state.throttle.failure(session, [f"ip:{ip}"], utcnow())
        raise ApiError(401, "invalid_client", "invalid client credentials")
    return ServiceTokenResponse(
        access_token=tokens.service_token(state.keys, state.settings, body.client_id),
        expires_in=state.settings.service_token_ttl_seconds,
    )
