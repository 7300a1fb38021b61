import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Annotated, Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import Depends, FastAPI
from soc_shared.errors import install_error_handlers
from soc_shared.security import (
    AdminPrincipal,
    AdminWriter,
    CurrentPrincipal,
    InvalidToken,
    Principal,
    ServicePrincipal,
    ServiceTokenAuth,
    ServiceTokenError,
    ServiceTokenProvider,
    SuperAdmin,
    TokenVerifier,
    WriterPrincipal,
    company_scope,
    generate_signing_key,
    public_jwk,
    require_permission,
    sign_token,
)

ISSUER = "https://auth.soc.local"
AUDIENCE = "soc-portal"
JWKS_URL = "https://auth.soc.local/.well-known/jwks.json"
KEY, KID = generate_signing_key()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 300,
        "typ": "access",
        "username": "alice",
        "kind": "tenant",
        "roles": ["TENANT_USER"],
        "permissions": ["DASHBOARD"],
        "company_id": "company-a",
        "read_only": False,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def token(**overrides: Any) -> str:
    return sign_token(KEY, KID, claims(**overrides))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


class JwksEndpoint:
    """The auth service's JWKS endpoint, counting fetches; ``down`` makes it refuse connections."""

    def __init__(self, *jwks: dict[str, str]) -> None:
        self.keys = list(jwks)
        self.fetches = 0
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.down:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, json={"keys": self.keys})


def verifier_for(endpoint: Any, **kw: Any) -> TokenVerifier:
    http = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    return TokenVerifier(JWKS_URL, ISSUER, AUDIENCE, http=http, **kw)


@pytest.fixture
def endpoint() -> JwksEndpoint:
    return JwksEndpoint(public_jwk(KEY, KID))


@pytest.fixture
def verifier(endpoint: JwksEndpoint) -> TokenVerifier:
    return verifier_for(endpoint)


async def test_valid_token_verifies_into_the_principal(verifier: TokenVerifier) -> None:
    principal = await verifier.verify(token(permissions=["DASHBOARD", "REPORTS"]))
    assert principal.sub == "user-1" and principal.username == "alice" and principal.kind == "tenant"
    assert principal.permissions == ["DASHBOARD", "REPORTS"] and principal.company_id == "company-a"
    assert not (
        principal.is_admin or principal.is_super_admin or principal.is_tenant_admin or principal.is_service
    )


async def test_service_token_verifies_as_service_with_username_from_sub(verifier: TokenVerifier) -> None:
    principal = await verifier.verify(
        token(typ="service", kind="service", sub="siem-ingest", username=..., company_id=..., roles=...),
        expected_type="service",
    )
    assert principal.is_service and principal.username == "siem-ingest" and principal.company_id is None


async def test_alg_none_is_rejected(verifier: TokenVerifier) -> None:
    forged = (
        _unsigned({"alg": "none", "typ": "JWT", "kid": KID}, claims(kind="admin", roles=["SUPER_ADMIN"]))
        + "."
    )
    with pytest.raises(InvalidToken):
        await verifier.verify(forged)


async def test_hs256_signed_with_the_public_key_is_rejected(verifier: TokenVerifier) -> None:
    public = KEY.public_key()
    for secret in (
        public.public_bytes(Encoding.Raw, PublicFormat.Raw),
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        json.dumps(public_jwk(KEY, KID)).encode(),
    ):
        signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": KID}, claims(kind="admin"))
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken):
            await verifier.verify(f"{signing_input}.{_b64(signature)}")


async def test_unknown_kid_refreshes_once_then_is_rejected(
    verifier: TokenVerifier, endpoint: JwksEndpoint
) -> None:
    await verifier.verify(token())
    assert endpoint.fetches == 1
    stranger, stranger_kid = generate_signing_key()
    forged = sign_token(stranger, stranger_kid, claims())
    with pytest.raises(InvalidToken):
        await verifier.verify(forged)
    assert endpoint.fetches == 2
    with pytest.raises(InvalidToken):
        await verifier.verify(forged)
    assert endpoint.fetches == 2, "unknown kids must not make every request refetch the JWKS"


async def test_token_signed_by_another_key_under_our_kid_is_rejected(verifier: TokenVerifier) -> None:
    stranger, _ = generate_signing_key()
    with pytest.raises(InvalidToken):
        await verifier.verify(sign_token(stranger, KID, claims()))


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "another-suite"},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 60, "iat": int(time.time()) - 400},
        {"nbf": int(time.time()) + 120},
        {"typ": "refresh"},
        {"typ": ...},
        {"jti": ...},
        {"iat": ...},
        {"exp": ...},
        {"kind": "root"},
    ],
    ids=[
        "wrong_aud",
        "wrong_iss",
        "expired",
        "nbf_in_future",
        "refresh_as_access",
        "no_typ",
        "no_jti",
        "no_iat",
        "no_exp",
        "unknown_kind",
    ],
)
async def test_invalid_claims_are_rejected_with_one_generic_message(
    verifier: TokenVerifier, overrides: dict
) -> None:
    with pytest.raises(InvalidToken) as err:
        await verifier.verify(token(**overrides))
    assert str(err.value) == "invalid or expired token"


async def test_tampered_payload_is_rejected(verifier: TokenVerifier) -> None:
    header, _, signature = token().split(".")
    forged_payload = _b64(json.dumps(claims(kind="admin", roles=["SUPER_ADMIN"])).encode())
    with pytest.raises(InvalidToken):
        await verifier.verify(f"{header}.{forged_payload}.{signature}")
    for garbage in ("", "not-a-jwt", "a.b.c"):
        with pytest.raises(InvalidToken):
            await verifier.verify(garbage)


async def test_refresh_token_verifies_when_expected(verifier: TokenVerifier) -> None:
    assert (await verifier.verify(token(typ="refresh"), expected_type="refresh")).sub == "user-1"


async def test_new_kid_at_the_jwks_endpoint_is_picked_up_on_first_sight(
    verifier: TokenVerifier, endpoint: JwksEndpoint
) -> None:
    await verifier.verify(token())
    new_key, new_kid = generate_signing_key()
    endpoint.keys.append(public_jwk(new_key, new_kid))
    principal = await verifier.verify(sign_token(new_key, new_kid, claims(sub="user-2")))
    assert principal.sub == "user-2" and endpoint.fetches == 2


async def test_a_burst_of_tokens_with_a_new_kid_shares_one_refresh(
    verifier: TokenVerifier, endpoint: JwksEndpoint
) -> None:
    await verifier.verify(token())
    new_key, new_kid = generate_signing_key()
    endpoint.keys.append(public_jwk(new_key, new_kid))
    results = await asyncio.gather(
        *(verifier.verify(sign_token(new_key, new_kid, claims())) for _ in range(10))
    )
    assert len(results) == 10 and endpoint.fetches == 2


async def test_jwks_down_without_cached_key_fails_fast(endpoint: JwksEndpoint) -> None:
    endpoint.down = True
    with pytest.raises(InvalidToken):
        await verifier_for(endpoint).verify(token())

    async def hanging(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json={"keys": []})

    started = time.monotonic()
    with pytest.raises(InvalidToken):
        await verifier_for(hanging, fetch_timeout=0.2).verify(token())
    assert time.monotonic() - started < 2


async def test_cached_keys_keep_working_while_the_jwks_endpoint_is_down(endpoint: JwksEndpoint) -> None:
    verifier = verifier_for(endpoint, cache_ttl=0, min_refresh_interval=0)
    await verifier.verify(token())
    endpoint.down = True
    assert (await verifier.verify(token())).sub == "user-1"
    assert endpoint.fetches == 2


async def test_static_keys_verify_without_http() -> None:
    verifier = TokenVerifier.from_keys({"keys": [public_jwk(KEY, KID)]}, ISSUER, AUDIENCE)
    assert (await verifier.verify(token())).username == "alice"


def test_public_jwk_is_rfc8037_okp() -> None:
    jwk = public_jwk(KEY, KID)
    assert {k: jwk[k] for k in ("kty", "crv", "use", "alg", "kid")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "use": "sig",
        "alg": "EdDSA",
        "kid": KID,
    }
    assert len(base64.urlsafe_b64decode(jwk["x"] + "=")) == 32 and "d" not in jwk


# --- service tokens ----------------------------------------------------------------------------------


class TokenEndpoint:
    def __init__(self, expires_in: float = 600) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.expires_in = expires_in

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if body["client_secret"] != "s3cret":
            return httpx.Response(401, json={"error": {"code": "invalid_client"}})
        return httpx.Response(
            200, json={"access_token": f"svc-{len(self.bodies)}", "expires_in": self.expires_in}
        )


def provider_for(endpoint: TokenEndpoint, secret: str = "s3cret") -> ServiceTokenProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    return ServiceTokenProvider(
        "https://auth.soc.local/auth/service-token/", "siem-ingest", secret, http=http
    )


async def test_service_token_is_cached_until_shortly_before_expiry() -> None:
    endpoint = TokenEndpoint()
    provider = provider_for(endpoint)
    assert [await provider.token() for _ in range(3)] == ["svc-1"] * 3
    assert endpoint.bodies == [{"client_id": "siem-ingest", "client_secret": "s3cret"}]

    short = TokenEndpoint(expires_in=0.2)
    provider = provider_for(short)
    assert await provider.token() == "svc-1"
    await asyncio.sleep(0.15)
    assert await provider.token() == "svc-2"


async def test_service_token_failure_never_reveals_the_secret() -> None:
    provider = provider_for(TokenEndpoint(), secret="wrong-secret")
    with pytest.raises(ServiceTokenError) as err:
        await provider.token()
    assert "401" in str(err.value) and "wrong-secret" not in str(err.value) + repr(provider)


async def test_service_token_auth_renews_once_on_401() -> None:
    provider = provider_for(TokenEndpoint())
    seen: list[str] = []

    def callee(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(401 if len(seen) == 1 else 200)

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(callee), auth=ServiceTokenAuth(provider)
    ) as http:
        assert (
            await http.get("https://tenant.soc.local/internal/integrations/1/credentials")
        ).status_code == 200
    assert seen == ["Bearer svc-1", "Bearer svc-2"]


# --- FastAPI dependencies ----------------------------------------------------------------------------


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.token_verifier = TokenVerifier.from_keys({"keys": [public_jwk(KEY, KID)]}, ISSUER, AUDIENCE)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"username": principal.username}

    @app.post("/admin/companies/")
    async def create_company(principal: AdminWriter) -> dict[str, str]:
        return {"created_by": principal.username}

    @app.get("/admin/users/")
    async def list_users(principal: AdminPrincipal) -> dict[str, str]:
        return {"ok": "yes"}

    @app.delete("/admin/companies/{company_id}/")
    async def delete_company(principal: SuperAdmin) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/internal/ping")
    async def internal(principal: ServicePrincipal) -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/tenant/chat/")
    async def post_chat(principal: WriterPrincipal) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/tenant/reports/")
    async def reports(
        principal: Annotated[Principal, Depends(require_permission("REPORTS"))],
    ) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/tenant/offenses/")
    async def offenses(principal: CurrentPrincipal, company_id: str | None = None) -> dict[str, str | None]:
        return {"company_id": company_scope(principal, company_id)}

    return app


@pytest.fixture
async def api():  # noqa: ANN201
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://portal"
    ) as client:
        yield client


def bearer(**overrides: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(**overrides)}"}


ADMIN = {"kind": "admin", "roles": ["ADMIN"], "company_id": None, "permissions": []}
READ_ONLY_ADMIN = {**ADMIN, "roles": ["READ_ONLY_ADMIN"], "read_only": True}
SUPER = {**ADMIN, "roles": ["SUPER_ADMIN"]}


async def test_missing_or_bad_token_is_401(api: httpx.AsyncClient) -> None:
    response = await api.get("/me")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    response = await api.get("/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"
    response = await api.get("/me", headers=bearer(typ="refresh"))
    assert response.status_code == 401
    assert (await api.get("/me", headers=bearer())).json() == {"username": "alice"}


async def test_read_only_admin_cannot_write(api: httpx.AsyncClient) -> None:
    response = await api.post("/admin/companies/", headers=bearer(**READ_ONLY_ADMIN))
    assert response.status_code == 403 and response.json()["error"]["code"] == "read_only"
    assert (await api.get("/admin/users/", headers=bearer(**READ_ONLY_ADMIN))).status_code == 200
    assert (await api.post("/admin/companies/", headers=bearer(**ADMIN))).status_code == 200
    response = await api.post("/tenant/chat/", headers=bearer(**READ_ONLY_ADMIN))
    assert response.status_code == 403 and response.json()["error"]["code"] == "read_only"


async def test_admin_routes_refuse_tenant_users_and_super_admin_routes_refuse_admins(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("/admin/companies/", headers=bearer(roles=["TENANT_ADMIN"]))
    assert response.status_code == 403 and response.json()["error"]["code"] == "admin_required"
    response = await api.delete("/admin/companies/c1/", headers=bearer(**ADMIN))
    assert response.status_code == 403 and response.json()["error"]["code"] == "super_admin_required"
    assert (await api.delete("/admin/companies/c1/", headers=bearer(**SUPER))).status_code == 200
    response = await api.get("/internal/ping", headers=bearer(**SUPER))
    assert response.status_code == 403 and response.json()["error"]["code"] == "service_required"


async def test_tenant_user_asking_for_another_company_gets_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/tenant/offenses/", params={"company_id": "company-b"}, headers=bearer())
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert (await api.get("/tenant/offenses/", headers=bearer())).json() == {"company_id": "company-a"}
    assert (await api.get("/tenant/offenses/", headers=bearer(**ADMIN))).json() == {"company_id": None}
    response = await api.get("/tenant/offenses/", params={"company_id": "company-b"}, headers=bearer(**ADMIN))
    assert response.json() == {"company_id": "company-b"}


async def test_permission_is_required_for_tenant_users_but_not_admins(api: httpx.AsyncClient) -> None:
    response = await api.get("/tenant/reports/", headers=bearer(permissions=["DASHBOARD"]))
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert (await api.get("/tenant/reports/", headers=bearer(permissions=["REPORTS"]))).status_code == 200
    assert (await api.get("/tenant/reports/", headers=bearer(**READ_ONLY_ADMIN))).status_code == 200
