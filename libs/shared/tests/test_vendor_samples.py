"""Every recorded vendor payload in the repository's fixtures is listed in SOURCES.md and parses
into the shape its endpoint answers (the services' own tests normalise them further)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from soc_shared.testing import VENDOR_SAMPLES

FILES = sorted(p for p in VENDOR_SAMPLES.rglob("*.json"))


def _load(name: str) -> Any:
    return json.loads((VENDOR_SAMPLES / name).read_text())


def test_the_fixtures_live_in_the_repository_and_sources_lists_each_one() -> None:
    repo = Path(__file__).resolve().parents[3]
    assert VENDOR_SAMPLES.is_relative_to(repo) and len(FILES) >= 28
    listed = set(
        re.findall(
            r"^\| ((?:qradar|sdp|xsoar)/[a-z0-9_]+\.json) \|",
            (VENDOR_SAMPLES / "SOURCES.md").read_text(),
            re.M,
        )
    )
    on_disk = {p.relative_to(VENDOR_SAMPLES).as_posix() for p in FILES}
    assert listed == on_disk


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(VENDOR_SAMPLES).as_posix())
def test_every_recorded_payload_is_json_with_content(path: Path) -> None:
    body = json.loads(path.read_text())
    assert body not in (None, [], {}, "")


def test_qradar_offense_answers_carry_the_fields_sync_reads() -> None:
    for name in ("siem_offenses", "siem_offenses_modified_since"):
        for offense in _load(f"qradar/{name}.json"):
            assert isinstance(offense["id"], int) and offense["status"] in ("OPEN", "HIDDEN", "CLOSED")
            assert isinstance(offense["last_updated_time"], int)
    modified = _load("qradar/siem_offenses_modified_since.json")
    # what makes persisted time the sync key: a close months after the last event
    closed = next(o for o in modified if o["status"] == "CLOSED")
    assert closed["close_time"] > closed["last_updated_time"]
    assert all(o["last_persisted_time"] >= o["last_updated_time"] for o in modified)
    update = _load("qradar/siem_offenses_update.json")
    assert update["id"] == 16 and update["follow_up"] is True


def test_qradar_address_answers_name_the_ids_offenses_carry() -> None:
    """``siem/source_addresses`` and ``siem/local_destination_addresses``: the address behind an id an
    offense's ``source_address_ids`` / ``local_destination_address_ids`` hold."""
    for name, field, other in (
        ("siem_source_addresses", "source_ip", "local_destination_address_ids"),
        ("siem_local_destination_addresses", "local_destination_ip", "source_address_ids"),
    ):
        rows = _load(f"qradar/{name}.json")
        assert rows and all(isinstance(r["id"], int) and isinstance(r[field], str) for r in rows)
        assert all(isinstance(r["offense_ids"], list) and isinstance(r[other], list) for r in rows)


def test_qradar_notes_rules_assets_and_ariel_answers() -> None:
    notes = _load("qradar/siem_offenses_notes.json")
    assert all(set(n) == {"id", "note_text", "create_time", "username"} for n in notes)
    created = _load("qradar/siem_offenses_notes_create.json")
    assert set(created) == set(notes[0]) and created["username"].startswith("API_user: ")
    rules = _load("qradar/analytics_rules.json")
    assert all("id" in r and "name" in r for r in rules)
    assets = _load("qradar/asset_model_assets.json")
    assert all("id" in a and "domain_id" in a for a in assets)
    assert all(isinstance(i, str) for i in _load("qradar/ariel_searches_list.json"))
    for name in ("ariel_searches_create", "ariel_searches_create_aggregate"):
        assert _load(f"qradar/{name}.json")["status"] in ("WAIT", "EXECUTE", "COMPLETED")
    zero = _load("qradar/ariel_searches_status_completed_zero_records.json")
    assert zero["status"] == "COMPLETED" and zero["record_count"] == 0
    rows = _load("qradar/ariel_searches_results_aggregate.json")
    assert isinstance(rows["events"], list)
    error = _load("qradar/error_401_no_sec_header.json")
    assert error["http_response"]["code"] == 401 and error["code"] == 18
    assert _load("qradar/system_about.json")["external_version"]


def _sdp_ok(body: dict[str, Any]) -> None:
    status = body["response_status"]
    entries = status if isinstance(status, list) else [status]
    assert all(e["status_code"] == 2000 and e["status"] == "success" for e in entries)


def test_sdp_answers_report_success_and_carry_requests() -> None:
    for name in ("api_v3_requests_get", "api_v3_requests_create", "api_v3_requests_update"):
        body = _load(f"sdp/{name}.json")
        _sdp_ok(body)
        assert body["request"]["id"] and body["request"]["subject"] is not None
    for name in ("api_v3_requests_list", "api_v3_requests_list_search_criteria"):
        body = _load(f"sdp/{name}.json")
        _sdp_ok(body)
        assert body["requests"] and all(r["id"] for r in body["requests"])
    criteria = _load("sdp/api_v3_requests_list_search_criteria.json")
    assert isinstance(criteria["response_status"], list) and "list_info" in criteria
    link = _load("sdp/api_v3_requests_link_requests.json")
    _sdp_ok(link)
    assert link["response_status"]["messages"]


def test_zoho_token_refresh_answer() -> None:
    token = _load("sdp/zoho_oauth_v2_token_refresh.json")
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert token["access_token"] and token["api_domain"].startswith("https://")


def test_xsoar_references() -> None:
    swagger = _load("xsoar/server_api_swagger.json")
    assert swagger["swagger"] == "2.0" and "/incidents/search" in swagger["paths"]
    batch = _load("xsoar/incident_batch.json")
    assert batch["data"] and batch["data"][0]["id"]
