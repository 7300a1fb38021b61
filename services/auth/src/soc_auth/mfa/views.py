"""MFA routes: the second sign-in step, self-service enrolment, and an administrator's reset.

Sign-in with MFA (see the service README):
1. ``POST /auth/login/`` (or ``/auth/admin/login/``) with the password answers
   ``{"mfa_required": true, "challenge", "purpose", "expires_in", "methods"}`` instead of tokens.
2. ``purpose == "enrol"`` (the policy requires MFA, the account has none):
   ``POST /auth/mfa/challenge/enrol/ {"challenge"}`` answers the secret, provisioning URI, QR code
   and recovery codes.
3. ``POST /auth/mfa/verify/ {"challenge", "code"}`` answers the tokens (LoginResponse).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from soc_shared.errors import ApiError

from soc_auth.audit import service as audit
from soc_auth.audit import trail
from soc_auth.audit.service import AttemptContext
from soc_auth.database import utcnow
from soc_auth.deps import AppState, CurrentActor, UserManagerWriter, attempt_context
from soc_auth.login.flows import complete_login
from soc_auth.login.models import LoginResponse
from soc_auth.mfa import service as mfa
from soc_auth.mfa.models import (
    MfaChallengeRef,
    MfaCode,
    MfaEnrolment,
    MfaStatus,
    MfaVerifyRequest,
    mfa_challenge,
    mfa_factor,
)
from soc_auth.outbox.service import transaction
from soc_auth.user import service as users
from soc_auth.user.flows import get_visible

router = APIRouter(tags=["mfa"])

_INVALID_CHALLENGE = ApiError(
    401, "invalid_challenge", "the sign-in challenge is unknown, used or expired; sign in again"
)
_CODE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "`invalid_mfa_code` (wrong, replayed or expired code), `invalid_challenge`"},
    423: {"description": "`account_locked`: too many failed attempts (passwords and codes count together)"},
    429: {"description": "`too_many_attempts` (Retry-After)"},
}


def _code_error(reason: str, attempts_left: int | None = None) -> ApiError:
    details: dict[str, Any] = {"reason": reason}
    if attempts_left is not None:
        details["attempts_left"] = attempts_left
    return ApiError(
        401, "invalid_mfa_code", "the code is not valid (wrong, already used or expired)", details
    )


async def _audit(
    session: Any, ctx: AttemptContext, username: str, user_id: Any, ok: bool, reason: str | None
) -> None:
    await audit.record(
        session,
        username=username,
        user_id=user_id,
        ctx=ctx,
        succeeded=ok,
        method="mfa",
        reason=reason,
        at=utcnow(),
    )


@router.post("/auth/mfa/verify/", response_model=LoginResponse, responses=_CODE_ERRORS)
async def verify(body: MfaVerifyRequest, request: Request, state: AppState) -> LoginResponse:
    """The second sign-in step: the challenge and a TOTP code (or a recovery code) → the tokens.
    A wrong code spends one of the challenge's attempts and counts toward the account's lockout."""
    ctx = attempt_context(request, "mfa")
    error: ApiError | None = None
    async with transaction(state) as session:
        challenge = await mfa.lock_challenge(session, body.challenge)
        record = await users.get(session, challenge.user_id) if challenge is not None else None
        if challenge is None or record is None or not record.can_log_in:
            await _audit(session, ctx, "(unknown)", None, False, "invalid_challenge")
            error = _INVALID_CHALLENGE
        else:
            keys = [f"user:{record.id}"] + ([f"ip:{ctx.client_ip}"] if ctx.client_ip else [])
            refusal = await state.throttle.check(session, keys, utcnow())
            if refusal is not None:
                await _audit(session, ctx, challenge.username, record.id, False, refusal.code)
                error = refusal
            else:
                pending = challenge.purpose == "enrol"
                try:
                    kind = await mfa.check_code(session, state, record.id, body.code, pending=pending)
                except mfa.CodeRefused as refused:
                    attempts = challenge.attempts + 1
                    spent = attempts >= state.settings.mfa_challenge_max_attempts
                    await session.execute(
                        mfa_challenge.update()
                        .where(mfa_challenge.c.token_hash == challenge.token_hash)
                        .values(attempts=attempts, used_at=utcnow() if spent else None)
                    )
                    await state.throttle.failure(session, keys, utcnow())
                    await _audit(session, ctx, challenge.username, record.id, False, refused.reason)
                    error = _code_error(refused.reason, state.settings.mfa_challenge_max_attempts - attempts)
                else:
                    if pending:
                        await mfa.confirm(session, record.id)
                    await session.execute(
                        mfa_challenge.update()
                        .where(mfa_challenge.c.token_hash == challenge.token_hash)
                        .values(used_at=utcnow())
                    )
                    return await complete_login(
                        session, state, record, ctx, username=challenge.username, method="mfa", reason=kind
                    )
    assert error is not None
    raise error


@router.post("/auth/mfa/challenge/enrol/", response_model=MfaEnrolment, responses=_CODE_ERRORS)
async def enrol_at_sign_in(body: MfaChallengeRef, state: AppState, request: Request) -> MfaEnrolment:
    """For a challenge of purpose `enrol`: a new TOTP secret, its QR code and the recovery codes.
    Confirm it by verifying the first code with POST /auth/mfa/verify/."""
    async with transaction(state) as session:
        challenge = await mfa.lock_challenge(session, body.challenge)
        record = await users.get(session, challenge.user_id) if challenge is not None else None
        if challenge is None or record is None or challenge.purpose != "enrol":
            raise _INVALID_CHALLENGE
        enrolment = await mfa.start_enrolment(session, state, record)
        await trail.record(
            session,
            request,
            record,
            "mfa.enrolment_started",
            "user",
            record.id,
            company_id=record.company_id,
            after={"mfa": "pending", "at_sign_in": True},
        )
        return enrolment


@router.get("/auth/mfa/", response_model=MfaStatus)
async def my_mfa(actor: CurrentActor, state: AppState) -> MfaStatus:
    async with state.db.session() as session:
        return await mfa.status(session, state.settings, actor.user)


@router.post("/auth/mfa/enrol/", response_model=MfaEnrolment, status_code=201)
async def enrol(actor: CurrentActor, state: AppState, request: Request) -> MfaEnrolment:
    """Start (or restart) enrolment: shown once — the secret, provisioning URI, QR code and
    recovery codes. MFA is on once POST /auth/mfa/confirm/ accepts the first code."""
    async with transaction(state) as session:
        row = await mfa.factor(session, actor.user.id, for_update=True)
        if row is not None and row.confirmed_at is not None:
            raise ApiError(409, "mfa_already_enabled", "MFA is already on; turn it off first to enrol again")
        enrolment = await mfa.start_enrolment(session, state, actor.user)
        await _record(session, request, actor, "mfa.enrolment_started", {"mfa": "pending"})
        return enrolment


async def _record(session: Any, request: Request, actor: Any, action: str, after: dict[str, Any]) -> None:
    """A change to the caller's own MFA, in the audit trail (never a secret or a code)."""
    await trail.record(
        session, request, actor, action, "user", actor.user.id, company_id=actor.company_id, after=after
    )


async def _own_code(state: Any, actor: Any, request: Request, code: str, *, pending: bool) -> None:
    """Check the caller's code in its own transaction (a failure is counted and audited)."""
    ctx = attempt_context(request, "mfa")
    keys = [f"user:{actor.user.id}"]
    error: ApiError | None = None
    async with transaction(state) as session:
        refusal = await state.throttle.check(session, keys, utcnow())
        if refusal is not None:
            raise refusal
        try:
            await mfa.check_code(session, state, actor.user.id, code, pending=pending)
        except mfa.CodeRefused as refused:
            await state.throttle.failure(session, keys, utcnow())
            await _audit(session, ctx, actor.user.username, actor.user.id, False, refused.reason)
            if refused.reason in ("no_factor", "already_enabled"):
                error = ApiError(
                    409,
                    "mfa_not_pending" if pending else "mfa_not_enabled",
                    "there is no enrolment waiting for a code"
                    if pending
                    else "MFA is not on for this account",
                )
            else:
                error = _code_error(refused.reason)
    if error is not None:
        raise error


@router.post("/auth/mfa/confirm/", response_model=MfaStatus, responses=_CODE_ERRORS)
async def confirm(body: MfaCode, actor: CurrentActor, request: Request, state: AppState) -> MfaStatus:
    """Turn MFA on with the first code from the authenticator."""
    await _own_code(state, actor, request, body.code, pending=True)
    async with transaction(state) as session:
        await mfa.confirm(session, actor.user.id)
        await _audit(
            session, attempt_context(request, "mfa"), actor.user.username, actor.user.id, True, "enrolled"
        )
        await _record(session, request, actor, "mfa.enabled", {"mfa": "on"})
        return await mfa.status(session, state.settings, actor.user)


@router.post("/auth/mfa/disable/", response_model=MfaStatus, responses=_CODE_ERRORS)
async def disable(body: MfaCode, actor: CurrentActor, request: Request, state: AppState) -> MfaStatus:
    """Turn MFA off with a current code (not allowed where the policy requires MFA)."""
    if mfa.policy_requires(state.settings, actor.user):
        raise ApiError(409, "mfa_required_by_policy", "the MFA policy requires MFA for this account")
    await _own_code(state, actor, request, body.code, pending=False)
    async with transaction(state) as session:
        await mfa.remove(session, actor.user.id)
        await _audit(
            session, attempt_context(request, "mfa"), actor.user.username, actor.user.id, True, "disabled"
        )
        await _record(session, request, actor, "mfa.disabled", {"mfa": "off"})
        return await mfa.status(session, state.settings, actor.user)


@router.post("/auth/mfa/recovery-codes/", response_model=list[str], responses=_CODE_ERRORS)
async def new_recovery_codes(
    body: MfaCode, actor: CurrentActor, request: Request, state: AppState
) -> list[str]:
    """Replace the recovery codes (shown once) with a current code."""
    await _own_code(state, actor, request, body.code, pending=False)
    async with transaction(state) as session:
        codes = await mfa.replace_recovery_codes(session, state.settings, actor.user.id)
        await _record(
            session, request, actor, "mfa.recovery_codes_replaced", {"recovery_codes_count": len(codes)}
        )
        return codes


@router.delete("/admin/users/{user_id}/mfa/", status_code=204, response_class=Response, tags=["admin users"])
async def reset_user_mfa(
    user_id: uuid.UUID, actor: UserManagerWriter, request: Request, state: AppState
) -> Response:
    """An administrator turns a user's MFA off (lost authenticator): the user enrols again
    (at the next sign-in when the policy requires it). Audited."""
    async with transaction(state) as session:
        target = await get_visible(session, actor, user_id, for_update=True)
        if target.is_admin and not actor.is_super_admin:
            raise ApiError(403, "super_admin_required", "only a super administrator changes administrators")
        row = (await session.execute(mfa_factor.select().where(mfa_factor.c.user_id == target.id))).first()
        if row is None:
            raise ApiError(404, "not_found", "this user has no MFA factor")
        await mfa.remove(session, target.id)
        await _audit(
            session,
            attempt_context(request, "mfa_reset"),
            target.username,
            target.id,
            True,
            f"reset_by:{actor.user.username}"[:64],
        )
        await trail.record(
            session,
            request,
            actor,
            "user.mfa_reset",
            "user",
            target.id,
            company_id=target.company_id,
            before={"mfa": "on" if row.confirmed_at is not None else "pending"},
            after={"mfa": "off"},
        )
    return Response(status_code=204)
