"""POST /internal/test-connection (service token) names each failure's category precisely."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from soc_simulators import xsoar


async def _test(make_harness, tokens, socket_sim, body: dict[str, Any]) -> dict[str, Any]:
    h = await make_harness(socket_sim.app, network=True)
    request = {
        "subtype": "CORTEX_XSOAR",
        "base_url": socket_sim.url,
        "credential_kind": "API_KEY",
        "credentials": {"api_key": xsoar.API_KEY},
        "settings": {},
        **body,
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=h.app), base_url="http://soar-ingest"
    ) as client:
        response = await client.post(
            "/internal/test-connection", json=request, headers=tokens.headers(kind="service", sub="tenant")
        )
    assert response.status_code == 200, response.text
    return response.json()


async def test_xsoar6_key_connects(make_harness, tokens, socket_sim) -> None:
    result = await _test(make_harness, tokens, socket_sim, {})
    assert result["ok"] is True and result["category"] is None
    assert result["details"]["auth_style"] == "xsoar6" and result["details"]["multi_tenant"] is True
    assert result["details"]["accounts"] == ["acme", "globex", "initech", "umbrella"]
    assert "multi-tenant with 4 accounts" in result["message"]


async def test_xsoar8_key_and_key_id_connect(make_harness, tokens, socket_sim) -> None:
    result = await _test(
        make_harness,
        tokens,
        socket_sim,
        {
            "credentials": {"api_key": xsoar.API_KEY_V8, "api_key_id": xsoar.API_KEY_V8_ID},
            "settings": {"auth_style": "xsoar8", "accounts": ["globex"]},
        },
    )
    assert result["ok"] is True and result["details"]["auth_style"] == "xsoar8"
    assert result["details"]["accounts"] == ["globex"] and result["details"]["incidents"] > 0


async def test_xsoar8_key_as_access_and_secret_key_connects(make_harness, tokens, socket_sim) -> None:
    result = await _test(
        make_harness,
        tokens,
        socket_sim,
        {
            "credential_kind": "SECRET_KEY_ACCESS_KEY",
            "credentials": {"secret_key": xsoar.API_KEY_V8, "access_key": xsoar.API_KEY_V8_ID},
        },
    )
    assert result["ok"] is True and result["details"]["auth_style"] == "xsoar8"


@pytest.mark.parametrize(
    ("credentials", "integration_settings"),
    [
        ({"api_key": "not-the-key"}, {}),  # wrong key
        ({"api_key": xsoar.API_KEY_V8}, {}),  # an XSOAR 8 key without its key id
        ({"api_key": xsoar.API_KEY_V8, "api_key_id": "99"}, {}),  # ... with the wrong key id
        ({"api_key": xsoar.API_KEY_V8}, {"auth_style": "xsoar8"}),  # XSOAR 8 asked for, no key id given
        (
            {"api_key": xsoar.API_KEY_V8, "api_key_id": xsoar.API_KEY_V8_ID},
            {"auth_style": "xsoar6"},
        ),  # id not sent
    ],
)
async def test_refused_credentials_are_bad_credentials(
    make_harness, tokens, socket_sim, credentials, integration_settings
) -> None:
    result = await _test(
        make_harness, tokens, socket_sim, {"credentials": credentials, "settings": integration_settings}
    )
    assert result["ok"] is False and result["category"] == "bad_credentials", result
    assert xsoar.API_KEY_V8 not in result["message"] and "not-the-key" not in result["message"]


async def test_a_closed_port_is_unreachable(make_harness, tokens, socket_sim, closed_port) -> None:
    result = await _test(make_harness, tokens, socket_sim, {"base_url": f"http://127.0.0.1:{closed_port}"})
    assert result["ok"] is False and result["category"] == "unreachable"


async def test_https_to_a_plain_http_port_is_tls(make_harness, tokens, socket_sim) -> None:
    result = await _test(
        make_harness, tokens, socket_sim, {"base_url": socket_sim.url.replace("http://", "https://")}
    )
    assert result["ok"] is False and result["category"] == "tls"


async def test_a_garbage_answer_is_bad_response(make_harness, tokens, socket_sim) -> None:
    async with httpx.AsyncClient(base_url=socket_sim.url) as control:
        await control.post("/_sim/faults", json={"kind": "garbage", "count": 2, "path": "/accounts"})
        try:
            result = await _test(make_harness, tokens, socket_sim, {})
        finally:
            await control.delete("/_sim/faults")
    assert result["ok"] is False and result["category"] == "bad_response"


async def test_a_long_rate_limit_is_rate_limited(make_harness, tokens, socket_sim) -> None:
    async with httpx.AsyncClient(base_url=socket_sim.url) as control:
        await control.post(
            "/_sim/faults", json={"kind": "429", "count": 2, "retry_after": 120, "path": "/accounts"}
        )
        try:
            result = await _test(make_harness, tokens, socket_sim, {})
        finally:
            await control.delete("/_sim/faults")
    assert result["ok"] is False and result["category"] == "rate_limited"


async def test_a_wrong_base_path_is_not_found(make_harness, tokens, socket_sim) -> None:
    result = await _test(make_harness, tokens, socket_sim, {"base_url": f"{socket_sim.url}/not-xsoar"})
    assert result["ok"] is False and result["category"] == "not_found"


async def test_a_field_map_typo_is_invalid_request(make_harness, tokens, socket_sim) -> None:
    result = await _test(
        make_harness, tokens, socket_sim, {"settings": {"field_map": {"tta": "incidenttta"}}}
    )
    assert result["ok"] is False and result["category"] == "invalid_request" and "tta" in result["message"]


async def test_username_and_password_are_not_an_xsoar_credential(make_harness, tokens, socket_sim) -> None:
    result = await _test(
        make_harness,
        tokens,
        socket_sim,
        {"credential_kind": "USERNAME_PASSWORD", "credentials": {"username": "a", "password": "b"}},
    )
    assert result["ok"] is False and result["category"] == "invalid_request"


async def test_only_services_may_test_connections(make_harness, tokens, socket_sim) -> None:
    h = await make_harness(socket_sim.app, network=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=h.app), base_url="http://soar-ingest"
    ) as client:
        response = await client.post(
            "/internal/test-connection",
            headers=tokens.headers(kind="admin"),
            json={
                "subtype": "CORTEX_XSOAR",
                "base_url": socket_sim.url,
                "credential_kind": "API_KEY",
                "credentials": {"api_key": xsoar.API_KEY},
            },
        )
    assert response.status_code == 403
