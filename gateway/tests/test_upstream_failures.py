"""An upstream down (502), slow (504), and the one retry that idempotent requests get."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from soc_shared.testing import TokenFactory


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting what the gateway tries to send; optionally refusing the first
    ``refuse_first`` attempts the way a closed port does."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.attempts: list[tuple[str, str]] = []
        self.refuse_first = refuse_first

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append((request.method, request.url.path))
        if len(self.attempts) <= self.refuse_first:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def down(start_gateway):
    """A gateway whose tenant upstream's port is closed, counting every attempt to reach it."""
    transport = CountingTransport()
    running = start_gateway(tenant_url=closed_port_url(), transport_overrides={"tenant": transport})
    return running, transport


def test_upstream_down_answers_502(down, tokens: TokenFactory) -> None:
    running, _ = down
    with running.client() as client:
        response = client.get("/tenant/dashboard/", headers={**tokens.headers(), "X-Request-ID": "down-1"})
    assert response.status_code == 502
    assert response.json() == {
        "error": {
            "code": "upstream_unavailable",
            "message": "the tenant service is unavailable",
            "details": {"upstream": "tenant"},
            "request_id": "down-1",
        }
    }


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_idempotent_requests_are_retried_once_on_connect_error(
    down, tokens: TokenFactory, method: str
) -> None:
    running, transport = down
    transport.attempts.clear()
    with running.client() as client:
        response = client.request(
            method,
            "/integration/4/",
            headers=tokens.headers(),
            content=b'{"a": 1}' if method == "PUT" else None,
        )
    assert response.status_code == 502
    assert transport.attempts == [(method, "/integration/4/")] * 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_post_and_patch_are_never_retried(down, tokens: TokenFactory, method: str) -> None:
    running, transport = down
    transport.attempts.clear()
    with running.client() as client:
        response = client.request(method, "/integration/", headers=tokens.headers(), content=b"{}")
    assert response.status_code == 502
    assert transport.attempts == [(method, "/integration/")]


def test_a_retry_that_connects_answers_normally(start_gateway, tenant_upstream, tokens: TokenFactory) -> None:
    transport = CountingTransport(refuse_first=1)
    running = start_gateway(transport_overrides={"tenant": transport})
    with running.client() as client:
        response = client.get("/tenant/dashboard/", headers=tokens.headers())
    assert response.status_code == 200
    assert len(transport.attempts) == 2


def test_slow_upstream_answers_504_after_the_route_timeout(gateway, tokens: TokenFactory) -> None:
    started = time.monotonic()
    with gateway.client() as client:
        response = client.get("/tenant/slow/", headers=tokens.headers())
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert response.json()["error"]["details"] == {"upstream": "tenant", "timeout_seconds": 0.3}
    assert elapsed < 1.5  # the upstream takes 2 s


def test_readiness_reports_each_upstream_and_fails_only_without_auth(gateway, start_gateway) -> None:
    with gateway.client() as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["auth"] == "ok" and checks["tenant"] == "ok"
    assert checks["siem-ingest"].startswith("unavailable")  # reported, but not fatal

    no_auth = start_gateway(auth_url=closed_port_url())
    with no_auth.client() as client:
        unready = client.get("/readyz")
        alive = client.get("/healthz")
    assert unready.status_code == 503
    assert unready.json()["status"] == "unavailable"
    assert unready.json()["checks"]["auth"].startswith("unavailable")
    assert unready.json()["checks"]["tenant"] == "ok"
    assert alive.status_code == 200


def test_metrics_count_upstream_responses(gateway, tokens: TokenFactory) -> None:
    with gateway.client() as client:
        client.get("/tenant/", headers=tokens.headers())
        text = client.get("/metrics").text
    assert 'soc_gateway_upstream_responses_total{status="200",upstream="tenant"}' in text
    assert 'route="/tenant/"' in text  # requests are labelled by routing-table entry, not raw path


def test_metrics_and_readiness_are_for_the_operations_network_only(start_gateway) -> None:
    public_facing = start_gateway(ops_networks=["10.0.0.0/8"])  # the test client is 127.0.0.1
    with public_facing.client() as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/readyz").json()["error"]["code"] == "not_found"
        assert client.get("/healthz").status_code == 200
