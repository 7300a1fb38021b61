import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY
from soc_shared.vendor_http import (
    RetryPolicy,
    VendorError,
    VendorErrorCategory,
    VendorHttp,
    parse_retry_after,
)

FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002, max_retry_after=30)


class Recorder:
    """Stands in for asyncio.sleep: records the backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def scripted(*steps: Any) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    """A MockTransport handler answering each request with the next step (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = steps[min(len(seen), len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return step

    return handler, seen


def client(handler: Callable[..., Any], *, sleep: Recorder | None = None, **kw: Any) -> VendorHttp:
    kw.setdefault("retry", FAST)
    return VendorHttp(
        "https://qradar.example/api",
        vendor="qradar",
        integration_id="int-1",
        headers={"SEC": "token-must-not-leak"},
        transport=httpx.MockTransport(handler),
        sleep=sleep or Recorder(),
        **kw,
    )


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_rate_limited_with_retry_after_then_succeeds_after_waiting_at_least_retry_after() -> None:
    sleep = Recorder()
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(200, json={"offenses": []}),
    )
    async with client(handler, sleep=sleep) as http:
        assert await http.get_json("/siem/offenses") == {"offenses": []}
    assert len(seen) == 2
    assert sleep.delays == [2.0]
    assert str(seen[0].url) == "https://qradar.example/api/siem/offenses"
    assert seen[0].headers["SEC"] == "token-must-not-leak"


async def test_retry_after_longer_than_the_cap_fails_at_once_for_the_scheduler_to_postpone() -> None:
    sleep = Recorder()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "3600"}))
    async with client(handler, sleep=sleep) as http:
        with pytest.raises(VendorError) as err:
            await http.request("GET", "/siem/offenses")
    assert len(seen) == 1 and sleep.delays == []
    assert err.value.category is VendorErrorCategory.RATE_LIMITED
    assert err.value.retry_after == 3600 and err.value.retryable


async def test_service_unavailable_twice_then_ok() -> None:
    sleep = Recorder()
    before = counter("soc_vendor_retries_total", vendor="qradar", reason="server_error")
    handler, seen = scripted(httpx.Response(503), httpx.Response(503), httpx.Response(200, json=[1]))
    async with client(handler, sleep=sleep) as http:
        response = await http.request("GET", "/siem/offenses")
    assert response.json() == [1]
    assert len(seen) == 3 and len(sleep.delays) == 2
    assert all(0 <= d <= FAST.max_delay for d in sleep.delays)
    assert counter("soc_vendor_retries_total", vendor="qradar", reason="server_error") == before + 2


async def test_server_error_forever_gives_up_after_all_attempts() -> None:
    ok_before = counter("soc_vendor_requests_total", vendor="qradar", outcome="server_error")
    handler, seen = scripted(httpx.Response(500, text="boom"))
    async with client(handler) as http:
        with pytest.raises(VendorError) as err:
            await http.request("GET", "/siem/offenses", params={"filter": "id > 5"})
    assert len(seen) == FAST.attempts
    error = err.value
    assert error.category is VendorErrorCategory.SERVER_ERROR and error.status == 500 and error.retryable
    assert error.details == {"method": "GET", "path": "/siem/offenses", "attempts": FAST.attempts}
    assert (
        counter("soc_vendor_requests_total", vendor="qradar", outcome="server_error")
        == ok_before + FAST.attempts
    )


async def test_bad_credentials_are_not_retried() -> None:
    handler, seen = scripted(httpx.Response(401))
    async with client(handler) as http:
        with pytest.raises(VendorError) as err:
            await http.request("GET", "/siem/offenses")
    assert len(seen) == 1
    assert err.value.category is VendorErrorCategory.BAD_CREDENTIALS and not err.value.retryable
    assert "token-must-not-leak" not in str(err.value) + repr(err.value.to_dict())


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (403, VendorErrorCategory.PERMISSION),
        (404, VendorErrorCategory.NOT_FOUND),
        (400, VendorErrorCategory.INVALID_REQUEST),
        (409, VendorErrorCategory.INVALID_REQUEST),
        (422, VendorErrorCategory.INVALID_REQUEST),
        (302, VendorErrorCategory.BAD_RESPONSE),
    ],
)
async def test_other_statuses_map_to_a_category_without_retry(
    status: int, category: VendorErrorCategory
) -> None:
    handler, seen = scripted(httpx.Response(status))
    async with client(handler) as http:
        with pytest.raises(VendorError) as err:
            await http.request("GET", "/x")
    assert len(seen) == 1 and err.value.category is category and err.value.status == status


async def test_error_mapper_categorises_vendor_bodies_and_falls_back_when_it_declines_or_fails() -> None:
    def mapper(response: httpx.Response) -> VendorError | None:
        body = response.json()  # raises on the HTML page below: the default mapping must still apply
        if body.get("code") == 1020:
            return VendorError(
                VendorErrorCategory.CLOCK, "request signature expired; check the clock", vendor_code="1020"
            )
        return None

    handler, _ = scripted(httpx.Response(401, json={"code": 1020}))
    async with client(handler, error_mapper=mapper) as http:
        with pytest.raises(VendorError) as err:
            await http.request("GET", "/x")
    assert (err.value.category, err.value.vendor_code, err.value.status) == (
        VendorErrorCategory.CLOCK,
        "1020",
        401,
    )

    for response in (httpx.Response(403, json={"code": 1}), httpx.Response(403, text="<html>denied</html>")):
        handler, _ = scripted(response)
        async with client(handler, error_mapper=mapper) as http:
            with pytest.raises(VendorError) as err:
                await http.request("GET", "/x")
        assert err.value.category is VendorErrorCategory.PERMISSION


async def test_garbage_body_on_get_json_is_retried_then_bad_response() -> None:
    handler, seen = scripted(
        httpx.Response(200, text="<html>proxy error</html>"),
        httpx.Response(200, content=b'{"offenses": [{"id": 1'),
    )
    async with client(handler) as http:
        with pytest.raises(VendorError) as err:
            await http.get_json("/siem/offenses")
    assert len(seen) == FAST.attempts
    assert err.value.category is VendorErrorCategory.BAD_RESPONSE and err.value.retryable


async def test_truncated_body_then_good_body_succeeds() -> None:
    handler, seen = scripted(httpx.Response(200, content=b'[{"id": 1'), httpx.Response(200, json=[{"id": 1}]))
    async with client(handler) as http:
        assert await http.get_json("/siem/offenses") == [{"id": 1}]
    assert len(seen) == 2


async def test_connect_error_is_unreachable_after_retries() -> None:
    handler, seen = scripted(httpx.ConnectError("[Errno 111] Connection refused"))
    async with client(handler) as http:
        with pytest.raises(VendorError) as err:
            await http.request("GET", "/x")
    assert len(seen) == FAST.attempts
    assert err.value.category is VendorErrorCategory.UNREACHABLE and err.value.status is None


async def test_certificate_failure_is_tls_and_not_retried() -> None:
    handler, seen = scripted(httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    async with client(handler) as http:
        with pytest.raises(VendorError) as err:
            await http.request("GET", "/x")
    assert len(seen) == 1 and err.value.category is VendorErrorCategory.TLS


async def test_timeouts_are_retried_then_timeout() -> None:
    handler, seen = scripted(
        httpx.ReadTimeout("timed out"), httpx.ConnectTimeout("timed out"), httpx.PoolTimeout("timed out")
    )
    async with client(handler) as http:
        with pytest.raises(VendorError) as err:
            await http.request("GET", "/x")
    assert len(seen) == FAST.attempts and err.value.category is VendorErrorCategory.TIMEOUT


async def test_post_is_not_repeated_when_the_vendor_may_have_processed_it() -> None:
    for failure in (httpx.Response(500), httpx.ReadTimeout("timed out")):
        handler, seen = scripted(failure, httpx.Response(201))
        async with client(handler) as http:
            with pytest.raises(VendorError):
                await http.request("POST", "/requests", json={"subject": "phishing"})
        assert len(seen) == 1

    handler, seen = scripted(httpx.Response(429), httpx.ConnectError("refused"), httpx.Response(201))
    async with client(handler) as http:
        assert (await http.request("POST", "/requests", json={"subject": "phishing"})).status_code == 201
    assert len(seen) == 3

    handler, seen = scripted(httpx.Response(500), httpx.Response(200, json={"data": []}))
    async with client(handler) as http:
        assert await http.request_json("POST", "/incidents/search", json={}, idempotent=True) == {"data": []}
    assert len(seen) == 2


async def test_retry_is_logged_without_query_string_headers_or_body() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m) + repr(m.record["extra"])), level="WARNING")
    try:
        handler, _ = scripted(httpx.Response(503, text="secret-body"), httpx.Response(200))
        async with client(handler) as http:
            await http.request("GET", "/siem/offenses?sig=abc123", params={"api_key": "k"})
    finally:
        logger.remove(sink)
    assert len(lines) == 1
    line = lines[0]
    assert "GET /siem/offenses failed" in line and "int-1" in line and "server_error" in line
    for secret in ("abc123", "api_key", "token-must-not-leak", "secret-body"):
        assert secret not in line


async def test_concurrency_limit_holds_per_integration() -> None:
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json={})

    async with client(handler, max_concurrency=3) as http:
        await asyncio.gather(*(http.get_json(f"/assets/{i}") for i in range(20)))
    assert peak == 3


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + dt.timedelta(seconds=42), usegmt=True), now=now) == 42.0
    assert parse_retry_after(format_datetime(now - dt.timedelta(seconds=5), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped_by_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.2, max_delay=1.0)
    assert all(0 <= policy.backoff(1) <= 0.2 for _ in range(100))
    assert all(0 <= policy.backoff(10) <= 1.0 for _ in range(100))
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


# --- a real TLS handshake against a server signed by a private CA -------------------------------


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        ).add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture
async def tls_vendor(tmp_path: Path):  # noqa: ANN201
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Customer Private CA", ca_key, None, None)
    leaf = _cert("qradar.customer.local", leaf_key, ca, ca_key)
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = b'{"version": "7.5.0"}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}", ca.public_bytes(serialization.Encoding.PEM).decode()
    server.close()
    await server.wait_closed()


async def test_custom_ca_pem_verifies_the_vendor_certificate(tls_vendor: tuple[str, str]) -> None:
    base_url, ca_pem = tls_vendor
    async with VendorHttp(
        base_url, vendor="qradar", integration_id="int-1", ca_pem=ca_pem, retry=FAST
    ) as http:
        assert await http.get_json("/api/system/about") == {"version": "7.5.0"}

    async with VendorHttp(base_url, vendor="qradar", integration_id="int-1", retry=FAST) as http:
        with pytest.raises(VendorError) as err:
            await http.get_json("/api/system/about")
    assert err.value.category is VendorErrorCategory.TLS and not err.value.retryable


def test_invalid_ca_pem_is_a_tls_error() -> None:
    with pytest.raises(VendorError) as err:
        VendorHttp(
            "https://x", vendor="qradar", integration_id="int-1", ca_pem="-----BEGIN CERTIFICATE-----\nnope"
        )
    assert err.value.category is VendorErrorCategory.TLS


# --- proxies from the environment ---------------------------------------------------------------
async def _recording_http_server(answer: bytes) -> tuple[asyncio.Server, list[bytes]]:
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%b" % (len(answer), answer)
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), heads


async def test_an_http_proxy_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, heads = await _recording_http_server(b'{"via": "proxy"}')
    port = proxy.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        async with VendorHttp("http://vendor.example.test/api/", vendor="test", integration_id="i") as http:
            assert await http.get_json("things") == {"via": "proxy"}
    finally:
        proxy.close()
    # The proxy got the request in absolute form: the vendor was reached through it.
    assert heads and heads[0].startswith(b"GET http://vendor.example.test/api/things HTTP/1.1")


async def test_without_a_proxy_the_vendor_is_reached_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    vendor, heads = await _recording_http_server(b'{"via": "direct"}')
    port = vendor.sockets[0].getsockname()[1]
    try:
        async with VendorHttp(f"http://127.0.0.1:{port}/api/", vendor="test", integration_id="i") as http:
            assert await http.get_json("things") == {"via": "direct"}
    finally:
        vendor.close()
    assert heads and heads[0].startswith(b"GET /api/things HTTP/1.1")
