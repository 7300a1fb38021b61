"""The XSOAR simulator's demo profile: the seeded history of a SOC that works to its contract."""

from __future__ import annotations

from collections import Counter

from soc_simulators.xsoar import _DAY_US, _MINUTE_US, XsoarSim

# The suite's default SLA targets in minutes (acknowledge, notify, resolve) per severity's priority.
TARGETS = {4: (15, 30, 240), 3: (30, 60, 480), 2: (60, 120, 1440), 1: (240, 480, 2880), 0.5: (240, 480, 2880)}


def overall(sim: XsoarSim) -> Counter[tuple[float, str]]:
    now = sim.clock.wall()
    outcome: Counter[tuple[float, str]] = Counter()
    for rec in sim.records.values():
        plan = rec.plan
        assert plan is not None
        steps = []
        for done, minutes in zip(
            (plan.tta_us, plan.ttn_us, plan.ttdn_us), TARGETS[plan.severity], strict=True
        ):
            # The portal's SLA clock starts when the event occurred (its default clock start).
            deadline = rec.occurred_us + minutes * _MINUTE_US
            steps.append(
                ("met" if done <= deadline else "breached")
                if done is not None
                else ("pending" if now <= deadline else "breached")
            )
        verdict = "breached" if "breached" in steps else "pending" if "pending" in steps else "met"
        outcome[(plan.severity, verdict)] += 1
    return outcome


def test_demo_history_mostly_meets_its_sla_with_a_few_breaches_per_priority() -> None:
    sim = XsoarSim(seed=7, profile="demo")
    outcome = overall(sim)
    for severity in (4, 3, 2, 1):
        met, breached = outcome[(severity, "met")], outcome[(severity, "breached")]
        assert met / (met + breached) > 0.75, (severity, met, breached)
        assert breached > 0, severity
    created = sorted(rec.created_us for rec in sim.records.values())
    assert created[-1] - created[0] > 80 * _DAY_US  # months of history
    open_share = sum(1 for rec in sim.records.values() if rec.closed_us is None) / len(sim.records)
    assert open_share < 0.1


def test_default_profile_keeps_its_slow_pace_for_the_ingestors_edge_cases() -> None:
    outcome = overall(XsoarSim(seed=7))
    met = sum(n for (_, verdict), n in outcome.items() if verdict == "met")
    breached = sum(n for (_, verdict), n in outcome.items() if verdict == "breached")
    assert met / (met + breached) < 0.2


def test_demo_severities_and_close_reasons_are_distributed_as_in_a_working_soc() -> None:
    records = list(XsoarSim(seed=7, profile="demo").records.values())
    severities = Counter(rec.doc["severity"] for rec in records)
    share = {s: n / len(records) for s, n in severities.items()}
    # Few critical incidents, most medium and low.
    assert 0.02 < share[4] < 0.09 and share[2] > share[3] > share[4], share
    assert share[1] + share[2] > 0.55, share
    closed = [rec.doc["closeReason"] for rec in records if rec.doc["status"] == 2]
    reasons = Counter(closed)
    # Most closures are true positives resolved or false positives; duplicates and others are few.
    assert set(reasons) == {"Resolved", "False Positive", "Duplicate", "Other"}, reasons
    assert (reasons["Resolved"] + reasons["False Positive"]) / len(closed) > 0.7, reasons
    assert reasons["Other"] < reasons["Duplicate"] < reasons["False Positive"] < reasons["Resolved"], reasons


def test_default_profile_keeps_its_severity_and_close_reason_mix() -> None:
    records = list(XsoarSim(seed=7).records.values())
    share4 = sum(1 for rec in records if rec.doc["severity"] == 4) / len(records)
    assert share4 > 0.06  # 10 % critical, as before
    reasons = Counter(rec.doc["closeReason"] for rec in records if rec.doc["status"] == 2)
    assert reasons["Other"] > 0.12 * sum(reasons.values())  # the uniform pick of five (one in five)
