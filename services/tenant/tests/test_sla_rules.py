"""The SLA rules of the original product, table-driven, against hand-computed expectations.

Each incident starts as XSOAR JSON (the seed deployment's priority labels, times with offsets other
than UTC), goes through soar-ingest's normalizer into the read model, and is judged through the
API. The expectations below were computed by hand from the rules:

* steps measured from ``occurred`` (company A, the default) or ``created`` (company B);
* met when ``done - start <= target`` (exactly at the target is met, a second later breached);
* counted only when a true positive (ITSM sync status "Ready" + owner + TTA + TTN + TTDN +
  a priority of its own); per step met ÷ counted; overall fully compliant ÷ counted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from soc_shared.events import make_event
from soc_soar_ingest import normalize
from soc_tenant.dashboard import positives as positives
from soc_tenant.readmodel import ingest
from soc_tenant.readmodel.testing import add_company, map_soar, set_company_sla

RUN = uuid.uuid4().hex[:8]
INTEGRATION = f"xsoar-sla-{RUN}"
ACC_A, ACC_B = f"sla-a-{RUN}", f"sla-b-{RUN}"
# Company targets (minutes): TTA / TTN / TTDN.
TARGETS = {"P1": (10, 20, 30), "P2": (60, 120, 240), "P3": (60, 120, 240), "P4": (5, 10, 15)}
O = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)  # noqa: E741 - every incident occurred here


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dubai(moment: datetime) -> str:
    """The same instant written with a +04:00 offset, as an XSOAR server in Dubai writes it."""
    return (
        moment.astimezone(UTC)
        .replace(tzinfo=None)
        .__add__(timedelta(hours=4))
        .strftime("%Y-%m-%dT%H:%M:%S+04:00")
    )


def m(minutes: float) -> datetime:
    return O + timedelta(minutes=minutes)


# key: (priority label, ITSM sync status, owner, occurred, created, tta, ttn, ttdn, time writer)
CASES: dict[str, tuple[Any, ...]] = {
    "exact": ("P1 Critical", "Ready", "ana", m(0), m(2), m(10), m(20), m(30), z),
    "late1s": (
        "P1 Critical",
        "Ready",
        "ana",
        m(0),
        m(2),
        m(10) + timedelta(seconds=1),
        m(20),
        m(
            30,
        )
        + timedelta(seconds=1),
        z,
    ),
    "created_after": ("P2 High", "Ready", "ana", m(0), m(50), m(70), m(100), m(250), z),
    "no_owner": ("P3 Medium", "Ready", None, m(0), m(1), m(5), m(6), m(7), z),
    "not_ready": ("P3 Medium", "Pending", "ana", m(0), m(1), m(5), m(6), m(7), z),
    "false_pos": ("P4 Low", "Done", "ana", m(0), m(1), m(2), m(3), m(4), z),
    "all_late": ("P4 Low", "ready", "ana", m(0), m(1), m(6), m(11), m(16), z),
    "dubai": (
        "P2 High",
        "Ready",
        "ana",
        m(0),
        m(1),
        m(59) + timedelta(seconds=59),
        m(120),
        m(240) + timedelta(seconds=1),
        dubai,
    ),
    "no_ttn": ("P1 Critical", "Ready", "ana", m(0), m(1), m(5), None, None, z),
    "no_priority": (None, "Ready", "ana", m(0), m(1), m(5), m(6), m(7), z),
}

# Hand-computed: per case, the step statuses (company A, clock = occurred), whether counted, the
# original's verdict, and the true/false-positive class.
MET, BREACHED = "met", "breached"
EXPECTED_A = {
    "exact": ((MET, MET, MET), True, "fully_compliant", "true_positive"),
    "late1s": ((BREACHED, MET, BREACHED), True, "partially_compliant", "true_positive"),
    "created_after": ((BREACHED, MET, BREACHED), True, "partially_compliant", "true_positive"),
    "no_owner": ((MET, MET, MET), False, None, "not_counted"),
    "not_ready": ((MET, MET, MET), False, None, "not_counted"),
    "false_pos": ((MET, MET, MET), False, None, "false_positive"),
    "all_late": ((BREACHED, BREACHED, BREACHED), True, "non_compliant", "true_positive"),
    "dubai": ((MET, MET, BREACHED), True, "partially_compliant", "true_positive"),
    # Two days after it occurred, TTN (20 min) and TTDN (30 min) are overdue: breaches in progress.
    "no_ttn": ((MET, BREACHED, BREACHED), False, None, "not_counted"),
    # No priority of its own: the level comes from the severity (critical -> P1), not counted.
    "no_priority": ((MET, MET, MET), False, None, "not_counted"),
}


def raw(key: str) -> dict[str, Any]:
    label, sync, owner, occurred, created, tta, ttn, ttdn, write = CASES[key]
    custom: dict[str, Any] = {"itsmsyncstatus": sync}
    if label:
        custom["incidentpriority"] = label
    for name, moment in (("incidenttta", tta), ("incidentttn", ttn), ("incidentttdn", ttdn)):
        if moment is not None:
            custom[name] = write(moment)
    return {
        "id": f"{key}-{RUN}",
        "name": f"sla {key} {RUN}",
        "status": 2,
        "severity": 4,
        "owner": owner or "",
        "occurred": write(occurred),
        "created": write(created),
        "modified": write(created + timedelta(minutes=500)),
        "closed": write(created + timedelta(minutes=600)),
        "version": 3,
        "CustomFields": {**custom, "qradarcategory": f"cat-{RUN}-{'fp' if sync == 'Done' else 'x'}"},
    }


@pytest_asyncio.fixture(scope="module")
async def companies(app):
    db = app.state.db
    a = await add_company(db, f"SLA rules A {RUN}")
    b = await add_company(db, f"SLA rules B {RUN}")
    for company, account in ((a, ACC_A), (b, ACC_B)):
        await map_soar(db, company, INTEGRATION, account)
        for level, (tta, ttn, ttdn) in TARGETS.items():
            await set_company_sla(db, company, level, tta, ttn, ttdn)
    deliveries = []
    for account, keys in ((ACC_A, list(CASES)), (ACC_B, ["created_after"])):
        for key in keys:
            incident = normalize.incident(raw(key), account=account)
            envelope = make_event(
                "soar.incident.upserted",
                incident,
                source=f"/soar-ingest/xsoar/{INTEGRATION}",
                subject=f"{account}/{incident.incident_id}",
                vendor_version=incident.version,
                integration_id=INTEGRATION,
                vendor_tenant=account,
            )
            deliveries.append((envelope, incident, "soar.incident.upserted"))
    await ingest.store(db, deliveries)
    return {"a": a, "b": b}


def as_company(tokens: Any, company_id: str) -> dict[str, str]:
    return tokens.headers(kind="tenant", company_id=company_id)


async def get(client: Any, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = await client.get(path, headers=headers, params=params)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    return response.json()


async def test_the_normalizer_reads_labels_and_offsets():
    dubai_incident = normalize.incident(raw("dubai"), account=ACC_A)
    assert dubai_incident.priority == "P2" and dubai_incident.occurred == O
    assert dubai_incident.ttn_at == m(120)  # 12:00+04:00 is 08:00Z
    assert normalize.incident(raw("no_priority")).priority is None


async def test_each_incident_is_judged_as_computed_by_hand(companies, client, tokens):
    listed = await get(client, "/tenant/sla/incidents/", as_company(tokens, companies["a"]), limit=100)
    rows = {x["incident_id"].removesuffix(f"-{RUN}"): x for x in listed["items"]}
    assert set(rows) == set(CASES)
    for key, (steps, counted, verdict, positive) in EXPECTED_A.items():
        sla = rows[key]["sla"]
        assert (sla["tta"]["status"], sla["ttn"]["status"], sla["ttdn"]["status"]) == steps, key
        assert (sla["counted"], sla["compliance"], rows[key]["positive"]) == (counted, verdict, positive), key
        assert sla["clock_start"] == "occurred"
    assert rows["exact"]["sla"]["tta"]["elapsed_minutes"] == 10.0
    assert rows["created_after"]["sla"]["tta"]["elapsed_minutes"] == 70.0  # from occurred, not created
    assert rows["no_priority"]["priority"] == "P1"  # the level from the severity (ours)


async def test_compliance_figures_as_computed_by_hand(companies, client, tokens):
    c = await get(client, "/tenant/sla/compliance/", as_company(tokens, companies["a"]))
    assert c["clock_start"] == "occurred"
    p1, p2, p3, p4 = (c["by_priority"][p] for p in ("P1", "P2", "P3", "P4"))
    # P1: exact (fully) and late1s (TTA and TTDN one second late) counted; no_ttn and no_priority not.
    assert p1["counted"] == 2 and p1["incidents"] == 4
    assert p1["tta"] == {"met": 1, "breached": 1, "compliance_pct": 50.0}
    assert p1["ttn"] == {"met": 2, "breached": 0, "compliance_pct": 100.0}
    assert p1["ttdn"] == {"met": 1, "breached": 1, "compliance_pct": 50.0}
    assert p1["overall"] == {
        "fully_compliant": 1,
        "partially_compliant": 1,
        "non_compliant": 0,
        "compliance_pct": 50.0,
    }
    # P2: created_after (TTA 70 > 60, TTDN 250 > 240 from occurred) and dubai (TTDN 1 s late).
    assert p2["counted"] == 2
    assert [p2[s]["compliance_pct"] for s in ("tta", "ttn", "ttdn")] == [50.0, 100.0, 0.0]
    assert p2["overall"]["partially_compliant"] == 2 and p2["overall"]["compliance_pct"] == 0.0
    # P3: no owner / not Ready: nothing counted, no percentage.
    assert (
        p3["counted"] == 0 and p3["overall"]["compliance_pct"] is None and p3["tta"]["compliance_pct"] is None
    )
    # P4: the false positive is not counted; all_late is non-compliant.
    assert (
        p4["counted"] == 1 and p4["overall"]["non_compliant"] == 1 and p4["overall"]["compliance_pct"] == 0.0
    )
    total = c["total"]
    assert total["counted"] == 5 and total["incidents"] == 10
    assert [total[s]["compliance_pct"] for s in ("tta", "ttn", "ttdn")] == [40.0, 80.0, 20.0]
    assert total["overall"]["compliance_pct"] == 20.0  # 1 fully compliant of 5
    ours = total["ours"]
    assert ours["true_positives"] == 5 and ours["false_positives"] == 1 and ours["not_counted"] == 5
    assert ours["missing_timestamps"] == 1  # no_ttn
    assert ours["steps"]["ttn"]["breaching"] == 1 and ours["steps"]["ttdn"]["breaching"] == 1
    overview = await get(client, "/tenant/sla/overview/", as_company(tokens, companies["a"]))
    assert (overview["counted"], overview["fully_compliant"], overview["compliance_pct"]) == (5, 1, 20.0)
    assert overview["false_positives"] == 1 and overview["total_incidents"] == 10
    metrics = {
        x["priority"]: x
        for x in (await get(client, "/tenant/sla/severity-metrics/", as_company(tokens, companies["a"])))[
            "items"
        ]
    }
    assert (
        metrics["P2"]["counted"] == 2
        and metrics["P2"]["ttdn_breached"] == 2
        and metrics["P2"]["tta_met"] == 1
    )


async def test_the_clock_start_is_a_company_setting(companies, client, tokens, app):
    """Company B measures from ``created``: the incident fetched 50 minutes after it occurred meets
    every step (TTA 20, TTN 50, TTDN 200 minutes)."""
    async with app.state.db.session() as s:
        await s.execute(
            sa.text("UPDATE company SET sla_clock_start = 'created' WHERE id = :c"), {"c": companies["b"]}
        )
    headers = as_company(tokens, companies["b"])
    row = (await get(client, "/tenant/sla/incidents/", headers))["items"][0]
    assert row["sla"]["clock_start"] == "created" and row["sla"]["compliance"] == "fully_compliant"
    assert row["sla"]["tta"]["elapsed_minutes"] == 20.0
    c = await get(client, "/tenant/sla/compliance/", headers)
    assert c["clock_start"] == "created" and c["total"]["overall"]["compliance_pct"] == 100.0
    detail = await get(client, f"/tenant/soar-incidents/{row['id']}/", headers)
    assert detail["sla"]["clock_start"] == "created" and detail["sla"]["compliance"] == "fully_compliant"
    assert detail["sla"]["positive"] == "true_positive"


async def test_false_positive_filters_change_the_list(companies, client, tokens):
    headers = as_company(tokens, companies["a"])

    async def ids(**params: Any) -> set[str]:
        listed = await get(client, "/tenant/soar-incidents/", headers, limit=100, **params)
        return {x["incident_id"].removesuffix(f"-{RUN}") for x in listed["items"]}

    assert await ids() == set(CASES)
    listed = (await get(client, "/tenant/soar-incidents/", headers, limit=100))["items"]
    assert {x["incident_id"].removesuffix(f"-{RUN}"): x["positive"] for x in listed} == {
        k: v[3] for k, v in EXPECTED_A.items()
    }
    assert await ids(false_positives="true") == {"false_pos"}
    true_positives = {k for k, v in EXPECTED_A.items() if v[3] == "true_positive"}
    assert await ids(false_positives="false") == true_positives
    assert await ids(include_fp="false") == true_positives
    assert await ids(include_fp="true") == true_positives | {"false_pos"}
    bad = await client.get("/tenant/soar-incidents/", headers=headers, params={"false_positives": "maybe"})
    assert bad.status_code == 422

    # The original's offense categories: incidents per QRadar category, true positives (+ false).
    async def categories(**params: Any) -> dict[str, int]:
        items = (await get(client, "/tenant/offense-categories/", headers, q=RUN, **params))["items"]
        return {x["category"].removeprefix(f"cat-{RUN}-"): x["offenses"] for x in items}

    assert await categories(include_fp="true") == {"x": len(true_positives), "fp": 1}
    assert await categories(include_fp="false") == {"x": len(true_positives)}
    assert await categories() == {}  # ours: QRadar offenses, none in this company


@pytest.mark.parametrize(
    ("settings", "sync", "owner", "expected"),
    [
        ({}, "READY", "ana", positives.TRUE_POSITIVE),
        ({}, "Ready", " ", positives.NOT_COUNTED),
        ({}, "done", None, positives.FALSE_POSITIVE),
        ({"true_positive_requires": "tta,ttn,ttdn,priority"}, "Ready", None, positives.TRUE_POSITIVE),
        (
            {"true_positive_status": "Synced", "false_positive_status": "Closed FP"},
            "Ready",
            "ana",
            positives.NOT_COUNTED,
        ),
        (
            {"true_positive_status": "Synced", "false_positive_status": "Closed FP"},
            "synced",
            "ana",
            positives.TRUE_POSITIVE,
        ),
    ],
)
def test_the_rule_is_configurable(settings, sync, owner, expected):
    rule = positives.PositiveRule.from_settings(type("S", (), settings)())
    assert (
        rule.classify(itsm_sync_status=sync, owner=owner, tta_at=O, ttn_at=O, ttdn_at=O, priority="P1")
        == expected
    )


def test_a_bad_rule_setting_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        positives.PositiveRule.from_settings(type("S", (), {"true_positive_requires": "owner,colour"})())
    with pytest.raises(ValueError, match="different"):
        positives.PositiveRule.from_settings(
            type("S", (), {"true_positive_status": "Done", "false_positive_status": "done"})()
        )
