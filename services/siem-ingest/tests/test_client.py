"""The QRadar client against the simulator: both authentications, Version, Range paging,
filter/fields/sort, categorised errors, keyset paging that survives changes, TLS with a private CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from soc_shared.vendor_http import VendorError, VendorErrorCategory
from soc_siem_ingest.client import OffensePosition, QRadarClient
from soc_simulators import qradar as qradar_sim

LOG_SOURCES = "config/event_sources/log_source_management/log_sources"


@pytest.fixture
def sim() -> Any:
    return qradar_sim.create_app(seed=3, offenses=120, ariel_delay=0.05)


def make_client(sim: Any, kit: Any, **kw: Any) -> QRadarClient:
    kw.setdefault("token", kit.TOKEN)
    return QRadarClient(
        "http://qradar.sim",
        integration_id="client-test",
        transport=httpx.ASGITransport(app=sim),
        retry=kit.FAST_RETRY,
        **kw,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def client(sim: Any, kit: Any) -> AsyncIterator[QRadarClient]:
    c = make_client(sim, kit)
    yield c
    await c.aclose()


async def test_token_and_basic_authentication_both_work_and_send_version(sim: Any, kit: Any) -> None:
    basic = make_client(
        sim,
        kit,
        token=None,
        username=qradar_sim.DEFAULT_USERNAME,
        password=qradar_sim.DEFAULT_PASSWORD,
        api_version="15.1",
    )
    token = make_client(sim, kit)
    try:
        assert (await basic.about())["external_version"] == "7.5.0"
        assert (await token.about())["external_version"] == "7.5.0"
    finally:
        await basic.aclose()
        await token.aclose()
    assert sim.state.sim.versions_seen["15.1"] == 1 and sim.state.sim.versions_seen["16.0"] == 1


@pytest.mark.parametrize(
    ("options", "path", "params", "category", "reason"),
    [
        ({"token": "revoked-token"}, "system/about", None, VendorErrorCategory.BAD_CREDENTIALS, None),
        (
            {"token": None, "username": "admin", "password": "wrong"},
            "system/about",
            None,
            VendorErrorCategory.BAD_CREDENTIALS,
            None,
        ),
        ({"token": qradar_sim.LIMITED_TOKEN}, "siem/offenses", None, VendorErrorCategory.PERMISSION, None),
        ({}, "siem/no_such_thing", None, VendorErrorCategory.NOT_FOUND, None),
        (
            {},
            "siem/offenses",
            {"filter": "last_updated_time >>> 3"},
            VendorErrorCategory.INVALID_REQUEST,
            "invalid_filter",
        ),
        (
            {"api_version": "99.0"},
            "system/about",
            None,
            VendorErrorCategory.INVALID_REQUEST,
            "unsupported_version",
        ),
    ],
)
async def test_qradar_errors_are_categorised(
    sim: Any,
    kit: Any,
    options: dict[str, Any],
    path: str,
    params: dict[str, Any] | None,
    category: VendorErrorCategory,
    reason: str | None,
) -> None:
    client = make_client(sim, kit, **options)
    try:
        with pytest.raises(VendorError) as caught:
            await client.get_page(path, 0, 9, params=params)
    finally:
        await client.aclose()
    assert caught.value.category is category
    assert caught.value.details.get("reason") == reason
    assert not caught.value.retryable
    assert "QRadar" in caught.value.message


async def test_range_paging_reads_content_range_and_applies_fields_filter_sort(
    client: QRadarClient, sim: Any
) -> None:
    expected = sorted(ls["id"] for ls in sim.state.sim.log_sources if ls["enabled"])
    pages = [
        p
        async for p in client.pages(
            LOG_SOURCES, page_size=7, params={"filter": "enabled = true", "fields": "id,name", "sort": "-id"}
        )
    ]
    assert all(len(p) == 7 for p in pages[:-1]) and 0 < len(pages[-1]) <= 7
    ids = [r["id"] for p in pages for r in p]
    assert ids == sorted(expected, reverse=True)
    assert all(set(r) == {"id", "name"} for p in pages for r in p)
    assert sim.state.faults.requests["/api/" + LOG_SOURCES] == len(pages)


async def test_offense_keyset_paging_skips_nothing_while_offenses_change(
    client: QRadarClient, sim: Any
) -> None:
    state: qradar_sim.QRadarState = sim.state.sim
    rng = random.Random(4)
    seen: list[tuple[int, int]] = []
    async for page in client.offense_pages(
        OffensePosition(-1, -1), page_size=10, fields="id,last_persisted_time,last_updated_time"
    ):
        seen.extend((r["last_persisted_time"], r["id"]) for r in page)
        read = {i for _, i in seen}
        unread = [o for o in state.offenses.values() if o["id"] not in read]
        if unread:  # an offense already read gets events, one not yet read an analyst's change
            state.add_events(state.offenses[rng.choice(sorted(read))], event_count=1)
            state.analyst_change(rng.choice(unread), follow_up=True)
    assert seen == sorted(set(seen)), "positions must strictly increase"
    final = {(o["last_persisted_time"], o["id"]) for o in state.offenses.values()}
    assert final <= set(seen), "every offense's latest version is read"


async def test_pages_follow_content_range_when_the_console_answers_fewer_items(kit: Any) -> None:
    sim = qradar_sim.create_app(seed=3, offenses=120, max_page_items=7)
    client = make_client(sim, kit, page_size=50)
    try:
        offenses = [o async for page in client.offense_pages(OffensePosition(-1, -1)) for o in page]
        sources = await client.collection(LOG_SOURCES)
    finally:
        await client.aclose()
    assert len(offenses) == len({o["id"] for o in offenses}) == 120
    assert len(sources) == len(sim.state.sim.log_sources)


class _Tamper(httpx.AsyncBaseTransport):
    """Between the client and the console: rewrites the answers of one path (a proxy or a console
    bug), everything else passes."""

    def __init__(self, app: Any, path: str, rewrite: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.path, self.rewrite = path, rewrite

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != self.path:
            return response
        await response.aread()
        return self.rewrite(response)


async def test_a_page_shorter_than_its_content_range_is_a_bad_response_not_a_skip(sim: Any, kit: Any) -> None:
    def drop_last_item(response: httpx.Response) -> httpx.Response:
        items = response.json()[:-1]  # the header still claims the full page
        return httpx.Response(response.status_code, headers=response.headers, json=items)

    client = QRadarClient(
        "http://qradar.sim",
        integration_id="client-test",
        token=kit.TOKEN,
        transport=_Tamper(sim, "/api/siem/offenses", drop_last_item),
        retry=kit.FAST_RETRY,
        page_size=20,
    )
    try:
        with pytest.raises(VendorError) as caught:
            async for _ in client.offense_pages(OffensePosition(-1, -1)):
                pass
    finally:
        await client.aclose()
    assert caught.value.category is VendorErrorCategory.BAD_RESPONSE
    assert caught.value.details["reason"] == "inconsistent_page"
    assert caught.value.details["attempts"] == kit.FAST_RETRY.attempts  # retried before giving up


async def test_ariel_search_is_deleted_after_results_and_cancelled_on_timeout(kit: Any) -> None:
    sim = qradar_sim.create_app(seed=3, offenses=10, ariel_delay=0.05)
    client = make_client(sim, kit, ariel_poll_initial=0.01)
    try:
        rows = await client.ariel_search(
            "SELECT COUNT(*) AS total_events FROM events WHERE domainid = 1 LAST 1 HOURS", max_seconds=5
        )
        assert len(rows) == 1 and rows[0]["total_events"] > 0
        assert not sim.state.sim.searches  # deleted once read
        sim.state.sim.ariel_delay = 30
        with pytest.raises(VendorError) as caught:
            await client.ariel_search(
                "SELECT COUNT(*) AS total_events FROM events LAST 1 HOURS", max_seconds=0.2
            )
        assert caught.value.category is VendorErrorCategory.TIMEOUT
        assert not sim.state.sim.searches  # the running search was cancelled with DELETE
    finally:
        await client.aclose()


# ------------------------------------------------------------------------------------------ TLS
def _certificate_chain(directory: Path) -> tuple[str, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it (as QRadar consoles often have)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Customer Private CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
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
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qradar-console")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM).decode(), cert_path, key_path


async def test_private_ca_is_trusted_when_given_and_refused_otherwise(kit: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ca_pem, cert, key = _certificate_chain(Path(tmp))
        app = qradar_sim.create_app(seed=3, offenses=5)
        with kit.ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
            base = f"https://127.0.0.1:{server.port}"
            trusted = QRadarClient(
                base, integration_id="tls", token=kit.TOKEN, ca_pem=ca_pem, retry=kit.FAST_RETRY
            )
            untrusted = QRadarClient(base, integration_id="tls", token=kit.TOKEN, retry=kit.FAST_RETRY)
            try:
                assert (await trusted.about())["external_version"] == "7.5.0"
                with pytest.raises(VendorError) as caught:
                    await untrusted.about()
                assert caught.value.category is VendorErrorCategory.TLS and not caught.value.retryable
            finally:
                await trusted.aclose()
                await untrusted.aclose()


async def test_paging_follows_content_range_when_the_console_answers_short_pages(kit: Any) -> None:
    records = [{"id": i} for i in range(10)]

    def capped(request: httpx.Request) -> httpx.Response:
        first, last = (int(x) for x in request.headers["Range"].removeprefix("items=").split("-"))
        page = records[first : min(last + 1, first + 3)]  # this console never answers more than 3
        end = first + len(page) - 1
        return httpx.Response(
            200, json=page, headers={"Content-Range": f"items {first}-{end}/{len(records)}"}
        )

    client = QRadarClient(
        "http://qradar.example", integration_id="c", token="t", transport=httpx.MockTransport(capped)
    )
    try:
        assert await client.collection("config/domain_management/domains") == records
    finally:
        await client.aclose()
