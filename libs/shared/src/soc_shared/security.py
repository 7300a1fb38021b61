"""Token verification and the FastAPI access dependencies every service uses.

The auth service alone holds the Ed25519 signing key and publishes the public keys as a JWKS;
every service verifies every token itself (no service trusts the network).

Token contract (JWS ``alg`` ``EdDSA``, header ``kid``):

========================  ==============================================================
claim                     meaning
========================  ==============================================================
``iss``, ``aud``          the auth service's issuer and the suite's audience
``sub``                   user id (or the service's client id)
``jti``                   unique token id (refresh-token families, revocation)
``iat``, ``exp``          required; ``nbf`` honoured when present
``typ``                   ``access`` | ``refresh`` | ``service``
``username``              login name (defaults to ``sub`` for services)
``kind``                  ``admin`` | ``tenant`` | ``service``
``roles``                 e.g. ``SUPER_ADMIN``, ``ADMIN``, ``READ_ONLY_ADMIN``, ``TENANT_ADMIN``, ``TENANT_USER``
``permissions``           ``DASHBOARD``, ``REPORTS``, ``THREAT_INTELLIGENCE``, ``ASSETS``
``company_id``            the tenant user's company (null for admins and services)
``read_only``             true for read-only admins (and any principal that must not write)
========================  ==============================================================

Routes declare access with the ``Annotated`` aliases once, e.g.
``async def create_company(principal: AdminWriter, ...)``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Annotated, Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from soc_shared.errors import ApiError
from soc_shared.settings import internal_tls

__all__ = [
    "AdminPrincipal",
    "AdminWriter",
    "CurrentPrincipal",
    "InvalidToken",
    "Principal",
    "RevocationFeed",
    "RevocationList",
    "ServicePrincipal",
    "ServiceTokenAuth",
    "ServiceTokenError",
    "ServiceTokenProvider",
    "SuperAdmin",
    "TokenVerifier",
    "WriterPrincipal",
    "company_scope",
    "current_principal",
    "generate_signing_key",
    "public_jwk",
    "require_admin",
    "require_admin_write",
    "require_permission",
    "require_caller",
    "require_scope",
    "require_service",
    "require_super_admin",
    "require_write",
    "sign_token",
]

ALGORITHM = "EdDSA"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
_GENERIC_MESSAGE = "invalid or expired token"


class InvalidToken(Exception):
    """A token failed verification. The message is always the same: the reason goes to a debug log."""

    def __init__(self) -> None:
        super().__init__(_GENERIC_MESSAGE)


class Principal(BaseModel):
    """Who is calling, as stated by a verified token."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sub: str
    username: str
    kind: Literal["admin", "tenant", "service"]
    roles: list[str] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)
    company_id: str | None = None
    read_only: bool = False
    jti: str
    exp: int
    iat: int = 0
    # Service tokens: space-separated scopes (RFC 8693 style), e.g. "tenant.credentials:CYWARE".
    scope: str = ""
    # Issue time in milliseconds (tokens of the auth service carry it): compared with a user's
    # revocation time, so a token issued in the same second as a revocation is judged right.
    iat_ms: int | None = None

    @property
    def issued_ms(self) -> int:
        return self.iat_ms if self.iat_ms is not None else self.iat * 1000

    @model_validator(mode="before")
    @classmethod
    def _username_defaults_to_sub(cls, data: Any) -> Any:
        # Service tokens name the client in `sub` only.
        if isinstance(data, dict) and not data.get("username"):
            data = {**data, "username": data.get("sub")}
        return data

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def is_super_admin(self) -> bool:
        return self.is_admin and "SUPER_ADMIN" in self.roles

    @property
    def is_tenant_admin(self) -> bool:
        return self.kind == "tenant" and "TENANT_ADMIN" in self.roles

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def has_scope(self, scope: str) -> bool:
        return self.is_service and scope in self.scope.split()


# --- signing helpers (the auth service and tests) --------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def generate_signing_key() -> tuple[Ed25519PrivateKey, str]:
    """A new Ed25519 key and its kid: the RFC 7638 thumbprint, so the same key always has the same kid."""
    private_key = Ed25519PrivateKey.generate()
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw_public(private_key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return private_key, _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(private_key: Ed25519PrivateKey | Ed25519PublicKey, kid: str) -> dict[str, str]:
    """The RFC 8037 public JWK of a signing key, as published in the JWKS."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(_raw_public(private_key)),
        "kid": kid,
        "use": "sig",
        "alg": ALGORITHM,
    }


def sign_token(private_key: Ed25519PrivateKey, kid: str, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})


def _keys_from_jwks(jwks: Any) -> dict[str, Ed25519PublicKey]:
    """The usable Ed25519 signing keys of a JWKS document; anything else is skipped."""
    keys: dict[str, Ed25519PublicKey] = {}
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(entries, list):
        raise ValueError("JWKS document has no 'keys' list")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid, x = entry.get("kid"), entry.get("x")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or not isinstance(kid, str) or not kid:
            continue
        if (
            entry.get("use", "sig") != "sig"
            or entry.get("alg", ALGORITHM) != ALGORITHM
            or not isinstance(x, str)
        ):
            continue
        try:
            keys[kid] = Ed25519PublicKey.from_public_bytes(_unb64url(x))
        except ValueError:
            logger.warning("JWKS key {} is not a valid Ed25519 public key; skipped", kid)
    return keys


# --- revocation -----------------------------------------------------------------------------------


class RevocationList:
    """Per-user "not before" times: a token of that user issued earlier is refused.

    The auth service sets a user's time when the account is disabled, deleted, demoted, changes
    password or company, logs out everywhere, or its company is deactivated; it publishes it on
    ``auth.user.changed`` (``tokens_not_before``) and serves the list on
    ``/auth/internal/revocations``. Every verifier holds the list (:class:`RevocationFeed` keeps
    it current), so a revoked access token stops working everywhere within seconds instead of at
    its expiry. Entries older than the longest access-token lifetime are dropped.
    """

    def __init__(self, retention_seconds: float = 24 * 3600) -> None:
        self._not_before: dict[str, int] = {}
        self.retention_ms = int(retention_seconds * 1000)

    def __len__(self) -> int:
        return len(self._not_before)

    def apply(self, user_id: str, not_before_ms: int) -> None:
        if not_before_ms > self._not_before.get(user_id, 0):
            self._not_before[user_id] = int(not_before_ms)

    def not_before(self, user_id: str) -> int | None:
        return self._not_before.get(user_id)

    def revoked(self, principal: Principal) -> bool:
        not_before = self._not_before.get(principal.sub)
        return not_before is not None and principal.issued_ms < not_before

    def prune(self, now_ms: int | None = None) -> None:
        cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - self.retention_ms
        for user_id in [u for u, t in self._not_before.items() if t < cutoff]:
            del self._not_before[user_id]


class RevocationFeed:
    """Keeps a :class:`RevocationList` current by polling the auth service's revocation list every
    ``interval`` seconds (incrementally, with an overlap for transactions that committed late)."""

    def __init__(
        self,
        revocations: RevocationList,
        url: str,
        token: Callable[[], Coroutine[Any, Any, str]],
        *,
        http: httpx.AsyncClient | None = None,
        interval: float = 1.0,
        overlap_ms: int = 10_000,
    ) -> None:
        self.revocations = revocations
        self.url = url
        self.token = token
        self.interval = interval
        self.overlap_ms = overlap_ms
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(trust_env=False, timeout=5, verify=internal_tls())
        self._since = 0
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    async def poll_once(self) -> int:
        response = await self._http.get(
            self.url,
            params={"since_ms": max(0, self._since - self.overlap_ms)},
            headers={"Authorization": f"Bearer {await self.token()}"},
        )
        response.raise_for_status()
        items = response.json().get("items", [])
        for item in items:
            not_before = int(item["not_before_ms"])
            self.revocations.apply(str(item["user_id"]), not_before)
            self._since = max(self._since, not_before)
        self.revocations.prune()
        self.loaded.set()
        return len(items)

    async def _run(self) -> None:
        last_warning = 0.0
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep polling; the list keeps what it has
                if time.monotonic() - last_warning >= 60:  # once a minute while auth is away
                    last_warning = time.monotonic()
                    logger.warning("cannot refresh the revocation list ({})", type(exc).__name__)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="revocation-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_http:
            await self._http.aclose()


# --- verification -------------------------------------------------------------------------------


class TokenVerifier:
    """Verifies the suite's JWTs against the auth service's JWKS.

    Keys are cached for ``cache_ttl`` seconds. A token with an unknown ``kid`` (a rotation the
    cache has not seen yet) triggers a refresh at once, but at most one per
    ``min_refresh_interval``, so random kids cannot make us hammer the auth service. When the
    JWKS endpoint is down, cached keys keep working; with no cached key the token is refused
    within ``fetch_timeout`` rather than hanging the request.
    """

    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        audience: str,
        *,
        http: httpx.AsyncClient | None = None,
        cache_ttl: float = 300,
        min_refresh_interval: float = 5,
        leeway: int = 10,
        fetch_timeout: float = 3.0,
    ) -> None:
        self._jwks_url: str | None = jwks_url
        self._issuer = issuer
        self._audience = audience
        self._owns_http = http is None and bool(jwks_url)
        self._http = (
            http
            if http is not None
            else (httpx.AsyncClient(trust_env=False, verify=internal_tls()) if jwks_url else None)
        )
        self._cache_ttl = cache_ttl
        self._min_refresh_interval = min_refresh_interval
        self._leeway = leeway
        self._fetch_timeout = fetch_timeout
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None
        self._last_forced: float | None = None
        # Bumped on every fetch attempt: a coroutine that waited on the lock sees that someone else
        # just fetched and does not fetch again.
        self._generation = 0
        self._lock = asyncio.Lock()
        # Per-user revocation times (kept current by a RevocationFeed or the auth.user.changed events).
        self.revocations = RevocationList()

    @classmethod
    def from_keys(
        cls, public_jwks: dict[str, Any], issuer: str, audience: str, *, leeway: int = 10
    ) -> TokenVerifier:
        """A verifier over a fixed JWKS (the auth service itself, tests): never fetches."""
        verifier = cls("", issuer, audience, leeway=leeway)
        verifier._jwks_url = None
        verifier._keys = _keys_from_jwks(public_jwks)
        verifier._loaded_at = time.monotonic()
        return verifier

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()

    async def verify(self, token: str, *, expected_type: str = "access") -> Principal:
        """The principal a valid token states; anything wrong raises :class:`InvalidToken`."""
        try:
            return await self._verify(token, expected_type)
        except InvalidToken:
            raise
        except (jwt.PyJWTError, ValidationError, ValueError, TypeError) as exc:
            # PyJWT's reasons ("Signature has expired", "Invalid audience") quote no token content.
            logger.debug("token rejected: {}: {}", type(exc).__name__, _short_reason(exc))
            raise InvalidToken() from None

    async def _verify(self, token: str, expected_type: str) -> Principal:
        if not isinstance(token, str) or not token:
            raise ValueError("empty token")
        header = jwt.get_unverified_header(token)
        # Checked before any key lookup: "none", HS256 keyed with our public key, RS256... never get further.
        if header.get("alg") != ALGORITHM:
            raise ValueError(f"algorithm {str(header.get('alg'))[:16]!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError("token has no kid")
        key = await self._key(kid)
        if key is None:
            raise ValueError(f"unknown kid {kid[:64]!r}")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": _REQUIRED_CLAIMS, "verify_signature": True},
        )
        if claims.get("typ") != expected_type:
            raise ValueError(
                f"token type {str(claims.get('typ'))[:16]!r} where {expected_type!r} is expected"
            )
        principal = Principal.model_validate(claims)
        if self.revocations.revoked(principal):
            raise ValueError("token issued before its user's sessions were revoked")
        return principal

    async def _key(self, kid: str) -> Ed25519PublicKey | None:
        if self._jwks_url is None:
            return self._keys.get(kid)
        now = time.monotonic()
        fetched_now = False
        stale = self._loaded_at is None or now - self._loaded_at >= self._cache_ttl
        if stale and (self._last_attempt is None or now - self._last_attempt >= self._min_refresh_interval):
            await self._refresh(self._generation)
            fetched_now = True
        if kid in self._keys or fetched_now:
            return self._keys.get(kid)
        if self._lock.locked():
            # A refresh is in flight (another request saw the same new kid): join it.
            await self._refresh(self._generation)
        elif self._last_forced is None or now - self._last_forced >= self._min_refresh_interval:
            self._last_forced = now
            logger.info("token signed with unseen key {}; refreshing the JWKS", kid[:64])
            await self._refresh(self._generation)
        return self._keys.get(kid)

    async def _refresh(self, generation_seen: int) -> None:
        async with self._lock:
            if self._generation != generation_seen:
                return
            self._generation += 1
            self._last_attempt = time.monotonic()
            try:
                self._keys = await self.fetch()
                self._loaded_at = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - an unreachable JWKS must answer 401, not 500
                cached = "keeping the cached keys" if self._keys else "no key cached"
                logger.warning(
                    "cannot fetch the JWKS from {} ({}); {}", self._jwks_url, type(exc).__name__, cached
                )

    async def fetch(self) -> dict[str, Ed25519PublicKey]:
        """Fetch and parse the JWKS within ``fetch_timeout`` seconds."""
        if self._http is None or not self._jwks_url:
            raise RuntimeError("this verifier has static keys and no JWKS URL")
        async with asyncio.timeout(self._fetch_timeout):
            response = await self._http.get(self._jwks_url, timeout=self._fetch_timeout)
            response.raise_for_status()
            return _keys_from_jwks(response.json())


def _short_reason(exc: BaseException) -> str:
    return str(exc)[:200]


# --- service-to-service tokens ---------------------------------------------------------------------


class ServiceTokenError(Exception):
    """The service token could not be obtained (the message never carries the client secret)."""


class ServiceTokenProvider:
    """Client-credentials client: gets a service token from the auth service and caches it."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient | None = None,
        *,
        refresh_margin: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(trust_env=False, verify=internal_tls())
        self._refresh_margin = refresh_margin
        self._timeout = timeout
        self._token: str | None = None
        self._valid_until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ServiceTokenProvider(token_url={self._token_url!r}, client_id={self._client_id!r})"

    async def token(self) -> str:
        """A valid service token, fetched again when less than ``refresh_margin`` seconds remain."""
        if self._token is not None and time.monotonic() < self._valid_until:
            return self._token
        async with self._lock:
            if self._token is not None and time.monotonic() < self._valid_until:
                return self._token
            return await self._fetch()

    def invalidate(self) -> None:
        """Forget the cached token (the callee answered 401, e.g. after a key rotation)."""
        self._token = None
        self._valid_until = 0.0

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _fetch(self) -> str:
        try:
            response = await self._http.post(
                self._token_url,
                json={"client_id": self._client_id, "client_secret": self._client_secret},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise ServiceTokenError(f"cannot reach the token endpoint ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise ServiceTokenError(
                f"the token endpoint answered HTTP {response.status_code} for client {self._client_id!r}"
            )
        try:
            body = response.json()
            access_token, expires_in = body["access_token"], float(body["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise ServiceTokenError(
                "the token endpoint answered without access_token and expires_in"
            ) from None
        if not isinstance(access_token, str) or not access_token or expires_in <= 0:
            raise ServiceTokenError("the token endpoint answered an empty or already expired token")
        # Short-lived tokens would otherwise be stale the moment they arrive: keep at least half their life.
        margin = min(self._refresh_margin, expires_in / 2)
        self._token = access_token
        self._valid_until = time.monotonic() + expires_in - margin
        return access_token


class ServiceTokenAuth(httpx.Auth):
    """httpx auth that sends the service token, and fetches a new one once if the callee answers 401."""

    def __init__(self, provider: ServiceTokenProvider) -> None:
        self._provider = provider

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("ServiceTokenAuth works with httpx.AsyncClient only")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self._provider.token()}"
        response = yield request
        if response.status_code == 401:
            self._provider.invalidate()
            request.headers["Authorization"] = f"Bearer {await self._provider.token()}"
            yield request


# --- FastAPI dependencies ----------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller; 401 ``not_authenticated`` without a bearer token, 401 ``invalid_token`` for a bad one."""
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "not_authenticated", "authentication required")
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError("app.state.token_verifier is not set: the service cannot verify tokens")
    try:
        principal = await verifier.verify(credentials.credentials)
    except InvalidToken:
        raise ApiError(401, "invalid_token", _GENERIC_MESSAGE) from None
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "admin_required", "this action is for administrators")
    return principal


async def require_admin_write(principal: CurrentPrincipal) -> Principal:
    principal = await require_admin(principal)
    if principal.read_only:
        raise ApiError(403, "read_only", "read-only administrators cannot change anything")
    return principal


async def require_super_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_super_admin:
        raise ApiError(403, "super_admin_required", "this action is for super administrators")
    return principal


async def require_service(principal: CurrentPrincipal) -> Principal:
    if not principal.is_service:
        raise ApiError(403, "service_required", "this endpoint is for internal services")
    return principal


async def require_write(principal: CurrentPrincipal) -> Principal:
    if principal.read_only:
        raise ApiError(403, "read_only", "this account is read-only")
    return principal


def require_permission(permission: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency admitting admins and principals holding ``permission`` (e.g. ``REPORTS``).

    Use as ``principal: Annotated[Principal, Depends(require_permission("REPORTS"))]``.
    """

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.is_admin or permission in principal.permissions:
            return principal
        raise ApiError(
            403, "permission_denied", f"the {permission} permission is required", {"permission": permission}
        )

    dependency.__name__ = f"require_permission_{permission.lower()}"
    return dependency


def require_scope(*scopes: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency admitting service tokens that hold one of ``scopes``; 403 ``scope_required``."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.is_service and any(principal.has_scope(s) for s in scopes):
            return principal
        raise ApiError(
            403,
            "scope_required",
            "this internal endpoint needs another service scope",
            {"scopes": list(scopes)},
        )

    dependency.__name__ = "require_scope_" + "_".join(s.replace(".", "_").replace(":", "_") for s in scopes)
    return dependency


def require_caller(
    *clients: str, scope: str | None = None
) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency admitting the service tokens of ``clients`` only (and, when the token carries
    scopes, only with ``scope``); 403 ``caller_not_allowed`` for any other caller."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if (
            principal.is_service
            and principal.sub in clients
            and not (scope and principal.scope and not principal.has_scope(scope))
        ):
            return principal
        raise ApiError(403, "caller_not_allowed", "this internal endpoint is not for this caller")

    dependency.__name__ = "require_caller_" + "_".join(c.replace("-", "_") for c in clients)
    return dependency


AdminPrincipal = Annotated[Principal, Depends(require_admin)]
AdminWriter = Annotated[Principal, Depends(require_admin_write)]
SuperAdmin = Annotated[Principal, Depends(require_super_admin)]
ServicePrincipal = Annotated[Principal, Depends(require_service)]
WriterPrincipal = Annotated[Principal, Depends(require_write)]


def company_scope(principal: Principal, requested_company_id: str | None) -> str | None:
    """The company a request may see.

    Tenant users always get their own company; asking for another answers 404 (as if it did not
    exist, so other customers cannot be discovered). Admins and services get what they asked for,
    None meaning every company.
    """
    if principal.kind == "tenant":
        if not principal.company_id:
            raise ApiError(403, "no_company", "this account is not attached to a company")
        if requested_company_id is not None and str(requested_company_id) != principal.company_id:
            raise ApiError(404, "not_found", "company not found")
        return principal.company_id
    return requested_company_id
