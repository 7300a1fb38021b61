"""The Cortex XSOAR simulator answers like the product: auth, search paging, schemas, tenants, notes."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator
from soc_shared.testing import VENDOR_SAMPLES
from soc_simulators.xsoar import (
    API_KEY,
    API_KEY_V8,
    API_KEY_V8_ID,
    NULL_TIME,
    XSOAR8_PREFIX,
    create_app,
    parse_time_us,
)

SAMPLES = VENDOR_SAMPLES
V6 = {"Authorization": API_KEY}
V8 = {"Authorization": API_KEY_V8, "x-xdr-auth-id": API_KEY_V8_ID}
ERROR_KEYS = {"id", "status", "title", "detail", "error", "encrypted", "multires"}


@cache
def swagger_definitions() -> dict[str, Any]:
    definitions = copy.deepcopy(
        json.loads((SAMPLES / "xsoar" / "server_api_swagger.json").read_text())["definitions"]
    )
    # go-swagger writes Go's ``interface{}`` as ``{"type": "object"}``; the server puts strings, lists
    # and numbers there (custom field values, entry contents). Only those spots are relaxed; the
    # Incident's own ``additionalProperties`` stays strict, so an invented top-level scalar would fail.
    definitions["CustomFields"]["additionalProperties"] = {}
    definitions["Entry"]["properties"]["contents"] = {}
    definitions["Entry"]["properties"]["parentContent"] = {}
    return definitions


def validator(definition: str) -> Draft4Validator:
    schema = {"definitions": swagger_definitions(), "$ref": f"#/definitions/{definition}"}
    return Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(seed=7, incidents=300)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://xsoar") as http:
        yield http


async def search(
    client: httpx.AsyncClient,
    path: str = "/incidents/search",
    headers: dict[str, str] = V6,
    **search_filter: Any,
) -> httpx.Response:
    return await client.post(path, headers=headers, json={"userFilter": False, "filter": search_filter})


async def search_all(client: httpx.AsyncClient, query: str = "", size: int = 100) -> list[dict[str, Any]]:
    incidents: list[dict[str, Any]] = []
    page = 0
    while True:
        answer = (
            await search(client, page=page, size=size, query=query, sort=[{"field": "modified", "asc": True}])
        ).json()
        incidents.extend(answer["data"])
        if not answer["data"]:
            return incidents
        page += 1


async def sim_count(client: httpx.AsyncClient) -> int:
    return (await client.get("/_sim/state")).json()["incidents"]


def key(incident: dict[str, Any]) -> str:
    """An incident's identity on a multi-tenant master: ids are per account."""
    return f"{incident['account']}/{incident['id']}"


# ------------------------------------------------------------------------------------------- auth


async def test_xsoar6_key_is_accepted_and_a_bad_key_gets_the_xsoar_error_body(
    client: httpx.AsyncClient,
) -> None:
    assert (await search(client, size=1)).status_code == 200
    for headers in ({}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {API_KEY}"}):
        answer = await search(client, headers=headers, size=1)
        assert answer.status_code == 401
        body = answer.json()
        assert set(body) == ERROR_KEYS
        assert body["id"] == "unauthorized" and body["status"] == 401 and body["title"] == "Unauthorized"
        assert body["encrypted"] is False and body["multires"] is None


async def test_xsoar8_key_needs_its_key_id(client: httpx.AsyncClient) -> None:
    path = f"{XSOAR8_PREFIX}/incidents/search"
    assert (await search(client, path, headers=V8, size=1)).status_code == 200
    assert (await client.get(f"{XSOAR8_PREFIX}/accounts", headers=V8)).status_code == 200
    alone = await search(client, path, headers={"Authorization": API_KEY_V8}, size=1)
    wrong_id = await search(client, path, headers={**V8, "x-xdr-auth-id": "8"}, size=1)
    for answer in (alone, wrong_id):
        assert answer.status_code == 401
        assert set(answer.json()) == ERROR_KEYS


# ------------------------------------------------------------------------------------------- search


async def test_search_answers_validate_against_the_server_swagger(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/tick")  # include incidents that progressed live, not only seeded ones
    answer = (await search(client, page=0, size=200, sort=[{"field": "modified", "asc": False}])).json()
    assert answer["total"] >= 300 and len(answer["data"]) == 200
    assert not list(validator("IncidentSearchResponseWrapper").iter_errors(answer))
    incident_schema = validator("Incident")
    for incident in answer["data"]:
        errors = [f"{list(e.path)}: {e.message}" for e in incident_schema.iter_errors(incident)]
        assert not errors, errors


async def test_incidents_carry_the_fields_the_seed_deployment_uses(client: httpx.AsyncClient) -> None:
    incidents = await search_all(client)
    fields = {
        "incidentphase",
        "incidentpriority",
        "initialnotification",
        "listofrulesoffense",
        "sourceips",
        "logsourcetype",
        "lowlevelcategoriesevents",
        "qradarcategory",
        "qradarsubcategory",
        "qradarclosereason",
        "ttacalculation",
        "mitretactics",
        "mitretechnique",
        "configurationitem",
        "itsmsyncstatus",
        "offenseid",
    }
    for incident in incidents:
        assert fields <= set(incident["CustomFields"])
        assert incident["investigationId"] == incident["id"]
        # The seed's deployment's labels.
        assert incident["CustomFields"]["incidentpriority"] in (
            "P1 Critical",
            "P2 High",
            "P3 Medium",
            "P4 Low",
        )
        sync = incident["CustomFields"]["itsmsyncstatus"]
        if incident["owner"]:
            expected = "Done" if incident["closeReason"] == "False Positive" else "Ready"
        else:
            expected = "Pending"
        assert sync == expected, (sync, incident["owner"], incident["closeReason"])
        assert 1 <= int(incident["CustomFields"]["offenseid"]) <= 5000
        closed = incident["status"] == 2
        assert (incident["closed"] != NULL_TIME) == closed
        assert bool(incident["closeReason"]) == closed
    # Analysts skip SLA steps: some progressed incidents lack a TTA, TTN or TTDN stamp.
    progressed = [i for i in incidents if i["CustomFields"]["incidentphase"] in ("Recovery", "Closure")]
    assert any("incidenttta" not in i["CustomFields"] for i in progressed)
    assert any("incidentttdn" in i["CustomFields"] for i in progressed)
    assert {i["CustomFields"]["itsmsyncstatus"] for i in incidents} == {"Pending", "Ready", "Done"}
    created = sorted(parse_time_us(i["created"]) for i in incidents)
    assert created[-1] - created[0] > 20 * 86_400_000_000  # spread over the last 30 days


async def test_same_seed_gives_the_same_incidents() -> None:
    def shape(app: Any) -> list[tuple[Any, ...]]:
        return [
            (r.id, r.account, r.doc["name"], r.doc["severity"], r.doc["status"])
            for r in app.state.sim.records.values()
        ]

    first, second = create_app(seed=11, incidents=50), create_app(seed=11, incidents=50)
    assert shape(first) == shape(second)
    assert shape(first) != shape(create_app(seed=12, incidents=50))
    # Life goes on identically too: same new incidents, same phase moves, same notes.
    for _ in range(3):
        assert first.state.sim.tick() == second.state.sim.tick()
    assert shape(first) == shape(second)


async def test_live_mode_ticks_in_the_background() -> None:
    app = create_app(seed=7, incidents=20, live=True, tick_seconds=0.01)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.1)
    assert app.state.sim.ticks >= 2
    quiet = create_app(seed=7, incidents=20)
    async with quiet.router.lifespan_context(quiet):
        await asyncio.sleep(0.05)
    assert quiet.state.sim.ticks == 0


async def test_optional_rate_limit_answers_429_with_retry_after() -> None:
    app = create_app(seed=7, incidents=20, rate_limit_per_minute=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://xsoar") as http:
        assert [(await search(http, size=1)).status_code for _ in range(2)] == [200, 200]
        limited = await search(http, size=1)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert set(limited.json()) == ERROR_KEYS and limited.json()["id"] == "tooManyRequests"


async def test_paging_by_modified_covers_every_incident_once(client: httpx.AsyncClient) -> None:
    incidents = await search_all(client, size=70)
    ids = [key(incident) for incident in incidents]
    assert len(ids) == len(set(ids)) == await sim_count(client)
    stamps = [parse_time_us(incident["modified"]) for incident in incidents]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    # The same walk with a ``modified:>cursor`` query instead of page numbers.
    seen: list[str] = []
    cursor = "1970-01-01T00:00:00Z"
    while True:
        data = (
            await search(
                client,
                page=0,
                size=64,
                query=f'modified:>"{cursor}"',
                sort=[{"field": "modified", "asc": True}],
            )
        ).json()["data"]
        if not data:
            break
        seen.extend(key(incident) for incident in data)
        cursor = data[-1]["modified"]
    assert seen == ids


async def test_page_limits_and_page_beyond_the_end(client: httpx.AsyncClient) -> None:
    too_big = await search(client, page=0, size=1001)
    assert too_big.status_code == 400 and set(too_big.json()) == ERROR_KEYS
    total = (await search(client, page=0, size=1)).json()["total"]
    beyond = (await search(client, page=total, size=10)).json()
    assert beyond == {"total": total, "data": []}
    # Size is 0 when not given: the server counts but returns no incidents.
    assert (await search(client, page=0)).json() == {"total": total, "data": []}


async def test_tick_changes_are_visible_through_a_modified_query(client: httpx.AsyncClient) -> None:
    newest = (await search(client, page=0, size=1, sort=[{"field": "modified", "asc": False}])).json()[
        "data"
    ][0]
    before = {key(i): i for i in await search_all(client)}
    changes = (await client.post("/_sim/tick")).json()
    changed = (
        set(changes["created"])
        | set(changes["advanced"])
        | {note.split("/")[0] + "/" + note.split("@")[1] for note in changes["notes"]}
    )
    assert changes["created"] and changes["advanced"]

    answer = (
        await search(
            client,
            page=0,
            size=1000,
            query=f'modified:>"{newest["modified"]}"',
            sort=[{"field": "modified", "asc": True}],
        )
    ).json()
    assert {key(incident) for incident in answer["data"]} == changed
    for incident in answer["data"]:
        if key(incident) in before:
            old = before[key(incident)]
            assert incident["version"] > old["version"]
            assert parse_time_us(incident["modified"]) > parse_time_us(old["modified"])
        else:
            assert incident["CustomFields"]["incidentphase"] == "Detection"
    for incident_id, phase in changes["advanced"].items():
        current = next(i for i in answer["data"] if key(i) == incident_id)
        assert current["CustomFields"]["incidentphase"] == phase
        if phase == "Closure":
            assert current["status"] == 2 and current["closed"] != NULL_TIME and current["closeReason"]


async def test_query_subset(client: httpx.AsyncClient) -> None:
    # Filter first, while most seeded documents are not built yet, then compare with the documents.
    closed = await search_all(client, query="status:2")
    not_closed = await search_all(client, query="-status:2")
    everything = await search_all(client)
    assert closed and not_closed and len(closed) + len(not_closed) == len(everything)
    assert all(i["status"] == 2 for i in closed) and all(i["status"] != 2 for i in not_closed)

    target = everything[len(everything) // 2]
    one = (
        await search(
            client, f"/acc_{target['account']}/incidents/search", page=0, size=10, query=f"id:{target['id']}"
        )
    ).json()
    assert one["total"] == 1 and one["data"][0]["id"] == target["id"]
    # At the master's root the id names one incident per tenant that has it.
    same_id = (await search(client, page=0, size=10, query=f"id:{target['id']}")).json()
    assert same_id["total"] == sum(1 for i in everything if i["id"] == target["id"]) > 1
    assert len({i["account"] for i in same_id["data"]}) == same_id["total"]

    low, high = everything[10]["modified"], everything[20]["modified"]
    window = await search_all(client, query=f'modified:>="{low}" and modified:<"{high}"')
    assert [key(i) for i in window] == [key(i) for i in everything[10:20]]

    acme_active = await search_all(client, query="account:acme status:1")
    assert acme_active and all(i["account"] == "acme" and i["status"] == 1 for i in acme_active)

    for bad in ('modified:>"yesterday"', "status:1 or status:2", 'name:"unbalanced'):
        answer = await search(client, page=0, size=1, query=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["id"] == "badRequest"


# ------------------------------------------------------------------------------------------- tenants


async def test_accounts_and_account_scoped_search(client: httpx.AsyncClient) -> None:
    accounts = (await client.get("/accounts", headers=V6)).json()
    assert len(accounts) >= 3
    for account in accounts:
        assert account["id"] == f"acc_{account['name']}" and account["displayName"]

    everything = await search_all(client)
    for account in accounts:
        name = account["name"]
        scoped = (await search(client, f"/acc_{name}/incidents/search", page=0, size=1000)).json()
        assert scoped["total"] == sum(1 for i in everything if i["account"] == name) > 0
        assert {i["account"] for i in scoped["data"]} == {name}
        # The account prefix wins over a query or filter naming another account.
        other = (
            await search(
                client,
                f"/acc_{name}/incidents/search",
                page=0,
                size=10,
                accounts={"globex" if name != "globex" else "acme": {}},
            )
        ).json()
        assert other == {"total": 0, "data": []}

    by_filter = (await search(client, page=0, size=1000, accounts={"globex": {}, "initech": {}})).json()
    assert {i["account"] for i in by_filter["data"]} == {"globex", "initech"}
    missing = await search(client, "/acc_nosuch/incidents/search", page=0, size=1)
    assert missing.status_code == 404 and set(missing.json()) == ERROR_KEYS


# ------------------------------------------------------------------------------------------- notes


async def test_investigation_entries_include_notes(client: httpx.AsyncClient) -> None:
    closed = (await search(client, page=0, size=50, query="status:2")).json()["data"]
    with_notes = None
    for incident in closed:
        answer = await client.post(
            f"/acc_{incident['account']}/investigation/{incident['investigationId']}",
            headers=V6,
            json={"pageSize": 100},
        )
        assert answer.status_code == 200
        investigation = answer.json()
        assert not list(validator("Investigation").iter_errors(investigation))
        entries = investigation["entries"]
        assert any(not entry["note"] for entry in entries)  # the playbook's own entries come too
        entry_schema = validator("Entry")
        for entry in entries:
            assert not list(entry_schema.iter_errors(entry))
        if any(entry["note"] for entry in entries):
            with_notes = (incident, entries)
            break
    assert with_notes is not None
    incident, entries = with_notes
    for note in (entry for entry in entries if entry["note"]):
        assert note["category"] in ("chat", "note") and note["type"] == 1 and note["format"] == "markdown"
        assert note["user"] and note["contents"] and note["id"].endswith(f"@{incident['id']}")
        parse_time_us(note["created"])

    # Another tenant cannot read it.
    other = "globex" if incident["account"] != "globex" else "acme"
    hidden = await client.post(
        f"/acc_{other}/investigation/{incident['id']}", headers=V6, json={"pageSize": 10}
    )
    assert hidden.status_code == 404


async def test_a_note_added_by_tick_shows_in_the_war_room(client: httpx.AsyncClient) -> None:
    changes = (await client.post("/_sim/tick")).json()
    account, note_id = changes["notes"][0].split("/")
    investigation_id = note_id.split("@")[1]
    room = f"/acc_{account}/investigation/{investigation_id}"
    everything = (await client.post(room, headers=V6, json={"pageSize": 1000})).json()
    assert everything["entries"][-1]["id"] == note_id and everything["entries"][-1]["note"] is True
    # fromTime pages the war room: only what came after the given entry.
    after = everything["entries"][-2]["created"]
    newer = (await client.post(room, headers=V6, json={"pageSize": 100, "fromTime": after})).json()
    assert [entry["id"] for entry in newer["entries"]] == [note_id]


# ------------------------------------------------------------------------------------------- writes


async def test_create_update_and_version_conflict(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/acc_globex/incident",
        headers=V6,
        json={
            "name": "Suspicious PowerShell on finance laptop",
            "type": "Malware",
            "severity": 3,
            "CustomFields": {"incidentpriority": "P2"},
        },
    )
    assert created.status_code == 200
    incident = created.json()
    assert incident["version"] == 1 and incident["account"] == "globex"
    globex_before = (await client.get("/_sim/state")).json()["by_account"]["globex"]
    assert int(incident["id"]) == globex_before and incident["investigationId"] == incident["id"]
    assert incident["CustomFields"]["incidentpriority"] == "P2"
    assert not list(validator("IncidentWrapper").iter_errors(incident))
    found = (
        await search(client, "/acc_globex/incidents/search", page=0, size=5, query=f"id:{incident['id']}")
    ).json()["data"]
    assert found[0]["name"] == "Suspicious PowerShell on finance laptop"

    updated = await client.post(
        "/acc_globex/incident",
        headers=V6,
        json={
            "id": incident["id"],
            "version": 1,
            "owner": "m.chen",
            "CustomFields": {"incidentphase": "Analysis"},
        },
    )
    assert updated.status_code == 200
    after = updated.json()
    assert after["version"] == 2 and after["owner"] == "m.chen"
    assert after["CustomFields"] == {**incident["CustomFields"], "incidentphase": "Analysis"}
    assert parse_time_us(after["modified"]) > parse_time_us(incident["modified"])

    stale = await client.post(
        "/acc_globex/incident", headers=V6, json={"id": incident["id"], "version": 1, "owner": "x"}
    )
    assert stale.status_code == 400
    assert set(stale.json()) == ERROR_KEYS and "version mismatch" in stale.json()["detail"].lower()

    forced = await client.post(
        "/acc_globex/incident",
        headers=V6,
        json={"id": incident["id"], "version": -1, "status": 2, "closeReason": "Resolved"},
    )
    assert (
        forced.json()["version"] == 3
        and forced.json()["status"] == 2
        and forced.json()["closed"] != NULL_TIME
    )

    unknown = await client.post("/incident", headers=V6, json={"id": "999999", "version": 1})
    assert unknown.status_code == 404 and set(unknown.json()) == ERROR_KEYS
    # A tenant with fewer incidents has no incident of that number: not found there.
    counts = (await client.get("/_sim/state")).json()["by_account"]
    smaller = next(a for a, n in counts.items() if n < int(incident["id"]))
    wrong_tenant = await client.post(
        f"/acc_{smaller}/incident", headers=V6, json={"id": incident["id"], "version": 3}
    )
    assert wrong_tenant.status_code == 404
    malformed = await client.post(
        "/incident", headers={**V6, "Content-Type": "application/json"}, content=b"{nope"
    )
    assert malformed.status_code == 400 and malformed.json()["id"] == "badRequest"


# ------------------------------------------------------------------------------------------- control


async def test_faults_503_then_success_and_a_shifting_page(client: httpx.AsyncClient) -> None:
    armed = await client.post("/_sim/faults", json={"kind": "503", "path": "/incidents/search", "count": 1})
    assert armed.status_code == 201
    assert (await search(client, page=0, size=1)).status_code == 503
    total = (await search(client, page=0, size=1)).json()["total"]

    await client.post("/_sim/faults", json={"kind": "shift_page", "path": "/incidents/search"})
    shifted = (await search(client, page=0, size=1, sort=[{"field": "modified", "asc": False}])).json()
    state = (await client.get("/_sim/state")).json()
    newest = shifted["data"][0]
    assert shifted["total"] == total + 1 and int(newest["id"]) == state["by_account"][newest["account"]]
    assert (await search(client, page=0, size=1)).json()["total"] == total + 1  # only once


async def test_bulk_seed_is_searchable(client: httpx.AsyncClient) -> None:
    seeded = (await client.post("/_sim/seed", json={"incidents": 20_000, "account": "acme"})).json()
    assert seeded["created"] == 20_000 and seeded["total"] == 20_300
    acme = (await search(client, "/acc_acme/incidents/search", page=3, size=1000)).json()
    assert acme["total"] > 20_000 and len(acme["data"]) == 1000
    bad = await client.post("/_sim/seed", json={"incidents": 5, "account": "nosuch"})
    assert bad.status_code == 400


async def test_each_account_numbers_its_incidents_from_one(client: httpx.AsyncClient) -> None:
    """A multi-tenant master: every tenant counts its own incidents, so ids repeat across accounts
    and only (account, id) names an incident."""
    everything = await search_all(client)
    by_account: dict[str, list[int]] = {}
    for incident in everything:
        by_account.setdefault(incident["account"], []).append(int(incident["id"]))
    assert len(by_account) >= 3
    for account, ids in by_account.items():
        assert sorted(ids) == list(range(1, len(ids) + 1)), account
    shared = set.intersection(*(set(map(str, ids)) for ids in by_account.values()))
    assert "1" in shared
    # Each account's war room of incident 1 is its own.
    rooms = {}
    for account in by_account:
        answer = await client.post(f"/acc_{account}/investigation/1", headers=V6, json={"pageSize": 5})
        assert answer.status_code == 200 and answer.json()["account"] == account
        rooms[account] = answer.json()["name"]
    # At the root an id several tenants share names no single incident.
    ambiguous = await client.post("/investigation/1", headers=V6, json={"pageSize": 5})
    assert ambiguous.status_code == 404
