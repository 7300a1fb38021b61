"""The QRadar simulator behaves like a console: auth, errors, paging, filters, life, Ariel, faults."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from soc_shared.testing import VENDOR_SAMPLES
from soc_simulators.qradar import NO_SEC_MESSAGE, create_app

SAMPLES = VENDOR_SAMPLES / "qradar"
SEC = {"SEC": "qradar-demo-token", "Version": "16.0", "Accept": "application/json"}
ANCHOR_MS = 1_750_000_000_000
CONTENT_RANGE = re.compile(r"^items (\d+)-(-?\d+)/(\d+)$")


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://qradar.test")


@pytest.fixture
async def qradar() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(create_app(seed=7, anchor_ms=ANCHOR_MS, ariel_delay=0.05)) as client:
        yield client


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def _assert_qradar_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"http_response", "code", "message", "description", "details"}
    assert body["http_response"]["code"] == status
    assert body["http_response"]["message"]
    assert body["code"] == code
    assert body["details"] == {}
    return body


async def _all_offenses(
    client: httpx.AsyncClient, params: dict[str, str] | None = None, page: int = 50
) -> list[dict]:
    rows: list[dict] = []
    start = 0
    while True:
        r = await client.get(
            "/api/siem/offenses", headers={**SEC, "Range": f"items={start}-{start + page - 1}"}, params=params
        )
        assert r.status_code == 200, r.text
        first, _, total = (int(x) for x in CONTENT_RANGE.match(r.headers["content-range"]).groups())
        assert first == start
        rows.extend(r.json())
        start += page
        if start >= total:
            return rows


# -- authentication and errors ------------------------------------------------------------------


async def test_sec_token_and_basic_auth_both_answer_about(qradar: httpx.AsyncClient) -> None:
    by_token = await qradar.get("/api/system/about", headers=SEC)
    by_basic = await qradar.get(
        "/api/system/about", auth=("admin", "qradar-demo-pass"), headers={"Version": "12.0"}
    )
    assert by_token.status_code == by_basic.status_code == 200
    assert by_token.json() == by_basic.json()
    assert by_token.json()["release_name"] == "7.5.0 UpdatePackage 7"
    assert by_token.json()["fips_enabled"] is False


async def test_missing_credentials_get_the_recorded_no_sec_header_error(qradar: httpx.AsyncClient) -> None:
    body = _assert_qradar_error(await qradar.get("/api/siem/offenses"), 401, 18)
    assert body["message"] == NO_SEC_MESSAGE
    assert body == _sample("error_401_no_sec_header")


async def test_unknown_offense_answers_ibm_documented_404(qradar: httpx.AsyncClient) -> None:
    body = _assert_qradar_error(await qradar.get("/api/siem/offenses/999999", headers=SEC), 404, 1002)
    assert body["http_response"]["message"] == "We could not find the resource you requested."


async def test_wrong_token_and_wrong_password_are_rejected_with_their_own_messages(
    qradar: httpx.AsyncClient,
) -> None:
    bad_token = _assert_qradar_error(await qradar.get("/api/system/about", headers={"SEC": "nope"}), 401, 11)
    bad_basic = _assert_qradar_error(await qradar.get("/api/system/about", auth=("admin", "wrong")), 401, 11)
    garbage = base64.b64encode(b"no-colon").decode()
    malformed = _assert_qradar_error(
        await qradar.get("/api/system/about", headers={"Authorization": f"Basic {garbage}"}), 401, 11
    )
    assert "SEC token" in bad_token["message"]
    assert "username or password" in bad_basic["message"]
    assert bad_token["message"] != bad_basic["message"] != malformed["message"]


async def test_limited_token_is_forbidden_on_offenses_but_reads_configuration(
    qradar: httpx.AsyncClient,
) -> None:
    limited = {"SEC": "qradar-limited-token"}
    body = _assert_qradar_error(await qradar.get("/api/siem/offenses", headers=limited), 403, 26)
    assert "insufficient capabilities" in body["message"]
    _assert_qradar_error(await qradar.get("/api/siem/offense_closing_reasons", headers=limited), 403, 26)
    assert (await qradar.get("/api/config/domain_management/domains", headers=limited)).status_code == 200


async def test_unknown_ids_and_endpoints_are_404_with_code_1002(qradar: httpx.AsyncClient) -> None:
    _assert_qradar_error(await qradar.get("/api/siem/offenses/987654", headers=SEC), 404, 1002)
    _assert_qradar_error(await qradar.get("/api/config/domain_management/domains/77", headers=SEC), 404, 1002)
    _assert_qradar_error(await qradar.get("/api/ariel/searches/not-a-search", headers=SEC), 404, 1002)
    _assert_qradar_error(await qradar.get("/api/siem/no_such_thing", headers=SEC), 404, 1002)
    _assert_qradar_error(await qradar.get("/api/siem/offenses/abc", headers=SEC), 422, 11)


@pytest.mark.parametrize(
    "bad_filter",
    [
        "last_updated_time >> 5",
        "domain_id = ",
        "(status = 'OPEN'",
        "no_such_field = 1",
        "rules = 3",
        "status ~ 'x'",
    ],
)
async def test_invalid_filter_is_422_code_1005_naming_the_filter(
    qradar: httpx.AsyncClient, bad_filter: str
) -> None:
    body = _assert_qradar_error(
        await qradar.get("/api/siem/offenses", headers=SEC, params={"filter": bad_filter}), 422, 1005
    )
    assert bad_filter in body["message"]
    assert "filter" in body["message"].lower()


async def test_unknown_fields_or_sort_names_are_422(qradar: httpx.AsyncClient) -> None:
    _assert_qradar_error(
        await qradar.get("/api/siem/offenses", headers=SEC, params={"fields": "id,bogus"}), 422, 30
    )
    _assert_qradar_error(
        await qradar.get("/api/siem/offenses", headers=SEC, params={"sort": "+bogus"}), 422, 30
    )


async def test_unsupported_version_is_406_and_versions_are_recorded(qradar: httpx.AsyncClient) -> None:
    for version in ("99.0", "11.9", "sixteen"):
        body = _assert_qradar_error(
            await qradar.get("/api/system/about", headers={**SEC, "Version": version}), 406, 12
        )
        assert version in body["message"]
    for version in ("12.0", "15.1", "20.0"):
        assert (await qradar.get("/api/system/about", headers={**SEC, "Version": version})).status_code == 200
    seen = (await qradar.get("/_sim/state")).json()["versions_seen"]
    assert seen["15.1"] == 1 and seen["20.0"] == 1


async def test_every_answer_is_application_json(qradar: httpx.AsyncClient) -> None:
    for path in ("/api/siem/offenses", "/api/config/event_sources/event_collectors", "/api/siem/offenses/1"):
        for headers in (SEC, {}):
            r = await qradar.get(path, headers=headers)
            assert r.headers["content-type"] == "application/json", (path, r.status_code)


# -- paging, filter, fields, sort ----------------------------------------------------------------


async def test_range_paging_covers_every_offense_exactly_once(qradar: httpx.AsyncClient) -> None:
    unpaged = await qradar.get("/api/siem/offenses", headers=SEC)
    assert unpaged.headers["content-range"] == "items 0-299/300"
    paged = await _all_offenses(qradar, page=37)
    ids = [o["id"] for o in paged]
    assert len(ids) == len(set(ids)) == 300
    assert ids == [o["id"] for o in unpaged.json()]
    assert ids == sorted(ids, reverse=True)  # default order: newest offense first


async def test_range_edges_answer_sane_content_range(qradar: httpx.AsyncClient) -> None:
    r = await qradar.get("/api/siem/offenses", headers={**SEC, "Range": "items=290-400"})
    assert r.headers["content-range"] == "items 290-299/300" and len(r.json()) == 10
    past = await qradar.get("/api/siem/offenses", headers={**SEC, "Range": "items=300-349"})
    assert past.status_code == 200 and past.json() == []
    assert past.headers["content-range"] == "items 300-299/300"
    empty = await qradar.get("/api/siem/offenses", headers=SEC, params={"filter": "id < 0"})
    assert empty.json() == [] and empty.headers["content-range"] == "items 0--1/0"
    _assert_qradar_error(
        await qradar.get("/api/siem/offenses", headers={**SEC, "Range": "items=9-3"}), 416, 1004
    )
    _assert_qradar_error(
        await qradar.get("/api/siem/offenses", headers={**SEC, "Range": "bytes=0-9"}), 416, 1004
    )


async def test_last_persisted_time_filter_with_sort_matches_a_reference_scan(
    qradar: httpx.AsyncClient,
) -> None:
    everything = (await qradar.get("/api/siem/offenses", headers=SEC)).json()
    cursor = sorted(o["last_persisted_time"] for o in everything)[150]
    expected = sorted(
        (o for o in everything if o["last_persisted_time"] > cursor and o["domain_id"] == 2),
        key=lambda o: (o["last_persisted_time"], o["id"]),
    )
    params = {"filter": f"last_persisted_time > {cursor} and domain_id = 2", "sort": "+last_persisted_time"}
    got = await _all_offenses(qradar, params, page=7)
    assert [o["id"] for o in got] == [o["id"] for o in expected] and expected
    descending = (
        await qradar.get("/api/siem/offenses", headers=SEC, params={**params, "sort": "-last_persisted_time"})
    ).json()
    assert [o["id"] for o in descending] == [o["id"] for o in reversed(expected)]
    either = (await qradar.get("/api/siem/offenses", headers=SEC,
                               params={"filter": "status = \"CLOSED\" or (domain_id in (1, 3) and severity >= 7)"})).json()  # fmt: skip
    assert {o["id"] for o in either} == {
        o["id"]
        for o in everything
        if o["status"] == "CLOSED" or (o["domain_id"] in (1, 3) and o["severity"] >= 7)
    }
    nulls = (
        await qradar.get("/api/siem/offenses", headers=SEC, params={"filter": "close_time is null"})
    ).json()
    assert {o["id"] for o in nulls} == {o["id"] for o in everything if o["close_time"] is None}


async def test_fields_projection_and_sort_on_other_collections(qradar: httpx.AsyncClient) -> None:
    sources = await qradar.get("/api/config/event_sources/log_source_management/log_sources", headers=SEC,
                               params={"fields": "id,status", "filter": "status.status = \"ERROR\"", "sort": "-id"})  # fmt: skip
    rows = sources.json()
    assert rows and all(set(r) == {"id", "status"} for r in rows)
    assert all(
        set(r["status"]) == {"status", "messages", "last_updated"} and r["status"]["status"] == "ERROR"
        for r in rows
    )
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    offense = (
        await qradar.get("/api/siem/offenses/5", headers=SEC, params={"fields": "id,status,rules(id)"})
    ).json()
    assert set(offense) == {"id", "status", "rules"} and all(set(rule) == {"id"} for rule in offense["rules"])


async def test_domains_log_sources_and_collectors_are_consistent(qradar: httpx.AsyncClient) -> None:
    domains = (await qradar.get("/api/config/domain_management/domains", headers=SEC)).json()
    sources = {
        s["id"]: s
        for s in (
            await qradar.get("/api/config/event_sources/log_source_management/log_sources", headers=SEC)
        ).json()
    }
    collectors = {
        c["id"] for c in (await qradar.get("/api/config/event_sources/event_collectors", headers=SEC)).json()
    }
    types = {
        t["id"]
        for t in (
            await qradar.get("/api/config/event_sources/log_source_management/log_source_types", headers=SEC)
        ).json()
    }
    groups = {
        g["id"]
        for g in (
            await qradar.get("/api/config/event_sources/log_source_management/log_source_groups", headers=SEC)
        ).json()
    }
    tenants = (await qradar.get("/api/config/access/tenant_management/tenants", headers=SEC)).json()
    assert domains[0]["id"] == 0 and domains[0]["name"] == "Default Domain"
    customers = [d for d in domains if d["id"] != 0 and not d["deleted"]]
    assert len(customers) >= 4 and {t["id"] for t in tenants} >= {d["tenant_id"] for d in customers}
    for domain in customers:
        assert len(domain["log_source_ids"]) >= 3 and domain["event_collector_ids"]
        for ls_id in domain["log_source_ids"]:
            source = sources[ls_id]
            assert source["target_event_collector_id"] in domain["event_collector_ids"]
            assert source["type_id"] in types and set(source["group_ids"]) <= groups
    assert set().union(*(d["event_collector_ids"] for d in domains)) <= collectors


# -- life -------------------------------------------------------------------------------------------


async def test_tick_events_and_analyst_closures_are_seen_through_the_persisted_time_filter(
    qradar: httpx.AsyncClient,
) -> None:
    before = (await qradar.get("/api/siem/offenses", headers=SEC)).json()
    cursor = max(o["last_persisted_time"] for o in before)
    changes = [(await qradar.post("/_sim/tick")).json() for _ in range(3)]
    created = {i for c in changes for i in c["created"]}
    updated = {i for c in changes for i in c["updated"]}
    closed = {i for c in changes for i in c["closed"]}
    assigned = {i for c in changes for i in c["assigned"]}
    assert created and updated and closed
    assert all(
        1 <= len(c["created"]) <= 3 and 2 <= len(c["updated"]) <= 5 and 1 <= len(c["closed"]) <= 2
        for c in changes
    )
    seen = await _all_offenses(
        qradar, {"filter": f"last_persisted_time > {cursor}", "sort": "+last_persisted_time"}, page=4
    )
    stamps = [o["last_persisted_time"] for o in seen]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # strictly increasing
    assert {o["id"] for o in seen} == created | updated | closed | assigned
    by_id = {o["id"]: o for o in seen}
    old = {o["id"]: o for o in before}
    for offense_id in closed - updated - created:
        offense = by_id[offense_id]
        assert offense["status"] == "CLOSED" and offense["close_time"] == offense["last_persisted_time"]
        assert offense["closing_reason_id"] in {1, 2, 3, 54, 55} and offense["closing_user"]
        # closing is an analyst action: the time of the last event does not move
        assert offense["last_updated_time"] == old[offense_id]["last_updated_time"] < offense["close_time"]
    for offense_id in updated - closed - created:
        assert by_id[offense_id]["event_count"] > old[offense_id]["event_count"]
        assert by_id[offense_id]["last_updated_time"] > cursor
    assert all(i not in old for i in created)
    assert all(by_id[i]["status"] == "OPEN" for i in created - closed)
    # the old order (by last_updated_time) misses every closure
    by_updated = await _all_offenses(
        qradar, {"filter": f"last_updated_time > {cursor}", "sort": "+last_updated_time"}, page=50
    )
    assert not (closed - updated) & {o["id"] for o in by_updated}


async def test_analyst_actions_move_persisted_time_only(qradar: httpx.AsyncClient) -> None:
    offense = next(
        o for o in (await qradar.get("/api/siem/offenses", headers=SEC)).json() if o["status"] == "OPEN"
    )
    oid, updated = offense["id"], offense["last_updated_time"]
    last = offense["last_persisted_time"]
    for params in (
        {"assigned_to": "soc.l2.priya"},
        {"follow_up": "true"},
        {"protected": "true"},
        {"status": "CLOSED", "closing_reason_id": "1"},
    ):
        r = await qradar.post(f"/api/siem/offenses/{oid}", headers=SEC, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["last_updated_time"] == updated and body["last_persisted_time"] > last
        last = body["last_persisted_time"]
    assert body["assigned_to"] == "soc.l2.priya" and body["follow_up"] is True and body["protected"] is True
    assert body["status"] == "CLOSED" and body["close_time"] == last


async def test_offense_notes_list_create_and_errors(qradar: httpx.AsyncClient) -> None:
    oid = (await qradar.get("/api/siem/offenses", headers={**SEC, "Range": "items=0-0"})).json()[0]["id"]
    before = await qradar.get(f"/api/siem/offenses/{oid}/notes", headers=SEC)
    assert before.status_code == 200 and CONTENT_RANGE.match(before.headers["content-range"])
    created = await qradar.post(f"/api/siem/offenses/{oid}/notes", headers=SEC, params={"note_text": "seen"})
    assert created.status_code == 201
    note = created.json()
    recorded = _sample("siem_offenses_notes_create")
    assert set(note) == set(recorded) and note["note_text"] == "seen"
    assert note["username"].startswith("API_")
    after = (await qradar.get(f"/api/siem/offenses/{oid}/notes", headers=SEC)).json()
    assert after == [*before.json(), note]
    one = await qradar.get(f"/api/siem/offenses/{oid}/notes/{note['id']}", headers=SEC)
    assert one.json() == note
    _assert_qradar_error(await qradar.post(f"/api/siem/offenses/{oid}/notes", headers=SEC), 422, 1005)
    _assert_qradar_error(await qradar.get("/api/siem/offenses/999999/notes", headers=SEC), 404, 1002)
    seeded_notes = (await qradar.get("/_sim/state")).json()["notes"]
    assert seeded_notes > 10  # the history has notes too


async def test_an_answer_may_hold_fewer_items_than_the_range_asked_for() -> None:
    async with _client(create_app(seed=7, anchor_ms=ANCHOR_MS, max_page_items=40)) as small:
        r = await small.get("/api/siem/offenses", headers={**SEC, "Range": "items=10-109"})
        assert len(r.json()) == 40 and r.headers["content-range"] == "items 10-49/300"
        unranged = await small.get("/api/siem/offenses", headers=SEC)
        assert unranged.headers["content-range"] == "items 0-39/300"


async def test_closing_an_offense_needs_a_reason_and_records_the_caller(qradar: httpx.AsyncClient) -> None:
    open_id = next(
        o["id"] for o in (await qradar.get("/api/siem/offenses", headers=SEC)).json() if o["status"] == "OPEN"
    )
    _assert_qradar_error(
        await qradar.post(f"/api/siem/offenses/{open_id}", headers=SEC, params={"status": "CLOSED"}),
        409,
        1008,
    )
    r = await qradar.post(
        f"/api/siem/offenses/{open_id}", headers=SEC, params={"status": "CLOSED", "closing_reason_id": "2"}
    )
    assert r.status_code == 200
    assert r.json()["status"] == "CLOSED" and r.json()["closing_reason_id"] == 2
    assert r.json()["closing_user"] == "API_token: SOC Portal"


async def test_same_seed_gives_the_same_console(qradar: httpx.AsyncClient) -> None:
    async with (
        _client(create_app(seed=7, anchor_ms=ANCHOR_MS)) as twin,
        _client(create_app(seed=8, anchor_ms=ANCHOR_MS)) as other,
    ):
        mine = (await qradar.get("/api/siem/offenses", headers=SEC)).json()
        assert (await twin.get("/api/siem/offenses", headers=SEC)).json() == mine
        assert (await other.get("/api/siem/offenses", headers=SEC)).json() != mine


async def test_bulk_seed_pages_in_persisted_order_within_a_domain(qradar: httpx.AsyncClient) -> None:
    """A bulk seed (the benches' 100k offenses) pages like the console: sorted, ranged, one domain."""
    seeded = await qradar.post("/_sim/seed", json={"offenses": 100_000})
    assert seeded.status_code == 200
    assert seeded.json()["total"] == 100_300
    params = {
        "filter": "last_persisted_time > 0 and domain_id = 2",
        "sort": "+last_persisted_time",
        "fields": "id,last_persisted_time",
    }
    stamps: list[int] = []
    for start in range(0, 5000, 500):  # the console answers at most 500 items at a time
        r = await qradar.get(
            "/api/siem/offenses", headers={**SEC, "Range": f"items={start}-{start + 499}"}, params=params
        )
        stamps.extend(o["last_persisted_time"] for o in r.json())
    total = int(r.headers["content-range"].split("/")[1])
    assert 10_000 < total < 40_000 and stamps == sorted(stamps) and len(stamps) == 5000
    only_domain = await qradar.post("/_sim/seed", json={"offenses": 10, "domain_id": 4})
    assert only_domain.json()["created"] == 10
    first, last = only_domain.json()["first_id"], only_domain.json()["last_id"]
    params = {"filter": f"id >= {first} and id <= {last}", "fields": "domain_id"}
    added = (await qradar.get("/api/siem/offenses", headers=SEC, params=params)).json()
    assert len(added) == 10 and {o["domain_id"] for o in added} == {4}


# -- Ariel ------------------------------------------------------------------------------------------


async def _wait_for(client: httpx.AsyncClient, search_id: str) -> list[str]:
    statuses = []
    for _ in range(100):
        body = (await client.get(f"/api/ariel/searches/{search_id}", headers=SEC)).json()
        statuses.append(body["status"])
        if body["status"] == "COMPLETED":
            assert body["progress"] == 100 and body["completed"] is True
            return statuses
        await asyncio.sleep(0.03)
    raise AssertionError(f"search never completed: {statuses}")


async def test_ariel_search_lifecycle_wait_to_completed_then_paged_results_and_delete() -> None:
    async with _client(create_app(seed=7, anchor_ms=ANCHOR_MS, ariel_delay=0.6)) as qradar:
        await _ariel_lifecycle(qradar)


async def _ariel_lifecycle(qradar: httpx.AsyncClient) -> None:
    aql = ("SELECT username, qidname(qid) AS logon_type, sourceip, COUNT(*) AS event_count FROM events "
           "WHERE domainid = 1 AND highLevelCategory = 3000 GROUP BY username, qid, sourceip "
           "ORDER BY event_count DESC START PARSEDATETIME('2025-01-01 00:00:00') STOP PARSEDATETIME('2025-01-08 00:00:00')")  # fmt: skip
    created = await qradar.post("/api/ariel/searches", headers=SEC, params={"query_expression": aql})
    assert created.status_code == 201 and created.json()["status"] == "WAIT"
    search_id = created.json()["search_id"]
    _assert_qradar_error(await qradar.get(f"/api/ariel/searches/{search_id}/results", headers=SEC), 404, 1003)
    statuses = await _wait_for(qradar, search_id)
    assert statuses[0] in ("WAIT", "EXECUTE") and statuses[-1] == "COMPLETED"
    assert set(statuses) <= {"WAIT", "EXECUTE", "SORTING", "COMPLETED"}
    status = (await qradar.get(f"/api/ariel/searches/{search_id}", headers=SEC)).json()
    rows = (await qradar.get(f"/api/ariel/searches/{search_id}/results", headers=SEC)).json()["events"]
    assert len(rows) == status["record_count"] >= 3
    assert all(set(r) == {"username", "logon_type", "sourceip", "event_count"} for r in rows)
    assert [r["event_count"] for r in rows] == sorted((r["event_count"] for r in rows), reverse=True)
    paged = []
    for start in range(0, len(rows), 2):
        page = await qradar.get(
            f"/api/ariel/searches/{search_id}/results", headers={**SEC, "Range": f"items={start}-{start + 1}"}
        )
        assert page.headers["content-range"].startswith(f"items {start}-")
        paged.extend(page.json()["events"])
    assert paged == rows
    deleted = await qradar.delete(f"/api/ariel/searches/{search_id}", headers=SEC)
    assert deleted.status_code == 202 and deleted.json()["search_id"] == search_id
    _assert_qradar_error(await qradar.get(f"/api/ariel/searches/{search_id}", headers=SEC), 404, 1002)


async def test_ariel_rows_follow_the_query_and_repeat_for_the_same_query(qradar: httpx.AsyncClient) -> None:
    async def run(aql: str) -> list[dict]:
        created = await qradar.post("/api/ariel/searches", headers=SEC, params={"query_expression": aql})
        await _wait_for(qradar, created.json()["search_id"])
        return (
            await qradar.get(f"/api/ariel/searches/{created.json()['search_id']}/results", headers=SEC)
        ).json()["events"]

    dashboard = ("SELECT DOMAINNAME(domainid) AS Customer, SUM(eventcount) / ((MAX(endtime) - MIN(starttime)) / 1000) AS EPS "
                 "FROM events GROUP BY domainid ORDER BY EPS DESC LAST 1 HOURS")  # fmt: skip
    per_domain = await run(dashboard)
    domains = (await qradar.get("/api/config/domain_management/domains", headers=SEC)).json()
    assert {r["Customer"] for r in per_domain} == {d["name"] for d in domains if not d["deleted"]}
    assert [r["EPS"] for r in per_domain] == sorted((r["EPS"] for r in per_domain), reverse=True)
    assert all(isinstance(r["EPS"], float) and r["EPS"] >= 0 for r in per_domain)

    daily = ("SELECT DATEFORMAT(starttime,'yyyy-MM-dd') AS full_date, SUM(eventcount) AS daily_count FROM events "
             "WHERE domainid = 3 GROUP BY DATEFORMAT(starttime,'yyyy-MM-dd') ORDER BY full_date "
             "START PARSEDATETIME('2025-03-01 00:00:00') STOP PARSEDATETIME('2025-03-08 00:00:00')")  # fmt: skip
    days = await run(daily)
    assert [r["full_date"] for r in days] == [f"2025-03-0{d}" for d in range(1, 8)]
    assert all(isinstance(r["daily_count"], int) and r["daily_count"] > 0 for r in days)
    assert await run(daily) == days

    total = "SELECT SUM(eventcount) AS total_traffic FROM events WHERE domainid = {d} LAST 1 DAYS"
    small, unknown = await run(total.format(d=0)), await run(total.format(d=42))
    big = await run(total.format(d=5))
    assert len(big) == len(small) == 1 and big[0]["total_traffic"] > 10 * small[0]["total_traffic"] > 0
    assert unknown == [{"total_traffic": 0}]


async def test_bad_aql_is_rejected(qradar: httpx.AsyncClient) -> None:
    _assert_qradar_error(await qradar.post("/api/ariel/searches", headers=SEC), 422, 8)
    for aql in (
        "DELETE FROM events",
        "SELECT a FROM nowhere",
        "SELECT COUNT(*) FROM events START 'yesterday'",
    ):
        _assert_qradar_error(
            await qradar.post("/api/ariel/searches", headers=SEC, params={"query_expression": aql}), 422, 2000
        )


# -- recorded payloads --------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), "null"
    )


def _assert_covers(sample: list[dict] | dict, ours: list[dict]) -> None:
    """Every recorded key exists in every simulated record, and some record has the recorded type."""
    for recorded in sample if isinstance(sample, list) else [sample]:
        for key, value in recorded.items():
            assert all(key in record for record in ours), key
            if value is not None:
                assert any(_json_type(record[key]) == _json_type(value) for record in ours), key


async def test_recorded_payload_keys_are_a_subset_of_what_the_simulator_returns(
    qradar: httpx.AsyncClient,
) -> None:
    for sample, path in (
        ("siem_offenses", "/api/siem/offenses"),
        ("config_domain_management_domains", "/api/config/domain_management/domains"),
        (
            "config_event_sources_log_source_management_log_sources",
            "/api/config/event_sources/log_source_management/log_sources",
        ),
        ("siem_offense_closing_reasons", "/api/siem/offense_closing_reasons"),
    ):
        _assert_covers(_sample(sample), (await qradar.get(path, headers=SEC)).json())
    # the recorded list asked for fields without the persisted times; the modified-since one has them
    offense_keys = set(_sample("siem_offenses")[0]) | set(_sample("siem_offenses_modified_since")[0])
    offense_keys.add("first_persisted_time")
    assert set((await qradar.get("/api/siem/offenses/1", headers=SEC)).json()) == offense_keys
    reasons = {r["text"] for r in (await qradar.get("/api/siem/offense_closing_reasons", headers=SEC)).json()}
    assert {"False-Positive, Tuned", "Non-Issue", "Policy Violation"} <= reasons

    recorded_status = _sample("ariel_searches_status_completed")
    created = await qradar.post(
        "/api/ariel/searches", headers=SEC, params={"query_expression": recorded_status["query_string"]}
    )
    _assert_covers(_sample("ariel_searches_create"), [created.json()])
    search_id = created.json()["search_id"]
    await _wait_for(qradar, search_id)
    status = (await qradar.get(f"/api/ariel/searches/{search_id}", headers=SEC)).json()
    _assert_covers(recorded_status, [status])
    assert status["record_count"] == 20  # the recorded query says "limit 20"
    events = (await qradar.get(f"/api/ariel/searches/{search_id}/results", headers=SEC)).json()["events"]
    _assert_covers(_sample("ariel_searches_results")["events"], events)


# -- faults -----------------------------------------------------------------------------------------


async def test_armed_429_fires_then_the_console_answers_again(qradar: httpx.AsyncClient) -> None:
    armed = await qradar.post(
        "/_sim/faults", json={"kind": "429", "count": 1, "path": "/api/siem/offenses", "retry_after": 3}
    )
    assert armed.status_code == 201
    limited = await qradar.get("/api/siem/offenses", headers=SEC)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert (await qradar.get("/api/siem/offenses", headers=SEC)).status_code == 200


async def test_shift_page_fault_inserts_a_new_offense_at_the_head(qradar: httpx.AsyncClient) -> None:
    first = (await qradar.get("/api/siem/offenses", headers={**SEC, "Range": "items=0-9"})).json()
    await qradar.post("/_sim/faults", json={"kind": "shift_page", "path": "/api/siem/offenses"})
    shifted = await qradar.get("/api/siem/offenses", headers={**SEC, "Range": "items=0-9"})
    rows = shifted.json()
    assert shifted.headers["content-range"] == "items 0-9/301"
    assert rows[0]["id"] == first[0]["id"] + 1 and [o["id"] for o in rows[1:]] == [o["id"] for o in first[:9]]
    again = (await qradar.get("/api/siem/offenses", headers={**SEC, "Range": "items=0-9"})).json()
    assert again[0]["id"] == rows[0]["id"]  # the fault fired once


async def test_live_mode_keeps_the_console_changing() -> None:
    app = create_app(seed=7, live=True, tick_interval=0.05)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.3)
    grown = app.state.sim.counts()["offenses"]
    await asyncio.sleep(0.15)
    assert grown > 300 and app.state.sim.counts()["offenses"] == grown  # the ticker stops with the app


async def test_injected_console_errors_answer_in_the_console_s_error_body(qradar: httpx.AsyncClient) -> None:
    for kind, code in (("500", 1020), ("429", 1010)):
        armed = await qradar.post("/_sim/faults", json={"kind": kind, "path": "/api/siem/offenses"})
        assert armed.status_code == 201
        _assert_qradar_error(await qradar.get("/api/siem/offenses", headers=SEC), int(kind), code)
    # a 502 comes from a proxy in front of the console: not the console's body
    await qradar.post("/_sim/faults", json={"kind": "502", "path": "/api/siem/offenses"})
    proxied = await qradar.get("/api/siem/offenses", headers=SEC)
    assert proxied.status_code == 502 and "http_response" not in proxied.json()


async def test_a_fleet_serves_independent_consoles_under_their_own_prefix() -> None:
    from soc_simulators.qradar import DEFAULT_TOKEN, create_fleet_app

    fleet = create_fleet_app(3, seed=11, offenses=5, ariel_delay=0.01)
    headers = {"SEC": DEFAULT_TOKEN, "Version": "16.0", "Accept": "application/json"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fleet), base_url="http://fleet") as c:
        before = [len((await c.get(f"/i/{n}/api/siem/offenses", headers=headers)).json()) for n in range(3)]
        assert before == [5, 5, 5]
        ticked = (await c.post("/i/1/_sim/tick")).json()
        after = [len((await c.get(f"/i/{n}/api/siem/offenses", headers=headers)).json()) for n in range(3)]
        assert after[1] == 5 + len(ticked["created"]) and after[0] == after[2] == 5  # only console 1 changed
        assert (await c.get("/i/0/api/siem/offenses")).status_code == 401  # each keeps the console's guard
        assert (await c.get("/i/3/api/siem/offenses", headers=headers)).status_code == 404
        assert len(fleet.states) == 3


# -- offense addresses ----------------------------------------------------------------------------


async def test_offense_address_ids_name_addresses_consistent_with_the_offense_source(
    qradar: httpx.AsyncClient,
) -> None:
    """Every id an offense carries resolves through ``siem/source_addresses`` /
    ``siem/local_destination_addresses`` (``filter=id in (...)``, as the XSOAR QRadar integration asks,
    in the recorded answers' shape); a source-IP offense's source is its first source address, a
    destination-IP offense's its first local destination; the address's offense_ids name the offense."""
    offenses = await _all_offenses(qradar)
    for kind, field, sample in (
        ("source", "source_ip", "siem_source_addresses"),
        ("local_destination", "local_destination_ip", "siem_local_destination_addresses"),
    ):
        ids = sorted({i for o in offenses for i in o[f"{kind}_address_ids"]})
        assert ids
        resolved: dict[int, dict] = {}
        for start in range(0, len(ids), 100):
            batch = ids[start : start + 100]
            r = await qradar.get(
                f"/api/siem/{kind}_addresses",
                headers={**SEC, "Range": f"items=0-{len(batch) - 1}"},
                params={"filter": f"id in ({','.join(map(str, batch))})", "fields": f"id,{field}"},
            )
            assert r.status_code == 200, r.text
            assert r.headers["content-range"] == f"items 0-{len(batch) - 1}/{len(batch)}"
            assert [set(a) for a in r.json()] == [{"id", field}] * len(batch)
            resolved.update({a["id"]: a for a in r.json()})
        assert sorted(resolved) == ids
        full = (await qradar.get(f"/api/siem/{kind}_addresses", headers={**SEC, "Range": "items=0-4"})).json()
        _assert_covers(_sample(sample), full)
        for address in full:
            named_by = {o["id"] for o in offenses if address["id"] in o[f"{kind}_address_ids"]}
            assert set(address["offense_ids"]) == named_by and address["domain_id"] in {
                o["domain_id"] for o in offenses if o["id"] in named_by
            }
        for o in offenses:
            first = resolved[o[f"{kind}_address_ids"][0]][field]
            if (kind, o["offense_type"]) in (("source", 0), ("local_destination", 1)):
                assert first == o["offense_source"], o["id"]
    assert any(o["offense_type"] == 0 and not o["offense_source"].startswith("10.") for o in offenses)


async def test_offense_address_lists_page_and_refuse_a_bad_filter_like_the_console(
    qradar: httpx.AsyncClient,
) -> None:
    total = int(
        (await qradar.get("/api/siem/source_addresses", headers={**SEC, "Range": "items=0-0"}))
        .headers["content-range"]
        .split("/")[1]
    )
    seen: list[int] = []
    start = 0
    while start < total:
        r = await qradar.get(
            "/api/siem/source_addresses",
            headers={**SEC, "Range": f"items={start}-{start + 249}"},
            params={"fields": "id,source_ip"},
        )
        seen.extend(a["id"] for a in r.json())
        start += len(r.json())
    assert seen == list(range(1, total + 1))
    one = (await qradar.get("/api/siem/source_addresses/3", headers=SEC)).json()
    assert one["id"] == 3 and one["source_ip"] and isinstance(one["offense_ids"], list)
    for bad in ("id in (1, 2", "no_such_field = 1", "offense_ids = 3"):
        body = _assert_qradar_error(
            await qradar.get("/api/siem/local_destination_addresses", headers=SEC, params={"filter": bad}),
            422,
            1010,
        )
        assert bad in body["message"]
    _assert_qradar_error(
        await qradar.get("/api/siem/source_addresses", headers=SEC, params={"fields": "id,nope"}), 422, 30
    )
    _assert_qradar_error(await qradar.get("/api/siem/source_addresses/99999999", headers=SEC), 404, 1002)
    _assert_qradar_error(await qradar.get("/api/siem/local_destination_addresses/x", headers=SEC), 422, 11)
    _assert_qradar_error(await qradar.get("/api/siem/source_addresses"), 401, 18)
    limited = {"SEC": "qradar-limited-token"}
    _assert_qradar_error(await qradar.get("/api/siem/source_addresses", headers=limited), 403, 26)
    # an unknown id is simply absent from a filtered answer, as on a console
    r = await qradar.get("/api/siem/source_addresses", headers=SEC, params={"filter": "id in (1, 99999999)"})
    assert [a["id"] for a in r.json()] == [1]
