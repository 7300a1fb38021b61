"""Zoho OAuth for ServiceDesk Plus Cloud: access tokens from a refresh token, shared by replicas.

A cloud SDP instance takes ``Authorization: Zoho-oauthtoken <access token>``. An access token
lives an hour (``expires_in`` 3600 in the recorded refresh answer) and is obtained from the
accounts server of the customer's data centre with ``POST /oauth/v2/token`` and
``grant_type=refresh_token``, the client id and the client secret (query parameters, as the
maintained XSOAR ServiceDesk Plus integration sends them). Zoho limits how many access tokens one
refresh token may produce in a few minutes, so every replica must use the same access token:

* :class:`ZohoTokens` keeps one access token per integration in the ``oauth_token`` table
  (sealed with the suite's sealing keys, bound to the integration), renews it
  ``renew_ahead_seconds`` before it expires, and lets exactly one replica refresh at a time (a
  transaction-scoped advisory lock; the others wait and then read the new token).
* :class:`ZohoAuth` (an ``httpx.Auth``) puts the current token on every request; a 401 from SDP
  renews the token once (unless another replica already did) and repeats the request.
* A refresh token Zoho no longer accepts (``invalid_code``: revoked, or not this client's) and a
  wrong client id or secret (``invalid_client``) are ``bad_credentials`` naming what to re-enter;
  Zoho's "too many requests" is ``rate_limited``. Credentials entered anew (another client id or
  refresh token) never reuse the token of the old ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from loguru import logger
from soc_shared.crypto import Sealer, SealError
from soc_shared.db import Database
from soc_shared.vendor_http import VendorError, VendorErrorCategory, VendorHttp
from sqlalchemy.dialects.postgresql import insert as pg_insert

from soc_itsm_ingest.tables import metadata

C = VendorErrorCategory
OAUTH_KIND = "OAUTH_CLIENT"
TOKEN_PATH = "oauth/v2/token"

# The accounts server of each data centre, by the suffix of the SDP Cloud host (the XSOAR
# integration's data-centre list: .com, .eu, .in, servicedeskplus.cn, servicedeskplus.net.au).
_ACCOUNTS_BY_HOST_SUFFIX = (
    (".manageengine.eu", "https://accounts.zoho.eu"),
    (".manageengine.in", "https://accounts.zoho.in"),
    (".manageengine.com.au", "https://accounts.zoho.com.au"),
    ("servicedeskplus.net.au", "https://accounts.zoho.com.au"),
    ("servicedeskplus.cn", "https://accounts.zoho.com.cn"),
    (".manageengine.jp", "https://accounts.zoho.jp"),
    (".manageengine.ca", "https://accounts.zohocloud.ca"),
    (".manageengine.sa", "https://accounts.zoho.sa"),
    (".manageengine.uk", "https://accounts.zoho.uk"),
)
DEFAULT_ACCOUNTS_URL = "https://accounts.zoho.com"

oauth_token_table = sa.Table(
    "oauth_token",
    metadata,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column(
        "credentials_fingerprint",
        sa.Text,
        nullable=False,
        comment="SHA-256 of the credentials the token was issued for",
    ),
    sa.Column("access_token", sa.Text, nullable=False, comment="sealed (AES-256-GCM)"),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("refreshes", sa.BigInteger, nullable=False, server_default="0"),
)


def accounts_url_for(base_url: str, override: str | None = None) -> str:
    """The Zoho accounts server for an SDP Cloud base URL (``override`` wins)."""
    if override:
        return override.rstrip("/")
    host = (urlsplit(base_url).hostname or "").lower()
    for suffix, url in _ACCOUNTS_BY_HOST_SUFFIX:
        if host.endswith(suffix):
            return url
    return DEFAULT_ACCOUNTS_URL


@dataclass(frozen=True)
class ZohoCredentials:
    client_id: str
    client_secret: str
    refresh_token: str
    accounts_url: str

    def __repr__(self) -> str:  # never a secret
        return f"ZohoCredentials(accounts_url={self.accounts_url!r})"

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, Any], accounts_url: str) -> ZohoCredentials:
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not secrets.get(k)]
        if missing:
            raise VendorError(
                C.INVALID_REQUEST,
                f"ServiceDesk Plus Cloud (Zoho OAuth) credentials need {', '.join(missing)}",
                retryable=False,
            )
        return cls(
            str(secrets["client_id"]),
            str(secrets["client_secret"]),
            str(secrets["refresh_token"]),
            accounts_url,
        )

    def fingerprint(self) -> str:
        """Identifies these credentials without revealing them (new credentials → a new token)."""
        material = "\n".join((self.accounts_url, self.client_id, self.client_secret, self.refresh_token))
        return hashlib.sha256(material.encode()).hexdigest()


def zoho_error(response: httpx.Response) -> VendorError | None:
    """The accounts server's refusals: ``{"error": ..., "error_description": ...}``."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("error"):
        return _refusal(body, response.status_code)
    return None


def _refusal(body: Mapping[str, Any], status: int) -> VendorError:
    code = str(body.get("error"))
    described = str(body.get("error_description") or "").strip()[:200]
    suffix = f" (Zoho: {code}{': ' + described if described else ''})"
    if code == "invalid_code":
        return VendorError(
            C.BAD_CREDENTIALS,
            "Zoho no longer accepts the refresh token of this ServiceDesk Plus Cloud integration (revoked, "
            "expired or issued to another client): generate a new refresh token and enter it on the "
            "integration" + suffix,
            status=status,
            vendor_code=code,
            retryable=False,
            details={"reason": "refresh_token_refused"},
        )
    if code == "invalid_client":
        return VendorError(
            C.BAD_CREDENTIALS,
            "Zoho rejected the OAuth client id or client secret of this integration" + suffix,
            status=status,
            vendor_code=code,
            retryable=False,
            details={"reason": "client_refused"},
        )
    if code == "Access Denied" or "too many requests" in described.lower():
        return VendorError(
            C.RATE_LIMITED,
            "Zoho refuses to issue more access tokens from this refresh token for now" + suffix,
            status=status,
            vendor_code=code,
            retryable=False,
            retry_after=60.0,
            details={"reason": "refresh_rate_limited"},
        )
    return VendorError(
        C.BAD_CREDENTIALS if status < 500 else C.SERVER_ERROR,
        "Zoho refused to issue an access token" + suffix,
        status=status,
        vendor_code=code,
        retryable=status >= 500,
    )


@dataclass
class _Cached:
    fingerprint: str
    token: str
    expires_at: float


class ZohoTokens:
    """Access tokens per integration: in the database (shared by replicas) when ``db`` is given,
    else in this process only (test-connection of credentials not saved yet)."""

    def __init__(
        self,
        db: Database | None = None,
        sealer: Sealer | None = None,
        *,
        renew_ahead_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if db is not None and sealer is None:
            raise ValueError("a shared token store needs the sealer")
        self.db, self.sealer = db, sealer
        self.renew_ahead_seconds = renew_ahead_seconds
        self.clock = clock
        self._memory: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.refreshes = 0  # made by this process (tests, metrics)

    def _usable(self, cached: _Cached | None, fingerprint: str, rejected: str | None) -> bool:
        return (
            cached is not None
            and cached.fingerprint == fingerprint
            and cached.expires_at - self.renew_ahead_seconds > self.clock()
            and cached.token != rejected
        )

    async def access_token(
        self,
        integration_id: str,
        credentials: ZohoCredentials,
        *,
        http_options: Mapping[str, Any] | None = None,
        rejected: str | None = None,
    ) -> str:
        """A valid access token; ``rejected`` is one SDP just refused (never handed out again)."""
        fingerprint = credentials.fingerprint()
        cached = self._memory.get(integration_id)
        if self._usable(cached, fingerprint, rejected):
            assert cached is not None
            return cached.token
        lock = self._locks.setdefault(integration_id, asyncio.Lock())
        async with lock:  # one refresh per process; the database lock covers the other replicas
            cached = self._memory.get(integration_id)
            if self._usable(cached, fingerprint, rejected):
                assert cached is not None
                return cached.token
            if self.db is None:
                fresh = await self._refresh(credentials, fingerprint, http_options)
            else:
                fresh = await self._shared(integration_id, credentials, fingerprint, http_options, rejected)
            self._memory[integration_id] = fresh
            return fresh.token

    async def _shared(
        self,
        integration_id: str,
        credentials: ZohoCredentials,
        fingerprint: str,
        http_options: Mapping[str, Any] | None,
        rejected: str | None,
    ) -> _Cached:
        assert self.db is not None and self.sealer is not None
        t = oauth_token_table
        aad = f"zoho-oauth:{integration_id}"
        async with self.db.session() as session:
            await session.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": aad}
            )
            row = (
                (await session.execute(sa.select(t).where(t.c.integration_id == integration_id)))
                .mappings()
                .first()
            )
            if row is not None and row["credentials_fingerprint"] == fingerprint:
                try:
                    stored = _Cached(
                        fingerprint,
                        self.sealer.open(row["access_token"], aad).decode(),
                        row["expires_at"].timestamp(),
                    )
                except SealError:
                    stored = None
                if self._usable(stored, fingerprint, rejected):
                    assert stored is not None
                    return stored
            fresh = await self._refresh(credentials, fingerprint, http_options)
            values = {
                "credentials_fingerprint": fingerprint,
                "access_token": self.sealer.seal(fresh.token, aad),
                "expires_at": datetime.fromtimestamp(fresh.expires_at, tz=UTC),
                "refreshed_at": datetime.now(UTC),
            }
            insert = pg_insert(t).values(integration_id=integration_id, refreshes=1, **values)
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=[t.c.integration_id], set_={**values, "refreshes": t.c.refreshes + 1}
                )
            )
            return fresh

    async def _refresh(
        self, credentials: ZohoCredentials, fingerprint: str, http_options: Mapping[str, Any] | None
    ) -> _Cached:
        options = {
            k: v for k, v in (http_options or {}).items() if k in ("transport", "retry", "timeout", "sleep")
        }
        async with VendorHttp(
            credentials.accounts_url + "/",
            vendor="Zoho accounts",
            integration_id="zoho-oauth",
            error_mapper=zoho_error,
            **options,
        ) as http:
            body = await http.request_json(
                "POST",
                TOKEN_PATH,
                params={
                    "refresh_token": credentials.refresh_token,
                    "grant_type": "refresh_token",
                    "client_id": credentials.client_id,
                    "client_secret": credentials.client_secret,
                },
                expected=(200,),
                idempotent=True,  # a second grant only issues another token
            )
        if not isinstance(body, dict):
            raise VendorError(C.BAD_RESPONSE, "Zoho answered the token request with a non-object")
        if body.get("error"):
            raise _refusal(body, 200)  # Zoho refuses with HTTP 200 and an "error" member
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise VendorError(C.BAD_RESPONSE, "Zoho's token answer has no access_token / expires_in")
        self.refreshes += 1
        logger.bind(vendor="Zoho accounts").info(
            "new ServiceDesk Plus access token, valid {} s", int(lifetime)
        )
        return _Cached(fingerprint, token, self.clock() + float(lifetime))


class ZohoAuth(httpx.Auth):
    """``Authorization: Zoho-oauthtoken <token>`` on every request; one renewal on a 401."""

    def __init__(
        self,
        tokens: ZohoTokens,
        integration_id: str,
        credentials: ZohoCredentials,
        http_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.tokens, self.integration_id, self.credentials = tokens, integration_id, credentials
        self.http_options = dict(http_options or {})

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.tokens.access_token(
            self.integration_id, self.credentials, http_options=self.http_options
        )
        request.headers["Authorization"] = f"Zoho-oauthtoken {token}"
        response = yield request
        if response.status_code == 401:
            # Revoked or expired early (or our clock is off): renew once, unless another replica did.
            renewed = await self.tokens.access_token(
                self.integration_id, self.credentials, http_options=self.http_options, rejected=token
            )
            request.headers["Authorization"] = f"Zoho-oauthtoken {renewed}"
            yield request
