"""The simulator answers (and our client asks) the way XSOAR's own REST specification says:
jsonschema validation against ``server_api_swagger.json`` definitions, ``#/definitions`` refs
resolved, ``date-time`` formats checked.

One documented relaxation: go-swagger writes Go's ``interface{}`` as a bare ``{"type": "object"}``
(no properties). The server fills those with any JSON value — ``CustomFields`` values are strings,
lists, booleans, timers; an entry's ``contents`` is markdown text — so such a bare schema is read
as "any value". The test asserts which schemas were relaxed, so nothing else slips through.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import httpx
import jsonschema
import pytest
from soc_shared.testing import VENDOR_SAMPLES
from soc_simulators import xsoar
from soc_soar_ingest.client import XsoarClient

SWAGGER = VENDOR_SAMPLES / "xsoar" / "server_api_swagger.json"
H6 = {"Authorization": xsoar.API_KEY}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def _relax_go_interfaces(node: Any, path: str, relaxed: list[str]) -> Any:
    if isinstance(node, dict):
        bare_object = (
            node.get("type") == "object"
            and not {"properties", "additionalProperties", "$ref", "items", "allOf"} & node.keys()
        )
        if bare_object:
            relaxed.append(path)
            return {k: v for k, v in node.items() if k != "type"}
        return {k: _relax_go_interfaces(v, f"{path}/{k}", relaxed) for k, v in node.items()}
    if isinstance(node, list):
        return [_relax_go_interfaces(v, f"{path}/{i}", relaxed) for i, v in enumerate(node)]
    return node


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SWAGGER.read_text())


@pytest.fixture(scope="module")
def relaxed_paths(spec: dict[str, Any]) -> list[str]:
    relaxed: list[str] = []
    _relax_go_interfaces(spec["definitions"], "#/definitions", relaxed)
    return relaxed


@pytest.fixture(scope="module")
def validator(spec: dict[str, Any]):  # noqa: ANN201
    definitions = _relax_go_interfaces(copy.deepcopy(spec["definitions"]), "#/definitions", [])
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def is_datetime(value: object) -> bool:
        # Go's zero time "0001-01-01T00:00:00Z" is what XSOAR writes for unset times: valid RFC 3339.
        return not isinstance(value, str) or bool(_RFC3339.match(value))

    def validate(instance: Any, schema: dict[str, Any]) -> None:
        full = {**schema, "definitions": definitions}
        errors = sorted(
            jsonschema.Draft4Validator(full, format_checker=checker).iter_errors(instance),
            key=lambda e: list(e.absolute_path),
        )
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])

    return validate


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{name}"}


VALIDATED = (
    "Incident",
    "IncidentWrapper",
    "IncidentSearchResponseWrapper",
    "CustomFields",
    "Label",
    "Entry",
    "Investigation",
    "SearchIncidentsData",
    "IncidentFilter",
    "Order",
    "CreateIncidentRequest",
)


def test_only_go_interface_schemas_are_relaxed(relaxed_paths: list[str]) -> None:
    """Among the definitions these tests validate against, exactly the interface{} slots are relaxed."""
    relevant = {p for p in relaxed_paths if p.split("/")[2] in VALIDATED}
    assert relevant == {
        "#/definitions/CustomFields/additionalProperties",  # custom field values: any JSON
        # The structs' inline map of extra fields (where the wrappers carry CustomFields).
        "#/definitions/Incident/additionalProperties",
        "#/definitions/IncidentWrapper/additionalProperties",
        "#/definitions/CreateIncidentRequest/additionalProperties",
        "#/definitions/Entry/properties/contents",  # markdown text, or a command's JSON result
        "#/definitions/Entry/properties/parentContent",
    }


@pytest.fixture
async def sim_client():  # noqa: ANN201
    sim = xsoar.create_app(seed=9, incidents=300)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim), base_url="http://xsoar.sim"
    ) as client:
        yield client


@pytest.mark.parametrize(
    "path",
    ["/incidents/search", "/acc_acme/incidents/search", "/xsoar/public/v1/acc_globex/incidents/search"],
)
@pytest.mark.parametrize(
    "query", ["", 'modified:>="2000-01-01T00:00:00Z"', "status:closed", "-status:closed"]
)
async def test_search_answers_validate(sim_client, validator, spec, path: str, query: str) -> None:
    headers = (
        H6
        if not path.startswith("/xsoar")
        else {"Authorization": xsoar.API_KEY_V8, "x-xdr-auth-id": xsoar.API_KEY_V8_ID}
    )
    response = await sim_client.post(
        path,
        headers=headers,
        json={
            "userFilter": False,
            "filter": {"page": 0, "size": 100, "query": query, "sort": [{"field": "modified", "asc": True}]},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"], "the simulator answered no incidents"
    validator(body, ref("IncidentSearchResponseWrapper"))
    validator(body, spec["paths"]["/incidents/search"]["post"]["responses"]["200"]["schema"])
    known = set(spec["definitions"]["Incident"]["properties"])
    for incident in body["data"]:
        validator(incident, ref("Incident"))
        assert set(incident) <= known, f"fields XSOAR does not have: {set(incident) - known}"
        assert isinstance(incident["CustomFields"], dict)


async def test_empty_and_last_pages_validate(sim_client, validator) -> None:
    for page in (2, 50):  # a partial last page, then past the end
        response = await sim_client.post(
            "/incidents/search",
            headers=H6,
            json={"filter": {"page": page, "size": 120, "sort": [{"field": "modified", "asc": True}]}},
        )
        validator(response.json(), ref("IncidentSearchResponseWrapper"))


async def test_incident_create_and_update_answers_validate(sim_client, validator, spec) -> None:
    created = await sim_client.post(
        "/acc_acme/incident",
        headers=H6,
        json={"name": "contract test", "severity": 2, "CustomFields": {"incidentpriority": "P3"}},
    )
    assert created.status_code == 200, created.text
    schema = spec["paths"]["/incident"]["post"]["responses"]["200"]["schema"]
    validator(created.json(), schema)
    validator(created.json(), ref("Incident"))
    updated = await sim_client.post(
        "/acc_acme/incident",
        headers=H6,
        json={
            "id": created.json()["id"],
            "version": created.json()["version"],
            "phase": "Analysis",
            "status": 1,
        },
    )
    assert updated.status_code == 200, updated.text
    validator(updated.json(), schema)
    validator(updated.json(), ref("Incident"))


async def test_war_room_entries_validate(sim_client, validator, spec) -> None:
    search = await sim_client.post(
        "/acc_initech/incidents/search",
        headers=H6,
        json={
            "filter": {
                "page": 0,
                "size": 20,
                "query": "status:closed",
                "sort": [{"field": "id", "asc": True}],
            }
        },
    )
    known = set(spec["definitions"]["Entry"]["properties"])
    notes = 0
    for incident in search.json()["data"]:
        answer = await sim_client.post(
            f"/acc_initech/investigation/{incident['investigationId']}", headers=H6, json={"pageSize": 100}
        )
        assert answer.status_code == 200, answer.text
        investigation = answer.json()
        validator({k: v for k, v in investigation.items() if k != "entries"}, ref("Investigation"))
        for entry in investigation["entries"]:
            validator(entry, ref("Entry"))
            assert set(entry) <= known
            notes += bool(entry["note"])
    assert notes > 0


async def test_our_requests_validate_against_the_specification(validator) -> None:
    """What the client sends: a SearchIncidentsData body and a CreateIncidentRequest body."""
    sim = xsoar.create_app(seed=9, incidents=30)
    sent: list[tuple[str, Any]] = []
    inner = httpx.ASGITransport(app=sim)

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await request.aread()
            sent.append((request.url.path, json.loads(request.content) if request.content else None))
            return await inner.handle_async_request(request)

    client = XsoarClient(
        "http://xsoar.sim", integration_id="contract", api_key=xsoar.API_KEY, transport=Recording()
    )
    try:
        async for _batch, _position in client.changed_incidents("acme", None, page_size=5):
            break
        created = await client.create_incident(
            "acme", {"name": "from the client", "severity": 1, "CustomFields": {"offenseid": "12"}}
        )
        await client.update_incident("acme", created["id"], {"phase": "Analysis"})
    finally:
        await client.aclose()
    searches = [body for path, body in sent if path.endswith("/incidents/search")]
    creates = [body for path, body in sent if path.endswith("/incident")]
    assert searches and len(creates) == 2
    for body in searches:
        validator(body, ref("SearchIncidentsData"))
    for body in creates:
        validator(body, ref("CreateIncidentRequest"))


def test_the_validation_has_teeth(validator) -> None:
    """The relaxed schemas still refuse what XSOAR would never send."""
    good = {
        "id": "1",
        "name": "x",
        "status": 1,
        "severity": 0.5,
        "created": "2024-05-01T10:00:00.123456789Z",
        "closed": xsoar.NULL_TIME,
        "CustomFields": {"incidentphase": "Analysis", "sourceips": ["10.0.0.1"]},
    }
    validator(good, ref("Incident"))
    for broken in (
        {**good, "severity": "high"},
        {**good, "closed": "yesterday"},
        {**good, "id": 1},
        {**good, "labels": [{"type": 3}]},
        {**good, "CustomFields": ["not", "an", "object"]},
    ):
        with pytest.raises(AssertionError):
            validator(broken, ref("Incident"))
    with pytest.raises(AssertionError):
        validator({"total": "12", "data": []}, ref("IncidentSearchResponseWrapper"))


async def test_close_and_playbook_answers_validate(sim_client, validator, spec) -> None:
    """``/incident/batchClose`` answers the spec's IncidentSearchResponseWrapper; the playbook list
    holds ``Playbook``s and a started playbook is an ``InvestigationPlaybook``; closing moves
    ``closed``, ``modified`` and ``version``; an unknown key is refused."""
    found = await sim_client.post(
        "/acc_acme/incidents/search", headers=H6, json={"filter": {"query": "status:active", "size": 1}}
    )
    incident = found.json()["data"][0]
    playbooks = await sim_client.post(
        "/acc_acme/playbook/search", headers=H6, json={"query": "hidden:F AND deprecated:F"}
    )
    assert playbooks.status_code == 200, playbooks.text
    for playbook in playbooks.json()["playbooks"]:
        validator(playbook, ref("Playbook"))
    started = await sim_client.post(
        f"/acc_acme/inv-playbook/new/{playbooks.json()['playbooks'][0]['id']}/{incident['id']}",
        headers=H6,
        json={},
    )
    assert started.status_code == 200, started.text
    validator(started.json(), ref("InvestigationPlaybook"))
    closed = await sim_client.post(
        "/acc_acme/incident/batchClose",
        headers=H6,
        json={"ids": [incident["id"]], "closeReason": "Resolved", "closeNotes": "done", "all": False},
    )
    assert closed.status_code == 200, closed.text
    schema = spec["paths"]["/incident/batchClose"]["post"]["responses"]["200"]["schema"]
    validator(closed.json(), schema)
    [doc] = closed.json()["data"]
    assert doc["status"] == 2 and doc["closeReason"] == "Resolved" and doc["closeNotes"] == "done"
    assert doc["closed"] > incident["modified"] and doc["version"] == incident["version"] + 2
    again = await sim_client.post("/acc_acme/incident/batchClose", headers=H6, json={"ids": [incident["id"]]})
    assert again.json()["notUpdated"] == 1 and again.json()["data"] == []
    refused = await sim_client.post("/acc_acme/playbook/search", headers={"Authorization": "wrong"}, json={})
    assert refused.status_code == 401
