"""The web console's static build served at / beside the API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from soc_gateway.console import CONSOLE_CSP

from .conftest import RunningGateway

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def console_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console")
    (root / "index.html").write_text(
        '<!doctype html><div id="root"></div><script src="/assets/index-abc123.js"></script>'
    )
    (root / "favicon.svg").write_text("<svg/>")
    (root / "assets").mkdir()
    (root / "assets" / "index-abc123.js").write_text("console.log('console')")
    (root / "secret.txt.map").write_text("x")
    return root


@pytest.fixture(scope="module")
def console_gateway(start_gateway: Callable[..., RunningGateway], console_dir: Path) -> RunningGateway:
    return start_gateway(console_dir=console_dir)


def test_root_and_console_routes_answer_the_shell_never_cached(console_gateway: RunningGateway) -> None:
    with console_gateway.client() as client:
        for path in ("/", "/dashboard", "/offenses/12", "/manage/companies"):
            response = client.get(path, headers=HTML)
            assert response.status_code == 200, path
            assert '<div id="root">' in response.text
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["content-security-policy"] == CONSOLE_CSP
            assert response.headers["content-type"].startswith("text/html")


def test_hashed_assets_are_immutable_and_other_files_short_lived(console_gateway: RunningGateway) -> None:
    with console_gateway.client() as client:
        asset = client.get("/assets/index-abc123.js")
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["content-type"].startswith("text/javascript")
        assert "etag" in asset.headers
        icon = client.get("/favicon.svg")
        assert icon.status_code == 200 and icon.headers["cache-control"] == "public, max-age=3600"
        head = client.head("/assets/index-abc123.js")
        assert head.status_code == 200 and head.content == b""


def test_missing_or_escaping_assets_are_json_404s(console_gateway: RunningGateway) -> None:
    with console_gateway.client() as client:
        for path in ("/assets/nope.js", "/assets/", "/assets/..%2Findex.html"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"


def test_api_paths_are_never_shadowed(console_gateway: RunningGateway) -> None:
    with console_gateway.client() as client:
        # A routed path still needs its token, even from a browser.
        tenant = client.get("/tenant/dashboard/", headers=HTML)
        assert tenant.status_code == 401 and tenant.json()["error"]["code"] == "not_authenticated"
        # An unknown path asked for by an API client keeps the JSON 404.
        unknown = client.get("/no-such-api/", headers={"accept": "application/json"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        # Internal paths are never routed, not even to the console shell.
        internal = client.get("/internal/credentials/", headers=HTML)
        assert internal.status_code == 404 and internal.json()["error"]["code"] == "not_found"
        # The gateway's own pages keep their paths.
        assert client.get("/docs/").status_code == 200
        assert client.get("/healthz").status_code == 200
        # Writes to unknown paths are not the console's business.
        assert client.post("/dashboard", headers=HTML).status_code == 404


def test_without_a_build_the_gateway_serves_only_the_api(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        response = client.get("/", headers=HTML)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
