"""Zoho accounts server (OAuth 2.0) as ServiceDesk Plus Cloud uses it: the refresh-token grant.

A cloud SDP instance takes ``Authorization: Zoho-oauthtoken <access token>``; access tokens come
from the accounts server of the customer's data centre (``https://accounts.zoho.com``, ``.eu``,
``.in``, ``.com.au``, ``.com.cn``):

* ``POST /oauth/v2/token`` with ``refresh_token``, ``client_id``, ``client_secret`` and
  ``grant_type=refresh_token`` (query parameters, as the maintained XSOAR ServiceDesk Plus
  integration sends them; a form body is accepted too) answers 200 with the recorded shape
  ``{"access_token", "api_domain", "token_type": "Bearer", "expires_in": 3600}``.
* A revoked or unknown refresh token answers 200 ``{"error": "invalid_code"}``; a wrong client id
  or secret 200 ``{"error": "invalid_client"}``; another grant type ``unsupported_grant_type``.
* Zoho limits how often one refresh token may be used: more than ``max_refreshes`` (10) access
  tokens from one refresh token within ``refresh_window_s`` (600 s) answer 400
  ``{"error": "Access Denied", "error_description": "You have made too many requests
  continuously. Please try again after some time.", "status": "failure"}``.
* An access token lives ``token_ttl_s`` (3600 s); the SDP simulator refuses an expired, revoked or
  unknown one with 401.

Simulator control: ``POST /_sim/oauth/revoke?refresh_token=`` revokes a refresh token (and the
access tokens it issued), ``POST /_sim/oauth/expire`` ends every access token now,
``GET /_sim/oauth/state`` counts grants.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

CLIENT_ID = "1000.SOCPORTALDEMOCLIENT"
CLIENT_SECRET = "zoho-demo-client-secret"
REFRESH_TOKEN = "1000.demo-refresh-token.sdp"
TOO_MANY = "You have made too many requests continuously. Please try again after some time."


@dataclass
class _Grant:
    client_id: str
    revoked: bool = False
    issued: deque[float] = field(default_factory=deque)  # when access tokens were issued (window)
    total: int = 0


class ZohoAccounts:
    """Registered OAuth clients, their refresh tokens and the access tokens issued from them."""

    def __init__(
        self,
        *,
        clients: dict[str, str] | None = None,
        refresh_tokens: dict[str, str] | None = None,
        token_ttl_s: int = 3600,
        max_refreshes: int = 10,
        refresh_window_s: float = 600.0,
        api_domain: str = "https://www.zohoapis.com",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = dict(clients or {CLIENT_ID: CLIENT_SECRET})
        self.grants = {
            token: _Grant(client) for token, client in (refresh_tokens or {REFRESH_TOKEN: CLIENT_ID}).items()
        }
        self.token_ttl_s = token_ttl_s
        self.max_refreshes = max_refreshes
        self.refresh_window_s = refresh_window_s
        self.api_domain = api_domain
        self.clock = clock
        self.access: dict[str, tuple[str, float]] = {}  # access token -> (refresh token, expires at)
        self.refused: dict[str, int] = {}

    def _refuse(self, error: str) -> JSONResponse:
        self.refused[error] = self.refused.get(error, 0) + 1
        return JSONResponse({"error": error})

    def grant(self, params: dict[str, str]) -> JSONResponse:
        if params.get("grant_type") != "refresh_token":
            return self._refuse("unsupported_grant_type")
        client_id, client_secret = params.get("client_id", ""), params.get("client_secret", "")
        known_secret = self.clients.get(client_id)
        if known_secret is None or not hmac.compare_digest(known_secret.encode(), client_secret.encode()):
            return self._refuse("invalid_client")
        grant = self.grants.get(params.get("refresh_token", ""))
        if grant is None or grant.revoked or grant.client_id != client_id:
            return self._refuse("invalid_code")
        now = self.clock()
        while grant.issued and grant.issued[0] <= now - self.refresh_window_s:
            grant.issued.popleft()
        if len(grant.issued) >= self.max_refreshes:
            self.refused["Access Denied"] = self.refused.get("Access Denied", 0) + 1
            return JSONResponse(
                {"error_description": TOO_MANY, "error": "Access Denied", "status": "failure"},
                status_code=400,
            )
        grant.issued.append(now)
        grant.total += 1
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.access[token] = (params["refresh_token"], now + self.token_ttl_s)
        return JSONResponse(
            {
                "access_token": token,
                "api_domain": self.api_domain,
                "token_type": "Bearer",
                "expires_in": self.token_ttl_s,
            }
        )

    def check(self, access_token: str) -> str | None:
        """None when the token may be used, else why not."""
        entry = self.access.get(access_token)
        if entry is None:
            return "Invalid OAuth token"
        refresh, expires_at = entry
        if self.grants[refresh].revoked:
            return "OAuth token revoked"
        if self.clock() >= expires_at:
            return "OAuth token expired"
        return None

    def revoke(self, refresh_token: str) -> bool:
        grant = self.grants.get(refresh_token)
        if grant is None:
            return False
        grant.revoked = True
        return True

    def expire_all(self) -> int:
        now = self.clock()
        self.access = {t: (r, min(e, now)) for t, (r, e) in self.access.items()}
        return len(self.access)

    def state(self) -> dict[str, Any]:
        return {
            "grants": {token[-6:]: g.total for token, g in self.grants.items()},
            "access_tokens": len(self.access),
            "refused": dict(self.refused),
        }


def install_zoho_accounts(app: FastAPI, accounts: ZohoAccounts) -> None:
    """The accounts server's token endpoint and its control routes on a simulator app."""

    async def token(request: Request) -> JSONResponse:
        params = {k: v for k, v in request.query_params.items()}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
            params.update({k: v[0] for k, v in form.items() if v})
        return accounts.grant(params)

    async def revoke(request: Request) -> JSONResponse:
        ok = accounts.revoke(request.query_params.get("refresh_token", ""))
        return JSONResponse({"revoked": ok}, status_code=200 if ok else 404)

    async def expire() -> JSONResponse:
        return JSONResponse({"expired": accounts.expire_all()})

    async def state() -> JSONResponse:
        return JSONResponse(accounts.state())

    app.add_api_route("/oauth/v2/token", token, methods=["POST"])
    app.add_api_route("/_sim/oauth/revoke", revoke, methods=["POST"])
    app.add_api_route("/_sim/oauth/expire", expire, methods=["POST"])
    app.add_api_route("/_sim/oauth/state", state, methods=["GET"])
