"""Requests through a real gateway to real (stand-in) upstreams."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from soc_shared.testing import TokenFactory

ROUTED = [
    # (method, path, service)
    ("POST", "/auth/logout/", "auth"),
    ("POST", "/auth/create-user/", "auth"),
    ("GET", "/auth/me/", "auth"),
    ("GET", "/auth/preferences/", "auth"),
    ("POST", "/auth/change-password/", "auth"),
    ("GET", "/admin/users/", "auth"),
    ("PUT", "/admin/users/42/", "auth"),
    ("GET", "/admin/login-audit/", "auth"),
    ("GET", "/admin/directory/groups/", "auth"),
    ("POST", "/admin/keys/rotate/", "auth"),
    ("GET", "/tenant/", "tenant"),
    ("GET", "/tenant/permission-choices/", "tenant"),
    ("GET", "/tenant/qradar-tenants/", "tenant"),
    ("GET", "/tenant/soar-incidents/", "tenant"),
    ("GET", "/tenant/itsm-tickets/", "tenant"),
    ("GET", "/tenant/threat-alerts/", "tenant"),
    ("GET", "/tenant/dashboard/", "tenant"),
    ("GET", "/tenant/reports/eps/", "tenant"),
    ("GET", "/integration/types/", "tenant"),
    ("POST", "/integration/", "tenant"),
    ("PUT", "/integration/9/", "tenant"),
    ("DELETE", "/integration/9/", "tenant"),
    ("POST", "/integration/test-connection/", "tenant"),
    ("GET", "/admin/companies/", "tenant"),
    ("POST", "/admin/companies/", "tenant"),
    ("GET", "/admin/mappings/", "tenant"),
    ("GET", "/admin/sla-defaults/", "tenant"),
    ("GET", "/admin/summaries/assets/", "tenant"),
    ("GET", "/admin/dead-letters/", "tenant"),
]


@pytest.mark.parametrize(("method", "path", "service"), ROUTED)
def test_every_public_prefix_reaches_its_upstream(
    gateway, tokens: TokenFactory, method: str, path: str, service: str
) -> None:
    body = b'{"name": "Acme"}' if method in ("POST", "PUT") else None
    with gateway.client() as client:
        response = client.request(method, path + "?limit=5&q=a%20b", content=body, headers=tokens.headers())
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["service"] == service
    assert echoed["method"] == method
    assert echoed["path"] == path
    assert echoed["query"] == "limit=5&q=a%20b"
    assert echoed["body_length"] == (len(body) if body else 0)


@pytest.mark.parametrize(
    "path",
    [
        "/auth/login/",
        "/auth/admin/login/",
        "/auth/token/refresh/",
        # The MFA step and SSO happen before the browser holds any token.
        "/auth/mfa/verify/",
        "/auth/mfa/challenge/enrol/",
        "/auth/oidc/corp/start/",
        "/auth/oidc/corp/callback/",
    ],
)
def test_sign_in_steps_and_refresh_need_no_token(gateway, path: str) -> None:
    with gateway.client() as client:
        response = client.post(path, json={"username": "analyst", "password": "pw"})
    assert response.status_code == 200
    assert response.json()["service"] == "auth"
    assert "x-soc-user-id" not in response.json()["headers"]


def test_jwks_is_public_and_comes_from_auth(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json() == tokens.jwks


@pytest.mark.parametrize(
    "path",
    [
        "/auth/internal/token",
        "/auth/internal/token/",
        "/internal/integrations/1/credentials",
        "/tenant/internal/anything/",
        "/tenant/x/%2e%2e/internal/y/",
        "/unknown/",
    ],
)
def test_internal_and_unknown_paths_answer_404_even_with_a_token(
    gateway, tokens: TokenFactory, path: str
) -> None:
    with gateway.client() as client:
        response = client.get(path, headers=tokens.headers(kind="service", typ="access"))
    assert response.status_code in (404, 400)
    assert response.json()["error"]["code"] in ("not_found", "bad_request")


def test_missing_token_answers_401_in_the_error_shape(gateway) -> None:
    with gateway.client() as client:
        response = client.get("/tenant/dashboard/", headers={"X-Request-ID": "req-401"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json() == {
        "error": {
            "code": "not_authenticated",
            "message": "authentication required",
            "details": {},
            "request_id": "req-401",
        }
    }


@pytest.mark.parametrize(
    "make_token",
    [
        lambda t: "not-a-jwt",
        lambda t: t.token(ttl=-60),  # expired
        lambda t: t.token(typ="refresh"),  # a refresh token is not an access token
        lambda t: TokenFactory().token(),  # signed by a key the auth service never published
        lambda t: t.token(audience_override=True) + "x",  # tampered signature
    ],
)
def test_bad_tokens_answer_401(gateway, tokens: TokenFactory, make_token) -> None:
    with gateway.client() as client:
        response = client.get("/tenant/", headers={"Authorization": f"Bearer {make_token(tokens)}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_verified_identity_is_forwarded_and_forged_identity_dropped(gateway, tokens: TokenFactory) -> None:
    sub, company = str(uuid.uuid4()), str(uuid.uuid4())
    token = tokens.token(kind="tenant", sub=sub, company_id=company)
    with gateway.client() as client:
        response = client.get(
            "/tenant/dashboard/",
            headers={
                "Authorization": f"Bearer {token}",
                "X-Soc-User-Id": "someone-else",
                "X-Soc-User-Kind": "admin",
                "X-Soc-Company-Id": "other-company",
            },
        )
    headers = response.json()["headers"]
    assert headers["x-soc-user-id"] == sub
    assert headers["x-soc-user-kind"] == "tenant"
    assert headers["x-soc-company-id"] == company
    assert headers["authorization"] == f"Bearer {token}"  # the service verifies it again


def test_admins_have_no_company_header(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        headers = client.get("/admin/companies/", headers=tokens.headers(kind="admin")).json()["headers"]
    assert headers["x-soc-user-kind"] == "admin"
    assert "x-soc-company-id" not in headers


def test_hop_by_hop_headers_stay_on_their_hop(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        response = client.get(
            "/tenant/dashboard/",
            headers={
                **tokens.headers(),
                "Connection": "keep-alive, X-Client-Hop",
                "X-Client-Hop": "drop me",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic c2VjcmV0",
                "TE": "trailers",
                "X-Client-Kept": "keep me",
            },
        )
        upstream_saw = response.json()["headers"]
        hop = client.get("/tenant/hop/", headers=tokens.headers())
    for name in ("x-client-hop", "keep-alive", "proxy-authorization", "te"):
        assert name not in upstream_saw
    assert upstream_saw["x-client-kept"] == "keep me"
    assert upstream_saw.get("connection", "keep-alive") == "keep-alive"  # the gateway's own pool
    for name in ("x-upstream-hop", "keep-alive", "proxy-authenticate"):
        assert name not in hop.headers
    assert "x-upstream-hop" not in hop.headers.get("connection", "").lower()
    assert hop.headers["x-upstream-kept"] == "keep me"


def test_request_id_is_forwarded_and_returned(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        given = client.get("/tenant/", headers={**tokens.headers(), "X-Request-ID": "trace-me-42"})
        made = client.get("/tenant/", headers=tokens.headers())
    assert given.headers["x-request-id"] == "trace-me-42"
    assert given.json()["headers"]["x-request-id"] == "trace-me-42"
    assert given.headers.get_list("x-request-id") == ["trace-me-42"]  # not once from each hop
    assert len(made.headers["x-request-id"]) == 32
    assert made.json()["headers"]["x-request-id"] == made.headers["x-request-id"]


def test_forwarding_headers_describe_the_client(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        headers = client.get(
            "/tenant/",
            headers={**tokens.headers(), "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example"},
        ).json()["headers"]
    # The gateway trusts no proxy by default: a client's own X-Forwarded-* is replaced, not extended.
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == gateway.url.removeprefix("http://")
    assert headers["host"] != headers["x-forwarded-host"]


def test_both_slash_forms_reach_the_slashed_route(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        without = client.get("/tenant/dashboard", headers=tokens.headers())
        root = client.get("/tenant", headers=tokens.headers())
    assert without.status_code == 200 and without.json()["path"] == "/tenant/dashboard/"
    assert root.status_code == 200 and root.json()["path"] == "/tenant/"


def test_an_upstream_redirect_to_itself_stays_on_the_gateway(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        response = client.get("/tenant/redirect/", headers=tokens.headers())
    assert response.status_code == 307
    assert response.headers["location"] == "/tenant/"


def test_security_headers_on_proxied_and_own_responses(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        for response in (
            client.get("/tenant/", headers=tokens.headers()),
            client.get("/tenant/"),
            client.get("/healthz"),
        ):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert "strict-transport-security" not in response.headers  # not configured here


def test_hsts_and_cors_when_configured(start_gateway, tokens: TokenFactory) -> None:
    running = start_gateway(hsts_max_age=31536000, cors_origins=["https://portal.example"])
    with running.client() as client:
        preflight = client.options(
            "/tenant/dashboard/",
            headers={
                "Origin": "https://portal.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        actual = client.get(
            "/tenant/dashboard/", headers={**tokens.headers(), "Origin": "https://portal.example"}
        )
        foreign = client.get(
            "/tenant/dashboard/", headers={**tokens.headers(), "Origin": "https://evil.example"}
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://portal.example"
    assert preflight.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert actual.headers["access-control-allow-origin"] == "https://portal.example"
    assert "x-request-id" in actual.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers


def test_the_trace_continues_through_the_gateway(gateway, tokens: TokenFactory) -> None:
    # http.client, not httpx: in this process httpx is instrumented and would start a trace of its own.
    trace_id, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    host, port = gateway.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(
        "GET", "/tenant/", headers={**tokens.headers(), "traceparent": f"00-{trace_id}-{client_span}-01"}
    )
    headers = json.loads(connection.getresponse().read())["headers"]
    connection.close()
    _, upstream_trace, parent, _ = headers["traceparent"].split("-")
    assert upstream_trace == trace_id  # one trace from the caller through the gateway to the service
    assert parent != client_span  # the gateway's own client span sits in between


def test_a_route_declared_without_slash_answers_without_a_redirect_loop(
    start_gateway, serve_app, tokens
) -> None:
    from fastapi import FastAPI

    tenant = FastAPI()

    @tenant.get("/tenant/export.v2")
    @tenant.get("/tenant/no-slash")
    async def no_slash() -> dict[str, str]:
        return {"reached": "yes"}

    with serve_app(tenant) as tenant_url:
        running = start_gateway(tenant_url=tenant_url)
        with running.client() as client:
            plain = client.get("/tenant/no-slash", headers=tokens.headers())
            file_like = client.get("/tenant/export.v2", headers=tokens.headers())
    assert (plain.status_code, plain.json()) == (200, {"reached": "yes"})
    assert file_like.status_code == 200


def test_service_tokens_are_refused_from_outside(gateway, tokens) -> None:
    import httpx

    r = httpx.get(
        f"{gateway.url}/tenant/qradar-tenants/",
        headers=tokens.headers(kind="service", sub="siem-ingest", roles=[], permissions=[]),
        timeout=10,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "service_token_refused"
