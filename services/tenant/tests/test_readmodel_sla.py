"""SLA arithmetic (pure functions) and the read model's other pure pieces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from soc_shared.events import IncidentSeverity, IncidentStatus, SiemOffense, SoarIncident, make_event
from soc_tenant.readmodel import ingest
from soc_tenant.readmodel.common import like_pattern
from soc_tenant.sla.rules import (
    BREACHED,
    MET,
    NO_SLA,
    NO_START,
    PENDING,
    SlaTarget,
    choose_target,
    compliance_pct,
    incident_sla,
    overall_status,
    step_status,
)

CREATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
P1 = SlaTarget("P1", 15, 30, 240)


def at(minutes: float) -> datetime:
    return CREATED + timedelta(minutes=minutes)


def test_a_step_done_within_the_target_is_met_even_on_the_last_second():
    assert step_status(CREATED, at(15), 15, now=at(1000)) == MET
    assert step_status(CREATED, at(3), 15, now=at(1000)) == MET


def test_a_step_done_late_is_breached():
    assert step_status(CREATED, at(15.01), 15, now=at(16)) == BREACHED


def test_a_missing_timestamp_within_the_target_is_pending():
    assert step_status(CREATED, None, 15, now=at(14)) == PENDING
    assert step_status(CREATED, None, 15, now=at(15)) == PENDING


def test_a_missing_timestamp_past_the_target_is_breached():
    assert step_status(CREATED, None, 15, now=at(15.5)) == BREACHED


def test_without_a_target_there_is_no_sla():
    assert step_status(CREATED, at(5), None, now=at(5)) == NO_SLA
    assert incident_sla(CREATED, {"tta": at(1)}, None, at(2))["overall"] == NO_SLA


def test_overall_is_the_worst_decided_state():
    assert overall_status([MET, PENDING, BREACHED]) == BREACHED
    assert overall_status([MET, PENDING]) == PENDING
    assert overall_status([MET, NO_SLA]) == MET
    assert overall_status([NO_SLA]) == NO_SLA


def test_incident_sla_reports_every_step_with_elapsed_and_deadline():
    out = incident_sla(CREATED, {"tta": at(10), "ttn": at(40), "ttdn": None}, P1, now=at(120))
    assert out["tta"] == {
        "status": MET,
        "elapsed_minutes": 10.0,
        "target_minutes": 15,
        "deadline": at(15).isoformat(),
    }
    assert out["ttn"]["status"] == BREACHED and out["ttn"]["elapsed_minutes"] == 40.0
    assert out["ttdn"]["status"] == PENDING and out["ttdn"]["elapsed_minutes"] is None
    assert out["overall"] == BREACHED and out["level"] == "P1"


def test_incidents_without_any_timestamp_are_kept_and_judged():
    young = incident_sla(CREATED, {}, P1, now=at(5))
    assert [young[s]["status"] for s in ("tta", "ttn", "ttdn")] == [PENDING] * 3
    old = incident_sla(CREATED, {}, P1, now=at(60))
    assert [old[s]["status"] for s in ("tta", "ttn", "ttdn")] == [BREACHED, BREACHED, PENDING]


def test_compliance_is_met_over_counted():
    assert compliance_pct(3, 4) == 75.0
    assert compliance_pct(0, 0) is None
    assert compliance_pct(1, 3) == 33.33


def test_without_a_clock_start_a_step_cannot_be_judged():
    assert step_status(None, at(5), 15, now=at(5)) == NO_START
    out = incident_sla(None, {"tta": at(1), "ttn": at(2), "ttdn": at(3)}, P1, at(4), true_positive=True)
    assert out["overall"] == NO_START and out["counted"] is False and out["compliance"] is None


def test_counted_only_when_a_true_positive_with_every_step_judged():
    done = {"tta": at(10), "ttn": at(20), "ttdn": at(300)}
    out = incident_sla(CREATED, done, P1, at(400), true_positive=True)
    assert out["counted"] and out["compliance"] == "partially_compliant"  # ttdn 300 > 240
    assert incident_sla(CREATED, done, P1, at(400), true_positive=False)["counted"] is False
    late = {"tta": at(16), "ttn": at(31), "ttdn": at(241)}
    assert incident_sla(CREATED, late, P1, at(400), true_positive=True)["compliance"] == "non_compliant"


def test_the_company_target_wins_only_when_the_company_is_off_the_default():
    defaults = {"P1": P1}
    own = SlaTarget("P1", 5, 10, 60, "company")
    account = SlaTarget("P1", 1, 2, 3, "company")
    overrides = [(None, None, own), ("xs", "acme", account)]
    assert choose_target("P1", "xs", "other", defaults, overrides, use_company=True) is own
    assert choose_target("P1", "xs", "acme", defaults, overrides, use_company=True) is account
    assert choose_target("P1", "xs", "acme", defaults, overrides, use_company=False) is P1
    assert choose_target("P2", "xs", "acme", defaults, overrides, use_company=True) is None


def offense_event(version: int, status: str = "OPEN"):
    o = SiemOffense(
        offense_id=1,
        domain_id=2,
        description="d\x00x",
        status=status,
        severity=5,
        magnitude=5,
        credibility=5,
        relevance=5,
        start_time=CREATED,
        last_updated_time=CREATED,
        version=version,
    )
    e = make_event(
        "siem.offense.upserted",
        o,
        source="/siem-ingest/qradar/q1",
        subject="1",
        vendor_version=version,
        integration_id="q1",
    )
    return e, o, "siem.offense.upserted"


def test_a_batch_keeps_the_highest_version_of_each_record_whatever_the_order():
    batch = [
        offense_event(3, "CLOSED"),
        offense_event(1),
        offense_event(2),
        offense_event(3, "CLOSED"),
        offense_event(1),
    ]
    [(target, rows)] = ingest.rows_by_target(batch)
    assert target.table == "qradar_offense" and len(rows) == 1
    row = dict(zip(target.columns, rows[0], strict=True))
    assert row["version"] == 3 and row["status"] == "CLOSED"
    assert row["description"] == "dx"  # NUL removed: PostgreSQL text cannot hold it


def test_the_upsert_never_lets_an_older_version_win():
    sql = ingest.TARGETS["siem.offense.upserted"].sql()
    # The offenses are partitioned by start_time: their unique key holds it.
    assert (
        "WHERE t.version <= EXCLUDED.version" in sql
        and "ON CONFLICT (integration_id, offense_id, start_time)" in sql
    )
    # XSOAR ids are per account: the account is part of the incident's and the note's key (and the
    # incidents are partitioned by created: their unique key holds it).
    assert (
        "ON CONFLICT (integration_id, account, incident_id, created)"
        in ingest.TARGETS["soar.incident.upserted"].sql()
    )
    assert "ON CONFLICT (integration_id, account, note_id)" in ingest.TARGETS["soar.note.added"].sql()


def test_incident_priority_falls_back_on_severity():
    inc = SoarIncident(
        incident_id="1",
        name="n",
        status=IncidentStatus.ACTIVE,
        severity=IncidentSeverity.CRITICAL,
        created=CREATED,
        modified=CREATED,
        version=1,
    )
    assert ingest.incident_priority(inc) == "P1"
    assert ingest.incident_priority(inc.model_copy(update={"severity": IncidentSeverity.LOW})) == "P4"
    assert ingest.incident_priority(inc.model_copy(update={"priority": "P3"})) == "P3"


def test_integration_id_comes_from_the_envelope_or_its_source():
    e, _, _ = offense_event(1)
    assert ingest.integration_of(e) == "q1"
    assert ingest.integration_of(e.model_copy(update={"integrationid": None})) == "q1"


def test_like_wildcards_are_escaped():
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"
