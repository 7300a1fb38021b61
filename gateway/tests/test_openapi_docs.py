"""The merged OpenAPI document and the documentation pages served from the gateway's own assets."""

from __future__ import annotations

import re

import yaml
from fastapi import FastAPI
from openapi_spec_validator import validate
from soc_gateway.config import DEFAULT_ROUTES_FILE
from soc_gateway.openapi import merge_specs
from soc_gateway.routing import RouteTable

TABLE = RouteTable.load(DEFAULT_ROUTES_FILE)

PUBLIC_ROUTES = {
    ("/auth/login/", "post"),
    ("/auth/admin/login/", "post"),
    ("/auth/token/refresh/", "post"),
    ("/auth/me/", "get"),
    ("/admin/users/", "get"),
    ("/admin/users/{user_id}/", "put"),
    ("/.well-known/jwks.json", "get"),
    ("/tenant/", "get"),
    ("/tenant/dashboard/", "get"),
    ("/tenant/soar-incidents/", "get"),
    ("/integration/", "get"),
    ("/admin/companies/", "get"),
}


def _doc(paths: dict, schemas: dict) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _get(ref: str) -> dict:
    return {
        "get": {
            "operationId": "list",
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": ref}}}}
            },
        }
    }


def test_clashing_components_get_service_prefixes_and_refs_follow() -> None:
    auth = _doc(
        {"/admin/users/": _get("#/components/schemas/Page")},
        {"Page": {"type": "object", "properties": {"users": {"type": "array"}}}, "Error": {"type": "object"}},
    )
    tenant = _doc(
        {
            "/tenant/": _get("#/components/schemas/Page"),
            "/internal/secrets/": _get("#/components/schemas/Error"),
        },
        {"Page": {"type": "object", "properties": {"items": {"type": "array"}}}, "Error": {"type": "object"}},
    )
    merged = merge_specs({"auth": auth, "tenant": tenant}, TABLE)
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"auth_Page", "tenant_Page", "Error"}  # identical definitions are shared
    assert merged["paths"]["/admin/users/"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/auth_Page"}
    assert merged["paths"]["/tenant/"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/tenant_Page"}
    assert "/internal/secrets/" not in merged["paths"]
    assert {op["get"]["operationId"] for op in merged["paths"].values()} == {"list", "tenant_list"}
    validate(merged)


def test_a_rename_that_changes_a_referencing_component_renames_that_too() -> None:
    # Both define an identical `Wrapper`, but it points at `Inner`, which differs: Wrapper must split too.
    wrapper = {"type": "object", "properties": {"inner": {"$ref": "#/components/schemas/Inner"}}}
    auth = _doc(
        {"/auth/me/": _get("#/components/schemas/Wrapper")}, {"Wrapper": wrapper, "Inner": {"type": "string"}}
    )
    tenant = _doc(
        {"/tenant/": _get("#/components/schemas/Wrapper")}, {"Wrapper": wrapper, "Inner": {"type": "integer"}}
    )
    merged = merge_specs({"auth": auth, "tenant": tenant}, TABLE)
    schemas = merged["components"]["schemas"]
    assert schemas["auth_Wrapper"]["properties"]["inner"] == {"$ref": "#/components/schemas/auth_Inner"}
    assert schemas["tenant_Wrapper"]["properties"]["inner"] == {"$ref": "#/components/schemas/tenant_Inner"}
    validate(merged)


def test_merged_spec_is_valid_and_has_every_public_route(gateway) -> None:
    with gateway.client() as client:
        spec = client.get("/swagger.json").json()
        as_yaml = yaml.safe_load(client.get("/swagger.yaml").text)
        openapi_alias = client.get("/openapi.json").json()
    validate(spec)
    assert as_yaml == spec == openapi_alias
    operations = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert PUBLIC_ROUTES <= operations
    assert not [p for p in spec["paths"] if "internal" in p or p in ("/healthz", "/readyz", "/metrics")]
    assert spec["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /auth/login/ (or the admin login).",
        }
    }
    assert spec["paths"]["/auth/login/"]["post"]["security"] == []
    assert spec["paths"]["/tenant/dashboard/"]["get"]["security"] == [{"bearerAuth": []}]
    # Both stand-ins call a different model `Page`: each keeps its own under a prefixed name.
    assert {"auth_Page", "tenant_Page", "LoginIn", "Company"} <= set(spec["components"]["schemas"])
    assert "Page" not in spec["components"]["schemas"]
    assert spec["info"]["x-soc-upstreams"]["auth"]["status"] == "ok"


def test_an_upstream_that_goes_down_keeps_its_last_good_copy(start_gateway, serve_app) -> None:
    tenant = FastAPI()

    @tenant.get("/tenant/only-here/")
    async def only_here() -> dict[str, str]:
        return {}

    with serve_app(tenant) as tenant_url:
        running = start_gateway(tenant_url=tenant_url)
        with running.client() as client:
            fresh = client.get("/swagger.json?refresh=true").json()
    with running.client() as client:
        later = client.get("/swagger.json?refresh=true").json()
    assert fresh["info"]["x-soc-upstreams"]["tenant"]["status"] == "ok"
    assert later["info"]["x-soc-upstreams"]["tenant"]["status"] == "stale"
    assert "/tenant/only-here/" in later["paths"]
    assert later["info"]["x-soc-upstreams"]["auth"]["status"] == "ok"


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']""", html) + re.findall(
        r"url: '([^']+)'", html
    )


def test_docs_pages_load_and_use_only_local_assets(gateway) -> None:
    with gateway.client() as client:
        for page in ("/docs/", "/redoc/"):
            response = client.get(page)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
            html = response.text
            assert "cdn." not in html and "googleapis" not in html
            urls = _asset_urls(html)
            assert urls, page
            for url in urls:
                assert url.startswith("/") and not url.startswith("//"), url
                asset = client.get(url)
                assert asset.status_code == 200, url
            csp = response.headers["content-security-policy"]
            assert (
                "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
            )
        swagger_csp = client.get("/docs/").headers["content-security-policy"]
        assert "'sha256-" in swagger_csp  # the page's one inline script, and nothing else inline
        assert client.get("/docs", follow_redirects=True).url.path == "/docs/"
