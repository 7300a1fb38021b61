"""Login, refresh, logout and password change: the multi-step processes of signing in.

Each step that must survive a refusal (a failed attempt is recorded and counted even though the
caller gets an error) runs in its own short transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from soc_shared.errors import ApiError
from soc_shared.security import InvalidToken
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from soc_auth.audit import service as audit
from soc_auth.audit import trail
from soc_auth.audit.service import AttemptContext
from soc_auth.company import service as companies
from soc_auth.database import utcnow
from soc_auth.ldap.client import DirectoryUnavailable
from soc_auth.ldap.models import DirectoryUser
from soc_auth.login.models import LoginRequest, LoginResponse
from soc_auth.mfa import service as mfa
from soc_auth.mfa.models import MfaChallengeResponse
from soc_auth.outbox.service import transaction
from soc_auth.password import policy
from soc_auth.role.models import AdminRole, RoleName, TenantRole
from soc_auth.token import service as tokens
from soc_auth.token.models import TokenPair
from soc_auth.user import service as users
from soc_auth.user.models import AuthSource
from soc_auth.user.models import users as users_table
from soc_auth.user.service import UserRecord

INVALID_CREDENTIALS = "invalid username or password"


def _invalid() -> ApiError:
    return ApiError(401, "invalid_credentials", INVALID_CREDENTIALS)


def directory_unavailable() -> ApiError:
    return ApiError(
        503,
        "directory_unavailable",
        "the directory (LDAP) servers cannot be reached right now, so directory accounts cannot "
        "sign in; please try again in a few minutes",
        {"retry_after": 30},
    )


_CHANGE_IT = (
    "change it where you change your organisation's password (for example when signing in to "
    "Windows, or on your organisation's password portal), then sign in here again"
)
# Active Directory's account states (they are only reported for the right password).
DIRECTORY_REFUSALS: dict[str, tuple[int, str, str]] = {
    "account_disabled": (
        403,
        "account_disabled",
        "your directory account is disabled; ask your administrator",
    ),
    "account_expired": (403, "account_expired", "your directory account has expired; ask your administrator"),
    "account_locked": (
        423,
        "directory_account_locked",
        "your directory account is locked after too many failed sign-ins; wait for it to unlock or "
        "ask your helpdesk to unlock it",
    ),
    "password_expired": (403, "password_expired", "your directory password has expired: " + _CHANGE_IT),
    "password_must_change": (
        403,
        "password_change_required",
        "your directory requires you to set a new password before you sign in: " + _CHANGE_IT,
    ),
    "logon_hours_restricted": (
        403,
        "logon_hours_restricted",
        "your directory account may not sign in at this time of day",
    ),
    "workstation_restricted": (
        403,
        "logon_workstation_restricted",
        "your directory account may only sign in from specific computers",
    ),
}


@dataclass
class _Attempt:
    name: str
    ctx: AttemptContext
    account_key: str
    method: str = "local"
    user_id: uuid.UUID | None = None

    @property
    def keys(self) -> list[str]:
        return [self.account_key] + ([f"ip:{self.ctx.client_ip}"] if self.ctx.client_ip else [])


async def _refuse(state: Any, attempt: _Attempt, error: ApiError, reason: str, *, count: bool) -> ApiError:
    """Record (and, for a wrong password, count) a failed attempt; return the error to raise."""
    async with transaction(state) as session:
        if count:
            await state.throttle.failure(session, attempt.keys, utcnow())
        await audit.record(
            session,
            username=attempt.name,
            user_id=attempt.user_id,
            ctx=attempt.ctx,
            succeeded=False,
            method=attempt.method,
            reason=reason,
            at=utcnow(),
        )
    return error


async def login(
    state: Any, body: LoginRequest, ctx: AttemptContext, *, admin_only: bool = False
) -> LoginResponse | MfaChallengeResponse:
    settings = state.settings
    name = body.username.strip()
    async with state.db.session() as session:
        # DOMAIN\\user names the same account as user (the directory checks the domain).
        local = await users.get_by_login(
            session, name.rpartition("\\")[2], upn_domain=settings.ldap_upn_domain
        )
        if local is not None and "\\" in name and local.auth_source != AuthSource.LDAP:
            local = None  # a domain-qualified name is a directory account's
        attempt = _Attempt(name, ctx, f"user:{local.id}" if local else f"name:{name.lower()}")
        if local is not None:
            attempt.user_id = local.id
            attempt.method = "local" if local.auth_source == AuthSource.LOCAL else "ldap"
        elif state.directory.enabled:
            attempt.method = "ldap"
        refusal = await state.throttle.check(session, attempt.keys, utcnow())
    if refusal is not None:
        raise await _refuse(state, attempt, refusal, refusal.code, count=False)

    # Administrators have a directory of their own when one is configured (ad_flag=ADMIN).
    use_admin_directory = settings.has_admin_directory and (
        admin_only or (local is not None and local.is_admin and local.auth_source == AuthSource.LDAP)
    )
    directory = state.admin_directory if use_admin_directory else state.directory
    person: DirectoryUser | None = None
    if attempt.method == "local":
        assert local is not None or not state.directory.enabled
        if local is None:
            await state.passwords.burn(body.password)
            raise await _refuse(state, attempt, _invalid(), "unknown_user", count=True)
        if not await state.passwords.verify(local.password_hash, body.password):
            raise await _refuse(state, attempt, _invalid(), "invalid_password", count=True)
        if not local.can_log_in:
            # Right password, but the account may not sign in: same answer as a wrong one.
            raise await _refuse(
                state, attempt, _invalid(), "deleted" if local.is_deleted else "disabled", count=False
            )
        record = local
    else:
        if local is not None and not local.can_log_in and not local.disabled_by_company:
            await state.passwords.burn(body.password)
            raise await _refuse(
                state, attempt, _invalid(), "deleted" if local.is_deleted else "disabled", count=True
            )
        try:
            outcome = await asyncio.to_thread(directory.authenticate, name, body.password)
        except DirectoryUnavailable:
            raise await _refuse(
                state, attempt, directory_unavailable(), "directory_unavailable", count=False
            ) from None
        if not outcome.ok:
            refusal = DIRECTORY_REFUSALS.get(outcome.reason or "")
            if refusal is not None:
                # The directory knows the password is right but will not let the account in:
                # its own state, not a guess, so it does not count toward the portal's lockout.
                status, code, message = refusal
                raise await _refuse(
                    state, attempt, ApiError(status, code, message), str(outcome.reason), count=False
                )
            # Equalise the time of a wrong directory password with a local account's check.
            await state.passwords.burn(body.password)
            reason = outcome.reason or "invalid_password"
            if reason == "invalid_password" and local is None and outcome.person is None:
                reason = "unknown_user"
            raise await _refuse(state, attempt, _invalid(), reason, count=True)
        person = outcome.person
        assert person is not None
        try:
            async with transaction(state) as session:
                record = await sync_directory_user(state, session, person, directory)
        except ApiError as error:
            raise await _refuse(state, attempt, error, error.code, count=False) from None
        attempt.user_id = record.id
        if not record.can_log_in:
            raise await _refuse(
                state, attempt, _invalid(), "deleted" if record.is_deleted else "disabled", count=False
            )

    if admin_only and not record.is_admin:
        raise await _refuse(
            state,
            attempt,
            ApiError(403, "admin_required", "this sign-in is for administrators only"),
            "not_admin",
            count=False,
        )

    if record.auth_source == AuthSource.LOCAL and state.passwords.needs_rehash(record.password_hash):
        # The Argon2 parameters changed since this hash was made: store one with the current ones.
        new_hash = await state.passwords.hash(body.password)
        async with transaction(state) as session:
            await session.execute(
                update(users_table).where(users_table.c.id == record.id).values(password_hash=new_hash)
            )

    async with transaction(state) as session:
        purpose = await mfa.requirement(session, settings, record)
        if purpose is not None:
            # The password was right; the tokens wait for the second factor. The account's failure
            # counter is not cleared here: codes count toward the same lockout.
            challenge = await mfa.create_challenge(
                session,
                settings,
                record,
                purpose=purpose,
                method=attempt.method,
                endpoint=ctx.endpoint,
                username=name,
            )
            await audit.record(
                session,
                username=name,
                user_id=record.id,
                ctx=ctx,
                succeeded=True,
                method=attempt.method,
                reason="mfa_required",
                at=utcnow(),
            )
    if purpose is not None:
        return MfaChallengeResponse(
            challenge=challenge,
            purpose=purpose,
            expires_in=settings.mfa_challenge_ttl_seconds,
            methods=["totp"] if purpose == "enrol" else ["totp", "recovery_code"],
        )
    async with transaction(state) as session:
        return await complete_login(
            session, state, record, ctx, username=name, method=attempt.method, account_key=attempt.account_key
        )


async def complete_login(
    session: Any,
    state: Any,
    record: UserRecord,
    ctx: AttemptContext,
    *,
    username: str,
    method: str,
    account_key: str | None = None,
    reason: str | None = None,
) -> LoginResponse:
    """The last step of every sign-in: tokens, last login, counters cleared, audited."""
    now = utcnow()
    await session.execute(update(users_table).where(users_table.c.id == record.id).values(last_login_at=now))
    if account_key is not None and account_key != f"user:{record.id}":
        await state.throttle.success(session, account_key)
    await state.throttle.success(session, f"user:{record.id}")
    pair = await tokens.issue_pair(
        session,
        state.keys,
        state.settings,
        record.claims(),
        client_ip=ctx.client_ip,
        user_agent=ctx.user_agent,
    )
    await audit.record(
        session,
        username=username,
        user_id=record.id,
        ctx=ctx,
        succeeded=True,
        method=method,
        reason=reason,
        at=now,
    )
    return LoginResponse(**pair.model_dump(), user=record.read())


def directory_admin_role(directory: Any, person: DirectoryUser) -> str | None:
    """The administrator role the directory's groups give (the strongest), or None."""
    settings = directory.settings
    if directory.is_member(person, settings.ldap_super_admin_group):
        return RoleName.SUPER_ADMIN
    if directory.is_member(person, settings.ldap_admin_group):
        return AdminRole.ADMIN
    if directory.is_member(person, settings.ldap_read_only_admin_group):
        return AdminRole.READ_ONLY_ADMIN
    return None


async def sync_directory_user(
    state: Any, session: Any, person: DirectoryUser, directory: Any = None
) -> UserRecord:
    """Create or refresh the account of a directory user who just proved their password.

    Members of the admin groups are administrators; everyone else needs a group mapped to an
    active company (learnt from ``tenant.company.changed``), which decides their company, tenant
    role and permissions."""
    directory = directory or state.directory
    admin_directory = state.settings.has_admin_directory and directory is state.admin_directory
    # With an administrators' directory, the customer directory makes tenant users only, and the
    # administrators' directory administrators only.
    admin_role = (
        directory_admin_role(directory, person)
        if admin_directory or not state.settings.has_admin_directory
        else None
    )
    if admin_directory and admin_role is None:
        raise ApiError(
            403,
            "admin_required",
            "your account in the administrators' directory is not in an administrators' group "
            "(SUPER_ADMIN, ADMIN or READ_ONLY)",
        )
    return await sync_external_user(session, person, admin_role=admin_role, source=AuthSource.LDAP)


async def sync_external_user(
    session: Any, person: DirectoryUser, *, admin_role: str | None, source: str
) -> UserRecord:
    """Create or refresh the account of someone a directory or an identity provider vouches for:
    ``admin_role`` makes an administrator, otherwise their groups' company mapping decides."""
    existing = await users.get_by_username(session, person.username)
    if existing is not None and (
        existing.auth_source != source or (source == AuthSource.OIDC and existing.directory_dn != person.dn)
    ):
        raise ApiError(
            409,
            "account_conflict",
            "another account already uses this user name; ask an administrator to resolve it",
        )
    now = utcnow()
    values: dict[str, Any] = {
        "email": person.email,
        "full_name": person.full_name[:255],
        "directory_dn": person.dn,
        "directory_groups": person.member_of,
        "directory_synced_at": now,
    }
    if admin_role is not None:
        if (
            admin_role == AdminRole.ADMIN
            and existing is not None
            and existing.is_admin
            and existing.role == RoleName.SUPER_ADMIN
        ):
            role_name = existing.role  # a super admin promoted by hand stays one
        else:
            role_name = admin_role
        values.update(
            is_admin=True,
            is_tenant=False,
            is_read_only=role_name == AdminRole.READ_ONLY_ADMIN,
            company_id=None,
            permissions=[],
        )
    else:
        mappings = await companies.mappings_for_groups(session, person.member_of)
        if not mappings:
            raise ApiError(
                403,
                "no_company_mapping",
                "your directory account is not in any group mapped to a company in the SOC Portal; "
                "ask your administrator to map your directory group to your company",
            )
        active = [m for m in mappings if m.company_active]
        if not active:
            raise ApiError(
                403, "company_inactive", "your company's access to the SOC Portal is currently disabled"
            )
        if len({m.company_id for m in active}) > 1:
            raise ApiError(
                403,
                "ambiguous_company_mapping",
                "your directory groups are mapped to more than one company; ask your administrator to fix "
                "the group mappings",
            )
        role_name = (
            TenantRole.TENANT_ADMIN
            if any(m.tenant_role == TenantRole.TENANT_ADMIN for m in active)
            else TenantRole.TENANT_USER
        )
        chosen = [m for m in active if m.tenant_role == role_name]
        permissions = users.valid_permissions([p for m in chosen for p in m.permissions])
        if not permissions:
            permissions = await users.default_permissions(session, role_name)
        values.update(
            is_admin=False,
            is_tenant=True,
            is_read_only=False,
            company_id=active[0].company_id,
            permissions=permissions,
        )
    if existing is None:
        created = await users.insert_user(
            session, {**values, "username": person.username, "auth_source": str(source)}, role_name
        )
        await trail.record(
            session,
            None,
            trail.DIRECTORY,
            "user.provisioned",
            "user",
            created.id,
            company_id=created.company_id,
            after=trail.user_view(created),
        )
        return created
    if existing.disabled_by_company and not existing.is_deleted:
        # Its company was inactivated; the directory now places it in an active one.
        values.update(is_active=True, disabled_by_company=False)
    changed = {k: v for k, v in values.items() if k != "directory_synced_at" and getattr(existing, k) != v}
    new_role = role_name if role_name != existing.role else None
    if not changed and new_role is None:
        await session.execute(
            update(users_table).where(users_table.c.id == existing.id).values(directory_synced_at=now)
        )
        return existing
    updated = await users.update_user(session, existing.id, values, role_name=new_role)
    await trail.record(
        session,
        None,
        trail.DIRECTORY,
        "user.synced_from_directory",
        "user",
        updated.id,
        company_id=updated.company_id,
        before=trail.user_view(existing),
        after=trail.user_view(updated),
    )
    return updated


async def _recheck_directory(state: Any, user_id: str) -> tuple[Any, str | None]:
    """Look a directory user up again when the last look-up is older than the re-check interval.

    Returns ``(person, None)`` for a fresh look-up, ``(None, None)`` when no look-up was due (or
    the directory is down but the last look-up is within the grace period), ``(None, reason)``
    when the directory no longer lets this account in."""
    settings = state.settings
    async with state.db.session() as session:
        record = await users.get(session, uuid.UUID(user_id))
    if record is not None and record.auth_source == AuthSource.OIDC and record.directory_dn:
        from soc_auth.oidc.recheck import recheck_oidc_user

        return await recheck_oidc_user(state, record)
    if record is None or record.auth_source != AuthSource.LDAP or not record.directory_dn:
        return None, None
    directory = state.admin_directory if record.is_admin and settings.has_admin_directory else state.directory
    if not directory.enabled:
        return None, None
    synced = record.directory_synced_at
    age = (utcnow() - synced).total_seconds() if synced else float("inf")
    if age < settings.ldap_recheck_seconds:
        return None, None
    try:
        person = await asyncio.to_thread(directory.lookup, record.directory_dn)
    except DirectoryUnavailable:
        if age < settings.ldap_recheck_grace_seconds:
            return None, None
        raise directory_unavailable() from None
    if person is None:
        return None, "directory_account_gone"
    if not person.enabled:
        return None, "directory_account_disabled"

    async def apply(session: Any) -> UserRecord:
        return await sync_directory_user(state, session, person, directory)

    return apply, None


async def refresh(state: Any, refresh_token: str, ctx: AttemptContext) -> TokenPair:
    try:
        principal = await tokens.verify(state, refresh_token, expected_type="refresh")
    except InvalidToken:
        raise ApiError(401, "invalid_token", "invalid or expired refresh token") from None
    # Directory and identity-provider accounts: asked again (disabled, removed from the mapped group).
    apply, gone = await _recheck_directory(state, principal.sub)
    error: ApiError | None = None
    pair: TokenPair | None = None
    audit_reason: str | None = None
    async with transaction(state) as session:
        row = await tokens.lock_refresh_row(session, refresh_token)
        if row is None or str(row.user_id) != principal.sub:
            error = ApiError(401, "invalid_token", "invalid or expired refresh token")
        elif row.revoked_at is not None:
            error = ApiError(401, "token_revoked", "this session has ended; sign in again")
        elif row.spent_at is not None:
            # A spent token came back: it was copied. End the whole session for everyone holding it.
            revoked = await tokens.revoke_family(session, row.family_id, "reuse")
            logger.warning(
                "refresh token reuse for user {}: family {} revoked ({} tokens)",
                row.user_id,
                row.family_id,
                revoked,
            )
            error = ApiError(
                401,
                "token_reused",
                "this refresh token was already used; the session has been ended, sign in again",
            )
        else:
            record = await users.get(session, row.user_id)
            if record is not None and record.can_log_in and (gone or apply is not None):
                if gone:
                    audit_reason = gone
                    error = ApiError(
                        401,
                        "directory_access_revoked",
                        "the directory no longer lets this account in; sign in again",
                    )
                else:
                    try:
                        async with session.begin_nested():
                            record = await apply(session)
                    except ApiError as refused:
                        audit_reason = refused.code
                        error = ApiError(
                            401,
                            "directory_access_revoked",
                            "your directory groups no longer give access to the SOC Portal; sign in again",
                            {"reason": refused.code},
                        )
            if error is not None:
                await tokens.revoke_family(session, row.family_id, "directory_recheck")
                await audit.record(
                    session,
                    username=principal.username or principal.sub,
                    user_id=row.user_id,
                    ctx=ctx,
                    succeeded=False,
                    method="oidc" if record is not None and record.auth_source == AuthSource.OIDC else "ldap",
                    reason=audit_reason,
                    at=utcnow(),
                )
            elif record is None or not record.can_log_in:
                await tokens.revoke_family(session, row.family_id, "account_disabled")
                error = ApiError(401, "invalid_token", "invalid or expired refresh token")
            else:
                await tokens.mark_spent(session, refresh_token)
                pair = await tokens.issue_pair(
                    session,
                    state.keys,
                    state.settings,
                    record.claims(),
                    family_id=row.family_id,
                    client_ip=ctx.client_ip,
                    user_agent=ctx.user_agent,
                )
    if error is not None:
        raise error
    assert pair is not None
    return pair


async def logout(state: Any, refresh_token: str | None, *, principal: Any, all_sessions: bool) -> None:
    if all_sessions:
        if principal is None:
            raise ApiError(401, "not_authenticated", "ending every session needs the access token")
        async with transaction(state) as session:
            await tokens.revoke_user(session, uuid.UUID(principal.sub), "logout_all")
        return
    if not refresh_token:
        raise ApiError(
            422, "validation_error", "refresh_token is required (or all_sessions with an access token)"
        )
    try:
        claims = await tokens.verify(state, refresh_token, expected_type="refresh")
    except InvalidToken:
        raise ApiError(401, "invalid_token", "invalid or expired refresh token") from None
    if principal is not None and not principal.is_service and principal.sub != claims.sub:
        raise ApiError(403, "forbidden", "this refresh token belongs to another user")
    async with transaction(state) as session:
        row = await tokens.lock_refresh_row(session, refresh_token)
        if row is not None:
            await tokens.revoke_family(session, row.family_id, "logout")


async def change_password(
    state: Any,
    actor: Any,
    current: str,
    new: str,
    ctx: AttemptContext,
    *,
    on_changed: Callable[[AsyncSession], Awaitable[Any]] | None = None,
) -> None:
    """``on_changed`` runs in the change's transaction (the audit record)."""
    record: UserRecord = actor.user
    if record.auth_source != AuthSource.LOCAL:
        raise ApiError(
            409, "directory_account", "this account's password is managed in the directory; change it there"
        )
    account_key = f"user:{record.id}"
    async with state.db.session() as session:
        refusal = await state.throttle.check(session, [account_key], utcnow())
    if refusal is not None:
        raise refusal
    if not await state.passwords.verify(record.password_hash, current):
        async with transaction(state) as session:
            await state.throttle.failure(session, [account_key], utcnow())
        raise ApiError(403, "invalid_password", "the current password is not correct")
    policy.check(new, username=record.username, min_length=state.settings.password_min_length)
    if new == current:
        raise ApiError(
            422,
            "weak_password",
            "the new password must differ from the current one",
            {"problems": ["must differ from the current password"]},
        )
    new_hash = await state.passwords.hash(new)
    async with transaction(state) as session:
        await set_password_hash(session, record.id, new_hash)
        await state.throttle.success(session, account_key)
        if on_changed is not None:
            await on_changed(session)


async def set_password_hash(session: Any, user_id: uuid.UUID, password_hash: str) -> None:
    """Store a new password and end every session of the user."""
    now = utcnow()
    await session.execute(
        update(users_table)
        .where(users_table.c.id == user_id)
        .values(password_hash=password_hash, password_changed_at=now, updated_at=now)
    )
    await tokens.revoke_user(session, user_id, "password_changed")
