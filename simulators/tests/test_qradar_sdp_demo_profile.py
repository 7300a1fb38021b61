"""The QRadar and ServiceDesk Plus simulators' demo profile: three months of a SOC on top of its
queue (trends and period changes show, most requests within their SLA), while the default profile
keeps the frequent edge cases the ingestors' tests rely on."""

from __future__ import annotations

from collections import Counter

from soc_simulators import qradar, sdp, xsoar

DAY_MS = 86_400_000
PERIOD_MS = 30 * DAY_MS


def offenses(profile: str) -> tuple[int, list[dict]]:
    state = qradar.create_app(seed=7, profile=profile).state.sim
    return state.anchor_ms, list(state.offenses.values())


def closed_share_of_old(now: int, records: list[dict]) -> float:
    old = [o for o in records if now - o["last_updated_time"] > 7 * DAY_MS]
    return sum(o["status"] == "CLOSED" for o in old) / len(old)


def test_qradar_demo_spans_three_months_with_old_offenses_closed() -> None:
    now, records = offenses("demo")
    periods = Counter((now - o["start_time"]) // PERIOD_MS for o in records)
    # Each 30-day period has offenses (a dashboard's change against the previous period shows),
    # more recently than long ago (offenses bunch toward the present).
    assert set(periods) == {0, 1, 2}
    assert periods[0] > periods[1] > periods[2] > 0.2 * len(records)
    assert closed_share_of_old(now, records) > 0.9
    open_now = sum(o["status"] == "OPEN" for o in records)
    assert 0.05 * len(records) < open_now < 0.2 * len(records)  # a backlog, not a pile
    reasons = Counter(o["closing_reason_id"] for o in records if o["status"] == "CLOSED")
    assert len(reasons) > 1  # closing reasons mixed as the default's weights say


def test_qradar_default_keeps_its_30_days_and_open_offenses() -> None:
    now, records = offenses("default")
    assert len(records) == 300
    assert all(now - o["start_time"] <= PERIOD_MS for o in records)
    assert closed_share_of_old(now, records) < 0.85


def met_shares(sim: sdp.SdpSim) -> tuple[float, float]:
    response = resolution = responded = resolved = 0
    for rec in sim.records.values():
        plan = rec.plan
        assert plan is not None
        due_hours, response_hours = sdp.DUE_HOURS[plan.priority]
        steps = dict(plan.steps)
        if "In Progress" in steps:
            responded += 1
            response += steps["In Progress"] - rec.created_ms <= response_hours * 3_600_000
        if "Resolved" in steps:
            resolved += 1
            resolution += steps["Resolved"] - rec.created_ms <= due_hours * 3_600_000
    return response / responded, resolution / resolved


def test_sdp_demo_mostly_meets_its_sla_over_three_months_and_escalates_the_demo_incidents() -> None:
    sim = sdp.SdpSim(7, profile="demo")
    response, resolution = met_shares(sim)
    assert 0.9 < response < 1 and 0.9 < resolution < 1  # mostly met, a few missed
    now = sim.clock.wall()
    periods = Counter((now - rec.created_ms) // PERIOD_MS for rec in sim.records.values())
    assert set(periods) == {0, 1, 2} and min(periods.values()) > 0.2 * len(sim.records)
    # The escalated tickets are those of the XSOAR simulator's demo history (make up runs both).
    incidents = {
        (rec.account, rec.doc["id"]): rec.doc["name"]
        for rec in xsoar.XsoarSim(7, profile="demo").records.values()
    }
    by_soar_account = {account.id: account.soar_account for account in sim.accounts.values()}
    linked = [rec for rec in sim.records.values() if rec.plan is not None and rec.plan.soar is not None]
    assert len(linked) > 100
    for rec in linked:
        soar_id = rec.plan.soar[0]
        assert (by_soar_account[rec.account_id], soar_id) in incidents, soar_id


def test_sdp_default_keeps_its_late_requests() -> None:
    response, resolution = met_shares(sdp.SdpSim(7))
    assert response < 0.9 and resolution < 0.9
