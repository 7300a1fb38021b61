"""OIDC users at a portal refresh: the identity provider is asked again (its refresh token grant)
whether the user still signs in there and which groups they are in, bounded by the same short
interval as directory users."""

from __future__ import annotations

from typing import Any

from loguru import logger
from sqlalchemy import select, update

from soc_auth.database import utcnow
from soc_auth.ldap.models import DirectoryUser
from soc_auth.oidc.models import oidc_session
from soc_auth.oidc.service import OidcError, claim_list


def _aad(user_id: Any) -> str:
    return f"oidc:{user_id}"


async def store_refresh_token(
    session: Any, state: Any, user_id: Any, provider: str, token: str | None
) -> None:
    from sqlalchemy.dialects.postgresql import insert

    if not token:
        return
    sealed = state.keys.sealer.seal(token, _aad(user_id))
    statement = insert(oidc_session).values(
        user_id=user_id, provider=provider, refresh_token_sealed=sealed, updated_at=utcnow()
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[oidc_session.c.user_id],
            set_={"provider": provider, "refresh_token_sealed": sealed, "updated_at": utcnow()},
        )
    )


def person_from_claims(provider: str, p: Any, claims: dict[str, Any]) -> DirectoryUser:
    sub = str(claims["sub"])
    username = str(claims.get(p.username_claim) or claims.get(p.email_claim) or sub)[:150]
    return DirectoryUser(
        dn=f"oidc:{provider}:{sub}",
        username=username,
        email=str(claims[p.email_claim]) if claims.get(p.email_claim) else None,
        full_name=str(claims.get(p.name_claim) or username),
        member_of=claim_list(claims, p.groups_claim),
    )


async def recheck_oidc_user(state: Any, record: Any) -> tuple[Any, str | None]:
    """``(apply, None)`` with a fresh answer from the provider, ``(None, None)`` when nothing is
    due (or cannot be asked: no refresh token, provider unreachable within the grace period),
    ``(None, reason)`` when the provider no longer vouches for the user."""
    from soc_auth.login.flows import directory_unavailable, sync_external_user
    from soc_auth.oidc.views import admin_role_of
    from soc_auth.user.models import AuthSource

    settings = state.settings
    synced = record.directory_synced_at
    age = (utcnow() - synced).total_seconds() if synced else float("inf")
    if age < settings.ldap_recheck_seconds:
        return None, None
    _, provider, sub = str(record.directory_dn).split(":", 2)
    client = state.oidc_clients.get(provider)
    if client is None:
        return None, "identity_provider_removed"
    async with state.db.session() as session:
        row = (await session.execute(select(oidc_session).where(oidc_session.c.user_id == record.id))).first()
    if row is None:
        return None, None  # the provider gave no refresh token: nothing to ask it with
    token = state.keys.sealer.open(row.refresh_token_sealed, _aad(record.id)).decode()
    try:
        answer = await client.refresh(token)
        claims = await client.validate_id_token(str(answer["id_token"]), None)
    except OidcError as refused:
        if refused.reason == "idp_unavailable":
            if age < settings.ldap_recheck_grace_seconds:
                return None, None
            raise directory_unavailable() from None
        logger.info(
            "identity provider {} no longer vouches for user {}: {}", provider, record.id, refused.reason
        )
        return None, "identity_provider_refused"
    if str(claims["sub"]) != sub:
        return None, "identity_provider_refused"
    person = person_from_claims(provider, client.provider, claims)

    async def apply(session: Any) -> Any:
        await store_refresh_token(session, state, record.id, provider, answer.get("refresh_token"))
        await session.execute(
            update(oidc_session).where(oidc_session.c.user_id == record.id).values(updated_at=utcnow())
        )
        return await sync_external_user(
            session, person, admin_role=admin_role_of(client, person.member_of), source=AuthSource.OIDC
        )

    return apply, None
