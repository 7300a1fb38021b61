"""Who is calling: the access token checked at the edge, and the identity headers sent upstream.

The gateway verifies with the shared :class:`TokenVerifier` (the auth service's JWKS, cached and
refreshed on an unknown ``kid``). The services verify the token again — the identity headers are a
convenience for logs and routing, never a substitute for that.
"""

from __future__ import annotations

import time

from soc_shared.security import InvalidToken, Principal, TokenVerifier

# Headers the gateway owns: whatever a client sends under these names is dropped before forwarding.
IDENTITY_PREFIX = b"x-soc-"
USER_ID = b"x-soc-user-id"
USER_KIND = b"x-soc-user-kind"
COMPANY_ID = b"x-soc-company-id"

# A verified token is remembered for at most this long, so that a JWKS key withdrawn by a rotation
# stops being honoured within a minute even for tokens that have not expired yet.
_CACHE_SECONDS = 60.0


def bearer_token(authorization: bytes | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return None
    credentials = credentials.strip()
    return credentials or None


def identity_headers(principal: Principal) -> list[tuple[bytes, bytes]]:
    headers = [(USER_ID, principal.sub.encode()), (USER_KIND, principal.kind.encode())]
    if principal.company_id:
        headers.append((COMPANY_ID, str(principal.company_id).encode()))
    return headers


class Authenticator:
    """Verifies access tokens; verified tokens are cached by their exact text until they expire
    (capped at a minute), which takes the signature check off the hot path of a busy client."""

    def __init__(self, verifier: TokenVerifier, cache_size: int = 10_000) -> None:
        self.verifier = verifier
        self.cache_size = cache_size
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        """The principal of a valid access token; raises :class:`InvalidToken` otherwise."""
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            principal, valid_until = cached
            if now < valid_until:
                # A cached token of a user revoked since is refused at once (not at cache expiry).
                if self.verifier.revocations.revoked(principal):
                    del self._cache[token]
                    raise InvalidToken()
                return principal
            del self._cache[token]
        principal = await self.verifier.verify(token)
        if self.cache_size > 0:
            if len(self._cache) >= self.cache_size:
                self._evict(now)
            self._cache[token] = (principal, min(float(principal.exp), now + _CACHE_SECONDS))
        return principal

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, until) in self._cache.items() if until <= now]:
            del self._cache[key]
        while len(self._cache) >= self.cache_size:
            del self._cache[next(iter(self._cache))]


__all__ = ["Authenticator", "InvalidToken", "bearer_token", "identity_headers"]
