"""The growing read-model tables partitioned by month of the vendor's time (migration 0020), their
partitions made ahead of time, and retention per company (``soc_tenant.readmodel.partitions``).

Runs on a database of its own: it is migrated to the revision before the partitioning, filled,
then upgraded (every row must survive), and the retention rounds drop whole partitions, which must
not touch the other tests' data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import pytest_asyncio
import sqlalchemy as sa
from soc_shared.db import Database, migrate
from soc_shared.events import (
    IncidentSeverity,
    IncidentStatus,
    OffenseNote,
    OffenseStatus,
    SiemEpsSample,
    SiemMetricSample,
    SiemOffense,
    SiemOffenseNotes,
    SoarIncident,
    SoarNote,
)
from soc_shared.provision import TENANT_APP_ROLE, admin_dsn, provision_database
from soc_shared.testing import TEST_DB
from soc_tenant.readmodel import ingest
from soc_tenant.readmodel.partitions import OFFENSES, maintain, month_start
from soc_tenant.readmodel.testing import MIGRATIONS, add_company, event, map_qradar, map_soar

BEFORE = "0019_filter_lookups"
NOW = datetime.now(UTC).replace(microsecond=0)
TABLES = {  # table: the order its rows are compared in
    "qradar_offense": "integration_id, offense_id",
    "eps_sample": "integration_id, domain_id, granularity, window_start, collector",
    "metric_sample": "integration_id, domain_id, family, granularity, window_start",
    "soar_incident": "integration_id, account, incident_id",
}
KEYS = {
    "qradar_offense": "RANGE (start_time)",
    "eps_sample": "RANGE (window_start)",
    "metric_sample": "RANGE (window_start)",
    "soar_incident": "RANGE (created)",
}


def dsn(settings) -> str:
    return settings.database_url().replace("postgresql+psycopg://", "postgresql://")


def fingerprint(conn: psycopg.Connection, table: str) -> tuple[int, str]:
    """Row count and a digest of every row's every column, in key order."""
    return conn.execute(
        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {TABLES[table]}), '')) FROM {table} t"
    ).fetchone()


OLD_ROWS = [
    # 2,000 offenses over the last two years, one from nine years ago (beyond the monthly
    # partitions made: the default partition) and one dated next month
    """INSERT INTO qradar_offense (integration_id, offense_id, domain_id, description, status, severity, magnitude,
        credibility, relevance, categories, start_time, last_updated_time, close_time, version, notes,
        last_persisted_time)
    SELECT 'old-qradar', g, 1 + g % 3, 'offense ' || g || ' from 10.0.0.' || (g % 250), 'OPEN', 1 + g % 10, 5, 3, 4,
        jsonb_build_array('Recon', 'Malware ' || (g % 4)),
        CASE g WHEN 1 THEN now() - interval '9 years' WHEN 2 THEN date_trunc('month', now()) + interval '40 days'
               ELSE now() - (g * interval '8 hours') END,
        now(), CASE WHEN g % 2 = 0 THEN now() END, g, CASE WHEN g % 5 = 0 THEN '[{"id": 1}]'::jsonb END, now()
    FROM generate_series(1, 2000) g""",
    """INSERT INTO eps_sample (integration_id, domain_id, granularity, window_start, window_end, average_eps,
        peak_eps, version)
    SELECT 'old-qradar', 1, 'hour', date_trunc('hour', now()) - h * interval '1 hour',
        date_trunc('hour', now()) - (h - 1) * interval '1 hour', h, 2 * h, 1
    FROM generate_series(0, 3000) h""",
    """INSERT INTO metric_sample (integration_id, domain_id, family, granularity, window_start, window_end, rows,
        version)
    SELECT 'old-qradar', 1, f, 'day', date_trunc('day', now()) - d * interval '1 day',
        date_trunc('day', now()) - (d - 1) * interval '1 day', jsonb_build_array(jsonb_build_object('n', d)), 1
    FROM unnest(ARRAY['event_counts', 'dos']) f, generate_series(0, 500) d""",
    """INSERT INTO soar_incident (integration_id, incident_id, account, name, status, severity, created, modified,
        priority, mitre_tactics, version)
    SELECT 'old-xsoar', g::text, 'acct' || (g % 2), 'incident ' || g, 'active', 'high',
        now() - (g * interval '1 day'), now(), 'P2', '["TA0001"]', 1
    FROM generate_series(1, 700) g""",
]


@pytest.fixture(scope="module")
def upgraded(settings):
    """A database filled before the partitioning, then upgraded: (settings, fingerprints before)."""
    name = f"{TEST_DB}_partitions"
    provision_database(name, fresh=True)
    s = settings.model_copy(update={"db_name": name})
    migrate(s, MIGRATIONS, BEFORE)
    with psycopg.connect(dsn(s), autocommit=True) as conn:
        for stmt in OLD_ROWS:
            conn.execute(stmt)
        before = {t: fingerprint(conn, t) for t in TABLES}
        before["max_id"] = conn.execute("SELECT max(id) FROM qradar_offense").fetchone()[0]
        before["max_incident_id"] = conn.execute("SELECT max(id) FROM soar_incident").fetchone()[0]
        conn.execute(ingest.REBUILD_ROLLUPS[0])
        for stmt in ingest.REBUILD_ROLLUPS[1:]:
            conn.execute(stmt)
    migrate(s, MIGRATIONS, "head")
    yield s, before
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def db(upgraded):
    database = Database.from_settings(upgraded[0])
    yield database
    await database.dispose()


def test_an_upgrade_keeps_every_row_and_partitions_the_tables(upgraded):
    settings, before = upgraded
    with psycopg.connect(dsn(settings), autocommit=True) as conn:
        for table in TABLES:
            assert fingerprint(conn, table) == before[table], table
            kind, key = conn.execute(
                "SELECT c.relkind, pg_get_partkeydef(c.oid) FROM pg_class c WHERE c.oid = %s::regclass",
                (table,),
            ).fetchone()
            assert kind == "p"
            assert key == KEYS[table]
            # row-level security on the parent, forced on the owner too, with both policies
            assert conn.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass", (table,)
            ).fetchone() == (True, True)
            policies = conn.execute(
                "SELECT policyname FROM pg_policies WHERE tablename = %s", (table,)
            ).fetchall()
            assert sorted(p for (p,) in policies) == ["owner_trusted", "readmodel_isolation"]
            # the API role reads the parent only (under its policies), never a partition
            parts = [
                p
                for (p,) in conn.execute(
                    "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
                    (table,),
                )
            ]
            assert f"{table}_default" in parts and f"{table}_p{NOW:%Y%m}" in parts
            assert f"{table}_p{month_start(NOW, 3):%Y%m}" in parts  # three months ahead
            assert conn.execute(
                "SELECT has_table_privilege(%s, %s, 'SELECT')", (TENANT_APP_ROLE, table)
            ).fetchone() == (True,)
            for part in parts:
                assert conn.execute(
                    "SELECT has_table_privilege(%s, %s, 'SELECT') OR has_table_privilege(%s, %s, 'INSERT')",
                    (TENANT_APP_ROLE, part, TENANT_APP_ROLE, part),
                ).fetchone() == (False,), part
        # the nine-year-old offense is in the default partition, next month's in its own
        assert conn.execute(
            "SELECT offense_id, tableoid::regclass::text FROM qradar_offense WHERE offense_id IN (1, 2) ORDER BY 1"
        ).fetchall() == [(1, "qradar_offense_default"), (2, f"qradar_offense_p{month_start(NOW, 1):%Y%m}")]
        # offense numbers go on from the same sequence
        conn.execute(
            "INSERT INTO qradar_offense (integration_id, offense_id, domain_id, description, status, severity, "
            "magnitude, credibility, relevance, start_time, last_updated_time, version) "
            "VALUES ('old-qradar', 9999, 1, 'new', 'OPEN', 1, 1, 1, 1, now(), now(), 1)"
        )
        new_id = conn.execute("SELECT id FROM qradar_offense WHERE offense_id = 9999").fetchone()[0]
        assert new_id > before["max_id"]
        conn.execute("DELETE FROM qradar_offense WHERE offense_id = 9999")
        conn.execute(
            "INSERT INTO soar_incident (integration_id, incident_id, account, name, status, severity, created, "
            "modified, priority, version) VALUES ('old-xsoar', 'new', 'acct0', 'n', 'active', 'low', now(), now(), "
            "'P4', 1)"
        )
        new_id = conn.execute("SELECT id FROM soar_incident WHERE incident_id = 'new'").fetchone()[0]
        assert new_id > before["max_incident_id"]
        conn.execute("DELETE FROM soar_incident WHERE incident_id = 'new'")


def offense(
    offense_id: int, domain_id: int, start: datetime, version: int = 1, severity: int = 5
) -> SiemOffense:
    return SiemOffense(
        offense_id=offense_id,
        domain_id=domain_id,
        description=f"offense {offense_id} from 81.2.69.{offense_id % 250}",
        status=OffenseStatus.OPEN,
        severity=severity,
        magnitude=5,
        credibility=3,
        relevance=4,
        categories=["Recon"],
        start_time=start,
        last_updated_time=start + timedelta(seconds=version),
        version=version,
    )


async def store(db: Database, integration_id: str, *payloads) -> None:
    deliveries = []
    for n, p in enumerate(payloads):
        rk = {
            SiemOffense: "siem.offense.upserted",
            SiemOffenseNotes: "siem.offense_notes.read",
            SiemEpsSample: "siem.eps.sampled",
            SiemMetricSample: "siem.metric.sampled",
            SoarIncident: "soar.incident.upserted",
            SoarNote: "soar.note.added",
        }[type(p)]
        tenant = p.account if isinstance(p, (SoarIncident, SoarNote)) else p.domain_id
        ev = event(rk, p, integration_id, f"s{n}", version=getattr(p, "version", None), vendor_tenant=tenant)
        deliveries.append((ev, p, rk))
    await ingest.store(db, deliveries)


async def rows(db: Database, sql: str, **params) -> list[tuple]:
    async with db.session() as s:
        return [tuple(r) for r in (await s.execute(sa.text(sql), params)).all()]


async def test_the_consumer_upserts_on_the_partition_key(db):
    q = str(uuid.uuid4())
    start = NOW - timedelta(days=3)
    await store(db, q, offense(7, 1, start, version=1, severity=3))
    await store(db, q, offense(7, 1, start, version=2, severity=9))
    await store(db, q, offense(7, 1, start, version=1, severity=1))  # older: ignored
    assert await rows(db, "SELECT severity, version FROM qradar_offense WHERE integration_id = :q", q=q) == [
        (9, 2)
    ]
    assert await rows(
        db, "SELECT severity, n FROM offense_totals WHERE integration_id = :q AND n <> 0", q=q
    ) == [(9, 1)]


async def test_partitions_are_made_ahead_and_take_the_default_partitions_rows(db, upgraded):
    settings = upgraded[0]
    q = str(uuid.uuid4())
    later = month_start(NOW, 6) + timedelta(days=2)
    await store(db, q, offense(1, 1, later))
    where = "SELECT tableoid::regclass::text FROM qradar_offense WHERE integration_id = :q"
    assert await rows(db, where, q=q) == [("qradar_offense_default",)]
    done = await maintain(db, settings.model_copy(update={"partition_months_ahead": 6}))
    made = f"qradar_offense_p{later:%Y%m}"
    assert made in done.created and f"metric_sample_p{later:%Y%m}" in done.created
    assert await rows(db, where, q=q) == [(made,)]  # moved, not copied
    assert await rows(db, "SELECT has_table_privilege(:r, :t, 'SELECT')", r=TENANT_APP_ROLE, t=made) == [
        (False,)
    ]
    again = await maintain(db, settings.model_copy(update={"partition_months_ahead": 6}))
    assert again.created == [] and again.dropped == []


async def test_a_company_past_its_retention_loses_those_records_only(db, upgraded):
    settings = upgraded[0]
    q = str(uuid.uuid4())
    a = await add_company(db, f"Keeps 30 days {q[:6]}")
    b = await add_company(db, f"Keeps for ever {q[:6]}")
    await map_qradar(db, a, q, 11)
    await map_qradar(db, b, q, 22)
    async with db.session() as s:
        await s.execute(sa.text("INSERT INTO record_retention (company_id, days) VALUES (:c, 30)"), {"c": a})
    young, old = NOW - timedelta(days=10), NOW - timedelta(days=100)
    payloads = []
    for domain, base in ((11, 100), (22, 200)):
        payloads += [
            offense(base + 1, domain, young),
            offense(base + 2, domain, old),
            offense(base + 3, domain, old - timedelta(hours=1)),
            offense(base + 4, domain, old - timedelta(days=1)),
            SiemOffenseNotes(
                offense_id=base + 2,
                domain_id=domain,
                notes=[OffenseNote(id=1, text="looked", create_time=old)],
                version=1,
            ),
        ]
        for at in (young, old):
            window = at.replace(minute=0, second=0)
            payloads += [
                SiemEpsSample(
                    domain_id=domain,
                    granularity="hour",
                    window_start=window,
                    window_end=window + timedelta(hours=1),
                    average_eps=1,
                    peak_eps=2,
                ),
                SiemMetricSample(
                    family="event_counts",
                    domain_id=domain,
                    granularity="hour",
                    window_start=window,
                    window_end=window + timedelta(hours=1),
                    rows=[{"count": 1}],
                ),
            ]
    await store(db, q, *payloads)
    offenses = "SELECT domain_id, offense_id FROM qradar_offense WHERE integration_id = :q ORDER BY 1, 2"
    observed = (
        "SELECT scope, record_key FROM ti_observable WHERE integration_id = :q AND record_type = 'offense' "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    everything = await rows(db, offenses, q=q)
    assert len(everything) == 8 and len(await rows(db, observed, q=q)) == 8
    untouched = {
        t: await rows(db, f"SELECT count(*) FROM {t}") for t in ("company", "qradar_mapping", "ti_alert")
    }

    # A bounded round: one statement of one row per table.
    bounded = settings.model_copy(update={"record_retention_batch": 1, "record_retention_max_batches": 1})
    first = await maintain(db, bounded, NOW)
    assert first.deleted["qradar_offense"] == 1 and first.dropped == []
    assert await rows(db, offenses, q=q) == [x for x in everything if x != (11, 104)]  # the oldest first

    done = await maintain(db, settings, NOW)
    assert done.dropped == []  # a company keeps its records for ever: no partition can go
    assert await rows(db, offenses, q=q) == [(11, 101), (22, 201), (22, 202), (22, 203), (22, 204)]
    assert await rows(db, observed, q=q) == [
        ("11", "101"),
        ("22", "201"),
        ("22", "202"),
        ("22", "203"),
        ("22", "204"),
    ]
    assert await rows(
        db, "SELECT domain_id, offense_id FROM qradar_offense_notes WHERE integration_id = :q ORDER BY 1", q=q
    ) == [(22, 202)]
    for table in ("eps_sample", "metric_sample"):
        kept = await rows(
            db,
            f"SELECT domain_id, window_start < :cut FROM {table} WHERE integration_id = :q ORDER BY 1, 2",
            q=q,
            cut=NOW - timedelta(days=30),
        )
        assert kept == [(11, False), (22, False), (22, True)], table
    # the dashboards' rollups follow the records
    totals = "SELECT domain_id, sum(n) FROM offense_totals WHERE integration_id = :q GROUP BY 1 ORDER BY 1"
    assert await rows(db, totals, q=q) == [(11, 1), (22, 4)]
    daily = "SELECT domain_id, sum(n) FROM offense_daily WHERE integration_id = :q GROUP BY 1 ORDER BY 1"
    assert await rows(db, daily, q=q) == [(11, 1), (22, 4)]
    assert {t: await rows(db, f"SELECT count(*) FROM {t}") for t in untouched} == untouched
    # nothing left to do
    assert set((await maintain(db, settings, NOW)).deleted.values()) == {0}


async def test_a_partition_past_every_retention_is_dropped_whole(db, upgraded):
    settings = upgraded[0]
    # The upgraded rows belong to no company: the deployment's retention (400 days) applies to them,
    # and every company gets one of its own, so months that ended 400 days ago can go whole.
    async with db.session() as s:
        await s.execute(
            sa.text(
                "INSERT INTO record_retention (company_id, days) SELECT id, 200 FROM company "
                "ON CONFLICT (company_id) DO NOTHING"
            )
        )
    horizon = NOW - timedelta(days=400)
    expired = await rows(
        db,
        "SELECT count(*) FROM qradar_offense WHERE integration_id = 'old-qradar' AND start_time < :m",
        m=month_start(horizon),
    )
    kept = await rows(
        db,
        "SELECT count(*) FROM qradar_offense WHERE integration_id = 'old-qradar' AND start_time >= :m",
        m=month_start(horizon),
    )
    assert expired[0][0] > 100 and kept[0][0] > 100
    done = await maintain(db, settings.model_copy(update={"record_retention_days": 400}), NOW)
    gone = {f"qradar_offense_p{month_start(horizon, -k):%Y%m}" for k in range(1, 4)}
    assert gone <= set(done.dropped)
    assert f"qradar_offense_p{month_start(horizon):%Y%m}" not in done.dropped  # still partly within 400 days
    parts = {p for (p,) in await rows(db, "SELECT inhrelid::regclass::text FROM pg_inherits")}
    assert not gone & parts and "qradar_offense_default" in parts
    # the dropped months' rows are gone (the default partition's nine-year-old one stays: no
    # company's vendor tenant, never dropped with a partition), the rest is there
    assert await rows(
        db,
        "SELECT count(*) FROM qradar_offense WHERE integration_id = 'old-qradar' AND start_time < :m",
        m=month_start(horizon),
    ) == [(1,)]
    assert (
        await rows(
            db,
            "SELECT count(*) FROM qradar_offense WHERE integration_id = 'old-qradar' AND start_time >= :m",
            m=month_start(horizon),
        )
        == kept
    )
    # and the rollups equal a rebuild from what is left
    assert await rows(
        db, "SELECT sum(n) FROM offense_totals WHERE integration_id = 'old-qradar'"
    ) == await rows(db, "SELECT count(*) FROM qradar_offense WHERE integration_id = 'old-qradar'")
    assert OFFENSES.table == "qradar_offense"


async def test_an_administrator_sets_a_companys_record_retention(client, headers):
    h = headers(kind="admin")
    ids = []
    for n in range(2):
        r = await client.post(
            "/admin/companies/", json={"name": f"Retains {n} {uuid.uuid4().hex[:8]}"}, headers=h
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    own = headers(kind="tenant", company_id=ids[0], roles=["TENANT_ADMIN"])
    path = f"/admin/companies/{ids[0]}/record-retention/"
    assert (await client.put(path, json={"days": 30}, headers=own)).status_code == 403
    r = await client.put(path, json={"days": 0}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"]
    r = await client.put(f"/admin/companies/{uuid.uuid4()}/record-retention/", json={"days": 30}, headers=h)
    assert r.status_code == 404
    for company_id, days in ((ids[0], 30), (ids[1], 90)):
        r = await client.put(
            f"/admin/companies/{company_id}/record-retention/", json={"days": days}, headers=h
        )
        assert r.status_code == 200, r.text
    assert r.json()["default_days"] == 0
    assert {"company_id": ids[0], "days": 30} in r.json()["companies"]
    # a tenant administrator sees their own company's only
    mine = await client.get("/admin/record-retention/", headers=own)
    assert mine.status_code == 200 and mine.json()["companies"] == [{"company_id": ids[0], "days": 30}]
    r = await client.put(path, json={"days": None}, headers=h)
    assert r.status_code == 200
    assert ids[0] not in {c["company_id"] for c in r.json()["companies"]}
    assert (await client.get("/admin/record-retention/", headers=own)).json()["companies"] == []


def incident(incident_id: str, account: str, created: datetime, version: int = 1) -> SoarIncident:
    return SoarIncident(
        incident_id=incident_id,
        account=account,
        name=f"incident {incident_id} from 81.2.69.160",
        status=IncidentStatus.ACTIVE,
        severity=IncidentSeverity.HIGH,
        created=created,
        modified=created + timedelta(minutes=version),
        priority="P2",
        mitre_tactics=["TA0001"],
        version=version,
    )


async def test_incidents_past_a_companys_retention_go_with_their_notes_and_terms(db, upgraded):
    settings = upgraded[0]
    x = str(uuid.uuid4())
    a = await add_company(db, f"Incidents 30 days {x[:6]}")
    b = await add_company(db, f"Incidents for ever {x[:6]}")
    await map_soar(db, a, x, "acme")
    await map_soar(db, b, x, "globex")
    async with db.session() as s:
        await s.execute(sa.text("INSERT INTO record_retention (company_id, days) VALUES (:c, 30)"), {"c": a})
    young, old = NOW - timedelta(days=5), NOW - timedelta(days=90)
    payloads = []
    for account in ("acme", "globex"):
        payloads += [incident("1", account, young), incident("2", account, old)]
        payloads.append(SoarNote(note_id="n1", incident_id="2", account=account, created=old, content="seen"))
    await store(db, x, *payloads)
    await store(db, x, incident("2", "acme", old, version=2))  # a later version: still one row
    incidents = "SELECT account, incident_id FROM soar_incident WHERE integration_id = :x ORDER BY 1, 2"
    assert await rows(db, incidents, x=x) == [("acme", "1"), ("acme", "2"), ("globex", "1"), ("globex", "2")]
    terms = "SELECT account, count(*) FROM soar_incident_term WHERE integration_id = :x GROUP BY 1 ORDER BY 1"
    assert await rows(db, terms, x=x) == [("acme", 2), ("globex", 2)]

    await maintain(db, settings, NOW)
    assert await rows(db, incidents, x=x) == [("acme", "1"), ("globex", "1"), ("globex", "2")]
    assert await rows(db, "SELECT account FROM soar_note WHERE integration_id = :x", x=x) == [("globex",)]
    assert await rows(db, terms, x=x) == [("acme", 1), ("globex", 2)]
    observed = (
        "SELECT scope, record_key FROM ti_observable WHERE integration_id = :x AND record_type = 'incident' "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert await rows(db, observed, x=x) == [("acme", "1"), ("globex", "1"), ("globex", "2")]
    totals = "SELECT account, sum(n) FROM incident_totals WHERE integration_id = :x GROUP BY 1 ORDER BY 1"
    assert await rows(db, totals, x=x) == [("acme", 1), ("globex", 2)]
    daily = "SELECT account, sum(n) FROM incident_daily WHERE integration_id = :x GROUP BY 1 ORDER BY 1"
    assert await rows(db, daily, x=x) == [("acme", 1), ("globex", 2)]


async def test_two_replicas_maintaining_at_once_make_each_partition_once(db, upgraded):
    import asyncio

    settings = upgraded[0].model_copy(update={"partition_months_ahead": 9})
    other = Database.from_settings(upgraded[0])
    try:
        first, second = await asyncio.gather(maintain(db, settings), maintain(other, settings))
    finally:
        await other.dispose()
    made = f"qradar_offense_p{month_start(NOW, 9):%Y%m}"
    assert (first.created + second.created).count(made) == 1
