"""The recorded QRadar payloads in shared/vendor-samples parse and normalise exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from soc_shared.events import Granularity, SiemOffense, make_event
from soc_shared.vendor_http import VendorErrorCategory
from soc_siem_ingest import normalize
from soc_siem_ingest.client import QRadarClient, qradar_error


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def test_recorded_offenses_normalise_exactly(kit: Any) -> None:
    raw_session, raw_login = kit.sample("siem_offenses.json")
    offense = normalize.offense(raw_session, closing_reasons={})
    assert offense == SiemOffense(
        offense_id=16,
        domain_id=0,
        description="Session Closed",
        status="OPEN",
        severity=2,
        magnitude=1,
        credibility=2,
        relevance=0,
        event_count=1,
        flow_count=0,
        assigned_to=None,
        categories=["Session Closed"],
        rules=[{"id": 100405, "type": "CRE_RULE"}],
        offense_source="39.116.161.122",
        offense_type=0,
        source_address_ids=[10],
        local_destination_address_ids=[1],
        destination_networks=["Net-16-182-192.Net_182_10_0_0"],
        log_sources=[
            {
                "id": 112,
                "name": "WindowsAuthServer @ 192.168.1.3",
                "type_id": 12,
                "type_name": "WindowsAuthServer",
            }
        ],
        start_time=ms(1613399051536),
        last_updated_time=ms(1613399051536),
        close_time=None,
        closing_reason_id=None,
        closing_reason=None,
        closing_user=None,
        follow_up=False,
        protected=False,
        version=1613399051536,
    )
    login = normalize.offense(raw_login, closing_reasons={})
    assert login.offense_id == 15
    assert login.description == (
        "Multiple Login Failures for the Same User\n containing Failure Audit: The domain "
        "controller failed to validate the credentials for an account"
    )
    assert login.offense_source == "yarden" and login.offense_type == 3
    assert login.categories == ["General Authentication Failed", "User Login Failure"]
    assert [(s.id, s.type_name) for s in login.log_sources] == [(112, "WindowsAuthServer"), (63, "EventCRE")]
    assert login.source_address_ids == [2, 1]
    assert login.start_time == ms(1613395296537) and login.last_updated_time == ms(1613395306948)
    assert login.version == 1613395306948


def test_offense_event_id_is_the_version(kit: Any) -> None:
    raw = kit.sample("siem_offenses.json")[0]
    events = [
        make_event(
            "siem.offense.upserted",
            normalize.offense(r, closing_reasons={}),
            source="/siem-ingest/qradar/i1",
            subject=str(r["id"]),
            vendor_version=r["last_updated_time"],
            integration_id="i1",
            vendor_tenant=r["domain_id"],
        )
        for r in (raw, dict(raw), {**raw, "last_updated_time": 1613399099999})
    ]
    assert events[0].id == events[1].id != events[2].id
    assert (
        events[0].type == "soc.siem.offense.upserted.v1" and events[0].routing_key == "siem.offense.upserted"
    )
    assert events[0].subject == "16" and events[0].vendortenant == "0" and events[0].integrationid == "i1"


def test_recorded_closing_reasons_name_a_closed_offense(kit: Any) -> None:
    reasons = {int(r["id"]): r["text"] for r in kit.sample("siem_offense_closing_reasons.json")}
    assert reasons == {2: "False-Positive, Tuned", 1: "Non-Issue"}
    raw = {
        **kit.sample("siem_offenses.json")[0],
        "status": "CLOSED",
        "closing_reason_id": 2,
        "close_time": 1613400000000,
        "closing_user": "admin",
        "last_updated_time": 1613400000000,
    }
    closed = normalize.offense(raw, closing_reasons=reasons)
    assert (closed.status, closed.closing_reason_id, closed.closing_reason, closed.closing_user) == (
        "CLOSED",
        2,
        "False-Positive, Tuned",
        "admin",
    )
    assert closed.close_time == ms(1613400000000)


def test_recorded_domains_normalise_exactly(kit: Any) -> None:
    default, whitelist = (normalize.domain(d) for d in kit.sample("config_domain_management_domains.json"))
    assert default.model_dump() == {
        "domain_id": 0,
        "name": "Default Domain",
        "description": "",
        "deleted": False,
        "tenant_id": 0,
        "event_collector_ids": [],
        "log_source_ids": [],
    }
    assert (whitelist.domain_id, whitelist.name, whitelist.deleted) == (1, "QRadarWhiteListIP", True)


def test_recorded_log_sources_resolve_type_name_and_domain(kit: Any) -> None:
    cre, windows = kit.sample("config_event_sources_log_source_management_log_sources.json")
    types = {18: "EventCRE", 12: "Microsoft Windows Security Event Log"}
    asset = normalize.log_source(windows, type_names=types, domain_of={112: 3})
    assert asset.model_dump() == {
        "log_source_id": 112,
        "name": "WindowsAuthServer @ 174.58.13.132",
        "description": "WindowsAuthServer device",
        "domain_id": 3,
        "type_id": 12,
        "type_name": "Microsoft Windows Security Event Log",
        "event_collector_id": 7,
        "sending_ip": "2.152.100.61",
        "enabled": True,
        "status": "SUCCESS",
        "status_messages": [],
        "group_ids": [0],
        "average_eps": 2.0,
        "creation_time": ms(1603821114515),
        "modified_time": ms(1603821114515),
        "last_event_time": ms(1614262265073),
    }
    engine = normalize.log_source(cre, type_names=types, domain_of={})
    assert (engine.log_source_id, engine.type_name, engine.domain_id, engine.sending_ip) == (
        63,
        "EventCRE",
        None,
        None,
    )
    assert engine.status == "ERROR"
    assert engine.status_messages == [
        "Events have not been received from this Log Source in over 720 minutes."
    ]
    assert engine.creation_time == ms(1603050019695) and engine.average_eps == 0.0


async def test_recorded_ariel_lifecycle_is_followed(kit: Any) -> None:
    """Create (WAIT) → status (COMPLETED) → results (Range-paged ``events``) → DELETE."""
    created = kit.sample("ariel_searches_create.json")
    completed = kit.sample("ariel_searches_status_completed.json")
    results = kit.sample("ariel_searches_results.json")
    search_id = created["search_id"]
    calls: list[tuple[str, str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path, request.headers.get("Range")))
        assert request.headers["SEC"] == "t0ken" and request.headers["Version"] == "16.0"
        if request.method == "POST":
            assert request.url.params["query_expression"].startswith("SELECT QIDNAME(qid)")
            return httpx.Response(201, json=created)
        if request.method == "DELETE":
            return httpx.Response(202, json=completed)
        if request.url.path.endswith("/results"):
            first, last = (int(x) for x in request.headers["Range"].removeprefix("items=").split("-"))
            page = results["events"][first : last + 1]
            return httpx.Response(
                200,
                json={"events": page},
                headers={"Content-Range": f"items {first}-{first + len(page) - 1}/{len(results['events'])}"},
            )
        return httpx.Response(200, json=completed)

    client = QRadarClient(
        "https://qradar.example",
        integration_id="i1",
        token="t0ken",
        transport=httpx.MockTransport(handler),
        ariel_poll_initial=0.01,
    )
    try:
        rows = await client.ariel_search(created["query_string"], max_seconds=5, page_size=1)
    finally:
        await client.aclose()
    assert rows == results["events"]
    assert rows[0]["qidname_qid"] == "Success Audit: The Windows Filtering Platform has allowed a connection"
    assert rows[0]["rulename_creEventList"][0] == "BB:ProtocolDefinition: Windows Protocols"
    assert [c[0] for c in calls] == ["POST", "GET", "GET", "GET", "DELETE"]
    assert calls[1][1] == f"/api/ariel/searches/{search_id}"
    assert [c[2] for c in calls[2:4]] == ["items=0-0", "items=1-1"]
    assert calls[-1][1] == f"/api/ariel/searches/{search_id}"
    assert (
        created["status"] == "WAIT" and completed["status"] == "COMPLETED" and completed["record_count"] == 20
    )


def test_metric_rows_keep_declared_columns_as_numbers() -> None:
    rows = normalize.metric_rows(
        [
            {"event_name": "Firewall Deny", "event_count": 12.0, "extra": 1},
            {"event_name": "SSH Login Failed", "event_count": None},
        ],
        ("event_name", "event_count"),
        ("event_count",),
    )
    assert rows == [
        {"event_name": "Firewall Deny", "event_count": 12},
        {"event_name": "SSH Login Failed", "event_count": 0},
    ]
    sample = normalize.metric_sample(
        "suspicious_events", 3, Granularity.DAY, 1_700_006_400_000, 1_700_092_800_000, rows
    )
    assert sample.window_start == ms(1_700_006_400_000) and sample.family == "suspicious_events"


def test_eps_sample_averages_over_the_window_and_peaks_on_the_busiest_minute() -> None:
    rows = [
        {"minute": "2024-01-01 10:00", "event_count": 6000},
        {"minute": "2024-01-01 10:01", "event_count": 1200},
    ]
    eps = normalize.eps_sample(4, Granularity.HOUR, 0, 3_600_000, rows)
    assert (eps.average_eps, eps.peak_eps) == (2.0, 100.0)
    assert normalize.eps_sample(4, Granularity.HOUR, 0, 3_600_000, []).peak_eps == 0.0


def _error(status: int, code: int, message: str) -> httpx.Response:
    body = {
        "http_response": {"code": status, "message": "..."},
        "code": code,
        "message": message,
        "description": "",
        "details": {},
    }
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


def test_qradar_error_body_maps_to_clear_categories() -> None:
    cases = {
        (401, 11): VendorErrorCategory.BAD_CREDENTIALS,
        (403, 26): VendorErrorCategory.PERMISSION,
        (404, 1002): VendorErrorCategory.NOT_FOUND,
        (422, 1005): VendorErrorCategory.INVALID_REQUEST,
        (406, 12): VendorErrorCategory.INVALID_REQUEST,
        (500, 1020): VendorErrorCategory.SERVER_ERROR,
    }
    for (status, code), category in cases.items():
        error = qradar_error(_error(status, code, "vendor says no"))
        assert error is not None and error.category is category, (status, code)
        assert error.status == status and error.vendor_code == str(code) and "vendor says no" in error.message
    for code in (1005, 1010):  # 1010: how the offense address lists refuse a filter
        invalid_filter = qradar_error(_error(422, code, "Invalid filter"))
        assert invalid_filter is not None and invalid_filter.details["reason"] == "invalid_filter"
        assert invalid_filter.category is VendorErrorCategory.INVALID_REQUEST
        assert not invalid_filter.retryable
    assert qradar_error(httpx.Response(502, content=b"<html>proxy</html>")) is None  # default mapping decides


def test_recorded_modified_since_offenses_are_versioned_by_persisted_time(kit: Any) -> None:
    """The recording a persisted-time query answered: one offense closed long after its last
    event, one re-persisted without new events — both new versions only by last_persisted_time."""
    raw = kit.sample("siem_offenses_modified_since.json")
    offenses = [normalize.offense(r, closing_reasons={}) for r in raw]
    assert [o.version for o in offenses] == [r["last_persisted_time"] for r in raw]
    closed = offenses[0]
    assert closed.status == "CLOSED" and closed.close_time == ms(1633399051536)
    assert closed.last_updated_time == ms(1613399051536) < closed.close_time
    login = offenses[1]
    assert login.version == 1613399051536 > int(login.last_updated_time.timestamp() * 1000)


def test_recorded_notes_travel_with_their_offense(kit: Any) -> None:
    notes = kit.sample("siem_offenses_notes.json")
    created = kit.sample("siem_offenses_notes_create.json")
    offense = normalize.offense(
        kit.sample("siem_offenses_update.json"), closing_reasons={}, notes=[created, *notes]
    )
    assert [(n.id, n.text, n.username) for n in offense.notes or []] == [
        (1, "test note", "test_user"),
        (5, "test text message", "API_user: test_user"),
        (6, "test text message", "API_user: test_user"),
    ]
    assert offense.notes and offense.notes[0].create_time == ms(1612888858860)
    assert offense.follow_up is True


def test_recorded_notes_are_read_as_one_record_per_offense(kit: Any) -> None:
    notes = kit.sample("siem_offenses_notes.json")
    created = kit.sample("siem_offenses_notes_create.json")
    record = normalize.offense_notes(15, 0, [created, *notes], 1614248999000)
    assert [(n.id, n.text, n.username) for n in record.notes] == [
        (1, "test note", "test_user"),
        (5, "test text message", "API_user: test_user"),
        (6, "test text message", "API_user: test_user"),
    ]
    assert record.version == 1614248999000 and record.offense_id == 15


async def test_recorded_address_answers_resolve_the_recorded_offense_ids_batched_and_cached(kit: Any) -> None:
    """The recorded offense 15 carries source address ids [2, 1] and local destination ids [1]; the
    recorded ``siem/source_addresses`` answer knows id 1 (192.168.0.1), not 2. The client asks with
    ``filter=id in (...)``, ``fields=id,<address>`` and a Range, the offense carries the addresses
    its ids name (the unknown one left out), and a second resolution asks nothing."""
    offense = kit.sample("siem_offenses.json")[1]
    answers = {
        "source_addresses": kit.sample("siem_source_addresses.json"),
        "local_destination_addresses": kit.sample("siem_local_destination_addresses.json"),
    }
    calls: list[tuple[str, str, str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        params = request.url.params
        calls.append((name, params["filter"], params["fields"], request.headers.get("Range")))
        field = "source_ip" if name == "source_addresses" else "local_destination_ip"
        assert params["fields"] == f"id,{field}"
        wanted = {int(i) for i in params["filter"].removeprefix("id in (").removesuffix(")").split(",")}
        rows = [{"id": r["id"], field: r[field]} for r in answers[name] if r["id"] in wanted]
        return httpx.Response(
            200, json=rows, headers={"Content-Range": f"items 0-{len(rows) - 1}/{len(rows)}"}
        )

    client = QRadarClient(
        "https://qradar.example",
        integration_id="recorded-addresses",
        token="t0ken",
        transport=httpx.MockTransport(handler),
    )
    try:
        sources = await client.addresses("source", offense["source_address_ids"])
        destinations = await client.addresses("local_destination", offense["local_destination_address_ids"])
        again = await client.addresses("source", [1])
    finally:
        await client.aclose()
    assert (
        sources == {1: "192.168.0.1"} and destinations == {1: "192.168.0.1"} and again == {1: "192.168.0.1"}
    )
    assert calls == [
        ("source_addresses", "id in (2,1)", "id,source_ip", "items=0-1"),
        ("local_destination_addresses", "id in (1)", "id,local_destination_ip", "items=0-0"),
    ]
    normalised = normalize.offense(
        offense, closing_reasons={}, source_addresses=sources, local_destination_addresses=destinations
    )
    assert normalised.source_address_ids == [2, 1] and normalised.source_addresses == ["192.168.0.1"]
    assert normalised.local_destination_addresses == ["192.168.0.1"]
    # the per-offense cap: only the first ids of a kind are resolved
    many = dict(offense, source_address_ids=list(range(1, 1502)))
    capped = normalize.offense(
        many, closing_reasons={}, source_addresses={i: f"10.0.{i // 250}.{i % 250}" for i in range(1, 1502)}
    )
    assert len(capped.source_addresses) == normalize.ADDRESSES_PER_OFFENSE
