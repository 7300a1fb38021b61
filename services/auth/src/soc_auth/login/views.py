"""Signing in and out, the caller's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.audit import trail
from soc_auth.deps import AppState, CurrentActor, OptionalPrincipal, attempt_context
from soc_auth.login import flows
from soc_auth.login.models import ChangePasswordRequest, LoginRequest, LoginResponse
from soc_auth.mfa.models import MfaChallengeResponse
from soc_auth.token.models import LogoutRequest, RefreshRequest, TokenPair
from soc_auth.user.models import UserRead

router = APIRouter(prefix="/auth", tags=["auth"])

_LOGIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "wrong user name or password (`invalid_credentials`) — the same answer for unknown users"
    },
    403: {
        "description": "`no_company_mapping`, `company_inactive`, `ambiguous_company_mapping`, `admin_required`; "
        "Active Directory's refusals: `account_disabled`, `account_expired`, `password_expired`, "
        "`password_change_required`, `logon_hours_restricted`, `logon_workstation_restricted`"
    },
    423: {
        "description": "`account_locked` after repeated failures (Retry-After); `directory_account_locked`"
    },
    429: {"description": "`too_many_attempts`: slow down (Retry-After)"},
    503: {"description": "`directory_unavailable`: no LDAP server answers"},
}


@router.post("/login/", response_model=LoginResponse | MfaChallengeResponse, responses=_LOGIN_ERRORS)
async def login(
    body: LoginRequest, request: Request, state: AppState
) -> LoginResponse | MfaChallengeResponse:
    """Sign in with a user name, an e-mail address, `user@domain` or `DOMAIN\\user`, and a password
    (local or directory). With MFA the answer is a challenge (`mfa_required: true`), not tokens:
    finish with POST /auth/mfa/verify/."""
    return await flows.login(state, body, attempt_context(request, "login"))


@router.post("/admin/login/", response_model=LoginResponse | MfaChallengeResponse, responses=_LOGIN_ERRORS)
async def admin_login(
    body: LoginRequest, request: Request, state: AppState
) -> LoginResponse | MfaChallengeResponse:
    """The administrators' sign-in: refuses every account that is not an administrator."""
    return await flows.login(state, body, attempt_context(request, "admin_login"), admin_only=True)


@router.post("/token/refresh/", response_model=TokenPair)
async def refresh(body: RefreshRequest, request: Request, state: AppState) -> TokenPair:
    """Trade a refresh token for a new pair. The old one is spent; presenting a spent one again
    ends its whole session (`token_reused`)."""
    return await flows.refresh(state, body.refresh_token, attempt_context(request, "refresh"))


@router.post("/logout/", status_code=204, response_class=Response)
async def logout(
    state: AppState, principal: OptionalPrincipal, body: LogoutRequest | None = None
) -> Response:
    """End the session of the given refresh token (or, with `all_sessions` and an access token, every session)."""
    body = body or LogoutRequest()
    await flows.logout(state, body.refresh_token, principal=principal, all_sessions=body.all_sessions)
    return Response(status_code=204)


@router.get("/me/", response_model=UserRead)
async def me(actor: CurrentActor) -> UserRead:
    return actor.user.read()


@router.post("/change-password/", status_code=204, response_class=Response)
async def change_password(
    body: ChangePasswordRequest, actor: CurrentActor, request: Request, state: AppState
) -> Response:
    """Change a local account's password; every refresh token of the account is revoked."""

    async def audited(session: AsyncSession) -> None:
        await trail.record(
            session,
            request,
            actor,
            "user.password_changed",
            "user",
            actor.user.id,
            company_id=actor.company_id,
            after={"password_changed": True, "by": "self"},
        )

    await flows.change_password(
        state,
        actor,
        body.current_password,
        body.new_password,
        attempt_context(request, "password"),
        on_changed=audited,
    )
    return Response(status_code=204)
