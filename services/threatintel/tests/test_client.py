"""The CSAP client: signing exactly as documented, a fresh Expires per attempt, refusals reported
as such (bad secret → bad_credentials, a skewed clock → clock), keyset paging over equal seconds
and late alerts, and no signature or secret in the logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from loguru import logger
from soc_shared.vendor_http import RetryPolicy, VendorError, VendorErrorCategory
from soc_simulators import cyware as cyware_sim
from soc_simulators.faults import Fault
from soc_threatintel.client import AlertPosition, CywareClient, CywareSigner, signature

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=2)


def test_signature_is_base64_hmac_sha1_of_access_id_newline_expires() -> None:
    expected = base64.b64encode(
        hmac.new(b"acme-secret", b"acme-access\n1717416300", hashlib.sha1).digest()
    ).decode()
    assert (
        signature("acme-access", "acme-secret", 1717416300)
        == expected
        == cyware_sim.sign("acme-access", "acme-secret", 1717416300)
    )
    signer = CywareSigner("acme-access", "acme-secret", window_seconds=20, clock=lambda: 1717416280.7)
    assert signer.params() == {"AccessID": "acme-access", "Expires": "1717416300", "Signature": expected}
    assert "acme-secret" not in repr(signer)


def test_signed_url_is_url_encoded() -> None:
    # a secret whose signature contains "+", "/" and "=" (base64's URL-unsafe characters)
    secret = next(f"k{i}" for i in range(10_000) if {"+", "/"} <= set(signature("id", f"k{i}", 1000)))
    sig = signature("id", secret, 1000)
    signer = CywareSigner("id", secret, window_seconds=30, clock=lambda: 970.0)
    request = httpx.Request("GET", "https://acme.cyware.com/api/csap/v1/tag/?page=1")
    signed = next(signer.auth_flow(request))
    raw = signed.url.query.decode()
    assert f"Signature={quote(sig, safe='')}" in raw and "+" not in raw.split("Signature=")[1]
    assert signed.url.params["Signature"] == sig and signed.url.params["Expires"] == "1000"
    assert signed.url.params["page"] == "1"


async def test_every_attempt_is_signed_with_a_fresh_expires() -> None:
    now = [1717416000.0]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["Expires"])
        now[0] += 120  # time passes between attempts (back-off, slow vendor)
        if len(seen) < 3:
            return httpx.Response(503, json={"detail": "busy"})
        return httpx.Response(200, json=[])

    client = CywareClient(
        "https://acme.cyware.com",
        integration_id="i1",
        access_id="a",
        secret_key="s",
        clock=lambda: now[0],
        signature_window_seconds=20,
        transport=httpx.MockTransport(handler),
        retry=FAST,
    )
    assert await client.tags() == []
    await client.aclose()
    assert seen == ["1717416020", "1717416140", "1717416260"]


@pytest.mark.parametrize(
    "base_url",
    [
        "https://acme.cyware.com",
        "https://acme.cyware.com/",
        "https://acme.cyware.com/api/csap/v1",
        "https://acme.cyware.com/api/csap/v1/",
    ],
)
async def test_base_url_with_or_without_the_api_prefix(base_url: str) -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, json=[])

    client = CywareClient(
        base_url, integration_id="i1", access_id="a", secret_key="s", transport=httpx.MockTransport(handler)
    )
    await client.categories()
    await client.aclose()
    assert paths == ["/api/csap/v1/list_category/"]


@pytest.fixture
def sim() -> Any:
    return cyware_sim.create_app(seed=3, alerts_per_tenant=60)


def client_for_sim(
    sim: Any, *, access_id: str = "acme-access", secret_key: str = "acme-secret", **options: Any
) -> CywareClient:
    options.setdefault("retry", FAST)
    return CywareClient(
        "http://cyware.sim",
        integration_id="i1",
        access_id=access_id,
        secret_key=secret_key,
        transport=httpx.ASGITransport(app=sim),
        **options,
    )


async def test_bad_secret_and_unknown_access_id_are_bad_credentials(sim: Any) -> None:
    for kwargs, code in (
        ({"secret_key": "not-the-secret"}, "invalid_signature"),
        ({"access_id": "nobody"}, "unknown_access_id"),
    ):
        client = client_for_sim(sim, **kwargs)
        with pytest.raises(VendorError) as caught:
            await client.list_alerts(page_size=1)
        await client.aclose()
        error = caught.value
        assert (error.category, error.status, error.vendor_code) == (
            VendorErrorCategory.BAD_CREDENTIALS,
            401,
            code,
        )
        assert error.details["attempts"] == 1, "a refused signature is not retried"
        assert "not-the-secret" not in error.message


async def test_a_client_clock_in_the_past_is_a_clock_error_naming_both_times(sim: Any) -> None:
    client = client_for_sim(sim, clock=lambda: time.time() - 3600)
    with pytest.raises(VendorError) as caught:
        await client.tags()
    await client.aclose()
    error = caught.value
    assert error.category is VendorErrorCategory.CLOCK and error.vendor_code == "signature_expired"
    assert error.message.startswith(
        "Cyware refused the request signature as expired: the Cyware server time is "
    )
    assert "but our clock says" in error.message and "behind the server" in error.message
    assert -3602 <= error.details["clock_skew_seconds"] <= -3598
    assert error.details["attempts"] == 1


async def test_a_client_clock_far_ahead_is_a_clock_error_too(sim: Any) -> None:
    client = client_for_sim(sim, clock=lambda: time.time() + 7200)
    with pytest.raises(VendorError) as caught:
        await client.tags()
    await client.aclose()
    assert (
        caught.value.category is VendorErrorCategory.CLOCK and caught.value.vendor_code == "expires_too_far"
    )
    assert "ahead of the server" in caught.value.message


async def test_a_small_skew_within_the_window_is_tolerated(sim: Any) -> None:
    client = client_for_sim(sim, clock=lambda: time.time() - 8)
    assert len(await client.tags()) == 16
    await client.aclose()


def test_the_signature_window_is_short_and_bounded_by_cyware_s_limit() -> None:
    signer = CywareSigner("a", "s", clock=lambda: 1000.0)
    assert int(signer.params()["Expires"]) - 1000 == 20
    for window in (0, 31, 300):
        with pytest.raises(ValueError):
            CywareSigner("a", "s", window_seconds=window)


async def test_a_server_clock_ahead_of_ours_is_named_as_skew_in_the_error() -> None:
    """The server's clock runs 95 s ahead: our 20 s signatures arrive expired. The error takes the
    server's time from its answer and names the skew; it is not retried (it would fail the same)."""
    ahead = cyware_sim.create_app(seed=5, alerts_per_tenant=5, clock_offset_s=95)
    client = client_for_sim(ahead)
    with pytest.raises(VendorError) as caught:
        await client.tags()
    await client.aclose()
    error = caught.value
    assert error.category is VendorErrorCategory.CLOCK and error.vendor_code == "signature_expired"
    assert -97 <= error.details["clock_skew_seconds"] <= -93 and error.details["attempts"] == 1
    assert "behind the server" in error.message and "signed valid for 20 s" in error.message


async def test_the_old_five_minute_window_is_refused_by_a_server_enforcing_cyware_s_limit(sim: Any) -> None:
    client = client_for_sim(sim)
    client.signer.window_seconds = 300  # what the client used to sign with
    with pytest.raises(VendorError) as caught:
        await client.tags()
    await client.aclose()
    assert caught.value.category is VendorErrorCategory.CLOCK
    assert caught.value.vendor_code == "expires_too_far"


async def _all_chunks(
    client: CywareClient, after: AlertPosition, page_size: int
) -> tuple[list[str], AlertPosition]:
    ids: list[str] = []
    position = after
    async for chunk in client.alert_chunks(after, page_size=page_size):
        assert [d["short_id"] for d in chunk.details if d] == [s["short_id"] for s in chunk.summaries]
        ids += [s["short_id"] for s in chunk.summaries]
        position = chunk.position
    return ids, position


async def test_many_alerts_in_one_second_are_paged_without_skips_or_repeats(sim: Any) -> None:
    state = sim.state.sim
    tenant = state.tenants["acme-access"]
    second = tenant.keys[-1][0] + 10
    crowd = [state.publish(tenant, published=second)["short_id"] for _ in range(23)]
    client = client_for_sim(sim)
    ids, position = await _all_chunks(client, AlertPosition(), page_size=10)
    expected = [k[2] for k in tenant.keys]
    assert ids == expected and len(ids) == len(set(ids)) == 60 + 23
    assert position == AlertPosition(second, tuple(crowd))
    # a cursor inside the crowded second resumes inside it
    ids, _ = await _all_chunks(client, AlertPosition(second, tuple(crowd[:12])), page_size=5)
    assert ids == crowd[12:]
    # nothing new: nothing handed out
    assert (await _all_chunks(client, position, page_size=10))[0] == []
    await client.aclose()


async def test_a_late_alert_at_the_boundary_second_is_picked_up(sim: Any) -> None:
    """shift_page publishes a back-dated alert at the head of the requested window: the keyset's
    window always starts at the boundary second, so that alert is read, once."""
    state = sim.state.sim
    tenant = state.tenants["acme-access"]
    client = client_for_sim(sim)
    _, position = await _all_chunks(client, AlertPosition(), page_size=7)
    sim.state.faults.arm(Fault(kind="shift_page", count=1, path="/list_alert/"))
    ids, after = await _all_chunks(client, position, page_size=7)
    late = [k[2] for k in tenant.keys if k[0] == position.published_time and k[2] not in position.short_ids]
    assert len(late) == 1 and ids == late
    assert after == AlertPosition(position.published_time, (*position.short_ids, late[0]))
    await client.aclose()


async def test_detail_of_a_deleted_alert_is_skipped_and_counted(sim: Any) -> None:
    tenant = sim.state.sim.tenants["acme-access"]
    client = client_for_sim(sim)
    gone = tenant.keys[0][2]
    del tenant.alerts[gone]  # listed (still in keys) but its detail answers 404
    chunk = await anext(client.alert_chunks(AlertPosition(), page_size=5))
    assert chunk.summaries[0]["short_id"] == gone and chunk.details[0] is None
    assert all(d is not None for d in chunk.details[1:])
    await client.aclose()


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    yield lines
    logger.remove(sink)


async def test_no_signature_or_secret_in_logs(sim: Any, log_lines: list[str]) -> None:
    sim.state.faults.arm(Fault(kind="500", count=2, path="/list_alert/"))
    sim.state.faults.arm(Fault(kind="garbage", count=1, path="/tag/"))
    client = client_for_sim(sim)
    await client.list_alerts(page_size=5)
    await client.tags()
    await client.aclose()
    assert len(log_lines) >= 3  # the retries were logged...
    text = "\n".join(log_lines)
    assert (
        "Signature" not in text and "acme-secret" not in text and "Expires" not in text
    )  # ...without credentials
