"""The original product's filters, presets and figures on our read model: each filter is shown to
narrow the rows to exactly the expected ones (data published on the real bus, read through the API)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from soc_shared.bus import Bus
from soc_shared.events import IncidentSeverity, IncidentStatus, SoarIncident
from soc_tenant.main import create_app
from soc_tenant.readmodel.testing import add_company, event, eventually, map_soar

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC)  # today, 00:00 UTC
RUN = uuid.uuid4().hex[:8]
MARK = f"parity{RUN}"
ACC, OTHER = f"par-{RUN}", f"oth-{RUN}"


def inc(key: str, created: datetime, status: IncidentStatus, priority: str, steps: tuple, **extra: Any):
    at = lambda m: created + timedelta(minutes=m) if m is not None else None  # noqa: E731
    account = extra.pop("account", ACC)
    fields: dict[str, Any] = {
        "incident_id": f"{key}-{RUN}",
        "account": account,
        "name": extra.pop("name", f"{MARK} {key}"),
        "type": "Malware",
        "status": status,
        "severity": IncidentSeverity.HIGH,
        "owner": extra.pop("owner", None),
        "created": created,
        "modified": created,
        "priority": priority,
        "tta_at": at(steps[0]),
        "ttn_at": at(steps[1]),
        "ttdn_at": at(steps[2]),
        "version": 1,
        **extra,
    }
    if status in (IncidentStatus.CLOSED, IncidentStatus.ARCHIVED):
        fields.setdefault("closed", created + timedelta(hours=5))
    return SoarIncident(**fields)


A, C, P = IncidentStatus.ACTIVE, IncidentStatus.CLOSED, IncidentStatus.PENDING
ALL_MET = (5, 10, 20)
INCIDENTS = {
    # P1 targets 15/30/240: TTN breached only.
    "p1": inc(
        "p1",
        T0,
        A,
        "P1",
        (5, 45, 100),
        owner="alice",
        mitre_tactics=["TA0001", "TA0002"],
        mitre_techniques=["T1566"],
        phase="Triage",
        playbook_id="pb-phish",
        configuration_item="web-01.acme",
        sla=1,
        occurred=T0 - timedelta(days=1),
        name=f"{MARK} 101 Phishing mail",
        itsm_sync_status="Ready",
    ),
    # P2 targets 30/60/480: TTA breached only.
    "p2": inc(
        "p2",
        T0,
        C,
        "P2",
        (40, 50, 400),
        owner="Bob",
        mitre_tactics=["TA0002"],
        mitre_techniques=["T1059"],
        phase="Containment",
        playbook_id="pb-malware",
        configuration_item="db-02",
        sla=2,
        occurred=T0 - timedelta(days=5),
        name=f"{MARK} 102 Malware beacon",
        close_reason="False Positive",
    ),
    "p3": inc(
        "p3",
        T0 - timedelta(days=3) + timedelta(hours=1),
        A,
        "P1",
        ALL_MET,
        phase="triage",
        itsm_sync_status="Error",
    ),
    "p4": inc("p4", T0 - timedelta(days=3) + timedelta(hours=2), P, "P3", (30, 60, 100), owner="alice"),
    "p5": inc(
        "p5",
        T0 - timedelta(days=10) + timedelta(hours=1),
        C,
        "P2",
        ALL_MET,
        owner="alice",
        close_reason="Resolved",
    ),
    "p6": inc("p6", T0 - timedelta(days=10) + timedelta(hours=2), A, "P4", ALL_MET, owner="bob"),
    "p7": inc("p7", T0 - timedelta(days=40), C, "P1", ALL_MET),
    "p8": inc("p8", T0 - timedelta(days=45), A, "P2", ALL_MET),
    # another company's, matching most filters: must never show
    "q1": inc(
        "q1",
        T0,
        A,
        "P1",
        (5, 45, 100),
        owner="alice",
        mitre_tactics=["TA0001"],
        account=OTHER,
        phase="Triage",
    ),
}


@pytest_asyncio.fixture(scope="module")
async def env(migrated, tokens):
    app = create_app(migrated, verifier=tokens.verifier())
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenant.test")
        async with client:
            bus = Bus(migrated.amqp_url.get_secret_value(), service="parity-tests")
            await bus.connect()
            db = app.state.db
            company = await add_company(db, f"Parity {RUN}")
            other = await add_company(db, f"Other {RUN}")
            soar = f"xs-par-{RUN}"
            await map_soar(db, company, soar, ACC)
            await map_soar(db, other, soar, OTHER)
            await bus.publish(
                [
                    event(
                        "soar.incident.upserted", x, soar, x.incident_id, version=1, vendor_tenant=x.account
                    )
                    for x in INCIDENTS.values()
                ]
            )
            state = {"client": client, "headers": tokens.headers(kind="tenant", company_id=company)}

            async def loaded() -> bool:
                r = await client.get(
                    "/tenant/soar-incidents/", headers=state["headers"], params={"limit": 100}
                )
                return r.status_code == 200 and r.json()["total"] == 8

            await eventually(loaded, within=30)
            yield state
            await bus.close()


async def get(env: dict, path: str, expect: int = 200, **params: Any) -> Any:
    r = await env["client"].get(path, headers=env["headers"], params=params)
    assert r.status_code == expect, (path, params, r.status_code, r.text[:400])
    return r.json()


def keys(answer: dict) -> set[str]:
    return {x["incident_id"].rsplit("-", 1)[0] for x in answer["items"]}


async def listed(env: dict, path: str = "/tenant/soar-incidents/", **params: Any) -> set[str]:
    return keys(await get(env, path, limit=100, **params))


def day(delta_days: int) -> str:
    return (T0 + timedelta(days=delta_days)).date().isoformat()


async def test_incident_filters_of_the_original_narrow_the_list(env):
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"}),
        ({"mitre_tactic": "TA0001"}, {"p1"}),
        ({"mitre_tactic": "TA0002"}, {"p1", "p2"}),
        ({"mitre_technique": "T1059"}, {"p2"}),
        ({"phase": "TRIAGE"}, {"p1", "p3"}),
        ({"playbook": "pb-phish"}, {"p1"}),
        ({"configuration_item": "ACME"}, {"p1"}),
        ({"sla": 2}, {"p2"}),
        ({"description": "malware beacon"}, {"p2"}),
        ({"occurred_start": day(-2)}, {"p1"}),
        ({"occurred_end": day(-2)}, {"p2"}),
        ({"occurred_start": day(-6), "occurred_end": day(-4)}, {"p2"}),
        ({"assignee": "ALICE"}, {"p1", "p4", "p5"}),
        ({"filter": "unassigned"}, {"p3", "p7", "p8"}),
        ({"filter": "pending"}, {"p4"}),
        ({"filter": "closed"}, {"p2", "p5", "p7"}),
        ({"filter": "false-positive"}, {"p2"}),
        ({"filter": "error"}, {"p3"}),
        ({"filter": "all"}, {"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"}),
        ({"filter_type": 1}, {"p1", "p2"}),
        ({"filter_type": 2}, {"p1", "p2", "p3", "p4"}),
        ({"filter_type": 3}, {"p1", "p2", "p3", "p4", "p5", "p6"}),
        ({"filter_type": 9, "start_date": day(-10), "end_date": day(-3)}, {"p3", "p4", "p5", "p6"}),
        ({"start_date": day(-45), "end_date": day(-40)}, {"p7", "p8"}),
        ({"assignee": "alice", "filter_type": 2}, {"p1", "p4"}),
        ({"mitre_tactic": "TA0002", "filter": "closed"}, {"p2"}),
    ]
    for params, expected in cases:
        assert await listed(env, **params) == expected, params


async def test_incident_download_takes_the_same_filters(env):
    r = await env["client"].get(
        "/tenant/soar-incidents/download/",
        headers=env["headers"],
        params={"file_type": "json", "phase": "containment", "filter_type": 3},
    )
    assert r.status_code == 200, r.text
    import json

    assert keys(json.loads(r.content)) == {"p2"}
    r = await env["client"].get(
        "/tenant/soar-incidents/download/",
        headers=env["headers"],
        params={
            "file_type": "json",
            "assignee": "alice",
            "filter_type": 9,
            "start_date": day(-12),
            "end_date": day(0),
        },
    )
    assert keys(json.loads(r.content)) == {"p1", "p4", "p5"}


async def test_bad_filter_values_answer_422_naming_the_parameter(env):
    cases = [
        ({"filter": "bogus"}, "filter"),
        ({"sla": "abc"}, "sla"),
        ({"occurred_start": "2024-02-30"}, "occurred_start"),
        ({"occurred_start": day(0), "occurred_end": day(-1)}, "occurred_start"),
        ({"filter_type": 4}, "filter_type"),
        ({"filter_type": 9, "start_date": day(-3)}, "end_date"),
        ({"filter_type": 2, "from": NOW.isoformat()}, "filter_type"),
        ({"start_date": day(0), "end_date": day(-2)}, "start_date"),
        ({"from": NOW.isoformat(), "to": (NOW - timedelta(days=1)).isoformat()}, "from"),
    ]
    for params, name in cases:
        body = await get(env, "/tenant/soar-incidents/", 422, **params)
        err = body["error"]
        named = err["details"].get("parameter") or [e["loc"][-1] for e in err["details"].get("errors", [])]
        assert name in (named if isinstance(named, list) else [named]), (params, err)
    for path, params, name in [
        ("/tenant/dashboard/", {"filters": "open,bogus"}, "filters"),
        ("/tenant/dashboard/", {"status": "7"}, "status"),
        ("/tenant/sla/breached/", {"sla_type": "xyz"}, "sla_type"),
        ("/tenant/sla/breached/", {"sla_level": "9"}, "sla_level"),
        ("/tenant/sla/breached/", {"show_only": "some"}, "show_only"),
        ("/tenant/offenses/", {"filter_type": 5}, "filter_type"),
    ]:
        err = (await get(env, path, 422, **params))["error"]
        named = err["details"].get("parameter") or [e["loc"][-1] for e in err["details"].get("errors", [])]
        assert name in (named if isinstance(named, list) else [named]), (path, params, err)


async def test_sla_breached_per_step_level_show_only_and_incident_filters(env):
    path = "/tenant/sla/breached/"
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"p1", "p2"}),
        ({"sla_type": "tta"}, {"p2"}),
        ({"sla_type": "ttn"}, {"p1"}),
        ({"sla_type": "ttdn"}, set()),
        ({"sla_type": "tta", "show_only": "achieved"}, {"p1", "p3", "p4", "p5", "p6"}),
        ({"sla_type": "ttn", "show_only": "all"}, {"p1", "p2", "p3", "p4", "p5", "p6"}),
        ({"sla_level": 4}, {"p1"}),
        ({"sla_level": "P2"}, {"p2"}),
        ({"sla_level": 1}, set()),
        ({"assignee": "bob"}, {"p2"}),
        ({"mitre_tactic": "TA0001"}, {"p1"}),
        ({"filter": "closed"}, {"p2"}),
        ({"filter_type": 2, "sla_type": "tta", "show_only": "achieved"}, {"p1", "p3", "p4"}),
        (
            {"filter_type": 9, "start_date": day(-50), "end_date": day(-1), "show_only": "achieved"},
            {"p3", "p4", "p5", "p6", "p7", "p8"},
        ),
    ]
    for params, expected in cases:
        assert await listed(env, path, **params) == expected, params
    # the SLA incident list takes them too
    assert await listed(env, "/tenant/sla/incidents/", sla_type="tta", show_only="breached") == {"p2"}
    assert await listed(env, "/tenant/sla/incidents/", phase="triage") == {"p1", "p3"}


async def test_dashboard_cards_with_change_and_new_counts(env):
    d = await get(env, "/tenant/dashboard/", filter_type=1)
    assert d["total_incidents"] == {
        "count": 2,
        "previous": 0,
        "change_pct": None,
        "change": "0% from previous day",
        "new": 2,
    }
    assert (d["open"]["count"], d["closed"]["count"]) == (1, 1)
    assert d["incidents"]["total"] == 2  # our widget follows the window too

    d = await get(env, "/tenant/dashboard/", filter_type=2)
    assert (d["total_incidents"]["count"], d["total_incidents"]["previous"]) == (4, 2)
    assert d["total_incidents"]["change_pct"] == 100.0
    assert d["total_incidents"]["change"] == "↑ 100.0% from previous week"
    assert (d["open"]["count"], d["open"]["previous"], d["open"]["change_pct"]) == (3, 1, 200.0)
    assert d["open"]["change"] == "↑ 100.0% from previous week"  # the original bounds the text at 100 %
    assert (d["closed"]["count"], d["closed"]["previous"], d["closed"]["change"]) == (
        1,
        1,
        "↑ 0.0% from previous week",
    )
    assert d["open"]["new"] == 1 and d["closed"]["new"] == 1

    d = await get(env, "/tenant/dashboard/", filter_type=3)
    assert (d["total_incidents"]["count"], d["total_incidents"]["previous"]) == (6, 2)
    assert d["total_incidents"]["change"] == "↑ 100.0% from previous month"

    d = await get(env, "/tenant/dashboard/", filter_type=9, start_date=day(-10), end_date=day(-3))
    assert (d["total_incidents"]["count"], d["total_incidents"]["previous"]) == (4, 0)

    d = await get(env, "/tenant/dashboard/")  # all time: no change figure
    assert d["total_incidents"]["count"] == 8 and d["total_incidents"]["change"] is None
    assert d["total_incidents"]["new"] == 2


async def test_dashboard_owner_priority_status_incident_filters_and_widget_selection(env):
    d = await get(env, "/tenant/dashboard/", filter_type=2, owner="alice")
    assert (d["total_incidents"]["count"], d["total_incidents"]["previous"], d["total_incidents"]["new"]) == (
        2,
        1,
        1,
    )
    d = await get(env, "/tenant/dashboard/", filter_type=3, priority="P1")
    assert (d["total_incidents"]["count"], d["total_incidents"]["previous"]) == (2, 1)
    d = await get(env, "/tenant/dashboard/", filter_type=3, status=2)
    assert d["total_incidents"]["count"] == 2 and d["open"]["count"] == 0 and d["closed"]["count"] == 2
    d = await get(env, "/tenant/dashboard/", filter_type=3, status="open")
    assert d["total_incidents"]["count"] == 4
    d = await get(env, "/tenant/dashboard/", filter_type=3, incident_id=f"p4-{RUN}")
    assert d["total_incidents"]["count"] == 1 and d["open"]["count"] == 1
    # a window not made of whole days is counted from the incidents themselves
    d = await get(
        env, "/tenant/dashboard/", **{"from": (T0 - timedelta(days=3)).isoformat(), "to": NOW.isoformat()}
    )
    assert d["total_incidents"]["count"] == 4 and d["total_incidents"]["previous"] == 0

    d = await get(env, "/tenant/dashboard/", filters="open,offenses", filter_type=2)
    assert "open" in d and "offenses" in d
    assert not {"total_incidents", "closed", "sla", "eps", "tickets", "trends"} & set(d)
    d = await get(env, "/tenant/dashboard/", filter_type=2, filters="trends")
    assert len(d["trends"]["days"]) == 7 and sum(d["trends"]["incidents"]) == 4


async def test_windowed_views_take_filter_type(env):
    s = await get(env, "/tenant/soar-incidents/summary/", filter_type=2)
    assert s["total"] == 4
    s = await get(
        env, "/tenant/soar-incidents/summary/", filter_type=9, start_date=day(-45), end_date=day(-40)
    )
    assert s["total"] == 2
    owners = await get(env, "/tenant/soar-incidents/owner-distribution/", filter_type=1)
    assert {x["owner"]: x["incidents"] for x in owners["items"]} == {"alice": 1, "Bob": 1}
