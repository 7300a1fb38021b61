"""The ServiceDesk Plus simulator answers like SDP v3 (MSP): auth, input_data lists, criteria, writes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from soc_shared.testing import VENDOR_SAMPLES
from soc_simulators import zoho
from soc_simulators.sdp import (
    AUTH_TOKEN,
    LIST_VIEW_COLUMNS,
    SDP_ACCEPT,
    UDF_SOAR_ID,
    create_app,
)

SAMPLES = VENDOR_SAMPLES / "sdp"
ON_PREM = {"authtoken": AUTH_TOKEN, "Accept": SDP_ACCEPT}
GRANT = {
    "refresh_token": zoho.REFRESH_TOKEN,
    "client_id": zoho.CLIENT_ID,
    "client_secret": zoho.CLIENT_SECRET,
    "grant_type": "refresh_token",
}
SUCCESS = {"status_code": 2000, "status": "success"}
# Every field of a request: what a list must name in fields_required to get whole records.
EVERY_FIELD = list(
    next(iter(create_app(seed=1, requests=1, xsoar_incidents=10).state.sim.records.values())).doc
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(seed=7, requests=150)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sdp") as http:
        yield http


async def access_token(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.post("/oauth/v2/token", params={**GRANT, **params})


async def cloud(client: httpx.AsyncClient) -> dict[str, str]:
    """Cloud headers with an access token fresh from the simulated Zoho accounts server."""
    token = (await access_token(client)).json()["access_token"]
    return {"Authorization": f"Zoho-oauthtoken {token}", "Accept": SDP_ACCEPT}


def input_data(**list_info: Any) -> dict[str, str]:
    return {"input_data": json.dumps({"list_info": list_info})}


async def list_page(
    client: httpx.AsyncClient,
    account_id: str | None = None,
    headers: dict[str, str] = ON_PREM,
    **list_info: Any,
) -> httpx.Response:
    params = input_data(**list_info)
    if account_id is not None:
        params["ACCOUNTID"] = account_id
    return await client.get("/api/v3/requests", headers=headers, params=params)


async def list_all(
    client: httpx.AsyncClient, account_id: str | None = None, **list_info: Any
) -> list[dict[str, Any]]:
    """Every matching request, whole (``fields_required`` naming every field) unless told otherwise."""
    list_info.setdefault("fields_required", EVERY_FIELD)
    requests: list[dict[str, Any]] = []
    start = 1
    while True:
        answer = (await list_page(client, account_id, row_count=100, start_index=start, **list_info)).json()
        requests.extend(answer["requests"])
        assert answer["list_info"]["row_count"] == len(answer["requests"])
        if not answer["list_info"]["has_more_rows"]:
            return requests
        start += 100


async def accounts(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await client.get("/api/v3/accounts", headers=ON_PREM)).json()["accounts"]


def assert_failed(answer: httpx.Response, http_status: int, code: int) -> dict[str, Any]:
    assert answer.status_code == http_status
    status = answer.json()["response_status"]
    assert status["status_code"] == 4000 and status["status"] == "failed"
    assert status["messages"][0]["status_code"] == code and status["messages"][0]["type"] == "failed"
    assert status["messages"][0]["message"]
    return status["messages"][0]


# ------------------------------------------------------------------------------------------- auth


async def test_on_prem_and_cloud_auth_both_work_and_bad_credentials_get_401(
    client: httpx.AsyncClient,
) -> None:
    cloud_headers = await cloud(client)
    for headers in (ON_PREM, cloud_headers):
        assert (await list_page(client, headers=headers, row_count=5)).status_code == 200
    for headers in (
        {"Accept": SDP_ACCEPT},
        {"authtoken": "wrong"},
        {"Authorization": "Zoho-oauthtoken wrong"},
        {"Authorization": cloud_headers["Authorization"].replace("Zoho-oauthtoken", "Bearer")},
    ):
        assert_failed(await list_page(client, headers=headers, row_count=5), 401, 4022)


async def test_zoho_token_refresh_answers_as_recorded_and_tokens_expire(client: httpx.AsyncClient) -> None:
    answer = await access_token(client)
    recorded = json.loads((SAMPLES / "zoho_oauth_v2_token_refresh.json").read_text())
    body = answer.json()
    # Zoho's refresh answer: the recorded keys (a refresh-token grant does not hand out a new one)
    assert answer.status_code == 200 and set(body) == set(recorded) - {"refresh_token"}
    assert (body["token_type"], body["expires_in"]) == (recorded["token_type"], recorded["expires_in"])
    headers = {"Authorization": f"Zoho-oauthtoken {body['access_token']}", "Accept": SDP_ACCEPT}
    assert (await list_page(client, headers=headers, row_count=1)).status_code == 200
    await client.post("/_sim/oauth/expire")  # an hour later
    expired = await list_page(client, headers=headers, row_count=1)
    assert_failed(expired, 401, 4022)
    assert expired.json()["response_status"]["messages"][0]["message"] == "OAuth token expired"
    # a form body works as well as query parameters
    form = await client.post("/oauth/v2/token", data=GRANT)
    assert form.json()["access_token"] != body["access_token"]


async def test_zoho_refuses_bad_clients_revoked_tokens_and_too_many_refreshes(
    client: httpx.AsyncClient,
) -> None:
    assert (await access_token(client, client_secret="nope")).json() == {"error": "invalid_client"}
    assert (await access_token(client, refresh_token="1000.unknown")).json() == {"error": "invalid_code"}
    assert (await access_token(client, grant_type="password")).json() == {"error": "unsupported_grant_type"}
    for _ in range(9):  # one more makes ten access tokens from this refresh token in ten minutes
        assert (await access_token(client)).status_code == 200
    headers = await cloud(client)
    throttled = await access_token(client)
    assert throttled.status_code == 400 and throttled.json()["error"] == "Access Denied"
    assert "too many requests" in throttled.json()["error_description"]
    assert (await client.post("/_sim/oauth/revoke", params={"refresh_token": zoho.REFRESH_TOKEN})).json()
    assert (await access_token(client)).json() == {"error": "invalid_code"}
    revoked = await list_page(client, headers=headers, row_count=1)
    assert_failed(revoked, 401, 4022)


async def test_a_missing_accept_header_is_answered_and_counted(client: httpx.AsyncClient) -> None:
    answer = await list_page(client, headers={"authtoken": AUTH_TOKEN}, row_count=5)
    assert answer.status_code == 200
    assert (await client.get("/_sim/state")).json()["accept_header_mismatches"] == 1


# ------------------------------------------------------------------------------------------- shapes


async def test_requests_have_every_key_of_the_recorded_samples(client: httpx.AsyncClient) -> None:
    listed = json.loads((SAMPLES / "api_v3_requests_list.json").read_text())
    created = json.loads((SAMPLES / "api_v3_requests_create.json").read_text())
    samples = [*listed["requests"], created["request"]]
    ours = await list_all(client)
    for key in (
        "id",
        "subject",
        "short_description",
        "status",
        "priority",
        "is_overdue",
        "created_time",
        "last_updated_time",
        "due_by_time",
        "created_by",
        "requester",
        "technician",
        "site",
        "group",
        "account",
        "udf_fields",
        "has_notes",
    ):
        assert all(key in request for request in ours), key
    for sample in samples:
        for key, value in sample.items():
            assert all(key in request for request in ours), key
            if isinstance(value, dict):
                # Nested objects (status, requester, technician, times...) carry the sample's keys too.
                ours_nested = [r[key] for r in ours if isinstance(r[key], dict)]
                assert ours_nested, key
                assert all(set(value) <= set(nested) for nested in ours_nested), key
    for request in ours:
        assert request["created_time"]["value"].isdigit() and request["created_time"]["display_value"]
        assert request["account"]["name"] and set(request["udf_fields"]) == {UDF_SOAR_ID}


async def test_list_and_single_answers_follow_the_recorded_shapes(client: httpx.AsyncClient) -> None:
    listed = (await list_page(client, row_count=3)).json()
    sample = json.loads((SAMPLES / "api_v3_requests_list.json").read_text())
    assert isinstance(sample["response_status"], list) and listed["response_status"] == [SUCCESS]
    assert set(sample["list_info"]) <= set(listed["list_info"])
    assert listed["list_info"]["has_more_rows"] is True and listed["list_info"]["start_index"] == 1
    # A list row carries the list view's columns, exactly the recorded row's keys: no udf_fields,
    # account, priority or last_updated_time unless fields_required names them.
    for row in listed["requests"]:
        assert set(row) == set(sample["requests"][0]) == set(LIST_VIEW_COLUMNS)
        assert "udf_fields" not in row and "last_updated_time" not in row
    one = (await client.get(f"/api/v3/requests/{listed['requests'][0]['id']}", headers=ON_PREM)).json()
    assert one["response_status"] == SUCCESS
    assert {k: one["request"][k] for k in LIST_VIEW_COLUMNS} == listed["requests"][0]
    assert set(json.loads((SAMPLES / "api_v3_requests_get.json").read_text())["request"]) <= set(
        one["request"]
    )
    asked = (
        await list_page(
            client, row_count=3, fields_required=["subject", f"udf_fields.{UDF_SOAR_ID}", "account"]
        )
    ).json()["requests"]
    assert [set(r) for r in asked] == [{"id", "subject", "udf_fields", "account"}] * 3
    assert [r["id"] for r in asked] == [r["id"] for r in listed["requests"]]
    assert_failed(await client.get("/api/v3/requests/1", headers=ON_PREM), 404, 4007)

    msp = (await client.get("/api/v3/accounts", headers=ON_PREM)).json()
    assert msp["response_status"] == [SUCCESS] and len(msp["accounts"]) >= 3
    assert all(account["id"] and account["name"] for account in msp["accounts"])
    # The cloud edition serves the same API under /app/<portal>/.
    assert (await client.get("/app/itdesk/api/v3/accounts", headers=await cloud(client))).json()[
        "accounts"
    ] == msp["accounts"]


# ------------------------------------------------------------------------------------------- paging


async def test_paging_with_has_more_rows_covers_every_request_once(client: httpx.AsyncClient) -> None:
    every = await list_all(client, sort_field="last_updated_time", sort_order="asc")
    ids = [request["id"] for request in every]
    assert len(ids) == len(set(ids)) == (await client.get("/_sim/state")).json()["requests"]
    stamps = [int(request["last_updated_time"]["value"]) for request in every]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    per_account: list[str] = []
    for account in await accounts(client):
        scoped = await list_all(client, account["id"], sort_field="id", sort_order="desc")
        assert scoped and {r["account"]["id"] for r in scoped} == {account["id"]}
        assert [int(r["id"]) for r in scoped] == sorted((int(r["id"]) for r in scoped), reverse=True)
        per_account.extend(r["id"] for r in scoped)
    assert sorted(per_account) == sorted(ids)

    projected = (await list_page(client, row_count=5, fields_required=[f"udf_fields.{UDF_SOAR_ID}"])).json()
    assert all(set(request) == {"id", "udf_fields"} for request in projected["requests"])

    last_page = (await list_page(client, row_count=100, start_index=len(ids) + 1)).json()
    assert last_page["requests"] == [] and last_page["list_info"]["has_more_rows"] is False
    counted = (await list_page(client, row_count=1, get_total_count=True)).json()["list_info"]
    assert counted["total_count"] == len(ids)


async def test_bad_list_info_is_refused(client: httpx.AsyncClient) -> None:
    assert_failed(await list_page(client, row_count=101), 400, 4014)
    assert_failed(await list_page(client, row_count=10, start_index=0), 400, 4014)
    assert_failed(await list_page(client, row_count=10, sort_field="subject"), 400, 4001)
    assert_failed(
        await client.get("/api/v3/requests", headers=ON_PREM, params={"input_data": "{not json"}), 400, 4000
    )
    assert_failed(await list_page(client, account_id="42", row_count=10), 400, 4001)
    bad_condition = [{"field": "status.name", "condition": "resembles", "value": "Open"}]
    assert_failed(await list_page(client, row_count=10, search_criteria=bad_condition), 400, 4001)


# ------------------------------------------------------------------------------------------- criteria


async def test_search_criteria_on_last_updated_time_finds_exactly_what_changed(
    client: httpx.AsyncClient,
) -> None:
    newest = (
        await list_page(
            client,
            row_count=1,
            sort_field="last_updated_time",
            sort_order="desc",
            fields_required=EVERY_FIELD,
        )
    ).json()
    cursor = newest["requests"][0]["last_updated_time"]["value"]
    changes = (await client.post("/_sim/tick")).json()
    changed = set(changes["created"]) | set(changes["status_changed"]) | set(changes["overdue_changed"])
    assert changes["created"] and changes["status_changed"]

    criterion = {"field": "last_updated_time", "condition": "greater than", "value": cursor}
    for criteria in (criterion, [criterion]):  # one object or a list, as the server accepts both
        found = await list_all(client, sort_field="last_updated_time", search_criteria=criteria)
        assert {request["id"] for request in found} == changed
        assert all(int(request["last_updated_time"]["value"]) > int(cursor) for request in found)
    for request_id, status in changes["status_changed"].items():
        current = (await client.get(f"/api/v3/requests/{request_id}", headers=ON_PREM)).json()["request"]
        assert current["status"]["name"] == status


async def test_search_criteria_fields_and_logical_operators(client: httpx.AsyncClient) -> None:
    # Filter first, while most seeded documents are not built yet, then check against the documents.
    udf = f"udf_fields.{UDF_SOAR_ID}"
    linked_first = await list_all(
        client, search_criteria=[{"field": udf, "condition": "is not", "value": None}]
    )
    open_urgent = await list_all(
        client,
        search_criteria=[
            {"field": "account.name", "condition": "is", "value": "Acme Corporation"},
            {"field": "status.name", "condition": "is not", "value": "Closed", "logical_operator": "AND"},
            {
                "field": "priority.name",
                "condition": "is",
                "values": ["High", "Urgent"],
                "logical_operator": "AND",
            },
        ],
    )
    either = await list_all(
        client,
        search_criteria=[
            {"field": "status.name", "condition": "is", "value": "Open"},
            {"field": "status.name", "condition": "is", "value": "On Hold", "logical_operator": "OR"},
        ],
    )
    every = await list_all(client)
    linked = [r for r in every if r["udf_fields"][UDF_SOAR_ID]]
    assert linked and len(linked) < len(every)
    assert {r["id"] for r in linked_first} == {r["id"] for r in linked}
    expected = {
        r["id"]
        for r in every
        if r["account"]["name"] == "Acme Corporation"
        and r["status"]["name"] != "Closed"
        and r["priority"]["name"] in ("High", "Urgent")
    }
    assert expected and {r["id"] for r in open_urgent} == expected
    assert {r["id"] for r in either} == {r["id"] for r in every if r["status"]["name"] in ("Open", "On Hold")}

    soar_id = linked[0]["udf_fields"][UDF_SOAR_ID]
    by_udf = await list_all(client, search_criteria=[{"field": udf, "condition": "is", "value": soar_id}])
    assert [r["id"] for r in by_udf] == [linked[0]["id"]]

    ids = sorted(int(r["id"]) for r in every)
    above = await list_all(
        client, search_criteria={"field": "id", "condition": "greater or equal", "value": str(ids[-5])}
    )
    assert sorted(int(r["id"]) for r in above) == ids[-5:]
    unlinked = await list_all(
        client, search_criteria={"field": f"udf_fields.{UDF_SOAR_ID}", "condition": "is", "value": None}
    )
    assert len(unlinked) == len(every) - len(linked)


# ------------------------------------------------------------------------------------------- writes


async def test_create_then_read_back_then_update(client: httpx.AsyncClient) -> None:
    account = (await accounts(client))[1]
    payload = {
        "request": {
            "subject": "Security incident #4242: Ransomware note found on file server",
            "description": "Raised by the SOC portal.",
            "priority": {"name": "Urgent"},
            "udf_fields": {UDF_SOAR_ID: "4242"},
        }
    }
    created = await client.post(
        "/api/v3/requests",
        headers=ON_PREM,
        params={"ACCOUNTID": account["id"]},
        data={"input_data": json.dumps(payload)},
    )
    assert created.status_code == 201
    body = created.json()
    sample = json.loads((SAMPLES / "api_v3_requests_create.json").read_text())
    assert set(body) == set(sample) and body["response_status"] == sample["response_status"]
    assert set(sample["request"]) <= set(body["request"])
    request = body["request"]
    assert request["account"] == {"id": account["id"], "name": account["name"]}
    assert request["udf_fields"] == {UDF_SOAR_ID: "4242"} and request["priority"]["name"] == "Urgent"
    assert request["status"]["name"] == "Open"

    read = (await client.get(f"/api/v3/requests/{request['id']}", headers=await cloud(client))).json()[
        "request"
    ]
    assert read == request
    wrong_account = await client.get(
        f"/api/v3/requests/{request['id']}",
        headers=ON_PREM,
        params={"ACCOUNTID": (await accounts(client))[0]["id"]},
    )
    assert_failed(wrong_account, 404, 4007)

    update = {
        "request": {
            "status": {"name": "Resolved"},
            "resolution": {"content": "Host re-imaged."},
            "technician": {"name": "Mei Chen"},
        }
    }
    updated = await client.put(
        f"/api/v3/requests/{request['id']}", headers=ON_PREM, data={"input_data": json.dumps(update)}
    )
    assert updated.status_code == 200 and updated.json()["response_status"] == SUCCESS
    after = updated.json()["request"]
    assert after["status"]["name"] == "Resolved" and after["resolution"] == {"content": "Host re-imaged."}
    assert after["technician"]["name"] == "Mei Chen" and after["resolved_time"] is not None
    assert int(after["last_updated_time"]["value"]) > int(request["last_updated_time"]["value"])

    # The account can also come in the body; the cloud header works for writes as well.
    by_body = await client.post(
        "/api/v3/requests",
        headers=await cloud(client),
        data={
            "input_data": json.dumps(
                {"request": {"subject": "VPN access", "account": {"name": account["name"]}}}
            )
        },
    )
    assert by_body.status_code == 201 and by_body.json()["request"]["account"]["id"] == account["id"]


async def test_write_errors_use_the_documented_codes(client: httpx.AsyncClient) -> None:
    account_id = (await accounts(client))[0]["id"]

    async def post(request: dict[str, Any], params: dict[str, str] | None = None) -> httpx.Response:
        scope = {"ACCOUNTID": account_id} if params is None else params
        return await client.post(
            "/api/v3/requests",
            headers=ON_PREM,
            params=scope,
            data={"input_data": json.dumps({"request": request})},
        )

    assert assert_failed(await post({"description": "no subject"}), 400, 4012)["field"] == "subject"
    assert assert_failed(await post({"subject": "no account"}, params={}), 400, 4012)["field"] == "account"
    assert (
        assert_failed(await post({"subject": "x", "priority": {"name": "Whenever"}}), 400, 4001)["field"]
        == "priority"
    )
    assert_failed(await post({"subject": "x", "udf_fields": {"udf_sline_1": "y"}}), 400, 4001)

    existing = (await list_page(client, row_count=1, fields_required=EVERY_FIELD)).json()["requests"][0]
    before = existing["last_updated_time"]
    read_only = await client.put(
        f"/api/v3/requests/{existing['id']}",
        headers=ON_PREM,
        data={"input_data": json.dumps({"request": {"created_time": {"value": "1"}}})},
    )
    assert assert_failed(read_only, 400, 4014)["field"] == "created_time"
    refused = await client.put(
        f"/api/v3/requests/{existing['id']}",
        headers=ON_PREM,
        data={"input_data": json.dumps({"request": {"subject": "ok", "status": {"name": "Bogus"}}})},
    )
    assert_failed(refused, 400, 4001)
    unchanged = (await client.get(f"/api/v3/requests/{existing['id']}", headers=ON_PREM)).json()["request"]
    assert unchanged["last_updated_time"] == before and unchanged["subject"] == existing["subject"]
    missing = await client.put(
        "/api/v3/requests/123",
        headers=ON_PREM,
        data={"input_data": json.dumps({"request": {"subject": "x"}})},
    )
    assert_failed(missing, 404, 4007)


# ------------------------------------------------------------------------------------------- control


async def test_faults_503_then_success_and_a_shifting_page(client: httpx.AsyncClient) -> None:
    armed = await client.post("/_sim/faults", json={"kind": "503", "path": "/api/v3/requests", "count": 1})
    assert armed.status_code == 201
    assert (await list_page(client, row_count=5)).status_code == 503
    first = (
        await list_page(client, row_count=5, sort_field="id", sort_order="desc", get_total_count=True)
    ).json()
    assert first["response_status"] == [SUCCESS]

    await client.post("/_sim/faults", json={"kind": "shift_page", "path": "/api/v3/requests"})
    shifted = (
        await list_page(client, row_count=5, sort_field="id", sort_order="desc", get_total_count=True)
    ).json()
    assert shifted["list_info"]["total_count"] == first["list_info"]["total_count"] + 1
    assert shifted["requests"][1:] == first["requests"][:4]  # everything moved down one row


async def test_bulk_seed_is_listable(client: httpx.AsyncClient) -> None:
    account_id = (await accounts(client))[2]["id"]
    before = (await client.get("/_sim/state")).json()["requests"]
    seeded = (await client.post("/_sim/seed", json={"requests": 20_000, "account_id": account_id})).json()
    assert seeded["created"] == 20_000 and seeded["total"] == before + 20_000
    page = (
        await list_page(client, account_id, row_count=100, start_index=10_001, get_total_count=True)
    ).json()
    assert len(page["requests"]) == 100 and page["list_info"]["total_count"] > 20_000
    assert (await client.post("/_sim/seed", json={"requests": 5, "account_id": "nope"})).status_code == 400


async def test_live_mode_ticks_in_the_background() -> None:
    app = create_app(seed=7, requests=10, live=True, tick_seconds=0.01)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.1)
    assert app.state.sim.ticks >= 2


async def test_optional_rate_limit_answers_429_with_code_4015() -> None:
    app = create_app(seed=7, requests=10, rate_limit_per_minute=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sdp") as http:
        assert [(await list_page(http, row_count=1)).status_code for _ in range(2)] == [200, 200]
        limited = await list_page(http, row_count=1)
    assert_failed(limited, 429, 4015)
    assert int(limited.headers["Retry-After"]) >= 1


async def test_faults_that_lose_the_answer_of_a_create_that_happened() -> None:
    from soc_shared.testing import ServerThread

    app = create_app(seed=7, requests=5, xsoar_incidents=10)
    sim, board = app.state.sim, app.state.faults
    body = {
        "input_data": json.dumps(
            {"request": {"subject": "lost answer", "account": next(iter(sim.accounts.values())).as_ref()}}
        )
    }
    with ServerThread(app) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=0.5) as http:
            for kind in ("500_after", "drop_after", "slow_after"):
                before = len(sim.records)
                await http.post(
                    "/_sim/faults",
                    json={"kind": kind, "path": "/api/v3/requests", "method": "POST", "hang_seconds": 1},
                )
                # A list (GET) on the same path is not touched by a POST-only fault.
                assert (await list_page(http, row_count=1)).status_code == 200
                if kind == "500_after":
                    assert (
                        await http.post("/api/v3/requests", headers=ON_PREM, data=body)
                    ).status_code == 500
                else:
                    expected = httpx.RemoteProtocolError if kind == "drop_after" else httpx.ReadTimeout
                    with pytest.raises(expected):
                        await http.post("/api/v3/requests", headers=ON_PREM, data=body)
                assert len(sim.records) == before + 1, f"{kind}: the request was created all the same"
    assert board.fired == {"500_after": 1, "drop_after": 1, "slow_after": 1}


async def test_request_notes_are_added_listed_and_move_the_request(client: httpx.AsyncClient) -> None:
    """``POST /api/v3/requests/{id}/notes`` (``note`` on-premises, ``request_note`` in the cloud,
    description mandatory) answers 201 with the note under the same key; the request's
    ``last_updated_time`` moves, so an incremental list shows it."""
    account = (await accounts(client))[0]["id"]
    request = (await list_page(client, account, row_count=1, start_index=1)).json()["requests"][0]
    before = (await client.get(f"/api/v3/requests/{request['id']}", headers=ON_PREM)).json()["request"]
    note = {"note": {"description": "Blocked at the firewall", "show_to_requester": True}}
    added = await client.post(
        f"/api/v3/requests/{request['id']}/notes",
        headers=ON_PREM,
        params={"ACCOUNTID": account},
        data={"input_data": json.dumps(note)},
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["response_status"]["status_code"] == 2000
    assert body["note"]["description"] == "Blocked at the firewall"
    assert body["note"]["show_to_requester"] is True
    # the cloud edition's key is request_note, and each edition refuses the other's
    cloud_note = {"request_note": {"description": "Escalated to L3"}}
    in_cloud = await client.post(
        f"/api/v3/requests/{request['id']}/notes",
        headers=await cloud(client),
        params={"ACCOUNTID": account},
        data={"input_data": json.dumps(cloud_note)},
    )
    assert in_cloud.status_code == 201, in_cloud.text
    assert in_cloud.json()["request_note"]["description"] == "Escalated to L3"
    assert_failed(
        await client.post(
            f"/api/v3/requests/{request['id']}/notes",
            headers=ON_PREM,
            params={"ACCOUNTID": account},
            data={"input_data": json.dumps(cloud_note)},
        ),
        400,
        4012,
    )
    after = (await client.get(f"/api/v3/requests/{request['id']}", headers=ON_PREM)).json()["request"]
    assert int(after["last_updated_time"]["value"]) > int(before["last_updated_time"]["value"])
    listed = await client.get(f"/api/v3/requests/{request['id']}/notes", headers=ON_PREM)
    assert [n["description"] for n in listed.json()["notes"]] == [
        "Blocked at the firewall",
        "Escalated to L3",
    ]

    empty = {"input_data": json.dumps({"note": {"description": " "}})}
    assert_failed(
        await client.post(f"/api/v3/requests/{request['id']}/notes", headers=ON_PREM, data=empty), 400, 4012
    )
    missing = await client.post(
        "/api/v3/requests/1/notes", headers=ON_PREM, data={"input_data": json.dumps(note)}
    )
    assert missing.status_code == 404
    refused = await client.post(
        f"/api/v3/requests/{request['id']}/notes", data={"input_data": json.dumps(note)}
    )
    assert refused.status_code == 401
