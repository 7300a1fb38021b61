"""IBM QRadar REST API client (on the shared vendor HTTP base).

What it knows about QRadar, and nothing else: the two authentications (``SEC`` token or basic),
the ``Version`` header, ``Range: items=a-b`` paging driven by the ``Content-Range`` the console
answers (it may return fewer items than asked for), the ``filter`` / ``fields`` / ``sort``
parameters, QRadar's JSON error body, keyset paging of offenses on ``last_persisted_time`` (the
time an analyst's close or assignment moves, not only new events), offense notes and the Ariel
search lifecycle. Retries, timeouts and TLS trust are the shared :class:`VendorHttp`'s job.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from loguru import logger
from soc_shared.vendor_http import VendorError, VendorErrorCategory, VendorHttp

_CONTENT_RANGE = re.compile(r"items\s+(\d+)-(-?\d+)/(\d+|\*)")

# The offense fields the normaliser reads: asking for them alone roughly halves every page.
OFFENSE_FIELDS = (
    "id,description,status,severity,magnitude,credibility,relevance,event_count,flow_count,assigned_to,"
    "categories,rules(id,type),offense_source,offense_type,source_address_ids,local_destination_address_ids,"
    "destination_networks,log_sources(id,name,type_id,type_name),start_time,last_updated_time,last_persisted_time,"
    "close_time,"
    "closing_reason_id,closing_user,follow_up,protected,domain_id"
)

# Offense addresses: an offense carries ids; the addresses are their own collections.
ADDRESS_FIELDS = {"source": "source_ip", "local_destination": "local_destination_ip"}
ADDRESS_BATCH = 100
"""Ids asked for per ``filter=id in (...)`` request (the XSOAR QRadar integration's batch size)."""

ARIEL_RUNNING = frozenset({"WAIT", "EXECUTE", "SORTING"})
ARIEL_FAILED = frozenset({"CANCELED", "ERROR"})

C = VendorErrorCategory


def qradar_error(response: httpx.Response) -> VendorError | None:
    """QRadar's JSON error body → a categorised error a person can act on (None: default mapping).

    Body: ``{"http_response": {"code", "message"}, "code", "message", "description", "details"}``.
    QRadar's own ``code`` tells apart what the HTTP status does not: 422/1005 (422/1010 on the
    offense address lists) is an invalid ``filter``, 422/30 an unknown ``fields``/``sort`` name, 404/1002 an unknown endpoint or id,
    406/12 an unsupported ``Version``.
    """
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or ("http_response" not in body and "code" not in body):
        return None
    status = response.status_code
    vendor_message = str(body.get("message") or body.get("description") or "no message").strip()[:300]
    code = body.get("code")
    vendor_code = str(code) if code is not None else None
    suffix = (
        f" (HTTP {status}" + (f", QRadar code {vendor_code})" if vendor_code else ")") + f": {vendor_message}"
    )
    details: dict[str, Any] = {}
    retryable: bool | None = None
    if status == 401:
        category, text = C.BAD_CREDENTIALS, "QRadar rejected the credentials (token or username/password)"
    elif status == 403:
        category = C.PERMISSION
        text = (
            "the QRadar credentials lack a capability this integration needs (e.g. offenses or Ariel search)"
        )
    elif status == 404:
        category = C.NOT_FOUND
        text = "QRadar has no such endpoint or record; check the base URL and API version"
    elif status == 422 and vendor_code in ("1005", "1010"):  # 1010: the address lists' own code
        category, text = C.INVALID_REQUEST, "QRadar rejected the filter"
        details["reason"] = "invalid_filter"
    elif status == 422 and vendor_code == "2000":
        category, text = C.INVALID_REQUEST, "QRadar rejected the AQL query"
        details["reason"] = "invalid_aql"
    elif status == 406:
        category, text = C.INVALID_REQUEST, "QRadar does not accept the requested API Version"
        details["reason"] = "unsupported_version"
    elif status in (400, 409, 416, 422):
        category, text = C.INVALID_REQUEST, "QRadar rejected the request"
    elif status == 429:
        category, text = C.RATE_LIMITED, "QRadar is rate limiting requests"
    elif status >= 500:
        category, text = C.SERVER_ERROR, "QRadar answered with a server error"
        retryable = status in (500, 502, 503, 504)
    else:
        return None
    return VendorError(
        category, text + suffix, status=status, vendor_code=vendor_code, retryable=retryable, details=details
    )


def content_range_total(response: httpx.Response) -> int | None:
    """The collection size from ``Content-Range: items a-b/total`` (None when absent or ``*``)."""
    match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
    if match is None or match.group(3) == "*":
        return None
    return int(match.group(3))


def checked_page(
    path: str, response: httpx.Response, records: list[Any], asked_start: int
) -> tuple[int, int | None]:
    """``(next start, total)`` from the answer's ``Content-Range``, after checking it describes the
    items in the body: a console may return fewer items than the Range asked for (paging goes on
    from where its answer ended), but a body holding another number of items than the header
    says, or items from another position, is a truncated or inconsistent page — paging past it
    would skip records, so it is a ``bad_response`` (retried, then recorded on the sync state)."""
    header = response.headers.get("Content-Range", "")
    match = _CONTENT_RANGE.search(header)
    if match is None:  # no header: only the body tells how far this answer went
        return asked_start + len(records), None
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    returned = max(0, last - first + 1)
    if (records and first != asked_start) or returned != len(records):
        raise VendorError(
            C.BAD_RESPONSE,
            f"QRadar {path.split('?')[0]} answered a page whose Content-Range ({header}) does not match "
            f"its {len(records)} items (asked from item {asked_start}); the page is treated as truncated",
            status=response.status_code,
            details={"reason": "inconsistent_page", "content_range": header, "items": len(records)},
        )
    return asked_start + len(records), total


def _more(records: list[dict[str, Any]], size: int, start: int, total: int | None) -> bool:
    """Whether another page follows: the total says so when known (a console may answer fewer items
    than asked for); otherwise only a full page can have a successor."""
    if not records:
        return False
    return start < total if total is not None else len(records) >= size


@dataclass(frozen=True, slots=True)
class OffensePosition:
    """A keyset position in the (last_persisted_time, id) order of offenses.

    ``last_persisted_time`` is what every change moves — new events and an analyst's close,
    assignment, follow-up or protect — while ``last_updated_time`` moves on events only: an offense
    read while open and closed later is seen again only through the persisted time.
    """

    last_persisted_time: int
    id: int

    def filter(self) -> str:
        t, i = self.last_persisted_time, self.id
        # The leading ">=" lets the console narrow on the persisted time; the rest is the exact
        # "after (t, id)" condition, so equal times are neither skipped nor re-read.
        return f"last_persisted_time >= {t} and (last_persisted_time > {t} or id > {i})"


def persisted_time(raw: dict[str, Any]) -> int:
    """An offense's position time: ``last_persisted_time`` (``last_updated_time`` if absent)."""
    value = raw.get("last_persisted_time")
    return int(value if value is not None else raw["last_updated_time"])


class AddressCache:
    """id → address of a console's offense addresses, least recently used dropped past ``size``.

    An address id names one address for good (QRadar keys them by domain and address), so the
    mapping is kept across runs: a run asks the console only for ids it has not seen before.
    Keyed by the integration and its console URL (another console has other ids)."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._map: OrderedDict[tuple[str, str, str, int], str] = OrderedDict()

    def get(self, key: tuple[str, str, str, int]) -> str | None:
        value = self._map.get(key)
        if value is not None:
            self._map.move_to_end(key)
        return value

    def put(self, key: tuple[str, str, str, int], value: str) -> None:
        self._map[key] = value
        self._map.move_to_end(key)
        while len(self._map) > self.size:
            self._map.popitem(last=False)

    def clear(self) -> None:
        self._map.clear()

    def __len__(self) -> int:
        return len(self._map)


ADDRESSES = AddressCache()


class QRadarClient:
    """Both authentications of the original: an authorised-service token (``SEC``) or basic."""

    def __init__(
        self,
        base_url: str,
        *,
        integration_id: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        api_version: str = "16.0",
        verify_tls: bool = True,
        ca_pem: str | None = None,
        page_size: int = 1000,
        ariel_poll_initial: float = 0.1,
        ariel_poll_max: float = 2.0,
        ariel_concurrency: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        **http_options: Any,
    ) -> None:
        headers = {"Version": str(api_version), "Accept": "application/json"}
        auth = None
        if token:
            headers["SEC"] = token
        elif username and password is not None:
            auth = httpx.BasicAuth(username, password)
        else:
            raise ValueError("QRadar needs an authorised-service token or a username and password")
        root = base_url.rstrip("/")
        if not root.endswith("/api"):
            root += "/api"
        self.console = (integration_id, root)
        self.page_size = max(1, page_size)
        self.options: Any = None  # the sync options of this integration (set by resources.client_for)
        self.ariel_poll_initial = ariel_poll_initial
        self.ariel_poll_max = ariel_poll_max
        self._ariel_slots = asyncio.Semaphore(max(1, ariel_concurrency))
        self._sleep = sleep
        self.http = VendorHttp(
            root + "/",
            vendor="qradar",
            integration_id=integration_id,
            headers=headers,
            auth=auth,
            verify_tls=verify_tls,
            ca_pem=ca_pem,
            transport=transport,
            error_mapper=qradar_error,
            sleep=sleep,
            **http_options,
        )

    async def aclose(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------------------------- basics
    async def about(self) -> dict[str, Any]:
        body = await self.http.get_json("system/about")
        if not isinstance(body, dict):
            raise VendorError(C.BAD_RESPONSE, "QRadar system/about did not answer an object")
        return body

    async def get_page(
        self,
        path: str,
        start: int,
        size: int,
        *,
        params: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> tuple[list[dict[str, Any]], int, int | None]:
        """One ``Range: items=start-(start+size-1)`` page: (records, where the next page starts,
        collection total or None), checked against the answer's ``Content-Range``.

        ``key`` names the list inside an object body (Ariel results: ``events`` or ``flows``).
        """
        policy = self.http.retry
        for attempt in range(1, policy.attempts + 1):
            response, body = await self.http.request_with_json(
                "GET", path, params=params, headers={"Range": f"items={start}-{start + size - 1}"}
            )
            if key is not None and isinstance(body, dict):
                body = body.get(key, body.get("flows") if key == "events" else None)
            try:
                if not isinstance(body, list):
                    raise VendorError(
                        C.BAD_RESPONSE,
                        f"QRadar {path.split('?')[0]} did not answer a list",
                        status=response.status_code,
                    )
                next_start, total = checked_page(path, response, body, start)
            except VendorError as exc:
                # Asked again, a console under load usually answers the whole page.
                exc.details["attempts"] = attempt
                if attempt >= policy.attempts:
                    raise
                await self._sleep(policy.backoff(attempt))
                continue
            return body, next_start, total
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def pages(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        page_size: int | None = None,
        key: str | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield a collection page by page, the next page already on its way while the caller works
        on this one (the console serves it while we normalise and publish)."""
        size = page_size or self.page_size
        start = 0
        pending: asyncio.Task[tuple[list[dict[str, Any]], int, int | None]] | None = asyncio.ensure_future(
            self.get_page(path, start, size, params=params, key=key)
        )
        try:
            while pending is not None:
                records, start, total = await pending
                pending = None
                more = _more(records, size, start, total)
                if more:
                    pending = asyncio.ensure_future(self.get_page(path, start, size, params=params, key=key))
                if records:
                    yield records
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def collection(self, path: str, *, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """A whole (small) collection: closing reasons, types, domains."""
        out: list[dict[str, Any]] = []
        async for page in self.pages(path, params=params):
            out.extend(page)
        return out

    # ------------------------------------------------------------------------------ offenses
    async def offense_pages(
        self, after: OffensePosition, *, page_size: int | None = None, fields: str | None = OFFENSE_FIELDS
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Offenses after ``after`` in (last_persisted_time, id) order, page by page.

        One keyset filter serves many Range pages (cheap for the console: one query, then slices);
        each next Range starts where the console's ``Content-Range`` said the last answer ended (it
        may hold fewer items than asked for). Each page after the first starts one item early: that
        item must be the previous page's last one. If it is not, an offense changed meanwhile and
        left its place (a change moves an offense to the end of this order), so every later item
        shifted and offset paging would skip one: paging restarts with a fresh keyset filter from
        the last offense seen. Nothing is skipped, and the caller's cursor, the last offense of each
        page, only moves forward.
        """
        size = page_size or self.page_size
        position = after
        params: dict[str, Any] = {"filter": position.filter(), "sort": "+last_persisted_time,+id"}
        if fields:
            params["fields"] = fields
        start = 0
        last: dict[str, Any] | None = None

        def request(start_at: int, with_params: dict[str, Any]) -> asyncio.Task[Any]:
            # From the second page on, ask for one extra item in front: the previous page's last.
            first = start_at - 1 if start_at > 0 else 0
            return asyncio.ensure_future(
                self.get_page("siem/offenses", first, size + (start_at > 0), params=dict(with_params))
            )

        pending: asyncio.Task[Any] | None = request(start, params)
        try:
            while pending is not None:
                records, next_start, total = await pending
                pending = None
                if start > 0:
                    head = records[0] if records else None
                    if (
                        head is None
                        or last is None
                        or head.get("id") != last.get("id")
                        or persisted_time(head) != persisted_time(last)
                    ):
                        # The order shifted under us: restart from the last offense handed out.
                        assert last is not None
                        position = OffensePosition(persisted_time(last), int(last["id"]))
                        params = {**params, "filter": position.filter()}
                        start = 0
                        pending = request(start, params)
                        continue
                    records = records[1:]
                start = next_start
                more = _more(records, size, start, total)
                if more:
                    pending = request(start, params)
                if records:
                    last = records[-1]
                    yield records
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def addresses(self, kind: str, ids: Iterable[int]) -> dict[int, str]:
        """The addresses behind offense address ids: ``kind`` ``source`` (``siem/source_addresses``,
        ``source_ip``) or ``local_destination`` (``siem/local_destination_addresses``,
        ``local_destination_ip``). Ids already known (:data:`ADDRESSES`) are not asked again; the
        others go :data:`ADDRESS_BATCH` at a time as ``filter=id in (...)&fields=id,<address>``,
        Range-paged like every list. An id the console no longer knows is simply absent. A
        failure raises (retried with backoff by the HTTP base first): the caller publishes nothing
        of the page it was resolving."""
        field = ADDRESS_FIELDS[kind]
        scope = (*self.console, kind)
        found: dict[int, str] = {}
        missing: list[int] = []
        for address_id in dict.fromkeys(ids):
            hit = ADDRESSES.get((*scope, address_id))
            if hit is None:
                missing.append(address_id)
            else:
                found[address_id] = hit

        async def batch(chunk: list[int]) -> list[dict[str, Any]]:
            params = {"filter": f"id in ({','.join(map(str, chunk))})", "fields": f"id,{field}"}
            rows: list[dict[str, Any]] = []
            async for page in self.pages(f"siem/{kind}_addresses", params=params, page_size=len(chunk)):
                rows.extend(page)
            return rows

        chunks = [missing[i : i + ADDRESS_BATCH] for i in range(0, len(missing), ADDRESS_BATCH)]
        asked = set(missing)
        answers = await asyncio.gather(*(batch(c) for c in chunks), return_exceptions=True)
        for rows in answers:  # every batch finished first: none is left running on a closed client
            if isinstance(rows, BaseException):
                raise rows
            for row in rows:
                if not isinstance(row, dict):
                    continue
                key, address = row.get("id"), row.get(field)
                # Only what was asked for, in the documented types: anything else is left out.
                if isinstance(key, int) and key in asked and isinstance(address, str) and address.strip():
                    found[key] = address.strip()[:100]
                    ADDRESSES.put((*scope, key), found[key])
        return found

    async def offense_notes(self, offense_id: int) -> list[dict[str, Any]]:
        """The notes of one offense (``siem/offenses/{id}/notes``), every page."""
        return await self.collection(f"siem/offenses/{int(offense_id)}/notes")

    async def closing_reasons(self) -> dict[int, str]:
        """Closing reason id → name, reserved and deleted ones included (old offenses cite them)."""
        rows = await self.collection(
            "siem/offense_closing_reasons", params={"include_reserved": "true", "include_deleted": "true"}
        )
        return {int(r["id"]): str(r.get("text") or "") for r in rows if r.get("id") is not None}

    # --------------------------------------------------------------------------------- Ariel
    async def ariel_search(
        self, aql: str, *, max_seconds: float, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        """Run one AQL search to completion and return its rows.

        Create (``POST ariel/searches``), poll its status with a growing interval, page its results,
        and always delete it afterwards: a search that did not complete within ``max_seconds``
        is cancelled by that DELETE, so abandoned searches do not pile up on the console.
        """
        async with self._ariel_slots:
            created = await self.http.request_json(
                "POST", "ariel/searches", params={"query_expression": aql}, expected=(200, 201)
            )
            if not isinstance(created, dict) or not created.get("search_id"):
                raise VendorError(C.BAD_RESPONSE, "QRadar did not return a search_id for the Ariel search")
            search_id = str(created["search_id"])
            try:
                await self._wait_for_search(search_id, str(created.get("status") or "WAIT"), max_seconds)
                rows: list[dict[str, Any]] = []
                async for page in self.pages(
                    f"ariel/searches/{search_id}/results", page_size=page_size, key="events"
                ):
                    rows.extend(page)
                return rows
            finally:
                await self._delete_search(search_id)

    async def _wait_for_search(self, search_id: str, status: str, max_seconds: float) -> None:
        deadline = time.monotonic() + max_seconds
        delay = self.ariel_poll_initial
        while status != "COMPLETED":
            if status in ARIEL_FAILED:
                raise VendorError(
                    C.SERVER_ERROR,
                    f"the Ariel search ended as {status} on the QRadar console",
                    retryable=False,
                    details={"search_status": status},
                )
            if status not in ARIEL_RUNNING:
                raise VendorError(C.BAD_RESPONSE, f"the Ariel search reported an unknown status {status!r}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise VendorError(
                    C.TIMEOUT,
                    f"the Ariel search did not complete within {max_seconds:g}s; it was cancelled",
                    retryable=False,
                    details={"search_status": status},
                )
            await self._sleep(min(delay, remaining))
            delay = min(delay * 1.6, self.ariel_poll_max)
            body = await self.http.get_json(f"ariel/searches/{search_id}")
            if not isinstance(body, dict):
                raise VendorError(C.BAD_RESPONSE, "QRadar answered the Ariel search status with a non-object")
            status = str(body.get("status") or "")

    async def _delete_search(self, search_id: str) -> None:
        try:
            await self.http.request("DELETE", f"ariel/searches/{search_id}", expected=(200, 202, 204, 404))
        except VendorError as exc:  # the console expires it anyway; never hide the real outcome
            logger.bind(vendor="qradar").warning("could not delete Ariel search: {}", exc)
