"""The ServiceDesk Plus client against the simulator: both authentications and the v3 Accept
header, input_data list_info paging, search criteria, create/read/update, categorised errors,
keyset paging that survives changes, rate limiting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from soc_itsm_ingest.client import SDP_ACCEPT, SdpClient, TicketPosition
from soc_itsm_ingest.oauth import ZohoAuth, ZohoCredentials, ZohoTokens
from soc_shared.vendor_http import VendorError, VendorErrorCategory
from soc_simulators import sdp as sdp_sim
from soc_simulators import zoho as zoho_sim


@pytest.fixture
def sim() -> Any:
    return sdp_sim.create_app(seed=3, requests=120, xsoar_incidents=80)


def make_client(sim: Any, kit: Any, base_url: str = "http://sdp.sim", **kw: Any) -> SdpClient:
    kw.setdefault("token", kit.TOKEN)
    kw.setdefault("retry", kit.FAST_RETRY)
    return SdpClient(base_url, integration_id="client-test", transport=httpx.ASGITransport(app=sim), **kw)


@pytest_asyncio.fixture(loop_scope="session")
async def client(sim: Any, kit: Any) -> AsyncIterator[SdpClient]:
    c = make_client(sim, kit)
    yield c
    await c.aclose()


async def all_accounts(client: SdpClient) -> list[dict[str, Any]]:
    return [a async for page in client.accounts() for a in page]


async def test_authtoken_and_oauth_both_work_with_the_v3_accept_header(sim: Any, kit: Any) -> None:
    seen: list[httpx.Request] = []

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await httpx.ASGITransport(app=sim).handle_async_request(request)

    on_prem = SdpClient("http://sdp.sim", integration_id="t", token=kit.TOKEN, transport=Spy())
    # The cloud edition lives under /app/<portal>; the base URL names the portal. Its access token
    # comes from the (simulated) Zoho accounts server.
    credentials = ZohoCredentials(
        zoho_sim.CLIENT_ID, zoho_sim.CLIENT_SECRET, zoho_sim.REFRESH_TOKEN, "https://accounts.zoho.example"
    )
    tokens = ZohoTokens()
    cloud = SdpClient(
        "https://sdpondemand.example/app/itdesk",
        integration_id="t",
        oauth=ZohoAuth(tokens, "t", credentials, http_options={"transport": Spy()}),
        transport=Spy(),
    )
    try:
        names = [a["name"] for a in await all_accounts(on_prem)]
        assert names == sorted(a.name for a in sdp_sim.ACCOUNTS)
        assert [a["name"] for a in await all_accounts(cloud)] == names
    finally:
        await on_prem.aclose()
        await cloud.aclose()
    assert seen[0].headers["authtoken"] == kit.TOKEN and "authorization" not in seen[0].headers
    [grant] = [r for r in seen if r.url.path == "/oauth/v2/token"]
    assert grant.url.host == "accounts.zoho.example" and grant.url.params["grant_type"] == "refresh_token"
    assert (
        seen[-1].headers["authorization"] == f"Zoho-oauthtoken {tokens._memory['t'].token}"
        and "authtoken" not in seen[-1].headers
    )
    assert seen[-1].url.path == "/app/itdesk/api/v3/accounts"
    assert all(r.headers["accept"] == SDP_ACCEPT for r in seen if r is not grant)
    assert sim.state.sim.state()["accept_header_mismatches"] == 0


@pytest.mark.parametrize(
    ("options", "category"),
    [
        ({"token": "wrong-key"}, VendorErrorCategory.BAD_CREDENTIALS),
        ({"token": zoho_sim.REFRESH_TOKEN}, VendorErrorCategory.BAD_CREDENTIALS),
    ],  # a refresh token sent as authtoken
)
async def test_bad_credentials_are_categorised(
    sim: Any, kit: Any, options: dict[str, Any], category: VendorErrorCategory
) -> None:
    client = make_client(sim, kit, **options)
    try:
        with pytest.raises(VendorError) as caught:
            await all_accounts(client)
    finally:
        await client.aclose()
    assert (
        caught.value.category is category
        and caught.value.vendor_code == "4022"
        and not caught.value.retryable
    )
    assert "ServiceDesk Plus" in caught.value.message


async def test_vendor_errors_carry_code_and_field(client: SdpClient) -> None:
    with pytest.raises(VendorError) as missing:
        await client.get_request("999999")
    assert missing.value.category is VendorErrorCategory.NOT_FOUND and missing.value.vendor_code == "4007"
    with pytest.raises(VendorError) as bad_priority:
        await client.create_request(
            {"subject": "x", "priority": {"name": "Cosmic"}}, account_id=sdp_sim.ACCOUNTS[0].id
        )
    assert bad_priority.value.category is VendorErrorCategory.INVALID_REQUEST
    assert bad_priority.value.details["field"] == "priority" and bad_priority.value.status == 400
    with pytest.raises(VendorError) as bad_field:
        await client.find_requests("udf_fields.udf_sline_0000", "1")
    assert bad_field.value.category is VendorErrorCategory.INVALID_REQUEST


async def test_create_read_update_and_find_by_incident_field(client: SdpClient, kit: Any) -> None:
    account = sdp_sim.ACCOUNTS[1]
    created = await client.create_request(
        {
            "subject": "Security incident #T-1",
            "description": "d",
            "priority": {"name": "Urgent"},
            "udf_fields": {"udf_sline_4506": "T-1"},
        },
        account_id=account.id,
    )
    assert created["account"]["id"] == account.id and created["priority"]["name"] == "Urgent"
    read = await client.get_request(created["id"], account_id=account.id)
    assert read["udf_fields"]["udf_sline_4506"] == "T-1"
    updated = await client.update_request(created["id"], {"status": {"name": "In Progress"}})
    assert updated["status"]["name"] == "In Progress"
    assert int(updated["last_updated_time"]["value"]) > int(created["last_updated_time"]["value"])
    found = await client.find_requests(kit.UDF, "T-1", account_id=account.id)
    assert [r["id"] for r in found] == [created["id"]]
    assert await client.find_requests(kit.UDF, "T-1", account_id=sdp_sim.ACCOUNTS[2].id) == []


async def test_keyset_paging_reads_every_request_and_every_change_while_requests_change(
    sim: Any, kit: Any
) -> None:
    client = make_client(sim, kit, page_size=25)
    control = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sdp.sim")
    seen: list[tuple[str, int]] = []
    try:
        position, ticks = TicketPosition(0), 0
        async for page, after in client.ticket_pages(
            position, fields_required=["subject", "last_updated_time"]
        ):
            position = after
            seen.extend((r["id"], int(r["last_updated_time"]["value"])) for r in page)
            assert all(set(r) <= {"id", "subject", "last_updated_time"} for r in page)
            if ticks < 4:  # requests change and new ones arrive while we page
                await control.post("/_sim/tick")
                ticks += 1
        assert ticks == 4
        # Nothing changed since the last page: a new read from its position finds nothing.
        assert [p async for p in client.ticket_pages(position)] == []
    finally:
        await client.aclose()
        await control.aclose()
    assert len(seen) == len(set(seen)), "no version read twice"
    positions = [t for _, t in seen]
    assert positions == sorted(positions)
    latest = {rec.id: rec.updated_ms for rec in sim.state.sim.records.values()}
    assert set(latest.items()) <= set(seen), "every request's latest version is read"


async def test_requests_sharing_one_timestamp_are_neither_skipped_nor_repeated(kit: Any) -> None:
    """A desk that stamps many requests with the same millisecond (a bulk import): more than a page
    of them share one last_updated_time."""
    rows = [
        {
            "id": str(1000 + i),
            "subject": f"r{i}",
            "last_updated_time": {"value": str(5000 if i < 230 else 6000 + i)},
        }
        for i in range(260)
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        info = json.loads(request.url.params["input_data"])["list_info"]
        low = int(info["search_criteria"][0]["value"])
        matching = [r for r in rows if int(r["last_updated_time"]["value"]) >= low]
        start, size = int(info["start_index"]) - 1, int(info["row_count"])
        page = matching[start : start + size]
        return httpx.Response(
            200,
            json={
                "requests": page,
                "response_status": [{"status_code": 2000, "status": "success"}],
                "list_info": {"has_more_rows": start + size < len(matching)},
            },
        )

    client = SdpClient(
        "https://sdp.example",
        integration_id="ties",
        token="k",
        transport=httpx.MockTransport(handler),
        page_size=100,
    )
    try:
        ids = [r["id"] async for page, _ in client.ticket_pages(TicketPosition(0)) for r in page]
        again = [
            r["id"]
            async for page, _ in client.ticket_pages(TicketPosition(5000, frozenset(ids[:150])))
            for r in page
        ]
    finally:
        await client.aclose()
    assert sorted(ids) == sorted(r["id"] for r in rows) and len(ids) == len(set(ids))
    assert sorted(again) == sorted(set(r["id"] for r in rows) - set(ids[:150]))


async def test_rate_limit_is_retried_after_retry_after_then_reported(kit: Any) -> None:
    sim = sdp_sim.create_app(seed=3, requests=10, xsoar_incidents=20, rate_limit_per_minute=2)
    client = make_client(sim, kit)
    try:
        await client.list_page("accounts", "accounts", {"row_count": 1})
        await client.list_page("accounts", "accounts", {"row_count": 1})
        with pytest.raises(VendorError) as caught:  # Retry-After ~60 s is more than we wait in line
            await client.list_page("accounts", "accounts", {"row_count": 1})
    finally:
        await client.aclose()
    assert caught.value.category is VendorErrorCategory.RATE_LIMITED and caught.value.vendor_code == "4015"
    assert caught.value.retry_after is not None and caught.value.retry_after > 2
