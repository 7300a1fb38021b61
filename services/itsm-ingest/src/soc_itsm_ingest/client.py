"""ManageEngine ServiceDesk Plus REST API v3 client (on the shared vendor HTTP base).

What it knows about SDP, and nothing else: the two authentications (on-premises ``authtoken``
technician key, cloud ``Authorization: Zoho-oauthtoken`` with access tokens renewed through Zoho
OAuth, see :mod:`soc_itsm_ingest.oauth`), the v3 ``Accept`` media type, the
``input_data`` JSON parameter with ``list_info`` (row_count ≤ 100, 1-based start_index, sort,
search_criteria, fields_required) answered with ``has_more_rows``, the MSP ``ACCOUNTID`` scope, the
form-field ``input_data`` of writes, and the ``response_status`` error body. Retries, timeouts and
TLS trust are the shared :class:`VendorHttp`'s job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from soc_shared.vendor_http import VendorError, VendorErrorCategory, VendorHttp

SDP_ACCEPT = "application/vnd.manageengine.sdp.v3+json"
MAX_ROW_COUNT = 100  # SDP refuses bigger pages
# When a run re-reads a group of requests sharing one last_updated_time, this many rows of the
# previous page are read again: requests updated meanwhile leave the group and shift it left.
TIE_OVERLAP = 10

C = VendorErrorCategory

# SDP v3 detail codes (``messages[].status_code``) → category; the HTTP status decides the rest.
_CODE_CATEGORIES: dict[int, tuple[VendorErrorCategory, str]] = {
    4002: (C.PERMISSION, "the ServiceDesk Plus technician lacks permission for this operation"),
    4007: (C.NOT_FOUND, "ServiceDesk Plus has no such resource; check the base URL, portal and ids"),
    4015: (C.RATE_LIMITED, "ServiceDesk Plus is rate limiting requests"),
    4022: (C.BAD_CREDENTIALS, "ServiceDesk Plus rejected the credentials (technician key or OAuth token)"),
}
_INVALID_CODES = {
    4000: "ServiceDesk Plus rejected the request",
    4001: "ServiceDesk Plus rejected a value",
    4005: "ServiceDesk Plus refused: the record is referenced elsewhere",
    4008: "ServiceDesk Plus refused a duplicate value",
    4009: "ServiceDesk Plus refused to change a non-editable field",
    4012: "ServiceDesk Plus is missing a mandatory field",
    4014: "ServiceDesk Plus rejected the input",
    4021: "ServiceDesk Plus rejected a value of the wrong type",
}


def _failed_status(body: Any) -> dict[str, Any] | None:
    """The failed ``response_status`` of a body (an object on single answers, a list on lists)."""
    if not isinstance(body, dict):
        return None
    status = body.get("response_status")
    candidates = status if isinstance(status, list) else [status]
    for entry in candidates:
        if isinstance(entry, dict) and (
            str(entry.get("status", "")).lower() == "failed" or int(entry.get("status_code") or 2000) >= 4000
        ):
            return entry
    return None


def error_from_body(body: Any, http_status: int) -> VendorError | None:
    """SDP's failure body → a categorised error a person can act on (None: not an SDP failure).

    Body: ``{"response_status": {"status_code": 4000, "status": "failed", "messages":
    [{"status_code": <detail code>, "type": "failed", "message": "...", "field": "..."}]}}``.
    """
    status = _failed_status(body)
    if status is None:
        return None
    raw_messages = status.get("messages")
    messages: list[Any] = raw_messages if isinstance(raw_messages, list) else []
    detail = next((m for m in messages if isinstance(m, dict)), {})
    try:
        code = int(detail.get("status_code") or status.get("status_code") or 4000)
    except (TypeError, ValueError):
        code = 4000
    vendor_message = str(detail.get("message") or status.get("message") or "no message").strip()[:300]
    where = detail.get("field")
    details: dict[str, Any] = {"field": str(where)} if where else {}
    retryable: bool | None = None
    if http_status == 401 or code == 4022:
        category, text = _CODE_CATEGORIES[4022]
    elif http_status == 403 or code == 4002:
        category, text = _CODE_CATEGORIES[4002]
    elif http_status == 429 or code == 4015:
        category, text = _CODE_CATEGORIES[4015]
    elif http_status == 404 or code == 4007:
        category, text = _CODE_CATEGORIES[4007]
    elif http_status >= 500:
        category, text = C.SERVER_ERROR, "ServiceDesk Plus answered with a server error"
        retryable = http_status in (500, 502, 503, 504)
    else:
        category = C.INVALID_REQUEST
        text = _INVALID_CODES.get(code, "ServiceDesk Plus rejected the request")
        if where:
            text += f" (field {where})"
    suffix = f" (HTTP {http_status}, SDP code {code}): {vendor_message}"
    return VendorError(
        category,
        text + suffix,
        status=http_status,
        vendor_code=str(code),
        retryable=retryable,
        details=details,
    )


def sdp_error(response: httpx.Response) -> VendorError | None:
    """The error mapper of :class:`VendorHttp` (None: the default mapping by HTTP status)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return error_from_body(body, response.status_code)


def time_ms(value: Any) -> int | None:
    """An SDP time object (``{"value": "<epoch ms>", "display_value": ...}``) → epoch ms."""
    if isinstance(value, dict):
        value = value.get("value")
    if value is None or value == "" or isinstance(value, bool):
        return None
    return int(str(value))


@dataclass(frozen=True)
class TicketPosition:
    """Where an incremental read of requests stands: the newest ``last_updated_time`` read and the
    ids already read at exactly that time (requests may share a millisecond; none is skipped and
    none is re-read forever)."""

    last_updated_time: int
    ids: frozenset[str] = field(default_factory=frozenset)

    def cursor(self) -> dict[str, Any]:
        return {"last_updated_time": self.last_updated_time, "ids": sorted(self.ids)}

    @classmethod
    def from_cursor(cls, cursor: dict[str, Any] | None, default_time: int) -> TicketPosition:
        if not cursor or cursor.get("last_updated_time") is None:
            return cls(default_time)
        return cls(int(cursor["last_updated_time"]), frozenset(str(i) for i in cursor.get("ids") or ()))


@dataclass
class ListAnswer:
    records: list[dict[str, Any]]
    has_more_rows: bool


class SdpClient:
    """One ServiceDesk Plus integration: on-premises technician key (``token``) or cloud Zoho OAuth
    (``oauth``: an ``httpx.Auth`` that keeps the access token valid)."""

    def __init__(
        self,
        base_url: str,
        *,
        integration_id: str,
        token: str | None = None,
        oauth: httpx.Auth | None = None,
        verify_tls: bool = True,
        ca_pem: str | None = None,
        page_size: int = MAX_ROW_COUNT,
        transport: httpx.AsyncBaseTransport | None = None,
        **http_options: Any,
    ) -> None:
        if (oauth is None) == (not token):
            raise ValueError("ServiceDesk Plus needs either a technician key (authtoken) or Zoho OAuth")
        headers = (
            {"Accept": SDP_ACCEPT} if oauth is not None else {"authtoken": str(token), "Accept": SDP_ACCEPT}
        )
        self.auth_style = "oauth" if oauth is not None else "authtoken"
        root = base_url.rstrip("/")
        if not root.endswith("/api/v3"):
            root += "/api/v3"
        self.page_size = max(1, min(MAX_ROW_COUNT, page_size))
        self.options: Any = None  # the sync options of this integration (set by resources.client_for)
        self.http = VendorHttp(
            root + "/",
            vendor="ServiceDesk Plus",
            integration_id=integration_id,
            headers=headers,
            auth=oauth,
            verify_tls=verify_tls,
            ca_pem=ca_pem,
            transport=transport,
            error_mapper=sdp_error,
            **http_options,
        )

    async def aclose(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------------------------------ basics
    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        input_data: dict[str, Any] | None = None,
        expected: Sequence[int] = (200,),
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """One v3 call: ``input_data`` as a query parameter (reads) or form field (writes); a body
        whose ``response_status`` says failed raises, whatever the HTTP status."""
        query = dict(params or {})
        form = None
        if input_data is not None:
            encoded = json.dumps(input_data, separators=(",", ":"))
            if method in ("POST", "PUT"):
                form = {"input_data": encoded}
            else:
                query["input_data"] = encoded
        response, body = await self.http.request_with_json(
            method, path, params=query or None, data=form, expected=expected, idempotent=idempotent
        )
        if not isinstance(body, dict):
            raise VendorError(
                C.BAD_RESPONSE,
                f"ServiceDesk Plus answered {path} with a non-object",
                status=response.status_code,
            )
        failure = error_from_body(body, response.status_code)
        if failure is not None:
            raise failure
        return body

    @staticmethod
    def _scope(account_id: str | None) -> dict[str, Any]:
        return {"ACCOUNTID": account_id} if account_id else {}

    async def list_page(
        self, path: str, key: str, list_info: dict[str, Any], *, account_id: str | None = None
    ) -> ListAnswer:
        body = await self._call(
            "GET", path, params=self._scope(account_id), input_data={"list_info": list_info}
        )
        records = body.get(key)
        info = body.get("list_info")
        if not isinstance(records, list) or not isinstance(info, dict):
            raise VendorError(C.BAD_RESPONSE, f"ServiceDesk Plus answered {path} without {key} or list_info")
        if not all(isinstance(r, dict) and r.get("id") is not None for r in records):
            raise VendorError(C.BAD_RESPONSE, f"ServiceDesk Plus answered {path} with a record without an id")
        return ListAnswer(records, bool(info.get("has_more_rows")))

    # ---------------------------------------------------------------------------------- accounts
    async def accounts(self) -> AsyncIterator[list[dict[str, Any]]]:
        """MSP accounts (the seed's ITSM tenants), page by page by start_index."""
        start = 1
        while True:
            answer = await self.list_page(
                "accounts",
                "accounts",
                {
                    "row_count": self.page_size,
                    "start_index": start,
                    "sort_field": "name",
                    "sort_order": "asc",
                },
            )
            if answer.records:
                yield answer.records
            if not answer.has_more_rows or not answer.records:
                return
            start += len(answer.records)

    # ---------------------------------------------------------------------------------- requests
    async def get_request(self, request_id: str, *, account_id: str | None = None) -> dict[str, Any]:
        body = await self._call("GET", f"requests/{request_id}", params=self._scope(account_id))
        return self._single(body)

    async def create_request(
        self, fields: dict[str, Any], *, account_id: str | None = None
    ) -> dict[str, Any]:
        """``POST requests``. Not idempotent: repeated only when SDP certainly did not process it."""
        body = await self._call(
            "POST",
            "requests",
            params=self._scope(account_id),
            input_data={"request": fields},
            expected=(200, 201),
        )
        return self._single(body)

    async def update_request(
        self, request_id: str, fields: dict[str, Any], *, account_id: str | None = None
    ) -> dict[str, Any]:
        body = await self._call(
            "PUT", f"requests/{request_id}", params=self._scope(account_id), input_data={"request": fields}
        )
        return self._single(body)

    async def add_note(
        self, request_id: str, note: dict[str, Any], *, account_id: str | None = None
    ) -> dict[str, Any]:
        """``POST requests/{id}/notes`` with ``{"note": {...}}`` on the on-premises edition (technician
        key) and ``{"request_note": {...}}`` on the cloud one (Zoho OAuth), as each edition's v3
        documentation names it. Not idempotent (a repeat adds the note twice): repeated only when
        SDP certainly did not process it."""
        key = "note" if self.auth_style == "authtoken" else "request_note"
        body = await self._call(
            "POST",
            f"requests/{request_id}/notes",
            params=self._scope(account_id),
            input_data={key: note},
            expected=(200, 201),
        )
        created = body.get("request_note") or body.get("note")
        if not isinstance(created, dict):
            raise VendorError(C.BAD_RESPONSE, "ServiceDesk Plus answered without the note")
        return created

    async def notes(self, request_id: str, *, account_id: str | None = None) -> list[dict[str, Any]]:
        """``GET requests/{id}/notes``: the request's notes (the first 100, newest first)."""
        answer = await self.list_page(
            f"requests/{request_id}/notes",
            "notes",
            {"row_count": 100, "start_index": 1, "sort_field": "added_time", "sort_order": "desc"},
            account_id=account_id,
        )
        return answer.records

    @staticmethod
    def _single(body: dict[str, Any]) -> dict[str, Any]:
        request = body.get("request")
        if not isinstance(request, dict) or request.get("id") is None:
            raise VendorError(C.BAD_RESPONSE, "ServiceDesk Plus answered without the request")
        return request

    async def find_requests(
        self,
        field_name: str,
        value: str,
        *,
        account_id: str | None = None,
        limit: int = 10,
        fields_required: Sequence[str] | None = None,
        or_criteria: Sequence[dict[str, Any]] = (),
    ) -> list[dict[str, Any]]:
        """Requests whose ``field_name`` (dotted, e.g. ``udf_fields.udf_sline_4506``) is ``value``
        (or that meet one of ``or_criteria``), oldest first.

        A list row carries the list view's columns only: ``fields_required`` names what the caller
        needs to see on the rows (the field searched on is always named)."""
        wanted = list(fields_required or ())
        head = field_name.split(".", 1)[0]  # a user field comes with its group, udf_fields
        if field_name not in wanted and head not in wanted:
            wanted.append(head)
        criteria: list[dict[str, Any]] = [{"field": field_name, "condition": "is", "value": value}]
        criteria.extend({**c, "logical_operator": "OR"} for c in or_criteria)
        answer = await self.list_page(
            "requests",
            "requests",
            {
                "row_count": max(1, min(MAX_ROW_COUNT, limit)),
                "start_index": 1,
                "sort_field": "created_time",
                "sort_order": "asc",
                "search_criteria": criteria,
                "fields_required": wanted,
            },
            account_id=account_id,
        )
        return answer.records

    async def ticket_pages(
        self,
        start: TicketPosition,
        *,
        fields_required: Sequence[str] | None = None,
        account_id: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], TicketPosition]]:
        """Requests changed at or after ``start``, oldest change first, each page with the position
        after it.

        Keyset paging: every page asks for ``last_updated_time >= <newest time read>`` from
        ``start_index`` 1, so a request updated while we page moves to the end and is read there,
        never skipped. Only a group of requests sharing one time that is larger than a page is
        paged by ``start_index`` (with an overlap). The next page is requested while the caller
        publishes this one.
        """
        size = max(1, min(MAX_ROW_COUNT, page_size or self.page_size))
        anchor, seen, offset = start.last_updated_time, set(start.ids), 1

        def request(at: int, index: int) -> asyncio.Task[ListAnswer]:
            list_info: dict[str, Any] = {
                "row_count": size,
                "start_index": index,
                "sort_field": "last_updated_time",
                "sort_order": "asc",
                "search_criteria": [
                    {"field": "last_updated_time", "condition": "greater or equal", "value": str(at)}
                ],
            }
            # A list row carries the list view's columns only, which has no last_updated_time:
            # the keyset needs it named, whatever else the caller asks for.
            wanted = list(fields_required or ())
            if "last_updated_time" not in wanted:
                wanted.append("last_updated_time")
            list_info["fields_required"] = wanted
            return asyncio.ensure_future(
                self.list_page("requests", "requests", list_info, account_id=account_id)
            )

        def updated(record: dict[str, Any]) -> int:
            try:
                value = time_ms(record.get("last_updated_time"))
            except ValueError:
                value = None
            if value is None:
                raise VendorError(
                    C.BAD_RESPONSE,
                    f"ServiceDesk Plus request {record.get('id')} has no valid last_updated_time",
                )
            return value

        pending: asyncio.Task[ListAnswer] | None = request(anchor, offset)
        try:
            while pending is not None:
                answer = await pending
                pending = None
                records = sorted(answer.records, key=lambda r: (updated(r), str(r["id"])))
                fresh = [r for r in records if updated(r) > anchor or str(r["id"]) not in seen]
                if records:
                    newest = updated(records[-1])
                    if newest > anchor:
                        anchor = newest
                        seen = {str(r["id"]) for r in records if updated(r) == newest}
                        offset = max(1, len(seen) + 1 - TIE_OVERLAP)
                    else:  # the whole page shares the anchor time: page on within that group
                        seen.update(str(r["id"]) for r in records)
                        offset += (
                            len(records) - TIE_OVERLAP
                            if fresh and len(records) > TIE_OVERLAP
                            else len(records)
                        )
                if answer.has_more_rows and records:
                    pending = request(anchor, offset)
                if fresh:
                    yield fresh, TicketPosition(anchor, frozenset(seen))
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
