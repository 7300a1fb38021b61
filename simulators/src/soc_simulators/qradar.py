"""IBM QRadar REST API simulator: the subset the SOC Portal's SIEM ingestor uses.

It answers like a QRadar 7.5 console with multi-tenancy (domains): ``SEC`` token or HTTP basic
auth, the ``Version`` header, ``Range: items=a-b`` paging answered with ``Content-Range``, the
``filter`` / ``fields`` / ``sort`` query parameters, QRadar's error body, offenses that keep changing,
and asynchronous Ariel (AQL) searches.

Decisions a client author needs (QRadar documents little of this precisely):

* ``Content-Range: items {start}-{end}/{total}`` is sent on every collection answer, with or
  without a ``Range`` request header. ``end = start + returned - 1``, so an empty page reads
  ``items 0--1/0`` (empty collection) or ``items 300-299/300`` (``Range`` starting past the end):
  status 200 and ``[]``, never 416. A malformed ``Range`` (not ``items=a-b`` with ``a <= b``) is 416.
* ``/siem/offenses`` without ``sort`` answers newest offense first (``-id``); every other
  collection answers by ``id`` ascending. Ties in any sort are broken by ``id`` in the same
  direction, so paging a fixed sort is stable while nothing changes.
* ``filter`` subset: ``field op value`` with ``= != > >= < <=``, ``field is [not] null``,
  ``field [not] in (v1, v2)``, joined by ``and`` / ``or`` (``and`` binds tighter), ``not``,
  parentheses; numbers, quoted strings, ``true`` / ``false`` / ``null``; dotted names reach into
  objects (``status.status = "ERROR"`` on log sources). Anything else is 422 code 1005.
* Error body everywhere: ``{"http_response": {"code", "message"}, "code", "message",
  "description", "details"}``; codes used: 401/11 (auth), 403/26 (capability), 404/1002 (unknown id
  or endpoint; http_response message as IBM documents it), 401/18 (no ``SEC`` header: the recorded
  body), 404/1003 (Ariel results not ready), 406/12 (``Version`` / ``Accept``),
  416/1004 (``Range``), 422/1005 (``filter`` or parameter value), 422/30 (unknown ``fields`` /
  ``sort`` name), 422/2000 (AQL), 429/1010 (optional rate limit, with ``Retry-After``).
* Two clocks per offense, as on a console: events arriving (``/_sim/tick``) move
  ``last_updated_time`` *and* ``last_persisted_time``; an analyst's action (close, assign, follow-up,
  protect, status — ``POST /siem/offenses/{id}`` or a tick's closures and assignments) moves
  ``last_persisted_time`` only (the recorded ``siem_offenses_modified_since.json`` has an offense
  closed months after its last update). Each stamp is a strictly increasing epoch ms, so
  ``filter=last_persisted_time > cursor`` with ``sort=+last_persisted_time`` sees every change.
  ``/_sim/seed`` backfills history (times in the last 30 days): sync after seeding, not across it.
* A collection answer holds at most ``max_page_items`` items, whatever the ``Range`` asked for
  (IBM: the server may return fewer items than requested); ``Content-Range`` says which ones.
* Offense notes: ``GET /siem/offenses/{id}/notes`` (Range-paged) and ``POST ...?note_text=``
  answering 201 with the note (``username`` ``API_user: <name>`` for an API caller, as recorded).
* Ariel: ``POST`` answers 201 ``WAIT``; ``GET`` then reports ``EXECUTE`` (progress 1-99),
  ``SORTING`` briefly when the AQL has ``ORDER BY``, and ``COMPLETED`` after ``ariel_delay`` s.
  ``/results`` before completion is 404 code 1003; results are ``{"events": [...]}`` (``flows``
  for ``FROM flows``), ``Range``-paged like collections. Rows are synthesised from the AQL text.
* ``offense_closing_reasons`` hides reserved and deleted reasons unless ``include_reserved`` /
  ``include_deleted`` are ``true``, as the console does.
* Offense addresses: ``source_address_ids`` / ``local_destination_address_ids`` are ids of
  ``GET /siem/source_addresses`` (``source_ip``) and ``/siem/local_destination_addresses``
  (``local_destination_ip``), one id per (domain, address); a source-IP offense's
  ``offense_source`` is its first source address, a destination-IP offense's its first local
  destination. Both lists answer by id, take ``filter`` (a bad one is 422 code 1010, as IBM
  documents for them), ``fields`` and ``Range``; ``offense_ids``, counts and first/last seen are
  computed from the offenses when asked for.
* A ``shift_page`` fault creates a new offense, which lands at the head of the default ``-id``
  order (and at the tail of ``+last_persisted_time``, as a live console would do).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextvars
import datetime as dt
import hmac
import itertools
import json
import math
import operator
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from soc_simulators._common import (
    KNOWN_BAD_IPS,
    MonotonicClock,
    RateLimiter,
    derive_rng,
    known_bad,
    live_lifespan,
    seeded_uuid,
    stable_hash,
)
from soc_simulators.faults import install_faults

DEFAULT_TOKEN = "qradar-demo-token"
LIMITED_TOKEN = "qradar-limited-token"
DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "qradar-demo-pass"
MIN_VERSION, MAX_VERSION = 12.0, 20.0
DAY_MS = 86_400_000
INACTIVE_AFTER_MS = 5 * DAY_MS  # QRadar flags an offense inactive after 5 days without events

JSON = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

_HTTP_MESSAGES = {
    401: "You are unauthorized to access the requested resource.",
    403: "Your account is not authorized to access the requested resource",
    404: "We could not find the resource you requested.",
    406: "The resource identified by this request is only capable of generating responses with "
    "characteristics not acceptable according to the request",
    409: "The request could not be completed due to a conflict with the current state of the resource.",
    500: "Unexpected internal server error",
    416: "The requested range is not satisfiable.",
    422: "The request was well-formed but was unable to be followed due to semantic errors",
    429: "Too many requests were sent to the server.",
}

NO_SEC_MESSAGE = (
    'No SEC header present in request. Please provide it via "SEC: token". You may also use BASIC '
    'authentication parameters if this host supports it. e.g. "Authorization: Basic base64Encoding"'
)


class QRadarError(Exception):
    """Answered as QRadar's error body by the app's exception handler."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        description: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.description = description
        self.headers = headers or {}

    def body(self) -> JSON:
        return {
            "http_response": {"code": self.status, "message": _HTTP_MESSAGES.get(self.status, "")},
            "code": self.code,
            "message": self.message,
            "description": self.description,
            "details": {},
        }


def _not_found(message: str) -> QRadarError:
    return QRadarError(404, 1002, message)


def _bad_param(message: str) -> QRadarError:
    return QRadarError(422, 1005, message, "One or more request parameters are invalid in the request.")


# ---------------------------------------------------------------------------------------------
# Reference catalogue (fictional customers; product names as QRadar shows them)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    name: str
    short: str
    weight: float  # share of offenses and of event volume
    description: str


CUSTOMERS = (
    Customer("Acme Financial Services", "acme", 1.6, "Retail bank and card issuer, 24x7 MSSP contract"),
    Customer("Globex Logistics", "globex", 1.2, "Freight forwarding and warehousing, UAE and KSA"),
    Customer("Initech Healthcare", "initech", 1.0, "Hospital group with three sites"),
    Customer("Umbrella Pharmaceuticals", "umbrella", 0.8, "Manufacturing plants and R&D labs"),
    Customer("Hooli Telecom", "hooli", 1.4, "Mobile operator, core network and customer portals"),
)


@dataclass(frozen=True)
class LogSourceKind:
    type_id: int
    name: str  # log source type name
    short: str  # the short type name offenses show in log_sources[].type_name
    kind: str  # what it is, for matching offense templates
    protocol_type_id: int
    eps: tuple[int, int]


LOG_SOURCE_KINDS = (
    LogSourceKind(12, "Microsoft Windows Security Event Log", "WindowsAuthServer", "windows", 12, (15, 180)),
    LogSourceKind(11, "Linux OS", "LinuxServer", "linux", 0, (2, 40)),
    LogSourceKind(41, "Cisco Adaptive Security Appliance (ASA)", "CiscoASA", "firewall", 0, (60, 450)),
    LogSourceKind(206, "Palo Alto PA Series", "PaloAltoPA", "firewall", 0, (80, 600)),
    LogSourceKind(73, "Fortinet FortiGate Security Gateway", "FortiGate", "firewall", 0, (40, 350)),
    LogSourceKind(397, "Microsoft Office 365", "Office365", "cloud", 66, (5, 60)),
    LogSourceKind(347, "Amazon AWS CloudTrail", "AWSCloudTrail", "cloud", 75, (3, 45)),
    LogSourceKind(13, "Microsoft IIS", "IIS", "web", 0, (5, 90)),
    LogSourceKind(10, "Apache HTTP Server", "Apache", "web", 0, (4, 70)),
    LogSourceKind(101, "Microsoft SQL Server", "SQLServer", "database", 7, (1, 25)),
    LogSourceKind(433, "Symantec Endpoint Protection", "SymantecEndpointProtection", "endpoint", 0, (2, 30)),
    LogSourceKind(18, "EventCRE", "EventCRE", "internal", 0, (0, 3)),
    LogSourceKind(105, "SIM Audit", "SIMAudit", "internal", 0, (0, 2)),
    LogSourceKind(147, "Health Metrics", "HealthMetrics", "internal", 0, (1, 4)),
    LogSourceKind(207, "Asset Profiler", "AssetProfiler", "internal", 0, (0, 2)),
)
_KIND_BY_TYPE = {k.type_id: k for k in LOG_SOURCE_KINDS}

# (kind name, host name pattern, count range) per customer site
_CUSTOMER_LOG_SOURCE_MIX = (
    (12, "dc{n:02d}", (2, 3)),
    (11, "app{n:02d}", (1, 2)),
    ((41, 206, 73), "fw-edge-{n:02d}", (1, 2)),
    ((397, 347), "cloud-{n:02d}", (1, 1)),
    ((13, 10), "web{n:02d}", (0, 1)),
    (101, "sql{n:02d}", (0, 1)),
    (433, "sep{n:02d}", (0, 1)),
)

CLOSING_REASONS: tuple[JSON, ...] = (
    {"is_deleted": False, "is_reserved": False, "text": "Non-Issue", "id": 1},
    {"is_deleted": False, "is_reserved": False, "text": "False-Positive, Tuned", "id": 2},
    {"is_deleted": False, "is_reserved": False, "text": "Policy Violation", "id": 3},
    {"is_deleted": False, "is_reserved": True, "text": "System Change (Offense Rule Changed)", "id": 4},
    {"is_deleted": False, "is_reserved": False, "text": "True Positive - Incident Raised", "id": 54},
    {
        "is_deleted": False,
        "is_reserved": False,
        "text": "True Positive - Existing Incident Updated",
        "id": 55,
    },
    {"is_deleted": True, "is_reserved": False, "text": "Duplicate (retired)", "id": 56},
)
_CLOSABLE_REASON_IDS = (1, 2, 3, 54, 55)
_CLOSE_REASON_WEIGHTS = (4, 5, 2, 3, 1)
_CLOSE_REASON_CUMULATIVE = tuple(itertools.accumulate(_CLOSE_REASON_WEIGHTS))

_HISTORY_NOTES = (
    "Triaged: source is a known vulnerability scanner, monitoring.",
    "Asked the customer to confirm the change window.",
    "User contacted; password reset enforced.",
    "Correlated with an open SOAR incident.",
)
_CLOSING_NOTES = (
    "Reviewed with the customer: expected administrative activity.",
    "Source blocked on the perimeter firewall; no further events.",
    "Duplicate of an offense already under investigation.",
    "Escalated to the customer's incident response team.",
)
ANALYSTS = ("soc.l1.sara", "soc.l1.omar", "soc.l2.priya", "soc.l2.james", "soc.l3.fatima")
USERNAMES = (
    "administrator", "j.smith", "a.khan", "m.ali", "s.fernandes", "r.gupta", "l.chen", "svc_backup",
    "svc_sql", "k.obrien", "n.haddad", "t.nguyen", "e.rossi", "guest", "h.mansour", "d.kowalski",
)  # fmt: skip
COUNTRIES = (
    "United Arab Emirates", "Saudi Arabia", "United States", "Germany", "Netherlands", "India",
    "Russian Federation", "China", "Singapore", "United Kingdom", "Brazil", "other",
)  # fmt: skip
_PUBLIC_FIRST_OCTETS = (
    5, 23, 31, 37, 45, 46, 62, 77, 78, 85, 89, 91, 94, 103, 109, 141, 176, 178, 185, 193, 194, 212, 217,
)  # fmt: skip


@dataclass(frozen=True)
class OffenseTemplate:
    description: str
    categories: tuple[str, ...]
    rules: tuple[tuple[int, str], ...]
    offense_type: int  # 0 source IP, 1 destination IP, 2 event name, 3 username, 6 log source, 7 hostname
    kinds: tuple[str, ...]  # log source kinds the events come from
    severity: tuple[int, int]
    events: tuple[int, int]
    external_source: bool
    weight: float = 1.0
    # JSON forms shared by every offense from this template (nothing mutates them in place), which
    # keeps 100k offenses light.
    rules_json: list[JSON] = field(init=False, compare=False, hash=False, repr=False)
    categories_json: list[str] = field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "rules_json", [{"id": rule_id, "type": kind} for rule_id, kind in self.rules]
        )
        object.__setattr__(self, "categories_json", list(self.categories))


OFFENSE_TEMPLATES = (
    OffenseTemplate(
        "Multiple Login Failures for the Same User\n containing Failure Audit: An account failed to log on\n",
        ("User Login Failure", "General Authentication Failed"), ((100056, "CRE_RULE"),), 3,
        ("windows",), (3, 6), (8, 400), False, 3.0,
    ),
    OffenseTemplate(
        "Excessive Firewall Denies Between Hosts\n containing Firewall Deny\n",
        ("Firewall Deny", "Access Denied"), ((100270, "CRE_RULE"),), 0, ("firewall",), (3, 5),
        (50, 20000), True, 3.0,
    ),
    OffenseTemplate(
        "Login Failures Followed By Success to the same Username\n containing Success Audit: An account was successfully logged on\n",
        ("User Login Success", "User Login Failure"), ((100060, "CRE_RULE"),), 3, ("windows", "cloud"),
        (5, 8), (6, 120), False, 1.5,
    ),
    OffenseTemplate(
        "Local Host Scanning Remote Hosts\n containing Host Port Scan\n",
        ("Network Sweep", "Host Port Scan"), ((100211, "CRE_RULE"),), 0, ("firewall",), (4, 7),
        (200, 8000), False, 1.2,
    ),
    OffenseTemplate(
        "Remote Host Scanning Local Network\n containing Reconnaissance: Network Sweep\n",
        ("Network Sweep", "Reconnaissance"), ((100212, "CRE_RULE"),), 0, ("firewall",), (3, 6),
        (300, 15000), True, 1.5,
    ),
    OffenseTemplate(
        "Potential Botnet Connection (DNS)\n containing DNS Query to known malicious domain\n",
        ("Botnet Address", "Suspicious Activity"), ((100480, "CRE_RULE"), (100481, "CRE_RULE")), 0,
        ("firewall", "linux"), (6, 9), (5, 300), False, 0.8,
    ),
    OffenseTemplate(
        "Malware Detected - Action Failed\n containing Virus Detected\n",
        ("Virus Detected", "Malware Infection"), ((100350, "CRE_RULE"),), 7, ("endpoint", "windows"),
        (7, 9), (1, 40), False, 0.7,
    ),
    OffenseTemplate(
        "Communication with Known Watched Networks\n containing Outbound Connection to Tor Exit Node\n",
        ("Suspicious Activity", "Suspicious Packet"), ((100410, "CRE_RULE"),), 0, ("firewall",), (5, 8),
        (3, 250), False, 0.8,
    ),
    OffenseTemplate(
        "Brute Force Attack via SSH\n containing SSH Login Failed\n",
        ("User Login Failure", "Brute Force Login"), ((100061, "CRE_RULE"),), 0, ("linux", "firewall"),
        (5, 8), (60, 9000), True, 1.2,
    ),
    OffenseTemplate(
        "User Added to Privileged Group\n containing A member was added to a security-enabled global group\n",
        ("Group Member Added", "Policy Violation"), ((100087, "CRE_RULE"),), 3, ("windows",), (4, 7),
        (1, 6), False, 0.6,
    ),
    OffenseTemplate(
        "Suspicious PowerShell Command Executed\n containing Process Create: encoded command line\n",
        ("Suspicious Activity", "Execution"), ((100522, "CRE_RULE"), (102001, "ADE_RULE")), 7,
        ("windows", "endpoint"), (6, 9), (1, 25), False, 0.7,
    ),
    OffenseTemplate(
        "DoS Attack Detected\n containing TCP SYN Flood\n",
        ("TCP DoS", "Network DoS"), ((100301, "CRE_RULE"),), 1, ("firewall",), (6, 9), (5000, 400000),
        True, 0.5,
    ),
    OffenseTemplate(
        "Large Outbound Data Transfer\n containing Data Leakage: Large Outbound Transfer\n",
        ("Suspicious Activity", "Data Leakage"), ((102010, "ADE_RULE"),), 0, ("firewall", "web"), (5, 8),
        (2, 60), False, 0.5,
    ),
    OffenseTemplate(
        "Web Application Attack: SQL Injection Attempts\n containing SQL Injection\n",
        ("Web Application Attack", "SQL Injection"), ((100601, "CRE_RULE"),), 0, ("web", "firewall"),
        (5, 8), (10, 900), True, 0.9,
    ),
    OffenseTemplate(
        "Impossible Travel: Successful Logins from Distant Locations\n",
        ("User Login Success", "Suspicious Activity"), ((102030, "ADE_RULE"),), 3, ("cloud",), (5, 8),
        (2, 12), False, 0.6,
    ),
    OffenseTemplate(
        "Admin Login Outside Business Hours\n containing Admin Login Successful\n",
        ("Admin Login Successful", "Policy Violation"), ((100090, "CRE_RULE"),), 3,
        ("windows", "linux"), (2, 5), (1, 10), False, 0.8,
    ),
    OffenseTemplate(
        "Excessive Database Connections\n containing Database Connection Opened\n",
        ("Suspicious Activity", "Database Access"), ((100720, "CRE_RULE"),), 6, ("database",), (3, 6),
        (100, 5000), False, 0.4,
    ),
    OffenseTemplate(
        "Session Closed\n", ("Session Closed",), ((100405, "CRE_RULE"),), 0, ("windows",), (1, 3),
        (1, 5), True, 0.4,
    ),
)  # fmt: skip
_TEMPLATE_WEIGHTS = tuple(t.weight for t in OFFENSE_TEMPLATES)

EVENT_NAMES = (
    "Firewall Deny", "Firewall Permit", "Failure Audit: An account failed to log on",
    "Success Audit: An account was successfully logged on", "Host Port Scan",
    "DNS Query to known malicious domain", "Virus Detected", "SQL Injection", "TCP SYN Flood",
    "SSH Login Failed", "Admin Login Successful", "Process Create: encoded command line",
    "Outbound Connection to Tor Exit Node", "Data Leakage: Large Outbound Transfer",
    "Unauthorized Access Attempt", "Reconnaissance: Network Sweep", "Suspicious Email Attachment Blocked",
    "Account Lockout", "Password Reset", "VPN Session Established", "Audit Log Cleared",
    "Success Audit: The Windows Filtering Platform has allowed a connection",
)  # fmt: skip
CATEGORY_NAMES = (
    "Access Denied", "Firewall Deny", "User Login Failure", "User Login Success", "Network Sweep",
    "Host Port Scan", "Virus Detected", "Suspicious Activity", "Web Application Attack", "TCP DoS",
    "Misc Login Succeeded", "Policy Violation", "Access Permitted",
)  # fmt: skip
HIGH_LEVEL_CATEGORIES = {
    1000: "Recon", 2000: "DoS", 3000: "Authentication", 4000: "Access", 5000: "Exploit",
    6000: "Malware", 7000: "Suspicious Activity", 8000: "System", 9000: "Policy", 10000: "Unknown",
}  # fmt: skip
PROTOCOLS = ("TCP", "UDP", "ICMP")
COMMON_PORTS = (22, 25, 53, 80, 123, 135, 139, 389, 443, 445, 993, 1433, 3306, 3389, 5985, 8080, 8443)


# ---------------------------------------------------------------------------------------------
# Query parameters: filter, fields, sort, Range
# ---------------------------------------------------------------------------------------------


class FilterError(ValueError):
    """The ``filter`` parameter does not parse or names a field the collection lacks."""


_FILTER_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?\d+(?:\.\d+)?)(?![A-Za-z0-9_.])
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>>=|<=|!=|<>|=|>|<)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "is", "null", "in", "true", "false"}
_LITERAL_WORDS = {"true": True, "false": False, "null": None}
_RANGE_OPS = {">", ">=", "<", "<="}


@dataclass
class CompiledFilter:
    predicate: Callable[[JSON], bool]
    # The top-level ``and`` terms that are plain ``field op number`` comparisons (None for any
    # other term), so a caller holding records indexed by a field can bisect or pick a partition
    # instead of scanning, and skip the predicate when the index answers every term.
    conjuncts: list[tuple[str, str, Any] | None]


class _FilterParser:
    """Recursive descent over QRadar's filter syntax, producing a small AST of tuples."""

    def __init__(self, text: str, kinds: dict[str, str]) -> None:
        self.text = text
        self.kinds = kinds
        self.tokens = self._tokenize(text)
        self.pos = 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, Any]]:
        tokens: list[tuple[str, Any]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _FILTER_TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                bad = text[pos:].lstrip()[:1]
                raise FilterError(f"unexpected character {bad!r} at position {pos}")
            pos = m.end()
            if m.group("num") is not None:
                raw = m.group("num")
                tokens.append(("lit", float(raw) if "." in raw else int(raw)))
            elif m.group("str") is not None:
                tokens.append(("lit", re.sub(r"\\(.)", r"\1", m.group("str")[1:-1])))
            elif m.group("op") is not None:
                tokens.append(("op", "!=" if m.group("op") == "<>" else m.group("op")))
            elif m.group("punct") is not None:
                tokens.append((m.group("punct"), m.group("punct")))
            else:
                word = m.group("word")
                tokens.append(("kw", word.lower()) if word.lower() in _KEYWORDS else ("word", word))
        return tokens

    def _peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, Any]:
        tok = self._peek()
        if tok is None:
            raise FilterError("unexpected end of filter")
        self.pos += 1
        return tok

    def _accept_kw(self, word: str) -> bool:
        tok = self._peek()
        if tok == ("kw", word):
            self.pos += 1
            return True
        return False

    def parse(self) -> tuple:
        if not self.tokens:
            raise FilterError("empty filter")
        node = self._or()
        extra = self._peek()
        if extra is not None:
            raise FilterError(f"unexpected {extra[1]!r} after a complete expression")
        return node

    def _or(self) -> tuple:
        terms = [self._and()]
        while self._accept_kw("or"):
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else ("or", terms)

    def _and(self) -> tuple:
        terms = [self._term()]
        while self._accept_kw("and"):
            terms.append(self._term())
        return terms[0] if len(terms) == 1 else ("and", terms)

    def _term(self) -> tuple:
        if self._accept_kw("not"):
            return ("not", self._term())
        tok = self._peek()
        if tok is not None and tok[0] == "(":
            self.pos += 1
            node = self._or()
            if self._take()[0] != ")":
                raise FilterError("missing closing parenthesis")
            return node
        return self._comparison()

    def _literal(self) -> Any:
        kind, value = self._take()
        if kind == "lit":
            return value
        if kind == "kw" and value in _LITERAL_WORDS:
            return _LITERAL_WORDS[value]
        if kind == "word":  # consoles accept an unquoted word as a string value (status=OPEN)
            return value
        raise FilterError(f"expected a value, found {value!r}")

    def _comparison(self) -> tuple:
        kind, name = self._take()
        if kind != "word":
            raise FilterError(f"expected a field name, found {name!r}")
        top = name.split(".")[0]
        if top not in self.kinds:
            raise FilterError(f"the field {name!r} is not a field of this resource")
        if "." not in name and self.kinds[top] in ("list", "dict"):
            raise FilterError(f"the field {name!r} cannot be filtered on")
        if self._accept_kw("is"):
            negate = self._accept_kw("not")
            if not self._accept_kw("null"):
                raise FilterError(f"expected null after 'is' for {name!r}")
            return ("null", name, negate)
        negate = self._accept_kw("not")
        if self._accept_kw("in"):
            if self._take()[0] != "(":
                raise FilterError(f"expected '(' after 'in' for {name!r}")
            values = [self._literal()]
            while (tok := self._take())[0] == ",":
                values.append(self._literal())
            if tok[0] != ")":
                raise FilterError("missing closing parenthesis after the 'in' list")
            return ("in", name, tuple(values), negate)
        if negate:
            raise FilterError(f"expected 'in' after 'not' for {name!r}")
        kind, op = self._take()
        if kind != "op":
            raise FilterError(f"expected an operator after {name!r}, found {op!r}")
        value = self._literal()
        if op in _RANGE_OPS and (value is None or isinstance(value, bool)):
            raise FilterError(f"operator {op} needs a number or a string, not {value!r}")
        field_kind = self.kinds[top] if "." not in name else "any"
        if op in _RANGE_OPS and field_kind == "number" and isinstance(value, str):
            raise FilterError(f"the field {name!r} is numeric; {value!r} is not a number")
        return ("cmp", name, op, value)


def _access(name: str) -> str:
    if "." in name:
        return f"_path(o, {tuple(name.split('.'))!r})"
    return f"o.get({name!r})"


def _gen(node: tuple) -> str:
    """Python source for one AST node; only parsed literals (via repr) and checked names go in."""
    tag = node[0]
    if tag in ("and", "or"):
        return "(" + f" {tag} ".join(_gen(n) for n in node[1]) + ")"
    if tag == "not":
        return f"(not {_gen(node[1])})"
    if tag == "null":
        return f"({_access(node[1])} is {'not ' if node[2] else ''}None)"
    if tag == "in":
        return f"({_access(node[1])} {'not in' if node[3] else 'in'} {node[2]!r})"
    _, name, op, value = node
    if value is None or isinstance(value, bool):
        return f"({_access(name)} {'is' if op == '=' else 'is not'} {value!r})"
    if op in ("=", "!="):
        return f"({_access(name)} {'==' if op == '=' else '!='} {value!r})"
    # Ordering on a missing / null / differently typed value is simply false, never an error.
    types = "_NUM" if isinstance(value, (int, float)) else "_STR"
    return f"((_v := {_access(name)}).__class__ in {types} and _v {op} {value!r})"


def _path(record: JSON, parts: tuple[str, ...]) -> Any:
    value: Any = record
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def compile_filter(text: str, kinds: dict[str, str]) -> CompiledFilter:
    """Compile a QRadar ``filter`` into a Python predicate.

    The AST is turned into one lambda (evaluated once per record) because a tree of closures is
    several times slower, and a first page over 100k offenses must stay in the tens of ms. Only
    literals re-emitted with ``repr`` and field names checked against the collection reach the
    generated source, so a filter cannot inject code.
    """
    tree = _FilterParser(text, kinds).parse()
    source = f"lambda o: {_gen(tree)}"
    env = {"__builtins__": {}, "_path": _path, "_NUM": frozenset((int, float)), "_STR": frozenset((str,))}
    predicate = eval(compile(source, "<qradar-filter>", "eval"), env)  # noqa: S307 - see docstring
    conjuncts: list[tuple[str, str, Any] | None] = []
    for term in tree[1] if tree[0] == "and" else [tree]:
        numeric = term[0] == "cmp" and isinstance(term[3], (int, float)) and not isinstance(term[3], bool)
        conjuncts.append((term[1], term[2], term[3]) if numeric else None)
    return CompiledFilter(predicate, conjuncts)


FieldSpec = list[tuple[str, "FieldSpec | None"]]


def parse_fields(text: str) -> FieldSpec:
    """``id,status,rules(id,type)`` -> ``[("id", None), ("status", None), ("rules", [...])]``."""
    pos = 0

    def parse_list() -> FieldSpec:
        nonlocal pos
        spec: FieldSpec = []
        while True:
            m = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*").match(text, pos)
            if m is None:
                raise QRadarError(422, 30, f"The fields parameter {text!r} is not valid at position {pos}.")
            pos = m.end()
            sub: FieldSpec | None = None
            if pos < len(text) and text[pos] == "(":
                pos += 1
                sub = parse_list()
                if pos >= len(text) or text[pos] != ")":
                    raise QRadarError(422, 30, f"The fields parameter {text!r} misses a ')'.")
                pos += 1
                while pos < len(text) and text[pos] == " ":
                    pos += 1
            spec.append((m.group(1), sub))
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            return spec

    spec = parse_list()
    if pos != len(text):
        raise QRadarError(422, 30, f"The fields parameter {text!r} is not valid at position {pos}.")
    return spec


def project(value: Any, spec: FieldSpec | None) -> Any:
    if spec is None:
        return value
    if isinstance(value, dict):
        return {name: project(value[name], sub) for name, sub in spec if name in value}
    if isinstance(value, (list, tuple)):
        return [project(item, spec) for item in value]
    return value


SortKeys = tuple[tuple[str, bool], ...]  # (field, descending)


def parse_sort(text: str, kinds: dict[str, str]) -> SortKeys:
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        # an unencoded "+" arrives as a space, so a leading space means ascending too
        part = part.strip()
        descending = part.startswith("-")
        name = part.lstrip("+-").strip()
        if name not in kinds:
            raise QRadarError(422, 30, f'Specified sort field "{name}" is not recognized by this endpoint.')
        if kinds[name] in ("list", "dict"):
            raise QRadarError(422, 30, f'The field "{name}" cannot be used to sort.')
        keys.append((name, descending))
    return tuple(keys)


def sort_records(rows: list[JSON], keys: SortKeys) -> list[JSON]:
    """Stable multi-key sort, nulls last when ascending; ``id`` breaks ties in the first key's direction."""
    if not keys:
        return rows
    if not any(name == "id" for name, _ in keys):
        keys = (*keys, ("id", keys[0][1]))
    rows = list(rows)
    for name, descending in reversed(keys):
        rows.sort(key=_null_last(name), reverse=descending)
    return rows


def _null_last(name: str) -> Callable[[JSON], tuple[bool, Any]]:
    def key(record: JSON) -> tuple[bool, Any]:
        value = record.get(name)
        return (value is None, value)

    return key


_RANGE_RE = re.compile(r"^\s*items\s*=\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_range(header: str | None) -> tuple[int, int] | None:
    if header is None:
        return None
    m = _RANGE_RE.match(header)
    if m is None or int(m.group(1)) > int(m.group(2)):
        raise QRadarError(
            416, 1004, f'The Range header "{header}" is not valid; expected "items=x-y" with x <= y.'
        )
    return int(m.group(1)), int(m.group(2))


def field_kinds(records: Iterable[JSON]) -> dict[str, str]:
    """Kind of every field seen (number, string, bool, list, dict, any) — what filter/sort may use."""
    kinds: dict[str, str] = {}
    for record in records:
        for name, value in record.items():
            if value is None:
                kinds.setdefault(name, "any")
                continue
            kind = (
                "bool" if isinstance(value, bool)
                else "number" if isinstance(value, (int, float))
                else "string" if isinstance(value, str)
                else "list" if isinstance(value, (list, tuple))
                else "dict"
            )  # fmt: skip
            if kinds.get(name, "any") == "any":
                kinds[name] = kind
    return kinds


# ---------------------------------------------------------------------------------------------
# AQL: parse just enough of a query to synthesise plausible, deterministic rows
# ---------------------------------------------------------------------------------------------


class AqlError(ValueError):
    pass


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _find_top_level_keyword(text: str, keyword: str) -> int:
    depth, quote = 0, ""
    pattern = re.compile(rf"\b{keyword}\b", re.I)
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif (
            depth == 0
            and pattern.match(text, i)
            and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))
        ):
            return i
    return -1


_ALIAS_RE = re.compile(r"\s+as\s+(?:'([^']*)'|\"([^\"]*)\"|([A-Za-z_][A-Za-z0-9_]*))\s*$", re.I)
_FUNC_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)$", re.S)
_AGGREGATES = re.compile(r"\b(count|sum|avg|min|max|uniquecount)\s*\(", re.I)
_STAR_COLUMNS = (
    "qid", "sourceip", "sourceport", "destinationip", "destinationport", "username", "eventcount",
    "magnitude", "severity", "credibility", "logsourceid", "category", "highlevelcategory",
    "protocolid", "starttime", "devicetime", "domainid",
)  # fmt: skip


@dataclass
class AqlColumn:
    name: str
    expr: str


@dataclass
class AqlQuery:
    text: str
    table: str  # events | flows
    columns: list[AqlColumn]
    where: str
    group_by: list[str]
    order_by: tuple[str, bool] | None  # (name, descending)
    limit: int | None
    start_ms: int
    stop_ms: int
    domain_id: int | None
    aggregated: bool


def _column_name(expr: str) -> str:
    m = _FUNC_RE.match(expr.strip())
    if m is None:
        return re.sub(r"\W+", "_", expr.strip()).strip("_") or "column"
    func, args = m.group(1).lower(), m.group(2).strip()
    first = _split_top_level(args)[0] if args else ""
    first = first.strip("'\" ")
    if first in ("", "*"):
        return func
    return f"{func}_{re.sub(r'[^A-Za-z0-9_]+', '_', first).strip('_')}"


def _parse_aql_time(raw: str) -> int:
    raw = raw.strip()
    m = re.match(r"^parsedatetime\(\s*'([^']*)'\s*\)$", raw, re.I)
    if m:
        raw = m.group(1)
    raw = raw.strip("'\" ")
    if raw.isdigit():
        return int(raw)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            stamp = dt.datetime.strptime(raw, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        return int(stamp.timestamp() * 1000)
    raise AqlError(f"Cannot parse the time {raw!r}; use epoch milliseconds or 'yyyy-MM-dd HH:mm:ss'.")


_TIME_ARG = r"(\d{10,}|parsedatetime\(\s*'[^']*'\s*\)|'[^']*')"
_UNIT_MS = {"second": 1000, "minute": 60_000, "hour": 3_600_000, "day": DAY_MS, "week": 7 * DAY_MS}


def parse_aql(text: str, now_ms: int) -> AqlQuery:
    """Split an AQL query into what result synthesis needs; reject what is not a SELECT."""
    query = " ".join(text.split())
    if not re.match(r"^select\s", query, re.I):
        raise AqlError("The query_expression must start with SELECT.")
    from_at = _find_top_level_keyword(query, "from")
    if from_at < 0:
        raise AqlError("The query_expression has no FROM clause.")
    select_list = query[len("select") : from_at].strip()
    m = re.match(r"from\s+(events|flows)\b(.*)$", query[from_at:], re.I | re.S)
    if m is None:
        raise AqlError("Only FROM events and FROM flows are supported.")
    table, rest = m.group(1).lower(), m.group(2)
    if not select_list:
        raise AqlError("The SELECT list is empty.")
    columns: list[AqlColumn] = []
    for item in _split_top_level(select_list):
        if item == "*":
            columns.extend(AqlColumn(name, name) for name in _STAR_COLUMNS)
            continue
        alias = _ALIAS_RE.search(item)
        if alias:
            name = next(g for g in alias.groups() if g is not None)
            columns.append(AqlColumn(name, item[: alias.start()].strip()))
        else:
            columns.append(AqlColumn(_column_name(item), item))
    if query.count("(") != query.count(")") or query.count("'") % 2:
        raise AqlError("Unbalanced parentheses or quotes in the query_expression.")

    clause_end = r"(?=\bgroup\s+by\b|\border\s+by\b|\blimit\b|\bstart\b|\blast\b|\bhaving\b|$)"
    where_m = re.search(rf"\bwhere\b(.*?){clause_end}", rest, re.I | re.S)
    group_m = re.search(
        r"\bgroup\s+by\b(.*?)(?=\border\s+by\b|\blimit\b|\bstart\b|\blast\b|\bhaving\b|$)", rest, re.I | re.S
    )
    order_m = re.search(r"\border\s+by\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?", rest, re.I)
    limit_m = re.search(r"\blimit\s+(\d+)", rest, re.I)
    domain_m = re.search(r"\bdomainid(?:\s*\([^)]*\))?\s*=\s*(\d+)", query, re.I)

    start_m = re.search(rf"\bstart\s+{_TIME_ARG}", rest, re.I)
    stop_m = re.search(rf"\bstop\s+{_TIME_ARG}", rest, re.I)
    last_m = re.search(r"\blast\s+(\d+)\s+(second|minute|hour|day|week)s?\b", rest, re.I)
    if last_m:
        stop_ms = now_ms
        start_ms = now_ms - int(last_m.group(1)) * _UNIT_MS[last_m.group(2).lower()]
    elif start_m:
        start_ms = _parse_aql_time(start_m.group(1))
        stop_ms = _parse_aql_time(stop_m.group(1)) if stop_m else now_ms
    else:
        start_ms, stop_ms = now_ms - 5 * 60_000, now_ms  # AQL's default window: the last minutes
    if stop_ms < start_ms:
        raise AqlError("STOP is before START.")

    group_by = _split_top_level(group_m.group(1)) if group_m else []
    aggregated = bool(group_by) or any(_AGGREGATES.search(c.expr) for c in columns)
    return AqlQuery(
        text=text,
        table=table,
        columns=columns,
        where=where_m.group(1).strip() if where_m else "",
        group_by=group_by,
        order_by=(order_m.group(1), (order_m.group(2) or "asc").lower() == "desc") if order_m else None,
        limit=int(limit_m.group(1)) if limit_m else None,
        start_ms=start_ms,
        stop_ms=stop_ms,
        domain_id=int(domain_m.group(1)) if domain_m else None,
        aggregated=aggregated,
    )


def java_date_format(pattern: str, stamp_ms: int) -> str:
    """AQL DATEFORMAT uses Java SimpleDateFormat letters; enough of them for dashboards."""
    moment = dt.datetime.fromtimestamp(stamp_ms / 1000, tz=dt.UTC)
    table = {
        "yyyy": "%Y", "yy": "%y", "MMMM": "%B", "MMM": "%b", "MM": "%m", "dd": "%d", "HH": "%H",
        "hh": "%I", "mm": "%M", "ss": "%S", "EEE": "%a", "a": "%p",
    }  # fmt: skip
    out = []
    for run in re.finditer(r"([A-Za-z])\1*|[^A-Za-z]+", pattern):
        token = run.group(0)
        if token == "ww":
            out.append(f"{moment.isocalendar()[1]:02d}")
        elif token in table:
            out.append(moment.strftime(table[token]))
        else:
            out.append(token)
    return "".join(out)


def _bucket_step_ms(pattern: str) -> int:
    if "mm" in pattern:  # minutes ("MM" is the month)
        return 60_000
    if "H" in pattern or "h" in pattern:
        return 3_600_000
    if "d" in pattern:
        return DAY_MS
    if "w" in pattern:
        return 7 * DAY_MS
    return DAY_MS  # months / years: step by day and keep distinct labels


_NUMERIC_NAME = re.compile(
    r"count(?!ry)|sum|avg|eps|total|bytes|events|peak|average|traffic|packets|port|magnitude|severity|"
    r"credibility|relevance|number|(^|_)(min|max)(_|$)|^(min|max)|(min|max)$",
    re.I,
)
_FLOAT_NAME = re.compile(r"avg|eps|average|rate|ratio|percent", re.I)


def _classify(column: AqlColumn) -> str:
    name, expr = column.name.lower(), column.expr.lower()
    if "dateformat(" in expr:
        return "datefmt"
    if re.search(r"\bthen\s+'", expr):
        return "case"
    if "domainname(" in expr or name in ("customer", "domain", "domain_name", "tenant"):
        return "domain"
    if re.match(r"^(min|max)\(\s*(start|end|device)time\s*\)$", expr):
        return "time"
    if "uniquecount(" in expr or "user" in name and _AGGREGATES.search(expr):
        return "unique"
    if _AGGREGATES.search(expr) or "/" in expr or _NUMERIC_NAME.search(name):
        return "float" if _FLOAT_NAME.search(name) or "avg(" in expr or "/" in expr else "int"
    if name in (
        "starttime",
        "endtime",
        "devicetime",
        "time",
        "timestamp",
        "day",
        "hour",
        "date",
    ) or name.endswith("_time"):
        return "time"
    if "qidname(" in expr or "qiddescription(" in expr or name in ("event_name", "qid_name", "eventname"):
        return "event"
    if "logsourcetypename(" in expr:
        return "log_source_type"
    if "logsourcename(" in expr or name in ("log_source", "logsource", "log_source_name"):
        return "log_source"
    if "rulename(" in expr or "rule" in name or "alert" in name:
        return "rule_list" if name.startswith("rulename_") else "rule"
    if "categoryname(" in expr:
        return "category"
    if name in (
        "category",
        "highlevelcategory",
        "qid",
        "logsourceid",
        "protocolid",
        "domainid",
        "devicetype",
    ):
        return "id"
    if name.endswith("v6"):
        return "ipv6"
    if re.search(r"ip$|(^|_)ip(_|$)|address", name):
        return "ip"
    if "user" in name:
        return "user"
    if "geo" in name or "country" in name or "location" in name:
        return "country"
    if "protocol" in name:
        return "protocol"
    if "mac" in name:
        return "mac"
    if "direction" in name:
        return "direction"
    if "host" in name or "collector" in name or "processor" in name:
        return "host"
    if "payload" in name:
        return "payload"
    if "reason" in name:
        return "reason"
    return "event"


@dataclass
class AqlWorld:
    """What result synthesis may draw on: the simulator's own domains and their event rates."""

    domains: list[tuple[int, str, float]]  # (id, name, events per second)
    log_sources: dict[int, list[str]]  # domain id -> log source names
    collector_hosts: list[str]
    rule_names: list[str]


def synthesise_rows(query: AqlQuery, world: AqlWorld, seed: int) -> list[JSON]:
    """Rows that look like what the query would return, the same for the same query text.

    QRadar's answer cannot be computed without events, so the shape comes from the query (column
    names, GROUP BY, ORDER BY, LIMIT, the time window, a ``domainid = N`` condition) and the values
    from the simulator's domains: counts follow each domain's event rate over the window, EPS
    columns the domain's current rate. Seeded by a SHA-256 of the query text (``hash()`` differs
    per process).
    """
    rng = derive_rng(seed, "aql", stable_hash(" ".join(query.text.split())))
    if query.domain_id is not None:
        scoped = [d for d in world.domains if d[0] == query.domain_id]
    else:
        scoped = list(world.domains)
    eps = sum(d[2] for d in scoped)
    window_s = max(1.0, (query.stop_ms - query.start_ms) / 1000)
    kinds = [_classify(c) for c in query.columns]
    log_source_pool = [n for d in scoped for n in world.log_sources.get(d[0], [])] or [
        "Custom Rule Engine-8 :: qradar-console"
    ]
    # Any condition beyond the domain narrows the events counted to a small share of the total.
    residue = re.sub(r"\bdomainid(?:\s*\([^)]*\))?\s*=\s*\d+", "", query.where, flags=re.I)
    narrowed = bool(re.sub(r"\b(and|or)\b|[()\s]", "", residue, flags=re.I))
    fraction = rng.uniform(2e-5, 6e-3) if narrowed else 1.0

    # Which rows exist: one per domain, one per time bucket, a handful of groups, or raw events.
    group_text = " ".join(query.group_by).lower()
    bucket_pattern = None
    if query.group_by:
        for column, kind in zip(query.columns, kinds, strict=True):
            pattern = _date_pattern(column.expr) if kind == "datefmt" else None
            if pattern and ("dateformat" in group_text or column.name.lower() in group_text):
                bucket_pattern = pattern
                break
    row_domains: list[tuple[int, str, float]] | None = None
    buckets: list[tuple[str, int]] = []
    if query.group_by and re.search(r"(^|\W)domainid(\W|$)", group_text):
        row_domains = scoped if eps > 0 else []
        n_rows = len(row_domains)
    elif bucket_pattern is not None:
        labels: dict[str, int] = {}
        step = _bucket_step_ms(bucket_pattern)
        stamp = query.start_ms
        while stamp < query.stop_ms and len(labels) < 2000:
            labels.setdefault(java_date_format(bucket_pattern, stamp), stamp)
            stamp += step
        buckets = list(labels.items()) if eps > 0 else []
        n_rows = len(buckets)
    elif query.group_by:
        n_rows = rng.randint(3, 10) if eps > 0 else 0
    elif query.aggregated:
        n_rows = 1
    else:
        n_rows = min(query.limit or 20, 1000) if eps > 0 else 0
    if query.limit is not None:
        n_rows = min(n_rows, query.limit)

    # How a grouped total splits over rows: evenly-ish over time buckets, long-tailed over groups.
    if buckets:
        weights = [rng.uniform(0.7, 1.3) for _ in range(n_rows)]
    else:
        weights = sorted((rng.paretovariate(1.3) for _ in range(n_rows)), reverse=True)
    weight_sum = sum(weights) or 1.0
    distinct: dict[str, list[Any]] = {}
    rows: list[JSON] = []
    for i in range(n_rows):
        row: JSON = {}
        domain = row_domains[i] if row_domains is not None else None
        row_eps = domain[2] if domain is not None else eps
        share = weights[i] / weight_sum if (query.group_by and domain is None) else 1.0
        rate_share = share if (query.group_by and domain is None and not buckets) else 1.0
        for column, kind in zip(query.columns, kinds, strict=True):
            name = column.name
            if kind == "datefmt":
                stamp = buckets[i][1] if buckets else rng.randint(query.start_ms, query.stop_ms)
                row[name] = java_date_format(_date_pattern(column.expr) or "yyyy-MM-dd", stamp)
            elif kind == "case":
                row[name] = rng.choice(re.findall(r"\bthen\s+'([^']*)'", column.expr, re.I))
            elif kind == "domain":
                row[name] = domain[1] if domain else (rng.choice(scoped)[1] if scoped else "")
            elif kind == "time":
                row[name] = rng.randint(query.start_ms, query.stop_ms)
            elif kind == "unique":
                row[name] = (
                    int(rng.uniform(0.5, 1.5) * max(1.0, math.sqrt(row_eps) * 3) * share) if row_eps else 0
                )
            elif kind in ("int", "float") and query.aggregated:
                row[name] = _aggregate_number(
                    name.lower(), kind, rng, row_eps, window_s, share, rate_share, fraction
                )
            elif kind in ("int", "float"):
                row[name] = _event_number(name.lower(), kind, rng)
            elif query.group_by and _is_grouped(column, group_text):
                pool = distinct.setdefault(
                    name, _distinct_values(kind, name, rng, n_rows, world, log_source_pool, query)
                )
                row[name] = pool[i % len(pool)]
            else:
                row[name] = _value(kind, name, rng, world, log_source_pool, query)
        rows.append(row)
    if query.order_by is not None and rows and query.order_by[0] in rows[0]:
        name, descending = query.order_by
        rows.sort(key=lambda r: (r[name] is None, r[name]), reverse=descending)
    elif not query.aggregated:
        time_col = next((c.name for c, k in zip(query.columns, kinds, strict=True) if k == "time"), None)
        if time_col:
            rows.sort(key=lambda r: r[time_col], reverse=True)  # newest events first
    return rows


def _date_pattern(expr: str) -> str | None:
    m = re.search(r"dateformat\s*\(.*,\s*'([^']*)'\s*\)", expr, re.I | re.S)
    return m.group(1) if m else None


def _is_grouped(column: AqlColumn, group_text: str) -> bool:
    if column.name.lower() in group_text or column.expr.lower() in group_text:
        return True
    # QIDNAME(qid) is grouped by "GROUP BY qid"
    return any(
        re.search(rf"(^|\W){re.escape(arg)}(\W|$)", group_text)
        for arg in re.findall(r"\((\w+)", column.expr.lower())
    )


def _aggregate_number(
    name: str,
    kind: str,
    rng: Any,
    eps: float,
    window_s: float,
    share: float,
    rate_share: float,
    fraction: float,
) -> int | float:
    if eps <= 0:
        return 0.0 if kind == "float" else 0
    if any(w in name for w in ("magnitude", "severity", "credibility", "relevance")):
        return round(rng.uniform(1, 9), 2) if kind == "float" else rng.randint(1, 9)
    if kind == "float" and ("eps" in name or "avg" in name or "average" in name or "rate" in name):
        factor = rng.uniform(1.6, 2.6) if ("peak" in name or "max" in name) else rng.uniform(0.85, 1.15)
        return round(eps * factor * rate_share, 2)
    total = eps * window_s * fraction * share * rng.uniform(0.9, 1.1)
    if "bytes" in name:
        total *= rng.uniform(400, 1400)
    return round(total, 2) if kind == "float" else max(0, int(total))


def _event_number(name: str, kind: str, rng: Any) -> int | float:
    """A per-event value (raw event rows, no aggregation)."""
    if "port" in name:
        return rng.choice(COMMON_PORTS) if rng.random() < 0.7 else rng.randint(1024, 65535)
    if any(w in name for w in ("magnitude", "severity", "credibility", "relevance")):
        return rng.randint(0, 10)
    if "bytes" in name:
        return rng.randint(40, 150_000)
    if kind == "float":
        return round(rng.uniform(0.1, 50), 2)
    return 1 + int((rng.random() ** 4) * 20)


def _pool(kind: str, world: AqlWorld, log_sources: list[str]) -> Sequence[Any] | None:
    return {
        "event": EVENT_NAMES, "rule": world.rule_names, "category": CATEGORY_NAMES, "user": USERNAMES,
        "country": COUNTRIES, "log_source": log_sources, "host": world.collector_hosts, "protocol": PROTOCOLS,
        "reason": [r["text"] for r in CLOSING_REASONS if not r["is_deleted"]],
        "log_source_type": [k.name for k in LOG_SOURCE_KINDS],
    }.get(kind)  # fmt: skip


def _distinct_values(
    kind: str, name: str, rng: Any, n: int, world: AqlWorld, log_sources: list[str], query: AqlQuery
) -> list[Any]:
    pool = _pool(kind, world, log_sources)
    if pool is not None and len(pool) >= n:
        return rng.sample(list(pool), n)
    values: list[Any] = []
    for _ in range(20 * n + 20):
        value = _value(kind, name, rng, world, log_sources, query)
        if value not in values:
            values.append(value)
        if len(values) == n:
            break
    return values or [None]


def _value(kind: str, name: str, rng: Any, world: AqlWorld, log_sources: list[str], query: AqlQuery) -> Any:
    pool = _pool(kind, world, log_sources)
    if kind == "user":
        return rng.choice(USERNAMES) if rng.random() < 0.85 else None
    if pool is not None:
        return rng.choice(pool)
    if kind == "rule_list":
        return rng.sample(world.rule_names, k=min(len(world.rule_names), rng.randint(1, 4)))
    if kind == "id":
        lowered = name.lower()
        if lowered == "domainid":
            return query.domain_id if query.domain_id is not None else rng.choice(world.domains)[0]
        if lowered in ("category", "highlevelcategory"):
            high = rng.choice(tuple(HIGH_LEVEL_CATEGORIES))
            return high if lowered == "highlevelcategory" else high + rng.randint(1, 40)
        if lowered == "protocolid":
            return rng.choice((6, 17, 1))
        return rng.randint(100, 9_000_000) if lowered == "qid" else rng.randint(60, 400)
    if kind == "ip":
        if rng.random() < 0.5:
            return _public_ip(rng)
        return f"10.{rng.randint(1, 60)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind == "ipv6":
        return (
            "0:0:0:0:0:0:0:0"
            if rng.random() < 0.7
            else ":".join(f"{rng.getrandbits(16):x}" for _ in range(8))
        )
    if kind == "mac":
        return (
            "00:00:00:00:00:00"
            if rng.random() < 0.6
            else ":".join(f"{rng.getrandbits(8):02X}" for _ in range(6))
        )
    if kind == "direction":
        return rng.choice(("L2L", "L2R", "R2L", "R2R"))
    if kind == "payload":
        return f"<13>{rng.choice(EVENT_NAMES)} src={_public_ip(rng)} user={rng.choice(USERNAMES)}"
    return rng.choice(EVENT_NAMES)


def _public_ip(rng: Any) -> str:
    random = rng.random  # randint is several times slower, and bulk seeding calls this 100k times
    first = _PUBLIC_FIRST_OCTETS[int(random() * len(_PUBLIC_FIRST_OCTETS))]
    return f"{first}.{int(random() * 256)}.{int(random() * 256)}.{1 + int(random() * 254)}"


@dataclass
class ArielSearch:
    search_id: str
    query: AqlQuery
    created: float  # time.monotonic()
    delay_s: float
    sizes: tuple[int, int, int]  # data_file_count, data_total_size, execution ms
    rows: list[JSON] | None = None
    canceled_at_progress: int | None = None


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class DomainInfo:
    """Per-domain material offenses are built from (shared, never mutated, to keep 100k offenses small)."""

    id: int
    name: str
    short: str
    weight: float
    net: int  # second octet of the customer's 10.x.0.0/16
    networks: tuple[str, ...]
    log_sources_by_kind: dict[str, list[JSON]] = field(default_factory=dict)
    hostnames: tuple[str, ...] = ()
    network_prefixes: list[list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.network_prefixes = [list(self.networks[: n + 1]) for n in range(len(self.networks))]


@dataclass(frozen=True, slots=True)
class OffensePace:
    """The seeded history's span and how much of it analysts have closed, by the age of an
    offense's last activity: (older than 7 days, 1-7 days, under a day)."""

    history_days: int
    closed_share: tuple[float, float, float]


# The default keeps the original 30 days with many offenses left open (what the tests rely on);
# ``demo`` is a SOC on top of its queue over three months: old offenses closed, a recent backlog.
OFFENSE_PACES = {
    "default": OffensePace(history_days=30, closed_share=(0.78, 0.3, 0.08)),
    "demo": OffensePace(history_days=90, closed_share=(0.96, 0.55, 0.12)),
}


_ADDRESS_ID_IN = re.compile(r"^\s*id\s+in\s*\(\s*(\d+(?:\s*,\s*\d+)*)\s*\)\s*$", re.I)


class AddressBook:
    """The console's offense addresses of one kind (``source`` or ``local_destination``): one id per
    (domain, address), as QRadar keys them, handed out the first time an offense names the address.

    Only the address, its domain and its network are kept per id; what depends on the offenses
    (``offense_ids``, the other kind's ids, counts, first and last seen, magnitude) is computed from
    them when a caller asks for those fields, so 100k offenses cost a few dicts, not lists per id.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.field = f"{kind}_ip"
        self.offense_field = f"{kind}_address_ids"
        other = "local_destination" if kind == "source" else "source"
        self.other_field = f"{other}_address_ids"
        self._ids: dict[tuple[int, str], int] = {}
        self.rows: list[tuple[str, int, str]] = []  # id - 1 -> (address, domain id, network)
        self.kinds = field_kinds([{
            "id": 1, self.field: "", "domain_id": 0, "network": "", "magnitude": 0, "event_flow_count": 0,
            "first_event_flow_seen": 0, "last_event_flow_seen": 0, "offense_ids": [], self.other_field: [],
        }])  # fmt: skip
        self.derived = frozenset(
            {"magnitude", "event_flow_count", "first_event_flow_seen", "last_event_flow_seen", "offense_ids",
             self.other_field}
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.rows)

    def id_for(self, domain_id: int, address: str, network: str) -> int:
        key = (domain_id, address)
        found = self._ids.get(key)
        if found is None:
            self.rows.append((address, domain_id, network))
            found = self._ids[key] = len(self.rows)
        return found

    def record(self, address_id: int) -> JSON:
        address, domain_id, network = self.rows[address_id - 1]
        return {"id": address_id, self.field: address, "domain_id": domain_id, "network": network}

    def enrich(self, records: list[JSON], offenses: Iterable[JSON]) -> None:
        """Fill the fields that come from the offenses naming each address (one pass over them)."""
        by_id = {r["id"]: r for r in records}
        for r in records:
            r.update(magnitude=0, event_flow_count=0, first_event_flow_seen=None, last_event_flow_seen=None,
                     offense_ids=[], **{self.other_field: []})  # fmt: skip
        if not by_id:
            return
        for offense in offenses:
            for address_id in offense[self.offense_field]:
                r = by_id.get(address_id)
                if r is None:
                    continue
                r["offense_ids"].append(offense["id"])
                r["magnitude"] = max(r["magnitude"], offense["magnitude"])
                r["event_flow_count"] += offense["event_count"] + offense["flow_count"]
                first, last = offense["start_time"], offense["last_updated_time"]
                r["first_event_flow_seen"] = min(r["first_event_flow_seen"] or first, first)
                r["last_event_flow_seen"] = max(r["last_event_flow_seen"] or last, last)
                others = r[self.other_field]
                others.extend(i for i in offense[self.other_field] if i not in others)
        for r in records:
            r["offense_ids"].sort()
            r[self.other_field].sort()


class QRadarState:
    """The console's data: reference collections, offenses, Ariel searches, and how they change."""

    def __init__(
        self, seed: int, *, offenses: int, anchor_ms: int | None, ariel_delay: float, profile: str = "default"
    ) -> None:
        self.seed = seed
        self.pace = OFFENSE_PACES[profile]
        self.rng = derive_rng(seed, "qradar")
        self.ariel_delay = ariel_delay
        self.clock = MonotonicClock(1000)
        self.anchor_ms = anchor_ms if anchor_ms is not None else (self.clock.wall() // 60_000) * 60_000
        self.versions_seen: Counter[str] = Counter()
        self.searches: OrderedDict[str, ArielSearch] = OrderedDict()

        # Offenses: by id (insertion = ascending id), plus the same records sorted by
        # (last_persisted_time, id) for the incremental-sync query every client makes.
        self.offenses: dict[int, JSON] = {}
        self._lut_keys: list[tuple[int, int]] = []
        self._lut_recs: list[JSON] = []
        self._by_domain: dict[int, tuple[list[tuple[int, int]], list[JSON]]] = {}
        self.next_offense_id = 1
        self.notes: dict[int, list[JSON]] = {}
        self.next_note_id = 0
        self.version = 0  # bumps on every offense change; keys the query cache
        self._cache: OrderedDict[tuple, list[JSON]] = OrderedDict()
        self._cache_version = -1

        self.addresses = {
            "source": AddressBook("source"),
            "local_destination": AddressBook("local_destination"),
        }
        self._build_reference_data()
        self._offense_kinds: dict[str, str] = {}
        self._generate_history(offenses)

    # -- reference data ---------------------------------------------------------------------
    def _build_reference_data(self) -> None:
        rng = derive_rng(self.seed, "qradar", "reference")
        anchor = self.anchor_ms
        self.event_collectors: list[JSON] = [
            {
                "id": 7,
                "name": "eventcollector0 :: qradar-console",
                "host_id": 53,
                "component_name": "eventcollector0",
            }
        ]
        self.log_source_types: list[JSON] = [
            {
                "id": k.type_id,
                "name": k.name,
                "custom": False,
                "version": f"7.5.0.{20230000 + rng.randint(101, 1231)}{rng.randint(100000, 235959)}",
                "uuid": seeded_uuid(rng),
                "default_protocol_id": k.protocol_type_id,
                "internal": k.kind == "internal",
                "latest_version": "7.5.0",
                "log_source_extension_id": None,
                "protocol_types": [{"protocol_id": k.protocol_type_id, "documented": True}],
                "supported_language_ids": [1],
            }
            for k in sorted(LOG_SOURCE_KINDS, key=lambda k: k.type_id)
        ]
        self.log_source_groups: list[JSON] = [
            {"id": 0, "name": "Other", "description": "Log sources not assigned to another group",
             "owner": "admin", "parent_id": None, "child_group_ids": [], "assignable": True},
            {"id": 1, "name": "Customers", "description": "One group per managed customer",
             "owner": "admin", "parent_id": None, "child_group_ids": [], "assignable": False},
            {"id": 2, "name": "Perimeter Devices", "description": "Firewalls and web gateways",
             "owner": "admin", "parent_id": None, "child_group_ids": [], "assignable": True},
            {"id": 3, "name": "Servers", "description": "Windows and Linux servers",
             "owner": "admin", "parent_id": None, "child_group_ids": [], "assignable": True},
        ]  # fmt: skip
        self.log_sources: list[JSON] = []
        self.domains: list[JSON] = []
        self.tenants: list[JSON] = []
        self.domain_info: dict[int, DomainInfo] = {}
        next_ls_id = 60

        def add_log_source(
            kind: LogSourceKind, name: str, host: str, ip: str | None, collector: int, groups: list[int]
        ) -> JSON:
            nonlocal next_ls_id
            next_ls_id += rng.randint(1, 9)
            created = anchor - rng.randint(60, 700) * DAY_MS - rng.randint(0, DAY_MS)
            modified = created + rng.randint(0, 30) * DAY_MS
            enabled = kind.kind == "internal" or rng.random() > 0.05
            roll = rng.random()
            if not enabled:
                status: JSON = {"last_updated": 0, "messages": None, "status": "NA"}
                last_event = created + rng.randint(1, 50) * DAY_MS
            elif roll < 0.08 and kind.kind != "internal":
                status = {"last_updated": 0, "messages": [{"severity": "ERROR", "text": "Events have not been received from this Log Source in over 720 minutes.", "timestamp": None}], "status": "ERROR"}  # fmt: skip
                last_event = anchor - rng.randint(13, 90) * 3_600_000
            elif roll < 0.14 and kind.kind != "internal":
                status = {"last_updated": anchor - rng.randint(1, 48) * 3_600_000, "messages": [{"severity": "WARN", "text": "Parsing failures detected for this Log Source in the last hour.", "timestamp": anchor - rng.randint(1, 60) * 60_000}], "status": "WARN"}  # fmt: skip
                last_event = anchor - rng.randint(1, 120) * 1000
            else:
                status = {"last_updated": 0, "messages": None, "status": "SUCCESS"}
                last_event = anchor - rng.randint(1, 120) * 1000
            record = {
                "sending_ip": ip,
                "internal": kind.kind == "internal",
                "protocol_parameters": [
                    {"name": "identifier", "id": 0, "value": ip or host},
                    {"name": "incomingPayloadEncoding", "id": 1, "value": "UTF-8"},
                ],
                "description": f"{kind.short} device" if kind.kind != "internal" else kind.name,
                "coalesce_events": True,
                "enabled": enabled,
                "parsing_order": 0 if kind.kind == "internal" else rng.randint(0, 3),
                "average_eps": rng.randint(*kind.eps) if enabled and status["status"] != "ERROR" else 0,
                "group_ids": groups,
                "credibility": 8 if kind.kind == "internal" else rng.choice((5, 5, 6, 7)),
                "id": next_ls_id,
                "store_event_payload": True,
                "target_event_collector_id": collector,
                "protocol_type_id": kind.protocol_type_id,
                "language_id": 1,
                "creation_date": created,
                "wincollect_external_destination_ids": None,
                "log_source_extension_id": None,
                "name": name,
                "modified_date": modified,
                "auto_discovered": kind.kind != "internal" and rng.random() < 0.6,
                "type_id": kind.type_id,
                "last_event_time": last_event,
                "requires_deploy": False,
                "gateway": False,
                "wincollect_internal_destination_id": None,
                "status": status,
            }
            self.log_sources.append(record)
            return record

        # Domain 0 holds the console's own log sources (rule engine, audit, health).
        internal_ids = []
        for type_id, name in ((18, "Custom Rule Engine-8 :: qradar-console"), (105, "SIM Audit-2 :: qradar-console"),
                              (147, "Health Metrics-2 :: qradar-console"), (207, "Asset Profiler-2 :: qradar-console")):  # fmt: skip
            internal_ids.append(
                add_log_source(_KIND_BY_TYPE[type_id], name, "qradar-console", None, 7, [0])["id"]
            )
        self.cre_log_source = {
            "type_name": "EventCRE",
            "type_id": 18,
            "name": self.log_sources[0]["name"],
            "id": self.log_sources[0]["id"],
        }
        self.domains.append(self._domain_record(0, "Default Domain", "", [7], internal_ids, [0], tenant_id=0))
        self.domain_info[0] = DomainInfo(0, "Default Domain", "default", 0.15, 0, ("other",),
                                         {"internal": [self.cre_log_source]}, ("qradar-console",))  # fmt: skip

        for index, customer in enumerate(CUSTOMERS, start=1):
            net = 10 + index * 10
            collectors = []
            for n in range(1 if customer.weight < 1.3 else 2):
                ec_id = 100 + index * 2 + n
                self.event_collectors.append({
                    "id": ec_id, "name": f"eventcollector{ec_id} :: ec-{customer.short}-{n + 1:02d}",
                    "host_id": 200 + ec_id, "component_name": f"eventcollector{ec_id}",
                })  # fmt: skip
                collectors.append(ec_id)
            group_id = 100 + index
            self.log_source_groups.append({
                "id": group_id, "name": customer.name, "description": f"Log sources of {customer.name}",
                "owner": "admin", "parent_id": 1, "child_group_ids": [], "assignable": True,
            })  # fmt: skip
            self.log_source_groups[1]["child_group_ids"].append(group_id)
            info = DomainInfo(index, customer.name, customer.short, customer.weight, net,
                              (f"{customer.short.title()}.Servers", f"{customer.short.title()}.Workstations",
                               f"{customer.short.title()}.DMZ"))  # fmt: skip
            hostnames: list[str] = []
            ls_ids = []
            for type_choice, host_pattern, (low, high) in _CUSTOMER_LOG_SOURCE_MIX:
                for n in range(1, rng.randint(low, high) + 1):
                    type_id = rng.choice(type_choice) if isinstance(type_choice, tuple) else type_choice
                    kind = _KIND_BY_TYPE[type_id]
                    host = f"{customer.short}-{host_pattern.format(n=n)}"
                    hostnames.append(host)
                    ip = (
                        f"10.{net}.{rng.randint(0, 40)}.{rng.randint(2, 250)}"
                        if kind.kind != "cloud"
                        else None
                    )
                    name = (
                        f"{kind.short} @ {ip or host}"
                        if kind.kind != "cloud"
                        else f"{kind.short} @ {customer.short}-tenant"
                    )
                    extra_group = (
                        2
                        if kind.kind in ("firewall", "web")
                        else 3
                        if kind.kind in ("windows", "linux", "database")
                        else 0
                    )
                    record = add_log_source(
                        kind, name, host, ip, rng.choice(collectors), [group_id, extra_group]
                    )
                    ls_ids.append(record["id"])
                    info.log_sources_by_kind.setdefault(kind.kind, []).append(
                        {"type_name": kind.short, "type_id": kind.type_id, "name": name, "id": record["id"]}
                    )
            info.hostnames = tuple(hostnames)
            self.domain_info[index] = info
            self.domains.append(
                self._domain_record(
                    index,
                    customer.name,
                    customer.description,
                    collectors,
                    ls_ids,
                    [group_id],
                    tenant_id=index,
                )
            )
            self.tenants.append({
                "id": index, "name": customer.name, "deleted": False, "description": customer.description,
                "event_rate_limit": rng.choice((2500, 5000, 10000)), "flow_rate_limit": rng.choice((0, 50000)),
            })  # fmt: skip
        # A decommissioned customer: consoles keep deleted domains, clients must skip them.
        gone = len(CUSTOMERS) + 1
        self.domains.append(
            self._domain_record(
                gone, "Pilot Tenant (decommissioned)", "", [], [], [], tenant_id=gone, deleted=True
            )
        )
        self.tenants.append({"id": gone, "name": "Pilot Tenant (decommissioned)", "deleted": True,
                             "description": "", "event_rate_limit": 0, "flow_rate_limit": 0})  # fmt: skip
        self.closing_reasons = [dict(r) for r in CLOSING_REASONS]
        self.rule_names = sorted({t.description.split("\n")[0] for t in OFFENSE_TEMPLATES}) + [
            "BB:CategoryDefinition: Firewall or ACL Denies", "BB:ProtocolDefinition: Windows Protocols",
            "Destination Asset Weight is Low", "Source Asset Weight is Low", "Load Basic Building Blocks",
        ]  # fmt: skip
        self._kinds_cache: dict[str, dict[str, str]] = {}

    @staticmethod
    def _domain_record(domain_id: int, name: str, description: str, collectors: list[int], log_sources: list[int],
                       groups: list[int], *, tenant_id: int, deleted: bool = False) -> JSON:  # fmt: skip
        return {
            "custom_properties": [],
            "qvm_scanner_ids": [],
            "asset_scanner_ids": [],
            "flow_collector_ids": [],
            "description": description,
            "flow_source_ids": [],
            "deleted": deleted,
            "event_collector_ids": collectors,
            "log_source_ids": log_sources,
            "name": name,
            "tenant_id": tenant_id,
            "id": domain_id,
            "log_source_group_ids": groups,
        }

    def customer_domain_ids(self) -> list[int]:
        return [d["id"] for d in self.domains if d["id"] != 0 and not d["deleted"]]

    def kinds(self, collection: str, records: list[JSON]) -> dict[str, str]:
        if collection not in self._kinds_cache:
            self._kinds_cache[collection] = field_kinds(records)
        return self._kinds_cache[collection]

    # -- offenses -----------------------------------------------------------------------------
    def _build_offense(self, rng: Any, offense_id: int, domain: DomainInfo, template: OffenseTemplate,
                       start: int, last_updated: int, now: int) -> JSON:  # fmt: skip
        random = rng.random
        sources: list[JSON] = []
        for kind in template.kinds:
            pool = domain.log_sources_by_kind.get(kind)
            if pool:
                sources.append(pool[int(random() * len(pool))])
        if not sources:
            any_kind = [ls for pool in domain.log_sources_by_kind.values() for ls in pool]
            sources.append(any_kind[int(random() * len(any_kind))])
        if random() < 0.4 and domain.id != 0:
            sources = [*sources, self.cre_log_source]
        otype = template.offense_type
        external = template.external_source and random() < 0.85
        if otype == 3:
            source = USERNAMES[int(random() * len(USERNAMES))]
        elif otype == 7:
            source = domain.hostnames[int(random() * len(domain.hostnames))]
        elif otype == 6:
            source = sources[0]["name"]
        elif otype == 1 or not external:
            source = f"10.{domain.net}.{int(random() * 40)}.{2 + int(random() * 248)}"
        else:
            source = _public_ip(rng)
            shared = known_bad(0.25, "qradar", domain.id, start)
            if shared is not None:
                source = KNOWN_BAD_IPS[shared % len(KNOWN_BAD_IPS)]
        severity = template.severity[0] + int(random() * (template.severity[1] - template.severity[0] + 1))
        credibility = 2 + int(random() * 7)
        relevance = int(random() * 8)
        low, high = template.events
        event_count = low + int((random() ** 3) * (high - low))
        age = now - last_updated
        roll = random()
        old, recent, fresh = self.pace.closed_share
        if roll < (old if age > 7 * DAY_MS else recent if age > DAY_MS else fresh):
            status = "CLOSED"
        elif roll > 0.975:
            status = "HIDDEN"
        else:
            status = "OPEN"
        n_src = 1 + int((random() ** 4) * 12)
        n_dst = 1 + int((random() ** 3) * 6)
        closed = status == "CLOSED"
        # Analysts act after the last event: a close (or an assignment) lands hours to days later,
        # and only last_persisted_time records it.
        persisted = last_updated
        if closed or random() < 0.3:
            persisted = min(now, last_updated + int((random() ** 2) * 5 * DAY_MS))
        record: JSON = {
            "username_count": 1 if otype == 3 else int(random() * 3),
            "description": template.description,
            "rules": template.rules_json,
            "event_count": event_count,
            "flow_count": int(event_count * random() * 0.3) if "firewall" in template.kinds else 0,
            "assigned_to": ANALYSTS[int(random() * len(ANALYSTS))] if (closed or random() < 0.45) else None,
            "security_category_count": len(template.categories),
            "follow_up": random() < 0.07,
            "source_address_ids": [random() for _ in range(n_src)],  # draws, made ids below
            "source_count": n_src,
            "inactive": age > INACTIVE_AFTER_MS,
            "protected": random() < 0.03,
            "closing_user": ANALYSTS[int(random() * len(ANALYSTS))] if closed else None,
            "destination_networks": domain.network_prefixes[int(random() * len(domain.network_prefixes))],
            "source_network": "other" if external else domain.networks[0],
            "category_count": len(template.categories),
            "close_time": persisted if closed else None,
            "remote_destination_count": int(random() * 3) if otype == 0 and not external else 0,
            "start_time": start,
            "magnitude": max(1, min(10, round((2 * severity + credibility + relevance) / 4))),
            "last_updated_time": last_updated,
            "first_persisted_time": start,
            "last_persisted_time": persisted,
            "credibility": credibility,
            "id": offense_id,
            "categories": template.categories_json,
            "severity": severity,
            "policy_category_count": 1 if "Policy Violation" in template.categories else 0,
            "log_sources": sources,
            "closing_reason_id": _closing_reason(random()) if closed else None,
            "device_count": len(sources),
            "offense_type": otype,
            "relevance": relevance,
            "domain_id": domain.id,
            "offense_source": source,
            "local_destination_address_ids": [random() for _ in range(n_dst)],
            "local_destination_count": n_dst,
            "status": status,
        }
        self._address_ids(record, domain, otype, source)
        return record

    def _address_ids(self, record: JSON, domain: DomainInfo, otype: int, source: str) -> None:
        """Turn the offense's address draws into address ids: source addresses are the domain's
        workstations (and the source itself for a source-IP offense), local destinations its
        servers (the destination itself for a destination-IP offense)."""
        sources_book, destinations_book = self.addresses["source"], self.addresses["local_destination"]
        short, net = domain.short.title(), domain.net
        source_ids = []
        for draw in record["source_address_ids"]:
            host = int(draw * 9920)
            address = f"10.{net}.{host // 248}.{2 + host % 248}"
            source_ids.append(sources_book.id_for(domain.id, address, f"{short}.Workstations"))
        destination_ids = []
        for draw in record["local_destination_address_ids"]:
            host = int(draw * 2000)
            address = f"10.{net}.{100 + host // 250}.{1 + host % 250}"
            destination_ids.append(destinations_book.id_for(domain.id, address, f"{short}.Servers"))
        if otype == 0:
            network = f"{short}.Workstations" if source.startswith(f"10.{net}.") else "other"
            source_ids[0] = sources_book.id_for(domain.id, source, network)
        elif otype == 1:
            destination_ids[0] = destinations_book.id_for(domain.id, source, f"{short}.Servers")
        record["source_address_ids"] = list(dict.fromkeys(source_ids))
        record["local_destination_address_ids"] = list(dict.fromkeys(destination_ids))
        record["source_count"] = len(record["source_address_ids"])
        record["local_destination_count"] = len(record["local_destination_address_ids"])

    def _generate_offenses(
        self, rng: Any, count: int, domain_id: int | None, until_ms: int, span_ms: int
    ) -> list[JSON]:
        """``count`` offenses whose activity lies in ``[until_ms - span_ms, until_ms]``, ids ascending in start order."""
        if domain_id is not None:
            domain_pool = [self.domain_info[domain_id]]
            domain_weights = [1.0]
        else:
            domain_pool = list(self.domain_info.values())
            domain_weights = [d.weight for d in domain_pool]
        random = rng.random
        # Incidents bunch toward the present; ** 1.4 skews ages younger without emptying the past.
        starts = sorted(until_ms - int((random() ** 1.4) * span_ms) for _ in range(count))
        domains = rng.choices(domain_pool, domain_weights, k=count)
        templates = rng.choices(OFFENSE_TEMPLATES, _TEMPLATE_WEIGHTS, k=count)
        created: list[JSON] = []
        for start, domain, template in zip(starts, domains, templates, strict=True):
            duration = int((random() ** 4) * min(until_ms - start, 6 * DAY_MS))
            record = self._build_offense(
                rng, self.next_offense_id, domain, template, start, start + duration, until_ms
            )
            self.offenses[self.next_offense_id] = record
            if random() < 0.15:
                self._history_notes(rng, record)
            self.next_offense_id += 1
            created.append(record)
        return created

    def _history_notes(self, rng: Any, record: JSON) -> None:
        low, high = record["start_time"], max(record["start_time"], record["last_persisted_time"])
        for _ in range(1 + int(rng.random() * 3)):
            self.next_note_id += 1
            self.notes.setdefault(record["id"], []).append({
                "note_text": rng.choice(_HISTORY_NOTES), "create_time": low + int(rng.random() * (high - low)),
                "id": self.next_note_id, "username": rng.choice(ANALYSTS),
            })  # fmt: skip
        self.notes[record["id"]].sort(key=operator.itemgetter("create_time", "id"))

    def _generate_history(self, count: int) -> None:
        self._generate_offenses(self.rng, count, None, self.anchor_ms, self.pace.history_days * DAY_MS)
        self._reindex()

    def _reindex(self) -> None:
        self._lut_recs = sorted(self.offenses.values(), key=operator.itemgetter("last_persisted_time", "id"))
        self._lut_keys = [(r["last_persisted_time"], r["id"]) for r in self._lut_recs]
        self._by_domain = {}
        for key, record in zip(self._lut_keys, self._lut_recs, strict=True):
            keys, recs = self._by_domain.setdefault(record["domain_id"], ([], []))
            keys.append(key)
            recs.append(record)
        if self._lut_keys:
            self.clock.raise_floor(self._lut_keys[-1][0])
        self.version += 1
        self._offense_kinds = field_kinds(self._lut_recs[-200:]) if self._lut_recs else {}

    def offense_kinds(self) -> dict[str, str]:
        return self._offense_kinds

    def _indexes(self, record: JSON) -> list[tuple[list[tuple[int, int]], list[JSON]]]:
        return [(self._lut_keys, self._lut_recs), self._by_domain.setdefault(record["domain_id"], ([], []))]

    def _index_remove(self, record: JSON) -> None:
        key = (record["last_persisted_time"], record["id"])
        for keys, recs in self._indexes(record):
            i = bisect.bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                del keys[i]
                del recs[i]

    def _index_add(self, record: JSON) -> None:
        key = (record["last_persisted_time"], record["id"])
        for keys, recs in self._indexes(record):
            i = bisect.bisect_right(keys, key)
            keys.insert(i, key)
            recs.insert(i, record)

    def add_events(self, record: JSON, **changes: Any) -> JSON:
        """New events joined the offense: ``last_updated_time`` and ``last_persisted_time`` move."""
        self._index_remove(record)
        record.update(changes)
        now = self.clock.next()
        record["last_updated_time"] = now
        record["last_persisted_time"] = now
        record["inactive"] = False
        self._index_add(record)
        self.version += 1
        return record

    def analyst_change(self, record: JSON, **changes: Any) -> JSON:
        """An analyst changed the offense (assign, follow-up, protect, status): only
        ``last_persisted_time`` moves; ``last_updated_time`` keeps the time of its last event."""
        self._index_remove(record)
        record.update(changes)
        record["last_persisted_time"] = self.clock.next()
        self._index_add(record)
        self.version += 1
        return record

    def add_note(self, record: JSON, text: str, username: str) -> JSON:
        """A note on an offense (the note's own record; the offense itself is not re-persisted)."""
        self.next_note_id += 1
        note = {
            "note_text": text,
            "create_time": self.clock.next(),
            "id": self.next_note_id,
            "username": username,
        }
        self.notes.setdefault(record["id"], []).append(note)
        return note

    def new_offense(self, rng: Any | None = None, domain_id: int | None = None) -> JSON:
        rng = rng or self.rng
        domain_id = domain_id if domain_id is not None else rng.choice(self.customer_domain_ids())
        template = rng.choices(OFFENSE_TEMPLATES, _TEMPLATE_WEIGHTS)[0]
        now = self.clock.next()
        record = self._build_offense(
            rng, self.next_offense_id, self.domain_info[domain_id], template, now, now, now
        )
        record.update(
            last_persisted_time=now,
            status="OPEN",
            close_time=None,
            closing_reason_id=None,
            closing_user=None,
            assigned_to=None,
            inactive=False,
        )
        self.offenses[self.next_offense_id] = record
        self.next_offense_id += 1
        self._index_add(record)
        self.version += 1
        return record

    def close_offense(self, record: JSON, reason_id: int, user: str) -> JSON:
        """Closing is an analyst action: status, close_time, reason and user change, and
        ``last_persisted_time`` moves — ``last_updated_time`` does not."""
        now = self.clock.next()
        self._index_remove(record)
        record.update(status="CLOSED", close_time=now, closing_reason_id=reason_id, closing_user=user,
                      last_persisted_time=now)  # fmt: skip
        self._index_add(record)
        self.version += 1
        return record

    def tick(self) -> JSON:
        """One step of console life: new offenses, growing ones, closures, log source rate drift."""
        rng = self.rng
        created = [self.new_offense(rng)["id"] for _ in range(rng.randint(1, 3))]
        # Recently active offenses are the ones that keep receiving events.
        recent_open: list[JSON] = []
        for record in reversed(self._lut_recs):
            if record["status"] == "OPEN" and record["id"] not in created:
                recent_open.append(record)
                if len(recent_open) >= 60:
                    break
        n_update, n_close = rng.randint(2, 5), rng.randint(1, 2)
        picks = rng.sample(recent_open, min(len(recent_open), n_update + n_close))
        to_close, to_update = picks[:n_close], picks[n_close:]
        updated = []
        for record in to_update:
            changes: JSON = {"event_count": record["event_count"] + rng.randint(1, 250)}
            if record["flow_count"]:
                changes["flow_count"] = record["flow_count"] + rng.randint(0, 40)
            if rng.random() < 0.3:
                severity = max(1, min(10, record["severity"] + rng.choice((-1, 1, 1))))
                changes["severity"] = severity
                changes["magnitude"] = max(
                    1, min(10, round((2 * severity + record["credibility"] + record["relevance"]) / 4))
                )
            self.add_events(record, **changes)
            updated.append(record["id"])
        closed = []
        for record in to_close:
            reason = _closing_reason(rng.random())
            analyst = rng.choice(ANALYSTS)
            if rng.random() < 0.5:
                self.add_note(record, rng.choice(_CLOSING_NOTES), analyst)
            self.close_offense(record, reason, analyst)
            closed.append(record["id"])
        assigned = []
        for record in recent_open:
            if record["status"] == "OPEN" and record["assigned_to"] is None and rng.random() < 0.05:
                self.analyst_change(record, assigned_to=rng.choice(ANALYSTS))
                assigned.append(record["id"])
        drifted = self._drift_log_sources(rng)
        return {"now": self.clock.last, "created": created, "updated": updated, "closed": closed,
                "assigned": assigned, "log_sources_updated": drifted}  # fmt: skip

    def _drift_log_sources(self, rng: Any) -> int:
        wall = self.clock.wall()
        count = 0
        for record in self.log_sources:
            if not record["enabled"] or record["status"]["status"] == "ERROR":
                continue
            kind = _KIND_BY_TYPE[record["type_id"]]
            mid = (kind.eps[0] + kind.eps[1]) / 2
            # a random walk pulled back toward the type's typical rate
            eps = record["average_eps"] * rng.uniform(0.88, 1.12) * 0.9 + mid * 0.1
            record["average_eps"] = max(0, round(eps))
            record["last_event_time"] = wall - rng.randint(0, 5000)
            count += 1
        return count

    def seed_offenses(self, count: int, domain_id: int | None) -> JSON:
        started = time.perf_counter()
        first = self.next_offense_id
        self._generate_offenses(self.rng, count, domain_id, self.clock.wall(), 30 * DAY_MS)
        self._reindex()
        return {"created": count, "first_id": first if count else None, "last_id": self.next_offense_id - 1 if count else None,
                "total": len(self.offenses), "elapsed_ms": round((time.perf_counter() - started) * 1000, 1)}  # fmt: skip

    def select_offenses(self, filter_text: str | None, sort: SortKeys) -> list[JSON]:
        """Offenses matching ``filter`` in ``sort`` order; cached until the next change so paging is O(page)."""
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        key = (filter_text, sort)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        compiled = compile_filter(filter_text, self._offense_kinds) if filter_text else None
        lut_order = (
            bool(sort)
            and sort[0][0] == "last_persisted_time"
            and (len(sort) == 1 or (len(sort) == 2 and sort[1] == ("id", sort[0][1])))
        )
        if lut_order:
            # The incremental-sync query: bisect the (last_persisted_time, id) index, per domain when
            # the filter pins one, and scan only if some term is beyond what the index answers.
            conjuncts = compiled.conjuncts if compiled else []
            domain_terms = [t for t in conjuncts if t is not None and t[0] == "domain_id" and t[1] == "="]
            keys, recs = self._lut_keys, self._lut_recs
            if domain_terms:
                keys, recs = self._by_domain.get(domain_terms[0][2], ([], []))
            lo, hi = 0, len(keys)
            residual = False
            for term in conjuncts:
                if term is None or (term[0] == "domain_id" and term[1] == "=" and term is domain_terms[0]):
                    residual = residual or term is None
                    continue
                name, op, value = term
                if name != "last_persisted_time" or op not in _RANGE_OPS:
                    residual = True
                elif op == ">":
                    lo = max(lo, bisect.bisect_right(keys, (value, math.inf)))
                elif op == ">=":
                    lo = max(lo, bisect.bisect_left(keys, (value, -math.inf)))
                elif op == "<":
                    hi = min(hi, bisect.bisect_left(keys, (value, -math.inf)))
                else:
                    hi = min(hi, bisect.bisect_right(keys, (value, math.inf)))
            candidates = recs[lo:hi] if lo < hi else []
            rows = [r for r in candidates if compiled.predicate(r)] if (compiled and residual) else candidates
            if sort[0][1]:
                rows = rows[::-1]
        else:
            rows = list(self.offenses.values())
            if compiled:
                rows = [r for r in rows if compiled.predicate(r)]
            if not sort or sort in ((("id", True),), (("id", False),)):
                if not sort or sort[0][1]:
                    rows.reverse()  # default order: newest offense first
            else:
                rows = sort_records(rows, sort)
        self._cache[key] = rows
        if len(self._cache) > 32:
            self._cache.popitem(last=False)
        return rows

    def domain_eps(self) -> list[tuple[int, str, float]]:
        by_id = {ls["id"]: ls for ls in self.log_sources}
        out = []
        for domain in self.domains:
            if domain["deleted"]:
                continue
            eps = float(sum(by_id[i]["average_eps"] for i in domain["log_source_ids"] if i in by_id))
            out.append((domain["id"], domain["name"] or "Default Domain", eps))
        return out

    def aql_world(self) -> AqlWorld:
        by_id = {ls["id"]: ls["name"] for ls in self.log_sources}
        return AqlWorld(
            domains=self.domain_eps(),
            log_sources={
                d["id"]: [by_id[i] for i in d["log_source_ids"] if i in by_id] for d in self.domains
            },
            collector_hosts=[ec["name"].split(" :: ")[-1] for ec in self.event_collectors],
            rule_names=self.rule_names,
        )

    def counts(self) -> JSON:
        statuses = Counter(r["status"] for r in self.offenses.values())
        return {
            "offenses": len(self.offenses),
            "offenses_by_status": dict(statuses),
            "domains": len(self.domains),
            "log_sources": len(self.log_sources),
            "event_collectors": len(self.event_collectors),
            "ariel_searches": len(self.searches),
            "last_persisted_time_max": self._lut_keys[-1][0] if self._lut_keys else None,
            "notes": sum(len(n) for n in self.notes.values()),
            "versions_seen": dict(self.versions_seen),
        }


def _closing_reason(roll: float) -> int:
    """A closing reason id, weighted like a SOC's real mix (``random.choices`` is slow in bulk)."""
    index = bisect.bisect_right(_CLOSE_REASON_CUMULATIVE, roll * _CLOSE_REASON_CUMULATIVE[-1])
    return _CLOSABLE_REASON_IDS[min(index, len(_CLOSABLE_REASON_IDS) - 1)]


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


class SeedRequest(BaseModel):
    offenses: int = Field(default=0, ge=0, le=2_000_000)
    domain_id: int | None = None


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=headers)


def _page(
    rows: Sequence[Any], rng: tuple[int, int] | None, spec: FieldSpec | None, max_items: int
) -> JSONResponse:
    """One collection answer: at most ``max_items`` items whatever the Range asked for (the server
    may return fewer items than requested; Content-Range says which ones it returned)."""
    total = len(rows)
    if rng is None:
        start, stop = 0, total
    else:
        start, stop = rng[0], min(rng[1] + 1, total)
    stop = min(stop, start + max_items)
    page = rows[start:stop] if start < total else []
    if spec is not None:
        page = [project(r, spec) for r in page]
    # end = start + returned - 1: an empty page reads "items 0--1/0" or "items 300-299/300"
    return _json(page, headers={"Content-Range": f"items {start}-{start + len(page) - 1}/{total}"})


def _fault_body(status: int) -> bytes | None:
    """An injected 429 or 500 in the console's error body (a 502/503 comes from a proxy in front)."""
    if status == 429:
        return json.dumps(QRadarError(429, 1010, "Rate limit exceeded; retry later.").body()).encode()
    if status == 500:
        error = QRadarError(
            500, 1020, "An error occurred during the attempt to retrieve the requested resources.", ""
        )
        return json.dumps(error.body()).encode()
    return None


def _fields_spec(request: Request, kinds: dict[str, str]) -> FieldSpec | None:
    text = request.query_params.get("fields")
    if not text:
        return None
    spec = parse_fields(text)
    for name, _ in spec:
        if kinds and name not in kinds:
            raise QRadarError(
                422,
                30,
                f'Specified field "{name}" is not recognized by this endpoint for media type "application/json"',
            )
    return spec


def _list(request: Request, records: list[JSON], kinds: dict[str, str], max_items: int) -> JSONResponse:
    """Filter, sort, project and page a small collection (everything but offenses)."""
    params = request.query_params
    rng = parse_range(request.headers.get("range"))
    spec = _fields_spec(request, kinds)
    rows = records
    if params.get("filter"):
        try:
            compiled = compile_filter(params["filter"], kinds)
        except FilterError as exc:
            raise _filter_error(params["filter"], exc) from exc
        rows = [r for r in rows if compiled.predicate(r)]
    if params.get("sort"):
        rows = sort_records(rows, parse_sort(params["sort"], kinds))
    return _page(rows, rng, spec, max_items)


def _filter_error(text: str, exc: FilterError) -> QRadarError:
    return QRadarError(
        422, 1005, f"Invalid filter {text!r}: {exc}", "The filter parameter could not be parsed."
    )


def _int_path(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise QRadarError(
            422, 11, f'Failed to transform user path parameter "{what}" with value {value!r} to an integer'
        ) from None


def _one(
    request: Request, records: list[JSON], record_id: str, what: str, kinds: dict[str, str]
) -> JSONResponse:
    wanted = _int_path(record_id, f"{what}_id")
    for record in records:
        if record["id"] == wanted:
            spec = _fields_spec(request, kinds)
            return _json(project(record, spec))
    raise _not_found(f"The {what.replace('_', ' ')} with id {wanted} does not exist.")


def create_app(
    seed: int = 7,
    live: bool = False,
    *,
    token: str = DEFAULT_TOKEN,
    limited_token: str = LIMITED_TOKEN,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    offenses: int = 300,
    ariel_delay: float = 0.3,
    anchor_ms: int | None = None,
    tick_interval: float = 5.0,
    rate_limit_per_minute: int | None = None,
    max_page_items: int = 500,
    profile: str = "default",
    state: QRadarState | None = None,
) -> FastAPI:
    """A QRadar console simulator.

    ``profile``: ``default`` (30 days, many offenses left open: the edge cases tests need) or
    ``demo`` (90 days at the same daily rate, old offenses closed as a working SOC closes them).

    ``offenses`` is the size of the seeded 30-day history; ``anchor_ms`` the epoch ms that history
    ends at (default: now, so the demo looks current); ``ariel_delay`` the seconds an Ariel search
    takes to complete; ``rate_limit_per_minute`` turns on per-credential throttling (429);
    ``max_page_items`` caps the items of one collection answer.
    """
    pace = OFFENSE_PACES[profile]
    if profile != "default" and offenses == 300:  # the same offenses per day over the longer history
        offenses = offenses * pace.history_days // 30
    if state is None:
        state = QRadarState(
            seed, offenses=offenses, anchor_ms=anchor_ms, ariel_delay=ariel_delay, profile=profile
        )
    sim = state
    app = FastAPI(
        title="IBM QRadar simulator", lifespan=live_lifespan(lambda: sim.tick(), live, tick_interval)
    )
    app.state.sim = state
    board = install_faults(app)
    board.error_body = _fault_body
    limiter = RateLimiter(rate_limit_per_minute) if rate_limit_per_minute else None

    @app.exception_handler(QRadarError)
    async def qradar_error(_: Request, exc: QRadarError) -> JSONResponse:
        return _json(exc.body(), exc.status, exc.headers)

    async def guard(request: Request) -> None:
        """Authentication, capability, rate limit, Version and Accept — in the console's order.

        ``async`` so FastAPI runs it on the event loop with the handlers, not in a worker thread.
        """
        sec = request.headers.get("sec")
        authorization = request.headers.get("authorization")
        if sec is not None:
            if hmac.compare_digest(sec.encode(), token.encode()):
                principal, full = "API_token: SOC Portal", True
            elif hmac.compare_digest(sec.encode(), limited_token.encode()):
                principal, full = "API_token: Reporting (limited)", False
            else:
                raise QRadarError(401, 11, "The SEC token provided is not valid or has been revoked. "
                                  'Please provide a valid authorized service token via "SEC: token".')  # fmt: skip
        elif authorization is not None and authorization[:6].lower() == "basic ":
            supplied = authorization[6:].strip()
            try:
                decoded = base64.b64decode(supplied, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if ":" not in decoded:
                raise QRadarError(
                    401, 11, "The Authorization header is not valid BASIC authentication. " + NO_SEC_MESSAGE
                )
            given_user, _, given_password = decoded.partition(":")
            if not (
                hmac.compare_digest(given_user.encode(), username.encode())
                and hmac.compare_digest(given_password.encode(), password.encode())
            ):
                raise QRadarError(
                    401, 11, "The username or password provided in BASIC authentication is not valid."
                )
            principal, full = username, True
        else:
            raise QRadarError(401, 18, NO_SEC_MESSAGE)
        if limiter is not None:
            wait = limiter.retry_after(principal)
            if wait is not None:
                raise QRadarError(
                    429,
                    1010,
                    f"Rate limit exceeded; retry in {wait} seconds.",
                    headers={"Retry-After": str(wait)},
                )
        if not full and request.url.path.startswith("/api/siem/"):
            raise QRadarError(403, 26, "User has insufficient capabilities to access this endpoint resource")
        version = request.headers.get("version")
        if version is not None:
            try:
                number = float(version)
            except ValueError:
                number = -1.0
            if not MIN_VERSION <= number <= MAX_VERSION:
                raise QRadarError(406, 12, f"The Version {version!r} is not supported by this endpoint. "
                                  f"Supported versions are {MIN_VERSION} to {MAX_VERSION}.")  # fmt: skip
        state.versions_seen[version or "latest"] += 1
        accept = request.headers.get("accept", "*/*")
        if not any(
            part.split(";")[0].strip() in ("*/*", "application/*", "application/json")
            for part in accept.split(",")
        ):
            raise QRadarError(
                406,
                12,
                f"The Accept header {accept!r} cannot be satisfied; this endpoint produces application/json.",
            )
        request.state.principal = principal

    api = APIRouter(prefix="/api", dependencies=[Depends(guard)])

    # -- system / config ----------------------------------------------------------------------
    @api.get("/system/about")
    async def about() -> JSONResponse:
        return _json({"release_name": "7.5.0 UpdatePackage 7", "build_version": "2023.3.7.20231116183446",
                      "fips_enabled": False, "external_version": "7.5.0"})  # fmt: skip

    collections: dict[str, tuple[str, Callable[[], list[JSON]]]] = {
        "/config/access/tenant_management/tenants": ("tenant", lambda: state.tenants),
        "/config/domain_management/domains": ("domain", lambda: state.domains),
        "/config/event_sources/event_collectors": ("event_collector", lambda: state.event_collectors),
        "/config/event_sources/log_source_management/log_sources": ("log_source", lambda: state.log_sources),
        "/config/event_sources/log_source_management/log_source_types": (
            "log_source_type",
            lambda: state.log_source_types,
        ),
        "/config/event_sources/log_source_management/log_source_groups": (
            "log_source_group",
            lambda: state.log_source_groups,
        ),
    }

    def register(path: str, what: str, source: Callable[[], list[JSON]]) -> None:
        async def list_route(request: Request) -> JSONResponse:
            records = source()
            return _list(request, records, state.kinds(what, records), max_page_items)

        async def one_route(request: Request, record_id: str) -> JSONResponse:
            records = source()
            return _one(request, records, record_id, what, state.kinds(what, records))

        api.add_api_route(path, list_route, methods=["GET"], name=f"list_{what}s")
        api.add_api_route(path + "/{record_id}", one_route, methods=["GET"], name=f"get_{what}")

    for path, (what, source) in collections.items():
        register(path, what, source)

    # -- offense addresses ------------------------------------------------------------------------
    def address_list(kind: str) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def list_addresses(request: Request) -> JSONResponse:
            """``siem/source_addresses`` / ``siem/local_destination_addresses``: by id ascending,
            ``filter`` (``id in (...)`` answered from the ids alone), ``fields``, ``Range``; a filter
            that does not parse is 422 code 1010, as IBM documents for these endpoints."""
            book = state.addresses[kind]
            params = request.query_params
            rng = parse_range(request.headers.get("range"))
            spec = _fields_spec(request, book.kinds)
            text = params.get("filter")
            compiled = None
            if text:
                try:
                    compiled = compile_filter(text, book.kinds)
                except FilterError as exc:
                    raise QRadarError(
                        422, 1010, f"Invalid filter {text!r}: {exc}", "The filter parameter is not valid."
                    ) from exc
            wanted = _ADDRESS_ID_IN.match(text or "")
            if wanted:
                ids = sorted({int(i) for i in wanted.group(1).split(",")})
                rows = [book.record(i) for i in ids if 1 <= i <= len(book)]
            else:
                rows = [book.record(i) for i in range(1, len(book) + 1)]
            names = {name for name, _ in spec} if spec is not None else set(book.kinds)
            if names & book.derived or (text and any(re.search(rf"\b{d}\b", text) for d in book.derived)):
                book.enrich(rows, state.offenses.values())
            if compiled is not None and not wanted:
                rows = [r for r in rows if compiled.predicate(r)]
            return _page(rows, rng, spec, max_page_items)

        return list_addresses

    def address_one(kind: str) -> Callable[[Request, str], Awaitable[JSONResponse]]:
        async def get_address(request: Request, address_id: str) -> JSONResponse:
            book = state.addresses[kind]
            wanted = _int_path(address_id, f"{kind}_address_id")
            if not 1 <= wanted <= len(book):
                label = "source address" if kind == "source" else "local destination address"
                raise QRadarError(404, 1002, f"No {label} was found for the provided {kind}_address_id.")
            record = book.record(wanted)
            spec = _fields_spec(request, book.kinds)
            if spec is None or {name for name, _ in spec} & book.derived:
                book.enrich([record], state.offenses.values())
            return _json(project(record, spec))

        return get_address

    for kind in ("source", "local_destination"):
        api.add_api_route(
            f"/siem/{kind}_addresses", address_list(kind), methods=["GET"], name=f"list_{kind}_addresses"
        )
        api.add_api_route(
            f"/siem/{kind}_addresses/{{address_id}}",
            address_one(kind),
            methods=["GET"],
            name=f"get_{kind}_address",
        )

    # -- offenses -----------------------------------------------------------------------------
    @api.get("/siem/offenses")
    async def list_offenses(request: Request) -> JSONResponse:
        params = request.query_params
        rng = parse_range(request.headers.get("range"))
        kinds = state.offense_kinds()
        spec = _fields_spec(request, kinds)
        sort = parse_sort(params["sort"], kinds) if params.get("sort") else ()
        if board.shift_pending:
            board.shift_pending = False
            state.new_offense()  # a new offense lands at the head of the default (-id) order
        try:
            rows = state.select_offenses(params.get("filter") or None, sort)
        except FilterError as exc:
            raise _filter_error(params["filter"], exc) from exc
        return _page(rows, rng, spec, max_page_items)

    @api.get("/siem/offenses/{offense_id}")
    async def get_offense(request: Request, offense_id: str) -> JSONResponse:
        record = state.offenses.get(_int_path(offense_id, "offense_id"))
        if record is None:
            raise _not_found(f"The offense with id {offense_id} does not exist.")
        return _json(project(record, _fields_spec(request, state.offense_kinds())))

    @api.post("/siem/offenses/{offense_id}")
    async def update_offense(request: Request, offense_id: str) -> JSONResponse:
        """Offense update as the console takes it: query parameters, CLOSED needs a closing reason."""
        record = state.offenses.get(_int_path(offense_id, "offense_id"))
        if record is None:
            raise _not_found(f"The offense with id {offense_id} does not exist.")
        params = request.query_params
        changes: JSON = {}
        if "assigned_to" in params:
            changes["assigned_to"] = params["assigned_to"] or None
        for flag in ("follow_up", "protected"):
            if flag in params:
                if params[flag].lower() not in ("true", "false"):
                    raise _bad_param(f'The parameter "{flag}" must be true or false.')
                changes[flag] = params[flag].lower() == "true"
        status = params.get("status", "").upper() or None
        if status not in (None, "OPEN", "HIDDEN", "CLOSED"):
            raise _bad_param(f"The status {params['status']!r} is not one of OPEN, HIDDEN, CLOSED.")
        if status == "CLOSED":
            reason_raw = params.get("closing_reason_id")
            reason = next(
                (r for r in state.closing_reasons if str(r["id"]) == reason_raw and not r["is_deleted"]), None
            )
            if reason is None:
                raise QRadarError(409, 1008, "A valid closing_reason_id is required to close an offense.")
            if changes:
                state.analyst_change(record, **changes)
            state.close_offense(record, reason["id"], request.state.principal)
        elif status is not None or changes:
            if status is not None:
                changes.update(status=status)
                if status == "OPEN" and record["status"] == "CLOSED":
                    changes.update(close_time=None, closing_reason_id=None, closing_user=None)
            state.analyst_change(record, **changes)
        return _json(project(record, _fields_spec(request, state.offense_kinds())))

    def offense_of(offense_id: str) -> JSON:
        record = state.offenses.get(_int_path(offense_id, "offense_id"))
        if record is None:
            raise _not_found(f"The offense with id {offense_id} does not exist.")
        return record

    note_kinds = {"id": "number", "note_text": "string", "create_time": "number", "username": "string"}

    @api.get("/siem/offenses/{offense_id}/notes")
    async def list_offense_notes(request: Request, offense_id: str) -> JSONResponse:
        record = offense_of(offense_id)
        return _list(request, state.notes.get(record["id"], []), note_kinds, max_page_items)

    @api.get("/siem/offenses/{offense_id}/notes/{note_id}")
    async def get_offense_note(request: Request, offense_id: str, note_id: str) -> JSONResponse:
        record = offense_of(offense_id)
        return _one(request, state.notes.get(record["id"], []), note_id, "note", note_kinds)

    @api.post("/siem/offenses/{offense_id}/notes")
    async def create_offense_note(request: Request, offense_id: str) -> JSONResponse:
        record = offense_of(offense_id)
        text = request.query_params.get("note_text")
        if not text:
            raise QRadarError(422, 1005, 'Missing required parameter "note_text" from query parameters',
                              "One or more request parameters are invalid in the request.")  # fmt: skip
        principal = request.state.principal
        username = principal if principal.startswith("API_") else f"API_user: {principal}"
        note = state.add_note(record, text, username)
        return _json(project(note, _fields_spec(request, note_kinds)), 201)

    @api.get("/siem/offense_closing_reasons")
    async def list_closing_reasons(request: Request) -> JSONResponse:
        params = request.query_params
        include_reserved = params.get("include_reserved", "false").lower() == "true"
        include_deleted = params.get("include_deleted", "false").lower() == "true"
        records = [r for r in state.closing_reasons
                   if (include_reserved or not r["is_reserved"]) and (include_deleted or not r["is_deleted"])]  # fmt: skip
        return _list(request, records, state.kinds("closing_reason", state.closing_reasons), max_page_items)

    @api.get("/siem/offense_closing_reasons/{reason_id}")
    async def get_closing_reason(request: Request, reason_id: str) -> JSONResponse:
        return _one(
            request,
            state.closing_reasons,
            reason_id,
            "closing_reason",
            state.kinds("closing_reason", state.closing_reasons),
        )

    # -- Ariel ----------------------------------------------------------------------------------
    def search_status(search: ArielSearch) -> JSON:
        elapsed = time.monotonic() - search.created
        delay = search.delay_s
        if search.canceled_at_progress is not None:
            status, progress = "CANCELED", search.canceled_at_progress
        elif elapsed >= delay:
            status, progress = "COMPLETED", 100
        elif elapsed < delay * 0.2:
            status, progress = "WAIT", 0
        elif search.query.order_by is not None and elapsed >= delay * 0.85:
            status, progress = "SORTING", 100
        else:
            status, progress = "EXECUTE", max(1, min(99, int(100 * elapsed / delay)))
        if status in ("COMPLETED", "SORTING", "CANCELED") and search.rows is None:
            search.rows = synthesise_rows(search.query, state.aql_world(), state.seed)
        total = len(search.rows) if search.rows is not None else 0
        records = total if status in ("COMPLETED", "SORTING") else int(total * progress / 100)
        files, size, exec_ms = search.sizes
        done = status == "COMPLETED"
        return {
            "cursor_id": search.search_id,
            "status": status,
            "compressed_data_file_count": 0,
            "compressed_data_total_size": 0,
            "data_file_count": files if done else max(1, files * progress // 100),
            "data_total_size": size if done else size * progress // 100,
            "index_file_count": 0,
            "index_total_size": 0,
            "processed_record_count": records,
            "desired_retention_time_msec": 86_400_000,
            "progress": progress,
            "progress_details": [],
            "query_execution_time": exec_ms if done else int(elapsed * 1000),
            "query_string": search.query.text,
            "record_count": records if status != "WAIT" else 0,
            "size_on_disk": records * 1126 if done else 0,
            "save_results": False,
            "completed": done,
            "subsearch_ids": [],
            "snapshot": None,
            "search_id": search.search_id,
        }

    def find_search(search_id: str) -> ArielSearch:
        search = state.searches.get(search_id)
        if search is None:
            raise _not_found(f"The search {search_id} does not exist.")
        return search

    @api.post("/ariel/searches")
    async def create_search(request: Request) -> JSONResponse:
        expression = request.query_params.get("query_expression")
        if not expression:
            raise QRadarError(422, 8, 'Missing required parameter "query_expression" from query parameters')
        try:
            query = parse_aql(expression, state.clock.wall())
        except AqlError as exc:
            raise QRadarError(422, 2000, f"The query_expression contains invalid AQL syntax: {exc}") from exc
        digest = stable_hash(state.seed, expression)
        search = ArielSearch(
            search_id=seeded_uuid(state.rng),
            query=query,
            created=time.monotonic(),
            delay_s=state.ariel_delay,
            sizes=(4 + digest % 60, 450_000 + digest % 7_000_000, 120 + digest % 900),
        )
        state.searches[search.search_id] = search
        while len(state.searches) > 1000:  # the console expires old cursors too
            state.searches.popitem(last=False)
        body = search_status(search)
        if body["status"] != "CANCELED":  # a fresh search is always reported waiting
            body.update(status="WAIT", progress=0, completed=False, record_count=0, processed_record_count=0,
                        query_execution_time=0, size_on_disk=0)  # fmt: skip
        return _json(body, 201, {"Location": f"/api/ariel/searches/{search.search_id}"})

    @api.get("/ariel/searches")
    async def list_searches(request: Request) -> JSONResponse:
        return _page(list(state.searches), parse_range(request.headers.get("range")), None, max_page_items)

    @api.get("/ariel/searches/{search_id}")
    async def get_search(search_id: str) -> JSONResponse:
        return _json(search_status(find_search(search_id)))

    @api.post("/ariel/searches/{search_id}")
    async def update_search(request: Request, search_id: str) -> JSONResponse:
        search = find_search(search_id)
        wanted = request.query_params.get("status")
        if wanted is not None and wanted.upper() != "CANCELED":
            raise _bad_param(f"The status {wanted!r} cannot be set; only CANCELED is allowed.")
        if wanted is not None:
            body = search_status(search)
            if body["status"] != "COMPLETED":
                search.canceled_at_progress = body["progress"]
        return _json(search_status(search))

    @api.get("/ariel/searches/{search_id}/results")
    async def search_results(request: Request, search_id: str) -> JSONResponse:
        search = find_search(search_id)
        body = search_status(search)
        if body["status"] not in ("COMPLETED", "CANCELED"):
            raise QRadarError(404, 1003, "Search result not found. The search is still in progress.")
        rows = (search.rows or [])[: body["record_count"]]
        rng = parse_range(request.headers.get("range"))
        total = len(rows)
        start, stop = (0, total) if rng is None else (rng[0], min(rng[1] + 1, total))
        stop = min(stop, start + max_page_items)
        page = rows[start:stop] if start < total else []
        return _json(
            {search.query.table: page},
            headers={"Content-Range": f"items {start}-{start + len(page) - 1}/{total}"},
        )

    @api.delete("/ariel/searches/{search_id}")
    async def delete_search(search_id: str) -> JSONResponse:
        search = find_search(search_id)
        body = search_status(search)
        del state.searches[search_id]
        return _json(body, 202)

    @api.api_route(
        "/{unknown:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False
    )
    async def unknown_endpoint(unknown: str) -> JSONResponse:
        raise _not_found(f"No endpoint matches /api/{unknown} for this request method.")

    app.include_router(api)

    # -- simulator control (no auth) --------------------------------------------------------------
    @app.post("/_sim/tick", tags=["simulator control"])
    async def sim_tick(steps: int = 1) -> JSON:
        steps = max(1, min(steps, 100))
        results = [state.tick() for _ in range(steps)]
        return results[0] if steps == 1 else {"steps": results}

    @app.post("/_sim/seed", tags=["simulator control"])
    async def sim_seed(body: SeedRequest) -> JSONResponse:
        if body.domain_id is not None and (body.domain_id not in state.domain_info):
            return _json({"detail": f"domain {body.domain_id} does not exist or is deleted"}, 404)
        return _json(state.seed_offenses(body.offenses, body.domain_id))

    @app.get("/_sim/state", tags=["simulator control"])
    async def sim_state() -> JSON:
        return state.counts()

    return app


# ------------------------------------------------------------------------------ many consoles
_INSTANCE: contextvars.ContextVar[QRadarState] = contextvars.ContextVar("qradar_instance")
_FLEET_PATH = re.compile(r"^/i/(\d+)(/.*)$")


class _InstanceState:
    """Stands in for one console's state: every access goes to the console the request addressed."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_INSTANCE.get(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_INSTANCE.get(), name, value)


def create_fleet_app(
    instances: int, *, seed: int = 7, offenses: int = 20, ariel_delay: float = 0.3, **options: Any
) -> Any:
    """``instances`` independent QRadar consoles behind one port (many integrations, one process):
    console ``n`` answers under ``/i/<n>/`` (``/i/<n>/api/...``, ``/i/<n>/_sim/...``) exactly as one
    :func:`create_app` console does at ``/``, with its own seeded history (``offenses``, seed
    ``seed + n``) created on its first request. One set of routes serves them all."""
    states: dict[int, QRadarState] = {}
    app = create_app(seed, ariel_delay=ariel_delay, state=cast(QRadarState, _InstanceState()), **options)

    async def fleet(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        match = _FLEET_PATH.match(scope["path"])
        if match is None or int(match[1]) >= instances:
            response = JSONResponse({"detail": f"no console here: use /i/<0..{instances - 1}>/"}, 404)
            await response(scope, receive, send)
            return
        n = int(match[1])
        console = states.get(n)
        if console is None:
            console = states[n] = QRadarState(
                seed + n, offenses=offenses, anchor_ms=None, ariel_delay=ariel_delay
            )
        token = _INSTANCE.set(console)
        try:
            path = match[2]
            await app({**scope, "path": path, "raw_path": path.encode()}, receive, send)
        finally:
            _INSTANCE.reset(token)

    fleet.states = states  # type: ignore[attr-defined]
    return fleet
