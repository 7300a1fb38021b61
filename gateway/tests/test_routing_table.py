"""The routing table as data: longest prefix, exact public entries, blocked internal paths."""

from __future__ import annotations

import pytest
from soc_gateway.config import DEFAULT_ROUTES_FILE, Settings
from soc_gateway.routing import BadPath, NotRouted, RouteTable, normalise_path

TABLE = RouteTable.load(DEFAULT_ROUTES_FILE)

PUBLIC_PATHS = {
    # auth service
    "/auth/login/": "auth",
    "/auth/admin/login/": "auth",
    "/auth/token/refresh/": "auth",
    "/auth/logout/": "auth",
    "/auth/create-user/": "auth",
    "/auth/me/": "auth",
    "/auth/preferences/": "auth",
    "/auth/change-password/": "auth",
    "/.well-known/jwks.json": "auth",
    "/admin/users/": "auth",
    "/admin/users/3f2a/": "auth",
    "/admin/login-audit/": "auth",
    "/admin/directory/groups/SOC%20Admins/users/": "auth",
    "/admin/keys/rotate/": "auth",
    "/admin/roles/": "auth",
    "/auth/jwks/": "auth",
    "/auth/permission-choices/": "auth",
    # tenant service
    "/tenant/": "tenant",
    "/tenant/permission-choices/": "tenant",
    "/tenant/qradar-tenants/": "tenant",
    "/tenant/soar-incidents/": "tenant",
    "/tenant/itsm-tickets/": "tenant",
    "/tenant/threat-alerts/": "tenant",
    "/tenant/dashboard/": "tenant",
    "/tenant/reports/consolidated/": "tenant",
    "/integration/": "tenant",
    "/integration/types/": "tenant",
    "/integration/12/": "tenant",
    "/integration/test-connection/": "tenant",
    "/admin/companies/": "tenant",
    "/admin/companies/7/users/": "tenant",
    "/admin/tenants/": "tenant",
    "/admin/mappings/": "tenant",
    "/admin/sla-defaults/": "tenant",
    "/admin/summaries/assets/": "tenant",
    "/admin/dead-letters/": "tenant",
    "/admin/summary/tools/": "tenant",
    "/admin/sla/defaults/": "tenant",
    "/admin/integrations/3/sync-now/": "tenant",
    "/admin/choices/sla-levels/": "tenant",
    "/admin/version/": "tenant",
    "/tenant/chat/messages/": "tenant",
    "/ws/chat/": "tenant",
}


@pytest.mark.parametrize(("path", "service"), sorted(PUBLIC_PATHS.items()))
def test_every_public_path_has_its_service(path: str, service: str) -> None:
    route, forward = TABLE.resolve(path)
    assert route.service == service
    assert forward == path


def test_longest_prefix_wins() -> None:
    assert TABLE.resolve("/admin/users/1/")[0].path == "/admin/users/"
    assert TABLE.resolve("/admin/companies/1/")[0].path == "/admin/"
    assert TABLE.resolve("/tenant/reports/eps/")[0].timeout == 120
    assert TABLE.resolve("/tenant/dashboard/")[0].timeout == 30


def test_only_sign_in_refresh_and_jwks_are_public() -> None:
    public = sorted(route.path for route in TABLE.routes if route.public)
    assert public == [
        "/.well-known/jwks.json",
        "/auth/admin/login/",
        "/auth/jwks/",
        "/auth/login/",
        "/auth/mfa/challenge/enrol/",
        "/auth/mfa/verify/",
        "/auth/oidc/",
        "/auth/token/refresh/",
    ]
    for path in ("/auth/login/", "/auth/mfa/verify/", "/auth/mfa/challenge/enrol/", "/auth/oidc/x/callback/"):
        assert TABLE.resolve(path)[0].rate_limit == "login", path
    # The rest of MFA (enrol, confirm, disable for a signed-in account) still needs a token.
    for path in ("/auth/mfa/", "/auth/mfa/enrol/", "/auth/mfa/confirm/", "/auth/mfa/disable/"):
        assert TABLE.resolve(path)[0].public is False, path
    assert TABLE.resolve("/auth/login/extra/")[0].public is False  # exact entries do not leak to sub-paths


@pytest.mark.parametrize(
    "path",
    [
        "/auth/internal/token",
        "/auth/internal/token/",
        "/internal/integrations/1/credentials",
        "/tenant/internal/x/",
        "/admin/internal/",
        "/nowhere/",
        "/",
        "/healthz-not/",
    ],
)
def test_internal_and_unknown_paths_are_not_routed(path: str) -> None:
    with pytest.raises(NotRouted):
        TABLE.resolve(path)


def test_dot_segments_are_refused() -> None:
    with pytest.raises(BadPath):
        TABLE.resolve("/tenant/../auth/internal/token")


def test_paths_get_the_services_trailing_slash_unless_file_like() -> None:
    assert normalise_path("/tenant/dashboard") == "/tenant/dashboard/"
    assert normalise_path("/tenant/dashboard/") == "/tenant/dashboard/"
    assert normalise_path("/.well-known/jwks.json") == "/.well-known/jwks.json"
    assert TABLE.resolve("/tenant")[1] == "/tenant/"


def test_a_route_may_not_expose_a_blocked_segment() -> None:
    with pytest.raises(ValueError, match="blocked"):
        RouteTable.from_dict({"routes": [{"prefix": "/auth/internal/", "service": "auth"}]})


def test_upstreams_come_from_defaults_the_suite_auth_url_and_json_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOC_AUTH_URL", "http://auth.internal:8001")
    monkeypatch.setenv("SOC_GATEWAY_UPSTREAMS", '{"tenant": "http://tenant.internal:8002/"}')
    monkeypatch.setenv("SOC_GATEWAY_PORT", "9000")
    monkeypatch.setenv("SOC_GATEWAY_CORS_ORIGINS", "https://portal.example, https://admin.example")
    settings = Settings()
    assert settings.port == 9000
    assert settings.upstream_urls["auth"] == "http://auth.internal:8001"
    assert settings.upstream_urls["tenant"] == "http://tenant.internal:8002"
    assert settings.upstream_urls["siem-ingest"] == "http://127.0.0.1:8011"
    assert settings.cors_origins == ["https://portal.example", "https://admin.example"]
    assert settings.jwks_url == "http://auth.internal:8001/.well-known/jwks.json"

    monkeypatch.setenv("SOC_GATEWAY_UPSTREAMS", '{"auth": "http://auth-2:8001"}')
    assert Settings().jwks_url == "http://auth-2:8001/.well-known/jwks.json"
