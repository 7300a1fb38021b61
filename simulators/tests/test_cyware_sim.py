"""The Cyware CSAP simulator: signed requests, tenant isolation, DRF-style paging, time filters."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from soc_simulators.cyware import create_app, sign

API = "/api/csap/v1"
ACME = ("acme-access", "acme-secret")
GLOBEX = ("globex-access", "globex-secret")


def signed(tenant: tuple[str, str] = ACME, expires: int | None = None, **params: Any) -> dict[str, Any]:
    access_id, secret = tenant
    expires = expires if expires is not None else int(time.time()) + 20
    return {
        "AccessID": access_id,
        "Expires": expires,
        "Signature": sign(access_id, secret, expires),
        **params,
    }


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cyware.test")


@pytest.fixture
async def cyware() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(create_app(seed=7, alerts_per_tenant=90)) as client:
        yield client


async def _all_alerts(
    client: httpx.AsyncClient, tenant: tuple[str, str] = ACME, page_size: int = 7, **params: Any
) -> list[dict]:
    alerts: list[dict] = []
    page = 1
    while True:
        r = await client.get(
            f"{API}/list_alert/", params=signed(tenant, page=page, page_size=page_size, **params)
        )
        assert r.status_code == 200, r.text
        body = r.json()
        alerts.extend(body["data"])
        assert (body["previous"] is None) == (page == 1)
        if body["next"] is None:
            assert len(alerts) == body["count"]
            return alerts
        page += 1


def _assert_auth_error(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == code and body["detail"]
    return body


async def test_a_correctly_signed_request_lists_alerts(cyware: httpx.AsyncClient) -> None:
    r = await cyware.get(f"{API}/list_alert/", params=signed(page=1, page_size=10))
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 90 and len(body["data"]) == 10 and body["previous"] is None
    assert "page=2" in body["next"]
    alert = body["data"][0]
    assert {"short_id", "title", "status", "published_time", "tlp"} <= set(alert)
    assert alert["status"] == "PUBLISHED" and isinstance(alert["published_time"], int)


async def test_bad_signature_unknown_id_and_missing_parameters_are_401(cyware: httpx.AsyncClient) -> None:
    tampered = {**signed(), "Signature": sign("acme-access", "not-the-secret", int(time.time()) + 300)}
    _assert_auth_error(await cyware.get(f"{API}/list_alert/", params=tampered), "invalid_signature")
    wrong_expiry = {**signed(), "Expires": int(time.time()) + 19}  # signature was made for +20
    _assert_auth_error(await cyware.get(f"{API}/tag/", params=wrong_expiry), "invalid_signature")
    _assert_auth_error(await cyware.get(f"{API}/tag/", params=signed(("nobody", "x"))), "unknown_access_id")
    _assert_auth_error(await cyware.get(f"{API}/tag/"), "missing_credentials")
    _assert_auth_error(
        await cyware.get(f"{API}/tag/", params={**signed(), "Expires": "soon"}), "invalid_expires"
    )


async def test_expired_and_far_future_signatures_say_it_is_a_clock_problem(cyware: httpx.AsyncClient) -> None:
    now = int(time.time())
    expired = _assert_auth_error(
        await cyware.get(f"{API}/list_alert/", params=signed(expires=now - 30)), "signature_expired"
    )
    assert "expired" in expired["detail"].lower() and abs(expired["server_time"] - now) <= 2
    ahead = _assert_auth_error(
        await cyware.get(f"{API}/list_alert/", params=signed(expires=now + 7200)), "expires_too_far"
    )
    assert "clock" in ahead["detail"].lower()
    assert (await cyware.get(f"{API}/list_alert/", params=signed(expires=now + 25))).status_code == 200
    # Cyware: a signature is valid for at most 30 s from issue; five minutes ahead is refused
    too_far = _assert_auth_error(
        await cyware.get(f"{API}/list_alert/", params=signed(expires=now + 300)), "expires_too_far"
    )
    assert "at most 30 s" in too_far["detail"]


async def test_each_access_id_sees_only_its_own_tenant(cyware: httpx.AsyncClient) -> None:
    acme, globex = await _all_alerts(cyware, ACME, 50), await _all_alerts(cyware, GLOBEX, 50)
    assert not {a["short_id"] for a in acme} & {a["short_id"] for a in globex}
    theirs = globex[0]["short_id"]
    hidden = await cyware.get(f"{API}/get_alert_detail/{theirs}/", params=signed(ACME))
    assert hidden.status_code == 404 and hidden.json()["detail"] == "Not found."
    assert (await cyware.get(f"{API}/get_alert_detail/{theirs}/", params=signed(GLOBEX))).status_code == 200
    for path, key in (
        ("tag/", "tag_id"),
        ("list_recipient_group/", "group_id"),
        ("list_category/", "category_id"),
    ):
        mine = {x[key] for x in (await cyware.get(f"{API}/{path}", params=signed(ACME))).json()}
        other = {x[key] for x in (await cyware.get(f"{API}/{path}", params=signed(GLOBEX))).json()}
        assert mine and other and not mine & other, path


async def test_paging_returns_every_alert_once_in_publication_order(cyware: httpx.AsyncClient) -> None:
    alerts = await _all_alerts(cyware, page_size=7)
    ids = [a["short_id"] for a in alerts]
    assert len(ids) == len(set(ids)) == 90
    stamps = [a["published_time"] for a in alerts]
    assert stamps == sorted(stamps)
    last = await cyware.get(f"{API}/list_alert/", params=signed(page="last", page_size=7))
    assert [a["short_id"] for a in last.json()["data"]] == ids[-(90 % 7 or 7) :]
    for bad_page in (0, 14, "x"):
        r = await cyware.get(f"{API}/list_alert/", params=signed(page=bad_page, page_size=7))
        assert r.status_code == 404 and r.json()["detail"] == "Invalid page.", bad_page


async def test_start_and_end_time_filters_are_complete_and_inclusive(cyware: httpx.AsyncClient) -> None:
    everything = await _all_alerts(cyware, page_size=100)
    start, end = everything[30]["published_time"], everything[70]["published_time"]
    expected = [a["short_id"] for a in everything if start <= a["published_time"] <= end]
    window = await _all_alerts(cyware, page_size=6, start_time=start, end_time=end)
    assert [a["short_id"] for a in window] == expected and len(expected) >= 41
    since = await _all_alerts(cyware, page_size=9, start_time=start)
    assert [a["short_id"] for a in since] == [
        a["short_id"] for a in everything if a["published_time"] >= start
    ]
    none = await cyware.get(f"{API}/list_alert/", params=signed(start_time=end + 10**7))
    assert none.status_code == 200 and none.json() == {"count": 0, "next": None, "previous": None, "data": []}


async def test_page_size_is_capped_at_1000() -> None:
    async with _client(create_app(seed=3, alerts_per_tenant=1100)) as client:
        body = (await client.get(f"{API}/list_alert/", params=signed(page_size=5000))).json()
        assert body["count"] == 1100 and len(body["data"]) == 1000 and body["next"]


async def test_tick_publishes_new_alerts_after_the_cursor(cyware: httpx.AsyncClient) -> None:
    before = await _all_alerts(cyware, page_size=100)
    cursor = max(a["published_time"] for a in before)
    published = [(await cyware.post("/_sim/tick")).json()["published"] for _ in range(3)]
    new_acme = [sid for tick in published for sid in tick["acme-access"]]
    assert all(1 <= len(ids) <= 3 for tick in published for ids in tick.values())
    fresh = await _all_alerts(cyware, page_size=4, start_time=cursor + 1)
    assert [a["short_id"] for a in fresh] == new_acme
    stamps = [a["published_time"] for a in fresh]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))  # strictly increasing


async def test_alert_detail_and_reference_data_fit_together(cyware: httpx.AsyncClient) -> None:
    alert = (await cyware.get(f"{API}/list_alert/", params=signed(page_size=1))).json()["data"][0]
    detail = (await cyware.get(f"{API}/get_alert_detail/{alert['short_id']}/", params=signed())).json()
    assert set(detail) == {
        "short_id", "title", "content", "status", "tlp", "published_time", "push_required", "push_email_notification",
        "tracking_id", "card_image", "card_info", "event", "intel_id", "rfi_id", "card_group", "recipient_groups",
        "card_tag", "card_category",
    }  # fmt: skip
    assert {k: detail[k] for k in alert} == alert and detail["content"].startswith("<p>")
    tags = {t["tag_id"]: t for t in (await cyware.get(f"{API}/tag/", params=signed())).json()}
    groups = {
        g["group_id"] for g in (await cyware.get(f"{API}/list_recipient_group/", params=signed())).json()
    }
    categories = (await cyware.get(f"{API}/list_category/", params=signed())).json()
    assert all(
        t["tag_id"] in tags and t["tag_name"] == tags[t["tag_id"]]["tag_name"] for t in detail["card_tag"]
    )
    assert {g["group_id"] for g in detail["card_group"] + detail["recipient_groups"]} <= groups
    assert detail["card_category"]["category_id"] in {c["category_id"] for c in categories}
    assert all(set(t) == {"tag_id", "tag_name", "tag_slug", "is_active"} for t in tags.values())
    field_groups = (await cyware.get(f"{API}/list_additional_fields/", params=signed())).json()
    assert [g["key"] for g in field_groups] == ["system", "custom"]
    field_ids = {f["field_id"] for g in field_groups for f in g["values"]}
    for category in categories:
        refs = (
            category["threat_indicator_fields"] + category["additional_fields"] + category["required_fields"]
        )
        assert {r["field_id"] for r in refs} <= field_ids
    again = (await cyware.get(f"{API}/get_alert_detail/{alert['short_id']}/", params=signed())).json()
    assert again == detail


async def test_bulk_seed_targets_one_tenant(cyware: httpx.AsyncClient) -> None:
    r = await cyware.post("/_sim/seed", json={"alerts": 30_000})
    assert r.status_code == 200
    counts = (await cyware.get("/_sim/state")).json()["tenants"]
    assert sum(t["alerts"] for t in counts.values()) == 30_000 + 3 * 90
    await cyware.post("/_sim/seed", json={"alerts": 5, "access_id": "initech-access"})
    after = (await cyware.get("/_sim/state")).json()["tenants"]
    assert after["initech-access"]["alerts"] == counts["initech-access"]["alerts"] + 5
    assert after["acme-access"]["alerts"] == counts["acme-access"]["alerts"]
    body = (await cyware.get(f"{API}/list_alert/", params=signed(page=5, page_size=1000))).json()
    assert len(body["data"]) == 1000


async def test_faults_rate_limit_then_recover_and_shifted_pages_duplicate(cyware: httpx.AsyncClient) -> None:
    await cyware.post("/_sim/faults", json={"kind": "429", "path": "/list_alert/", "retry_after": 2})
    throttled = await cyware.get(f"{API}/list_alert/", params=signed())
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2"
    page_one = (await cyware.get(f"{API}/list_alert/", params=signed(page_size=5))).json()
    await cyware.post("/_sim/faults", json={"kind": "shift_page", "path": "/list_alert/"})
    shifted = (await cyware.get(f"{API}/list_alert/", params=signed(page_size=5))).json()
    assert shifted["count"] == page_one["count"] + 1
    old_ids = [a["short_id"] for a in page_one["data"]]
    assert shifted["data"][0]["short_id"] not in old_ids
    assert [a["short_id"] for a in shifted["data"][1:]] == old_ids[:4]


async def test_throttling_when_configured() -> None:
    async with _client(create_app(seed=1, alerts_per_tenant=5, rate_limit_per_minute=2)) as client:
        assert (await client.get(f"{API}/tag/", params=signed())).status_code == 200
        assert (await client.get(f"{API}/tag/", params=signed())).status_code == 200
        limited = await client.get(f"{API}/tag/", params=signed())
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["detail"].startswith("Request was throttled")
        assert (await client.get(f"{API}/tag/", params=signed(GLOBEX))).status_code == 200  # per access id


async def test_same_seed_same_alerts() -> None:
    anchor = 1_750_000_000
    async with (
        _client(create_app(seed=11, anchor_s=anchor)) as a,
        _client(create_app(seed=11, anchor_s=anchor)) as b,
    ):
        assert await _all_alerts(a, page_size=200) == await _all_alerts(b, page_size=200)
