"""Cortex XSOAR REST API client (on the shared vendor HTTP base).

What it speaks, and why:

* Authentication: XSOAR 6 takes the API key alone in ``Authorization``; XSOAR 8 takes the key plus
  its id in ``x-xdr-auth-id`` and serves the API under ``/xsoar/public/v1``.
* Multi-tenancy: ``GET /accounts`` on the master lists the tenants; a tenant's data is addressed
  under ``/acc_<name>/...`` exactly as the master addresses it. A server without accounts (single
  tenant) is read at its root.
* Incremental reads: ``POST /incidents/search`` with ``modified:>="<t>"`` sorted by ``modified``
  ascending, read *keyset* style — every page is a fresh query from the newest ``modified`` seen
  so far, never ``page=n`` over a result set that moves while we read it (an incident changed
  between two page requests jumps to the end and would push an unseen one back into a page we
  already read). Records sharing the boundary time are told apart by their ids.
* War room: ``POST /investigation/<id>`` returns entries oldest first, paged by ``fromTime``.
* ``POST /incident`` creates, or updates under optimistic locking on ``version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
from soc_shared.vendor_http import VendorError, VendorErrorCategory, VendorHttp

from soc_soar_ingest.normalize import format_time_ns, parse_time_ns

XSOAR8_PREFIX = "/xsoar/public/v1"
MAX_PAGE_SIZE = 1000  # "Size is limited to 1000"
AuthStyle = Literal["xsoar6", "xsoar8"]
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def xsoar_error(response: httpx.Response) -> VendorError | None:
    """XSOAR's error body ``{"id", "status", "title", "detail", "error"}`` → a categorised error.

    ``None`` lets the shared default mapping decide (proxies and load balancers answer with bodies
    of their own).
    """
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not {"title", "detail", "error"} & body.keys():
        return None
    status = response.status_code
    detail = str(body.get("detail") or body.get("error") or body.get("title") or "XSOAR error")[:300]
    text = f"{body.get('error', '')} {detail}".lower()
    code = str(body.get("id")) if body.get("id") else None
    C = VendorErrorCategory
    if status == 401:
        category = C.BAD_CREDENTIALS
    elif status == 403:
        category = C.PERMISSION
    elif status == 404:
        category = C.NOT_FOUND
    elif status == 429:
        category = C.RATE_LIMITED
    elif status >= 500:
        category = C.SERVER_ERROR
    elif 400 <= status < 500:
        category = C.INVALID_REQUEST
        if "version mismatch" in text:
            code = "version_mismatch"
    else:
        return None
    return VendorError(
        category,
        f"XSOAR: {detail}",
        status=status,
        vendor_code=code,
        retryable=status == 429 or status >= 500,
    )


@dataclass(frozen=True, slots=True)
class Position:
    """Where an incremental read stands: the newest ``modified`` seen (as XSOAR wrote it, and in
    nanoseconds for comparing) and the ids of the incidents already seen at exactly that time."""

    modified: str
    ns: int
    ids: frozenset[str] = field(default_factory=frozenset)

    def is_after(self, ns: int, incident_id: str) -> bool:
        """True when an incident modified at ``ns`` was not yet seen from this position."""
        return ns > self.ns or (ns == self.ns and incident_id not in self.ids)

    def to_json(self) -> dict[str, Any]:
        return {"modified": self.modified, "ids": sorted(self.ids, key=_id_order)}

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> Position | None:
        if not raw or not raw.get("modified"):
            return None
        return cls(
            str(raw["modified"]),
            parse_time_ns(str(raw["modified"])),
            frozenset(str(i) for i in raw.get("ids") or ()),
        )


def _id_order(incident_id: str) -> tuple[int, int | str]:
    # XSOAR ids are numeric strings; compare them as numbers so "10" follows "9".
    return (0, int(incident_id)) if incident_id.isdigit() else (1, incident_id)


@dataclass(frozen=True, slots=True)
class Account:
    """A tenant of a multi-tenant master. ``name`` is what ``/acc_<name>/`` addresses."""

    account_id: str
    name: str
    display_name: str | None
    raw: dict[str, Any]


class XsoarClient:
    """One integration's view of an XSOAR server (6 or 8, single- or multi-tenant)."""

    def __init__(
        self,
        base_url: str,
        *,
        integration_id: str,
        api_key: str,
        api_key_id: str | None = None,
        auth_style: AuthStyle | None = None,
        verify_tls: bool = True,
        ca_pem: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **http_options: Any,
    ) -> None:
        if not api_key or not api_key.strip():
            raise VendorError(VendorErrorCategory.BAD_CREDENTIALS, "XSOAR needs an API key", retryable=False)
        style = auth_style or ("xsoar8" if api_key_id else "xsoar6")
        if style not in ("xsoar6", "xsoar8"):
            raise VendorError(
                VendorErrorCategory.INVALID_REQUEST,
                f"auth_style must be xsoar6 or xsoar8, not {style!r}",
                retryable=False,
            )
        headers = {"Authorization": api_key.strip(), "Accept": "application/json"}
        root = base_url.rstrip("/")
        if style == "xsoar8":
            if not api_key_id or not str(api_key_id).strip():
                raise VendorError(
                    VendorErrorCategory.BAD_CREDENTIALS,
                    "XSOAR 8 API keys need their key id (sent as x-xdr-auth-id)",
                    retryable=False,
                )
            headers["x-xdr-auth-id"] = str(api_key_id).strip()
            if not httpx.URL(root).path.rstrip("/").endswith(XSOAR8_PREFIX):
                root += XSOAR8_PREFIX
        self.auth_style: AuthStyle = style
        self.http = VendorHttp(
            root + "/",
            vendor="xsoar",
            integration_id=integration_id,
            headers=headers,
            verify_tls=verify_tls,
            ca_pem=ca_pem,
            transport=transport,
            error_mapper=xsoar_error,
            **http_options,
        )

    async def aclose(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------------------------------ accounts

    async def accounts(self) -> list[Account] | None:
        """The master's tenants; ``None`` when the server is not multi-tenant (no ``/accounts``)."""
        try:
            body = await self.http.get_json("accounts")
        except VendorError as exc:
            if exc.category == VendorErrorCategory.NOT_FOUND:
                return None
            raise
        if body is None:
            return []
        if not isinstance(body, list):
            raise VendorError(VendorErrorCategory.BAD_RESPONSE, "XSOAR /accounts: expected a list")
        accounts = []
        for raw in body:
            if not isinstance(raw, dict) or not (raw.get("name") or raw.get("id")):
                raise VendorError(
                    VendorErrorCategory.BAD_RESPONSE, "XSOAR /accounts: an account without a name"
                )
            name = str(raw.get("name") or raw.get("id")).removeprefix("acc_")
            accounts.append(
                Account(
                    account_id=str(raw.get("id") or f"acc_{name}"),
                    name=name,
                    display_name=raw.get("displayName") or None,
                    raw=raw,
                )
            )
        return accounts

    @staticmethod
    def _path(account: str, path: str) -> str:
        if not account:
            return path
        if not _ACCOUNT_NAME.match(account):
            # The name becomes part of the URL path: refuse anything that could leave /acc_<name>/.
            raise VendorError(
                VendorErrorCategory.INVALID_REQUEST,
                f"not a valid XSOAR account name: {account!r}",
                retryable=False,
            )
        return f"acc_{account}/{path}"

    # ------------------------------------------------------------------------------------ incidents

    async def search_incidents(
        self,
        account: str,
        *,
        query: str = "",
        page: int = 0,
        size: int = 100,
        sort: list[dict[str, Any]] | None = None,
        extra_filter: dict[str, Any] | None = None,
    ) -> tuple[int | None, list[dict[str, Any]]]:
        """One page of ``POST /incidents/search``: ``(total, incidents)``."""
        search_filter: dict[str, Any] = {
            "page": page,
            "size": size,
            "query": query,
            "sort": sort or [{"field": "modified", "asc": True}],
        }
        search_filter.update(extra_filter or {})
        body = await self.http.request_json(
            "POST",
            self._path(account, "incidents/search"),
            json={"userFilter": False, "filter": search_filter},
            idempotent=True,
        )
        if not isinstance(body, dict):
            raise VendorError(VendorErrorCategory.BAD_RESPONSE, "XSOAR /incidents/search: expected an object")
        data = body.get("data") or []  # XSOAR answers "data": null when nothing matches
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise VendorError(
                VendorErrorCategory.BAD_RESPONSE, "XSOAR /incidents/search: data is not a list of incidents"
            )
        total = body.get("total")
        return (int(total) if isinstance(total, int | float) else None), data

    async def changed_incidents(
        self, account: str, position: Position | None, *, page_size: int = MAX_PAGE_SIZE, overlap_ns: int = 0
    ) -> AsyncIterator[tuple[list[dict[str, Any]], Position]]:
        """Incidents modified after ``position``, oldest change first, in batches with the position
        after each batch. Every change present when the read passes it is yielded exactly once.

        ``overlap_ns`` re-reads that window before ``position`` first (for servers whose index
        makes changes visible late); the re-reads carry the same versions, so their events keep
        the same ids, and the position handed out never moves back.
        """
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        # ``bound`` is what the cursor says (never moves back); ``scan`` is how far this read got,
        # which starts earlier than ``bound`` when an overlap window is re-read.
        bound = position
        scan = position
        if position is not None and overlap_ns > 0:
            start_ns = position.ns - overlap_ns
            scan = Position(format_time_ns(start_ns), start_ns)
        page = 0
        ahead: asyncio.Task[tuple[int | None, list[dict[str, Any]]]] | None = None
        try:
            while True:
                if ahead is not None:
                    task, ahead = ahead, None
                    _, data = await task
                else:
                    query = f'modified:>="{scan.modified}"' if scan is not None else ""
                    _, data = await self.search_incidents(account, query=query, page=page, size=size)
                fresh: list[tuple[int, tuple[int, int | str], str, dict[str, Any]]] = []
                for incident in data:
                    incident_id = str(incident.get("id") or "")
                    modified = incident.get("modified")
                    if not incident_id or not isinstance(modified, str):
                        raise VendorError(
                            VendorErrorCategory.BAD_RESPONSE,
                            "XSOAR /incidents/search: an incident without id or modified time",
                        )
                    ns = parse_time_ns(modified)
                    if scan is None or scan.is_after(ns, incident_id):
                        fresh.append((ns, _id_order(incident_id), incident_id, incident))
                if fresh:
                    fresh.sort(key=lambda item: (item[0], item[1]))
                    newest_ns = fresh[-1][0]
                    ids = frozenset(item[2] for item in fresh if item[0] == newest_ns)
                    if scan is None or newest_ns > scan.ns:
                        scan = Position(str(fresh[-1][3]["modified"]), newest_ns, ids)
                    else:
                        scan = Position(scan.modified, scan.ns, scan.ids | ids)
                    if bound is None or scan.ns > bound.ns:
                        bound = scan
                    elif scan.ns == bound.ns:
                        bound = Position(bound.modified, bound.ns, bound.ids | scan.ids)
                    page = 0
                elif len(data) >= size:
                    # A whole page of incidents already seen at the boundary time: look further along.
                    page += 1
                if len(data) < size:
                    if fresh and bound is not None:
                        yield [item[3] for item in fresh], bound
                    return
                if fresh and bound is not None and scan is not None:
                    # The next query is known now: let XSOAR work on it while this page is published.
                    # (A read-only search: asking early, or for nothing if we stop here, is harmless.)
                    ahead = asyncio.create_task(
                        self.search_incidents(
                            account, query=f'modified:>="{scan.modified}"', page=0, size=size
                        )
                    )
                    # Abandoned (the run stopped after this page): its outcome is nobody's business.
                    ahead.add_done_callback(lambda task: task.cancelled() or task.exception())
                    yield [item[3] for item in fresh], bound
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead

    async def get_incident(self, account: str, incident_id: str) -> dict[str, Any] | None:
        _, data = await self.search_incidents(
            account, size=1, extra_filter={"id": [str(incident_id)]}, sort=[{"field": "id", "asc": True}]
        )
        return data[0] if data else None

    async def create_incident(self, account: str, incident: dict[str, Any]) -> dict[str, Any]:
        """Create an incident (``createInvestigation`` starts its playbook). Not retried once sent:
        a repeat could create it twice."""
        body = {k: v for k, v in incident.items() if k not in ("id", "version")}
        created = await self.http.request_json("POST", self._path(account, "incident"), json=body)
        if not isinstance(created, dict) or not created.get("id"):
            raise VendorError(VendorErrorCategory.BAD_RESPONSE, "XSOAR /incident: no incident in the answer")
        return created

    async def update_incident(
        self,
        account: str,
        incident_id: str,
        changes: dict[str, Any],
        *,
        version: int | None = None,
        attempts: int = 3,
    ) -> dict[str, Any]:
        """Update an incident under XSOAR's optimistic locking.

        With ``version`` the update applies only to that version (a conflict raises, vendor_code
        ``version_mismatch``). Without it the current version is read first and the update is
        re-applied on a conflict, up to ``attempts`` times — for enrichment that only adds fields.
        """
        for attempt in range(1, attempts + 1):
            current = version
            if current is None:
                incident = await self.get_incident(account, incident_id)
                if incident is None:
                    raise VendorError(
                        VendorErrorCategory.NOT_FOUND,
                        f"XSOAR has no incident {incident_id}",
                        status=404,
                        retryable=False,
                    )
                current = int(incident.get("version") or 0)
            body = {**changes, "id": str(incident_id), "version": current}
            try:
                updated = await self.http.request_json("POST", self._path(account, "incident"), json=body)
            except VendorError as exc:
                if exc.vendor_code == "version_mismatch" and version is None and attempt < attempts:
                    continue
                raise
            if not isinstance(updated, dict):
                raise VendorError(
                    VendorErrorCategory.BAD_RESPONSE, "XSOAR /incident: no incident in the answer"
                )
            return updated
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close_incident(
        self, account: str, incident_id: str, *, close_reason: str, close_notes: str = ""
    ) -> dict[str, Any] | None:
        """Close through XSOAR's close call (``POST /incident/batchClose``, the one that runs the
        close flow and stamps ``closed``/``closingUserId``), with the reason and notes. Closing an
        incident twice changes nothing, so a lost answer may be repeated. Answers the closed
        incident, or None when XSOAR updated nothing (unknown, or already closed)."""
        body = {
            "ids": [str(incident_id)],
            "all": False,
            "closeReason": close_reason,
            "closeNotes": close_notes,
            "CustomFields": {},
        }
        answer = await self.http.request_json(
            "POST", self._path(account, "incident/batchClose"), json=body, idempotent=True
        )
        if not isinstance(answer, dict):
            raise VendorError(
                VendorErrorCategory.BAD_RESPONSE, "XSOAR /incident/batchClose: expected an object"
            )
        data = answer.get("data") or []
        return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None

    # ------------------------------------------------------------------------------------ playbooks

    async def search_playbooks(
        self, account: str, *, query: str = "hidden:F AND deprecated:F", size: int = 500
    ) -> list[dict[str, Any]]:
        """``POST /playbook/search``: the playbooks an analyst can run (not hidden, not deprecated)."""
        answer = await self.http.request_json(
            "POST",
            self._path(account, "playbook/search"),
            json={"query": query, "page": 0, "size": size},
            idempotent=True,
        )
        if not isinstance(answer, dict):
            raise VendorError(VendorErrorCategory.BAD_RESPONSE, "XSOAR /playbook/search: expected an object")
        playbooks = answer.get("playbooks") or []
        if not isinstance(playbooks, list) or not all(isinstance(p, dict) for p in playbooks):
            raise VendorError(
                VendorErrorCategory.BAD_RESPONSE, "XSOAR /playbook/search: playbooks is not a list"
            )
        return playbooks

    async def run_playbook(self, account: str, investigation_id: str, playbook_id: str) -> dict[str, Any]:
        """``POST /inv-playbook/new/{playbookId}/{investigationId}``: (re)start a playbook on an
        incident's investigation. Not idempotent (a repeat runs it again): never retried once sent."""
        path = f"inv-playbook/new/{quote(str(playbook_id), safe='')}/{quote(str(investigation_id), safe='')}"
        answer = await self.http.request_json("POST", self._path(account, path), json={})
        return answer if isinstance(answer, dict) else {}

    # ------------------------------------------------------------------------------------ war room

    async def investigation_entries(
        self,
        account: str,
        investigation_id: str,
        *,
        from_time: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The war-room entries created after ``from_time``, oldest first, page by page.

        An investigation that does not exist (a pending incident's playbook never started) has no
        entries rather than being an error.
        """
        after = from_time
        while True:
            body: dict[str, Any] = {"pageSize": page_size}
            if after:
                body["fromTime"] = after
            try:
                answer = await self.http.request_json(
                    "POST",
                    self._path(account, f"investigation/{quote(str(investigation_id), safe='')}"),
                    json=body,
                    idempotent=True,
                )
            except VendorError as exc:
                if exc.category == VendorErrorCategory.NOT_FOUND:
                    return
                raise
            if not isinstance(answer, dict):
                raise VendorError(
                    VendorErrorCategory.BAD_RESPONSE, "XSOAR /investigation: expected an object"
                )
            entries = answer.get("entries") or []
            if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
                raise VendorError(
                    VendorErrorCategory.BAD_RESPONSE, "XSOAR /investigation: entries is not a list"
                )
            if entries:
                yield entries
            if len(entries) < page_size or not isinstance(entries[-1].get("created"), str):
                return
            after = entries[-1]["created"]
