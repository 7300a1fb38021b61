"""The original product's filters, presets and figures on our read model: each filter is shown to
narrow the rows to exactly the expected ones (data published on the real bus, read through the API)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa
from soc_shared.bus import Bus
from soc_shared.db import set_company_scope
from soc_shared.events import (
    IncidentSeverity,
    IncidentStatus,
    ItsmAccount,
    ItsmTicket,
    SiemDomain,
    SiemEpsSample,
    SiemEventCollector,
    SiemLogSource,
    SoarAccount,
    SoarIncident,
    TiAlert,
)
from soc_tenant.main import create_app
from soc_tenant.readmodel.testing import (
    add_company,
    add_ti_integration,
    event,
    eventually,
    map_itsm,
    map_qradar,
    map_soar,
)

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
        rules=[f"UC-phish-{RUN}"],
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
        itsm_sync_status="Done",
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
        rules=[f"UC-phish-{RUN}"],
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


ASSETS = [  # name, status, average EPS, type name, created, last event
    ("fw", "SUCCESS", 12.5, "Cisco ASA", NOW - timedelta(days=40), NOW - timedelta(days=2)),
    ("dc", "ERROR", 3.0, "Microsoft Windows Security Event Log", NOW - timedelta(days=5), NOW),
    ("proxy", "WARN", 12.5, "Squid Web Proxy", NOW - timedelta(days=20), NOW - timedelta(days=2)),
]
TICKETS = [
    ("tk1", "Jane Analyst", "Parity Corp"),
    ("tk2", "soc-bot", "Parity Corp EMEA"),
    ("tk3", "John Doe", "Other Unit"),
]
EPS_PEAKS = [500.0, 1500.0, 999.0, 2000.0]  # against a contract of 1,000 EPS: two intervals over
ALERTS = [
    ("al1", NOW - timedelta(days=1)),
    ("al2", NOW - timedelta(days=8)),
    ("al3", NOW - timedelta(days=20)),
]


@pytest_asyncio.fixture(scope="module")
async def env(migrated, tokens):
    app = create_app(migrated, verifier=tokens.verifier())
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenant.test")
        async with client:
            bus = Bus(migrated.amqp_url.get_secret_value(), service="parity-tests")
            await bus.connect()
            db = app.state.db
            # This data has no `occurred`: its SLA is measured from `created` (a company setting).
            company = await add_company(db, f"Parity {RUN}", sla_clock_start="created")
            other = await add_company(db, f"Other {RUN}")
            soar, soar2 = f"xs-par-{RUN}", f"xs-par2-{RUN}"
            qradar, qradar2, itsm, itsm2 = (
                f"qr-par-{RUN}",
                f"qr-par2-{RUN}",
                f"sdp-par-{RUN}",
                f"sdp-par2-{RUN}",
            )
            await map_soar(db, company, soar, ACC)
            await map_soar(db, company, soar2, ACC)
            await map_soar(db, other, soar, OTHER)
            await map_qradar(db, company, qradar, 301, collectors=[7])
            await map_qradar(db, company, qradar2, 302, collectors=[8])
            await map_qradar(db, other, qradar, 399)
            await map_itsm(db, company, itsm, "31")
            await map_itsm(db, company, itsm2, "32")
            ti = await add_ti_integration(db, company)
            evs = [
                event("soar.incident.upserted", x, soar, x.incident_id, version=1, vendor_tenant=x.account)
                for x in INCIDENTS.values()
            ]
            evs += [
                event("soar.account.upserted", SoarAccount(account_id="1", name=ACC), soar, "a1"),
                event("soar.account.upserted", SoarAccount(account_id="1", name=ACC), soar2, "a1"),
                event("siem.domain.upserted", SiemDomain(domain_id=301, name=f"{MARK} d301"), qradar, "301"),
                event("siem.domain.upserted", SiemDomain(domain_id=302, name=f"{MARK} d302"), qradar2, "302"),
                event(
                    "itsm.account.upserted", ItsmAccount(account_id="31", name=f"{MARK} sdp31"), itsm, "31"
                ),
                event(
                    "itsm.account.upserted", ItsmAccount(account_id="32", name=f"{MARK} sdp32"), itsm2, "32"
                ),
                event(
                    "siem.event_collector.upserted",
                    SiemEventCollector(collector_id=7, name="ec7"),
                    qradar,
                    "7",
                ),
                event(
                    "siem.event_collector.upserted",
                    SiemEventCollector(collector_id=8, name="ec8"),
                    qradar2,
                    "8",
                ),
            ]
            for n, (name, status, eps, type_name, created, last) in enumerate(ASSETS, start=1):
                evs.append(
                    event(
                        "siem.log_source.upserted",
                        SiemLogSource(
                            log_source_id=3000 + n,
                            name=f"{MARK}-{name}",
                            domain_id=301,
                            type_id=n,
                            type_name=type_name,
                            status=status,
                            average_eps=eps,
                            creation_time=created,
                            last_event_time=last,
                        ),
                        qradar,
                        f"ls{n}",
                    )
                )
            for key, created_by, account in TICKETS:
                evs.append(
                    event(
                        "itsm.ticket.upserted",
                        ItsmTicket(
                            ticket_id=f"{key}-{RUN}",
                            account_id="31",
                            account_name=account,
                            subject=f"{MARK} {key}",
                            status="Open",
                            priority="High",
                            created_time=NOW - timedelta(hours=1),
                            last_updated_time=NOW,
                            created_by_name=created_by,
                            version=1,
                        ),
                        itsm,
                        key,
                        version=1,
                    )
                )
            for key, published in ALERTS:
                evs.append(
                    event(
                        "ti.alert.upserted",
                        TiAlert(
                            short_id=f"{key}-{RUN}",
                            title=f"{MARK} {key}",
                            published_time=published,
                            version=1,
                        ),
                        ti,
                        key,
                        version=1,
                    )
                )
            for h, peak in enumerate(EPS_PEAKS, start=1):
                start = (NOW - timedelta(hours=h)).replace(minute=0, second=0)
                evs.append(
                    event(
                        "siem.eps.sampled",
                        SiemEpsSample(
                            domain_id=301,
                            granularity="hour",
                            window_start=start,
                            window_end=start + timedelta(hours=1),
                            average_eps=peak / 2,
                            peak_eps=peak,
                        ),
                        qradar,
                        f"eps-{h}",
                    )
                )
            await bus.publish(evs)
            state = {
                "client": client,
                "headers": tokens.headers(kind="tenant", company_id=company),
                "admin": tokens.headers(kind="admin"),
                "company": company,
                "other": other,
                "integrations": {"soar": soar, "qradar": qradar, "itsm": itsm},
                "app": app,
                "bus": bus,
                "tokens": tokens,
            }

            async def loaded() -> bool:
                h = state["headers"]
                checks = [
                    ("/tenant/soar-incidents/", 8),
                    ("/tenant/assets/", len(ASSETS)),
                    ("/tenant/itsm-tickets/", len(TICKETS)),
                    ("/tenant/threat-alerts/", len(ALERTS)),
                    ("/tenant/soar-tenants/", 2),
                    ("/tenant/qradar-tenants/", 2),
                    ("/tenant/itsm-tenants/", 2),
                ]
                eps = await client.get("/tenant/eps/", headers=h)
                if (
                    eps.status_code != 200
                    or not eps.json()["items"]
                    or eps.json()["items"][0]["samples"] != 4
                ):
                    return False
                for path, n in checks:
                    r = await client.get(path, headers=h, params={"limit": 100})
                    if r.status_code != 200 or r.json()["total"] != n:
                        return False
                return True

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


async def test_dashboard_true_and_false_positive_cards(env):
    # p1: Ready with owner, TTA/TTN/TTDN and a priority -> true positive; p2: Done -> false positive;
    # p3: its ITSM status is Error -> neither
    assert "truePositives" not in await get(env, "/tenant/dashboard/", filter_type=1)  # only when asked
    d = await get(
        env, "/tenant/dashboard/", filter_type=1, filters="truePositives,falsePositives,incompleteIncidents"
    )
    assert d["truePositives"]["count"] == 1 and d["truePositives"]["new"] == 1
    assert d["falsePositives"]["count"] == 1 and d["falsePositives"]["previous"] == 0
    assert d["incompleteIncidents"]["count"] == 0
    d = await get(
        env, "/tenant/dashboard/", filter_type=2, filters="truePositives,falsePositives,incompleteIncidents"
    )
    assert set(d) >= {"truePositives", "falsePositives", "incompleteIncidents"} and "total_incidents" not in d
    assert (d["truePositives"]["count"], d["falsePositives"]["count"]) == (1, 1)
    d = await get(
        env, "/tenant/dashboard/", filter_type=2, owner="bob", filters="truePositives,falsePositives"
    )
    assert (d["truePositives"]["count"], d["falsePositives"]["count"]) == (0, 1)
    d = await get(env, "/tenant/dashboard/")  # all time without asking: not computed
    assert "truePositives" not in d


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


async def test_recent_incidents_window_use_case_and_paging(env):
    r = await get(env, "/tenant/soar-incidents/recent/", filter_type=2)
    assert [x["incident_id"].rsplit("-", 1)[0] for x in r["items"]][2:] == ["p4", "p3"] and r["total"] == 4
    assert keys(await get(env, "/tenant/soar-incidents/recent/", use_case=f"UC-phish-{RUN}")) == {"p1", "p5"}
    page = await get(env, "/tenant/soar-incidents/recent/", limit=3, offset=3)
    assert page["total"] == 8 and len(page["items"]) == 3 and page["offset"] == 3
    assert [x["incident_id"].rsplit("-", 1)[0] for x in page["items"]] == ["p3", "p6", "p5"]


async def test_summary_cards_priority(env):
    s = await get(env, "/tenant/soar-incidents/summary/", priority=4, filter_type=3)
    assert s["total"] == 2 and s["by_priority"] == {"P1": 2}
    s = await get(env, "/tenant/soar-incidents/summary/", priority=["P2", "1"])
    assert s["total"] == 4 and s["by_priority"] == {"P2": 3, "P4": 1}
    await get(env, "/tenant/soar-incidents/summary/", 422, priority="P9")


async def test_threat_alert_published_created_updated_ranges(env):
    path = "/tenant/threat-alerts/"

    async def alerts(**params: Any) -> set[str]:
        return {x["short_id"].rsplit("-", 1)[0] for x in (await get(env, path, limit=100, **params))["items"]}

    assert await alerts(published_start_date=day(-9)) == {"al1", "al2"}
    assert await alerts(published_start_date=day(-9), published_end_date=day(-2)) == {"al2"}
    assert await alerts(start_date=day(-25), end_date=day(-15)) == {"al3"}
    assert await alerts(filter_type=2) == {"al1"}
    # stored today, so only a range including today finds them
    assert await alerts(created_start_date=day(0)) == {"al1", "al2", "al3"}
    assert await alerts(created_start_date=day(1)) == set()
    assert await alerts(created_end_date=day(-1)) == set()
    assert await alerts(updated_start_date=day(0), updated_end_date=day(0), title="al2") == {"al2"}
    await get(env, path, 422, created_start_date=day(0), created_end_date=day(-1))
    await get(env, path, 422, updated_end_date="tomorrow")


async def test_vendor_tenant_lists_take_integration_id(env):
    for path, kind in [
        ("/tenant/soar-tenants/", "soar"),
        ("/tenant/qradar-tenants/", "qradar"),
        ("/tenant/itsm-tenants/", "itsm"),
    ]:
        wanted = env["integrations"][kind]
        both = await get(env, path, limit=100)
        assert len({x["integration_id"] for x in both["items"]}) == 2
        one = await get(env, path, limit=100, integration_id=wanted)
        assert one["total"] == 1 and {x["integration_id"] for x in one["items"]} == {wanted}
    r = await env["client"].get(
        "/tenant/event-collectors/",
        headers=env["admin"],
        params={"integration_id": env["integrations"]["qradar"], "limit": 500},
    )
    assert r.status_code == 200 and r.json()["items"]
    assert {x["integration_id"] for x in r.json()["items"]} == {env["integrations"]["qradar"]}
    await get(env, "/tenant/soar-tenants/", 422, integration_id="bad id;")


async def test_asset_filters_of_the_original(env):
    async def assets(path: str = "/tenant/assets/", **params: Any) -> set[str]:
        return {x["name"].rsplit("-", 1)[1] for x in (await get(env, path, limit=100, **params))["items"]}

    assert await assets(average_eps=12.5) == {"fw", "proxy"}
    assert await assets(sub_status="err,warn") == {"dc", "proxy"}
    assert await assets(last_event_date=day(-2)) == {"fw", "proxy"}
    assert await assets(start_date=day(-25), end_date=day(-1)) == {"dc", "proxy"}
    assert await assets(start_date=day(-6)) == {"dc"}
    assert await assets(log_source_type="windows") == {"dc"}
    assert await assets(log_source_type="proxy", sub_status="warn") == {"proxy"}
    r = await env["client"].get(
        "/tenant/assets/export/", headers=env["headers"], params={"file_type": "csv", "average_eps": 3}
    )
    assert r.status_code == 200
    rows = [line for line in r.content.decode("utf-8-sig").splitlines()[1:] if line]
    assert len(rows) == 1 and f"{MARK}-dc" in rows[0]
    await get(env, "/tenant/assets/", 422, last_event_date="2024-02-31")
    await get(env, "/tenant/assets/", 422, start_date=day(0), end_date=day(-3))
    await get(env, "/tenant/assets/", 422, average_eps="lots")


async def test_ticket_created_by_and_account_name(env):
    async def tickets(**params: Any) -> set[str]:
        items = (await get(env, "/tenant/itsm-tickets/", limit=100, **params))["items"]
        return {x["ticket_id"].rsplit("-", 1)[0] for x in items}

    assert await tickets(created_by="analyst") == {"tk1"}
    assert await tickets(account_name="parity corp") == {"tk1", "tk2"}
    assert await tickets(account_name="parity", created_by="bot") == {"tk2"}
    r = await get(env, "/tenant/itsm-tickets/", account_name="emea")
    assert r["total"] == 1


async def test_admin_summaries_company_priority_and_paging(env):
    admin, company = env["admin"], env["company"]

    async def summary(name: str, **params: Any) -> dict:
        r = await env["client"].get(f"/admin/summary/{name}/", headers=admin, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    s = await summary("incident-priority", company_id=company)
    assert [x["company_id"] for x in s["items"]] == [company] and s["total"] == 1
    assert s["items"][0]["by_priority"] == {"P1": 3, "P2": 3, "P3": 1, "P4": 1}
    s = await summary("incident-priority", company_id=company, priority=4)
    assert s["items"][0]["by_priority"] == {"P1": 3} and s["items"][0]["total"] == 3
    s = await summary("incident-priority", company_id=company, priority="P3", filter_type=2)
    assert s["items"][0]["by_priority"] == {"P3": 1}
    everyone = await summary("incident-priority")
    assert everyone["total"] >= 2
    page = await summary("incident-priority", limit=1, offset=1)
    assert page["total"] == everyone["total"] and page["items"] == everyone["items"][1:2]
    for name in ("incident-status", "completion-status", "sla-matrix", "eps-utilisation", "assets"):
        s = await summary(name, company_id=company, limit=10)
        assert s["items"] and {x["company_id"] for x in s["items"]} == {company}, name
    s = await summary("incident-status", company_id=company, filter_type=1)
    assert s["items"][0]["by_status"] == {"active": 1, "closed": 1}
    r = await env["client"].get("/admin/summary/incident-priority/", headers=admin, params={"priority": "x"})
    assert r.status_code == 422


async def test_file_type_choices_and_the_original_numbers(env):
    choices = await get(env, "/tenant/file-type-choices/")
    assert {(c["id"], c["value"]) for c in choices["items"]} == {(2, "xlsx"), (3, "csv"), (4, "json")}
    r = await env["client"].get(
        "/tenant/soar-incidents/download/", headers=env["headers"], params={"file_type": 2, "filter_type": 1}
    )
    assert r.status_code == 200 and "spreadsheetml" in r.headers["content-type"]
    from io import BytesIO

    from openpyxl import load_workbook

    sheet = load_workbook(BytesIO(r.content)).active
    assert sheet.max_row == 3  # header + p1, p2
    r = await env["client"].get(
        "/tenant/soar-incidents/download/", headers=env["headers"], params={"file_type": 1}
    )
    assert r.status_code == 422


async def test_consolidated_report_use_cases_closure_trend_and_eps_over_contract(env):
    r = await get(env, "/tenant/reports/consolidated/", filter_type=3)
    incidents = r["incidents"]
    assert incidents["top_use_cases"] == [{"use_case": f"UC-phish-{RUN}", "incidents": 2, "open": 1}]
    trend = incidents["weekly_closure_trend"]
    assert sum(w["reported"] for w in trend) == 6 and sum(w["resolved"] for w in trend) == 2
    assert all(w["pending"] == w["reported"] - w["resolved"] for w in trend)
    assert [w["week"] for w in trend] == sorted(w["week"] for w in trend)
    this_week = (T0 - timedelta(days=T0.weekday())).date().isoformat()
    assert trend[-1]["week"] == this_week
    over = r["eps"]["over_contract"]
    assert over["intervals_over_contract"] == 2
    assert over["tenants"] == [
        {
            "integration_id": env["integrations"]["qradar"],
            "domain_id": 301,
            "contracted_eps": 1000.0,
            "intervals": 4,
            "intervals_over_contract": 2,
            "max_peak_eps": 2000.0,
        }
    ]
    r = await get(env, "/tenant/reports/consolidated/", filter_type=1)
    assert r["incidents"]["top_use_cases"] == [{"use_case": f"UC-phish-{RUN}", "incidents": 1, "open": 1}]
    pdf = await env["client"].get(
        "/tenant/reports/consolidated/", headers=env["headers"], params={"format": "pdf", "filter_type": 3}
    )
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


async def test_default_threat_intel_feed_reaches_flagged_companies_only(env):
    app, client, admin = env["app"], env["client"], env["admin"]
    db = app.state.db
    provider = await add_company(db, f"Provider {RUN}")
    feed = await add_ti_integration(db, provider)
    flagged, unflagged = env["company"], env["other"]
    async with db.session() as s:
        await s.execute(
            sa.text("UPDATE company SET is_default_threat_intel = false WHERE id = :c"), {"c": unflagged}
        )
    published = NOW - timedelta(hours=2)
    await env["bus"].publish(
        [
            event(
                "ti.alert.upserted",
                TiAlert(
                    short_id=f"fd1-{RUN}", title=f"{MARK} broadcast", published_time=published, version=1
                ),
                feed,
                "fd1",
                version=1,
            ),
            event(
                "ti.alert.upserted",
                TiAlert(
                    short_id=f"fd2-{RUN}",
                    title=f"{MARK} for the provider only",
                    published_time=published,
                    company_id=provider,
                    version=1,
                ),
                feed,
                "fd2",
                version=1,
            ),
        ]
    )
    provider_headers = env["tokens"].headers(kind="tenant", company_id=provider)

    async def feed_alerts(headers: dict) -> set[str]:
        r = await client.get("/tenant/threat-alerts/", headers=headers, params={"q": MARK, "limit": 100})
        assert r.status_code == 200, r.text
        return {x["short_id"].rsplit("-", 1)[0] for x in r.json()["items"] if x["short_id"].startswith("fd")}

    async def arrived() -> bool:
        return await feed_alerts(provider_headers) == {"fd1", "fd2"}

    await eventually(arrived)
    other_headers = env["tokens"].headers(kind="tenant", company_id=unflagged)
    assert await feed_alerts(env["headers"]) == set()  # not a default feed yet

    async def rls_count(company: str) -> int:
        async with app.state.app_db.session() as s:
            await set_company_scope(s, company, is_admin=False)
            return (
                await s.execute(
                    sa.text("SELECT count(*) FROM ti_alert WHERE integration_id = :i"), {"i": feed}
                )
            ).scalar_one()

    try:
        r = await client.put(f"/admin/threat-intel/default-feeds/{feed}/", headers=env["headers"])
        assert r.status_code == 403
        r = await client.put(f"/admin/threat-intel/default-feeds/{feed}/", headers=admin)
        assert r.status_code == 200, r.text
        listed = (await client.get("/admin/threat-intel/default-feeds/", headers=admin)).json()["items"]
        assert [x["integration_id"] for x in listed if x["integration_id"] == feed] == [feed]
        # the flagged company now sees the broadcast alert, never the one addressed to the provider
        assert await feed_alerts(env["headers"]) == {"fd1"}
        assert await feed_alerts(other_headers) == set()
        detail = await client.get(
            "/tenant/threat-alerts/",
            headers=env["headers"],
            params={"q": f"fd1-{RUN}"},
        )
        assert detail.json()["total"] == 1
        # row-level security alone gives the same answer
        assert (
            await rls_count(flagged) == 1
            and await rls_count(unflagged) == 0
            and await rls_count(provider) == 2
        )
        # a non-threat-intel integration cannot be a feed; an unknown one is not found
        r = await client.put("/admin/threat-intel/default-feeds/no-such-integration/", headers=admin)
        assert r.status_code == 404
    finally:
        r = await client.delete(f"/admin/threat-intel/default-feeds/{feed}/", headers=admin)
        assert r.status_code == 204
    assert await feed_alerts(env["headers"]) == set() and await rls_count(flagged) == 0


async def test_filter_lookups_follow_updates_ignore_case_and_stay_per_company(env):
    """The MITRE, use-case, configuration-item, owner, phase and sync-status filters go through
    the lookup tables the consumer writes with each incident (readmodel.lookups): they match
    whatever case the vendor stored, follow a newer version of the incident (an element or value
    it no longer has stops matching), and the lookups of another company stay invisible."""
    app, client, bus, tokens = env["app"], env["client"], env["bus"], env["tokens"]
    db = app.state.db
    run = uuid.uuid4().hex[:6]
    soar, acc, other_acc = f"xs-lk-{run}", f"lk-{run}", f"lk-oth-{run}"
    mine = await add_company(db, f"Lookups {run}")
    theirs = await add_company(db, f"Lookups other {run}")
    await map_soar(db, mine, soar, acc)
    await map_soar(db, theirs, soar, other_acc)
    headers = tokens.headers(kind="tenant", company_id=mine)

    def incident(key: str, version: int, account: str = acc, **fields: Any) -> Any:
        x = SoarIncident(
            incident_id=f"{key}-{run}",
            account=account,
            name=f"lookups {key}",
            status=IncidentStatus.ACTIVE,
            severity=IncidentSeverity.HIGH,
            created=NOW - timedelta(hours=2),
            modified=NOW - timedelta(hours=2) + timedelta(minutes=version),
            priority="P2",
            version=version,
            **fields,
        )
        return event("soar.incident.upserted", x, soar, x.incident_id, version=version, vendor_tenant=account)

    same = {
        "mitre_tactics": ["TA0001", "TA0002"],
        "mitre_techniques": ["T1566.001"],
        "configuration_item": "Web-01.ACME",
        "owner": "Alice",
        "phase": "Triage",
        "rules": [f"UC-Lookup-{run}"],
        "itsm_sync_status": "DONE",
    }
    await bus.publish(
        [
            incident("x1", 1, **same),
            incident(
                "x2",
                1,
                mitre_tactics=["ta0002"],
                configuration_item="db-02",
                owner="aLiCe",
                phase="TRIAGE",
                itsm_sync_status="ready",
            ),
            incident("y1", 1, account=other_acc, **same),
        ]
    )

    async def found(**params: Any) -> set[str]:
        r = await client.get("/tenant/soar-incidents/", headers=headers, params={"limit": 100, **params})
        assert r.status_code == 200, r.text
        return {x["incident_id"].rsplit("-", 1)[0] for x in r.json()["items"]}

    async def both_stored() -> bool:
        return await found() == {"x1", "x2"}

    await eventually(both_stored, within=30)
    assert await found(mitre_tactic="ta0001") == {"x1"}
    assert await found(mitre_tactic="TA0002") == {"x1", "x2"}
    assert await found(mitre_technique="t1566.001") == {"x1"}
    assert await found(mitre_technique="T1566") == set()  # a whole element, not a prefix
    assert await found(configuration_item="acme") == {"x1"}
    assert await found(configuration_item="-0") == {"x1", "x2"}
    assert await found(assignee="ALICE") == {"x1", "x2"}  # any stored case, not only usual spellings
    assert await found(phase="tRiAgE") == {"x1", "x2"}
    assert await found(use_case=f"uc-lookup-{run}") == {"x1"}
    assert await found(filter="false-positive") == {"x1"}  # sync status "DONE"
    assert await found(false_positives="false", assignee="alice") == set()  # x2 lacks TTA/TTN/TTDN
    r = await client.get(
        "/tenant/dashboard/", headers=headers, params={"filters": "total_incidents", "owner": "ALICE"}
    )
    assert r.status_code == 200 and r.json()["total_incidents"]["count"] == 2, r.text

    # a newer version drops the old elements and values
    await bus.publish(
        [
            incident(
                "x1",
                2,
                mitre_tactics=["TA0040"],
                mitre_techniques=[],
                configuration_item="mail-07",
                owner="carol",
                phase="Eradication",
                rules=[],
                itsm_sync_status="Ready",
            )
        ]
    )

    async def updated() -> bool:
        return await found(mitre_tactic="TA0040") == {"x1"}

    await eventually(updated, within=30)
    assert await found(mitre_tactic="TA0001") == set()
    assert await found(mitre_tactic="TA0002") == {"x2"}
    assert await found(mitre_technique="T1566.001") == set()
    assert await found(configuration_item="acme") == set()
    assert await found(configuration_item="MAIL") == {"x1"}
    assert await found(assignee="alice") == {"x2"}
    assert await found(phase="triage") == {"x2"}
    assert await found(use_case=f"UC-Lookup-{run}") == set()
    assert await found(filter="false-positive") == set()

    # under row-level security the API role sees only its company's lookup rows
    async def visible(company: str, table: str) -> set[str]:
        async with app.state.app_db.session() as s:
            await set_company_scope(s, company, is_admin=False)
            rows = await s.execute(
                sa.text(f"SELECT DISTINCT account FROM {table} WHERE integration_id = :i"), {"i": soar}
            )
            return {r[0] for r in rows}

    for table in ("soar_incident_term", "soar_incident_value"):
        assert await visible(mine, table) == {acc}, table
        assert await visible(theirs, table) == {other_acc}, table
    async with app.state.app_db.session() as s:
        await set_company_scope(s, mine, is_admin=False)
        names = await s.execute(
            sa.text("SELECT count(*) FROM itsm_ticket_value WHERE integration_id = :i"),
            {"i": env["integrations"]["itsm"]},
        )
        assert names.scalar_one() == 0  # the parity company's SDP names are not this company's
