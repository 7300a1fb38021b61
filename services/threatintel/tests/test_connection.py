"""POST /internal/test-connection names each failure category correctly (real sockets: closed
ports, TLS to a plain-HTTP port, a vendor that answers garbage; a refused signature; a skewed clock)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from soc_simulators.faults import Fault
from soc_threatintel.config import Settings
from soc_threatintel.main import create_app


@asynccontextmanager
async def service(tokens: Any, settings: Settings, **client_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings,
        verifier=tokens.verifier(),
        credentials=lambda _: None,  # type: ignore[arg-type]
        client_options=client_options or None,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://threatintel",
            headers=tokens.headers(kind="service", sub="tenant"),
        ) as client,
    ):
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def threatintel(tokens: Any, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with service(tokens, settings) as client:
        yield client


def request(
    base_url: str, *, access_key: str = "acme-access", secret_key: str = "acme-secret", **extra: Any
) -> dict[str, Any]:
    return {
        "subtype": "CYWARE",
        "base_url": base_url,
        "credential_kind": "SECRET_KEY_ACCESS_KEY",
        "credentials": {"access_key": access_key, "secret_key": secret_key},
        **extra,
    }


async def test_connection(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/internal/test-connection", json=body)
    assert response.status_code == 200, response.text
    return response.json()


test_connection.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


async def test_good_credentials_connect(threatintel: httpx.AsyncClient, socket_sim: Any) -> None:
    app, url = socket_sim
    result = await test_connection(threatintel, request(url))
    assert result["ok"] is True, result
    assert result["message"] == "connected to Cyware CSAP (40 alerts visible)"
    assert result["details"]["passed_checks"] == [
        "alerts",
        "tags",
        "recipient_groups",
        "categories",
        "additional_fields",
    ]


@pytest.mark.parametrize(
    ("case", "category", "failed_check", "code"),
    [
        ("bad_secret", "bad_credentials", "alerts", "invalid_signature"),
        ("unknown_access_id", "bad_credentials", "alerts", "unknown_access_id"),
        ("wrong_path", "not_found", "alerts", None),
        ("garbage", "bad_response", "alerts", None),
        ("throttled", "rate_limited", "alerts", None),
        ("server_error", "server_error", "tags", None),
    ],
)
async def test_each_vendor_failure_is_categorised(
    threatintel: httpx.AsyncClient,
    socket_sim: Any,
    case: str,
    category: str,
    failed_check: str,
    code: str | None,
) -> None:
    app, url = socket_sim
    body = {
        "bad_secret": request(url, secret_key="not-the-secret"),
        "unknown_access_id": request(url, access_key="nobody"),
        "wrong_path": request(url + "/csap/not-here"),
        "garbage": request(url),
        "throttled": request(url),
        "server_error": request(url),
    }[case]
    if case == "garbage":  # a proxy answering HTML with 200, twice (test-connection tries twice)
        app.state.faults.arm(Fault(kind="garbage", count=2, path="/list_alert/"))
    if case == "throttled":  # longer than test-connection waits
        app.state.faults.arm(Fault(kind="429", count=2, retry_after=60, path="/list_alert/"))
    if case == "server_error":
        app.state.faults.arm(Fault(kind="500", count=2, path="/tag/"))
    result = await test_connection(threatintel, body)
    app.state.faults.clear()
    assert result["ok"] is False
    assert result["category"] == category, result
    assert result["details"]["failed_check"] == failed_check and result["details"]["vendor_code"] == code
    assert "yware" in result["message"]
    assert "not-the-secret" not in result["message"] and "Signature=" not in str(result)  # no signed URL


async def test_a_skewed_clock_is_reported_as_a_clock_problem(
    tokens: Any, settings: Settings, socket_sim: Any
) -> None:
    _, url = socket_sim
    for skew, code, words in (
        (-3600, "signature_expired", "behind the server"),
        (7200, "expires_too_far", "ahead of the server"),
    ):
        async with service(tokens, settings, clock=lambda s=skew: time.time() + s) as client:
            result = await test_connection(client, request(url))
        assert (result["ok"], result["category"], result["details"]["vendor_code"]) == (
            False,
            "clock",
            code,
        ), result
        assert "the Cyware server time is" in result["message"] and words in result["message"]
        details = result["details"]
        assert (
            abs(details["server_time"] - time.time()) < 5 and abs(details["clock_skew_seconds"] - skew) <= 2
        )


async def test_unreachable_tls_bad_ca_and_incomplete_credentials(
    threatintel: httpx.AsyncClient, socket_sim: Any, kit: Any
) -> None:
    _, url = socket_sim
    closed = await test_connection(threatintel, request(f"http://127.0.0.1:{kit.free_port()}"))
    assert (closed["ok"], closed["category"]) == (False, "unreachable")
    tls = await test_connection(threatintel, request(url.replace("http://", "https://")))
    assert (tls["ok"], tls["category"]) == (False, "tls"), tls
    bad_ca = await test_connection(
        threatintel, request(url, ca_pem="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")
    )
    assert (bad_ca["ok"], bad_ca["category"]) == (False, "tls")
    incomplete = await test_connection(threatintel, request(url, secret_key=""))
    assert (incomplete["ok"], incomplete["category"]) == (False, "invalid_request")
    bad_settings = await test_connection(
        threatintel, request(url, settings={"signature_window_seconds": 300})
    )
    assert (bad_settings["ok"], bad_settings["category"]) == (False, "invalid_request")


async def test_test_connection_requires_a_service_token(
    threatintel: httpx.AsyncClient, socket_sim: Any, tokens: Any
) -> None:
    _, url = socket_sim
    response = await threatintel.post(
        "/internal/test-connection", json=request(url), headers=tokens.headers(kind="admin")
    )
    assert response.status_code in (401, 403)
