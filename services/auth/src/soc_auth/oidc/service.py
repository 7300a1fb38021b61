"""OpenID Connect relying party: discovery, JWKS, authorization code with PKCE, id_token checks.

Discovery documents and key sets are cached per provider; an id_token signed with a key id the
cached set lacks makes it fetch the set again (the provider rotated), at most once a minute.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from loguru import logger
from soc_shared.errors import ApiError

from soc_auth.config import OidcProvider

_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_METADATA_TTL = 3600.0
_JWKS_REFETCH = 60.0


class OidcError(Exception):
    """A refusal to audit: ``reason`` for the audit, ``error`` for the caller."""

    def __init__(self, reason: str, error: ApiError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def _bad_token(reason: str, message: str) -> OidcError:
    return OidcError(reason, ApiError(401, "invalid_id_token", message, {"reason": reason}))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class OidcClient:
    def __init__(self, provider: OidcProvider, timeout: float) -> None:
        self.provider = provider
        self.timeout = timeout
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_at = 0.0

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("identity provider {}: {} failed: {}", self.provider.name, url, type(exc).__name__)
            raise OidcError(
                "idp_unavailable",
                ApiError(
                    503,
                    "identity_provider_unavailable",
                    "the identity provider cannot be reached right now; try again in a few minutes",
                    {"retry_after": 30},
                ),
            ) from None

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._metadata_at > _METADATA_TTL:
            issuer = self.provider.issuer.rstrip("/")
            document = await self._get(f"{issuer}/.well-known/openid-configuration")
            if document.get("issuer") != self.provider.issuer:
                logger.error(
                    "identity provider {}: discovery names issuer {!r}, configured {!r}",
                    self.provider.name,
                    document.get("issuer"),
                    self.provider.issuer,
                )
                raise OidcError(
                    "issuer_mismatch",
                    ApiError(
                        503,
                        "identity_provider_misconfigured",
                        "the identity provider's issuer does not match",
                    ),
                )
            self._metadata, self._metadata_at = document, time.monotonic()
        return self._metadata

    async def _keys(self, *, refresh: bool = False) -> jwt.PyJWKSet:
        if self._jwks is None or (refresh and time.monotonic() - self._jwks_at > _JWKS_REFETCH):
            document = await self._get((await self.metadata())["jwks_uri"])
            self._jwks, self._jwks_at = jwt.PyJWKSet.from_dict(document), time.monotonic()
        return self._jwks

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str) -> str:
        meta = await self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.provider.client_id,
            "redirect_uri": self.provider.redirect_uri,
            "scope": " ".join(self.provider.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{meta['authorization_endpoint']}?{urlencode(query)}"

    async def exchange(self, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
                "client_id": self.provider.client_id,
            }
        )

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """A new id_token (and usually a rotated refresh token) for a signed-in user."""
        return await self._token_request(
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.provider.client_id,
            }
        )

    async def _token_request(self, data: dict[str, str]) -> dict[str, Any]:
        meta = await self.metadata()
        auth = None
        if self.provider.client_secret is not None:
            auth = (self.provider.client_id, self.provider.client_secret.get_secret_value())
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    meta["token_endpoint"], data=data, auth=auth or httpx.USE_CLIENT_DEFAULT
                )
        except httpx.HTTPError as exc:
            logger.warning(
                "identity provider {}: token request failed: {}", self.provider.name, type(exc).__name__
            )
            raise OidcError(
                "idp_unavailable",
                ApiError(
                    503, "identity_provider_unavailable", "the identity provider cannot be reached right now"
                ),
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or "id_token" not in body:
            error = str(body.get("error") or response.status_code)[:64]
            logger.info("identity provider {} refused the code: {}", self.provider.name, error)
            raise OidcError(
                "code_rejected",
                ApiError(
                    401,
                    "oidc_code_rejected",
                    "the identity provider did not accept the sign-in code; start again",
                    {"idp_error": error},
                ),
            )
        return body

    async def validate_id_token(
        self, token: str, nonce: str | None, *, now: float | None = None
    ) -> dict[str, Any]:
        """The id_token's claims once signature (provider's JWKS), iss, aud/azp, exp/iat and nonce hold."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _bad_token("malformed", "the identity provider's token is not a valid JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in _ALGORITHMS:
            raise _bad_token("algorithm", f"id_token algorithm {alg!r} is not accepted")
        key = await self._key(kid)
        if key is None:
            key = await self._key(kid, refresh=True)
        if key is None:
            raise _bad_token(
                "unknown_key", "the id_token is signed with a key the identity provider does not publish"
            )
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.provider.client_id,
                issuer=self.provider.issuer,
                leeway=30,
                options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_exp": now is None},
            )
        except jwt.ExpiredSignatureError:
            raise _bad_token("expired", "the id_token has expired; sign in again") from None
        except jwt.InvalidAudienceError:
            raise _bad_token("audience", "the id_token was issued for another client") from None
        except jwt.InvalidIssuerError:
            raise _bad_token("issuer", "the id_token was issued by another provider") from None
        except jwt.InvalidSignatureError:
            raise _bad_token("signature", "the id_token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise _bad_token("invalid", f"the id_token is not valid ({type(exc).__name__})") from None
        if now is not None and float(claims["exp"]) + 30 < now:
            raise _bad_token("expired", "the id_token has expired; sign in again")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.provider.client_id:
            raise _bad_token("audience", "the id_token was issued for another client")
        # A refreshed id_token answers no authentication request: it carries no nonce to check.
        if nonce is not None and not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcError(
                "nonce_mismatch",
                ApiError(
                    401, "nonce_mismatch", "the sign-in response does not belong to this sign-in; start again"
                ),
            )
        return claims

    async def _key(self, kid: Any, *, refresh: bool = False) -> jwt.PyJWK | None:
        keys = await self._keys(refresh=refresh)
        for key in keys.keys:
            if kid is None or key.key_id == kid:
                return key
        return None


def claim_list(claims: dict[str, Any], name: str) -> list[str]:
    value = claims.get(name)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
            value = parsed if isinstance(parsed, list) else [value]
        except ValueError:
            value = [value]
    if not isinstance(value, list):
        return []
    return [str(v) for v in value if isinstance(v, str | int) and str(v)]
