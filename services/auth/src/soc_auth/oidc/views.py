"""OpenID Connect sign-in, the third method beside local and directory accounts.

1. ``GET /auth/oidc/providers/`` — the configured identity providers.
2. ``POST /auth/oidc/{provider}/start/`` — ``{"authorization_url", "state", "expires_in"}``: send
   the browser to ``authorization_url`` (authorization code flow, PKCE S256, nonce).
3. The provider sends the browser back to the provider's ``redirect_uri`` with ``code`` and
   ``state``; ``POST /auth/oidc/{provider}/callback/ {"code", "state"}`` answers the tokens
   (LoginResponse). The account is created or refreshed from the id_token's claims; groups map
   to a company (like directory groups) or to an administrator role.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from soc_shared.errors import ApiError
from sqlalchemy import delete, insert, select, update

from soc_auth.audit import service as audit
from soc_auth.database import utcnow
from soc_auth.deps import AppState, attempt_context
from soc_auth.ldap.dn import group_key
from soc_auth.login.flows import complete_login, sync_external_user
from soc_auth.login.models import LoginResponse
from soc_auth.mfa.service import digest
from soc_auth.oidc.models import (
    IdentityProviderList,
    IdentityProviderRead,
    OidcCallback,
    OidcStart,
    oidc_login,
)
from soc_auth.oidc.recheck import person_from_claims, store_refresh_token
from soc_auth.oidc.service import OidcClient, OidcError, pkce_pair
from soc_auth.outbox.service import transaction
from soc_auth.role.models import AdminRole
from soc_auth.user.models import AuthSource

router = APIRouter(prefix="/auth/oidc", tags=["oidc"])

ProviderName = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`invalid_state`: unknown, used or expired state (start again)"},
    401: {"description": "`oidc_code_rejected`, `invalid_id_token` (details.reason), `nonce_mismatch`"},
    403: {
        "description": "`no_company_mapping`, `company_inactive`, `ambiguous_company_mapping`, `admin_required`"
    },
    404: {"description": "`unknown_identity_provider`"},
    409: {"description": "`account_conflict`: another account uses the user name"},
    503: {"description": "`identity_provider_unavailable`"},
}


def _client(state: Any, name: str) -> OidcClient:
    clients: dict[str, OidcClient] = state.oidc_clients
    client = clients.get(name)
    if client is None:
        raise ApiError(404, "unknown_identity_provider", f"no identity provider named {name!r} is configured")
    return client


@router.get("/providers/", response_model=IdentityProviderList)
async def providers(state: AppState) -> IdentityProviderList:
    """The identity providers a sign-in page offers (public)."""
    return IdentityProviderList(
        items=[
            IdentityProviderRead(name=p.name, display_name=p.display_name or p.name, issuer=p.issuer)
            for p in state.settings.oidc_providers
        ]
    )


@router.post("/{provider}/start/", response_model=OidcStart, responses=_ERRORS)
async def start(provider: ProviderName, state: AppState) -> OidcStart:
    """Begin a sign-in at the identity provider: state, nonce and a PKCE verifier are kept here."""
    client = _client(state, provider)
    login_state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    try:
        url = await client.authorization_url(state=login_state, nonce=nonce, code_challenge=challenge)
    except OidcError as refused:
        raise refused.error from None
    ttl = state.settings.oidc_login_ttl_seconds
    async with transaction(state) as session:
        now = utcnow()
        await session.execute(delete(oidc_login).where(oidc_login.c.expires_at < now - timedelta(hours=1)))
        await session.execute(
            insert(oidc_login).values(
                state_hash=digest(login_state),
                provider=provider,
                nonce=nonce,
                code_verifier=verifier,
                redirect_uri=client.provider.redirect_uri,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
            )
        )
    return OidcStart(authorization_url=url, state=login_state, expires_in=ttl)


def admin_role_of(client: OidcClient, groups: list[str]) -> str | None:
    keys = {group_key(g) for g in groups}
    p = client.provider
    for role, wanted in (
        (AdminRole.SUPER_ADMIN, p.super_admin_groups),
        (AdminRole.ADMIN, p.admin_groups),
        (AdminRole.READ_ONLY_ADMIN, p.read_only_admin_groups),
    ):
        if any(group_key(g) in keys for g in wanted):
            return role
    return None


@router.post("/{provider}/callback/", response_model=LoginResponse, responses=_ERRORS)
async def callback(
    provider: ProviderName, body: OidcCallback, request: Request, state: AppState
) -> LoginResponse:
    """Finish the sign-in: the code is exchanged (with the PKCE verifier), the id_token checked
    (signature against the provider's JWKS, issuer, audience, expiry, nonce), the account created
    or refreshed, and the portal's tokens answered."""
    ctx = attempt_context(request, "oidc")
    client = _client(state, provider)
    username = f"({provider})"

    async def refuse(reason: str, error: ApiError) -> ApiError:
        async with transaction(state) as session:
            if ctx.client_ip:
                await state.throttle.failure(session, [f"ip:{ctx.client_ip}"], utcnow())
            await audit.record(
                session,
                username=username,
                user_id=None,
                ctx=ctx,
                succeeded=False,
                method="oidc",
                reason=reason,
                at=utcnow(),
            )
        return error

    if ctx.client_ip:
        async with state.db.session() as session:
            refusal = await state.throttle.check(session, [f"ip:{ctx.client_ip}"], utcnow())
        if refusal is not None:
            raise refusal
    # The state is single-use: spent before anything else can fail.
    async with transaction(state) as session:
        row = (
            await session.execute(
                select(oidc_login).where(oidc_login.c.state_hash == digest(body.state)).with_for_update()
            )
        ).first()
        valid = (
            row is not None and row.used_at is None and row.expires_at > utcnow() and row.provider == provider
        )
        if row is not None and row.used_at is None:
            await session.execute(
                update(oidc_login).where(oidc_login.c.state_hash == row.state_hash).values(used_at=utcnow())
            )
    if not valid:
        raise await refuse(
            "invalid_state",
            ApiError(
                400, "invalid_state", "this sign-in response is unknown, already used or expired; start again"
            ),
        )
    assert row is not None
    if body.iss is not None and body.iss != client.provider.issuer:
        # RFC 9207: the response came from another provider than the one this sign-in started at.
        raise await refuse(
            "issuer_mismatch",
            ApiError(
                401,
                "invalid_id_token",
                "the sign-in response comes from another provider",
                {"reason": "issuer"},
            ),
        )
    try:
        answer = await client.exchange(body.code, row.code_verifier, row.redirect_uri)
        claims = await client.validate_id_token(str(answer["id_token"]), row.nonce)
    except OidcError as refused:
        raise await refuse(refused.reason, refused.error) from None

    person = person_from_claims(provider, client.provider, claims)
    username = person.username
    groups = person.member_of
    try:
        async with transaction(state) as session:
            record = await sync_external_user(
                session, person, admin_role=admin_role_of(client, groups), source=AuthSource.OIDC
            )
            if not record.can_log_in:
                raise ApiError(401, "account_disabled", "this account is disabled in the SOC Portal")
            # Kept to ask the provider again at portal refreshes (removed from a group, disabled).
            await store_refresh_token(session, state, record.id, provider, answer.get("refresh_token"))
            return await complete_login(session, state, record, ctx, username=username, method="oidc")
    except ApiError as error:
        raise await refuse(error.code, error) from None
