"""ManageEngine ServiceDesk Plus (MSP edition, API v3) simulator: the ITSM the SOC escalates to.

What it reproduces, from the product's v3 conventions and the recorded payloads in
``vendor-samples/sdp``:

* auth: on-premises ``authtoken: <technician key>`` or cloud ``Authorization: Zoho-oauthtoken <token>``
  with an access token the Zoho accounts server issued (``soc_simulators.zoho``, served by this app
  at ``/oauth/v2/token``): it expires after an hour, and an expired, revoked or unknown one is 401;
  the ``Accept: application/vnd.manageengine.sdp.v3+json`` header is expected (a client that omits it
  is answered anyway and counted in ``/_sim/state``, as the server is lenient there).
* lists take ``input_data={"list_info": {...}}`` (``row_count`` at most 100, 1-based ``start_index``,
  ``sort_field``/``sort_order``, ``search_criteria``) and answer ``list_info.has_more_rows``; list
  answers carry ``response_status`` as a *list*, single-record answers as an *object* — as recorded.
* a list row carries the list view's columns only (``LIST_VIEW_COLUMNS``, the recorded list answer's
  keys): no ``udf_fields``, ``account``, ``priority``, ``last_updated_time`` or ``description``
  unless ``list_info.fields_required`` names them (then the row is ``id`` plus those fields). The
  whole record comes from ``GET /requests/{id}``.
* MSP accounts: ``GET /api/v3/accounts``; ``ACCOUNTID=<id>`` scopes requests to one customer.
* requests: list, read, create (``POST``, form field ``input_data``), update (``PUT``); every write
  stamps ``last_updated_time`` with a strictly increasing epoch-millisecond value.
* errors: ``{"response_status": {"status_code": 4000, "status": "failed", "messages": [{"status_code":
  <detail code>, "type": "failed", "message": ...}]}}`` with the documented HTTP status per code.

Routes are served at ``/api/v3/...`` (on-premises) and ``/app/<portal>/api/v3/...`` (cloud).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from soc_simulators import xsoar
from soc_simulators._common import MonotonicClock, RateLimiter, derive_rng, live_lifespan
from soc_simulators.faults import FaultBoard, install_faults
from soc_simulators.xsoar import (
    ChangeIndex,
    FastRandom,
    RandomSource,
    all_of,
    collector_paused,
    rand_between,
    rand_pick,
    rand_weighted,
)
from soc_simulators.zoho import ZohoAccounts, install_zoho_accounts

AUTH_TOKEN = "sdp-demo-key"
SDP_ACCEPT = "application/vnd.manageengine.sdp.v3+json"
MAX_ROW_COUNT = 100  # the server refuses bigger pages
DEFAULT_ROW_COUNT = 10
UDF_SOAR_ID = "udf_sline_4506"  # the single-line user field the SOC keeps the XSOAR incident id in
KNOWN_UDFS = frozenset({UDF_SOAR_ID})
# The columns of the default request list view: the keys of the recorded list answer
# (vendor-samples/sdp/api_v3_requests_list.json). Anything else needs ``fields_required``.
LIST_VIEW_COLUMNS = (
    "requester",
    "template",
    "created_time",
    "has_draft",
    "cancel_flag_comments",
    "display_id",
    "subject",
    "technician",
    "due_by_time",
    "is_service_request",
    "cancellation_requested",
    "has_notes",
    "id",
    "status",
    "group",
)
HISTORY_DAYS = 30
SUCCESS = {"status_code": 2000, "status": "success"}

_MS_MINUTE = 60_000
_MS_HOUR = 60 * _MS_MINUTE
_MS_DAY = 24 * _MS_HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _ref(name: str, ident: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "id": f"1236400000000{ident:05d}", **extra}


# Nested reference objects are shared between requests and never mutated in place: an update
# replaces the whole value, so sharing keeps bulk seeding cheap.
STATUSES: dict[str, dict[str, Any]] = {
    "Open": {
        "in_progress": True,
        "internal_name": "Open",
        "stop_timer": False,
        "color": "#0066ff",
        "name": "Open",
        "id": "123640000000006657",
    },
    "In Progress": {
        "in_progress": True,
        "internal_name": "In Progress",
        "stop_timer": False,
        "color": "#00cccc",
        "name": "In Progress",
        "id": "123640000000006661",
    },
    "On Hold": {
        "in_progress": True,
        "internal_name": "Onhold",
        "stop_timer": True,
        "color": None,
        "name": "On Hold",
        "id": "123640000000006659",
    },
    "Resolved": {
        "in_progress": False,
        "internal_name": "Resolved",
        "stop_timer": True,
        "color": "#00ff66",
        "name": "Resolved",
        "id": "123640000000006663",
    },
    "Closed": {
        "in_progress": False,
        "internal_name": "Closed",
        "stop_timer": True,
        "color": "#006600",
        "name": "Closed",
        "id": "123640000000006667",
    },
}
PRIORITIES: dict[str, dict[str, Any]] = {
    "Low": {"color": "#666666", "name": "Low", "id": "123640000000006801"},
    "Medium": {"color": "#ffcc00", "name": "Medium", "id": "123640000000006803"},
    "High": {"color": "#ff0000", "name": "High", "id": "123640000000006805"},
    "Urgent": {"color": "#cc00cc", "name": "Urgent", "id": "123640000000006807"},
}
# Resolution and first-response targets per priority (hours), as an SLA would set them.
DUE_HOURS = {"Urgent": (4, 1), "High": (8, 2), "Medium": (24, 4), "Low": (72, 8)}
SOAR_PRIORITY = {"P1": "Urgent", "P2": "High", "P3": "Medium", "P4": "Low"}
# Where the recorded payloads show an id (E-Mail, Tier 1, Affects Group, Normal, ...) it is reused.
MODES = {
    "E-Mail": _ref("E-Mail", 6665),
    "Web Form": _ref("Web Form", 6669),
    "Phone Call": _ref("Phone Call", 6679),
}
LEVELS = {name: _ref(name, 6671 + i) for i, name in enumerate(("Tier 1", "Tier 2", "Tier 3"))}
IMPACTS = {
    name: _ref(name, 8036 + i)
    for i, name in enumerate(("Affects Group", "Affects User", "Affects Department", "Affects Business"))
}
URGENCIES = {name: _ref(name, 7921 + i) for i, name in enumerate(("Normal", "Low", "High", "Urgent"))}
REQUEST_TYPES = {name: _ref(name, 8391 + i) for i, name in enumerate(("Incident", "Service Request"))}
TEMPLATE = _ref("Default Request", 6655)
CATEGORIES = {
    name: _ref(name, 9101 + i)
    for i, name in enumerate(("Security", "Network", "User Administration", "Software"))
}
GROUPS = {
    name: {"site": None, "deleted": False, **_ref(name, 6681 + i)}
    for i, name in enumerate(("SOC L1", "SOC L2", "Network", "Service Desk"))
}
# The SOC analysts: the same people who own incidents in the XSOAR simulator.
TECHNICIANS = {
    name: {
        "email_id": f"{login}@socprovider.example",
        "cost_per_hour": "0",
        "phone": None,
        "name": name,
        "mobile": None,
        "id": f"1236400000001425{i:02d}",
        "photo_url": f"https://contacts.zoho.com/file?exp=10&ID={712510951 + i}&t=user&height=60&width=60",
        "sms_mail_id": None,
    }
    for i, (name, login) in enumerate(
        (
            ("Aisha Rahman", "a.rahman"),
            ("John Smith", "j.smith"),
            ("Mei Chen", "m.chen"),
            ("Samuel Okafor", "s.okafor"),
            ("Lucia Garcia", "l.garcia"),
            ("Petr Novak", "p.novak"),
        )
    )
}
SOC_AUTOMATION = {
    "email_id": "soar@socprovider.example",
    "is_technician": True,
    "sms_mail": None,
    "phone": None,
    "name": "SOC Automation",
    "mobile": None,
    "id": "123640000000142582",
    "photo_url": "https://contacts.zoho.com/file?exp=10&ID=712874208&t=user&height=60&width=60",
    "is_vip_user": False,
    "department": None,
}
REQUESTER_NAMES = (
    ("Dana", "Whitfield"),
    ("Omar", "Haddad"),
    ("Grace", "Liu"),
    ("Tomasz", "Kowalski"),
    ("Priya", "Nair"),
    ("Kevin", "Brennan"),
)
SERVICE_REQUESTS = (
    (
        "Whitelist partner IP range on perimeter firewall",
        "Network",
        "Please allow the partner range used for the nightly SFTP transfer. Change window: this weekend.",
    ),
    (
        "VPN access for new contractor",
        "User Administration",
        "New contractor starts Monday and needs VPN access with MFA enrolled.",
    ),
    (
        "Log source not reporting to SIEM",
        "Security",
        "The firewall stopped sending syslog to QRadar yesterday; please check the collector.",
    ),
    ("Review monthly SOC report", "Security", "Questions on the incident counts in last month's SOC report."),
    (
        "Reset MFA token for executive",
        "User Administration",
        "Executive lost their phone; MFA token needs a reset.",
    ),
    (
        "Phishing simulation campaign scheduling",
        "Security",
        "Please schedule the quarterly phishing simulation for the finance department.",
    ),
    (
        "Open port 8443 for new monitoring appliance",
        "Network",
        "Monitoring appliance needs 8443 inbound from the management VLAN.",
    ),
    ("Install EDR agent on new servers", "Software", "Six new application servers need the EDR agent."),
)
RESOLUTIONS = (
    "Contained and remediated by the SOC; root cause documented in the linked SOAR incident.",
    "Confirmed false positive with the customer; detection tuned.",
    "Change implemented and verified with the requester.",
    "Completed as requested.",
)


@dataclass(frozen=True, slots=True)
class SdpAccount:
    id: str
    name: str
    soar_account: str  # the same customer's account name in the XSOAR simulator
    domain: str

    def as_ref(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


ACCOUNTS: tuple[SdpAccount, ...] = tuple(
    SdpAccount(
        id=str(123640000000301001 + i),
        name=account.display_name,
        soar_account=account.name,
        domain=f"{account.name}.example",
    )
    for i, account in enumerate(xsoar.ACCOUNTS)
)

_DAY_TEXT: dict[int, str] = {}


def sdp_time(ms: int) -> dict[str, str]:
    """SDP's time object: epoch milliseconds as a string plus a display value (shown here in UTC)."""
    day, in_day = divmod(ms, _MS_DAY)
    text = _DAY_TEXT.get(day)
    if text is None:
        date = _EPOCH + timedelta(days=day)
        text = _DAY_TEXT[day] = f"{_MONTHS[date.month - 1]} {date.day}, {date.year}"
    hour, minute = divmod(in_day // _MS_MINUTE, 60)
    return {
        "display_value": f"{text} {hour % 12 or 12:02d}:{minute:02d} {'AM' if hour < 12 else 'PM'}",
        "value": str(ms),
    }


class SdpError(Exception):
    """A failure answered with the body every v3 endpoint writes; ``code`` is the documented detail
    code (4001 bad value, 4007 not found, 4012 mandatory field, 4014 read-only or out of range,
    4015 rate limit, 4021 wrong type, 4022 invalid credentials), ``http_status`` its HTTP status."""

    def __init__(
        self,
        http_status: int,
        code: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status, self.code, self.field, self.headers = http_status, code, field, headers

    def response(self) -> JSONResponse:
        detail: dict[str, Any] = {"status_code": self.code, "type": "failed", "message": str(self)}
        if self.field:
            detail["field"] = self.field
        return JSONResponse(
            {"response_status": {"status_code": 4000, "messages": [detail], "status": "failed"}},
            status_code=self.http_status,
            headers=self.headers,
        )


class InputError(SdpError):
    """Bad ``input_data`` or parameters (HTTP 400)."""

    def __init__(self, code: int, message: str, field: str | None = None) -> None:
        super().__init__(400, code, message, field)


class TicketPlan(NamedTuple):
    """Where a seeded request's life stands: enough to build its document on demand."""

    display: int
    priority: str
    soar: tuple[str, str, str] | None  # (XSOAR incident id, subject, description) of an escalation
    steps: tuple[tuple[str, int], ...]  # (status, epoch ms) changes up to seeding time
    seeded_at_ms: int


class TicketRecord:
    """One request: the keys lists filter and sort on, and its JSON document.

    A seeded request builds its document on first read: bulk seeding costs only these numbers,
    and whoever pages through 100k requests pays the rest page by page.
    """

    __slots__ = (
        "num",
        "id",
        "account_id",
        "status",
        "created_ms",
        "updated_ms",
        "history_ms",
        "plan",
        "_doc",
        "_build",
    )

    def __init__(
        self,
        num: int,
        account_id: str,
        status: str,
        created_ms: int,
        updated_ms: int,
        *,
        doc: dict[str, Any] | None = None,
        plan: TicketPlan | None = None,
        build: Callable[[TicketRecord], dict[str, Any]] | None = None,
    ) -> None:
        self.num, self.id, self.account_id, self.status = (
            num,
            str(123640000000000000 + num),
            account_id,
            status,
        )
        self.created_ms, self.updated_ms, self.history_ms = created_ms, updated_ms, updated_ms
        self.plan, self._doc, self._build = plan, doc, build

    @property
    def doc(self) -> dict[str, Any]:
        doc = self._doc
        if doc is None:
            assert self._build is not None
            doc = self._doc = self._build(self)
        return doc

    @property
    def built(self) -> bool:
        """Whether the document exists yet (until then the seeding plan is the truth)."""
        return self._doc is not None


def _updated(rec: TicketRecord) -> int:
    return rec.updated_ms


_TIME_FIELDS = {
    "created_time",
    "last_updated_time",
    "due_by_time",
    "first_response_due_by_time",
    "resolved_time",
    "completed_time",
    "assigned_time",
    "responded_time",
}
_NUMBER_FIELDS = {"id", "display_id"}
_SORT_FIELDS = {"last_updated_time", "created_time", "id", "display_id", "due_by_time"}
_CONDITIONS: dict[str, Callable[[Any, Any], bool]] = {
    "is": lambda a, b: a == b,
    "is not": lambda a, b: a != b,
    "greater than": lambda a, b: a is not None and a > b,
    "greater or equal": lambda a, b: a is not None and a >= b,
    "less than": lambda a, b: a is not None and a < b,
    "lesser than": lambda a, b: a is not None and a < b,
    "less or equal": lambda a, b: a is not None and a <= b,
    "lesser or equal": lambda a, b: a is not None and a <= b,
    "contains": lambda a, b: a is not None and str(b) in str(a),
    "not contains": lambda a, b: a is None or str(b) not in str(a),
    "starts with": lambda a, b: a is not None and str(a).startswith(str(b)),
    "ends with": lambda a, b: a is not None and str(a).endswith(str(b)),
}


@dataclass(frozen=True, slots=True)
class ServiceDeskPace:
    """How the seeded history's requests were worked: its span, the share of week-old requests
    closed, and the (low, high) fractions of the priority's first-response and due-by targets at
    which a technician picked a request up and resolved it (above 1.0: the target was missed)."""

    history_days: int
    closed_after_week: float
    response: tuple[float, float]
    resolution: tuple[float, float]


# The default keeps the original pace (30 days, ~13 % of first responses and ~16 % of resolutions
# late); ``demo`` is a service desk working to its contract over three months, with the XSOAR
# simulator's demo history to escalate from (the same incidents make make up's demo).
SERVICE_DESK_PACES = {
    "default": ServiceDeskPace(
        history_days=30, closed_after_week=0.85, response=(0.05, 1.2), resolution=(0.2, 1.15)
    ),
    "demo": ServiceDeskPace(
        history_days=90, closed_after_week=0.95, response=(0.05, 1.04), resolution=(0.2, 1.03)
    ),
}


class SdpSim:
    """In-memory state of one simulated ServiceDesk Plus MSP server."""

    def __init__(
        self,
        seed: int = 7,
        *,
        requests: int | None = None,
        xsoar_incidents: int = xsoar.DEFAULT_INCIDENTS,
        auth_token: str = AUTH_TOKEN,
        zoho: ZohoAccounts | None = None,
        rate_limit_per_minute: int | None = None,
        profile: str = "default",
    ) -> None:
        self.seed = seed
        self.profile = profile
        self.pace = SERVICE_DESK_PACES[profile]
        self.rng = derive_rng(seed, "sdp", "life")
        self.clock = MonotonicClock(units_per_second=1000)
        self.accounts: dict[str, SdpAccount] = {account.id: account for account in ACCOUNTS}
        self.auth_token = auth_token
        self.zoho = zoho or ZohoAccounts()
        self.rate_limiter = RateLimiter(rate_limit_per_minute) if rate_limit_per_minute else None
        self.records: dict[str, TicketRecord] = {}  # insertion order is id order
        self.active_ids: dict[str, None] = {}  # requests not yet closed
        self._by_updated: ChangeIndex[TicketRecord] = ChangeIndex(_updated)
        self._by_account_updated: dict[str, ChangeIndex[TicketRecord]] = {}
        self.next_num = 215001
        self.next_display = 1
        self.ticks = 0
        self.accept_mismatches = 0
        self.notes: dict[str, list[dict[str, Any]]] = {}  # request id -> its notes, oldest first
        self.next_note = 1
        self.linked_soar_ids: set[str] = set()
        self.soar_incidents: list[tuple[str, str, str, str]] = []  # (id, account, name, priority)
        self.faults: FaultBoard | None = None
        self._seed_history(xsoar_incidents, requests)

    # ----------------------------------------------------------------------------------- generation

    def _seed_history(self, xsoar_incidents: int, extra_requests: int | None) -> None:
        """Tickets for the serious incidents the XSOAR simulator (same seed) starts with, plus
        ordinary service requests, so the demo joins SOAR incidents to ITSM tickets."""
        rng = derive_rng(self.seed, "sdp", "history")
        soar = xsoar.XsoarSim(self.seed, incidents=xsoar_incidents, profile=self.profile)
        now_ms = self.clock.wall()
        by_soar_account = {account.soar_account: account for account in self.accounts.values()}
        wanted: list[tuple[int, SdpAccount, dict[str, Any] | None]] = []
        for rec in soar.records.values():
            doc = rec.doc
            account = by_soar_account.get(rec.account)
            if account is None:
                continue
            fields = doc["CustomFields"]
            self.soar_incidents.append((doc["id"], rec.account, doc["name"], fields["incidentpriority"]))
            escalate = doc["severity"] >= 3 or (doc["severity"] >= 2 and rng.random() < 0.25)
            created_ms = rec.created_us // 1000 + rand_between(rng, 5 * _MS_MINUTE, 90 * _MS_MINUTE)
            if escalate and created_ms < now_ms - _MS_MINUTE:
                wanted.append((created_ms, account, doc))
        for _ in range(extra_requests if extra_requests is not None else len(wanted) // 2 + 40):
            created_ms = now_ms - rand_between(rng, _MS_HOUR, self.pace.history_days * _MS_DAY)
            wanted.append((created_ms, rand_pick(rng, list(self.accounts.values())), None))
        wanted.sort(key=lambda item: item[0])
        self._add_history(rng, wanted, now_ms)

    def seed_requests(self, count: int, rng: Random, account_id: str | None = None) -> list[TicketRecord]:
        """Bulk history for benchmarks: ``count`` service requests spread over the last 30 days."""
        now_ms = self.clock.wall()
        accounts = list(self.accounts.values())
        wanted: list[tuple[int, SdpAccount, dict[str, Any] | None]] = sorted(
            (
                (
                    now_ms - rand_between(rng, _MS_HOUR, HISTORY_DAYS * _MS_DAY),
                    self.accounts[account_id] if account_id else rand_pick(rng, accounts),
                    None,
                )
                for _ in range(count)
            ),
            key=lambda item: item[0],
        )
        return self._add_history(rng, wanted, now_ms)

    def _add_history(
        self, rng: Random, wanted: list[tuple[int, SdpAccount, dict[str, Any] | None]], now_ms: int
    ) -> list[TicketRecord]:
        made: list[TicketRecord] = []
        with collector_paused():
            used = {rec.updated_ms for rec in self.records.values()}
            for created_ms, account, soar in wanted:
                rec = self._plan_ticket(rng, account, created_ms, now_ms, soar)
                # No two requests share a ``last_updated_time``, so a ``greater than`` cursor skips none.
                while rec.updated_ms in used:
                    rec.updated_ms += 1
                used.add(rec.updated_ms)
                rec.history_ms = rec.updated_ms
                self._store(rec)
                made.append(rec)
            self._rebuild_indexes()
        if made:
            self.clock.raise_floor(max(rec.updated_ms for rec in made))
        return made

    def _allocate(self, rng: RandomSource) -> tuple[int, int]:
        """The next request number and display id; numbers grow with gaps, as the server allocates."""
        num, display = self.next_num, self.next_display
        self.next_num += 1 + int(rng.random() * 4)
        self.next_display += 1
        return num, display

    def _plan_ticket(
        self, rng: Random, account: SdpAccount, created_ms: int, now_ms: int, soar: dict[str, Any] | None
    ) -> TicketRecord:
        """A request as it stands today: most met their SLA (picked up within the first-response
        target, resolved within the due-by), some did not, a few are still open."""
        num, display = self._allocate(rng)
        escalation: tuple[str, str, str] | None = None
        if soar is not None:
            fields = soar["CustomFields"]
            priority = SOAR_PRIORITY.get(fields.get("incidentpriority", "P3"), "Medium")
            rule = (fields.get("listofrulesoffense") or [soar["name"]])[0]
            escalation = (
                soar["id"],
                f"Security incident #{soar['id']}: {rule}",
                f"{soar['details']}\nRaised by the SOC from Cortex XSOAR incident {soar['id']} "
                f"({fields.get('incidentpriority', 'P3')}). Affected asset: {fields.get('configurationitem', 'n/a')}.",
            )
            self.linked_soar_ids.add(soar["id"])
        else:
            priority = rand_weighted(rng, ("Low", "Medium", "High", "Urgent"), (30, 45, 20, 5))
        due_hours, response_hours = DUE_HOURS[priority]
        if (soar is not None and soar["status"] == 2) or (
            now_ms - created_ms > 7 * _MS_DAY and rng.random() < self.pace.closed_after_week
        ):
            done = 3
        else:
            done = rand_weighted(rng, (0, 1, 2, 3), (15, 35, 20, 30))
        step_at = (
            created_ms + int(rng.uniform(*self.pace.response) * response_hours * _MS_HOUR),
            created_ms + int(rng.uniform(*self.pace.resolution) * due_hours * _MS_HOUR),
        )
        steps: list[tuple[str, int]] = []
        at_ms = created_ms
        for index, status in enumerate(("In Progress", "Resolved", "Closed")[:done]):
            nxt = step_at[index] if index < 2 else at_ms + rand_between(rng, _MS_HOUR, 72 * _MS_HOUR)
            nxt = max(nxt, at_ms + _MS_MINUTE)
            if nxt >= now_ms - _MS_MINUTE:
                break
            at_ms = nxt
            steps.append((status, at_ms))
        if steps and steps[-1][0] == "In Progress" and rng.random() < 0.15:
            at_ms = min(at_ms + rand_between(rng, _MS_MINUTE, 4 * _MS_HOUR), now_ms - 1)
            steps.append(("On Hold", at_ms))
        plan = TicketPlan(display, priority, escalation, tuple(steps), now_ms)
        return TicketRecord(
            num,
            account.id,
            steps[-1][0] if steps else "Open",
            created_ms,
            at_ms,
            plan=plan,
            build=self._build_history_doc,
        )

    def _build_history_doc(self, rec: TicketRecord) -> dict[str, Any]:
        """The document of a seeded request, from its plan and a per-request random stream."""
        plan = rec.plan
        assert plan is not None
        rng = FastRandom(self.seed, rec.num)
        account = self.accounts[rec.account_id]
        if plan.soar is not None:
            soar_id, subject, description = plan.soar
            category: str | None = "Security"
        else:
            soar_id = None
            subject, category, description = rand_pick(rng, SERVICE_REQUESTS)
        doc = self._blank_doc(
            rng,
            rec.num,
            plan.display,
            account,
            rec.created_ms,
            subject=subject,
            description=description,
            priority=plan.priority,
            soar_id=soar_id,
            category=category,
        )
        for status, at_ms in plan.steps:
            _apply_status(rng, doc, rec.created_ms, status, at_ms)
        doc["has_notes"] = bool(plan.steps) and rng.random() < 0.6
        _refresh_overdue(doc, plan.seeded_at_ms)
        doc["last_updated_time"] = sdp_time(rec.history_ms)
        return doc

    def _blank_doc(
        self,
        rng: RandomSource,
        num: int,
        display: int,
        account: SdpAccount,
        created_ms: int,
        *,
        subject: str,
        description: str,
        priority: str,
        soar_id: str | None,
        category: str | None,
        requester: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new Open request as the server stores it: every key the recorded payloads have."""
        due_hours, response_hours = DUE_HOURS[priority]
        if requester is None:
            requester = SOC_AUTOMATION if soar_id else self._requester(account, rand_between(rng, 0, 3))
        created = sdp_time(created_ms)
        return {
            "id": str(123640000000000000 + num),
            "display_id": str(display),
            "subject": subject,
            "short_description": _short_description(description),
            "description": description,
            "status": STATUSES["Open"],
            "priority": PRIORITIES[priority],
            "is_overdue": False,
            "is_first_response_overdue": False,
            "created_time": created,
            "last_updated_time": created,
            "due_by_time": sdp_time(created_ms + due_hours * _MS_HOUR),
            "first_response_due_by_time": sdp_time(created_ms + response_hours * _MS_HOUR),
            "assigned_time": None,
            "responded_time": None,
            "resolved_time": None,
            "completed_time": None,
            "deleted_time": None,
            "created_by": requester,
            "requester": requester,
            "technician": None,
            "group": GROUPS["SOC L1"] if soar_id else None,
            "site": {"name": f"{account.name} - HQ", "id": str(int(account.id) + 500)},
            "account": account.as_ref(),
            "udf_fields": {UDF_SOAR_ID: soar_id},
            "mode": MODES["E-Mail"] if soar_id is None and rng.random() < 0.5 else MODES["Web Form"],
            "level": LEVELS["Tier 2"] if soar_id else LEVELS["Tier 1"],
            "impact": IMPACTS["Affects Business"] if priority == "Urgent" else IMPACTS["Affects Group"],
            "urgency": URGENCIES[
                "Urgent" if priority == "Urgent" else "High" if priority == "High" else "Normal"
            ],
            "request_type": REQUEST_TYPES["Incident" if soar_id else "Service Request"],
            "template": TEMPLATE,
            "category": CATEGORIES[category] if category else None,
            "subcategory": None,
            "item": None,
            "sla": None,
            "lifecycle": None,
            "resolution": None,
            "linked_to_request": None,
            "approval_status": None,
            "onhold_scheduler": None,
            "impact_details": None,
            "notification_status": None,
            "cancel_flag_comments": None,
            "department": None,
            "time_elapsed": "0",
            "unreplied_count": 0,
            "email_to": [],
            "email_cc": [],
            "email_bcc": [],
            "email_ids_to_notify": [],
            "attachments": [],
            "is_read": False,
            "is_trashed": False,
            "is_escalated": False,
            "is_service_request": soar_id is None,
            "is_reopened": False,
            "is_fcr": False,
            "cancellation_requested": False,
            "has_notes": False,
            "has_draft": False,
            "has_attachments": False,
            "has_linked_requests": False,
            "has_problem": False,
            "has_project": False,
            "has_request_initiated_change": False,
        }

    @staticmethod
    def _requester(account: SdpAccount, index: int) -> dict[str, Any]:
        first, last = REQUESTER_NAMES[(index + len(account.domain)) % len(REQUESTER_NAMES)]
        return {
            "email_id": f"{first.lower()}.{last.lower()}@{account.domain}",
            "is_technician": False,
            "sms_mail": None,
            "phone": None,
            "name": f"{first} {last}",
            "mobile": None,
            "id": str(int(account.id) + 1000 + index),
            "photo_url": None,
            "is_vip_user": False,
            "department": None,
        }

    def _change_status(self, rng: RandomSource, rec: TicketRecord, status: str, at_ms: int) -> None:
        _apply_status(rng, rec.doc, rec.created_ms, status, at_ms)
        rec.status = status
        self._store(rec)

    # ----------------------------------------------------------------------------------- bookkeeping

    def _store(self, rec: TicketRecord) -> None:
        self.records[rec.id] = rec
        if rec.status == "Closed":
            self.active_ids.pop(rec.id, None)
        else:
            self.active_ids[rec.id] = None

    def _rebuild_indexes(self) -> None:
        ordered = sorted(self.records.values(), key=_updated)
        self._by_updated = ChangeIndex(_updated, ordered)
        per_account: dict[str, list[TicketRecord]] = {}
        for rec in ordered:
            per_account.setdefault(rec.account_id, []).append(rec)
        self._by_account_updated = {key: ChangeIndex(_updated, recs) for key, recs in per_account.items()}

    def _index(self, rec: TicketRecord) -> None:
        self._by_updated.append(rec)
        self._by_account_updated.setdefault(rec.account_id, ChangeIndex(_updated)).append(rec)

    def _touch(self, rec: TicketRecord) -> int:
        """Record a write: ``last_updated_time`` takes a new strictly increasing value."""
        doc = rec.doc  # a seeded request's document is built before it changes
        now_ms = self.clock.next()
        rec.updated_ms = now_ms
        doc["last_updated_time"] = sdp_time(now_ms)
        self._by_updated.superseded()
        self._by_account_updated[rec.account_id].superseded()
        self._index(rec)
        return now_ms

    def _add_live(self, rec: TicketRecord) -> TicketRecord:
        self._store(rec)
        self._index(rec)
        if rec.doc["udf_fields"][UDF_SOAR_ID]:
            self.linked_soar_ids.add(str(rec.doc["udf_fields"][UDF_SOAR_ID]))
        return rec

    def new_live_ticket(self, rng: Random, account: SdpAccount | None = None) -> TicketRecord:
        """A request raised now: half are SOC escalations of an XSOAR incident not yet ticketed."""
        now_ms = self.clock.next()
        num, display = self._allocate(rng)
        candidates = [
            inc
            for inc in self.soar_incidents
            if inc[0] not in self.linked_soar_ids and (account is None or inc[1] == account.soar_account)
        ]
        if candidates and rng.random() < 0.5:
            soar_id, soar_account, name, priority = rand_pick(rng, candidates)
            target = account or next(a for a in self.accounts.values() if a.soar_account == soar_account)
            doc = self._blank_doc(
                rng,
                num,
                display,
                target,
                now_ms,
                subject=f"Security incident #{soar_id}: {name}",
                description=f"Escalated by the SOC from Cortex XSOAR incident {soar_id}.",
                priority=SOAR_PRIORITY.get(priority, "Medium"),
                soar_id=soar_id,
                category="Security",
            )
        else:
            target = account or rand_pick(rng, list(self.accounts.values()))
            subject, category, description = rand_pick(rng, SERVICE_REQUESTS)
            doc = self._blank_doc(
                rng,
                num,
                display,
                target,
                now_ms,
                subject=subject,
                description=description,
                category=category,
                priority=rand_weighted(rng, ("Low", "Medium", "High", "Urgent"), (30, 45, 20, 5)),
                soar_id=None,
            )
        return self._add_live(TicketRecord(num, target.id, "Open", now_ms, now_ms, doc=doc))

    # ----------------------------------------------------------------------------------- life

    def tick(self) -> dict[str, Any]:
        """One step of service-desk life: new requests, status moves, SLA clocks running out."""
        rng = self.rng
        self.ticks += 1
        changes: dict[str, Any] = {
            "tick": self.ticks,
            "created": [],
            "status_changed": {},
            "overdue_changed": {},
        }
        for _ in range(rand_between(rng, 1, 3)):
            changes["created"].append(self.new_live_ticket(rng).id)
        flow = {
            "Open": "In Progress",
            "In Progress": "Resolved",
            "On Hold": "In Progress",
            "Resolved": "Closed",
        }
        active = list(self.active_ids)
        for request_id in rng.sample(active, min(len(active), rand_between(rng, 3, 6))):
            rec = self.records[request_id]
            nxt = "On Hold" if rec.status == "In Progress" and rng.random() < 0.15 else flow[rec.status]
            now_ms = self._touch(rec)
            self._change_status(rng, rec, nxt, now_ms)
            rec.doc["has_notes"] = rec.doc["has_notes"] or rng.random() < 0.5
            _refresh_overdue(rec.doc, now_ms)
            changes["status_changed"][request_id] = nxt
        # SLA clocks: look at a sample of the unresolved requests (a full pass over a bulk-seeded
        # desk would build every document each tick).
        now_ms = self.clock.wall()
        running = [i for i in active if self.records[i].status in ("Open", "In Progress", "On Hold")]
        sample = [self.records[i] for i in rng.sample(running, min(len(running), 50))]
        late = [rec for rec in sample if not rec.doc["is_overdue"] and _due_passed(rec.doc, now_ms)]
        for rec in late[:2]:
            self._touch(rec)
            rec.doc["is_overdue"] = True
            changes["overdue_changed"][rec.id] = True
        overdue = [
            rec for rec in sample if rec.doc["is_overdue"] and rec.id not in changes["overdue_changed"]
        ]
        if overdue and rng.random() < 0.3:
            # The technician negotiated a new due date: the request is no longer overdue.
            rec = rand_pick(rng, overdue)
            now_ms = self._touch(rec)
            rec.doc["due_by_time"] = sdp_time(now_ms + 24 * _MS_HOUR)
            rec.doc["is_overdue"] = False
            changes["overdue_changed"][rec.id] = False
        return changes

    # ----------------------------------------------------------------------------------- list

    def list_requests(self, list_info: dict[str, Any], account_id: str | None) -> dict[str, Any]:
        """``GET /api/v3/requests``: one page of ``list_info`` and whether more rows follow."""
        row_count = _int_field(list_info, "row_count", DEFAULT_ROW_COUNT)
        start_index = _int_field(list_info, "start_index", 1)
        if not 1 <= row_count <= MAX_ROW_COUNT:
            raise InputError(4014, f"row_count must be between 1 and {MAX_ROW_COUNT}", "row_count")
        if start_index < 1:
            raise InputError(4014, "start_index must be 1 or more", "start_index")
        sort_field = str(list_info.get("sort_field") or "created_time")
        if sort_field not in _SORT_FIELDS:
            raise InputError(4001, f"Sorting is not supported on {sort_field!r}", "sort_field")
        sort_order = str(list_info.get("sort_order") or "asc").lower()
        if sort_order not in ("asc", "desc"):
            raise InputError(4001, "sort_order must be asc or desc", "sort_order")
        predicates: list[Callable[[TicketRecord], bool]] = []
        low = high = None
        criteria = list_info.get("search_criteria")
        if criteria:
            criteria_list = criteria if isinstance(criteria, list) else [criteria]
            low, high, rest = _split_updated_bounds(criteria_list)
            if rest:
                predicates.append(self._compile_criteria(rest))
        search_fields = list_info.get("search_fields")
        if search_fields:
            if not isinstance(search_fields, dict):
                raise InputError(4000, "search_fields must be an object", "search_fields")
            for field, value in search_fields.items():
                predicates.append(_text_contains(self._getter(str(field)), str(value).lower()))
        candidates = self._candidates(sort_field, sort_order == "asc", account_id, low, high)
        first, last = start_index - 1, start_index - 1 + row_count
        match = all_of(predicates)
        if match is None:
            # Nothing left to test: the index answers by slicing, whatever the desk's size.
            total, page = len(candidates), [rec.doc for rec in candidates[first:last]]
        else:
            total, page = 0, []
            for rec in candidates:
                if match(rec):
                    if first <= total < last:
                        page.append(rec.doc)
                    total += 1
        fields_required = list_info.get("fields_required")
        if fields_required:
            page = [_project(doc, fields_required) for doc in page]
        else:
            page = [{key: doc[key] for key in LIST_VIEW_COLUMNS} for doc in page]
        info: dict[str, Any] = {
            "has_more_rows": last < total,
            "start_index": start_index,
            "row_count": len(page),
            "sort_field": sort_field,
            "sort_order": sort_order,
        }
        if list_info.get("get_total_count") in (True, "true"):
            info["total_count"] = total
        return {"requests": page, "list_info": info, "response_status": [SUCCESS]}

    def _candidates(
        self, sort_field: str, ascending: bool, account_id: str | None, low: int | None, high: int | None
    ) -> list[TicketRecord]:
        """The account's requests within the ``last_updated_time`` bounds, in the asked order."""
        if sort_field == "last_updated_time":
            index = self._by_updated if account_id is None else self._by_account_updated.get(account_id)
            found = index.window(low, high) if index is not None else []
        else:
            found = [
                rec
                for rec in self.records.values()  # kept in id order
                if (account_id is None or rec.account_id == account_id)
                and (low is None or rec.updated_ms >= low)
                and (high is None or rec.updated_ms < high)
            ]
            if sort_field != "id":
                found.sort(key=_SORT_KEYS[sort_field])
        if not ascending:
            found.reverse()
        return found

    def _getter(self, field: str) -> Callable[[TicketRecord], Any]:
        """Read a (dotted) field the way search criteria compare it: times and ids as numbers."""
        base = field.removesuffix(".value")
        if base in _TIME_FIELDS:
            if base == "last_updated_time":
                return lambda rec: rec.updated_ms
            if base == "created_time":
                return lambda rec: rec.created_ms
            return lambda rec: int(rec.doc[base]["value"]) if rec.doc[base] else None
        if base == "id":
            return lambda rec: rec.num + 123640000000000000
        if base in _NUMBER_FIELDS:
            return lambda rec: int(rec.doc[base])
        # The fields lists are most often filtered on come from the record (or the seeding plan), so
        # a filter over a bulk-seeded desk does not build every document.
        if field == "status.name":
            return lambda rec: rec.status
        if field in ("account.id", "account.name"):
            names = {account.id: account.name for account in self.accounts.values()}
            return (
                (lambda rec: rec.account_id) if field == "account.id" else (lambda rec: names[rec.account_id])
            )
        if field == "priority.name":
            return lambda rec: (
                rec.plan.priority if rec.plan is not None and not rec.built else rec.doc["priority"]["name"]
            )
        if field == f"udf_fields.{UDF_SOAR_ID}":
            return lambda rec: (
                (rec.plan.soar[0] if rec.plan.soar else None)
                if rec.plan is not None and not rec.built
                else rec.doc["udf_fields"][UDF_SOAR_ID]
            )
        head, _, rest = field.partition(".")
        # Every request document has the same keys; ask one which fields exist.
        known = next(iter(self.records.values())).doc if self.records else {head: None}
        if head not in known or (head == "udf_fields" and rest and rest not in KNOWN_UDFS):
            raise InputError(4001, f"Field {field!r} is not available for search", "search_criteria")

        def read(rec: TicketRecord) -> Any:
            value: Any = rec.doc.get(head)
            for part in rest.split(".") if rest else ():
                value = value.get(part) if isinstance(value, dict) else None
            return value

        return read

    def _compile_criteria(self, criteria: list[Any]) -> Callable[[TicketRecord], bool]:
        """SDP criteria combine left to right with each criterion's ``logical_operator``;
        ``children`` continue the chain of their parent (that is how the UI builds groups)."""
        steps: list[tuple[str, Callable[[TicketRecord], bool]]] = []
        for index, criterion in enumerate(criteria):
            if not isinstance(criterion, dict):
                raise InputError(4000, "each search_criteria entry must be an object", "search_criteria")
            operator = str(criterion.get("logical_operator") or "AND").upper()
            if operator not in ("AND", "OR"):
                raise InputError(
                    4001, f"logical_operator must be AND or OR, not {operator!r}", "search_criteria"
                )
            test = self._criterion(criterion)
            children = criterion.get("children")
            if children:
                if not isinstance(children, list):
                    raise InputError(4000, "children must be a list", "search_criteria")
                child_steps = [
                    (
                        str(child.get("logical_operator") or "AND").upper()
                        if isinstance(child, dict)
                        else "AND",
                        self._compile_criteria([child]),
                    )
                    for child in children
                ]
                test = _chain([("AND", test), *child_steps])
            steps.append(("AND" if index == 0 else operator, test))
        return _chain(steps)

    def _criterion(self, criterion: dict[str, Any]) -> Callable[[TicketRecord], bool]:
        field = criterion.get("field")
        condition = str(criterion.get("condition") or "").lower()
        if not isinstance(field, str) or not field:
            raise InputError(4012, "search_criteria needs a field", "field")
        getter = self._getter(field)
        base = field.removesuffix(".value")
        numeric = base in _TIME_FIELDS or base in _NUMBER_FIELDS
        raw_values = criterion.get("values") if "values" in criterion else [criterion.get("value")]
        if not isinstance(raw_values, list) or not raw_values:
            raise InputError(4000, "values must be a non-empty list", "values")
        values = [_coerce(value, numeric, field) for value in raw_values]
        if condition in ("between", "not between"):
            if len(values) != 2:
                raise InputError(4000, f"{condition} needs two values", "values")
            low, high = values
            inside = lambda rec: (v := getter(rec)) is not None and low <= v <= high  # noqa: E731
            return inside if condition == "between" else (lambda rec: not inside(rec))
        compare = _CONDITIONS.get(condition)
        if compare is None:
            raise InputError(4001, f"Condition {criterion.get('condition')!r} is not supported", "condition")
        text = not numeric

        def matches(rec: TicketRecord) -> bool:
            value = getter(rec)
            if text and value is not None:
                value = str(value).lower() if not isinstance(value, bool) else value
            if condition == "is not" or condition == "not contains":
                return all(compare(value, wanted) for wanted in values)
            return any(compare(value, wanted) for wanted in values)

        return matches

    # ----------------------------------------------------------------------------------- writes

    def create(self, payload: dict[str, Any], account_id: str | None) -> TicketRecord:
        """``POST /api/v3/requests``: a new Open request (``subject`` and the account are mandatory)."""
        fields = payload.get("request")
        if not isinstance(fields, dict):
            raise InputError(4012, "input_data needs a request object", "request")
        subject = fields.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise InputError(4012, "Value for mandatory-field is not provided", "subject")
        description = fields.get("description") or ""
        if not isinstance(description, str):
            raise InputError(4021, "description must be a string", "description")
        account = self._resolve_account(fields.get("account"), account_id)
        requester = self._resolve_requester(fields.get("requester"), account)
        priority = _resolve(PRIORITIES, fields["priority"], "priority") if fields.get("priority") else None
        udf = self._check_udf(fields.get("udf_fields"))
        rng = derive_rng(self.seed, "sdp", "api", self.next_num)
        now_ms = self.clock.next()
        num, display = self._allocate(rng)
        doc = self._blank_doc(
            rng,
            num,
            display,
            account,
            now_ms,
            subject=subject.strip(),
            description=description,
            priority=priority["name"] if priority else "Medium",
            soar_id=udf.get(UDF_SOAR_ID),
            category=None,
            requester=requester,
        )
        doc.update(created_by=requester, mode=MODES["Web Form"], udf_fields={UDF_SOAR_ID: None, **udf})
        rec = TicketRecord(num, account.id, "Open", now_ms, now_ms, doc=doc)
        rest = {
            k: v
            for k, v in fields.items()
            if k not in ("subject", "description", "requester", "account", "priority", "udf_fields")
        }
        self._apply(rng, rec, rest, None)  # refuse bad fields before the request exists
        self._apply(rng, rec, rest, now_ms)
        return self._add_live(rec)

    def update(self, rec: TicketRecord, payload: dict[str, Any]) -> TicketRecord:
        """``PUT /api/v3/requests/{id}``: change writable fields; refuses read-only ones (4014)."""
        fields = payload.get("request")
        if not isinstance(fields, dict):
            raise InputError(4012, "input_data needs a request object", "request")
        for read_only in (
            "id",
            "display_id",
            "created_time",
            "created_by",
            "last_updated_time",
            "account",
            "deleted_time",
        ):
            if read_only in fields:
                raise InputError(4014, f"{read_only} is a read-only field", read_only)
        if "subject" in fields and (not isinstance(fields["subject"], str) or not fields["subject"].strip()):
            raise InputError(4012, "Value for mandatory-field is not provided", "subject")
        rng = derive_rng(self.seed, "sdp", "api", rec.num, rec.updated_ms)
        # Validate everything before the first change, so a refused update leaves the request intact.
        self._apply(rng, rec, fields, None)
        now_ms = self._touch(rec)
        self._apply(rng, rec, fields, now_ms)
        _refresh_overdue(rec.doc, now_ms)
        return rec

    def add_note(
        self, rec: TicketRecord, payload: dict[str, Any], key: str = "request_note"
    ) -> dict[str, Any]:
        """``POST /api/v3/requests/{id}/notes``: the note object is ``note`` on the on-premises
        edition and ``request_note`` on the cloud one (each edition's v3 documentation; the
        on-premises ``request_note`` of older builds is not accepted), ``description`` is mandatory;
        the note is added by the key's technician. ``mark_first_response`` sets ``responded_time``
        when the request has none. The request's ``last_updated_time`` moves here — an assumption:
        neither edition's documentation says whether a note touches the request, and nothing of ours
        depends on it (notes are not synced; an action's outcome comes from this answer)."""
        note = payload.get(key)
        if not isinstance(note, dict):
            raise InputError(4012, f"input_data needs a {key} object", key)
        description = note.get("description")
        if not isinstance(description, str) or not description.strip():
            raise InputError(4012, "Value for mandatory-field is not provided", "description")
        flags = {}
        for key in (
            "show_to_requester",
            "notify_technician",
            "mark_first_response",
            "add_to_linked_requests",
        ):
            value = note.get(key, False)
            if not isinstance(value, bool):
                raise InputError(4001, f"Value given for {key} is not valid", key)
            flags[key] = value
        now_ms = self._touch(rec)
        if flags["mark_first_response"] and rec.doc["responded_time"] is None:
            rec.doc["responded_time"] = sdp_time(now_ms)
        created = {
            "id": str(123640000000500000 + self.next_note),
            "description": description,
            **flags,
            "added_time": sdp_time(now_ms),
            "last_updated_time": sdp_time(now_ms),
            "added_by": SOC_AUTOMATION,
            "last_updated_by": SOC_AUTOMATION,
        }
        self.next_note += 1
        self.notes.setdefault(rec.id, []).append(created)
        return created

    def _apply(self, rng: Random, rec: TicketRecord, fields: dict[str, Any], now_ms: int | None) -> None:
        """Resolve and (when ``now_ms`` is given) apply writable fields; ``None`` only validates."""
        doc = rec.doc
        changes: dict[str, Any] = {}
        for key, table in (
            ("priority", PRIORITIES),
            ("technician", TECHNICIANS),
            ("group", GROUPS),
            ("mode", MODES),
            ("level", LEVELS),
            ("impact", IMPACTS),
            ("urgency", URGENCIES),
            ("request_type", REQUEST_TYPES),
            ("category", CATEGORIES),
        ):
            if key in fields:
                changes[key] = None if fields[key] is None else _resolve(table, fields[key], key)
        status = _resolve(STATUSES, fields["status"], "status")["name"] if fields.get("status") else None
        for key in ("subject", "description"):
            if key in fields:
                if not isinstance(fields[key], str):
                    raise InputError(4021, f"{key} must be a string", key)
                changes[key] = fields[key]
        if "udf_fields" in fields:
            changes["udf_fields"] = {**doc["udf_fields"], **self._check_udf(fields["udf_fields"])}
        if "resolution" in fields:
            resolution = fields["resolution"]
            content = resolution.get("content") if isinstance(resolution, dict) else None
            if not isinstance(content, str):
                raise InputError(4000, "resolution needs a content string", "resolution")
            changes["resolution"] = {"content": content}
        if now_ms is None:
            return
        doc.update(changes)
        if "description" in changes:
            doc["short_description"] = _short_description(changes["description"])
        if "priority" in changes and changes["priority"] is not None:
            due_hours, _ = DUE_HOURS[changes["priority"]["name"]]
            doc["due_by_time"] = sdp_time(rec.created_ms + due_hours * _MS_HOUR)
        if "technician" in changes and changes["technician"] is not None and doc["assigned_time"] is None:
            doc["assigned_time"] = sdp_time(now_ms)
        if status and status != rec.status:
            self._change_status(rng, rec, status, now_ms)

    def _resolve_account(self, given: Any, account_id: str | None) -> SdpAccount:
        if account_id is not None:
            return self.accounts[account_id]
        if isinstance(given, dict):
            for account in self.accounts.values():
                if given.get("id") == account.id or (
                    not given.get("id") and given.get("name") == account.name
                ):
                    return account
            raise InputError(4001, "Value given for account is not valid", "account")
        # The MSP edition files every request under a customer account.
        raise InputError(4012, "Value for mandatory-field is not provided", "account")

    def _resolve_requester(self, given: Any, account: SdpAccount) -> dict[str, Any]:
        if given is None:
            return SOC_AUTOMATION
        if not isinstance(given, dict) or not (given.get("name") or given.get("email_id") or given.get("id")):
            raise InputError(4001, "Value given for requester is not valid", "requester")
        known = [SOC_AUTOMATION, *(self._requester(account, i) for i in range(3))]
        for person in known:
            if any(given.get(key) and given.get(key) == person[key] for key in ("id", "email_id", "name")):
                return person
        # SDP adds an unknown requester on the fly.
        name = str(given.get("name") or given.get("email_id"))
        return {
            "email_id": given.get("email_id"),
            "is_technician": False,
            "sms_mail": None,
            "phone": None,
            "name": name,
            "mobile": None,
            "id": str(int(account.id) + 5000 + len(name)),
            "photo_url": None,
            "is_vip_user": False,
            "department": None,
        }

    @staticmethod
    def _check_udf(given: Any) -> dict[str, Any]:
        if given is None:
            return {}
        if not isinstance(given, dict):
            raise InputError(4000, "udf_fields must be an object", "udf_fields")
        for key in given:
            if key not in KNOWN_UDFS:
                raise InputError(4001, f"Value given for udf_fields.{key} is not valid", f"udf_fields.{key}")
        return {key: None if value is None else str(value) for key, value in given.items()}

    # ----------------------------------------------------------------------------------- control

    def state(self) -> dict[str, Any]:
        names = {account.id: account.name for account in self.accounts.values()}
        return {
            "requests": len(self.records),
            "active": len(self.active_ids),
            "by_account": {
                names[k]: v for k, v in Counter(rec.account_id for rec in self.records.values()).items()
            },
            "by_status": dict(Counter(rec.doc["status"]["name"] for rec in self.records.values())),
            "linked_to_soar": sum(
                1 for rec in self.records.values() if rec.doc["udf_fields"].get(UDF_SOAR_ID)
            ),
            "overdue": sum(1 for rec in self.records.values() if rec.doc["is_overdue"]),
            "accounts": [account.as_ref() for account in self.accounts.values()],
            "accept_header_mismatches": self.accept_mismatches,
            "last_updated_time": self.clock.last,
            "ticks": self.ticks,
        }


_SORT_KEYS: dict[str, Callable[[TicketRecord], Any]] = {
    "created_time": lambda rec: (rec.created_ms, rec.num),
    "display_id": lambda rec: int(rec.doc["display_id"]),
    "due_by_time": lambda rec: (
        int(rec.doc["due_by_time"]["value"]) if rec.doc["due_by_time"] else 0,
        rec.num,
    ),
}


def _short_description(description: str) -> str:
    """SDP's plain-text preview of the description."""
    short = description.replace("\n", " ")
    return short if len(short) <= 100 else short[:97] + "..."


def _apply_status(rng: RandomSource, doc: dict[str, Any], created_ms: int, status: str, at_ms: int) -> None:
    """A status change and the times SDP stamps with it (``last_updated_time`` is the caller's)."""
    doc["status"] = STATUSES[status]
    stamp = sdp_time(at_ms)
    if status != "Open" and doc["technician"] is None:
        doc["technician"] = rand_pick(rng, list(TECHNICIANS.values()))
        doc["group"] = doc["group"] or GROUPS["SOC L2" if doc["udf_fields"][UDF_SOAR_ID] else "Service Desk"]
        doc["assigned_time"] = stamp
    if doc["responded_time"] is None and status != "Open":
        doc["responded_time"] = stamp
        doc["is_first_response_overdue"] = at_ms > int(doc["first_response_due_by_time"]["value"])
    if status in ("Resolved", "Closed") and doc["resolved_time"] is None:
        doc["resolved_time"] = stamp
        doc["resolution"] = doc["resolution"] or {"content": rand_pick(rng, RESOLUTIONS)}
        doc["time_elapsed"] = str(at_ms - created_ms)
    if status == "Closed":
        doc["completed_time"] = stamp
    if status in ("Open", "In Progress", "On Hold") and doc["resolved_time"] is not None:  # reopened
        doc.update(resolved_time=None, completed_time=None, is_reopened=True)


def _due_passed(doc: dict[str, Any], now_ms: int) -> bool:
    due = doc["due_by_time"]
    return due is not None and now_ms > int(due["value"])


def _refresh_overdue(doc: dict[str, Any], now_ms: int) -> None:
    """``is_overdue``: the due-by time passed before the request was resolved."""
    end = int(doc["resolved_time"]["value"]) if doc["resolved_time"] else now_ms
    doc["is_overdue"] = _due_passed(doc, end)


def _text_contains(getter: Callable[[TicketRecord], Any], wanted: str) -> Callable[[TicketRecord], bool]:
    return lambda rec: wanted in str(getter(rec) or "").lower()


def _chain(steps: list[tuple[str, Callable[[TicketRecord], bool]]]) -> Callable[[TicketRecord], bool]:
    def evaluate(rec: TicketRecord) -> bool:
        result = True
        for index, (operator, test) in enumerate(steps):
            if index == 0:
                result = test(rec)
            elif operator == "OR":
                result = result or test(rec)
            else:
                result = result and test(rec)
        return result

    return evaluate


_BOUND_CONDITIONS = {
    "greater than": (1, None),
    "greater or equal": (0, None),
    "less than": (None, 0),
    "lesser than": (None, 0),
    "less or equal": (None, 1),
    "lesser or equal": (None, 1),
}


def _split_updated_bounds(criteria: list[Any]) -> tuple[int | None, int | None, list[Any]]:
    """Pull ``last_updated_time`` bounds out of an AND-only criteria list, so the list answers a
    cursor query from its index; returns (low inclusive, high exclusive, remaining criteria)."""
    flat = all(isinstance(c, dict) and not c.get("children") for c in criteria)
    if not flat or any(str(c.get("logical_operator") or "AND").upper() == "OR" for c in criteria[1:]):
        return None, None, criteria
    low: int | None = None
    high: int | None = None
    rest: list[Any] = []
    for criterion in criteria:
        condition = str(criterion.get("condition") or "").lower()
        field = str(criterion.get("field", "")).removesuffix(".value")
        if field != "last_updated_time" or condition not in _BOUND_CONDITIONS or "value" not in criterion:
            rest.append(criterion)
            continue
        value = _coerce(criterion["value"], True, "last_updated_time")
        if value is None:
            rest.append(criterion)
            continue
        low_shift, high_shift = _BOUND_CONDITIONS[condition]
        if low_shift is not None:
            low = value + low_shift if low is None else max(low, value + low_shift)
        if high_shift is not None:
            high = value + high_shift if high is None else min(high, value + high_shift)
    return low, high, rest


def _coerce(value: Any, numeric: bool, field: str) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):  # {"value": "...", "display_value": ...} or {"name": ...}
        value = value.get("value", value.get("name", value.get("id")))
    if numeric:
        try:
            return int(str(value))
        except ValueError as exc:
            raise InputError(4021, f"{field} expects a number (epoch milliseconds for times)", field) from exc
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    return str(value).lower()


def _int_field(list_info: dict[str, Any], key: str, default: int) -> int:
    value = list_info.get(key, default)
    try:
        return int(str(value))
    except ValueError as exc:
        raise InputError(4021, f"{key} must be a number", key) from exc


def _resolve(table: dict[str, dict[str, Any]], given: Any, field: str) -> dict[str, Any]:
    """A reference given by ``{"name": ...}``, ``{"id": ...}`` or a bare name, checked like SDP does."""
    for ref in table.values():
        if isinstance(given, dict):
            if (given.get("id") and given["id"] == ref["id"]) or (
                given.get("name") and str(given["name"]).lower() == ref["name"].lower()
            ):
                return ref
        elif isinstance(given, str) and given.lower() == ref["name"].lower():
            return ref
    raise InputError(4001, f"Value given for {field} is not valid", field)


def _project(doc: dict[str, Any], fields_required: Any) -> dict[str, Any]:
    """``fields_required``: the server answers the asked fields plus ``id``."""
    if not isinstance(fields_required, list):
        raise InputError(4000, "fields_required must be a list", "fields_required")
    out: dict[str, Any] = {"id": doc["id"]}
    for field in fields_required:
        head, _, rest = str(field).partition(".")
        if head not in doc:
            continue
        if rest and isinstance(doc[head], dict):
            out.setdefault(head, {})[rest] = doc[head].get(rest)
        else:
            out[head] = doc[head]
    return out


# --------------------------------------------------------------------------------------- HTTP layer


async def _input_data(request: Request) -> dict[str, Any]:
    """``input_data``: a query parameter, or the form field of a POST/PUT body (urlencoded or multipart)."""
    raw: Any = request.query_params.get("input_data")
    if raw is None and request.method in ("POST", "PUT"):
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            try:
                form = await request.form()
            except (AssertionError, ImportError) as exc:  # no multipart parser installed
                raise InputError(4000, "send input_data url-encoded; multipart is not readable here") from exc
            raw = form.get("input_data")
        else:
            body = (await request.body()).decode("utf-8", "replace")
            values = parse_qs(body).get("input_data")
            raw = values[0] if values else None
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InputError(4000, "input_data is not valid JSON", "input_data") from exc
    if not isinstance(data, dict):
        raise InputError(4000, "input_data must be a JSON object", "input_data")
    return data


def create_app(seed: int = 7, live: bool = False, **config: Any) -> FastAPI:
    """The ServiceDesk Plus simulator app.

    ``config``: ``requests`` (extra service requests seeded besides the SOAR escalations),
    ``profile`` (``default``, or ``demo``: three months worked to the SLA, escalating the XSOAR
    simulator's demo history),
    ``xsoar_incidents`` (size of the XSOAR seed to link to, default 600), ``auth_token``,
    ``zoho`` (the :class:`ZohoAccounts` issuing cloud OAuth tokens), ``rate_limit_per_minute`` (off by default), ``tick_seconds`` (live period, 5).
    """
    tick_seconds = float(config.pop("tick_seconds", 5.0))
    sim = SdpSim(seed, **config)
    app = FastAPI(
        title="ManageEngine ServiceDesk Plus simulator", lifespan=live_lifespan(sim.tick, live, tick_seconds)
    )
    app.state.sim = sim
    board = install_faults(app)
    install_zoho_accounts(app, sim.zoho)
    sim.faults = board

    async def answer_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SdpError)
        return exc.response()

    app.add_exception_handler(SdpError, answer_error)

    def authorize(request: Request) -> None:
        token = request.headers.get("authtoken")
        authorization = request.headers.get("authorization", "")
        scheme, _, oauth = authorization.partition(" ")
        refused = None
        if scheme == "Zoho-oauthtoken" and token is None:
            refused = sim.zoho.check(oauth.strip())
        valid = (token is not None and token.strip() == sim.auth_token) or (
            scheme == "Zoho-oauthtoken" and token is None and refused is None
        )
        if not valid:
            if authorization:
                message = refused or "Invalid OAuth token"
            elif token:
                message = "Invalid technician key"
            else:
                message = "Credentials are missing: send authtoken or Authorization: Zoho-oauthtoken"
            raise SdpError(401, 4022, message)
        if request.headers.get("accept", "") != SDP_ACCEPT:
            sim.accept_mismatches += 1
        if sim.rate_limiter is not None:
            wait = sim.rate_limiter.retry_after(token or oauth)
            if wait is not None:
                raise SdpError(429, 4015, "API Rate Limit reached", headers={"Retry-After": str(wait)})

    def account_scope(request: Request) -> str | None:
        """``ACCOUNTID``: the MSP customer a call is about (None: all accounts)."""
        account_id = request.query_params.get("ACCOUNTID")
        if account_id is not None and account_id not in sim.accounts:
            raise InputError(4001, "Value given for ACCOUNTID is not valid", "ACCOUNTID")
        return account_id

    def find(request: Request, account_id: str | None) -> TicketRecord:
        rec = sim.records.get(request.path_params["request_id"])
        if rec is None or (account_id is not None and rec.account_id != account_id):
            raise SdpError(404, 4007, "Invalid URL or Resource not found")
        return rec

    async def list_accounts(request: Request) -> JSONResponse:
        authorize(request)
        list_info = (await _input_data(request)).get("list_info") or {}
        row_count = _int_field(list_info, "row_count", DEFAULT_ROW_COUNT)
        start_index = _int_field(list_info, "start_index", 1)
        if not 1 <= row_count <= MAX_ROW_COUNT or start_index < 1:
            raise InputError(
                4014, f"row_count must be 1..{MAX_ROW_COUNT} and start_index 1 or more", "row_count"
            )
        sort_order = str(list_info.get("sort_order") or "asc").lower()
        accounts = sorted(
            sim.accounts.values(), key=lambda account: account.name, reverse=sort_order == "desc"
        )
        page = accounts[start_index - 1 : start_index - 1 + row_count]
        return JSONResponse(
            {
                "accounts": [
                    {
                        **account.as_ref(),
                        "description": f"Managed SOC customer {account.name}",
                        "email_id": f"it@{account.domain}",
                    }
                    for account in page
                ],
                "response_status": [SUCCESS],
                "list_info": {
                    "has_more_rows": start_index - 1 + row_count < len(accounts),
                    "start_index": start_index,
                    "row_count": len(page),
                    "sort_field": "name",
                    "sort_order": sort_order,
                },
            }
        )

    async def list_requests(request: Request) -> JSONResponse:
        authorize(request)
        account_id = account_scope(request)
        list_info = (await _input_data(request)).get("list_info") or {}
        if not isinstance(list_info, dict):
            raise InputError(4000, "list_info must be an object", "list_info")
        if board.shift_pending:
            # A live service desk gets a new request between two page requests.
            rng = derive_rng(seed, "sdp", "shift", sim.next_num)
            sim.new_live_ticket(rng, sim.accounts[account_id] if account_id else None)
            board.shift_pending = False
        return JSONResponse(sim.list_requests(list_info, account_id))

    async def get_request(request: Request) -> JSONResponse:
        authorize(request)
        return JSONResponse(
            {"request": find(request, account_scope(request)).doc, "response_status": SUCCESS}
        )

    async def create_request(request: Request) -> JSONResponse:
        authorize(request)
        rec = sim.create(await _input_data(request), account_scope(request))
        return JSONResponse({"request": rec.doc, "response_status": SUCCESS}, status_code=201)

    async def update_request(request: Request) -> JSONResponse:
        authorize(request)
        rec = sim.update(find(request, account_scope(request)), await _input_data(request))
        return JSONResponse({"request": rec.doc, "response_status": SUCCESS})

    async def add_note(request: Request) -> JSONResponse:
        authorize(request)
        rec = find(request, account_scope(request))
        # The edition is the credential's: a technician key (authtoken) is the on-premises server,
        # a Zoho OAuth token the cloud one.
        key = "note" if request.headers.get("authtoken") else "request_note"
        note = sim.add_note(rec, await _input_data(request), key)
        return JSONResponse({key: note, "response_status": SUCCESS}, status_code=201)

    async def list_notes(request: Request) -> JSONResponse:
        authorize(request)
        rec = find(request, account_scope(request))
        list_info = (await _input_data(request)).get("list_info") or {}
        row_count = _int_field(list_info, "row_count", DEFAULT_ROW_COUNT)
        start_index = _int_field(list_info, "start_index", 1)
        if not 1 <= row_count <= MAX_ROW_COUNT or start_index < 1:
            raise InputError(
                4014, f"row_count must be 1..{MAX_ROW_COUNT} and start_index 1 or more", "row_count"
            )
        notes = sim.notes.get(rec.id, [])
        if str(list_info.get("sort_order") or "asc").lower() == "desc":
            notes = list(reversed(notes))
        page = notes[start_index - 1 : start_index - 1 + row_count]
        return JSONResponse(
            {
                "notes": page,
                "response_status": [SUCCESS],
                "list_info": {
                    "has_more_rows": start_index - 1 + row_count < len(notes),
                    "start_index": start_index,
                    "row_count": len(page),
                },
            }
        )

    for prefix in ("", "/app/{portal}"):
        app.add_api_route(f"{prefix}/api/v3/requests/{{request_id}}/notes", add_note, methods=["POST"])
        app.add_api_route(f"{prefix}/api/v3/requests/{{request_id}}/notes", list_notes, methods=["GET"])
        app.add_api_route(f"{prefix}/api/v3/accounts", list_accounts, methods=["GET"])
        app.add_api_route(f"{prefix}/api/v3/requests", list_requests, methods=["GET"])
        app.add_api_route(f"{prefix}/api/v3/requests", create_request, methods=["POST"])
        app.add_api_route(f"{prefix}/api/v3/requests/{{request_id}}", get_request, methods=["GET"])
        app.add_api_route(f"{prefix}/api/v3/requests/{{request_id}}", update_request, methods=["PUT"])

    async def sim_tick() -> JSONResponse:
        return JSONResponse(sim.tick())

    async def sim_seed(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        count, account_id = body.get("requests", 0), body.get("account_id")
        if not isinstance(count, int) or not 0 <= count <= 2_000_000:
            return JSONResponse(
                {"error": "requests must be an integer between 0 and 2000000"}, status_code=400
            )
        if account_id is not None and str(account_id) not in sim.accounts:
            return JSONResponse(
                {
                    "error": f"unknown account_id {account_id!r}",
                    "accounts": [a.as_ref() for a in sim.accounts.values()],
                },
                status_code=400,
            )
        started = time.perf_counter()
        made = sim.seed_requests(
            count,
            derive_rng(seed, "sdp", "bulk", sim.next_num),
            str(account_id) if account_id is not None else None,
        )
        return JSONResponse(
            {
                "created": len(made),
                "first_id": made[0].id if made else None,
                "last_id": made[-1].id if made else None,
                "total": len(sim.records),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    async def sim_state() -> JSONResponse:
        return JSONResponse(sim.state())

    app.add_api_route("/_sim/tick", sim_tick, methods=["POST"])
    app.add_api_route("/_sim/seed", sim_seed, methods=["POST"])
    app.add_api_route("/_sim/state", sim_state, methods=["GET"])
    return app
