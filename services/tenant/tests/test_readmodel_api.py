"""The read model end to end: events published on the real bus, consumed into PostgreSQL, read
through the API as admins and as two companies' users."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa
from soc_shared.bus import Bus
from soc_shared.events import (
    IncidentSeverity,
    IncidentStatus,
    ItsmAccount,
    ItsmTicket,
    OffenseLogSource,
    OffenseRule,
    OffenseStatus,
    SiemDomain,
    SiemEpsSample,
    SiemEventCollector,
    SiemLogSource,
    SiemLogSourceGroup,
    SiemLogSourceType,
    SiemMetricSample,
    SiemOffense,
    SiemOffenseNotes,
    SoarAccount,
    SoarIncident,
    SoarNote,
    TiAlert,
    TiCategory,
    TiGroup,
    TiRef,
    TiTag,
)
from soc_tenant.main import create_app
from soc_tenant.readmodel import ingest
from soc_tenant.readmodel.testing import (
    add_company,
    add_ti_integration,
    event,
    eventually,
    map_itsm,
    map_qradar,
    map_soar,
    set_company_sla,
)
from soc_tenant.sla import rules as slamath

NOW = datetime.now(UTC).replace(microsecond=0)
RUN = uuid.uuid4().hex[:8]
MARK_A = f"acme{RUN}"  # every string of company A's data carries this marker
MARK_B = f"globex{RUN}"
IP_A, IP_B = "81.2.69.142", "81.2.69.160"  # public addresses each company's threat intelligence names


def offense(
    offense_id: int,
    domain_id: int,
    mark: str,
    *,
    version: int,
    status: OffenseStatus = OffenseStatus.OPEN,
    severity: int = 5,
    start: datetime | None = None,
    categories: list[str] | None = None,
    **extra: Any,
) -> SiemOffense:
    start = start or NOW - timedelta(hours=offense_id % 48)
    return SiemOffense(
        offense_id=offense_id,
        domain_id=domain_id,
        description=f"{mark} offense {offense_id}",
        status=status,
        severity=severity,
        magnitude=severity,
        credibility=3,
        relevance=4,
        event_count=10 * offense_id,
        flow_count=2,
        categories=categories or ["Suspicious Activity"],
        rules=[OffenseRule(id=100, type="CRE_RULE", name="rule")],
        source_address_ids=[1, 2],
        local_destination_address_ids=[3],
        destination_networks=["Net-10-172-192"],
        log_sources=[OffenseLogSource(id=1001, name="fw", type_id=10, type_name="Linux OS")],
        start_time=start,
        last_updated_time=start + timedelta(seconds=version),
        version=version,
        **extra,
    )


def incident(
    incident_id: str,
    account: str,
    mark: str,
    *,
    created: datetime,
    priority: str | None,
    status: IncidentStatus = IncidentStatus.ACTIVE,
    severity: IncidentSeverity = IncidentSeverity.HIGH,
    tta: float | None = None,
    ttn: float | None = None,
    ttdn: float | None = None,
    version: int = 1,
    **extra: Any,
) -> SoarIncident:
    at = lambda minutes: created + timedelta(minutes=minutes) if minutes is not None else None  # noqa: E731
    extra.setdefault("occurred", created)  # XSOAR always has it; the SLA clock starts there
    return SoarIncident(
        incident_id=incident_id,
        account=account,
        name=f"{mark} incident {incident_id}",
        type="Malware",
        status=status,
        severity=severity,
        owner=f"analyst-{account}",
        created=created,
        modified=created,
        priority=priority,
        tta_at=at(tta),
        ttn_at=at(ttn),
        ttdn_at=at(ttdn),
        rules=[f"UC-{mark}"],
        mitre_tactics=["TA0001"],
        mitre_techniques=["T1566"],
        version=version,
        **extra,
    )


class World:
    """Two companies, each with a QRadar domain, a SOAR account, an ITSM account, a threat-intel
    integration; all their data published on the bus."""

    def __init__(self) -> None:
        self.qradar = f"qr-{RUN}"
        self.soar = f"xs-{RUN}"
        self.itsm = f"sdp-{RUN}"
        self.a = self.b = ""
        self.ti_a = self.ti_b = ""
        self.incidents: dict[str, SoarIncident] = {}
        self.offenses: dict[int, SiemOffense] = {}

    def events(self) -> list:
        q, s, it = self.qradar, self.soar, self.itsm
        ev = [
            event(
                "siem.domain.upserted",
                SiemDomain(domain_id=101, name=f"{MARK_A} domain", event_collector_ids=[1]),
                q,
                "101",
            ),
            event("siem.domain.upserted", SiemDomain(domain_id=202, name=f"{MARK_B} domain"), q, "202"),
            event(
                "siem.event_collector.upserted",
                SiemEventCollector(collector_id=1, name=f"{MARK_A}-ec"),
                q,
                "ec1",
            ),
            event(
                "siem.event_collector.upserted",
                SiemEventCollector(collector_id=2, name=f"{MARK_B}-ec"),
                q,
                "ec2",
            ),
            event("siem.log_source_type.upserted", SiemLogSourceType(type_id=10, name="Linux OS"), q, "t10"),
            event("siem.log_source_group.upserted", SiemLogSourceGroup(group_id=5, name="Servers"), q, "g5"),
        ]
        assets = [
            (1001, 101, MARK_A, "SUCCESS", True, 10.0, 1),
            (1002, 101, MARK_A, "ERROR", True, 5.0, 1),
            (1003, 101, MARK_A, "SUCCESS", False, 0.0, 1),
            (2001, 202, MARK_B, "SUCCESS", True, 7.0, 2),
        ]
        for lid, dom, mark, status, enabled, eps, ec in assets:
            ev.append(
                event(
                    "siem.log_source.upserted",
                    SiemLogSource(
                        log_source_id=lid,
                        name=f"{mark}-ls-{lid}",
                        domain_id=dom,
                        type_id=10,
                        event_collector_id=ec,
                        sending_ip=f"10.0.0.{lid % 250}",
                        enabled=enabled,
                        status=status,
                        group_ids=[5],
                        average_eps=eps,
                    ),
                    q,
                    str(lid),
                )
            )
        # Company A's offenses 2..6 (offense 1's three versions are the out-of-order test's); B's 900.
        specs = [
            (2, 9, OffenseStatus.OPEN),
            (3, 7, OffenseStatus.OPEN),
            (4, 3, OffenseStatus.OPEN),
            (5, 3, OffenseStatus.CLOSED),
            (6, 1, OffenseStatus.HIDDEN),
        ]
        for oid, sev, st in specs:
            self.offenses[oid] = offense(
                oid,
                101,
                MARK_A,
                version=1,
                status=st,
                severity=sev,
                categories=["Suspicious Activity", "Recon"] if oid == 2 else None,
                # offense 2's source is named by A's threat-intel alert al-a1 (a match)
                offense_source=IP_A if oid == 2 else None,
            )
        self.offenses[900] = offense(900, 202, MARK_B, version=1, offense_source=IP_B)
        for o in self.offenses.values():
            ev.append(
                event(
                    "siem.offense.upserted",
                    o,
                    q,
                    str(o.offense_id),
                    version=o.version,
                    vendor_tenant=o.domain_id,
                )
            )
        for h in range(1, 4):
            start = (NOW - timedelta(hours=h)).replace(minute=0, second=0)
            ev.append(
                event(
                    "siem.eps.sampled",
                    SiemEpsSample(
                        domain_id=101,
                        granularity="hour",
                        window_start=start,
                        window_end=start + timedelta(hours=1),
                        average_eps=100.0 * h,
                        peak_eps=150.0 * h,
                    ),
                    q,
                    f"eps101-{h}",
                )
            )
        ev.append(
            event(
                "siem.eps.sampled",
                SiemEpsSample(
                    domain_id=202,
                    granularity="hour",
                    window_start=(NOW - timedelta(hours=1)).replace(minute=0, second=0),
                    window_end=NOW,
                    average_eps=5,
                    peak_eps=9,
                ),
                q,
                "eps202",
            )
        )
        ev.append(
            event(
                "siem.metric.sampled",
                SiemMetricSample(
                    family="event_counts",
                    domain_id=101,
                    granularity="day",
                    window_start=NOW - timedelta(days=1),
                    window_end=NOW,
                    rows=[{"event_name": f"{MARK_A} login", "count": 12}],
                ),
                q,
                "m1",
            )
        )
        ev.append(
            event(
                "siem.metric.sampled",
                SiemMetricSample(
                    family="event_counts",
                    domain_id=202,
                    granularity="day",
                    window_start=NOW - timedelta(days=1),
                    window_end=NOW,
                    rows=[{"event_name": f"{MARK_B} login", "count": 3}],
                ),
                q,
                "m2",
            )
        )

        # SOAR: accounts, incidents with every SLA situation, a note.
        ev += [
            event(
                "soar.account.upserted",
                SoarAccount(account_id="1", name=f"acme-{RUN}", display_name=MARK_A),
                s,
                "a1",
            ),
            event(
                "soar.account.upserted",
                SoarAccount(account_id="2", name=f"globex-{RUN}", display_name=MARK_B),
                s,
                "a2",
            ),
        ]
        acc_a, acc_b = f"acme-{RUN}", f"globex-{RUN}"
        self.incidents = {
            # P1 (15/30/240): TTA met, TTN breached, TTDN missing but within target -> pending.
            "a1": incident(
                f"a1-{RUN}",
                acc_a,
                MARK_A,
                created=NOW - timedelta(hours=2),
                priority="P1",
                tta=10,
                ttn=40,
                offense_ids=[2],
            ),
            # P2 (30/60/480), 10 minutes old, nothing done yet: all pending.
            "a2": incident(
                f"a2-{RUN}",
                acc_a,
                MARK_A,
                created=NOW - timedelta(minutes=10),
                priority="P2",
                source_ips=[IP_A],
            ),
            # P3 (60/120/1440), closed, everything in time: met.
            "a3": incident(
                f"a3-{RUN}",
                acc_a,
                MARK_A,
                created=NOW - timedelta(days=3),
                priority="P3",
                tta=30,
                ttn=100,
                ttdn=1000,
                status=IncidentStatus.CLOSED,
                closed=NOW - timedelta(days=3) + timedelta(minutes=1200),
                itsm_sync_status="Ready",  # a true positive: counted in compliance
            ),
            # P4 (240/480/2880), a day old, no TTA/TTN/TTDN at all: TTA and TTN breached, TTDN pending.
            "a4": incident(
                f"a4-{RUN}",
                acc_a,
                MARK_A,
                created=NOW - timedelta(days=1),
                priority="P4",
                severity=IncidentSeverity.LOW,
            ),
            # No priority, critical severity -> P1; 5 minutes old: pending.
            "a5": incident(
                f"a5-{RUN}",
                acc_a,
                MARK_A,
                created=NOW - timedelta(minutes=5),
                priority=None,
                severity=IncidentSeverity.CRITICAL,
            ),
            # Company B (own SLA: P1 TTA 1 minute): TTA after 5 minutes -> breached.
            "b1": incident(
                f"b1-{RUN}",
                acc_b,
                MARK_B,
                created=NOW - timedelta(hours=1),
                priority="P1",
                tta=5,
                ttn=6,
                ttdn=7,
                offense_ids=[900],
                itsm_sync_status="Ready",
            ),
        }
        for inc in self.incidents.values():
            ev.append(
                event(
                    "soar.incident.upserted",
                    inc,
                    s,
                    inc.incident_id,
                    version=inc.version,
                    vendor_tenant=inc.account,
                )
            )
        ev.append(
            event(
                "soar.note.added",
                SoarNote(
                    note_id=f"n1-{RUN}",
                    incident_id=f"a1-{RUN}",
                    account=acc_a,
                    author="analyst",
                    created=NOW,
                    content=f"{MARK_A} contained",
                ),
                s,
                "n1",
            )
        )

        # ITSM
        ev += [
            event("itsm.account.upserted", ItsmAccount(account_id="11", name=MARK_A), it, "acc11"),
            event("itsm.account.upserted", ItsmAccount(account_id="22", name=MARK_B), it, "acc22"),
        ]
        tickets = [
            ItsmTicket(
                ticket_id=f"t-a1-{RUN}",
                account_id="11",
                subject=f"{MARK_A} ticket 1",
                status="Open",
                priority="High",
                is_overdue=True,
                created_time=NOW - timedelta(hours=1),
                last_updated_time=NOW,
                soar_incident_id=f"a1-{RUN}",
                version=1,
            ),
            ItsmTicket(
                ticket_id=f"t-a2-{RUN}",
                account_id="11",
                subject=f"{MARK_A} ticket 2",
                status="Closed",
                priority="Low",
                is_overdue=True,
                created_time=NOW - timedelta(days=2),
                last_updated_time=NOW,
                version=1,
            ),
            ItsmTicket(
                ticket_id=f"t-b1-{RUN}",
                account_id="22",
                subject=f"{MARK_B} ticket",
                status="Open",
                priority="High",
                created_time=NOW - timedelta(hours=1),
                last_updated_time=NOW,
                soar_incident_id=f"b1-{RUN}",
                version=1,
            ),
        ]
        ev += [event("itsm.ticket.upserted", tk, it, tk.ticket_id, version=tk.version) for tk in tickets]

        # Threat intelligence: A's through its integration (one also naming the company), B's own.
        ev += [
            event(
                "ti.tag.upserted",
                TiTag(tag_id="tg1", tag_name="ransomware", tag_slug="ransomware"),
                self.ti_a,
                "tg1",
            ),
            event(
                "ti.group.upserted",
                TiGroup(group_id="gr1", group_name=f"{MARK_A} SOC", group_tlp="AMBER"),
                self.ti_a,
                "gr1",
            ),
            event(
                "ti.category.upserted",
                TiCategory(category_id="c1", category_name="Advisory", required_fields=["title"]),
                self.ti_a,
                "c1",
            ),
        ]
        alerts = [
            (self.ti_a, "al-a1", MARK_A, None, NOW - timedelta(hours=3)),
            (self.ti_a, "al-a2", MARK_A, self.a, NOW - timedelta(hours=1)),
            (self.ti_b, "al-b1", MARK_B, None, NOW - timedelta(hours=2)),
        ]
        for integ, sid, mark, company, published in alerts:
            ev.append(
                event(
                    "ti.alert.upserted",
                    TiAlert(
                        short_id=f"{sid}-{RUN}",
                        title=f"{mark} alert {sid}",
                        status="PUBLISHED",
                        tlp="AMBER",
                        published_time=published,
                        content=f"{mark} content"
                        + {"al-a1": f", C2 {IP_A}", "al-b1": f", C2 {IP_B}"}.get(sid, ""),
                        tags=[TiRef(id="tg1", name="ransomware")],
                        groups=[TiRef(id="gr1")],
                        category=TiRef(id="c1", name="Advisory"),
                        company_id=company,
                        version=1,
                    ),
                    integ,
                    sid,
                    version=1,
                )
            )
        return ev


@pytest_asyncio.fixture(scope="module")
async def env(migrated, tokens):
    """A tenant service with the read model's consumers on (the session's shared ``app`` runs with
    them off), two companies mapped, their data published on the bus."""
    app = create_app(migrated, verifier=tokens.verifier())
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenant.test")
        async with client:
            async for state in _world(app, client, migrated, tokens):
                yield state


async def _world(app, client, migrated, tokens):
    bus = Bus(migrated.amqp_url.get_secret_value(), service="readmodel-tests")
    await bus.connect()
    world = World()
    db = app.state.db
    world.a = await add_company(db, f"Acme {RUN}")
    world.b = await add_company(db, f"Globex {RUN}", is_default_sla=False)
    await set_company_sla(db, world.b, "P1", 1, 2, 3)
    await map_qradar(db, world.a, world.qradar, 101, volume=400, collectors=[1])
    await map_qradar(db, world.b, world.qradar, 202, volume_type="GB_PER_DAY", volume=10)
    await map_soar(db, world.a, world.soar, f"acme-{RUN}")
    await map_soar(db, world.b, world.soar, f"globex-{RUN}")
    await map_itsm(db, world.a, world.itsm, "11")
    await map_itsm(db, world.b, world.itsm, "22")
    world.ti_a = await add_ti_integration(db, world.a)
    world.ti_b = await add_ti_integration(db, world.b)
    await bus.publish(world.events())
    yield {"app": app, "client": client, "bus": bus, "world": world, "tokens": tokens}
    await bus.close()


def tenant(env: dict, company: str, permissions: list[str] | None = None) -> dict[str, str]:
    return env["tokens"].headers(kind="tenant", company_id=company, permissions=permissions)


def admin(env: dict) -> dict[str, str]:
    return env["tokens"].headers(kind="admin")


async def get(env: dict, path: str, headers: dict[str, str], expect: int = 200, **params: Any) -> Any:
    response = await env["client"].get(path, headers=headers, params=params)
    assert response.status_code == expect, (path, response.status_code, response.text[:500])
    return (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else response
    )


@pytest_asyncio.fixture(scope="module")
async def loaded(env):
    """Wait until every published record is visible."""
    w: World = env["world"]

    async def everything_in() -> bool:
        ha = tenant(env, w.a)
        checks = [
            ("/tenant/offenses/", 5),
            ("/tenant/soar-incidents/", 5),
            ("/tenant/itsm-tickets/", 2),
            ("/tenant/threat-alerts/", 2),
            ("/tenant/assets/", 3),
        ]
        for path, expected in checks:
            if (await get(env, path, ha))["total"] != expected:
                return False
        notes = (await get(env, "/tenant/soar-incidents/", ha, q=f"a1-{RUN}"))["items"]
        detail = await get(env, f"/tenant/soar-incidents/{notes[0]['id']}/", ha)
        eps = await get(env, "/tenant/eps/", ha)
        hb = tenant(env, w.b)
        return (
            bool(detail["notes"])
            and eps["items"][0]["samples"] == 3
            and (await get(env, "/tenant/offenses/", hb))["total"] == 1
            and (await get(env, "/tenant/threat-alerts/", hb))["total"] == 1
            and (await get(env, "/tenant/event-logs/event_counts/", ha))["total"] == 1
        )

    await eventually(everything_in, within=30)
    return env


async def test_offense_versions_out_of_order_and_twice_show_the_latest(loaded):
    env, w = loaded, loaded["world"]
    synced = offense(1, 101, MARK_A, version=1000, severity=5)
    updated = offense(1, 101, MARK_A, version=2000, severity=8, assigned_to="alice")
    closed = offense(
        1,
        101,
        MARK_A,
        version=3000,
        severity=8,
        assigned_to="alice",
        status=OffenseStatus.CLOSED,
        close_time=NOW,
        closing_reason="False-Positive",
    )
    mk = lambda o: event("siem.offense.upserted", o, w.qradar, "1", version=o.version, vendor_tenant=101)  # noqa: E731
    for batch in ([mk(closed)], [mk(synced)], [mk(updated), mk(closed)], [mk(synced), mk(updated)]):
        await env["bus"].publish(batch)
    ha = tenant(env, w.a)
    path = f"/tenant/offenses/by-qradar-id/{w.qradar}/1/"

    async def latest() -> bool:
        r = await env["client"].get(path, headers=ha)
        return r.status_code == 200 and r.json()["version"] == 3000

    await eventually(latest)
    # Let every re-delivered older version arrive too (the queue is FIFO: after the last publish
    # is visible, a marker event published afterwards proves the older ones were processed).
    marker = offense(8, 101, MARK_A, version=1, severity=0, status=OffenseStatus.CLOSED)
    await env["bus"].publish(
        [event("siem.offense.upserted", marker, w.qradar, "8", version=1, vendor_tenant=101)]
    )
    await eventually(lambda: _offense_visible(env, ha, w.qradar, 8))
    shown = await get(env, path, ha)
    assert shown["version"] == 3000 and shown["status"] == "CLOSED" and shown["severity"] == 8
    assert shown["assigned_to"] == "alice" and shown["closing_reason"] == "False-Positive"
    listed = [
        x for x in (await get(env, "/tenant/offenses/", ha, limit=100))["items"] if x["offense_id"] == 1
    ]
    assert len(listed) == 1 and listed[0]["status"] == "CLOSED"
    # The dashboard counts offense 1 once, as closed: the rollup followed the versions.
    dash = await get(env, "/tenant/dashboard/", ha)
    assert dash["offenses"]["by_status"]["CLOSED"] == 3 and dash["offenses"]["total"] == 7


async def test_offense_notes_arrive_on_their_own_in_any_order(loaded):
    """Notes are their own record: they may arrive before the offense, a later read replaces an
    earlier one whole (even delivered first), and another company never reads them."""
    from soc_shared.db import set_company_scope

    env, w = loaded, loaded["world"]
    note = lambda i, text: {"id": i, "text": f"{text} {MARK_A}", "create_time": NOW}  # noqa: E731
    first = SiemOffenseNotes(offense_id=41, domain_id=101, notes=[note(1, "first look")], version=10)
    later = SiemOffenseNotes(
        offense_id=41, domain_id=101, notes=[note(1, "first look"), note(2, "pen test")], version=20
    )
    mk = lambda n: event("siem.offense_notes.read", n, w.qradar, "41", version=n.version, vendor_tenant=101)  # noqa: E731
    await env["bus"].publish([mk(later)])
    await env["bus"].publish([mk(first)])
    await env["bus"].publish(
        [
            event(
                "siem.offense.upserted",
                offense(41, 101, MARK_A, version=5),
                w.qradar,
                "41",
                version=5,
                vendor_tenant=101,
            )
        ]
    )
    ha = tenant(env, w.a)
    path = f"/tenant/offenses/by-qradar-id/{w.qradar}/41/"

    async def shown() -> Any:
        r = await env["client"].get(path, headers=ha)
        return r.json() if r.status_code == 200 and r.json().get("notes") else None

    detail = await eventually(shown)
    assert [n["id"] for n in detail["notes"]] == [1, 2]
    async with env["app"].state.db.session() as session:
        await set_company_scope(session, w.b, is_admin=False)
        leaked = await session.execute(
            sa.text("SELECT count(*) FROM qradar_offense_notes WHERE offense_id = 41")
        )
        assert leaked.scalar_one() == 0
    async with env["app"].state.db.session() as session:
        await set_company_scope(session, w.a, is_admin=False)
        mine = await session.execute(
            sa.text("SELECT count(*) FROM qradar_offense_notes WHERE offense_id = 41")
        )
        assert mine.scalar_one() == 1


async def _offense_total(env: dict, headers: dict, expected: int) -> bool:
    return (await get(env, "/tenant/offenses/", headers))["total"] == expected


async def test_mapping_made_after_the_data_arrived_applies_to_it(loaded):
    env, w = loaded, loaded["world"]
    late = offense(77, 303, MARK_A, version=1, severity=6)
    await env["bus"].publish(
        [event("siem.offense.upserted", late, w.qradar, "77", version=1, vendor_tenant=303)]
    )

    async def stored() -> bool:
        items = (await get(env, "/tenant/offenses/", admin(env), domain_id=303))["items"]
        return any(x["offense_id"] == 77 and x["integration_id"] == w.qradar for x in items)

    await eventually(stored)
    ha = tenant(env, w.a)
    assert (
        await env["client"].get(f"/tenant/offenses/by-qradar-id/{w.qradar}/77/", headers=ha)
    ).status_code == 404
    other_company = await add_company(env["app"].state.db, f"Initech {RUN}")
    await map_qradar(env["app"].state.db, other_company, w.qradar, 303)
    hc = tenant(env, other_company)
    shown = await get(env, f"/tenant/offenses/by-qradar-id/{w.qradar}/77/", hc)
    assert shown["description"] == late.description
    listed = await get(env, "/tenant/offenses/", hc)
    assert [x["offense_id"] for x in listed["items"]] == [77] and listed["total"] == 1
    assert (await get(env, "/tenant/dashboard/", hc))["offenses"]["open"] == 1
    # ... and company A still does not see it.
    assert (
        await env["client"].get(f"/tenant/offenses/by-qradar-id/{w.qradar}/77/", headers=ha)
    ).status_code == 404


LIST_VIEWS = [
    "/tenant/qradar-tenants/",
    "/tenant/event-collectors/",
    "/tenant/soar-tenants/",
    "/tenant/itsm-tenants/",
    "/tenant/offenses/",
    "/tenant/offense-categories/",
    "/tenant/assets/",
    "/tenant/assets/counts/",
    "/tenant/assets/top-log-sources/",
    "/tenant/assets/per-tenant/",
    "/tenant/soar-incidents/",
    "/tenant/soar-incidents/all/",
    "/tenant/soar-incidents/recent/",
    "/tenant/soar-incidents/use-cases/",
    "/tenant/soar-incidents/summary/",
    "/tenant/soar-incidents/type-distribution/",
    "/tenant/soar-incidents/owner-distribution/",
    "/tenant/itsm-tickets/",
    "/tenant/itsm-tickets/totals/",
    "/tenant/threat-alerts/",
    "/tenant/ti-matches/",
    "/tenant/ti-matches/summary/",
    "/tenant/eps/",
    "/tenant/eps/graph/",
    "/tenant/event-logs/event_counts/",
    "/tenant/last-sync/",
    "/tenant/sla/incidents/",
    "/tenant/sla/compliance/",
    "/tenant/sla/severity-graph/",
    "/tenant/sla/severity-metrics/",
    "/tenant/sla/breached/",
    "/tenant/sla/overview/",
    "/tenant/dashboard/",
    "/tenant/reports/consolidated/",
    "/tenant/reports/detailed-incident/",
]


async def test_companies_never_see_each_others_rows(loaded):
    env, w = loaded, loaded["world"]
    for me, other_mark, mine, other in ((w.b, MARK_A, MARK_B, w.a), (w.a, MARK_B, MARK_A, w.b)):
        headers = tenant(env, me)
        for path in LIST_VIEWS:
            response = await env["client"].get(path, headers=headers)
            assert response.status_code == 200, (path, response.text[:300])
            assert other_mark not in response.text, f"{path} leaks the other company's rows"
            # Asking for the other company by id answers 404, as if it did not exist.
            assert (
                await env["client"].get(path, headers=headers, params={"company_id": other})
            ).status_code == 404
        # Each sees its own.
        for path in (
            "/tenant/offenses/",
            "/tenant/soar-incidents/",
            "/tenant/itsm-tickets/",
            "/tenant/threat-alerts/",
            "/tenant/assets/",
            "/tenant/qradar-tenants/",
            "/tenant/soar-tenants/",
            "/tenant/itsm-tenants/",
            "/tenant/event-collectors/",
        ):
            assert mine in (await env["client"].get(path, headers=headers)).text, path
    # Details of A's records by id are 404 for B.
    ha, hb = tenant(env, w.a), tenant(env, w.b)
    details = [
        ("/tenant/offenses/", "/tenant/offenses/{}/"),
        ("/tenant/offenses/", "/tenant/offenses/{}/ti-matches/"),
        ("/tenant/soar-incidents/", "/tenant/soar-incidents/{}/"),
        ("/tenant/soar-incidents/", "/tenant/soar-incidents/{}/ti-matches/"),
        ("/tenant/itsm-tickets/", "/tenant/itsm-tickets/{}/"),
        ("/tenant/itsm-tickets/", "/tenant/itsm-tickets/{}/ti-matches/"),
        ("/tenant/threat-alerts/", "/tenant/threat-alerts/{}/"),
    ]
    for list_path, detail in details:
        ids = [x["id"] for x in (await get(env, list_path, ha))["items"]]
        assert ids
        for pk in ids:
            assert (await env["client"].get(detail.format(pk), headers=ha)).status_code == 200
            response = await env["client"].get(detail.format(pk), headers=hb)
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert (
        await env["client"].get(f"/tenant/offenses/by-qradar-id/{w.qradar}/2/", headers=hb)
    ).status_code == 404
    # The matches embedded in the detail answers are each company's own: A's offense 2 and incident
    # a2 name A's alert; B's offense 900 names B's alert only, and B's lists never name A's alert.
    a_offenses = {x["offense_id"]: x["id"] for x in (await get(env, "/tenant/offenses/", ha))["items"]}
    shown = (await get(env, f"/tenant/offenses/{a_offenses[2]}/", ha))["ti_matches"]
    assert [(x["indicator"], x["alert_short_id"]) for x in shown] == [(IP_A, f"al-a1-{RUN}")]
    b_offense = (await get(env, "/tenant/offenses/", hb))["items"][0]
    shown_b = (await get(env, f"/tenant/offenses/{b_offense['id']}/", hb))["ti_matches"]
    assert [(x["indicator"], x["alert_short_id"]) for x in shown_b] == [(IP_B, f"al-b1-{RUN}")]
    for path in ("/tenant/ti-matches/", "/tenant/ti-matches/summary/", "/tenant/dashboard/"):
        assert IP_A not in (await env["client"].get(path, headers=hb)).text, path
    assert (await get(env, "/tenant/dashboard/", hb))["ti_matches"]["open_offenses_with_matches"] == 1


async def test_row_level_security_alone_hides_other_companies(loaded):
    """A query without any filter, on the API's role with B's scope, sees none of A's rows."""
    env, w = loaded, loaded["world"]
    from soc_shared.db import set_company_scope

    async with env["app"].state.app_db.session() as s:
        await set_company_scope(s, w.b, is_admin=False)
        for table, column in (
            ("qradar_offense", "description"),
            ("soar_incident", "name"),
            ("itsm_ticket", "subject"),
            ("ti_alert", "title"),
            ("qradar_log_source", "name"),
            ("soar_note", "content"),
            ("metric_sample", "rows::text"),
            ("qradar_domain", "name"),
            ("soar_account", "display_name"),
            ("itsm_account", "name"),
            ("qradar_event_collector", "name"),
        ):
            leaked = (
                await s.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE {column} LIKE :m"), {"m": f"%{MARK_A}%"}
                )
            ).scalar_one()
            assert leaked == 0, table
            own = (
                await s.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE {column} LIKE :m"), {"m": f"%{MARK_B}%"}
                )
            ).scalar_one()
            if table not in ("soar_note",):
                assert own >= 1, table
        for table in (
            "offense_daily",
            "incident_daily",
            "ticket_daily",
            "eps_sample",
            "offense_totals",
            "incident_totals",
            "ticket_totals",
        ):
            integrations = (
                (await s.execute(sa.text(f"SELECT DISTINCT integration_id FROM {table}"))).scalars().all()
            )
            assert set(integrations) <= {w.qradar, w.soar, w.itsm}
        # The API role cannot change the read model: its policies are SELECT-only.
        assert (await s.execute(sa.text("DELETE FROM qradar_offense"))).rowcount == 0
        assert (await s.execute(sa.text("UPDATE soar_incident SET name = 'x'"))).rowcount == 0


async def test_permissions_gate_assets_threat_intel_and_reports(loaded):
    env, w = loaded, loaded["world"]
    none = tenant(env, w.a, permissions=["DASHBOARD"])
    for path in (
        "/tenant/assets/",
        "/tenant/assets/counts/",
        "/tenant/assets/export/",
        "/tenant/assets/top-log-sources/",
        "/tenant/assets/per-tenant/",
        "/tenant/threat-alerts/",
        "/tenant/reports/incident/",
        "/tenant/soar-incidents/download/",
    ):
        response = await env["client"].get(path, headers=none)
        assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied", path
    assert (
        await env["client"].get("/tenant/offenses/", headers=none, params={"format": "csv"})
    ).status_code == 403
    assert (
        await env["client"].get("/tenant/dashboard/", headers=tenant(env, w.a, permissions=[]))
    ).status_code == 403
    dash = await get(env, "/tenant/dashboard/", none)
    assert dash["assets"] is None and dash["threat_alerts"] is None
    full = tenant(env, w.a)
    assert (await get(env, "/tenant/assets/", full))["total"] == 3
    assert (await get(env, "/tenant/threat-alerts/", full))["total"] == 2
    # Admin-only routes.
    for path in ("/admin/dead-letters/", "/admin/summary/assets/", "/admin/summary/sla-matrix/"):
        assert (await env["client"].get(path, headers=full)).status_code == 403


def expected_sla(inc: SoarIncident, targets: dict[str, tuple[int, int, int]]) -> dict[str, str]:
    level = inc.priority or ("P1" if inc.severity == IncidentSeverity.CRITICAL else "P4")
    tta, ttn, ttdn = targets[level]
    target = slamath.SlaTarget(level, tta, ttn, ttdn)
    out = slamath.incident_sla(
        inc.created, {"tta": inc.tta_at, "ttn": inc.ttn_at, "ttdn": inc.ttdn_at}, target, datetime.now(UTC)
    )
    return {s: out[s]["status"] for s in (*slamath.STEPS,)} | {"overall": out["overall"]}


DEFAULT_TARGETS = {"P1": (15, 30, 240), "P2": (30, 60, 480), "P3": (60, 120, 1440), "P4": (240, 480, 2880)}


async def test_sla_met_breached_and_pending_including_missing_timestamps(loaded):
    env, w = loaded, loaded["world"]
    ha = tenant(env, w.a)
    listed = {x["incident_id"]: x for x in (await get(env, "/tenant/sla/incidents/", ha, limit=100))["items"]}
    statuses = {
        k.split("-")[0]: {s: v["sla"][s]["status"] for s in slamath.STEPS} | {"overall": v["sla"]["overall"]}
        for k, v in listed.items()
    }
    assert statuses["a1"] == {"tta": "met", "ttn": "breached", "ttdn": "pending", "overall": "breached"}
    assert statuses["a2"] == {"tta": "pending", "ttn": "pending", "ttdn": "pending", "overall": "pending"}
    assert statuses["a3"] == {"tta": "met", "ttn": "met", "ttdn": "met", "overall": "met"}
    assert statuses["a4"] == {"tta": "breached", "ttn": "breached", "ttdn": "pending", "overall": "breached"}
    assert statuses["a5"] == {"tta": "pending", "ttn": "pending", "ttdn": "pending", "overall": "pending"}
    for key, inc in w.incidents.items():
        if key.startswith("a"):
            assert statuses[key] == expected_sla(inc, DEFAULT_TARGETS), key
    assert listed[f"a1-{RUN}"]["sla"]["tta"]["elapsed_minutes"] == 10.0
    assert listed[f"a5-{RUN}"]["priority"] == "P1"
    # Company B's own SLA (P1 TTA 1 minute) makes a 5-minute TTA a breach.
    hb = tenant(env, w.b)
    b1 = (await get(env, "/tenant/sla/incidents/", hb))["items"][0]
    assert b1["sla"]["tta"] == {"status": "breached", "elapsed_minutes": 5.0, "target_minutes": 1}
    detail = await get(env, f"/tenant/soar-incidents/{b1['id']}/", hb)
    assert detail["sla"]["tta"]["status"] == "breached" and detail["sla"]["source"] == "company"

    breached = await get(env, "/tenant/sla/breached/", ha)
    assert sorted(x["incident_id"].split("-")[0] for x in breached["items"]) == ["a1", "a4"]
    compliance = await get(env, "/tenant/sla/compliance/", ha)
    # Only a3 is a true positive (ITSM sync status Ready, all three times): the original's figures
    # count it alone; ours keep every incident's steps.
    assert (
        compliance["by_priority"]["P1"]["incidents"] == 2 and compliance["by_priority"]["P1"]["counted"] == 0
    )
    assert compliance["by_priority"]["P1"]["tta"] == {"met": 0, "breached": 0, "compliance_pct": None}
    assert compliance["by_priority"]["P1"]["ours"]["steps"]["tta"] == {
        "met": 1,
        "breached": 0,
        "pending": 1,
        "breaching": 0,
        "no_sla": 0,
        "no_start": 0,
    }
    assert compliance["by_priority"]["P3"]["counted"] == 1
    assert compliance["total"]["overall"] == {
        "fully_compliant": 1,
        "partially_compliant": 0,
        "non_compliant": 0,
        "compliance_pct": 100.0,
    }
    ours = compliance["total"]["ours"]
    assert ours["overall"]["met"] == 1 and ours["overall"]["breached"] == 2 and ours["not_counted"] == 4
    assert ours["steps"]["tta"]["breaching"] == 1  # a4: no TTA, a day past its 4 h target
    overview = await get(env, "/tenant/sla/overview/", ha)
    assert overview["total_incidents"] == 5 and overview["breached"] == 2 and overview["pending"] == 2
    assert overview["counted"] == 1 and overview["compliance_pct"] == 100.0
    assert overview["mtta_minutes"] == 20.0  # (10 + 30) / 2
    assert overview["mttr_minutes"] == 1200.0
    metrics = {x["priority"]: x for x in (await get(env, "/tenant/sla/severity-metrics/", ha))["items"]}
    assert (
        metrics["P1"]["incidents"] == 2
        and metrics["P1"]["counted"] == 0
        and metrics["P1"]["ttn_breached"] == 0  # a1's late TTN is not counted: not a true positive
        and metrics["P3"]["counted"] == 1
        and metrics["P3"]["ttdn_met"] == 1
    )
    graph = await get(env, "/tenant/sla/severity-graph/", ha)
    assert sum(sum(p["counts"].values()) for p in graph["points"]) == 5
    pending_only = await get(env, "/tenant/sla/incidents/", ha, sla_status="pending")
    assert {x["incident_id"].split("-")[0] for x in pending_only["items"]} == {"a2", "a5"}


async def test_dashboard_numbers_match_independent_counts(loaded):
    env, w = loaded, loaded["world"]
    hc = tenant(env, w.a)
    dash = await get(env, "/tenant/dashboard/", hc)
    # Independent counts straight from the base tables, through the owner role.
    async with env["app"].state.db.session() as s:
        open_by_sev = dict(
            (
                await s.execute(
                    sa.text(
                        "SELECT severity::text, count(*) FROM qradar_offense WHERE integration_id = :i AND domain_id = 101 "
                        "AND status = 'OPEN' GROUP BY 1"
                    ),
                    {"i": w.qradar},
                )
            ).all()
        )
        by_status = dict(
            (
                await s.execute(
                    sa.text(
                        "SELECT status, count(*) FROM soar_incident WHERE integration_id = :i AND account = :a GROUP BY 1"
                    ),
                    {"i": w.soar, "a": f"acme-{RUN}"},
                )
            ).all()
        )
        by_priority = dict(
            (
                await s.execute(
                    sa.text(
                        "SELECT priority, count(*) FROM soar_incident WHERE integration_id = :i AND account = :a GROUP BY 1"
                    ),
                    {"i": w.soar, "a": f"acme-{RUN}"},
                )
            ).all()
        )
        offenses_today = (
            await s.execute(
                sa.text(
                    "SELECT count(*) FROM qradar_offense WHERE integration_id = :i AND domain_id = 101 "
                    "AND (start_time AT TIME ZONE 'UTC')::date = (now() AT TIME ZONE 'UTC')::date"
                ),
                {"i": w.qradar},
            )
        ).scalar_one()
    assert dash["offenses"]["open_by_severity"] == {k: v for k, v in open_by_sev.items()}
    assert dash["offenses"]["open"] == sum(open_by_sev.values())
    assert dash["incidents"]["by_status"] == by_status and dash["incidents"]["by_priority"] == by_priority
    assert dash["incidents"]["total"] == 5 and dash["incidents"]["open"] == 4
    assert dash["tickets"] == {"total": 2, "open": 1, "overdue": 1, "closed": 1}
    assert dash["sla"]["counted"] == 1 and dash["sla"]["overall"]["fully_compliant"] == 1
    assert (
        dash["sla"]["by_priority"]["P1"]["breached"] == 1
        and dash["sla"]["by_priority"]["P4"]["breached"] == 1
    )
    assert (
        dash["assets"]["total"] == 3
        and dash["assets"]["enabled"] == 2
        and dash["assets"]["by_status"]["ERROR"] == 1
    )
    assert [a["short_id"] for a in dash["threat_alerts"]] == [f"al-a2-{RUN}", f"al-a1-{RUN}"]
    eps = dash["eps"]["tenants"][0]
    assert eps["average_eps"] == 200.0 and eps["peak_eps"] == 450.0 and eps["utilisation_pct"] == 50.0
    assert dash["trends"]["offenses"][-1] == offenses_today
    assert sum(dash["trends"]["incidents"]) == 5
    # The admin's view of the same company is the same.
    assert (await get(env, "/tenant/dashboard/", admin(env), company_id=w.a))["incidents"] == dash[
        "incidents"
    ]
    # An admin must pick a company for the dashboard.
    assert (await env["client"].get("/tenant/dashboard/", headers=admin(env))).json()["error"][
        "code"
    ] == "company_required"


async def test_cross_references_offense_incident_ticket(loaded):
    env, w = loaded, loaded["world"]
    ha = tenant(env, w.a)
    off = await get(env, f"/tenant/offenses/by-qradar-id/{w.qradar}/2/", ha)
    assert off["categories"] == ["Suspicious Activity", "Recon"] and off["rules"][0]["id"] == 100
    assert off["assets"][0]["log_source_id"] == 1001 and off["flows"]["source_address_ids"] == [1, 2]
    assert [x["incident_id"] for x in off["incidents"]] == [f"a1-{RUN}"]
    assert [x["ticket_id"] for x in off["incidents"][0]["tickets"]] == [f"t-a1-{RUN}"]
    inc = await get(env, f"/tenant/soar-incidents/{off['incidents'][0]['id']}/", ha)
    assert [x["offense_id"] for x in inc["offenses"]] == [2]
    assert [x["ticket_id"] for x in inc["tickets"]] == [f"t-a1-{RUN}"]
    assert inc["notes"][0]["content"] == f"{MARK_A} contained"
    assert inc["mitre"] == {"tactics": ["TA0001"], "techniques": ["T1566"], "alert_techniques": []}
    ticket = await get(env, f"/tenant/itsm-tickets/{inc['tickets'][0]['id']}/", ha)
    assert ticket["incident"]["incident_id"] == f"a1-{RUN}" and [
        x["offense_id"] for x in ticket["offenses"]
    ] == [2]
    by_id = await get(env, f"/tenant/offenses/{off['id']}/", ha)
    assert by_id["offense_id"] == 2
    alert = await get(env, "/tenant/threat-alerts/", ha, q="al-a1")
    detail = await get(env, f"/tenant/threat-alerts/{alert['items'][0]['id']}/", ha)
    assert detail["tags"][0]["slug"] == "ransomware" and detail["groups"][0]["group_tlp"] == "AMBER"
    assert detail["category"]["required_fields"] == ["title"]


async def test_lists_filter_sort_and_search_safely(loaded):
    env, w = loaded, loaded["world"]
    ha = tenant(env, w.a)
    high = await get(env, "/tenant/offenses/", ha, severity_min=7, status="OPEN", sort="-severity")
    assert [x["offense_id"] for x in high["items"]] == [2, 3] and high["total"] == 2
    page = await get(env, "/tenant/offenses/", ha, limit=2, offset=2, sort="offense_id")
    assert [x["offense_id"] for x in page["items"]] == [3, 4] and page["limit"] == 2 and page["offset"] == 2
    assert (await get(env, "/tenant/offenses/", ha, q="%"))["total"] == 0  # a literal %, not a wildcard
    assert (await get(env, "/tenant/offenses/", ha, q="_"))["total"] == 0
    assert (await get(env, "/tenant/offenses/", ha, q="offense 3"))["total"] == 1
    assert (await get(env, "/tenant/offenses/", ha, q="\x00"))["total"] >= 0
    recent = await get(env, "/tenant/soar-incidents/", ha, **{"from": (NOW - timedelta(hours=3)).isoformat()})
    assert {x["incident_id"].split("-")[0] for x in recent["items"]} == {"a1", "a2", "a5"}
    p1 = await get(env, "/tenant/soar-incidents/", ha, priority="P1")
    assert p1["total"] == 2
    overdue = await get(env, "/tenant/itsm-tickets/", ha, is_overdue="true", open="true")
    assert [x["ticket_id"] for x in overdue["items"]] == [f"t-a1-{RUN}"]
    # Bad input answers 4xx with the error shape, never 500.
    bad = [
        ("/tenant/offenses/", {"sort": "password"}, 400),
        ("/tenant/offenses/", {"limit": 0}, 422),
        ("/tenant/offenses/", {"limit": 10**6}, 422),
        ("/tenant/offenses/", {"offset": -1}, 422),
        ("/tenant/offenses/", {"from": "yesterday"}, 422),
        ("/tenant/offenses/", {"status": "BOGUS"}, 422),
        ("/tenant/offenses/", {"from": NOW.isoformat(), "to": (NOW - timedelta(days=1)).isoformat()}, 422),
        ("/tenant/offenses/", {"company_id": "not-a-uuid"}, 422),
        ("/tenant/offenses/", {"severity_min": 11}, 422),
        ("/tenant/offenses/99999999999999999999999/", {}, 422),
        ("/tenant/offenses/-1/", {}, 404),
        ("/tenant/event-logs/nope/", {}, 404),
        ("/tenant/reports/nope/", {}, 404),
        ("/tenant/soar-incidents/", {"priority": "P9"}, 422),
        ("/tenant/eps/", {"granularity": "minute"}, 422),
        ("/tenant/offenses/by-qradar-id/x/99999999999999999999/", {}, 422),
        ("/tenant/offenses/", {"q": "x" * 500}, 422),
        ("/tenant/itsm-tickets/", {"is_overdue": "maybe"}, 422),
    ]
    for path, params, status in bad:
        response = await env["client"].get(path, headers=ha, params=params)
        assert response.status_code == status, (path, params, response.status_code, response.text[:200])
        assert "error" in response.json()
    unknown = await env["client"].get(
        "/tenant/offenses/", headers=admin(env), params={"company_id": str(uuid.uuid4())}
    )
    assert unknown.status_code == 404


async def test_exports_csv_xlsx_pdf_and_json(loaded):
    env, w = loaded, loaded["world"]
    ha = tenant(env, w.a)
    response = await env["client"].get(
        "/tenant/offenses/", headers=ha, params={"format": "csv", "sort": "offense_id"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    ids = [int(r["offense_id"]) for r in rows]
    assert (
        ids == sorted(ids) and {2, 3, 4, 5, 6} <= set(ids) and all(MARK_A in r["description"] for r in rows)
    )
    for path in (
        "/tenant/soar-incidents/",
        "/tenant/itsm-tickets/",
        "/tenant/threat-alerts/",
        "/tenant/assets/",
        "/tenant/sla/incidents/",
        "/tenant/soar-tenants/",
        "/tenant/offense-categories/",
    ):
        response = await env["client"].get(path, headers=ha, params={"format": "csv"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv"), path
        assert MARK_A in response.text or path == "/tenant/offense-categories/", path
    xlsx = await env["client"].get("/tenant/assets/export/", headers=ha, params={"file_type": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert "spreadsheetml" in xlsx.headers["content-type"]
    assets_csv = await env["client"].get("/tenant/assets/export/", headers=ha)
    lines = assets_csv.content.decode("utf-8-sig").splitlines()
    assert len(lines) == 4 and all(MARK_A in line and "Servers" in line for line in lines[1:])
    for kind in ("incident", "detailed-incident", "eps", "assets", "consolidated"):
        pdf = await env["client"].get(f"/tenant/reports/{kind}/", headers=ha, params={"format": "pdf"})
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf", kind
        assert pdf.content.startswith(b"%PDF") and len(pdf.content) > 1000, kind
        as_json = await get(env, f"/tenant/reports/{kind}/", ha)
        assert as_json["kind"] == kind and as_json["company_id"] == w.a
    detailed = await get(env, "/tenant/reports/detailed-incident/", ha)
    assert len(detailed["incidents"]) == 5
    for file_type, content_type in (
        ("csv", "text/csv"),
        ("xlsx", "application/vnd.openxml"),
        ("json", "application/json"),
    ):
        response = await env["client"].get(
            "/tenant/soar-incidents/download/", headers=ha, params={"file_type": file_type}
        )
        assert response.status_code == 200 and response.headers["content-type"].startswith(content_type)
        assert len(response.content) > 100


async def test_vendor_tenant_views_for_admin_mapping(loaded):
    env, w = loaded, loaded["world"]
    everything = await get(env, "/tenant/qradar-tenants/", admin(env), limit=500)
    mine = [x for x in everything["items"] if x["integration_id"] == w.qradar]
    assert {x["domain_id"] for x in mine} >= {101, 202}
    assert {x["name"] for x in (await get(env, "/tenant/soar-tenants/", admin(env), limit=500))["items"]} >= {
        f"acme-{RUN}",
        f"globex-{RUN}",
    }
    only_a = await get(env, "/tenant/itsm-tenants/", admin(env), company_id=w.a)
    assert [x["account_id"] for x in only_a["items"]] == ["11"]
    a_domains = await get(env, "/tenant/qradar-tenants/", tenant(env, w.a))
    assert [(x["domain_id"], float(x["contracted_volume"])) for x in a_domains["items"]] == [(101, 400.0)]
    collectors = await get(env, "/tenant/event-collectors/", tenant(env, w.a))
    assert [x["collector_id"] for x in collectors["items"]] == [1]


async def test_admin_cross_company_summaries(loaded):
    env, w = loaded, loaded["world"]
    h = admin(env)
    prio = {x["company_id"]: x for x in (await get(env, "/admin/summary/incident-priority/", h))["items"]}
    assert prio[w.a]["by_priority"] == {"P1": 2, "P2": 1, "P3": 1, "P4": 1} and prio[w.b]["total"] == 1
    status = {x["company_id"]: x for x in (await get(env, "/admin/summary/incident-status/", h))["items"]}
    assert status[w.a]["by_status"] == {"active": 4, "closed": 1}
    done = {x["company_id"]: x for x in (await get(env, "/admin/summary/completion-status/", h))["items"]}
    assert done[w.a]["completion_pct"] == 20.0
    matrix = {x["company_id"]: x for x in (await get(env, "/admin/summary/sla-matrix/", h))["items"]}
    assert matrix[w.a]["priorities"]["P3"]["compliance_pct"] == 100.0
    assert matrix[w.b]["priorities"]["P1"]["tta_compliance_pct"] == 0.0
    eps = [
        x for x in (await get(env, "/admin/summary/eps-utilisation/", h))["items"] if x["company_id"] == w.b
    ]
    assert eps[0]["contracted_volume_type"] == "GB_PER_DAY" and eps[0]["utilisation_pct"] is not None
    assets = {x["company_id"]: x for x in (await get(env, "/admin/summary/assets/", h))["items"]}
    assert assets[w.a]["total"] == 3 and assets[w.a]["by_status"] == {"SUCCESS": 2, "ERROR": 1}


async def test_dead_letters_listed_and_replayed(loaded):
    env, w = loaded, loaded["world"]
    bus: Bus = env["bus"]
    h = admin(env)
    await bus.publish_raw(b'{"this": "is not an event"}', "siem.offense.upserted")

    async def parked() -> list:
        listing = await get(env, "/admin/dead-letters/", h, queue="tenant.siem")
        return [m for m in listing["items"] if "not a CloudEvents" in m["reason"]]

    poison = await eventually(parked)
    assert poison[0]["routing_key"] == "siem.offense.upserted"
    summary = {x["queue"]: x for x in (await get(env, "/admin/dead-letters/", h))["items"]}
    assert (
        summary["tenant.siem"]["parked"] >= 1
        and "siem.offense.upserted" in summary["tenant.siem"]["bindings"]
    )
    # A valid event parked earlier (say, while a cause was being fixed) is consumed when replayed.
    fixed = offense(555, 101, MARK_A, version=1, severity=2)
    parked_event = event("siem.offense.upserted", fixed, w.qradar, "555", version=1, vendor_tenant=101)
    await bus.publish_raw(
        bus.to_message(parked_event).body,
        "tenant.siem",
        exchange="soc.dlx",
        headers={"x-soc-dead-reason": "database was down", "x-soc-routing-key": "siem.offense.upserted"},
    )
    await eventually(lambda: _parked_count(env, h, 2))
    forbidden = await env["client"].post(
        "/admin/dead-letters/replay/", headers=tenant(env, w.a), json={"queue": "tenant.siem"}
    )
    assert forbidden.status_code == 403
    assert (
        await env["client"].post("/admin/dead-letters/replay/", headers=h, json={"queue": "nope"})
    ).status_code == 404
    replayed = await env["client"].post(
        "/admin/dead-letters/replay/", headers=h, json={"queue": "tenant.siem"}
    )
    assert replayed.status_code == 200 and replayed.json()["replayed"] >= 2
    ha = tenant(env, w.a)
    await eventually(lambda: _offense_visible(env, ha, w.qradar, 555))
    # The poison one is parked again, with its reason.
    await eventually(parked)


async def _parked_count(env: dict, headers: dict, at_least: int) -> bool:
    return (await get(env, "/admin/dead-letters/", headers, queue="tenant.siem"))["total"] >= at_least


async def _offense_visible(env: dict, headers: dict, integration_id: str, offense_id: int) -> bool:
    r = await env["client"].get(
        f"/tenant/offenses/by-qradar-id/{integration_id}/{offense_id}/", headers=headers
    )
    return r.status_code == 200


async def test_a_stopped_consumer_restarted_finds_every_event(loaded):
    env, w = loaded, loaded["world"]
    app = env["app"]
    await ingest.stop_consumers(app)
    try:
        batch = [offense(10_000 + n, 202, MARK_B, version=1, severity=1) for n in range(200)]
        await env["bus"].publish(
            [
                event("siem.offense.upserted", o, w.qradar, str(o.offense_id), version=1, vendor_tenant=202)
                for o in batch
            ]
        )
    finally:
        await ingest.start_consumers(app)
    hb = tenant(env, w.b)
    await eventually(lambda: _offense_total(env, hb, 201), within=30)
    assert (await get(env, "/tenant/dashboard/", hb))["offenses"]["total"] == 201


async def test_rollups_equal_a_rebuild_from_the_base_tables(loaded):
    env = loaded
    db = env["app"].state.db
    queries = {
        "offense_daily": "SELECT integration_id, domain_id, day, severity, status, n FROM offense_daily WHERE n <> 0",
        "incident_daily": "SELECT integration_id, account, day, priority, severity, status, n FROM incident_daily WHERE n <> 0",
        "incident_facet_daily": "SELECT integration_id, account, day, facet, value, n FROM incident_facet_daily WHERE n <> 0",
        "ticket_daily": "SELECT integration_id, account_id, day, status, priority, is_overdue, n FROM ticket_daily WHERE n <> 0",
        "offense_category_daily": "SELECT integration_id, domain_id, day, category, n FROM offense_category_daily WHERE n <> 0",
        "offense_totals": "SELECT integration_id, domain_id, severity, status, n FROM offense_totals WHERE n <> 0",
        "incident_totals": "SELECT integration_id, account, priority, severity, status, n FROM incident_totals WHERE n <> 0",
        "ticket_totals": "SELECT integration_id, account_id, status, priority, is_overdue, n FROM ticket_totals WHERE n <> 0",
    }
    async with db.session() as s:
        before = {k: sorted(map(tuple, (await s.execute(sa.text(q))).all())) for k, q in queries.items()}
    response = await env["client"].post("/admin/read-model/rebuild-rollups/", headers=admin(env))
    assert response.status_code == 200
    async with db.session() as s:
        after = {k: sorted(map(tuple, (await s.execute(sa.text(q))).all())) for k, q in queries.items()}
    assert before == after
