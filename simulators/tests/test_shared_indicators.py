"""The simulated estate shares a few indicators with its threat feed, as a real one does: some
Cyware advisories name addresses a few QRadar offenses come from and file hashes a few XSOAR
incidents carry — so the suite's threat-intel matching has real-looking matches to find (the demo).
Deterministic: the same seed names the same ones."""

from __future__ import annotations

from soc_simulators._common import KNOWN_BAD_IPS, KNOWN_BAD_SHA256
from soc_simulators.cyware import DEFAULT_TENANTS, CywareState
from soc_simulators.qradar import QRadarState
from soc_simulators.xsoar import XsoarSim


def test_offenses_and_incidents_name_a_few_indicators_the_threat_feed_names() -> None:
    cyware = CywareState(7, dict(DEFAULT_TENANTS), 120, None)
    named_ips: set[str] = set()
    named_hashes: set[str] = set()
    for tenant in cyware.tenants.values():
        sharing = 0
        for summary in tenant.alerts.values():
            content = cyware.detail(tenant, summary)["content"]
            ips = {ip for ip in KNOWN_BAD_IPS if f"<li>IP: {ip}</li>" in content}
            hashes = {h for h in KNOWN_BAD_SHA256 if f"<li>SHA-256: {h}</li>" in content}
            sharing += bool(ips)
            named_ips |= ips
            named_hashes |= hashes
        # some advisories, not most
        assert 0.1 * len(tenant.alerts) < sharing < 0.5 * len(tenant.alerts), sharing
    assert named_ips == set(KNOWN_BAD_IPS) and named_hashes == set(KNOWN_BAD_SHA256)

    offenses = list(QRadarState(7, offenses=300, anchor_ms=None, ariel_delay=0).offenses.values())
    from_known = [o for o in offenses if o["offense_source"] in KNOWN_BAD_IPS]
    assert 0 < len(from_known) < 0.15 * len(offenses), len(from_known)
    assert all(o["offense_type"] == 0 for o in from_known)  # the offense's source is an address

    incidents = [rec.doc for rec in XsoarSim(seed=7, profile="demo").records.values()]
    with_hash = [d for d in incidents if d["CustomFields"].get("filesha256") in KNOWN_BAD_SHA256]
    assert 0 < len(with_hash) < 0.15 * len(incidents), len(with_hash)

    # the same seed, the same indicators
    again = QRadarState(7, offenses=300, anchor_ms=None, ariel_delay=0).offenses.values()
    assert [o["offense_source"] for o in again if o["offense_source"] in KNOWN_BAD_IPS] == [
        o["offense_source"] for o in from_known
    ]


def test_recent_demo_incidents_naming_a_known_hash_are_still_being_worked() -> None:
    """The demo's dashboard counts open incidents with threat-intel matches: incidents of the last
    two weeks that carry a file hash the feed names stay in Analysis or Containment (active), older
    ones were closed like the rest of the history; the same seed, the same incidents."""
    from soc_simulators._common import MonotonicClock

    now_us = MonotonicClock(1_000_000).wall()
    window_us = 14 * 86_400 * 1_000_000

    def matched(sim: XsoarSim) -> list[tuple[str, bool, int, str]]:
        return [
            (rec.id, now_us - rec.created_us < window_us - 60_000_000, rec.doc["status"], rec.doc["phase"])
            for rec in sim.records.values()
            if rec.doc["CustomFields"].get("filesha256") in KNOWN_BAD_SHA256
        ]

    demo = matched(XsoarSim(seed=7, profile="demo"))
    recent = [m for m in demo if m[1]]
    assert len(recent) >= 2, demo
    assert all(status == 1 and phase in ("Analysis", "Containment") for _, _, status, phase in recent)
    older = [m for m in demo if not m[1]]
    assert sum(status == 2 for _, _, status, _ in older) > 0.8 * len(older)
    assert [m[0] for m in matched(XsoarSim(seed=7, profile="demo"))] == [m[0] for m in demo]
