"""Cortex XSOAR simulator: the multi-tenant incident API the SOAR ingestor reads.

It speaks the subset our client uses, the way the product does:

* auth: XSOAR 6 sends ``Authorization: <api key>``; XSOAR 8 sends the key plus ``x-xdr-auth-id``
  (the key's id) — the key alone is refused. Every route is served at the root and under the XSOAR 8
  prefix ``/xsoar/public/v1``.
* multi-tenancy: ``GET /accounts`` lists the tenants; account-scoped routes are also served under
  ``/acc_<name>/...``, where a search sees only that account's incidents (as the master server
  addresses a tenant). Each tenant numbers its own incidents from 1, so two accounts both have
  incident ``"1"``: an incident is identified by account and id, never by id alone.
* ``POST /incidents/search`` with the ``{"filter": {...}}`` body, a subset of the query language
  (``modified:>="..."``, ``account:``, ``status:``, ``-status:``, ``id:``, ... joined by spaces or
  ``and``), 0-based pages of at most 1000, ``{"total", "data"}`` answers that validate against the
  server's own Swagger schemas.
* ``POST /investigation/{id}`` returns the investigation with its war-room ``entries`` (notes are
  entries flagged ``note: true``); ``POST /incident`` creates or updates with optimistic locking on
  ``version``.
* errors use the XSOAR body ``{"id", "status", "title", "detail", "error", "encrypted", "multires"}``.

Every change stamps ``modified`` with a strictly increasing time (microseconds) and bumps
``version``, so a client paging on ``modified:>cursor`` sees every change exactly once.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import json
import re
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from soc_simulators._common import (
    KNOWN_BAD_IPS,
    KNOWN_BAD_SHA256,
    MonotonicClock,
    RateLimiter,
    derive_rng,
    known_bad,
    live_lifespan,
)
from soc_simulators.faults import FaultBoard, install_faults

API_KEY = "xsoar-demo-key"
API_KEY_V8 = "xsoar8-demo-key"
API_KEY_V8_ID = "7"
XSOAR8_PREFIX = "/xsoar/public/v1"
MAX_PAGE_SIZE = 1000  # the server refuses bigger pages ("Size is limited to 1000")
DEFAULT_INCIDENTS = 600
HISTORY_DAYS = 30
# Go's zero time: what XSOAR writes in ``closed`` (and other unset times) of an open incident.
NULL_TIME = "0001-01-01T00:00:00Z"

_US = 1_000_000
_MINUTE_US = 60 * _US
_DAY_US = 24 * 60 * _MINUTE_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Account:
    name: str  # what incidents carry in ``account`` and what ``/acc_<name>/`` addresses
    display_name: str
    weight: int  # share of the incident volume

    @property
    def id(self) -> str:
        return f"acc_{self.name}"


ACCOUNTS: tuple[Account, ...] = (
    Account("acme", "Acme Corporation", 35),
    Account("globex", "Globex Industries", 25),
    Account("initech", "Initech Financial Services", 25),
    Account("umbrella", "Umbrella Health Systems", 15),
)

PHASES = ("Detection", "Analysis", "Containment", "Eradication", "Recovery", "Closure")
STATUS_NAMES = {"pending": 0, "active": 1, "closed": 2, "archive": 3, "archived": 3}
SEVERITIES = (0.5, 1, 2, 3, 4)
SEVERITY_WEIGHTS = (10, 25, 35, 20, 10)
ANALYSTS = ("a.rahman", "j.smith", "m.chen", "s.okafor", "l.garcia", "p.novak")
CLOSE_REASONS = ("Resolved", "Resolved", "False Positive", "Duplicate", "Other")
QRADAR_CLOSE_REASONS = ("Non-Issue", "False-Positive, Tuned", "Policy Violation")
HOST_ROLES = ("dc", "fs", "web", "sql", "vpn", "fw-edge", "wks", "mail")
# The priority labels the seed's deployment writes into ``incidentpriority``.
PRIORITY_LABELS = {"P1": "P1 Critical", "P2": "P2 High", "P3": "P3 Medium", "P4": "P4 Low"}
# ``itsmsyncstatus`` as the seed's deployment's playbooks set it: "Pending" while the incident is
# untriaged, "Ready" once an analyst took it (a true positive, ready for its ITSM ticket), "Done"
# when it was closed as a false positive (nothing to sync).
SYNC_PENDING, SYNC_READY, SYNC_DONE = "Pending", "Ready", "Done"
# Minutes the ``ttacalculation`` SLA timer allows, per priority.
TTA_SLA_MINUTES = {"P1": 15, "P2": 30, "P3": 60, "P4": 240}


@dataclass(frozen=True, slots=True)
class SocPace:
    """How a well-staffed SOC's analysts worked the seeded history (the ``demo`` profile): minutes
    from an incident's creation to acknowledge, notify the customer and resolve, as (low, high) per
    severity — a SOC works to its contract, so most incidents land inside their priority's SLA — a
    share of steps running over (a busy shift, an escalation waiting on the customer), stamps an
    analyst forgot, incidents left unfinished whatever their age, and months of history.

    The default profile keeps the original pace (slower analysts, many skipped stamps and stalled
    incidents over 30 days): the edge cases the ingestors' tests rely on stay frequent there."""

    history_days: int
    steps: dict[float, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]]
    overrun_share: float
    skip_share: tuple[float, float, float]
    stalled_share: float
    fetch_delay_minutes: tuple[float, float]  # from the event (occurred) to the incident (created)
    open_matched_days: float = 0.0
    """Incidents created this recently that carry an indicator the threat feed names stay open
    (the analysts are on them), so the demo's dashboard has open incidents with matches."""
    severity_weights: tuple[float, ...] = SEVERITY_WEIGHTS
    """Weights of SEVERITIES (informational ... critical) for new incidents."""
    close_reasons: tuple[tuple[str, float], ...] = tuple((r, 1.0) for r in CLOSE_REASONS)
    """XSOAR's close reasons with their weights."""


DEMO_PACE = SocPace(
    history_days=90,
    steps={
        4: ((2, 13), (10, 28), (45, 220)),
        3: ((4, 27), (15, 55), (90, 450)),
        2: ((8, 55), (25, 115), (180, 1350)),
        1: ((15, 220), (45, 460), (360, 2750)),
        0.5: ((15, 220), (45, 460), (360, 2750)),
    },
    overrun_share=0.035,
    skip_share=(0.03, 0.02, 0.02),
    stalled_share=0.03,
    fetch_delay_minutes=(0.3, 2.5),
    open_matched_days=14,
    # A monitored estate raises few critical incidents and many low and medium ones (about 5 %
    # critical, 18 % high, 35 % medium, 30 % low, 12 % informational) ...
    severity_weights=(12, 30, 35, 18, 5),
    # ... and most closures are true positives dealt with or false positives, a few duplicates.
    close_reasons=(("Resolved", 45), ("False Positive", 35), ("Duplicate", 12), ("Other", 8)),
)
PROFILES = {"default": None, "demo": DEMO_PACE}


class UseCase(NamedTuple):
    rule: str
    incident_type: str
    playbook: str
    category: str
    subcategory: str
    low_level: tuple[str, ...]
    log_sources: tuple[str, ...]
    tactic: str
    technique: str


USE_CASES: tuple[UseCase, ...] = (
    UseCase(
        "Multiple Login Failures for the Same User",
        "Authentication",
        "Access Investigation - Generic",
        "Authentication",
        "User Login Failure",
        ("User Login Failure", "Brute Force Login"),
        ("Microsoft Windows Security Event Log", "Linux OS"),
        "Credential Access",
        "T1110 - Brute Force",
    ),
    UseCase(
        "Excessive Firewall Denies Between Hosts",
        "Network",
        "QRadar Generic",
        "Access",
        "Firewall Deny",
        ("Firewall Deny", "ACL Deny"),
        ("Palo Alto PA Series", "Cisco Adaptive Security Appliance (ASA)"),
        "Discovery",
        "T1046 - Network Service Discovery",
    ),
    UseCase(
        "Malware Detected by Endpoint Protection",
        "Malware",
        "Malware Investigation & Response",
        "Malware",
        "Virus Detected",
        ("Virus Detected", "Spyware Detected"),
        ("CrowdStrike Falcon", "Microsoft Defender for Endpoint"),
        "Execution",
        "T1204 - User Execution",
    ),
    UseCase(
        "User Clicked Link in Reported Phishing Email",
        "Phishing",
        "Phishing Investigation - Generic v2",
        "Suspicious Activity",
        "Suspicious Pattern Detected",
        ("Suspicious Pattern Detected", "Mail Policy Violation"),
        ("Microsoft Office 365", "Proofpoint TAP"),
        "Initial Access",
        "T1566 - Phishing",
    ),
    UseCase(
        "Outbound Connection to Known Malicious IP",
        "Network",
        "QRadar Generic",
        "Suspicious Activity",
        "Known Hostile IP",
        ("Known Hostile IP", "Botnet Address"),
        ("Palo Alto PA Series", "Zscaler NSS"),
        "Command and Control",
        "T1071 - Application Layer Protocol",
    ),
    UseCase(
        "Privileged Account Created Outside Change Window",
        "Access",
        "Access Investigation - Generic",
        "Audit",
        "User Account Added",
        ("User Account Added", "Group Member Added"),
        ("Microsoft Windows Security Event Log",),
        "Persistence",
        "T1136 - Create Account",
    ),
    UseCase(
        "Port Scan Detected from Internal Host",
        "Network",
        "QRadar Generic",
        "Recon",
        "Host Port Scan",
        ("Host Port Scan", "Network Sweep"),
        ("Palo Alto PA Series", "Cisco Adaptive Security Appliance (ASA)"),
        "Discovery",
        "T1046 - Network Service Discovery",
    ),
    UseCase(
        "Large Outbound Transfer to Cloud Storage",
        "Exfiltration",
        "QRadar Generic",
        "Policy",
        "Data Exfiltration",
        ("Data Exfiltration", "Suspicious Upload"),
        ("Zscaler NSS", "Blue Coat ProxySG"),
        "Exfiltration",
        "T1567 - Exfiltration Over Web Service",
    ),
    UseCase(
        "Possible DoS Attack Against Web Server",
        "Denial of Service",
        "QRadar Generic",
        "DoS",
        "Distributed DoS Attack",
        ("Distributed DoS Attack", "Service DoS"),
        ("F5 BIG-IP", "Cisco Adaptive Security Appliance (ASA)"),
        "Impact",
        "T1498 - Network Denial of Service",
    ),
    UseCase(
        "Login from Two Countries Within One Hour",
        "Authentication",
        "Access Investigation - Generic",
        "Authentication",
        "Suspicious Login",
        ("Suspicious Login", "User Login Success"),
        ("Microsoft Entra ID",),
        "Initial Access",
        "T1078 - Valid Accounts",
    ),
)

NOTE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Detection": ("Triage started; correlating offense {oid} with related QRadar events.",),
    "Analysis": (
        "Reviewed the {n} events behind offense {oid}; activity originates from {ip}.",
        "Checked {ip} against threat intel: no prior sightings in our feeds.",
        "Asked the {company} IT contact whether the activity on `{ci}` was expected.",
    ),
    "Containment": (
        "Isolated `{ci}` through the EDR console pending investigation.",
        "Blocked {ip} on the perimeter firewall.",
        "Customer notified by phone and ITSM ticket; awaiting confirmation.",
    ),
    "Eradication": (
        "Removed the persistence artefacts found on `{ci}`; full scan is clean.",
        "Reset credentials of the affected account and revoked active sessions.",
    ),
    "Recovery": ("`{ci}` returned to production; monitoring for recurrence for 24 h.",),
    "Closure": ("Closing: root cause documented, no further action required from {company}.",),
}


_DAY_PREFIX: dict[int, str] = {}


def _label(key: tuple[str, str]) -> str:
    """``<account>/<id>``: how the control routes name an incident (ids are per account)."""
    return f"{key[0]}/{key[1]}" if key[0] else key[1]


def rfc3339(us: int) -> str:
    """XSOAR's time format: RFC 3339 in UTC with a ``Z`` (microsecond precision here).

    Hand-formatted from a per-day prefix: bulk seeding formats millions of stamps and
    ``datetime.strftime`` alone would take most of the seeding time.
    """
    day, in_day = divmod(us, _DAY_US)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        date = _EPOCH + timedelta(days=day)
        prefix = _DAY_PREFIX[day] = f"{date.year:04d}-{date.month:02d}-{date.day:02d}T"
    seconds, micros = divmod(in_day, _US)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{micros:06d}Z"


_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_time_us(text: str) -> int:
    """An RFC 3339 (or bare date) string to epoch microseconds; ``ValueError`` when malformed.

    Fractions beyond microseconds (XSOAR may write nanoseconds) are truncated; no zone means UTC.
    """
    match = _TS_RE.match(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=UTC
    )
    us = (moment - _EPOCH) // timedelta(microseconds=1)
    if fraction:
        us += int(fraction.ljust(9, "0")[:6])
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        us -= sign * (int(digits[:2]) * 60 + int(digits[2:])) * _MINUTE_US
    return us


class XsoarError(Exception):
    """A failure answered with the error body the XSOAR server writes for every failure."""

    status, error_id, title = 500, "internalError", "Internal server error"

    def __init__(self, detail: str, error: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail, self.error, self.headers = detail, error or detail, headers

    def response(self) -> JSONResponse:
        return JSONResponse(
            {
                "id": self.error_id,
                "status": self.status,
                "title": self.title,
                "detail": self.detail,
                "error": self.error,
                "encrypted": False,
                "multires": None,
            },
            status_code=self.status,
            headers=self.headers,
        )


class BadRequest(XsoarError):
    """A body, filter or query the server refuses."""

    status, error_id, title = 400, "badRequest", "Bad request"


class NotFound(XsoarError):
    status, error_id, title = 404, "notFound", "Not found"


class Unauthorized(XsoarError):
    status, error_id, title = 401, "unauthorized", "Unauthorized"


class TooManyRequests(XsoarError):
    status, error_id, title = 429, "tooManyRequests", "Too Many Requests"


class HistoryPlan(NamedTuple):
    """Where a seeded incident's life stands today: enough to build its document on demand."""

    severity: float
    phase: int  # index in PHASES
    status: int
    activated_us: int | None
    tta_us: int | None  # None: the analyst skipped the step
    ttn_us: int | None
    ttdn_us: int | None
    version: int


class IncidentRecord:
    """One incident: the keys search filters and sorts on, and its JSON document.

    A seeded incident builds its document on first read: bulk seeding then costs only these few
    numbers, and whoever pages through 100k incidents pays the rest page by page.
    """

    __slots__ = (
        "num",
        "seq",
        "id",
        "key",
        "account",
        "status",
        "created_us",
        "occurred_us",
        "modified_us",
        "closed_us",
        "history_us",
        "plan",
        "_doc",
        "_build",
    )

    def __init__(
        self,
        num: int,
        account: str,
        status: int,
        created_us: int,
        occurred_us: int,
        modified_us: int,
        closed_us: int | None,
        *,
        doc: dict[str, Any] | None = None,
        plan: HistoryPlan | None = None,
        build: Callable[[IncidentRecord], dict[str, Any]] | None = None,
        seq: int | None = None,
    ) -> None:
        # ``num``/``id`` count per account (each tenant numbers its own incidents from 1, as a
        # multi-tenant master does); ``seq`` is the server-wide creation order (random streams).
        self.num, self.id, self.account, self.status = num, str(num), account, status
        self.seq = num if seq is None else seq
        self.key: tuple[str, str] = (account, self.id)
        self.created_us, self.occurred_us, self.modified_us, self.closed_us = (
            created_us,
            occurred_us,
            modified_us,
            closed_us,
        )
        self.history_us = modified_us  # ``modified`` at seeding: generated war-room entries end there
        self.plan, self._doc, self._build = plan, doc, build

    @property
    def doc(self) -> dict[str, Any]:
        doc = self._doc
        if doc is None:
            assert self._build is not None
            doc = self._doc = self._build(self)
        return doc


@dataclass(slots=True)
class EntryRecord:
    created_us: int
    doc: dict[str, Any]


Predicate = Callable[[IncidentRecord], bool]
R = TypeVar("R")


class ChangeIndex(Generic[R]):
    """Records in change-stamp order (XSOAR ``modified``, SDP ``last_updated_time``), so cursor pages
    are slices found by bisection.

    Every change takes a new maximal stamp, so a change is an append; the superseded position
    stays behind (stale) until the next ``compact()``, which filters and never needs to re-sort.
    """

    __slots__ = ("stamp_of", "stamps", "records", "stale")

    def __init__(self, stamp_of: Callable[[R], int], records: list[R] | None = None) -> None:
        self.stamp_of = stamp_of
        self.records: list[R] = records or []
        self.stamps: list[int] = [stamp_of(rec) for rec in self.records]
        self.stale = 0

    def append(self, rec: R) -> None:
        self.stamps.append(self.stamp_of(rec))
        self.records.append(rec)

    def superseded(self) -> None:
        self.stale += 1
        if self.stale > len(self.records) // 2 + 1000:  # nobody searched for a long while
            self.compact()

    def compact(self) -> None:
        if self.stale:
            stamp_of, stamps = self.stamp_of, self.stamps
            live = [index for index, rec in enumerate(self.records) if stamp_of(rec) == stamps[index]]
            self.stamps = [stamps[index] for index in live]
            self.records = [self.records[index] for index in live]
            self.stale = 0

    def window(self, low: int | None, high: int | None) -> list[R]:
        """The records with ``low <= stamp < high``, oldest first."""
        self.compact()
        start = bisect.bisect_left(self.stamps, low) if low is not None else 0
        end = bisect.bisect_left(self.stamps, high) if high is not None else len(self.stamps)
        return self.records[start:end]


def _modified(rec: IncidentRecord) -> int:
    return rec.modified_us


@dataclass(slots=True)
class QueryPlan:
    """A compiled query: predicates, plus the parts an index answers faster than a scan."""

    predicates: list[Predicate]
    low: int | None = None  # modified >= low
    high: int | None = None  # modified < high
    accounts: set[str] | None = None  # None: any account

    def restrict_accounts(self, allowed: set[str]) -> None:
        self.accounts = allowed if self.accounts is None else self.accounts & allowed


_DATE_FIELDS = {"created", "modified", "occurred", "closed"}
_QUERY_TOKEN = re.compile(
    r'\s*(?P<neg>-?)(?:(?P<field>[A-Za-z_][\w.]*):(?P<op>>=|<=|>|<)?(?P<value>"(?:[^"\\]|\\.)*"|[^\s"()]+)'
    r'|(?P<word>"(?:[^"\\]|\\.)*"|[^\s"()]+))'
)


def _playbook(name: str, tags: tuple[str, ...], *, system: bool = True, **flags: bool) -> dict[str, Any]:
    """A playbook as ``/playbook/search`` lists it (the fields of the API's ``Playbook``)."""
    return {
        "id": name,
        "name": name,
        "nameRaw": name,
        "version": 3,
        "tags": list(tags),
        "system": system,
        "hidden": flags.get("hidden", False),
        "deprecated": flags.get("deprecated", False),
        "packID": "",
        "startTaskId": "0",
        "modified": "2026-01-12T09:30:00Z",
    }


# The playbooks of the use cases (what fetched incidents run) plus a few an analyst starts by hand.
PLAYBOOKS: list[dict[str, Any]] = sorted(
    [
        *(_playbook(name, ("qradar",)) for name in sorted({u.playbook for u in USE_CASES})),
        _playbook("Block IP - Generic v3", ("containment",)),
        _playbook("Isolate Endpoint - Generic V2", ("containment",)),
        _playbook("Phishing Investigation - Generic v2", ("phishing",)),
        _playbook("SOC Escalation to Customer", ("soc",), system=False),
        _playbook("Block IP - Generic", ("containment",), deprecated=True),
        _playbook("Playbook Debugger Helper", (), hidden=True),
    ],
    key=lambda p: p["name"],
)


class XsoarSim:
    """In-memory state of one simulated XSOAR master server and its tenants."""

    def __init__(
        self,
        seed: int = 7,
        *,
        incidents: int = DEFAULT_INCIDENTS,
        api_key: str = API_KEY,
        api_key_v8: str = API_KEY_V8,
        api_key_v8_id: str = API_KEY_V8_ID,
        rate_limit_per_minute: int | None = None,
        profile: str = "default",
    ) -> None:
        self.seed = seed
        self.pace = PROFILES[profile]
        self.rng = derive_rng(seed, "xsoar", "life")
        self.clock = MonotonicClock(units_per_second=_US)
        self.accounts: dict[str, Account] = {account.name: account for account in ACCOUNTS}
        # key -> key id the XSOAR 8 ``x-xdr-auth-id`` header must carry (None: XSOAR 6 key, no id).
        self.api_keys: dict[str, str | None] = {api_key: None, api_key_v8: api_key_v8_id}
        self.rate_limiter = RateLimiter(rate_limit_per_minute) if rate_limit_per_minute else None
        # Keyed by (account, id): incident ids are per tenant, two accounts both have incident "1".
        self.records: dict[tuple[str, str], IncidentRecord] = {}
        self.open_ids: dict[tuple[str, str], None] = {}  # insertion-ordered set of incidents not closed
        # ``modified`` order, overall and per account: cursor pages are index slices.
        self._by_modified = ChangeIndex(_modified)
        self._by_account_modified: dict[str, ChangeIndex[IncidentRecord]] = {}
        self.entries: dict[tuple[str, str], list[EntryRecord]] = {}
        self.next_num = 1  # server-wide creation counter
        self.next_num_by_account: dict[str, int] = {}
        self.ticks = 0
        self.faults: FaultBoard | None = None
        self.seed_incidents(incidents, derive_rng(seed, "xsoar", "history"))

    # ----------------------------------------------------------------------------------- generation

    def take_num(self, account: str) -> int:
        """The next incident number of ``account`` (each tenant counts from 1)."""
        num = self.next_num_by_account.get(account, 1)
        self.next_num_by_account[account] = num + 1
        return num

    def find(self, incident_id: str, scope: str | None) -> IncidentRecord | None:
        """An incident by id: within ``scope`` (an ``/acc_<name>/`` route), else the master's own
        incident with that id, else the one tenant incident with that id (ids are per tenant, so
        an id several tenants use is not addressable at the root)."""
        if scope is not None:
            return self.records.get((scope, incident_id))
        own = self.records.get(("", incident_id))
        if own is not None:
            return own
        found = [
            rec for account in self.next_num_by_account if (rec := self.records.get((account, incident_id)))
        ]
        return found[0] if len(found) == 1 else None

    def pick_account(self, rng: Random) -> str:
        accounts = list(self.accounts.values())
        return rand_weighted(rng, [a.name for a in accounts], [a.weight for a in accounts])

    def seed_incidents(self, count: int, rng: Random, account: str | None = None) -> list[IncidentRecord]:
        """Add ``count`` historical incidents spread over the last 30 days, ids in creation order."""
        # Hundreds of thousands of new objects would trigger the cyclic collector over and over (a
        # third of the seeding time); none of them form cycles, so collection waits until the end.
        with collector_paused():
            return self._seed_incidents(count, rng, account)

    def _seed_incidents(self, count: int, rng: Random, account: str | None) -> list[IncidentRecord]:
        now_us = self.clock.wall()
        days = self.pace.history_days if self.pace else HISTORY_DAYS
        created = sorted(now_us - rand_between(rng, _MINUTE_US, days * _DAY_US) for _ in range(count))
        names = [a.name for a in self.accounts.values()]
        weights = [a.weight for a in self.accounts.values()]
        used = {rec.modified_us for rec in self.records.values()}
        made: list[IncidentRecord] = []
        for created_us in created:
            owner = account or rand_weighted(rng, names, weights)
            rec = self._plan_history(rng, self.take_num(owner), owner, created_us, now_us, self.next_num)
            # No two incidents share a ``modified`` stamp, so a ``>`` cursor never skips a sibling.
            while rec.modified_us in used:
                rec.modified_us += 1
            used.add(rec.modified_us)
            rec.history_us = rec.modified_us
            self.next_num += 1
            self._store(rec)
            made.append(rec)
        self._rebuild_indexes()
        if made:
            self.clock.raise_floor(max(rec.modified_us for rec in made))
        return made

    def _plan_history(
        self, rng: Random, num: int, account: str, created_us: int, now_us: int, seq: int
    ) -> IncidentRecord:
        """An incident as it stands today after its analysts worked on it since ``created_us``."""
        severity = rand_weighted(rng, SEVERITIES, self._severity_weights)
        if self.pace is not None:
            return self._plan_paced(rng, self.pace, num, account, severity, created_us, now_us, seq)
        # Critical incidents move through the phases faster than informational ones.
        speed = _MINUTE_US * {4: 0.3, 3: 0.6, 2: 1.0, 1: 1.6, 0.5: 2.0}[severity]
        phase_us = [created_us]
        for low, high in ((2, 60), (15, 240), (60, 1440), (60, 2880), (30, 2880)):
            phase_us.append(phase_us[-1] + int(rng.uniform(low, high) * speed))
        target = 5 if rng.random() < 0.7 else rand_between(rng, 0, 5)  # the rest are still being worked
        phase = 0
        while phase < target and phase_us[phase + 1] < now_us:
            phase += 1
        status = 2 if phase == 5 else 1 if phase > 0 or rng.random() < 0.5 else 0
        # Analysts skip SLA steps now and then: that timestamp stays missing rather than invented.
        plan = HistoryPlan(
            severity=severity,
            phase=phase,
            status=status,
            activated_us=phase_us[1] if phase >= 1 else None,
            tta_us=phase_us[1] if phase >= 1 and rng.random() > 0.10 else None,
            ttn_us=phase_us[2] if phase >= 2 and rng.random() > 0.12 else None,
            ttdn_us=phase_us[4] if phase >= 4 and rng.random() > 0.15 else None,
            version=1 + phase + rand_between(rng, 0, 4),
        )
        occurred_us = created_us - rand_between(rng, _MINUTE_US, 120 * _MINUTE_US)
        modified_us = min(phase_us[phase] + rand_between(rng, 1, 5 * _MINUTE_US), now_us - 1)
        return IncidentRecord(
            num,
            account,
            status,
            created_us,
            occurred_us,
            modified_us,
            phase_us[5] if phase == 5 else None,
            plan=plan,
            build=self._build_history_doc,
            seq=seq,
        )

    def _plan_paced(
        self,
        rng: Random,
        pace: SocPace,
        num: int,
        account: str,
        severity: float,
        created_us: int,
        now_us: int,
        seq: int,
    ) -> IncidentRecord:
        """An incident of the seeded history worked at ``pace``: Analysis once acknowledged,
        Containment once the customer is notified, Recovery when resolved, Closure after the wrap-up."""
        steps: list[float] = []
        for low, high in pace.steps[severity]:
            minutes = rng.uniform(low, high)
            if rng.random() < pace.overrun_share:
                minutes = high * rng.uniform(1.2, 3.0)
            steps.append(max(minutes, steps[-1] + 1 if steps else 0))
        acknowledged, notified, resolved = (created_us + int(m * _MINUTE_US) for m in steps)
        phase_us = [
            created_us,
            acknowledged,
            notified,
            (notified + resolved) // 2,
            resolved,
            resolved + int(rng.uniform(10, 240) * _MINUTE_US),
        ]
        target = 5 if rng.random() >= pace.stalled_share else rand_between(rng, 0, 5)
        shared = known_bad(0.06, "xsoar", account, num)
        if shared is not None and now_us - created_us < pace.open_matched_days * _DAY_US:
            # A recent incident carrying an indicator the threat feed names is still being worked:
            # Analysis or Containment (fixed per incident, no extra draw: the history stays the same).
            target = min(target, 1 + shared % 2)
        phase = 0
        while phase < target and phase_us[phase + 1] < now_us:
            phase += 1
        status = 2 if phase == 5 else 1 if phase > 0 or rng.random() < 0.5 else 0
        skip = pace.skip_share
        plan = HistoryPlan(
            severity=severity,
            phase=phase,
            status=status,
            activated_us=phase_us[1] if phase >= 1 else None,
            tta_us=phase_us[1] if phase >= 1 and rng.random() > skip[0] else None,
            ttn_us=phase_us[2] if phase >= 2 and rng.random() > skip[1] else None,
            ttdn_us=phase_us[4] if phase >= 4 and rng.random() > skip[2] else None,
            version=1 + phase + rand_between(rng, 0, 4),
        )
        # XSOAR fetches every minute or so: the event occurred shortly before the incident was
        # created (the portal's SLA clock starts at ``occurred`` by default).
        occurred_us = created_us - int(rng.uniform(*pace.fetch_delay_minutes) * _MINUTE_US)
        modified_us = min(phase_us[phase] + rand_between(rng, 1, 5 * _MINUTE_US), now_us - 1)
        return IncidentRecord(
            num,
            account,
            status,
            created_us,
            occurred_us,
            modified_us,
            phase_us[5] if phase == 5 else None,
            plan=plan,
            build=self._build_history_doc,
            seq=seq,
        )

    def _build_history_doc(self, rec: IncidentRecord) -> dict[str, Any]:
        """The document of a seeded incident, from its plan and a per-incident random stream."""
        plan = rec.plan
        assert plan is not None
        rng = FastRandom(self.seed, rec.seq)
        doc = self._blank_doc(rng, rec.num, rec.account, rec.created_us, rec.occurred_us, plan.severity)
        fields = doc["CustomFields"]
        fields["incidentphase"] = doc["phase"] = doc["rawPhase"] = PHASES[plan.phase]
        doc["status"] = plan.status
        doc["modified"] = rfc3339(rec.history_us)
        doc["version"] = plan.version
        if plan.activated_us is not None:
            doc["owner"] = rand_pick(rng, ANALYSTS)
            doc["activated"] = rfc3339(plan.activated_us)
            doc["runStatus"] = "waiting"
            fields["itsmsyncstatus"] = SYNC_READY
        if plan.tta_us is not None:
            fields["incidenttta"] = doc["activated"]
            self._stop_tta_timer(fields, rec.created_us, plan.tta_us, doc["activated"])
        if plan.phase >= 2:
            fields["initialnotification"] = True
        if plan.ttn_us is not None:
            fields["incidentttn"] = rfc3339(plan.ttn_us)
        if plan.ttdn_us is not None:
            fields["incidentttdn"] = rfc3339(plan.ttdn_us)
        if rec.closed_us is not None and plan.status == 2:
            self._close_doc(rng, doc, rec.created_us, rec.closed_us)
        return doc

    def _blank_doc(
        self, rng: RandomSource, num: int, account: str, created_us: int, occurred_us: int, severity: float
    ) -> dict[str, Any]:
        """A freshly fetched QRadar offense incident in the Detection phase."""
        use_case = rand_pick(rng, USE_CASES)
        offense_id = str(rand_between(rng, 1, 5001))
        account_index = list(self.accounts).index(account) if account in self.accounts else 0
        sources = [
            f"10.{10 * account_index + rand_between(rng, 1, 9)}.{rand_between(rng, 0, 255)}.{rand_between(rng, 2, 254)}"
            for _ in range(rand_pick(rng, (1, 1, 2, 3)))
        ]
        if use_case.tactic in ("Command and Control", "Initial Access") and rng.random() < 0.6:
            sources.append(
                f"{rand_pick(rng, (45, 91, 185, 193))}.{rand_between(rng, 0, 255)}.{rand_between(rng, 0, 255)}."
                f"{rand_between(rng, 1, 254)}"
            )
        host = f"{account}-{rand_pick(rng, HOST_ROLES)}{rand_between(rng, 1, 20):02d}"
        shared = known_bad(0.06, "xsoar", account, num)
        if shared is not None and len(sources) > 1:
            sources[-1] = KNOWN_BAD_IPS[shared % len(KNOWN_BAD_IPS)]
        priority = "P1" if severity >= 4 else "P2" if severity >= 3 else "P3" if severity >= 2 else "P4"
        events = rand_between(rng, 3, 4000)
        sid, created, instance = str(num), rfc3339(created_us), f"QRadar_v3_{account}"
        name = f"QRadar Offense {offense_id}: {use_case.rule}"
        return {
            "id": sid,
            "version": 1,
            "account": account,
            "name": name,
            "rawName": name,
            "type": use_case.incident_type,
            "rawType": use_case.incident_type,
            "status": 0,
            "severity": severity,
            "owner": "",
            "playbookId": use_case.playbook,
            "investigationId": sid,
            "created": created,
            "modified": created,
            "occurred": rfc3339(occurred_us),
            "closed": NULL_TIME,
            "activated": NULL_TIME,
            "dueDate": rfc3339(created_us + 10 * _DAY_US),
            "reminder": NULL_TIME,
            "lastOpen": NULL_TIME,
            "notifyTime": created,
            "closeReason": "",
            "rawCloseReason": "",
            "closeNotes": "",
            "closingUserId": "",
            "reason": "",
            "sla": 0,
            "phase": "Detection",
            "rawPhase": "Detection",
            "details": f"QRadar offense {offense_id}: {use_case.rule} on {host} ({events} events from "
            f"{', '.join(sources)}).",
            "category": "",
            "rawCategory": "",
            "parent": "",
            "labels": [
                {"type": "Brand", "value": "QRadar v3"},
                {"type": "Instance", "value": instance},
                {"type": "offense_id", "value": offense_id},
            ],
            "sourceBrand": "QRadar v3",
            "sourceInstance": instance,
            "runStatus": "",
            "openDuration": 0,
            "droppedCount": 0,
            "linkedCount": 0,
            "linkedIncidents": [],
            "canvases": [],
            "roles": [],
            "previousRoles": [],
            "hasRole": False,
            "isPlayground": False,
            "autime": created_us * 1000 + num % 1000,
            "ShardID": 0,
            "CustomFields": {
                "incidentphase": "Detection",
                "incidentpriority": PRIORITY_LABELS[priority],
                "initialnotification": False,
                "listofrulesoffense": [use_case.rule]
                + ([rand_pick(rng, USE_CASES).rule] if rng.random() < 0.3 else []),
                "sourceips": sources,
                "logsourcetype": list(
                    use_case.log_sources[: 1 + rand_between(rng, 0, len(use_case.log_sources))]
                ),
                "lowlevelcategoriesevents": list(use_case.low_level),
                "qradarcategory": use_case.category,
                "qradarsubcategory": use_case.subcategory,
                "qradarclosereason": "",
                "ttacalculation": self._tta_timer(created_us, created, priority),
                "mitretactics": use_case.tactic,
                "mitretechnique": use_case.technique,
                "configurationitem": host,
                "itsmsyncstatus": SYNC_PENDING,
                "offenseid": offense_id,
                # the file the endpoint agent flagged (XSOAR's File SHA256 field), on some incidents
                **(
                    {"filesha256": KNOWN_BAD_SHA256[shared % len(KNOWN_BAD_SHA256)]}
                    if shared is not None
                    else {}
                ),
            },
        }

    @staticmethod
    def _tta_timer(start_us: int, start: str, priority: str) -> dict[str, Any]:
        """The shape of an XSOAR timer (SLA) field while it runs."""
        sla = TTA_SLA_MINUTES[priority]
        return {
            "accumulatedPause": 0,
            "breachTriggered": False,
            "dueDate": rfc3339(start_us + sla * _MINUTE_US),
            "endDate": NULL_TIME,
            "lastPauseDate": NULL_TIME,
            "runStatus": "running",
            "sla": sla,
            "slaStatus": 0,
            "startDate": start,
            "totalDuration": 0,
        }

    @staticmethod
    def _stop_tta_timer(fields: dict[str, Any], start_us: int, end_us: int, end: str) -> None:
        timer = dict(fields["ttacalculation"])
        duration_s = max(0, (end_us - start_us) // _US)
        late = duration_s > timer["sla"] * 60
        timer.update(
            endDate=end,
            runStatus="ended",
            totalDuration=duration_s,
            breachTriggered=late,
            slaStatus=2 if late else 0,
        )  # 0 within SLA, 2 late
        fields["ttacalculation"] = timer

    @property
    def _severity_weights(self) -> tuple[float, ...]:
        return self.pace.severity_weights if self.pace is not None else SEVERITY_WEIGHTS

    def _close_doc(self, rng: RandomSource, doc: dict[str, Any], created_us: int, at_us: int) -> None:
        doc["status"] = 2
        doc["closed"] = rfc3339(at_us)
        if self.pace is None:
            doc["closeReason"] = doc["rawCloseReason"] = rand_pick(rng, CLOSE_REASONS)
        else:
            reasons = self.pace.close_reasons
            doc["closeReason"] = doc["rawCloseReason"] = rand_weighted(
                rng, [r for r, _ in reasons], [w for _, w in reasons]
            )
        doc["closingUserId"] = doc["owner"] or "admin"
        doc["closeNotes"] = doc["closeNotes"] or "Closed after recovery; see the war room for details."
        doc["runStatus"] = "completed"
        doc["openDuration"] = max(0, (at_us - created_us) // _US)
        fields = doc["CustomFields"]
        fields["incidentphase"] = doc["phase"] = doc["rawPhase"] = "Closure"
        fields["qradarclosereason"] = rand_pick(rng, QRADAR_CLOSE_REASONS)
        fields["itsmsyncstatus"] = SYNC_DONE if doc["closeReason"] == "False Positive" else SYNC_READY

    def _set_status(self, rec: IncidentRecord, status: int) -> None:
        rec.doc["status"] = rec.status = status
        if status == 2:
            self.open_ids.pop(rec.key, None)
        else:
            self.open_ids[rec.key] = None

    # ----------------------------------------------------------------------------------- bookkeeping

    def _store(self, rec: IncidentRecord) -> None:
        self.records[rec.key] = rec
        if rec.status != 2:
            self.open_ids[rec.key] = None
        else:
            self.open_ids.pop(rec.key, None)

    def _rebuild_indexes(self) -> None:
        ordered = sorted(self.records.values(), key=lambda rec: rec.modified_us)
        self._by_modified = ChangeIndex(_modified, ordered)
        per_account: dict[str, list[IncidentRecord]] = {}
        for rec in ordered:
            per_account.setdefault(rec.account, []).append(rec)
        self._by_account_modified = {
            account: ChangeIndex(_modified, recs) for account, recs in per_account.items()
        }

    def _index(self, rec: IncidentRecord) -> None:
        self._by_modified.append(rec)
        self._by_account_modified.setdefault(rec.account, ChangeIndex(_modified)).append(rec)

    def _touch(self, rec: IncidentRecord) -> int:
        """Record a change: a new strictly increasing ``modified`` and the next ``version``."""
        doc = rec.doc  # a seeded incident's document is built before it changes
        now_us = self.clock.next()
        rec.modified_us = now_us
        doc["modified"] = rfc3339(now_us)
        doc["version"] += 1
        self._by_modified.superseded()
        self._by_account_modified[rec.account].superseded()
        self._index(rec)
        return now_us

    def new_live_incident(self, rng: Random, account: str) -> IncidentRecord:
        """An offense fetched just now: Detection phase, pending, version 1."""
        now_us = self.clock.next()
        occurred_us = now_us - rand_between(rng, _MINUTE_US, 120 * _MINUTE_US)
        severity = rand_weighted(rng, SEVERITIES, SEVERITY_WEIGHTS)
        num = self.take_num(account)
        doc = self._blank_doc(rng, num, account, now_us, occurred_us, severity)
        rec = IncidentRecord(num, account, 0, now_us, occurred_us, now_us, None, doc=doc, seq=self.next_num)
        self.next_num += 1
        self.entries[rec.key] = [
            self._entry(
                rec,
                1,
                now_us,
                "DBot",
                "playbookTaskResult",
                f"Incident fetched from {rec.doc['sourceInstance']}; playbook "
                f"**{rec.doc['playbookId']}** started.",
                note=False,
            )
        ]
        self._store(rec)
        self._index(rec)
        return rec

    # ----------------------------------------------------------------------------------- war room

    @staticmethod
    def _entry(
        rec: IncidentRecord, number: int, at_us: int, user: str, category: str, contents: str, note: bool
    ) -> EntryRecord:
        stamp = rfc3339(at_us)
        by_dbot = user == "DBot"
        return EntryRecord(
            at_us,
            {
                "id": f"{number}@{rec.id}",
                "investigationId": rec.id,
                "created": stamp,
                "modified": stamp,
                "user": user,
                "contents": contents,
                "contentsSize": len(contents),
                "category": category,
                "type": 1,  # a text/note entry
                "format": "markdown",
                "note": note,
                "pinned": False,
                "deleted": False,
                "readOnly": False,
                "tags": [],
                "tagsRaw": [],
                "version": 1,
                "parentId": "",
                "brand": "Builtin" if by_dbot else "none",
                "instance": "Builtin" if by_dbot else "",
                "system": "",
                "taskId": "",
                "playbookId": rec.doc["playbookId"] if by_dbot else "",
                "hasRole": False,
                "roles": [],
                "previousRoles": [],
                "ShardID": 0,
            },
        )

    def _note_text(self, rng: Random, rec: IncidentRecord, phase: str) -> str:
        fields = rec.doc["CustomFields"]
        company = self.accounts[rec.account].display_name if rec.account in self.accounts else rec.account
        ips = fields.get("sourceips") or ["the source host"]
        return rng.choice(NOTE_TEMPLATES[phase]).format(
            oid=fields.get("offenseid", "?"),
            n=rng.randrange(3, 900),
            ip=ips[-1],
            company=company,
            ci=fields.get("configurationitem", "the host"),
        )

    def entries_of(self, rec: IncidentRecord) -> list[EntryRecord]:
        """The war room of an incident; seeded history is generated on first read (cheap seeding)."""
        existing = self.entries.get(rec.key)
        if existing is not None:
            return existing
        rng = derive_rng(self.seed, "xsoar", "entries", rec.account, rec.id)
        start, end = rec.created_us, max(rec.history_us, rec.created_us + 1)
        # The seeded phase, not today's: the war room must not depend on when it is first read.
        reached = rec.plan.phase if rec.plan is not None else 0
        planned: list[tuple[int, str, str, str, bool]] = [
            (
                start,
                "DBot",
                "playbookTaskResult",
                f"Incident fetched from {rec.doc['sourceInstance']}; playbook **{rec.doc['playbookId']}** started.",
                False,
            ),
            (
                start + (end - start) // 20,
                "DBot",
                "commandResult",
                "### Enrichment\n| Indicator | Verdict |\n|---|---|\n"
                + "".join(
                    f"| {ip} | {rng.choice(('Unknown', 'Suspicious', 'Benign'))} |\n"
                    for ip in rec.doc["CustomFields"].get("sourceips", [])
                ),
                False,
            ),
        ]
        owner = rec.doc["owner"] or rng.choice(ANALYSTS)
        for _ in range(rng.randint(0, reached + 1)):
            phase = PHASES[rng.randint(0, reached)]
            planned.append((rng.randint(start, end), owner, "chat", self._note_text(rng, rec, phase), True))
        if reached >= 1 and rng.random() < 0.5:
            planned.append(
                (
                    rng.randint(start, end),
                    rng.choice(ANALYSTS),
                    "chat",
                    f"@{owner} can you take this one? It looks related to an earlier offense.",
                    False,
                )
            )
        planned.sort(key=lambda item: item[0])
        made: list[EntryRecord] = []
        last_us = start - 1
        for number, (at_us, user, category, contents, note) in enumerate(planned, start=1):
            last_us = max(at_us, last_us + 1)  # entries of one war room never share a timestamp
            made.append(self._entry(rec, number, last_us, user, category, contents, note))
        self.entries[rec.key] = made
        return made

    def add_note(self, rng: Random, rec: IncidentRecord) -> EntryRecord:
        entries = self.entries_of(rec)
        now_us = self._touch(rec)
        phase = rec.doc["CustomFields"].get("incidentphase", "Detection")
        user = rec.doc["owner"] or rng.choice(ANALYSTS)
        text = self._note_text(rng, rec, phase if phase in NOTE_TEMPLATES else "Analysis")
        entry = self._entry(rec, len(entries) + 1, now_us, user, "chat", text, note=True)
        entries.append(entry)
        return entry

    # ----------------------------------------------------------------------------------- life

    def advance(self, rng: Random, rec: IncidentRecord) -> str:
        """Move an open incident to its next phase, stamping the SLA times the way analysts do."""
        fields, doc = rec.doc["CustomFields"], rec.doc
        current = fields.get("incidentphase", "Detection")
        index = PHASES.index(current) if current in PHASES else 0
        now_us = self._touch(rec)
        nxt = PHASES[min(index + 1, len(PHASES) - 1)]
        if nxt == "Closure":
            self._close_doc(rng, doc, rec.created_us, now_us)
            rec.closed_us = now_us
            self._set_status(rec, 2)
            return nxt
        fields["incidentphase"] = doc["phase"] = doc["rawPhase"] = nxt
        if nxt == "Analysis":
            self._set_status(rec, 1)
            doc["owner"] = doc["owner"] or rand_pick(rng, ANALYSTS)
            doc["activated"] = rfc3339(now_us)
            doc["runStatus"] = "waiting"
            fields["itsmsyncstatus"] = SYNC_READY
            if rng.random() > 0.10:
                fields["incidenttta"] = rfc3339(now_us)
                if isinstance(fields.get("ttacalculation"), dict):
                    self._stop_tta_timer(fields, rec.created_us, now_us, rec.doc["modified"])
        elif nxt == "Containment":
            fields["initialnotification"] = True
            if rng.random() > 0.12:
                fields["incidentttn"] = rfc3339(now_us)
        elif nxt == "Recovery" and rng.random() > 0.15:
            fields["incidentttdn"] = rfc3339(now_us)
        return nxt

    def tick(self) -> dict[str, Any]:
        """One step of SOC life: new offenses arrive, open incidents progress, analysts write notes."""
        rng = self.rng
        self.ticks += 1
        changes: dict[str, Any] = {
            "tick": self.ticks,
            "created": [],
            "advanced": {},
            "closed": [],
            "notes": [],
        }
        for _ in range(rng.randint(1, 3)):
            changes["created"].append(_label(self.new_live_incident(rng, self.pick_account(rng)).key))
        open_ids = list(self.open_ids)
        for key in rng.sample(open_ids, min(len(open_ids), rng.randint(3, 6))):
            rec = self.records[key]
            phase = self.advance(rng, rec)
            changes["advanced"][_label(key)] = phase
            if phase == "Closure":
                changes["closed"].append(_label(key))
        open_ids = list(self.open_ids)
        for key in rng.sample(open_ids, min(len(open_ids), rng.randint(1, 3))):
            changes["notes"].append(f"{key[0]}/{self.add_note(rng, self.records[key]).doc['id']}")
        return changes

    # ----------------------------------------------------------------------------------- search

    def compile_query(self, query: str) -> QueryPlan:
        """The supported query subset: ``field:value`` terms (``-`` negates, ``>``/``>=``/``<``/``<=``
        compare) and free words, joined by spaces or ``and``."""
        plan = QueryPlan(predicates=[])
        position = 0
        query = query.strip()
        while position < len(query):
            match = _QUERY_TOKEN.match(query, position)
            if match is None or match.end() == position:
                raise BadRequest(f"cannot parse the query near {query[position : position + 20]!r}")
            position = match.end()
            while position < len(query) and query[position].isspace():
                position += 1
            word = match.group("word")
            if word is not None and not match.group("neg") and word.lower() in ("and", "&&"):
                continue
            if word is not None and word.lower() in ("or", "||", "not"):
                raise BadRequest(f"the simulator supports terms joined by AND only, not {word!r}")
            negate = bool(match.group("neg"))
            if word is not None:
                predicate = _name_contains(_unquote(word).lower())
            else:
                field, op, value = (
                    match.group("field"),
                    match.group("op") or "",
                    _unquote(match.group("value")),
                )
                predicate = self._term(field, op, value)
                if not negate and field == "modified":
                    # Bounds on ``modified`` become an index window instead of a predicate.
                    stamp = parse_time_us(value)
                    low = {">": stamp + 1, ">=": stamp, "": stamp}.get(op)
                    high = {"<": stamp, "<=": stamp + 1, "": stamp + 1}.get(op)
                    if low is not None:
                        plan.low = low if plan.low is None else max(plan.low, low)
                    if high is not None:
                        plan.high = high if plan.high is None else min(plan.high, high)
                    continue
                if not negate and field == "account" and not op:
                    plan.restrict_accounts({value.removeprefix("acc_")})
                    continue
            plan.predicates.append(_negated(predicate) if negate else predicate)
        return plan

    def _term(self, field: str, op: str, value: str) -> Predicate:
        compare = _COMPARATORS[op]
        if field in _DATE_FIELDS:
            try:
                bound = parse_time_us(value)
            except ValueError as exc:
                raise BadRequest(str(exc)) from exc
            attribute = f"{field}_us"
            if field == "closed":
                return lambda rec: rec.closed_us is not None and compare(rec.closed_us, bound)
            return lambda rec: compare(getattr(rec, attribute), bound)
        if field in ("id", "investigationId"):
            number = _number(value, field)
            return lambda rec: compare(rec.num, number)
        if field in ("status", "severity"):
            number = (
                STATUS_NAMES[value.lower()]
                if field == "status" and value.lower() in STATUS_NAMES
                else _number(value, field)
            )
            if field == "status":
                return lambda rec: compare(rec.status, number)
            return lambda rec: compare(rec.doc["severity"], number)
        if op:
            raise BadRequest(
                f"range operators are supported on dates, id, status and severity, not on {field!r}"
            )
        wanted = value.lower()
        if field == "account":
            wanted = wanted.removeprefix("acc_")
            return lambda rec: rec.account.lower() == wanted
        if field == "name":
            return lambda rec: wanted in rec.doc["name"].lower()

        def equals(rec: IncidentRecord) -> bool:
            found = rec.doc.get(field, rec.doc["CustomFields"].get(field.removeprefix("CustomFields.")))
            values = found if isinstance(found, list) else [found]
            return any(str(item).lower() == wanted for item in values if item is not None)

        return equals

    def search(self, body: dict[str, Any], scope: str | None) -> dict[str, Any]:
        """``POST /incidents/search``: one 0-based page of matching incidents and the match count."""
        search_filter = body.get("filter") or {}
        if not isinstance(search_filter, dict):
            raise BadRequest("filter must be an object")
        page, size = search_filter.get("page", 0), search_filter.get("size", 0)
        if not isinstance(page, int) or not isinstance(size, int) or page < 0 or size < 0:
            raise BadRequest("page and size must be non-negative integers")
        if size > MAX_PAGE_SIZE:
            raise BadRequest(f"size is limited to {MAX_PAGE_SIZE}, got {size}")
        query = search_filter.get("query") or ""
        if not isinstance(query, str):
            raise BadRequest("query must be a string")
        plan = self.compile_query(query)
        accounts = search_filter.get("accounts")
        if accounts:
            if not isinstance(accounts, dict):
                raise BadRequest("accounts must be an object keyed by account name")
            plan.restrict_accounts({str(name).removeprefix("acc_") for name in accounts})
        if scope is not None:
            plan.restrict_accounts({scope})
        plan.predicates.extend(self._filter_predicates(search_filter))
        sort = search_filter.get("sort") or [{"field": "id", "asc": False}]
        if not isinstance(sort, list) or not all(isinstance(order, dict) for order in sort):
            raise BadRequest("sort must be a list of {field, asc}")
        first, second = page * size, page * size + size
        if sort[0].get("field") == "modified":
            candidates = self._modified_window(plan, bool(sort[0].get("asc", False)))
        else:
            candidates = self._sorted(sort, plan)
        match = all_of(plan.predicates)
        if match is None:
            # Nothing left to test: the index answers by slicing, whatever the collection size.
            return {"total": len(candidates), "data": [rec.doc for rec in candidates[first:second]]}
        total, data = 0, []
        for rec in candidates:
            if match is None or match(rec):
                if first <= total < second:
                    data.append(rec.doc)
                total += 1
        return {"total": total, "data": data}

    def _modified_window(self, plan: QueryPlan, ascending: bool) -> list[IncidentRecord]:
        """Candidates in ``modified`` order, cut to the plan's bounds and (one) account by index."""
        if plan.accounts is not None and len(plan.accounts) == 1:
            (account,) = plan.accounts
            index = self._by_account_modified.get(account) or ChangeIndex(_modified)
        else:
            index = self._by_modified
            if plan.accounts is not None:
                allowed = plan.accounts
                plan.predicates.append(lambda rec: rec.account in allowed)
        window = index.window(plan.low, plan.high)
        if not ascending:
            window.reverse()
        return window

    def _sorted(self, sort: list[dict[str, Any]], plan: QueryPlan) -> list[IncidentRecord]:
        """Candidates for any other sort: filter by the plan's bounds, then sort on the orders given."""
        low, high, allowed = plan.low, plan.high, plan.accounts
        records = [
            rec
            for rec in self.records.values()
            if (allowed is None or rec.account in allowed)
            and (low is None or rec.modified_us >= low)
            and (high is None or rec.modified_us < high)
        ]
        ascending = bool(sort[0].get("asc", False))
        # Stable sorts from the least significant key (the id tie-break) to the first sort order.
        for order in [{"field": "id", "asc": ascending}, *reversed(sort)]:
            records.sort(
                key=_sort_key(str(order.get("field") or "id")), reverse=not bool(order.get("asc", False))
            )
        return records

    def _filter_predicates(self, search_filter: dict[str, Any]) -> list[Predicate]:
        """The structured filter keys besides ``query`` that are cheap to honour."""
        predicates: list[Predicate] = []
        if search_filter.get("id"):
            ids = {str(item) for item in search_filter["id"]}
            predicates.append(lambda rec: rec.id in ids)
        if search_filter.get("status"):
            statuses = set(search_filter["status"])
            predicates.append(lambda rec: rec.status in statuses)
        if search_filter.get("notStatus"):
            excluded = set(search_filter["notStatus"])
            predicates.append(lambda rec: rec.status not in excluded)
        for key, field, compare in (
            ("fromDate", "created_us", _COMPARATORS[">="]),
            ("toDate", "created_us", _COMPARATORS["<="]),
        ):
            if search_filter.get(key):
                bound = _time_or_bad(search_filter[key], key)
                predicates.append(_compare_attribute(field, compare, bound))
        period = search_filter.get("period")
        if period:
            predicates.extend(self._period_predicates(period))
        return predicates

    def _period_predicates(self, period: Any) -> list[Predicate]:
        """``{"by": "month", "fromValue": 1}``: the last N units, on ``created`` unless ``field`` says."""
        if not isinstance(period, dict):
            raise BadRequest("period must be an object")
        units = {
            "minute": 60,
            "hour": 3600,
            "day": 86400,
            "week": 7 * 86400,
            "month": 30 * 86400,
            "year": 365 * 86400,
        }
        field = f"{period.get('field') or 'created'}_us"
        if field.removesuffix("_us") not in _DATE_FIELDS - {"closed"}:
            raise BadRequest(
                f"period.field must be one of created, modified, occurred, not {period.get('field')!r}"
            )
        now_us = self.clock.wall()
        predicates: list[Predicate] = []
        for by_key, value_key, compare in (
            ("byFrom", "fromValue", _COMPARATORS[">="]),
            ("byTo", "toValue", _COMPARATORS["<="]),
        ):
            value = period.get(value_key)
            if value in (None, ""):
                continue
            unit = str(period.get("by") or period.get(by_key) or "days").lower().rstrip("s")
            if unit not in units:
                raise BadRequest(f"unknown period unit {unit!r}")
            try:
                amount = float(value)
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"period.{value_key} must be a number") from exc
            bound = now_us - int(amount * units[unit] * _US)
            predicates.append(_compare_attribute(field, compare, bound))
        return predicates

    # ----------------------------------------------------------------------------------- create/update

    def create_or_update(self, body: dict[str, Any], scope: str | None) -> dict[str, Any]:
        """``POST /incident``: create when ``id`` is empty, else update under optimistic locking."""
        times = _check_update(body)
        incident_id = str(body.get("id") or "").strip()
        if not incident_id:
            return self._create(body, scope, times)
        rec = self.find(incident_id, scope)
        if rec is None:
            raise NotFound(f"Could not find incident with id {incident_id}")
        version = body.get("version")
        if version != -1 and version != rec.doc["version"]:
            # XSOAR's optimistic locking; version -1 forces the write.
            raise BadRequest(
                f"DB version mismatch: incident {incident_id} is at version {rec.doc['version']}, "
                f"the update carried version {version}. Reload the incident and retry.",
                "[DB version mismatch] (version mismatch)",
            )
        self._apply_update(rec, body, times, self._touch(rec))
        return rec.doc

    def _create(self, body: dict[str, Any], scope: str | None, times: dict[str, int]) -> dict[str, Any]:
        account = scope or str(body.get("account") or "").removeprefix("acc_")
        if account and account not in self.accounts:
            raise BadRequest(f"Unknown account {account!r}")
        rng = derive_rng(self.seed, "xsoar", "api", self.next_num)
        rec = self.new_live_incident(rng, account)
        doc = rec.doc
        # A hand-made incident carries only what its creator gave, not the QRadar fetch's fields.
        doc.update(
            name="",
            rawName="",
            owner="",
            details="",
            labels=[],
            sourceBrand="Manual",
            sourceInstance="",
            type="Unclassified",
            rawType="Unclassified",
            playbookId="",
            severity=0,
            CustomFields={"incidentphase": "Detection"},
        )
        self._set_status(rec, 1 if body.get("createInvestigation") else 0)
        self._apply_update(
            rec,
            {k: v for k, v in body.items() if k not in ("id", "version", "account")},
            times,
            rec.modified_us,
        )
        self.entries[rec.key] = []
        return doc

    def _apply_update(
        self, rec: IncidentRecord, body: dict[str, Any], times: dict[str, int], now_us: int
    ) -> None:
        doc = rec.doc
        for key in (
            "name",
            "type",
            "owner",
            "details",
            "playbookId",
            "closeReason",
            "closeNotes",
            "closingUserId",
            "phase",
            "severity",
            "sla",
        ):
            if key in body and body[key] is not None:
                doc[key] = body[key]
        for key, raw_key in (
            ("name", "rawName"),
            ("type", "rawType"),
            ("phase", "rawPhase"),
            ("closeReason", "rawCloseReason"),
        ):
            if key in body and body[key] is not None:
                doc[raw_key] = doc[key]
        if "labels" in body:
            doc["labels"] = [
                {"type": str(label.get("type", "")), "value": str(label.get("value", ""))}
                for label in body["labels"]
            ]
        custom = body.get("CustomFields", body.get("customFields"))
        if custom:
            doc["CustomFields"] = {**doc["CustomFields"], **custom}
        for key, value in times.items():
            doc[key] = rfc3339(value)
            if key == "occurred":
                rec.occurred_us = value
        if "status" in body and body["status"] != rec.status:
            if body["status"] == 2:
                doc["closed"], rec.closed_us = rfc3339(now_us), now_us
                doc["closingUserId"] = doc["closingUserId"] or "api"
                doc["runStatus"] = "completed"
            elif rec.closed_us is not None:  # reopened
                doc["closed"], rec.closed_us = NULL_TIME, None
            self._set_status(rec, body["status"])

    def batch_close(self, body: dict[str, Any], scope: str | None) -> dict[str, Any]:
        """``POST /incident/batchClose`` (``UpdateDataBatch``): close the listed incidents with the
        reason and notes; ``closed``, ``closingUserId``, ``modified`` and ``version`` move. An
        unknown or already closed incident is counted in ``notUpdated``."""
        ids = body.get("ids")
        if body.get("all") or body.get("filter"):
            raise BadRequest("the simulator closes incidents by ids only")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise BadRequest("ids must be a non-empty list of incident ids")
        for key in ("closeReason", "closeNotes"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise BadRequest(f"{key} must be a string")
        custom = body.get("CustomFields")
        if custom is not None and not isinstance(custom, dict):
            raise BadRequest("CustomFields must be an object")
        closed: list[dict[str, Any]] = []
        not_updated = 0
        for incident_id in ids:
            rec = self.find(incident_id, scope)
            if rec is None or rec.status == 2:
                not_updated += 1
                continue
            now_us = self._touch(rec)
            changes: dict[str, Any] = {
                "status": 2,
                "closeReason": body.get("closeReason") or "",
                "closeNotes": body.get("closeNotes") or "",
            }
            if custom:
                changes["CustomFields"] = custom
            self._apply_update(rec, changes, {}, now_us)
            rec.doc["closingUserId"] = "admin"
            self.entries_of(rec).append(
                self._entry(
                    rec,
                    len(self.entries_of(rec)) + 1,
                    now_us,
                    "admin",
                    "",
                    f"Incident closed. Close reason: {changes['closeReason'] or 'none'}. "
                    f"{changes['closeNotes']}".strip(),
                    note=False,
                )
            )
            closed.append(rec.doc)
        return {"data": closed, "total": len(closed), "notUpdated": not_updated}

    def search_playbooks(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /playbook/search``: ``query`` terms ``hidden:T|F``, ``deprecated:T|F``,
        ``system:T|F``, ``name:"..."`` (contains), joined by AND; ``page``/``size``."""
        query = body.get("query") or ""
        if not isinstance(query, str):
            raise BadRequest("query must be a string")
        page, size = body.get("page", 0), body.get("size", 50)
        if (
            not isinstance(page, int)
            or not isinstance(size, int)
            or page < 0
            or not 0 < size <= MAX_PAGE_SIZE
        ):
            raise BadRequest(f"page must be 0 or more and size 1..{MAX_PAGE_SIZE}")
        flags = {"T": True, "F": False, "TRUE": True, "FALSE": False}
        wanted: list[Callable[[dict[str, Any]], bool]] = []
        for match in _QUERY_TOKEN.finditer(query.strip()):
            if match.group("word") is not None:
                if match.group("word").lower() in ("and", "&&"):
                    continue
                raise BadRequest(f"cannot parse the playbook query near {match.group(0).strip()!r}")
            field, value = match.group("field"), _unquote(match.group("value"))
            if field in ("hidden", "deprecated", "system"):
                if value.upper() not in flags:
                    raise BadRequest(f"{field} takes T or F")
                flag = flags[value.upper()]
                wanted.append(lambda p, f=field, v=flag: bool(p.get(f)) == v)
            elif field == "name":
                wanted.append(lambda p, v=value.lower(): v in p["name"].lower())
            else:
                raise BadRequest(f"the simulator's playbook search has no field {field!r}")
        found = [p for p in PLAYBOOKS if all(test(p) for test in wanted)]
        return {"playbooks": found[page * size : (page + 1) * size], "total": len(found)}

    def run_playbook(self, playbook_id: str, investigation_id: str, scope: str | None) -> dict[str, Any]:
        """``POST /inv-playbook/new/{playbookId}/{investigationId}``: the incident's playbook becomes
        this one and starts now (a pending incident becomes active); ``modified`` and ``version``
        move and the war room says so. Answers the investigation playbook."""
        playbook = next((p for p in PLAYBOOKS if p["id"] == playbook_id), None)
        if playbook is None:
            raise BadRequest(f"Could not find playbook {playbook_id}", "[playbook not found]")
        rec = self.find(investigation_id, scope)
        if rec is None:
            raise NotFound(f"Could not find investigation {investigation_id}")
        if rec.status == 2:
            raise BadRequest(
                f"Investigation {investigation_id} is closed; reopen it to run a playbook",
                "[investigation is closed]",
            )
        now_us = self._touch(rec)
        rec.doc["playbookId"] = playbook_id
        rec.doc["runStatus"] = "running"
        if rec.status == 0:
            self._set_status(rec, 1)
        self.entries_of(rec).append(
            self._entry(
                rec,
                len(self.entries_of(rec)) + 1,
                now_us,
                "DBot",
                "playbookTaskResult",
                f"Playbook **{playbook['name']}** started.",
                note=False,
            )
        )
        stamp = rfc3339(now_us)
        return {
            "id": rec.id,
            "investigationId": rec.id,
            "playbookId": playbook_id,
            "name": playbook["name"],
            "state": "inprogress",
            "startDate": stamp,
            "modified": stamp,
            "incidentCreateDate": rec.doc["created"],
            "tasks": {},
            "version": 1,
        }

    # ----------------------------------------------------------------------------------- investigation

    def investigation(self, rec: IncidentRecord, body: dict[str, Any]) -> dict[str, Any]:
        page_size = body.get("pageSize", 100)
        if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise BadRequest(f"pageSize must be an integer between 1 and {MAX_PAGE_SIZE}")
        entries = self.entries_of(rec)
        after_us = _time_or_bad(body["fromTime"], "fromTime") if body.get("fromTime") else None
        categories = set(body.get("categories") or [])
        matching = [
            entry.doc
            for entry in entries
            if (after_us is None or entry.created_us > after_us)
            and (not categories or entry.doc["category"] in categories)
        ]
        doc = rec.doc
        users = sorted({entry.doc["user"] for entry in entries if entry.doc["user"] != "DBot"})
        return {
            "id": doc["investigationId"],
            "name": doc["name"],
            "account": doc["account"],
            "status": 1 if doc["status"] == 2 else 0,  # investigation status: 0 active, 1 closed
            "type": 0,
            "created": doc["created"],
            "modified": rfc3339(entries[-1].created_us) if entries else doc["created"],
            "closed": doc["closed"],
            "closingUserId": doc["closingUserId"],
            "creatingUserId": "",
            "details": doc["details"],
            "users": [doc["owner"]] if doc["owner"] else [],
            "entryUsers": users,
            "childInvestigations": [],
            "isChildInvestigation": False,
            "openDuration": doc["openDuration"],
            "tags": [],
            "roles": [],
            "previousRoles": [],
            "version": len(entries) + 1,
            "ShardID": 0,
            "total": len(matching),
            "entries": matching[:page_size],  # oldest first; page on with fromTime = last entry's created
        }

    # ----------------------------------------------------------------------------------- control

    def state(self) -> dict[str, Any]:
        return {
            "incidents": len(self.records),
            "open": len(self.open_ids),
            "by_account": dict(Counter(rec.account for rec in self.records.values())),
            "by_status": {str(k): v for k, v in Counter(rec.status for rec in self.records.values()).items()},
            "investigations_with_entries_loaded": len(self.entries),
            "accounts": [account.name for account in self.accounts.values()],
            "last_modified": rfc3339(self.clock.last) if self.clock.last else None,
            "next_id": {account: str(n) for account, n in sorted(self.next_num_by_account.items())},
            "ticks": self.ticks,
        }


class RandomSource(Protocol):
    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...


class FastRandom:
    """A per-record random stream that costs next to nothing to set up.

    Seeding ``random.Random`` takes ~10 µs and a pure-Python generator ~1.5 µs per draw; a record
    built on demand draws a couple of dozen numbers, so this one hashes (seed, n, block) with
    BLAKE2b and hands out the digest as 16 uniform floats per block.
    """

    __slots__ = ("_key", "_block", "_values")
    _SCALE = 1.0 / (1 << 32)

    def __init__(self, seed: int, n: int) -> None:
        self._key = f"{seed}:{n}:".encode()
        self._block = 0
        self._values: list[int] = []

    def random(self) -> float:
        if not self._values:
            digest = hashlib.blake2b(self._key + str(self._block).encode(), digest_size=64).digest()
            self._values = list(struct.unpack("<16I", digest))
            self._block += 1
        return self._values.pop() * self._SCALE

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        # Seeded records live as long as the simulator: keep later collections from rescanning them.
        gc.freeze()


def rand_between(rng: RandomSource, low: int, high: int) -> int:
    """A uniform int in [low, high): ``randrange`` costs a few times more, and bulk seeding adds up."""
    return low + int(rng.random() * (high - low))


def rand_pick(rng: RandomSource, items: Any) -> Any:
    return items[int(rng.random() * len(items))]


def rand_weighted(rng: RandomSource, items: Any, weights: Any) -> Any:
    point, total = rng.random() * sum(weights), 0.0
    for item, weight in zip(items, weights, strict=True):
        total += weight
        if point < total:
            return item
    return items[-1]


def _check_update(body: dict[str, Any]) -> dict[str, int]:
    """Refuse a malformed ``POST /incident`` body before anything changes; parse its times."""
    for key in ("name", "type", "owner", "details", "playbookId", "closeReason", "closeNotes", "phase"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise BadRequest(f"{key} must be a string")
    severity = body.get("severity")
    if severity is not None and (
        isinstance(severity, bool) or not isinstance(severity, int | float) or not 0 <= severity <= 4
    ):
        raise BadRequest("severity must be a number between 0 and 4")
    if "status" in body and body["status"] not in (0, 1, 2, 3):
        raise BadRequest("status must be 0 (pending), 1 (active), 2 (closed) or 3 (archived)")
    custom = body.get("CustomFields", body.get("customFields"))
    if custom is not None and not isinstance(custom, dict):
        raise BadRequest("CustomFields must be an object")
    if "labels" in body and not (
        isinstance(body["labels"], list) and all(isinstance(label, dict) for label in body["labels"])
    ):
        raise BadRequest("labels must be a list of {type, value}")
    times: dict[str, int] = {}
    for key in ("occurred", "dueDate"):
        if body.get(key):
            times[key] = _time_or_bad(body[key], key)
    return times


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _number(value: str, field: str) -> float:
    try:
        return float(value)
    except ValueError as exc:
        raise BadRequest(f"{field} expects a number, got {value!r}") from exc


def _time_or_bad(value: Any, name: str) -> int:
    try:
        return parse_time_us(str(value))
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from exc


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def all_of(predicates: list[Callable[[R], bool]]) -> Callable[[R], bool] | None:
    """One predicate for a conjunction; None when there is nothing to test (callers then slice)."""
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]

    def every(rec: R) -> bool:
        return all(predicate(rec) for predicate in predicates)

    return every


def _name_contains(text: str) -> Predicate:
    return lambda rec: text in rec.doc["name"].lower()


def _negated(predicate: Predicate) -> Predicate:
    return lambda rec: not predicate(rec)


def _compare_attribute(attribute: str, compare: Callable[[Any, Any], bool], bound: int) -> Predicate:
    return lambda rec: compare(getattr(rec, attribute), bound)


def _sort_key(field: str) -> Callable[[IncidentRecord], Any]:
    if field in ("id", "investigationId"):
        return lambda rec: rec.num
    if field in _DATE_FIELDS:
        attribute = f"{field}_us"
        return lambda rec: getattr(rec, attribute) or 0
    # Any other field sorts by its value; mixed types are kept apart instead of raising.
    return lambda rec: _mixed(rec.doc.get(field, rec.doc["CustomFields"].get(field)))


def _mixed(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


# --------------------------------------------------------------------------------------- HTTP layer


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("Request body is not well-formed. It must be JSON.", str(exc)) from exc
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object.")
    return body


def create_app(seed: int = 7, live: bool = False, **config: Any) -> FastAPI:
    """The XSOAR simulator app.

    ``config``: ``incidents`` (seeded count, default 600), ``profile`` (``default``, or ``demo``: a
    well-staffed SOC's pace over 90 days, see :class:`SocPace`), ``api_key``, ``api_key_v8``,
    ``api_key_v8_id``, ``rate_limit_per_minute`` (off by default), ``tick_seconds`` (live period, 5).
    """
    tick_seconds = float(config.pop("tick_seconds", 5.0))
    sim = XsoarSim(seed, **config)
    app = FastAPI(title="Cortex XSOAR simulator", lifespan=live_lifespan(sim.tick, live, tick_seconds))
    app.state.sim = sim
    board = install_faults(app)
    sim.faults = board

    async def answer_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, XsoarError)
        return exc.response()

    app.add_exception_handler(XsoarError, answer_error)

    def authorize(request: Request) -> None:
        key = request.headers.get("authorization", "").strip()
        if key not in sim.api_keys:
            raise Unauthorized(
                "Unauthorized: missing or invalid API key",
                "the API key in the Authorization header is not valid",
            )
        key_id = sim.api_keys[key]
        if key_id is not None and request.headers.get("x-xdr-auth-id", "").strip() != key_id:
            raise Unauthorized(
                "Unauthorized: the x-xdr-auth-id header does not match the API key",
                "XSOAR 8 API keys need their key id in x-xdr-auth-id",
            )
        if sim.rate_limiter is not None:
            wait = sim.rate_limiter.retry_after(key)
            if wait is not None:
                raise TooManyRequests("API rate limit exceeded", headers={"Retry-After": str(wait)})

    def scope_of(request: Request) -> str | None:
        """The account an ``/acc_<name>/`` path addresses (None at the master's root)."""
        account = request.path_params.get("account")
        if account is not None and account not in sim.accounts:
            raise NotFound(f"Account acc_{account} does not exist")
        return account

    async def list_accounts(request: Request) -> JSONResponse:
        authorize(request)
        return JSONResponse(
            [
                {
                    "id": account.id,
                    "name": account.name,
                    "displayName": account.display_name,
                    "propagationLabels": ["all"],
                    "hostGroupName": "default",
                    "roles": ["Administrator", "Analyst"],
                }
                for account in sim.accounts.values()
            ]
        )

    async def search_incidents(request: Request) -> JSONResponse:
        authorize(request)
        scope = scope_of(request)
        body = await _json_body(request)
        if board.shift_pending:
            # A live console gets a new incident between two page requests.
            rng = derive_rng(seed, "xsoar", "shift", sim.next_num)
            sim.new_live_incident(rng, scope or sim.pick_account(rng))
            board.shift_pending = False
        return JSONResponse(sim.search(body, scope))

    async def save_incident(request: Request) -> JSONResponse:
        authorize(request)
        scope = scope_of(request)
        return JSONResponse(sim.create_or_update(await _json_body(request), scope))

    async def get_investigation(request: Request) -> JSONResponse:
        authorize(request)
        scope = scope_of(request)
        body = await _json_body(request)
        investigation_id = request.path_params["investigation_id"]
        rec = sim.find(investigation_id, scope)
        if rec is None:
            raise NotFound(f"Could not find investigation {investigation_id}")
        return JSONResponse(sim.investigation(rec, body))

    async def batch_close(request: Request) -> JSONResponse:
        authorize(request)
        return JSONResponse(sim.batch_close(await _json_body(request), scope_of(request)))

    async def search_playbooks(request: Request) -> JSONResponse:
        authorize(request)
        scope_of(request)
        return JSONResponse(sim.search_playbooks(await _json_body(request)))

    async def run_playbook(request: Request) -> JSONResponse:
        authorize(request)
        scope = scope_of(request)
        await _json_body(request)
        return JSONResponse(
            sim.run_playbook(
                request.path_params["playbook_id"], request.path_params["investigation_id"], scope
            )
        )

    for prefix in ("", XSOAR8_PREFIX):
        app.add_api_route(f"{prefix}/accounts", list_accounts, methods=["GET"])
        for scoped in ("", "/acc_{account}"):
            base = prefix + scoped
            app.add_api_route(f"{base}/incidents/search", search_incidents, methods=["POST"])
            app.add_api_route(f"{base}/incident", save_incident, methods=["POST"])
            app.add_api_route(f"{base}/incident/batchClose", batch_close, methods=["POST"])
            app.add_api_route(f"{base}/playbook/search", search_playbooks, methods=["POST"])
            app.add_api_route(
                f"{base}/inv-playbook/new/{{playbook_id}}/{{investigation_id}}",
                run_playbook,
                methods=["POST"],
            )
            app.add_api_route(
                f"{base}/investigation/{{investigation_id}}", get_investigation, methods=["POST"]
            )

    async def sim_tick() -> JSONResponse:
        return JSONResponse(sim.tick())

    async def sim_seed(request: Request) -> JSONResponse:
        body = await _json_body(request)
        count, account = body.get("incidents", 0), body.get("account")
        if not isinstance(count, int) or not 0 <= count <= 2_000_000:
            raise BadRequest("incidents must be an integer between 0 and 2000000")
        if account is not None and str(account).removeprefix("acc_") not in sim.accounts:
            raise BadRequest(f"Unknown account {account!r}; known: {sorted(sim.accounts)}")
        started = time.perf_counter()
        made = sim.seed_incidents(
            count,
            derive_rng(seed, "xsoar", "bulk", sim.next_num),
            str(account).removeprefix("acc_") if account else None,
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
