"""Threat-intel matching end to end: recorded-shape QRadar offenses, XSOAR incidents and Cyware alerts
published on the real bus, consumed into PostgreSQL, matched both ways under each company's
entitlement (own integration, the shared feed when flagged, alerts addressed to another company
never), published as ti.match.found once, and shown through the API to their company only."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa
from soc_shared.bus import Bus
from soc_shared.events import (
    IncidentSeverity,
    IncidentStatus,
    ItsmTicket,
    OffenseLogSource,
    OffenseRule,
    OffenseStatus,
    SiemOffense,
    SoarIncident,
    TiAlert,
    TiRef,
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

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "vendor-samples"
RUN = uuid.uuid4().hex[:8]
NOW = datetime.now(UTC).replace(microsecond=0)
EVIL = f"evil-{RUN}.com"
BAD_URL = f"http://bad-{RUN}.net/x"
RECORDED = json.loads((FIXTURES / "qradar" / "siem_offenses.json").read_text())[0]
RECORDED_IP = RECORDED["offense_source"]  # 39.116.161.122
FEED_IP = "45.33.32.156"


def recorded_offense(offense_id: int, domain_id: int, raw: dict[str, Any], **changes: Any) -> SiemOffense:
    """QRadar's recorded offense as siem-ingest publishes it (times in epoch ms → UTC, recent)."""
    fields: dict[str, Any] = {
        "offense_id": offense_id,
        "domain_id": domain_id,
        "description": raw["description"],
        "status": OffenseStatus(raw["status"]),
        "severity": raw["severity"],
        "magnitude": raw["magnitude"],
        "credibility": raw["credibility"],
        "relevance": raw["relevance"],
        "event_count": raw["event_count"],
        "flow_count": raw["flow_count"],
        "categories": raw["categories"],
        "rules": [OffenseRule(id=r["id"], type=r["type"]) for r in raw["rules"]],
        "offense_source": raw["offense_source"],
        "offense_type": raw["offense_type"],
        "source_address_ids": raw["source_address_ids"],
        "local_destination_address_ids": raw["local_destination_address_ids"],
        "destination_networks": raw["destination_networks"],
        "log_sources": [OffenseLogSource(**s) for s in raw["log_sources"]],
        "start_time": NOW - timedelta(hours=2),
        "last_updated_time": NOW - timedelta(hours=1),
        "version": 1,
    }
    fields.update(changes)
    return SiemOffense(**fields)


def cyware_alert(short_id: str, title: str, content: str, *, company_id: str | None = None) -> TiAlert:
    """A Cyware CSAP alert as threatintel publishes it (HTML content, defanged indicators)."""
    return TiAlert(
        short_id=short_id,
        title=title,
        status="PUBLISHED",
        tlp="AMBER",
        published_time=NOW - timedelta(minutes=30),
        content=content,
        tags=[TiRef(id="t1", name="phishing")],
        category=TiRef(id="c1", name="Threat Advisory"),
        company_id=company_id,
        version=1,
    )


class World:
    def __init__(self) -> None:
        self.qradar = f"qr-ti-{RUN}"
        self.soar = f"xs-ti-{RUN}"
        self.account = f"acme-ti-{RUN}"
        self.a = self.b = self.c = ""
        self.ti_a = self.ti_feed = ""


@pytest_asyncio.fixture(scope="module")
async def env(migrated, tokens):
    app = create_app(migrated, verifier=tokens.verifier())
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenant.test")
        bus = Bus(migrated.amqp_url.get_secret_value(), service="ti-match-tests")
        await bus.connect()
        async with client:
            w = World()
            db = app.state.db
            w.a = await add_company(db, f"Acme TI {RUN}")
            w.b = await add_company(db, f"Globex TI {RUN}")
            w.c = await add_company(db, f"Initech TI {RUN}")
            async with db.session() as s:
                # (the flag's default is on: A and C opt out of the shared feed)
                await s.execute(
                    sa.text(
                        "UPDATE company SET is_default_threat_intel = (id = :b) WHERE id IN (:a, :b, :c)"
                    ),
                    {"a": w.a, "b": w.b, "c": w.c},
                )
            await map_qradar(db, w.a, w.qradar, 10)
            await map_qradar(db, w.b, w.qradar, 20)
            await map_soar(db, w.a, w.soar, w.account)
            w.ti_a = await add_ti_integration(db, w.a)
            w.ti_feed = await add_ti_integration(db, w.c)
            async with db.session() as s:
                await s.execute(
                    sa.text("INSERT INTO ti_default_feed (integration_id, set_by) VALUES (:i, 'test')"),
                    {"i": w.ti_feed},
                )
            yield {"app": app, "client": client, "bus": bus, "world": w, "tokens": tokens}
        await bus.close()


def tenant(env: dict, company: str) -> dict[str, str]:
    return env["tokens"].headers(kind="tenant", company_id=company)


async def get(env: dict, path: str, headers: dict[str, str], expect: int = 200, **params: Any) -> Any:
    response = await env["client"].get(path, headers=headers, params=params)
    assert response.status_code == expect, (path, response.status_code, response.text[:500])
    return response.json()


async def matches_in_db(env: dict, w: World) -> set[tuple[str, str, str, str, str]]:
    async with env["app"].state.db.session() as s:
        rows = (
            await s.execute(
                sa.text(
                    "SELECT company_id::text, record_type, record_key, alert_short_id, value FROM ti_match "
                    "WHERE company_id IN (:a, :b, :c)"
                ),
                {"a": w.a, "b": w.b, "c": w.c},
            )
        ).all()
    return {tuple(r) for r in rows}


async def test_matches_both_ways_under_entitlement_once_and_isolated(env, event_tap):
    w: World = env["world"]
    bus: Bus = env["bus"]
    async with event_tap("ti.match.found") as tap:
        # 1. offenses first: A's recorded one, A's and B's naming the feed's address
        a1 = recorded_offense(1, 10, RECORDED)
        a2 = recorded_offense(2, 10, RECORDED, offense_source=FEED_IP, description="beacon\n")
        await bus.publish(
            [
                event("siem.offense.upserted", a1, w.qradar, "1", version=1, vendor_tenant=10),
                event("siem.offense.upserted", a2, w.qradar, "2", version=1, vendor_tenant=10),
            ]
        )
        ha, hb, hc = tenant(env, w.a), tenant(env, w.b), tenant(env, w.c)

        async def offenses_in() -> bool:
            return (await get(env, "/tenant/offenses/", ha))["total"] == 2

        await eventually(offenses_in)

        # 2. alerts: A's own broadcast alert (defanged), the shared feed's, one addressed to C only
        own = cyware_alert(
            f"A-{RUN}",
            f"Brute force campaign {RUN}",
            f"<p>Source 39.116.161[.]122 (also seen as hxxp://{EVIL.replace('.', '[.]')}/login), "
            "internal relay 192.168.1.3; technique T1110.</p>",
        )
        feed = cyware_alert(f"F-{RUN}", f"Shared feed C2 {RUN}", f"C2 at {FEED_IP} and {BAD_URL}")
        only_c = cyware_alert(f"C-{RUN}", f"For Initech only {RUN}", f"Seen: {RECORDED_IP}", company_id=w.c)
        await bus.publish(
            [
                event("ti.alert.upserted", own, w.ti_a, own.short_id, version=1),
                event("ti.alert.upserted", feed, w.ti_feed, feed.short_id, version=1),
                event("ti.alert.upserted", only_c, w.ti_feed, only_c.short_id, version=1),
            ]
        )

        async def alerts_in() -> bool:
            return (await get(env, "/tenant/threat-alerts/", ha))["total"] == 1 and (
                await get(env, "/tenant/threat-alerts/", hb)
            )["total"] == 1

        await eventually(alerts_in)

        # 3. records after the alerts: B's offense with the feed's address, A's incident
        b1 = recorded_offense(7, 20, RECORDED, offense_source=FEED_IP)
        inc = SoarIncident(
            incident_id="207461",
            account=w.account,
            name=f"Brute force from {RECORDED_IP}",
            type="Authentication",
            status=IncidentStatus.ACTIVE,
            severity=IncidentSeverity.HIGH,
            created=NOW - timedelta(minutes=10),
            modified=NOW - timedelta(minutes=5),
            occurred=NOW - timedelta(minutes=10),
            source_ips=[RECORDED_IP, "10.0.0.5"],
            mitre_tactics=["Credential Access"],
            mitre_techniques=["T1078"],
            custom_fields={"relatedurls": [f"https://{EVIL}/login"], "detectionsla": {"sla": 20}},
            version=1,
        )
        await bus.publish(
            [
                event("siem.offense.upserted", b1, w.qradar, "7", version=1, vendor_tenant=20),
                event("soar.incident.upserted", inc, w.soar, "207461", version=1, vendor_tenant=w.account),
            ]
        )
        expected = {
            (w.a, "offense", "1", own.short_id, RECORDED_IP),  # alert → stored offense
            (w.a, "incident", "207461", own.short_id, RECORDED_IP),  # incident → stored alert
            (w.a, "incident", "207461", own.short_id, EVIL),
            (w.b, "offense", "7", feed.short_id, FEED_IP),  # B takes the shared feed
        }

        async def all_matched() -> bool:
            return await matches_in_db(env, w) == expected

        await eventually(all_matched, within=20)
        seen = await tap.wait_for(lambda es: len(es) >= 4 and es)
        published = {
            (p.company_id, p.record_type, p.record_id, p.alert_short_id, p.indicator)
            for p in tap.of("ti.match.found")
        }
        assert published == expected
        assert all(p.alert_tlp == "AMBER" and p.alert_title for p in tap.of("ti.match.found"))

        # Re-delivered and changed records do not match twice: stored and published once.
        a1_again = recorded_offense(1, 10, RECORDED, version=2, last_updated_time=NOW)
        await bus.publish(
            [event("siem.offense.upserted", a1_again, w.qradar, "1", version=2, vendor_tenant=10)]
        )

        async def version_two() -> bool:
            detail = await get(env, "/tenant/offenses/", ha, sort="id")
            return any(x["offense_id"] == 1 and x["version"] == 2 for x in detail["items"])

        await eventually(version_two)
        assert await matches_in_db(env, w) == expected
        assert len([e for e in seen if e.type == "soc.ti.match.found.v1"]) == 4

    # The API: A's offense lists its alert with title, TLP and link.
    offenses = {x["offense_id"]: x for x in (await get(env, "/tenant/offenses/", ha))["items"]}
    shown = await get(env, f"/tenant/offenses/{offenses[1]['id']}/ti-matches/", ha)
    assert shown["total"] == 1
    match = shown["items"][0]
    assert (match["indicator_kind"], match["indicator"], match["alert_title"], match["alert_tlp"]) == (
        "ipv4",
        RECORDED_IP,
        own.title,
        "AMBER",
    )
    alert = await get(env, match["alert_link"], ha)
    assert alert["short_id"] == own.short_id
    assert (await get(env, f"/tenant/offenses/{offenses[2]['id']}/ti-matches/", ha))["total"] == 0
    incidents = (await get(env, "/tenant/soar-incidents/", ha))["items"]
    inc_pk = next(x["id"] for x in incidents if x["incident_id"] == "207461")
    inc_matches = await get(env, f"/tenant/soar-incidents/{inc_pk}/ti-matches/", ha)
    assert {x["indicator"] for x in inc_matches["items"]} == {RECORDED_IP, EVIL}
    assert inc_matches["mitre_techniques"] == ["T1078"]
    assert inc_matches["alert_mitre_techniques"] == ["T1110"]
    # The detail answers embed them; the incident's MITRE shows the alerts' techniques beside its own.
    detail = await get(env, f"/tenant/offenses/{offenses[1]['id']}/", ha)
    assert [
        (x["indicator"], x["alert_title"], x["alert_tlp"], x["alert_link"]) for x in detail["ti_matches"]
    ] == [(RECORDED_IP, own.title, "AMBER", match["alert_link"])]
    by_vendor_id = await get(env, f"/tenant/offenses/by-qradar-id/{w.qradar}/1/", ha)
    assert by_vendor_id["ti_matches"] == detail["ti_matches"]
    assert (await get(env, f"/tenant/offenses/{offenses[2]['id']}/", ha))["ti_matches"] == []
    inc_detail = await get(env, f"/tenant/soar-incidents/{inc_pk}/", ha)
    assert {(x["indicator"], x["alert_title"]) for x in inc_detail["ti_matches"]} == {
        (RECORDED_IP, own.title),
        (EVIL, own.title),
    }
    assert inc_detail["mitre"] == {
        "tactics": ["Credential Access"],
        "techniques": ["T1078"],
        "alert_techniques": ["T1110"],
    }
    no_ti = env["tokens"].headers(kind="tenant", company_id=w.a, permissions=["DASHBOARD"])
    assert (await get(env, f"/tenant/offenses/{offenses[1]['id']}/", no_ti))["ti_matches"] is None
    limited_incident = await get(env, f"/tenant/soar-incidents/{inc_pk}/", no_ti)
    assert limited_incident["ti_matches"] is None and limited_incident["mitre"]["alert_techniques"] is None
    dash = await get(env, "/tenant/dashboard/", ha, filters="ti_matches")
    assert dash["ti_matches"]["open_incidents_with_matches"] == 1
    assert dash["ti_matches"]["open_offenses_with_matches"] == 1
    assert (await get(env, "/tenant/dashboard/", no_ti, filters="ti_matches"))["ti_matches"] is None
    assert (await get(env, "/tenant/dashboard/", hb))["ti_matches"]["open_offenses_with_matches"] == 1

    # The list, with filters; a defanged indicator is refanged before the look-up.
    assert (await get(env, "/tenant/ti-matches/", ha))["total"] == 3
    assert (await get(env, "/tenant/ti-matches/", ha, record_type="incident"))["total"] == 2
    assert (await get(env, "/tenant/ti-matches/", ha, indicator="39.116.161[.]122"))["total"] == 2
    assert (await get(env, "/tenant/ti-matches/", ha, indicator_kind="domain"))["total"] == 1
    await get(env, "/tenant/ti-matches/", ha, 422, indicator_kind="drop table")

    # Lists take has_ti_match; the dashboard's figures count open records with matches.
    flagged = await get(env, "/tenant/offenses/", ha, has_ti_match="true")
    assert [x["offense_id"] for x in flagged["items"]] == [1] and flagged["total"] == 1
    assert [
        x["offense_id"] for x in (await get(env, "/tenant/offenses/", ha, has_ti_match="false"))["items"]
    ] == [2]
    assert [
        x["incident_id"]
        for x in (await get(env, "/tenant/soar-incidents/", ha, has_ti_match="true"))["items"]
    ] == ["207461"]
    assert (await get(env, "/tenant/soar-incidents/", ha, has_ti_match="false"))["total"] == 0
    summary = await get(env, "/tenant/ti-matches/summary/", ha)
    assert summary == {
        "open_incidents_with_matches": 1,
        "open_offenses_with_matches": 1,
        "open_tickets_with_matches": 0,
        "matches": 3,
        "alerts_matched": 1,
        "by_kind": {"ipv4": 2, "domain": 1},
    }
    assert (await get(env, "/tenant/ti-matches/summary/", hb))["open_offenses_with_matches"] == 1
    assert (await get(env, "/tenant/ti-matches/summary/", hb))["open_incidents_with_matches"] == 0

    # The consolidated report's section (JSON, and a PDF built with it).
    reported = await get(env, "/tenant/reports/consolidated/", ha)
    assert {(x["record_type"], x["indicator"]) for x in reported["threat_intel_matches"]} == {
        ("offense", RECORDED_IP),
        ("incident", RECORDED_IP),
        ("incident", EVIL),
    }
    pdf = await env["client"].get("/tenant/reports/consolidated/", headers=ha, params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert [
        x["indicator"] for x in (await get(env, "/tenant/reports/consolidated/", hb))["threat_intel_matches"]
    ] == [FEED_IP]

    # Isolation: B sees its own match only, none of A's; A's records' routes answer 404 to B.
    b_list = await get(env, "/tenant/ti-matches/", hb)
    assert [x["indicator"] for x in b_list["items"]] == [FEED_IP]
    assert own.short_id not in json.dumps(b_list)
    for path in (
        f"/tenant/offenses/{offenses[1]['id']}/ti-matches/",
        f"/tenant/soar-incidents/{inc_pk}/ti-matches/",
    ):
        assert (await get(env, path, hb, 404))["error"]["code"] == "not_found"
    assert (await get(env, "/tenant/ti-matches/", hc))["total"] == 0
    # Without the THREAT_INTELLIGENCE permission the routes are refused.
    limited = env["tokens"].headers(kind="tenant", company_id=w.a, permissions=["DASHBOARD"])
    assert (await env["client"].get("/tenant/ti-matches/", headers=limited)).status_code == 403
    # Admins see every company's.
    admin = env["tokens"].headers(kind="admin")
    assert (await get(env, "/tenant/ti-matches/", admin, indicator=FEED_IP))["total"] == 1

    # Row-level security alone: B's scope on the API role sees neither A's matches nor observables.
    from soc_shared.db import set_company_scope

    async with env["app"].state.app_db.session() as s:
        await set_company_scope(s, w.b, is_admin=False)
        companies = set(
            (await s.execute(sa.text("SELECT DISTINCT company_id::text FROM ti_match"))).scalars()
        )
        assert companies == {w.b}
        leaked = (
            await s.execute(
                sa.text("SELECT count(*) FROM ti_observable WHERE value IN (:e, :u)"),
                {"e": EVIL, "u": BAD_URL},
            )
        ).scalar_one()
        # B sees the feed's URL (it takes the feed), never A's domain
        assert leaked == 1
        assert (await s.execute(sa.text("DELETE FROM ti_match"))).rowcount == 0


async def test_private_addresses_are_stored_flagged_and_never_matched(env):
    w: World = env["world"]

    async def stored() -> Any:
        async with env["app"].state.db.session() as s:
            return (
                await s.execute(
                    sa.text(
                        "SELECT record_type, private FROM ti_observable WHERE value = '192.168.1.3' "
                        "AND integration_id IN (:q, :t)"
                    ),
                    {"q": w.qradar, "t": w.ti_a},
                )
            ).all()

    rows = await eventually(stored)
    assert {r.record_type for r in rows} >= {"offense", "alert"} and all(r.private for r in rows)
    async with env["app"].state.db.session() as s:
        n = (
            await s.execute(sa.text("SELECT count(*) FROM ti_match WHERE value = '192.168.1.3'"))
        ).scalar_one()
    assert n == 0


async def test_tickets_are_matched_like_offenses_and_incidents(env):
    """A ServiceDesk Plus request (the recorded shape) whose text names A's alert's indicators,
    defanged: matched, shown in the ticket's detail, its route, the list's filter and the summary;
    hostile query values are refused or answer nothing."""
    w: World = env["world"]
    db = env["app"].state.db
    itsm = f"sdp-ti-{RUN}"
    await map_itsm(db, w.a, itsm, "301")
    raw = json.loads((FIXTURES / "sdp" / "api_v3_requests_get.json").read_text())["request"]
    ticket = ItsmTicket(
        ticket_id=raw["id"],
        account_id="301",
        account_name="Acme",
        subject=f"{raw['subject']}: user clicked hxxps://{EVIL.replace('.', '[.]')}/login",
        short_description=raw["description"],
        status=raw["status"]["name"],
        priority=raw["priority"]["name"],
        created_time=NOW - timedelta(minutes=20),
        last_updated_time=NOW - timedelta(minutes=5),
        resolution=f"Blocked {RECORDED_IP.replace('.', '[.]')} at the firewall",
        version=1,
    )
    await env["bus"].publish(
        [event("itsm.ticket.upserted", ticket, itsm, raw["id"], version=1, vendor_tenant="301")]
    )
    own = f"A-{RUN}"

    async def matched() -> bool:
        return {(r[1], r[2], r[3], r[4]) for r in await matches_in_db(env, w) if r[1] == "ticket"} == {
            ("ticket", raw["id"], own, EVIL),
            ("ticket", raw["id"], own, RECORDED_IP),
        }

    await eventually(matched, within=20)
    ha, hb = tenant(env, w.a), tenant(env, w.b)
    listed = await get(env, "/tenant/itsm-tickets/", ha, has_ti_match="true")
    assert [x["ticket_id"] for x in listed["items"]] == [raw["id"]]
    assert (await get(env, "/tenant/itsm-tickets/", ha, has_ti_match="false"))["total"] == 0
    pk = listed["items"][0]["id"]
    detail = await get(env, f"/tenant/itsm-tickets/{pk}/", ha)
    assert {(x["indicator"], x["alert_short_id"], x["alert_tlp"]) for x in detail["ti_matches"]} == {
        (EVIL, own, "AMBER"),
        (RECORDED_IP, own, "AMBER"),
    }
    routed = await get(env, f"/tenant/itsm-tickets/{pk}/ti-matches/", ha)
    assert routed["record_type"] == "ticket" and routed["total"] == 2
    assert (await get(env, "/tenant/ti-matches/", ha, record_type="ticket"))["total"] == 2
    assert (await get(env, "/tenant/ti-matches/summary/", ha))["open_tickets_with_matches"] == 1
    assert (await get(env, f"/tenant/itsm-tickets/{pk}/ti-matches/", hb, 404))["error"]["code"] == "not_found"
    assert (await get(env, "/tenant/ti-matches/", hb, record_type="ticket"))["total"] == 0
    # Hostile query values: refused with the stable error shape, or they simply match nothing.
    for params in (
        {"indicator": "1" * 5000},
        {"record_type": "ticket'; DROP TABLE ti_match; --"},
        {"indicator_kind": "<script>"},
    ):
        error = await get(env, "/tenant/ti-matches/", ha, 422, **params)
        assert set(error["error"]) >= {"code", "message", "details", "request_id"}
    for lookalike in (
        "\u0440\u0430ypal.com",
        "evil\u2024com",
        "\x00' OR 1=1 --",
        EVIL.upper().replace("-", "\u2010"),
    ):
        assert (await get(env, "/tenant/ti-matches/", ha, indicator=lookalike))["total"] == 0
    await get(env, "/tenant/itsm-tickets/", ha, 422, has_ti_match="maybe")
    await get(env, f"/tenant/itsm-tickets/{2**63}/ti-matches/", ha, 422)


async def test_backfill_extracts_and_matches_records_stored_before_matching(env, event_tap):
    """Records (a recorded-shape offense, an XSOAR incident naming a file hash, a hostile ticket)
    and an alert stored without observables — as before matching existed — are extracted and
    matched by the backfill: in bounded batches, resumable, published once, hostile text bounded."""
    from soc_tenant.threatintel import backfill as tibackfill

    w: World = env["world"]
    db = env["app"].state.db
    bus: Bus = env["bus"]
    sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    ip = "185.220.101.47"
    offense = recorded_offense(31, 10, RECORDED, offense_source=ip, description="Tor exit scan\n")
    inc = SoarIncident(
        incident_id="207470",
        account=w.account,
        name="Malware detected on FIN-WS-12",
        type="Malware",
        status=IncidentStatus.PENDING,
        severity=IncidentSeverity.CRITICAL,
        created=NOW - timedelta(hours=3),
        modified=NOW - timedelta(hours=2),
        occurred=NOW - timedelta(hours=3),
        custom_fields={"filehash": sha.upper(), "filename": "invoice.exe"},
        version=1,
    )
    hostile = ItsmTicket(
        ticket_id=f"hostile-{RUN}",
        account_id="301",
        subject="\u0440\u0430ypal.com '; DROP TABLE ti_observable; -- " + "8.8.8." * 10_000,
        # (what lies past the first 64 KiB of a text is not scanned)
        short_description=f"{ip} <img src=x onerror=alert(1)>\x00" + "A" * 70_000 + " 185.220.101.99",
        last_updated_time=NOW - timedelta(minutes=1),
        version=1,
    )
    alert = cyware_alert(
        f"BF-{RUN}", f"Tor exit nodes and loader hash {RUN}", f"<p>{ip[:-3]}[.]47 drops {sha}</p>"
    )
    await bus.publish(
        [
            event("siem.offense.upserted", offense, w.qradar, "31", version=1, vendor_tenant=10),
            event("soar.incident.upserted", inc, w.soar, "207470", version=1, vendor_tenant=w.account),
            event(
                "itsm.ticket.upserted",
                hostile,
                f"sdp-ti-{RUN}",
                hostile.ticket_id,
                version=1,
                vendor_tenant="301",
            ),
            event("ti.alert.upserted", alert, w.ti_a, alert.short_id, version=1),
        ]
    )
    expected = {
        (w.a, "offense", "31", alert.short_id, ip),
        (w.a, "incident", "207470", alert.short_id, sha),
        (w.a, "ticket", hostile.ticket_id, alert.short_id, ip),
    }

    async def mine() -> set[tuple[str, str, str, str, str]]:
        return {m for m in await matches_in_db(env, w) if m[3] == alert.short_id}

    async def live_matched() -> bool:
        return await mine() == expected

    await eventually(live_matched, within=20)
    keys = {
        "offense": (w.qradar, "10", "31"),
        "incident": (w.soar, w.account, "207470"),
        "ticket": (f"sdp-ti-{RUN}", "301", hostile.ticket_id),
        "alert": (w.ti_a, "", alert.short_id),
    }
    tables = {
        "offense": "qradar_offense",
        "incident": "soar_incident",
        "ticket": "itsm_ticket",
        "alert": "ti_alert",
    }
    key_sql = {
        "offense": "integration_id = :i AND domain_id::text = :s AND offense_id::text = :k",
        "incident": "integration_id = :i AND account = :s AND incident_id = :k",
        "ticket": "integration_id = :i AND account_id = :s AND ticket_id = :k",
        "alert": "integration_id = :i AND coalesce(company_id::text, '') = :s AND short_id = :k",
    }
    # As before matching existed: the rows, no observables, no matches; the cursors just before them.
    async with db.session() as s:
        for rtype, (i, sc, k) in keys.items():
            await s.execute(
                sa.text(
                    "DELETE FROM ti_observable WHERE record_type = :t AND integration_id = :i AND scope = :s "
                    "AND record_key = :k"
                ),
                {"t": rtype, "i": i, "s": sc, "k": k},
            )
            row_id = (
                await s.execute(
                    sa.text(f"SELECT id FROM {tables[rtype]} WHERE {key_sql[rtype]}"),
                    {"i": i, "s": sc, "k": k},
                )
            ).scalar_one()
            await s.execute(
                sa.text(
                    "INSERT INTO ti_backfill (record_type, last_id) VALUES (:t, :l) "
                    "ON CONFLICT (record_type) DO UPDATE SET last_id = :l"
                ),
                {"t": rtype, "l": row_id - 1},
            )
        await s.execute(sa.text("DELETE FROM ti_match WHERE alert_short_id = :a"), {"a": alert.short_id})
    assert await mine() == set()

    async with event_tap("ti.match.found") as tap:
        # Bounded: two batches of one row stop the run; the cursor kept where it stopped.
        partial = await tibackfill.backfill(db, bus=bus, batch=1, max_batches=2)
        assert partial["batches"] == 2
        async with db.session() as s:
            cursors = dict((await s.execute(sa.text("SELECT record_type, last_id FROM ti_backfill"))).all())
            offense_pk = (
                await s.execute(
                    sa.text(f"SELECT id FROM qradar_offense WHERE {key_sql['offense']}"),
                    dict(zip("isk", keys["offense"], strict=True)),
                )
            ).scalar_one()
        assert cursors["offense"] >= offense_pk
        # Resumed to the end: both matches found (records and the alert extracted), published once.
        rest = await tibackfill.backfill(db, bus=bus)
        assert partial["extracted"] + rest["extracted"] == 4
        assert await mine() == expected
        await tap.wait_for(
            lambda es: (
                len([p for p in tap.of("ti.match.found") if p.alert_short_id == alert.short_id]) >= 3 and es
            )
        )
        published = [
            (p.company_id, p.record_type, p.record_id, p.alert_short_id, p.indicator)
            for p in tap.of("ti.match.found")
            if p.alert_short_id == alert.short_id
        ]
        assert sorted(published) == sorted(expected)
        # Done: a further run walks nothing.
        again = await tibackfill.backfill(db, bus=bus)
        assert again["extracted"] == 0 and again["matches"] == 0
    # The hostile ticket: bounded observables, the look-alike refused, the real address kept.
    async with db.session() as s:
        values = dict(
            (
                await s.execute(
                    sa.text(
                        "SELECT value, private FROM ti_observable WHERE record_type = 'ticket' AND record_key = :k"
                    ),
                    {"k": hostile.ticket_id},
                )
            ).all()
        )
    assert ip in values and "185.220.101.99" not in values and "ypal.com" not in " ".join(values)
    assert len(values) <= 2_000
    # The API shows the backfilled matches with the detail answers.
    ha = tenant(env, w.a)
    offenses = {x["offense_id"]: x for x in (await get(env, "/tenant/offenses/", ha))["items"]}
    detail = await get(env, f"/tenant/offenses/{offenses[31]['id']}/", ha)
    assert [(x["indicator"], x["alert_title"]) for x in detail["ti_matches"]] == [(ip, alert.title)]


async def test_a_mapping_made_after_the_data_matches_it(env):
    """An XSOAR account's incident and its company's alert both stored before the account was
    mapped: nothing matches until the mapping exists; then the rematch of newly mapped tenants
    finds the match once."""
    from soc_tenant.threatintel import backfill as tibackfill

    w: World = env["world"]
    db = env["app"].state.db
    bus: Bus = env["bus"]
    d = await add_company(db, f"Umbrella TI {RUN}")
    ti_d = await add_ti_integration(db, d)
    account = f"umbrella-ti-{RUN}"
    ip = "185.220.101.33"
    alert = cyware_alert(f"D-{RUN}", f"Umbrella advisory {RUN}", f"<p>Scanner {ip}</p>")
    inc = SoarIncident(
        incident_id="301",
        account=account,
        name=f"Port scan from {ip}",
        type="Recon",
        status=IncidentStatus.ACTIVE,
        severity=IncidentSeverity.MEDIUM,
        created=NOW - timedelta(hours=1),
        modified=NOW - timedelta(minutes=30),
        occurred=NOW - timedelta(hours=1),
        version=1,
    )
    await bus.publish(
        [
            event("ti.alert.upserted", alert, ti_d, alert.short_id, version=1),
            event("soar.incident.upserted", inc, w.soar, "301", version=1, vendor_tenant=account),
        ]
    )

    async def both_stored() -> bool:
        async with db.session() as s:
            n = (
                await s.execute(
                    sa.text(
                        "SELECT count(DISTINCT record_type) FROM ti_observable WHERE value = :ip "
                        "AND record_key IN (:a, '301') AND integration_id IN (:t, :x)"
                    ),
                    {"ip": ip, "a": alert.short_id, "t": ti_d, "x": w.soar},
                )
            ).scalar_one()
        return n == 2

    await eventually(both_stored, within=20)
    before = datetime.now(UTC) - timedelta(seconds=1)

    async def of_d() -> set[tuple[str, str, str]]:
        async with db.session() as s:
            rows = (
                await s.execute(
                    sa.text("SELECT record_key, alert_short_id, value FROM ti_match WHERE company_id = :d"),
                    {"d": d},
                )
            ).all()
        return {tuple(r) for r in rows}

    assert await of_d() == set()
    await map_soar(db, d, w.soar, account)
    assert await tibackfill.rematch_mappings(db, before, bus=bus) >= 1
    assert await of_d() == {("301", alert.short_id, ip)}
    assert await tibackfill.rematch_mappings(db, before, bus=bus) == 0


async def test_offense_addresses_resolved_from_their_ids_are_stored_shown_and_matched(env):
    """The recorded offense 15 (a username offense: ``offense_source`` names no address) carries
    source address ids [2, 1] and local destination ids [1]; siem-ingest publishes the addresses
    the recorded ``siem/source_addresses`` answer names (id 1 → 192.168.0.1, id 2 unknown) and a
    local destination in the recorded shape whose address is a public server an alert names.
    Known in advance: one match, on the destination address; the private source is stored
    flagged and never matched; the detail lists both."""
    w: World = env["world"]
    bus: Bus = env["bus"]
    db = env["app"].state.db
    raw = json.loads((FIXTURES / "qradar" / "siem_offenses.json").read_text())[1]
    sources = json.loads((FIXTURES / "qradar" / "siem_source_addresses.json").read_text())
    destinations = json.loads((FIXTURES / "qradar" / "siem_local_destination_addresses.json").read_text())
    dmz = "91.198.174.192"
    destinations = [{**destinations[0], "local_destination_ip": dmz}]
    source_ip = {r["id"]: r["source_ip"] for r in sources}
    destination_ip = {r["id"]: r["local_destination_ip"] for r in destinations}
    assert raw["offense_type"] == 3 and raw["source_address_ids"] == [2, 1]
    alert = cyware_alert(
        f"DST-{RUN}", f"Web server beaconing {RUN}", f"<p>Victim host {dmz.replace('.', '[.]')}</p>"
    )
    await bus.publish([event("ti.alert.upserted", alert, w.ti_a, alert.short_id, version=1)])

    async def alert_stored() -> bool:
        async with db.session() as s:
            n = (
                await s.execute(
                    sa.text("SELECT count(*) FROM ti_observable WHERE record_key = :k AND value = :v"),
                    {"k": alert.short_id, "v": dmz},
                )
            ).scalar_one()
        return n == 1

    await eventually(alert_stored)
    offense = recorded_offense(
        15,
        10,
        raw,
        source_addresses=[source_ip[i] for i in raw["source_address_ids"] if i in source_ip],
        local_destination_addresses=[
            destination_ip[i] for i in raw["local_destination_address_ids"] if i in destination_ip
        ],
    )
    await bus.publish([event("siem.offense.upserted", offense, w.qradar, "15", version=1, vendor_tenant=10)])

    async def matched() -> set[tuple[str, str, str, str, str]]:
        found = {m for m in await matches_in_db(env, w) if m[2] == "15"}
        return found or None  # type: ignore[return-value]

    assert await eventually(matched) == {(w.a, "offense", "15", alert.short_id, dmz)}
    async with db.session() as s:
        private = (
            await s.execute(
                sa.text(
                    "SELECT private FROM ti_observable WHERE record_type = 'offense' AND record_key = '15' "
                    "AND integration_id = :q AND value = '192.168.0.1'"
                ),
                {"q": w.qradar},
            )
        ).scalar_one()
    assert private is True
    ha = tenant(env, w.a)
    listed = await get(env, "/tenant/offenses/", ha, has_ti_match="true")
    pk = next(o["id"] for o in listed["items"] if o["offense_id"] == 15)
    detail = await get(env, f"/tenant/offenses/{pk}/", ha)
    assert detail["source_addresses"] == ["192.168.0.1"]
    assert detail["local_destination_addresses"] == [dmz]
    assert detail["flows"]["local_destination_addresses"] == [dmz]
    assert [m["indicator"] for m in detail["ti_matches"]] == [dmz]
    # B's scope never reaches A's offense
    await get(env, f"/tenant/offenses/{pk}/", tenant(env, w.b), expect=404)


async def test_entitlement_gained_later_matches_stored_records_once(env):
    """Two ways a company becomes entitled to alerts already stored, with records already stored:
    (1) its ``is_default_threat_intel`` flag is switched on (the shared feed's alerts become its
    own), (2) a threat-intel integration is moved to it (its broadcast alerts become its own).
    Before: no match. After the change (through the admin API) and a rematch pass: exactly the
    expected match. A second pass: nothing new."""
    from soc_tenant.threatintel import backfill as tibackfill

    w: World = env["world"]
    db = env["app"].state.db
    bus: Bus = env["bus"]
    admin = env["tokens"].headers(kind="admin")
    f = await add_company(db, f"Hooli TI {RUN}")
    g = await add_company(db, f"Stark TI {RUN}")
    async with db.session() as s:
        await s.execute(
            sa.text("UPDATE company SET is_default_threat_intel = false WHERE id IN (:f, :g)"),
            {"f": f, "g": g},
        )
    h = await add_company(db, f"Wayne TI {RUN}")
    moved = await add_ti_integration(db, h)  # H's for now (H has no records)
    feed_ip, moved_ip = "151.101.1.69", "104.16.132.229"
    incidents = {
        f"hooli-ti-{RUN}": ("401", f, feed_ip),
        f"stark-ti-{RUN}": ("402", g, moved_ip),
    }
    for account, (_, company, _) in incidents.items():
        await map_soar(db, company, w.soar, account)
    feed_alert = cyware_alert(f"FF-{RUN}", f"Feed: scanner {RUN}", f"<p>Scanner {feed_ip}</p>")
    moved_alert = cyware_alert(f"MV-{RUN}", f"Moved feed: C2 {RUN}", f"<p>C2 {moved_ip}</p>")
    await bus.publish(
        [
            event("ti.alert.upserted", feed_alert, w.ti_feed, feed_alert.short_id, version=1),
            event("ti.alert.upserted", moved_alert, moved, moved_alert.short_id, version=1),
            *(
                event(
                    "soar.incident.upserted",
                    SoarIncident(
                        incident_id=incident_id,
                        account=account,
                        name=f"Traffic to {ip}",
                        type="Network",
                        status=IncidentStatus.ACTIVE,
                        severity=IncidentSeverity.HIGH,
                        created=NOW - timedelta(hours=1),
                        modified=NOW - timedelta(minutes=20),
                        occurred=NOW - timedelta(hours=1),
                        version=1,
                    ),
                    w.soar,
                    incident_id,
                    version=1,
                    vendor_tenant=account,
                )
                for account, (incident_id, _, ip) in incidents.items()
            ),
        ]
    )

    async def all_stored() -> bool:
        async with db.session() as s:
            n = (
                await s.execute(
                    sa.text(
                        "SELECT count(DISTINCT (record_key, value)) FROM ti_observable WHERE value IN (:a, :b)"
                    ),
                    {"a": feed_ip, "b": moved_ip},
                )
            ).scalar_one()
        return n == 4

    await eventually(all_stored, within=20)

    async def of(company: str) -> list[tuple[str, str, str]]:
        async with db.session() as s:
            rows = (
                await s.execute(
                    sa.text("SELECT record_key, alert_short_id, value FROM ti_match WHERE company_id = :c"),
                    {"c": company},
                )
            ).all()
        return sorted(tuple(r) for r in rows)

    before = datetime.now(UTC) - timedelta(seconds=1)
    assert await tibackfill.rematch_mappings(db, before, bus=bus) == 0
    assert await of(f) == [] and await of(g) == []

    # (1) F opts into the shared feed
    r = await env["client"].put(
        f"/admin/companies/{f}/", headers=admin, json={"is_default_threat_intel": True}
    )
    assert r.status_code == 200, r.text
    # (2) the integration moves from H to G, as PUT /integration/{id}/ writes it (this fixture's
    # sealed test credentials are not a Cyware credential set the route would re-validate)
    async with db.session() as s:
        await s.execute(
            sa.text("UPDATE integration SET company_id = :g, updated_at = now() WHERE id = :i"),
            {"g": g, "i": moved},
        )

    await tibackfill.rematch_mappings(db, before, bus=bus)  # (the service's own pass may be first)
    assert await of(f) == [("401", feed_alert.short_id, feed_ip)]
    assert await of(g) == [("402", moved_alert.short_id, moved_ip)]
    assert await tibackfill.rematch_mappings(db, before, bus=bus) == 0
    assert await of(f) == [("401", feed_alert.short_id, feed_ip)]
    assert await of(g) == [("402", moved_alert.short_id, moved_ip)]
