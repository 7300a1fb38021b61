"""Egress policy of vendor connections: internal addresses refused unless allowed, checked on the
address actually connected. The resolver is stubbed and no test connects beyond loopback: every
connect attempt is recorded and asserted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from soc_shared.egress import EgressDenied, EgressPolicy, origin_of
from soc_shared.sync import CredentialsOriginError, bind_credentials
from soc_shared.vendor_http import RetryPolicy, VendorError, VendorErrorCategory, VendorHttp

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)

INTERNAL = [
    "127.0.0.1",
    "169.254.169.254",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "224.0.0.251",
    "0.0.0.0",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_refused_by_default(address):
    assert not EgressPolicy().address_admitted(address)


def test_public_addresses_pass_and_the_allowlist_admits_networks_and_hosts():
    policy = EgressPolicy.from_env(
        {"SOC_ENV": "prod", "SOC_EGRESS_ALLOW": "10.20.0.0/16, qradar.corp, .soc.example"}
    )
    assert policy.address_admitted("8.8.8.8") and policy.address_admitted("2606:4700::1111")
    assert policy.address_admitted("10.20.3.4") and not policy.address_admitted("10.21.0.1")
    assert not policy.address_admitted("127.0.0.1")  # prod: no loopback
    assert policy.host_admitted("QRadar.corp.") and policy.host_admitted("xsoar.soc.example")
    assert not policy.host_admitted("evil-qradar.corp")
    assert EgressPolicy.from_env({"SOC_ENV": "test"}).address_admitted("127.0.0.1")
    assert EgressPolicy.from_env({"SOC_ENV": "dev"}).address_admitted("::1")


def test_literal_urls_are_judged_without_resolving():
    prod = EgressPolicy.from_env({"SOC_ENV": "prod"})
    assert "internal" in prod.check_literal("http://169.254.169.254/latest/meta-data/")
    assert prod.check_literal("https://localhost:8443") is not None
    assert prod.check_literal("https://[::1]/") is not None
    assert prod.check_literal("https://qradar.example.com") is None  # names: checked at connect


class ConnectSpy:
    """Records every create_connection of the running loop (and lets loopback ones through)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hosts: list[str] = []
        loop = asyncio.get_running_loop()
        original = loop.create_connection

        async def spy(factory: Any, host: Any = None, port: Any = None, **kw: Any) -> Any:
            self.hosts.append(str(host))
            assert str(host) in ("127.0.0.1", "::1"), f"a test tried to connect to {host}"
            return await original(factory, host, port, **kw)

        monkeypatch.setattr(loop, "create_connection", spy)


def stub_resolver(answers: dict[str, list[str]], calls: list[str]):
    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[host]

    return resolve


async def test_a_name_resolving_to_the_metadata_address_is_refused_before_any_connect(monkeypatch):
    spy = ConnectSpy(monkeypatch)
    calls: list[str] = []
    policy = EgressPolicy(
        allow_loopback=True, resolver=stub_resolver({"vendor.test": ["169.254.169.254"]}, calls)
    )
    async with VendorHttp(
        "http://vendor.test/api/", vendor="qradar", integration_id="i", retry=FAST, egress=policy
    ) as http:
        with pytest.raises(VendorError) as err:
            await http.get_json("offenses")
    assert err.value.category == VendorErrorCategory.EGRESS_DENIED
    assert not err.value.retryable and calls == ["vendor.test"]  # not retried
    assert "169.254.169.254" in err.value.message and "SOC_EGRESS_ALLOW" in err.value.message
    assert spy.hosts == []


async def test_the_connection_goes_to_the_checked_address_only(monkeypatch):
    """DNS rebinding: the name is resolved once, the admitted address is the one connected (a
    second resolution could answer differently); refused addresses of the answer are skipped."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: 2\r\n\r\n{}"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spy = ConnectSpy(monkeypatch)
    calls: list[str] = []
    policy = EgressPolicy(
        allow_loopback=True, resolver=stub_resolver({"vendor.test": ["10.0.0.7", "127.0.0.1"]}, calls)
    )
    try:
        async with VendorHttp(
            f"http://vendor.test:{port}/api/", vendor="qradar", integration_id="i", retry=FAST, egress=policy
        ) as http:
            assert await http.get_json("a") == {}
            assert await http.get_json("b") == {}
    finally:
        server.close()
    assert spy.hosts and set(spy.hosts) == {"127.0.0.1"}  # never 10.0.0.7, never the name itself
    assert calls == ["vendor.test"] * len(spy.hosts)  # one resolution per connection, checked each time
    assert b"host: vendor.test" in heads[0].lower()


async def test_without_loopback_allowance_a_loopback_vendor_is_refused(monkeypatch):
    spy = ConnectSpy(monkeypatch)
    policy = EgressPolicy.from_env({"SOC_ENV": "prod"})
    async with VendorHttp(
        "http://127.0.0.1:9/", vendor="x", integration_id="i", retry=FAST, egress=policy
    ) as http:
        with pytest.raises(VendorError) as err:
            await http.get_json("x")
    assert err.value.category == VendorErrorCategory.EGRESS_DENIED and spy.hosts == []


async def test_egress_denied_is_a_connect_error_for_the_transport_users():
    with pytest.raises(EgressDenied):
        await EgressPolicy(resolver=stub_resolver({"h": ["192.168.0.9"]}, [])).admitted_addresses("h", 443)


def test_origin_and_credential_binding():
    assert origin_of("HTTPS://QRadar.Example.com/api") == "https://qradar.example.com:443"
    assert origin_of("http://q.example:8080") == "http://q.example:8080"
    assert origin_of("https://q.example") != origin_of("http://q.example")
    creds = {"origin": "https://q.example:443", "secrets": {"api_key": "k"}}
    assert bind_credentials({"id": "i", "base_url": "https://q.example/api/"}, creds) is creds
    for moved in ("https://evil.example", "http://q.example", "https://q.example:8443"):
        with pytest.raises(CredentialsOriginError):
            bind_credentials({"id": "i", "base_url": moved}, creds)


async def test_a_revoked_users_tokens_are_refused_and_later_ones_accepted():
    from soc_shared.security import InvalidToken
    from soc_shared.testing import TokenFactory

    tokens = TokenFactory()
    verifier = tokens.verifier()
    old = tokens.token(kind="admin", sub="u1", iat_ms=1_000)
    other = tokens.token(kind="admin", sub="u2", iat_ms=1_000)
    await verifier.verify(old)
    verifier.revocations.apply("u1", 2_000)
    with pytest.raises(InvalidToken):
        await verifier.verify(old)
    await verifier.verify(other)
    await verifier.verify(tokens.token(kind="admin", sub="u1", iat_ms=2_001))
    verifier.revocations.apply("u1", 1_500)  # an older time never lowers the bar
    with pytest.raises(InvalidToken):
        await verifier.verify(old)
