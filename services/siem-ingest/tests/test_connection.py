"""POST /internal/test-connection names each failure category correctly (real sockets: closed
ports, TLS to a plain-HTTP port, a console that answers garbage)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from soc_siem_ingest.config import Settings
from soc_siem_ingest.main import create_app
from soc_simulators import qradar as qradar_sim
from soc_simulators.faults import Fault


@pytest_asyncio.fixture(loop_scope="session")
async def siem(tokens: Any, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, verifier=tokens.verifier(), credentials=lambda _: None)  # type: ignore[arg-type]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://siem-ingest",
            headers=tokens.headers(kind="service", sub="tenant"),
        ) as client,
    ):
        yield client


def request(
    base_url: str,
    *,
    token: str | None = qradar_sim.DEFAULT_TOKEN,
    username: str | None = None,
    password: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if username is not None:
        kind, secrets = "USERNAME_PASSWORD", {"username": username, "password": password}
    else:
        kind, secrets = "API_KEY", {"api_key": token}
    return {
        "subtype": "IBM_QRADAR",
        "base_url": base_url,
        "credential_kind": kind,
        "credentials": secrets,
        **extra,
    }


async def test_connection(siem: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await siem.post("/internal/test-connection", json=body)
    assert response.status_code == 200, response.text
    return response.json()


test_connection.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


async def test_good_token_and_good_basic_credentials_connect(
    siem: httpx.AsyncClient, socket_sim: Any
) -> None:
    _, url = socket_sim
    for body in (
        request(url),
        request(url, token=None, username=qradar_sim.DEFAULT_USERNAME, password=qradar_sim.DEFAULT_PASSWORD),
    ):
        result = await test_connection(siem, body)
        assert result["ok"] is True, result
        assert result["message"] == "connected to QRadar 7.5.0"
        assert result["details"]["passed_checks"] == ["about", "domains", "offenses", "ariel"]


@pytest.mark.parametrize(
    ("case", "category", "failed_check"),
    [
        ("bad_token", "bad_credentials", "about"),
        ("bad_password", "bad_credentials", "about"),
        ("limited_token", "permission", "offenses"),
        ("wrong_path", "not_found", "about"),
        ("bad_version", "invalid_request", "about"),
        ("garbage", "bad_response", "about"),
    ],
)
async def test_each_vendor_failure_is_categorised(
    siem: httpx.AsyncClient, socket_sim: Any, case: str, category: str, failed_check: str
) -> None:
    app, url = socket_sim
    body = {
        "bad_token": request(url, token="not-a-token"),
        "bad_password": request(url, token=None, username="admin", password="guess"),
        "limited_token": request(url, token=qradar_sim.LIMITED_TOKEN),
        "wrong_path": request(url + "/console/not-here"),
        "bad_version": request(url, settings={"api_version": "99.0"}),
        "garbage": request(url),
    }[case]
    if case == "garbage":  # a proxy answering HTML with 200, twice (test-connection tries twice)
        app.state.faults.arm(Fault(kind="garbage", count=2, path="/api/system/about"))
    result = await test_connection(siem, body)
    app.state.faults.clear()
    assert result["ok"] is False
    assert result["category"] == category, result
    assert result["details"]["failed_check"] == failed_check
    assert "QRadar" in result["message"] or "qradar" in result["message"]
    assert "not-a-token" not in result["message"] and "guess" not in result["message"]


async def test_unreachable_tls_and_bad_ca_are_categorised(
    siem: httpx.AsyncClient, socket_sim: Any, kit: Any
) -> None:
    _, url = socket_sim
    closed = await test_connection(siem, request(f"http://127.0.0.1:{kit.free_port()}"))
    assert (closed["ok"], closed["category"]) == (False, "unreachable")
    tls = await test_connection(siem, request(url.replace("http://", "https://")))
    assert (tls["ok"], tls["category"]) == (False, "tls"), tls
    bad_ca = await test_connection(
        siem, request(url, ca_pem="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")
    )
    assert (bad_ca["ok"], bad_ca["category"]) == (False, "tls")
    incomplete = await test_connection(siem, request(url, token=""))
    assert (incomplete["ok"], incomplete["category"]) == (False, "invalid_request")


async def test_test_connection_requires_a_service_token(
    siem: httpx.AsyncClient, socket_sim: Any, tokens: Any
) -> None:
    _, url = socket_sim
    response = await siem.post(
        "/internal/test-connection", json=request(url), headers=tokens.headers(kind="admin")
    )
    assert response.status_code in (401, 403)
