"""OpenID Connect sign-in: pending authorisation requests and the API's bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, DateTime, ForeignKey, Index, LargeBinary, String, Table, Text, Uuid, func

from soc_auth.database import metadata

oidc_login = Table(
    "oidc_login",
    metadata,
    # sha256 of the state: the browser's round trip is matched to exactly one start, once.
    Column("state_hash", LargeBinary(32), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("nonce", String(128), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_oidc_login_expires_at", "expires_at"),
)


# The identity provider's refresh token of an OIDC user (sealed): at a portal refresh it asks the
# provider again whether the user still exists and which groups they are in.
oidc_session = Table(
    "oidc_session",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("refresh_token_sealed", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


class IdentityProviderRead(BaseModel):
    name: str
    display_name: str
    issuer: str


class IdentityProviderList(BaseModel):
    items: list[IdentityProviderRead]


class OidcStart(BaseModel):
    authorization_url: str = Field(description="send the browser here (authorization code + PKCE S256)")
    state: str = Field(description="comes back on the redirect; give it to the callback with the code")
    expires_in: int


class OidcCallback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=2048)
    state: str = Field(min_length=10, max_length=128)
    iss: str | None = Field(
        default=None,
        max_length=512,
        description="the redirect's iss parameter (RFC 9207), when the provider sends one",
    )
