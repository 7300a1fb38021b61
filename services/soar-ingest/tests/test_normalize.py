"""XSOAR JSON → SoarIncident / SoarNote / SoarAccount, value by value.

There is no public recording of XSOAR incident answers in vendor-samples (only the server's
Swagger, against which the simulator is validated in test_simulator_contract.py), so the payloads
here are written in the shape the Swagger and the seed's deployment give: nanosecond times, Go's
zero time for unset ones, labels, and the deployment's CustomFields.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from soc_shared.events import SoarIncident, make_event
from soc_shared.vendor_http import VendorError
from soc_soar_ingest import normalize
from soc_soar_ingest.config import Settings
from soc_soar_ingest.resources import SyncOptions

INCIDENT = {
    "id": "4127",
    "version": 9,
    "account": "acc_globex",
    "name": "QRadar Offense 3391: Excessive Firewall Denies Between Hosts",
    "type": "Network",
    "status": 2,
    "severity": 3,
    "owner": "m.chen",
    "playbookId": "QRadar Generic",
    "investigationId": "4127",
    "created": "2024-05-01T08:15:02.123456789Z",
    "modified": "2024-05-02T11:00:00.5+02:00",
    "occurred": "2024-05-01T07:59:00Z",
    "closed": "2024-05-02T08:59:59.999999Z",
    "activated": "0001-01-01T00:00:00Z",
    "closeReason": "Resolved",
    "closeNotes": "Blocked at the perimeter.",
    "closingUserId": "m.chen",
    "phase": "Closure",
    "sla": 0,
    "labels": [{"type": "Brand", "value": "QRadar v3"}, {"type": "offense_id", "value": "3391"}],
    "CustomFields": {
        "incidentphase": "Closure",
        "incidentpriority": "P2",
        "incidenttta": "2024-05-01T08:30:00Z",
        "incidentttn": "2024-05-01T09:10:00.250Z",
        "incidentttdn": "2024-05-02T06:00:00Z",
        "initialnotification": True,
        "listofrulesoffense": [
            "Excessive Firewall Denies Between Hosts",
            {"name": "Port Scan Detected from Internal Host", "offenseid": 3392},
        ],
        "offenseid": "3391",
        "logsourcetype": ["Palo Alto PA Series"],
        "sourceips": ["10.21.4.7", "10.21.4.8"],
        "sourceipoffense": "10.21.4.8, 45.9.1.2",
        "mitretactics": "Discovery",
        "mitretechnique": "T1046 - Network Service Discovery",
        "qradarcategory": "Access",
        "qradarsubcategory": "Firewall Deny",
        "lowlevelcategoriesevents": ["Firewall Deny", "ACL Deny"],
        "configurationitem": "globex-fw-edge03",
        "itsmsyncstatus": "Synced",
        "ttacalculation": {"runStatus": "ended", "sla": 30, "totalDuration": 898},
    },
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_closed_incident_normalises_field_by_field() -> None:
    incident = normalize.incident(INCIDENT)
    assert incident.incident_id == "4127"
    assert incident.account == "globex"  # the master's acc_ prefix dropped: /acc_globex/ addresses it
    assert incident.name == "QRadar Offense 3391: Excessive Firewall Denies Between Hosts"
    assert incident.type == "Network"
    assert incident.status == "closed" and incident.severity == "high"
    assert incident.owner == "m.chen" and incident.playbook_id == "QRadar Generic"
    assert incident.investigation_id == "4127"
    assert incident.created == utc(2024, 5, 1, 8, 15, 2, 123456)  # nanoseconds truncated to µs
    assert incident.modified == utc(2024, 5, 2, 9, 0, 0, 500000)  # +02:00 → UTC
    assert incident.occurred == utc(2024, 5, 1, 7, 59)
    assert incident.closed == utc(2024, 5, 2, 8, 59, 59, 999999)
    assert incident.close_reason == "Resolved" and incident.close_notes == "Blocked at the perimeter."
    assert incident.closing_user_id == "m.chen"
    assert incident.phase == "Closure" and incident.priority == "P2"
    assert incident.tta_at == utc(2024, 5, 1, 8, 30)
    assert incident.ttn_at == utc(2024, 5, 1, 9, 10, 0, 250000)
    assert incident.ttdn_at == utc(2024, 5, 2, 6)
    assert incident.initial_notification_at is None  # the deployment stores a flag, not a time
    assert incident.rules == [
        "Excessive Firewall Denies Between Hosts",
        "Port Scan Detected from Internal Host",
    ]
    assert incident.offense_ids == [3391, 3392]  # offenseid, the label (same), a rule entry's own id
    assert incident.log_source_types == ["Palo Alto PA Series"]
    assert incident.source_ips == ["10.21.4.7", "10.21.4.8", "45.9.1.2"]
    assert incident.mitre_tactics == ["Discovery"]
    assert incident.mitre_techniques == ["T1046 - Network Service Discovery"]
    assert incident.qradar_category == "Access" and incident.qradar_subcategory == "Firewall Deny"
    assert incident.low_level_categories == ["Firewall Deny", "ACL Deny"]
    assert incident.configuration_item == "globex-fw-edge03" and incident.itsm_sync_status == "Synced"
    assert incident.sla == 0
    assert incident.custom_fields["ttacalculation"] == {"runStatus": "ended", "sla": 30, "totalDuration": 898}
    assert incident.version == 9


def test_an_incident_without_sla_timestamps_is_kept() -> None:
    raw = copy.deepcopy(INCIDENT)
    raw.update(status=1, closed="0001-01-01T00:00:00Z", closeReason="")
    for field in ("incidenttta", "incidentttn", "incidentttdn"):
        del raw["CustomFields"][field]
    incident = normalize.incident(raw)
    assert incident.tta_at is None and incident.ttn_at is None and incident.ttdn_at is None
    assert incident.status == "active" and incident.closed is None and incident.close_reason is None
    event = make_event(
        "soar.incident.upserted",
        incident,
        source="/soar-ingest/xsoar/t",
        subject="globex/4127",
        vendor_version=incident.version,
    )
    assert SoarIncident.model_validate(event.data).tta_at is None  # it travels, pending, not dropped


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "pending"), (1, "active"), (2, "closed"), (3, "archived"), (1.0, "active"), ("2", "closed")],
)
def test_status_numbers(value: object, expected: str) -> None:
    assert normalize.status(value) == expected


def test_an_undocumented_status_follows_the_close_time() -> None:
    assert normalize.status(7) == "active"
    assert normalize.status(7, closed=utc(2024, 1, 1)) == "closed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "unknown"),
        (0.5, "informational"),
        (1, "low"),
        (2, "medium"),
        (3, "high"),
        (4, "critical"),
        (None, "unknown"),
        ("x", "unknown"),
    ],
)
def test_severity_numbers(value: object, expected: str) -> None:
    assert normalize.severity(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("P1", "P1"),
        ("p3", "P3"),
        ("4", "P4"),
        (2, "P2"),
        ("P5", None),
        ("High", None),
        # The original product's labels.
        ("P1 Critical", "P1"),
        ("P2 High", "P2"),
        ("p3 medium", "P3"),
        ("P4 Low", "P4"),
        ("P2 - High", "P2"),
        ("P1 Criticality", None),
        ("P5 Low", None),
        (None, None),
        (True, None),
    ],
)
def test_priority_values(value: object, expected: str | None) -> None:
    assert normalize.priority(value) == expected


def test_version_falls_back_to_the_modification_time_in_ms() -> None:
    raw = {k: v for k, v in INCIDENT.items() if k != "version"}
    assert normalize.incident(raw).version == 1714640400500  # 2024-05-02T09:00:00.5Z


def test_go_zero_time_and_empty_values_mean_none() -> None:
    assert normalize.parse_time("0001-01-01T00:00:00Z") is None
    assert normalize.parse_time("") is None and normalize.parse_time(None) is None
    assert normalize.parse_time("not a time") is None
    assert normalize.parse_time(1714640400500) == utc(2024, 5, 2, 9, 0, 0, 500000)
    assert normalize.parse_time("2024-05-02 09:00:00") == utc(2024, 5, 2, 9)


def test_nanosecond_times_order_exactly() -> None:
    a = normalize.parse_time_ns("2024-05-02T09:00:00.000000100Z")
    b = normalize.parse_time_ns("2024-05-02T09:00:00.000000200Z")
    assert b - a == 100
    assert normalize.parse_time_ns("2024-05-02T11:00:00+02:00") == normalize.parse_time_ns(
        "2024-05-02T09:00:00Z"
    )
    assert normalize.format_time_ns(b) == "2024-05-02T09:00:00.000000200Z"
    assert (
        normalize.format_time_ns(normalize.parse_time_ns("2024-05-02T09:00:00.5Z"))
        == "2024-05-02T09:00:00.500000Z"
    )


def test_the_field_mapping_is_configuration() -> None:
    raw = copy.deepcopy(INCIDENT)
    raw["CustomFields"].update(
        slaacknowledged="2024-05-01T08:45:00Z", customerpriority="1", notifiedat="2024-05-01T09:00:00Z"
    )
    mapping = normalize.build_field_map(
        {
            "tta_at": "slaacknowledged",  # one source
            "priority": ["nosuchfield", "customerpriority"],  # first source with a value wins
            "initial_notification_at": "notifiedat",
            "mitre_tactics": None,  # switched off
            "offense_ids": ["label:offense_id"],
            "phase": "incident:phase",
        }
    )
    incident = normalize.incident(raw, mapping)
    assert incident.tta_at == utc(2024, 5, 1, 8, 45)
    assert incident.priority == "P1"
    assert incident.initial_notification_at == utc(2024, 5, 1, 9)
    assert incident.mitre_tactics == []
    assert incident.offense_ids == [3391]
    assert incident.phase == "Closure"
    assert incident.ttn_at == utc(2024, 5, 1, 9, 10, 0, 250000)  # untouched entries keep the default
    assert normalize.build_field_map(None) is normalize.DEFAULT_FIELD_MAP


def test_a_mapping_typo_is_refused() -> None:
    with pytest.raises(ValueError, match="tta"):
        normalize.build_field_map({"tta": "incidenttta"})
    with pytest.raises(ValueError, match="source"):
        normalize.build_field_map({"tta_at": ""})
    with pytest.raises(VendorError) as caught:
        SyncOptions.from_settings({"field_map": {"ttx_at": "x"}}, Settings())
    assert caught.value.category == "invalid_request"


def test_sync_options_from_integration_settings() -> None:
    options = SyncOptions.from_settings(
        {
            "field_map": {"tta_at": "x"},
            "accounts": ["acc_acme", "globex"],
            "page_size": 5000,
            "overlap_seconds": 2,
        },
        Settings(),
    )
    assert options.field_map.sources["tta_at"] == ("x",)
    assert options.accounts == {"acme", "globex"}
    assert options.page_size == 1000  # XSOAR's limit
    assert options.overlap_ns == 2_000_000_000
    assert options.fetch_notes is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", [12]),
        ("12, 13", [12, 13]),
        (14, [14]),
        (["15", 16.0, True], [15, 16]),
        ("Offense 17: Multiple Login Failures", [17]),
        ("offense id #18", [18]),
        ("Multiple Login Failures for the Same User", []),
        ({"name": "Rule", "id": 100045}, []),  # a rule's own id is not an offense id
        ({"name": "Rule", "offense_id": "19"}, [19]),
    ],
)
def test_offense_ids_are_found_in_every_form(value: object, expected: list[int]) -> None:
    raw = {"id": "1", "modified": "2024-01-01T00:00:00Z", "CustomFields": {"listofrulesoffense": value}}
    assert normalize.incident(raw).offense_ids == expected


def test_a_note_entry() -> None:
    entry = {
        "id": "7@4127",
        "investigationId": "4127",
        "created": "2024-05-01T09:12:00.000000001Z",
        "modified": "2024-05-01T09:12:00Z",
        "user": "m.chen",
        "contents": "Blocked 45.9.1.2 on the firewall.",
        "category": "chat",
        "note": True,
        "deleted": False,
        "version": 2,
    }
    note = normalize.note(entry, incident_id="4127", account="acc_globex")
    assert note is not None
    assert (note.note_id, note.incident_id, note.account, note.author) == (
        "7@4127",
        "4127",
        "globex",
        "m.chen",
    )
    assert note.created == utc(2024, 5, 1, 9, 12) and note.content == "Blocked 45.9.1.2 on the firewall."
    assert note.category == "chat" and normalize.entry_version(entry) == 2
    assert normalize.note({**entry, "note": False}, incident_id="4127", account=None) is None
    assert normalize.note({**entry, "deleted": True}, incident_id="4127", account=None) is None
    structured = normalize.note(
        {**entry, "contents": {"verdict": "benign"}}, incident_id="4127", account=None
    )
    assert structured is not None and structured.content == '{"verdict": "benign"}'


def test_an_account() -> None:
    account = normalize.soar_account("acc_acme", "acme", "Acme Corporation")
    assert account.model_dump() == {
        "account_id": "acc_acme",
        "name": "acme",
        "display_name": "Acme Corporation",
    }
    assert normalize.account_name("acc_acme") == "acme" and normalize.account_name("") is None


def test_an_incident_without_id_or_modified_time_is_refused() -> None:
    with pytest.raises(ValueError):
        normalize.incident({"modified": "2024-01-01T00:00:00Z"})
    with pytest.raises(ValueError):
        normalize.incident({"id": "1", "modified": "0001-01-01T00:00:00Z"})
