"""Every documented CSAP response shape (tests/fixtures, built from VENDOR-APIS.md) parses and
normalises exactly; the error bodies map to the right categories."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from soc_shared.events import TiAlert, TiCategory, TiCustomField, TiGroup, TiRef, TiTag, make_event
from soc_shared.vendor_http import VendorErrorCategory
from soc_threatintel import normalize
from soc_threatintel.client import AlertPosition, CywareClient, cyware_error

COMPANY = "company-acme"
ADVISORY = TiRef(id="5b0e2a8c-8d8e-4b8f-9d0c-1f4e7a3c2b10", name="Vulnerability Advisory")


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def test_full_alert_detail_normalises_exactly(kit: Any) -> None:
    summary = kit.fixture("list_alert_page1.json")["data"][0]
    alert = normalize.alert(kit.fixture("get_alert_detail.json"), summary, company_id=COMPANY)
    assert alert == TiAlert(
        short_id="k2f9qa",
        title="Patch Now: Critical Authentication Bypass in Ivanti Connect Secure",
        status="PUBLISHED",
        tlp="AMBER",
        published_time=at(1717416000),
        content=kit.fixture("get_alert_detail.json")["content"],
        push_required=True,
        push_email_notification=False,
        tracking_id="ACM-2024-00417",
        card_image="/media/card_images/k2f9qa.png",
        card_info="Vulnerability Advisory | 2 indicators | T1190",
        event="Operation Glass Harbor",
        intel_id="9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
        rfi_id=None,
        groups=[
            TiRef(id="6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", name="Acme SOC Analysts"),
            TiRef(id="7e2a1b3c-4d5e-4f60-9b1c-2d3e4f5a6b7c", name="Sector ISAC Members"),
        ],
        recipient_groups=[TiRef(id="6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", name="Acme SOC Analysts")],
        tags=[
            TiRef(id="1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0", name="Vulnerability"),
            TiRef(id="2c3d4e5f-6071-4283-94a5-b6c7d8e9f0a1", name="Zero-Day"),
        ],
        category=ADVISORY,
        company_id=COMPANY,
        version=1717416000,
    )
    assert alert.published_time == datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
    assert "CVE-2024-21893" in (alert.content or "")


def test_minimal_alert_detail_keeps_nulls_and_empty_lists(kit: Any) -> None:
    alert = normalize.alert(kit.fixture("get_alert_detail_minimal.json"), company_id=COMPANY)
    assert (alert.short_id, alert.tlp, alert.version) == ("c0t8vb", "WHITE", 1717419600)
    assert alert.content == "" and alert.push_required is False and alert.push_email_notification is False
    assert (
        alert.tracking_id is None
        and alert.card_image is None
        and alert.event is None
        and alert.intel_id is None
    )
    assert alert.groups == alert.recipient_groups == alert.tags == [] and alert.category is None
    # the list summary fills what the detail lacks (here: the category)
    summary = kit.fixture("list_alert_page1.json")["data"][2]
    assert normalize.alert(
        kit.fixture("get_alert_detail_minimal.json"), summary, company_id=COMPANY
    ).category == TiRef(id="e8c4b2a0-1d3f-4a5b-9c6d-7e8f9a0b1c2d", name="Daily Threat Briefing")


def test_alert_version_prefers_a_modification_time_and_reads_other_time_formats(kit: Any) -> None:
    detail = kit.fixture("get_alert_detail.json")
    assert normalize.alert_version(detail) == 1717416000
    assert normalize.alert_version({**detail, "modified_time": 1717420000}) == 1717420000
    assert normalize.alert_version({**detail, "published_time": 1717416000123}) == 1717416000  # milliseconds
    assert normalize.epoch_seconds("2024-06-03T12:00:00Z") == 1717416000
    assert normalize.epoch_seconds("1717416000") == 1717416000
    assert normalize.epoch_seconds(0) is None and normalize.epoch_seconds("soon") is None


def test_alert_event_id_changes_with_content_not_with_a_reread(kit: Any) -> None:
    detail = kit.fixture("get_alert_detail.json")

    def event(raw: dict[str, Any]) -> Any:
        alert = normalize.alert(raw, company_id=COMPANY)
        return make_event(
            "ti.alert.upserted",
            alert,
            source="/threatintel/cyware/i1",
            subject=alert.short_id,
            vendor_version=normalize.alert_vendor_version(alert),
            integration_id="i1",
        )

    first, again, edited = (
        event(detail),
        event(json.loads(json.dumps(detail))),
        event({**detail, "status": "EXPIRED"}),
    )
    assert first.id == again.id != edited.id
    assert (
        first.type == "soc.ti.alert.upserted.v1" and first.subject == "k2f9qa" and first.integrationid == "i1"
    )
    assert first.data["company_id"] == COMPANY and first.data["version"] == 1717416000


def test_list_alert_pages_parse_into_new_alerts_and_a_keyset_position(kit: Any) -> None:
    page1, page2 = kit.fixture("list_alert_page1.json"), kit.fixture("list_alert_page2.json")
    assert (page1["count"], page1["previous"], page2["next"]) == (4, None, None)
    start = AlertPosition()
    after1 = start.advanced(page1["data"])
    assert after1 == AlertPosition(1717419600, ("c0t8vb",))
    # the boundary second is re-read: its alert is not new again, the next second's is
    assert [a["short_id"] for a in page1["data"] + page2["data"] if after1.is_new(a)] == ["r4n1zh"]
    # two alerts share 1717416000: a position inside that second keeps both ids apart
    inside = start.advanced(page1["data"][:1])
    assert inside == AlertPosition(1717416000, ("k2f9qa",))
    assert [a["short_id"] for a in page1["data"] if inside.is_new(a)] == ["p7m3xd", "c0t8vb"]
    assert AlertPosition.from_cursor(after1.to_cursor()) == after1
    assert after1.to_cursor() == {"published_time": 1717419600, "short_ids": ["c0t8vb"]}


def test_reference_lists_normalise_exactly(kit: Any) -> None:
    tags = [normalize.tag(t, company_id=COMPANY) for t in kit.fixture("tag.json")]
    assert tags[0] == TiTag(
        tag_id="1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0",
        tag_name="Vulnerability",
        tag_slug="vulnerability",
        is_active=True,
        company_id=COMPANY,
    )
    assert [(t.tag_slug, t.is_active) for t in tags] == [
        ("vulnerability", True),
        ("zero-day", True),
        ("ot-ics", False),
    ]

    groups = [normalize.group(g, company_id=COMPANY) for g in kit.fixture("list_recipient_group.json")]
    assert groups[1] == TiGroup(
        group_id="7e2a1b3c-4d5e-4f60-9b1c-2d3e4f5a6b7c",
        group_name="Sector ISAC Members",
        group_tlp="AMBER",
        group_type="External",
        allowed_for_intel_submission=True,
        allowed_for_rfi_submission=False,
        company_id=COMPANY,
    )
    assert [(g.group_tlp, g.allowed_for_rfi_submission) for g in groups] == [
        ("AMBER", True),
        ("AMBER", False),
        ("WHITE", False),
    ]

    fields = normalize.custom_fields(kit.fixture("list_additional_fields.json"), company_id=COMPANY)
    assert [(f.field_name, f.is_system) for f in fields] == [
        ("threat_actor", True),
        ("cve_id", True),
        ("ioc_ip", True),
        ("business_unit", False),
        ("review_due", False),
    ]
    assert fields[0] == TiCustomField(
        field_id="f0000001-aaaa-4bbb-8ccc-000000000001",
        field_name="threat_actor",
        field_label="Threat Actor",
        field_type="text",
        field_description="Actor or intrusion set attributed to the activity",
        is_system=True,
        company_id=COMPANY,
    )
    assert fields[4].field_description is None and fields[4].field_type == "date"

    categories = [normalize.category(c, company_id=COMPANY) for c in kit.fixture("list_category.json")]
    assert categories[0] == TiCategory(
        category_id="a3d1c9e4-6f2b-4c1d-8e7a-0b9f5c2d4e61",
        category_name="Threat Advisory",
        threat_indicator_fields=["ioc_ip"],
        additional_fields=["threat_actor", "business_unit"],
        required_fields=["threat_actor"],
        company_id=COMPANY,
    )
    assert categories[2].threat_indicator_fields == categories[2].required_fields == []


def _response(status: int, body: Any, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "https://acme.cyware.com/api/csap/v1/list_alert/")
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("name", "status", "category", "code"),
    [
        ("error_invalid_signature.json", 401, VendorErrorCategory.BAD_CREDENTIALS, "invalid_signature"),
        ("error_unknown_access_id.json", 401, VendorErrorCategory.BAD_CREDENTIALS, "unknown_access_id"),
        ("error_missing_credentials.json", 401, VendorErrorCategory.BAD_CREDENTIALS, "missing_credentials"),
        ("error_signature_expired.json", 401, VendorErrorCategory.CLOCK, "signature_expired"),
        ("error_expires_too_far.json", 401, VendorErrorCategory.CLOCK, "expires_too_far"),
        ("error_invalid_page.json", 404, VendorErrorCategory.NOT_FOUND, "invalid_page"),
        ("error_throttled.json", 429, VendorErrorCategory.RATE_LIMITED, "throttled"),
    ],
)
def test_error_bodies_map_to_categories(
    kit: Any, name: str, status: int, category: VendorErrorCategory, code: str
) -> None:
    error = cyware_error(_response(status, kit.fixture(name)), clock=lambda: 1717412700.0, margin=20)
    assert error is not None and error.category is category and error.vendor_code == code
    assert error.retryable is (category is VendorErrorCategory.RATE_LIMITED)


def test_forbidden_and_codeless_refusals_are_categorised() -> None:
    forbidden = cyware_error(_response(403, {"detail": "You do not have permission to perform this action."}))
    assert forbidden is not None and forbidden.category is VendorErrorCategory.PERMISSION
    refused = cyware_error(_response(401, {"detail": "Invalid credentials."}))
    assert refused is not None and refused.category is VendorErrorCategory.BAD_CREDENTIALS
    assert cyware_error(_response(502, {"detail": "upstream"})) is None  # the default mapping: server_error


def test_expired_signature_message_compares_server_time_with_ours(kit: Any) -> None:
    # our clock is 3,300 s behind the server's 2024-06-03 12:00:00 UTC
    error = cyware_error(
        _response(401, kit.fixture("error_signature_expired.json")), clock=lambda: 1717412700.0, margin=20
    )
    assert error is not None and error.category is VendorErrorCategory.CLOCK
    assert error.message == (
        "Cyware refused the request signature as expired: the Cyware server time is 2024-06-03 12:00:00 UTC but our "
        "clock says 2024-06-03 11:05:00 UTC (3300 s behind the server) (each request is signed valid for 20 s); "
        "synchronise this host's clock (NTP)"
    )
    assert error.details == {
        "reason": "signature_expired",
        "our_time": 1717412700,
        "server_time": 1717416000,
        "clock_skew_seconds": -3300,
    }
    ahead = cyware_error(
        _response(401, kit.fixture("error_expires_too_far.json")), clock=lambda: 1717423200.0
    )
    assert ahead is not None and "7200 s ahead of the server" in ahead.message
    # a CSAP without server_time in the body: the Date header tells the server's clock
    bare = cyware_error(
        _response(401, {"detail": "Signature has expired."}, Date="Mon, 03 Jun 2024 12:00:00 GMT"),
        clock=lambda: 1717412700.0,
    )
    assert (
        bare is not None
        and bare.category is VendorErrorCategory.CLOCK
        and bare.details["clock_skew_seconds"] == -3300
    )


@pytest.mark.parametrize(
    ("page_size", "chunks", "requests"),
    [
        # the second request starts at the boundary second 1717419600 (re-read), page 1 again
        (3, [["k2f9qa", "p7m3xd", "c0t8vb"], ["r4n1zh"]], [(None, "1"), ("1717419600", "1")]),
        # two alerts handed out at 1717416000 fill a page of 2: the next page of that second follows
        (2, [["k2f9qa", "p7m3xd"], ["c0t8vb", "r4n1zh"]], [(None, "1"), ("1717416000", "2")]),
    ],
)
async def test_fixture_pages_through_the_client(
    kit: Any, page_size: int, chunks: list[list[str]], requests: list[tuple[str | None, str]]
) -> None:
    """The client reads the fixtures as served: list pages by keyset, details, reference lists."""
    served: list[httpx.URL] = []
    details = {
        "k2f9qa": kit.fixture("get_alert_detail.json"),
        "c0t8vb": kit.fixture("get_alert_detail_minimal.json"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        served.append(request.url)
        path, params = request.url.path, request.url.params
        if path.endswith("/list_alert/"):
            start = int(params.get("start_time", 0))
            data = kit.fixture("list_alert_page1.json")["data"] + kit.fixture("list_alert_page2.json")["data"]
            window = [a for a in data if a["published_time"] >= start]
            size, page = int(params["page_size"]), int(params["page"])
            chunk = window[(page - 1) * size : page * size]
            return httpx.Response(
                200,
                json={
                    "count": len(window),
                    "previous": None,
                    "data": chunk,
                    "next": "more" if page * size < len(window) else None,
                },
            )
        if "/get_alert_detail/" in path:
            short_id = path.rstrip("/").rsplit("/", 1)[1]
            detail = details.get(short_id) or {
                **kit.fixture("get_alert_detail_minimal.json"),
                "short_id": short_id,
            }
            return httpx.Response(200, json=detail)
        name = {
            "/tag/": "tag.json",
            "/list_recipient_group/": "list_recipient_group.json",
            "/list_category/": "list_category.json",
            "/list_additional_fields/": "list_additional_fields.json",
        }
        return httpx.Response(200, json=kit.fixture(next(v for k, v in name.items() if path.endswith(k))))

    client = CywareClient(
        "https://acme.cyware.com",
        integration_id="i1",
        access_id="2c5f3b1e-acme",
        secret_key="s3cr3t",
        transport=httpx.MockTransport(handler),
        page_size=page_size,
    )
    got = [c async for c in client.alert_chunks(AlertPosition())]
    assert [[a["short_id"] for a in c.summaries] for c in got] == chunks
    assert got[-1].position == AlertPosition(1717423200, ("r4n1zh",))
    assert [d["short_id"] for c in got for d in c.details if d] == ["k2f9qa", "p7m3xd", "c0t8vb", "r4n1zh"]
    assert len(await client.tags()) == 3 and len(await client.recipient_groups()) == 3
    assert len(await client.categories()) == 3 and len(await client.additional_fields()) == 2
    await client.aclose()
    lists = [u for u in served if u.path.endswith("/list_alert/")]
    assert [(u.params.get("start_time"), u.params["page"]) for u in lists] == requests
    assert all(
        u.path.startswith("/api/csap/v1/") and {"AccessID", "Expires", "Signature"} <= set(u.params)
        for u in served
    )


def test_where_an_alerts_run_starts() -> None:
    from soc_threatintel.resources import SyncOptions, alert_start

    now = 1717416000
    assert alert_start(None, SyncOptions(), now) == AlertPosition()
    assert alert_start(None, SyncOptions(alert_backfill_days=2), now) == AlertPosition(since=now - 2 * 86_400)
    cursor = {"published_time": 1717400000, "short_ids": ["k2f9qa", "p7m3xd"]}
    assert alert_start(cursor, SyncOptions(alert_backfill_days=2), now) == AlertPosition(
        1717400000, ("k2f9qa", "p7m3xd")
    )
    assert alert_start(cursor, SyncOptions(alert_overlap_seconds=600), now) == AlertPosition(since=1717399400)
    assert AlertPosition(since=5).start_time == 5 and AlertPosition(7, ("a",), since=5).start_time == 7


def test_references_read_bare_ids_and_drop_duplicates() -> None:
    assert normalize.refs(
        ["g1", {"group_id": "g1", "group_name": "SOC"}, {"id": "g2", "name": "CISO"}, None],
        "group_id",
        "group_name",
    ) == [TiRef(id="g1"), TiRef(id="g2", name="CISO")]
    assert normalize.ref("cat-1", "category_id", "category_name") == TiRef(id="cat-1")
    assert normalize.ref({"category_name": "no id"}, "category_id", "category_name") is None
    with pytest.raises(ValueError):
        normalize.alert({"title": "no short id"}, company_id=None)


async def test_an_empty_alert_list_hands_out_nothing(kit: Any) -> None:
    empty = kit.fixture("list_alert_empty.json")
    client = CywareClient(
        "https://acme.cyware.com",
        integration_id="i1",
        access_id="a",
        secret_key="s",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=empty)),
    )
    assert await client.list_alerts() == ([], 0, False)
    assert [c async for c in client.alert_chunks(AlertPosition(1717416000, ("k2f9qa",)))] == []
    await client.aclose()
