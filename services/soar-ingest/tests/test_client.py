"""The XSOAR client against the simulator: both authentications, account-scoped routes, keyset
paging that neither skips nor repeats, war-room paging, create/update with optimistic locking."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import httpx
import pytest
from soc_shared.vendor_http import RetryPolicy, VendorError
from soc_simulators import xsoar
from soc_soar_ingest.client import Position, XsoarClient, xsoar_error

URL = "http://xsoar.sim"


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to an app and remembers their paths and headers."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


def client(transport: httpx.AsyncBaseTransport, **kwargs: Any) -> XsoarClient:
    kwargs.setdefault("api_key", xsoar.API_KEY)
    return XsoarClient(
        URL,
        integration_id="client-test",
        transport=transport,
        retry=RetryPolicy(attempts=2, base_delay=0.01),
        **kwargs,
    )


@pytest.fixture
def sim():  # noqa: ANN201
    return xsoar.create_app(seed=13, incidents=120)


async def test_xsoar6_sends_the_key_alone_at_the_root(sim) -> None:
    transport = Recording(sim)
    c = client(transport)
    try:
        accounts = await c.accounts()
        assert [a.name for a in accounts or []] == ["acme", "globex", "initech", "umbrella"]
        assert (
            accounts
            and accounts[0].account_id == "acc_acme"
            and accounts[0].display_name == "Acme Corporation"
        )
    finally:
        await c.aclose()
    request = transport.requests[0]
    assert request.url.path == "/accounts"
    assert request.headers["authorization"] == xsoar.API_KEY and "x-xdr-auth-id" not in request.headers


async def test_xsoar8_sends_key_and_key_id_under_the_public_api_prefix(sim) -> None:
    transport = Recording(sim)
    c = client(transport, api_key=xsoar.API_KEY_V8, api_key_id=xsoar.API_KEY_V8_ID)
    try:
        assert c.auth_style == "xsoar8"
        _, data = await c.search_incidents("globex", size=5)
        assert data and all(d["account"] == "globex" for d in data)
    finally:
        await c.aclose()
    request = transport.requests[0]
    assert request.url.path == "/xsoar/public/v1/acc_globex/incidents/search"
    assert request.headers["x-xdr-auth-id"] == xsoar.API_KEY_V8_ID


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": "wrong"},
        {"api_key": xsoar.API_KEY_V8},  # an XSOAR 8 key sent the XSOAR 6 way: no key id
        {"api_key": xsoar.API_KEY_V8, "api_key_id": "8"},  # the wrong key id
    ],
)
async def test_refused_keys_are_bad_credentials(sim, kwargs: dict[str, Any]) -> None:
    c = client(httpx.ASGITransport(app=sim), **kwargs)
    try:
        with pytest.raises(VendorError) as caught:
            await c.accounts()
    finally:
        await c.aclose()
    assert caught.value.category == "bad_credentials" and caught.value.status == 401
    assert xsoar.API_KEY_V8 not in str(caught.value)


def test_xsoar8_without_a_key_id_is_refused_before_any_request() -> None:
    with pytest.raises(VendorError) as caught:
        XsoarClient(URL, integration_id="x", api_key=xsoar.API_KEY_V8, auth_style="xsoar8")
    assert caught.value.category == "bad_credentials" and "key id" in caught.value.message


async def test_an_account_sees_only_its_incidents_and_unknown_accounts_are_not_found(sim) -> None:
    c = client(httpx.ASGITransport(app=sim))
    try:
        everything = [d async for batch, _ in c.changed_incidents("", None, page_size=1000) for d in batch]
        acme = [d async for batch, _ in c.changed_incidents("acme", None, page_size=7) for d in batch]
        assert acme and {d["account"] for d in acme} == {"acme"}
        assert sorted(d["id"] for d in acme) == sorted(d["id"] for d in everything if d["account"] == "acme")
        with pytest.raises(VendorError) as caught:
            await c.search_incidents("nosuch", size=1)
        assert caught.value.category == "not_found"
        with pytest.raises(VendorError) as refused:
            await c.search_incidents("../accounts", size=1)
        assert refused.value.category == "invalid_request"
    finally:
        await c.aclose()


async def test_keyset_paging_sees_every_change_once_while_incidents_change_under_it(sim) -> None:
    """Offset paging would skip: an incident changed after its page was read jumps to the end and
    pulls an unread one back into the pages already read. Keyset paging does not."""
    state: xsoar.XsoarSim = sim.state.sim
    c = client(httpx.ASGITransport(app=sim))
    rng = random.Random(3)
    seen: list[tuple[str, int]] = []
    try:
        read = c.changed_incidents("", None, page_size=10)
        last: Position | None = None
        async for batch, position in read:
            last = position
            # Ids are per account on a multi-tenant master: (account, id) names an incident.
            seen.extend(((d["account"], d["id"]), d["version"]) for d in batch)
            if len(seen) in (10, 40, 70):  # between pages: change an incident already read and an unread one
                open_ids = list(state.open_ids)
                already = next(i for i, _ in seen if i in state.open_ids)
                unread = next(i for i in open_ids if i not in {s for s, _ in seen})
                for key in (already, unread):
                    state.advance(rng, state.records[key])
        final = {rec.key: rec.doc["version"] for rec in state.records.values()}
    finally:
        await c.aclose()
    assert {i for i, _ in seen} == set(final)  # nothing skipped
    assert Counter(seen).most_common(1)[0][1] == 1  # no (incident, version) twice
    latest = {}
    for incident_id, version in seen:
        latest[incident_id] = version
    assert latest == final  # and each incident's last sighting is its current version
    assert last is not None and last.ns == max(rec.modified_us for rec in state.records.values()) * 1000


async def test_keyset_paging_with_many_incidents_at_the_same_time() -> None:
    """Ties on ``modified`` beyond a page, in an order that is not by id: told apart by id."""
    stamp = "2024-05-01T10:00:00Z"
    incidents = [{"id": str(n), "modified": stamp, "version": 1} for n in (9, 3, 11, 1, 7, 5, 2, 10, 4, 8, 6)]
    incidents += [{"id": "20", "modified": "2024-05-01T10:00:01Z", "version": 1}]

    def handler(request: httpx.Request) -> httpx.Response:
        search = json.loads(request.content)["filter"]
        query = search.get("query") or ""
        since = query.split('"')[1] if query else "0000"
        matching = [i for i in incidents if i["modified"] >= since]  # same format: string order is time order
        page, size = search["page"], search["size"]
        return httpx.Response(
            200, json={"total": len(matching), "data": matching[page * size : (page + 1) * size]}
        )

    c = client(httpx.MockTransport(handler))
    try:
        got = [d["id"] async for batch, _ in c.changed_incidents("", None, page_size=3) for d in batch]
        assert sorted(got, key=int) == [str(n) for n in range(1, 12)] + ["20"]
        assert len(got) == len(set(got))
        position = Position.from_json({"modified": stamp, "ids": ["1", "3", "9"]})
        rest = [d["id"] async for batch, _ in c.changed_incidents("", position, page_size=3) for d in batch]
        assert sorted(rest, key=int) == ["2", "4", "5", "6", "7", "8", "10", "11", "20"]
    finally:
        await c.aclose()


async def test_war_room_entries_page_by_from_time(sim) -> None:
    state: xsoar.XsoarSim = sim.state.sim
    rec = max(state.records.values(), key=lambda r: len(state.entries_of(r)))
    expected = [entry.doc["id"] for entry in state.entries_of(rec)]
    assert len(expected) >= 4
    c = client(httpx.ASGITransport(app=sim))
    try:
        pages = [page async for page in c.investigation_entries(rec.account, rec.id, page_size=2)]
        assert [e["id"] for page in pages for e in page] == expected
        assert all(len(page) <= 2 for page in pages)
        later = [
            e["id"]
            async for page in c.investigation_entries(rec.account, rec.id, from_time=pages[0][-1]["created"])
            for e in page
        ]
        assert later == expected[2:]
        assert [
            p async for p in c.investigation_entries(rec.account, "999999")
        ] == []  # never started: no entries
    finally:
        await c.aclose()


async def test_create_then_update_with_optimistic_locking(sim) -> None:
    c = client(httpx.ASGITransport(app=sim))
    try:
        created = await c.create_incident(
            "umbrella",
            {"name": "Enriched by the SOC portal", "severity": 2, "CustomFields": {"incidentpriority": "P3"}},
        )
        assert created["account"] == "umbrella" and created["version"] >= 1
        updated = await c.update_incident(
            "umbrella", created["id"], {"CustomFields": {"itsmsyncstatus": "Synced"}}
        )
        assert updated["version"] == created["version"] + 1
        assert updated["CustomFields"]["itsmsyncstatus"] == "Synced"
        assert updated["CustomFields"]["incidentpriority"] == "P3"  # custom fields merge, not replace
        with pytest.raises(VendorError) as stale:
            await c.update_incident(
                "umbrella", created["id"], {"owner": "j.smith"}, version=created["version"]
            )
        assert stale.value.category == "invalid_request" and stale.value.vendor_code == "version_mismatch"
        with pytest.raises(VendorError) as missing:
            await c.update_incident("umbrella", "987654", {"owner": "j.smith"})
        assert missing.value.category == "not_found"
        fetched = await c.get_incident("umbrella", created["id"])
        assert fetched is not None and fetched["version"] == updated["version"]
    finally:
        await c.aclose()


async def test_update_retries_a_concurrent_change_when_no_version_was_given(sim) -> None:
    state: xsoar.XsoarSim = sim.state.sim
    rec = next(r for r in state.records.values() if r.account == "acme" and r.key in state.open_ids)
    calls = {"n": 0}
    inner = httpx.ASGITransport(app=sim)

    class RaceOnce(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/incident") and calls["n"] == 0:
                calls["n"] += 1
                state.add_note(random.Random(1), rec)  # an analyst writes between our read and our write
            return await inner.handle_async_request(request)

    c = client(RaceOnce())
    try:
        updated = await c.update_incident("acme", rec.id, {"CustomFields": {"itsmsyncstatus": "Synced"}})
    finally:
        await c.aclose()
    assert updated["CustomFields"]["itsmsyncstatus"] == "Synced"


@pytest.mark.parametrize(
    ("status", "body", "category"),
    [
        (
            401,
            {"id": "unauthorized", "status": 401, "title": "Unauthorized", "detail": "bad key", "error": "x"},
            "bad_credentials",
        ),
        (
            403,
            {"id": "forbidden", "status": 403, "title": "Forbidden", "detail": "no role", "error": "x"},
            "permission",
        ),
        (
            404,
            {"id": "notFound", "status": 404, "title": "Not found", "detail": "nope", "error": "x"},
            "not_found",
        ),
        (
            400,
            {"id": "badRequest", "status": 400, "title": "Bad request", "detail": "bad query", "error": "x"},
            "invalid_request",
        ),
        (
            429,
            {
                "id": "tooManyRequests",
                "status": 429,
                "title": "Too Many Requests",
                "detail": "slow",
                "error": "x",
            },
            "rate_limited",
        ),
        (
            500,
            {"id": "internal", "status": 500, "title": "Internal", "detail": "boom", "error": "x"},
            "server_error",
        ),
    ],
)
def test_xsoar_error_bodies_map_to_categories(status: int, body: dict[str, Any], category: str) -> None:
    error = xsoar_error(httpx.Response(status, json=body))
    assert error is not None and error.category == category and error.message.startswith("XSOAR: ")
    assert xsoar_error(httpx.Response(502, text="<html>proxy</html>")) is None  # the default mapping decides


async def test_an_overlap_reread_never_moves_the_position_back() -> None:
    """The incident at the position was deleted: the overlap re-reads only older ones."""
    incidents = [{"id": str(n), "modified": f"2024-05-01T10:00:0{n}Z", "version": 1} for n in range(1, 6)]

    def handler(request: httpx.Request) -> httpx.Response:
        search = json.loads(request.content)["filter"]
        since = search["query"].split('"')[1]
        matching = [i for i in incidents if i["modified"] >= since]
        page, size = search["page"], search["size"]
        return httpx.Response(
            200, json={"total": len(matching), "data": matching[page * size : (page + 1) * size]}
        )

    c = client(httpx.MockTransport(handler))
    position = Position.from_json({"modified": "2024-05-01T10:00:07Z", "ids": ["7"]})
    try:
        got = [
            (batch, p)
            async for batch, p in c.changed_incidents("", position, page_size=2, overlap_ns=4 * 10**9)
        ]
    finally:
        await c.aclose()
    assert [d["id"] for batch, _ in got for d in batch] == ["3", "4", "5"]  # the window [03, 07] re-read once
    assert all(p == position for _, p in got)
