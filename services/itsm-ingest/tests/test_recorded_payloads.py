"""Recorded ServiceDesk Plus payloads (vendor-samples/sdp) parse and normalise exactly; the
response_status error shape maps to clear categories; the ticket request a new incident gets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from soc_itsm_ingest import normalize
from soc_itsm_ingest.client import SdpClient, TicketPosition, error_from_body, sdp_error
from soc_shared.events import make_event
from soc_shared.vendor_http import VendorErrorCategory


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def test_recorded_list_normalises_exactly(kit: Any) -> None:
    body = kit.sample("api_v3_requests_list.json")
    assert body["list_info"] == {"has_more_rows": True, "start_index": 1, "row_count": 3}
    first, second = (normalize.ticket(r) for r in body["requests"])
    assert first.ticket_id == "123640000000215007" and first.subject == "request 1"
    assert first.status == "Open" and first.priority is None and first.is_overdue is False
    assert first.created_time == ms(1591618056240)
    # The default list view has no last_updated_time column: the creation time stands in.
    assert first.version == 1591618056240 and first.last_updated_time == ms(1591618056240)
    assert first.created_by_name == "First Last"  # no created_by in the list: the requester
    assert first.account_id is None and first.account_name is None and first.soar_incident_id is None
    assert (second.ticket_id, second.subject, second.version) == (
        "123640000000216003",
        "check request outputs",
        1591617944664,
    )
    event = make_event(
        "itsm.ticket.upserted",
        first,
        source="/itsm-ingest/sdp/i1",
        subject=first.ticket_id,
        vendor_version=first.version,
        integration_id="i1",
    )
    assert event.type == "soc.itsm.ticket.upserted.v1" and event.data["status"] == "Open"


def test_recorded_create_answer_normalises_exactly(kit: Any) -> None:
    body = kit.sample("api_v3_requests_create.json")
    assert body["response_status"] == {"status_code": 2000, "status": "success"}
    assert error_from_body(body, 201) is None
    ticket = normalize.ticket(body["request"])
    assert ticket.ticket_id == "123456789" and ticket.subject == "Create request test"
    assert ticket.short_description is None  # the create answer has a description, no short one
    assert (ticket.status, ticket.priority, ticket.is_overdue) == ("On Hold", "High", False)
    assert ticket.created_time == ms(1593000300533)
    assert ticket.last_updated_time == ms(1593000300679) and ticket.version == 1593000300679
    assert ticket.created_by_name == "First Last" and ticket.soar_incident_id is None  # udf_fields is {}


def test_incident_id_comes_from_the_configured_field(kit: Any) -> None:
    raw = kit.sample("api_v3_requests_create.json")["request"]
    raw = {
        **raw,
        "udf_fields": {"udf_sline_4506": "8812", "udf_sline_9": "other"},
        "account": {"id": "301001", "name": "Acme Corporation"},
    }
    assert normalize.ticket(raw).soar_incident_id == "8812"
    assert normalize.ticket(raw, incident_id_field="udf_fields.udf_sline_9").soar_incident_id == "other"
    linked = normalize.ticket(raw)
    assert (linked.account_id, linked.account_name) == ("301001", "Acme Corporation")


def test_account_normalises() -> None:
    account = normalize.account(
        {"id": "123640000000301001", "name": "Acme Corporation", "email_id": "it@acme.example"}
    )
    assert (account.account_id, account.name) == ("123640000000301001", "Acme Corporation")


def test_new_ticket_fields_link_the_incident_and_map_the_priority(kit: Any) -> None:
    incident = kit.incident("4711", priority="P2")
    fields = normalize.request_fields(
        subject=normalize.ticket_subject(incident),
        description=normalize.ticket_description(incident),
        incident_id="4711",
        account_id="301001",
        priority="P2",
        defaults={
            "group": {"name": "SOC L1"},
            "udf_fields": {"udf_sline_1": "x"},
            "account": {"id": "ignored"},
        },
    )
    assert fields["subject"] == "Security incident #4711: Brute force on VPN"
    assert fields["priority"] == {"name": "High"} and fields["account"] == {"id": "301001"}
    assert fields["udf_fields"] == {"udf_sline_1": "x", "udf_sline_4506": "4711"}
    assert fields["group"] == {"name": "SOC L1"}
    assert (
        "Cortex XSOAR incident 4711 (P2" in fields["description"] and "203.0.113.7" in fields["description"]
    )
    custom = normalize.request_fields(
        subject="s",
        description="",
        incident_id="1",
        account_id="a",
        priority="P1",
        priority_map={"P1": "Critical"},
        incident_id_field="custom_id",
    )
    assert custom["priority"] == {"name": "Critical"} and custom["custom_id"] == "1"


def _failure(
    status: int, code: int, message: str, field: str | None = None, as_list: bool = False
) -> httpx.Response:
    detail: dict[str, Any] = {"status_code": code, "type": "failed", "message": message}
    if field:
        detail["field"] = field
    status_obj = {"status_code": 4000, "messages": [detail], "status": "failed"}
    body = {"response_status": [status_obj] if as_list else status_obj}
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


def test_response_status_errors_map_to_clear_categories() -> None:
    cases = {
        (401, 4022): VendorErrorCategory.BAD_CREDENTIALS,
        (403, 4002): VendorErrorCategory.PERMISSION,
        (404, 4007): VendorErrorCategory.NOT_FOUND,
        (429, 4015): VendorErrorCategory.RATE_LIMITED,
        (400, 4001): VendorErrorCategory.INVALID_REQUEST,
        (400, 4012): VendorErrorCategory.INVALID_REQUEST,
        (500, 4000): VendorErrorCategory.SERVER_ERROR,
    }
    for (status, code), category in cases.items():
        for as_list in (False, True):
            error = sdp_error(_failure(status, code, "vendor says no", as_list=as_list))
            assert error is not None and error.category is category, (status, code)
            assert (
                error.status == status
                and error.vendor_code == str(code)
                and "vendor says no" in error.message
            )
    invalid = sdp_error(_failure(400, 4001, "Value given for priority is not valid", field="priority"))
    assert invalid is not None and invalid.details == {"field": "priority"} and not invalid.retryable
    assert "(field priority)" in invalid.message
    assert sdp_error(httpx.Response(502, content=b"<html>proxy</html>")) is None  # default mapping decides


async def test_a_failed_status_in_a_200_answer_is_an_error_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return _failure(200, 4002, "Not authorised to view accounts", as_list=True)

    client = SdpClient(
        "https://sdp.example", integration_id="i1", token="k", transport=httpx.MockTransport(handler)
    )
    try:
        try:
            await client.list_page("accounts", "accounts", {"row_count": 1})
        except Exception as exc:  # noqa: BLE001 - asserted below
            caught = exc
        else:
            raise AssertionError("a failed response_status must raise")
    finally:
        await client.aclose()
    assert getattr(caught, "category", None) is VendorErrorCategory.PERMISSION


def test_ticket_position_round_trips_through_the_cursor() -> None:
    position = TicketPosition(1_700_000_000_123, frozenset({"b", "a"}))
    assert position.cursor() == {"last_updated_time": 1_700_000_000_123, "ids": ["a", "b"]}
    assert TicketPosition.from_cursor(position.cursor(), 0) == position
    assert TicketPosition.from_cursor(None, 42) == TicketPosition(42)


def test_the_ticket_link_points_at_the_request_in_sdp_web_ui() -> None:
    from soc_itsm_ingest.normalize import request_url

    assert request_url("https://sdp.example.com/", "42") == (
        "https://sdp.example.com/WorkOrder.do?woMode=viewWO&woID=42"
    )
    assert request_url("https://sdpondemand.manageengine.com/app/itdesk/api/v3", "42") == (
        "https://sdpondemand.manageengine.com/app/itdesk/ui/requests/42/details"
    )
    assert request_url(None, "42") is None
