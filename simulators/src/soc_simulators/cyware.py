"""Cyware CSAP (Situational Awareness Platform) REST API simulator: the subset the SOC Portal uses.

Every request is signed with query parameters ``AccessID``, ``Expires`` (unix seconds) and
``Signature = base64(HMAC-SHA1(secret_key, "<AccessID>\\n<Expires>"))``. Each access id is one
customer tenant and sees only its own alerts, tags, recipient groups, fields and categories.

Decisions a client author needs:

* Auth failures are 401 ``{"detail": "...", "code": "..."}`` with ``code`` one of
  ``missing_credentials``, ``unknown_access_id``, ``invalid_expires``, ``invalid_signature``,
  ``signature_expired`` (Expires before server time: a client clock problem) and
  ``expires_too_far`` (more than ``signature_window_s`` ahead of server time). Cyware documents a
  signature as valid for at most 30 s from issue (the original product signed 20 s ahead), so
  the window defaults to 30 s: a client signing minutes ahead is refused on every request. The two
  time errors also carry ``server_time`` (unix s), and every answer carries a ``Date`` header; the
  signature is checked before the time window, so a time error always means the credentials
  themselves are right. ``clock_offset_s`` runs the server's clock ahead (or behind) the host's.
* ``list_alert/`` pages like Django REST framework's page-number pagination:
  ``{"count", "next", "previous", "data"}``; ``page`` from 1 (``page=last`` works), ``page_size``
  default 10, values above 1000 are clamped to 1000 and invalid ones fall back to 10; a page
  outside ``1..max(1, pages)`` or a non-number is 404 ``{"detail": "Invalid page."}``. ``next`` /
  ``previous`` are full URLs that repeat the caller's signature, so a client that follows them
  after ``Expires`` gets 401.
* Alerts are listed by ``published_time`` ascending (ties in publication order), so pages stay
  stable while new alerts are published (they land at the end). ``start_time`` / ``end_time`` (unix
  s) are both inclusive. A ``shift_page`` fault publishes a back-dated alert at the head of the
  requested window, the late-arrival race that makes page-number paging return a duplicate.
* ``published_time`` is strictly increasing per tenant for newly published alerts; after many
  rapid ``/_sim/tick`` calls it can run a few seconds ahead of the wall clock.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import itertools
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from soc_simulators._common import (
    KNOWN_BAD_DOMAINS,
    KNOWN_BAD_IPS,
    KNOWN_BAD_SHA256,
    MonotonicClock,
    RateLimiter,
    derive_rng,
    known_bad,
    live_lifespan,
    seeded_uuid,
)
from soc_simulators.faults import install_faults

JSON = dict[str, Any]

DEFAULT_TENANTS = {
    "acme-access": "acme-secret",
    "globex-access": "globex-secret",
    "initech-access": "initech-secret",
}
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
DAY_S = 86_400

# ---------------------------------------------------------------------------------------------
# Vocabulary for plausible threat-intelligence alerts
# ---------------------------------------------------------------------------------------------

ACTORS = (
    "APT28",
    "Lazarus Group",
    "FIN7",
    "Scattered Spider",
    "MuddyWater",
    "Charming Kitten",
    "Sandworm",
    "TA505",
)
MALWARE = (
    "QakBot", "AsyncRAT", "Cobalt Strike", "LockBit 3.0", "Black Basta", "AgentTesla", "IcedID", "SocGholish",
    "DarkGate", "Lumma Stealer",
)  # fmt: skip
SECTORS = (
    "Banking",
    "Healthcare",
    "Logistics",
    "Energy",
    "Telecommunications",
    "Government",
    "Retail",
    "Aviation",
)
PRODUCTS = (
    "Ivanti Connect Secure", "Fortinet FortiOS SSL-VPN", "Citrix NetScaler ADC", "Microsoft Exchange Server",
    "Atlassian Confluence Data Center", "VMware vCenter Server", "Palo Alto PAN-OS GlobalProtect",
    "Progress MOVEit Transfer", "Apache ActiveMQ", "Cisco IOS XE Web UI",
)  # fmt: skip
VULN_TYPES = (
    "Remote Code Execution",
    "Authentication Bypass",
    "SQL Injection",
    "Privilege Escalation",
    "Path Traversal",
)
BRANDS = ("DHL", "Microsoft 365", "DocuSign", "a national tax authority", "LinkedIn", "a payroll provider")
TECHNIQUES = (
    ("T1566.001", "Spearphishing Attachment"), ("T1190", "Exploit Public-Facing Application"),
    ("T1059.001", "PowerShell"), ("T1486", "Data Encrypted for Impact"), ("T1078", "Valid Accounts"),
    ("T1021.001", "Remote Desktop Protocol"), ("T1567.002", "Exfiltration to Cloud Storage"),
    ("T1204.002", "Malicious File"),
)  # fmt: skip
TLPS = ("RED", "AMBER", "GREEN", "WHITE")
TLP_WEIGHTS = (5, 45, 35, 15)

CATEGORIES = (
    # (name, title templates, threat indicator field names, additional field names, required names)
    ("Threat Advisory", ("{actor} Campaign Targets {sector} Organisations with {malware}",
                         "{actor} Shifts Tactics: {technique} Used Against {sector} Sector"),
     ("ioc_ip", "ioc_domain", "ioc_hash"), ("threat_actor", "malware_family", "mitre_technique"), ("threat_actor",)),
    ("Vulnerability Advisory", ("Patch Now: Critical {vuln} Vulnerability in {product}",
                                "{product} {vuln} Flaw Exploited in the Wild"),
     ("ioc_ip",), ("cve_id", "affected_products", "severity"), ("cve_id", "severity")),
    ("Malware Analysis", ("{malware} Variant Uses {technique} to Evade Detection",
                          "Technical Analysis: New {malware} Loader Targeting {sector}"),
     ("ioc_hash", "ioc_domain"), ("malware_family", "mitre_technique"), ("malware_family",)),
    ("Incident Alert", ("Phishing Wave Impersonating {brand} Delivers {malware}",
                        "Credential Stuffing Against {sector} Customer Portals Reported by Members"),
     ("ioc_ip", "ioc_domain"), ("severity",), ("severity",)),
    ("Daily Threat Briefing", ("Daily Threat Briefing: {sector} Sector Highlights",
                               "Weekly Digest: {malware}, {actor} and {product} Updates"),
     (), ("severity",), ()),
)  # fmt: skip
CATEGORY_WEIGHTS = (30, 25, 15, 20, 10)
CATEGORY_CUMULATIVE = tuple(itertools.accumulate(CATEGORY_WEIGHTS))
TLP_CUMULATIVE = tuple(itertools.accumulate(TLP_WEIGHTS))
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

SYSTEM_FIELDS = (
    # (field_name, label, type, description)
    ("threat_actor", "Threat Actor", "text", "Actor or intrusion set attributed to the activity"),
    ("malware_family", "Malware Family", "text", "Malware family named in the alert"),
    ("cve_id", "CVE ID", "text", "CVE identifiers covered by the alert"),
    ("affected_products", "Affected Products", "textarea", "Products and versions affected"),
    ("severity", "Severity", "dropdown", "Analyst-assessed severity: Low, Medium, High, Critical"),
    ("mitre_technique", "MITRE ATT&CK Technique", "multi_select", "ATT&CK technique identifiers"),
    ("ioc_ip", "Indicator: IP Address", "ip", "IPv4/IPv6 indicators of compromise"),
    ("ioc_domain", "Indicator: Domain", "domain", "Domain and URL indicators of compromise"),
    ("ioc_hash", "Indicator: File Hash", "hash", "SHA-256 / MD5 file hashes"),
)
CUSTOM_FIELDS = (
    ("business_unit", "Business Unit", "dropdown", "Internal business unit the alert is routed to"),
    ("internal_ticket_ref", "Internal Ticket Reference", "text", "ITSM ticket raised for this alert"),
    ("asset_exposure", "Asset Exposure", "dropdown", "Whether affected assets exist in the estate"),
    ("review_due", "Review Due", "date", "Date the alert must be reviewed by"),
    ("executive_summary_required", "Executive Summary Required", "boolean", "Flag for leadership briefing"),
)
TAG_NAMES = (
    "Ransomware", "Phishing", "APT", "Vulnerability", "Malware", "DDoS", "Data Breach", "Zero-Day",
    "Supply Chain", "Credential Theft", "Botnet", "Insider Threat", "Cloud Security", "OT/ICS",
)  # fmt: skip


class CywareError(Exception):
    """Answered as ``{"detail", "code", ...}`` by the app's exception handler."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body: JSON = {"detail": detail, "code": code, **extra}
        self.headers = headers or {}


def sign(access_id: str, secret: str, expires: int | str) -> str:
    """The CSAP request signature (what a client computes)."""
    digest = hmac.new(secret.encode(), f"{access_id}\n{expires}".encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


_TITLE_POOLS: dict[str, tuple[str, ...]] = {
    "actor": ACTORS, "sector": SECTORS, "malware": MALWARE, "product": PRODUCTS, "vuln": VULN_TYPES,
    "brand": BRANDS, "technique": tuple(t[1] for t in TECHNIQUES),
}  # fmt: skip


def _weighted(cumulative: tuple[int, ...], roll: float) -> int:
    return min(bisect.bisect_right(cumulative, roll * cumulative[-1]), len(cumulative) - 1)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class TenantData:
    """One CSAP tenant: its reference data and its alerts, kept sorted by publication."""

    access_id: str
    secret: str
    name: str
    tags: list[JSON] = field(default_factory=list)
    groups: list[JSON] = field(default_factory=list)
    additional_fields: list[JSON] = field(default_factory=list)
    categories: list[JSON] = field(default_factory=list)
    alerts: dict[str, JSON] = field(default_factory=dict)  # short_id -> list summary
    # (published_time, order, short_id), ascending, and the summaries in the same order
    keys: list[tuple[int, int, str]] = field(default_factory=list)
    recs: list[JSON] = field(default_factory=list)
    clock: MonotonicClock = field(default_factory=lambda: MonotonicClock(1))
    next_order: int = 0

    def add(self, summary: JSON, order: int) -> None:
        key = (summary["published_time"], order, summary["short_id"])
        i = bisect.bisect_right(self.keys, key)
        self.keys.insert(i, key)
        self.recs.insert(i, summary)
        self.alerts[summary["short_id"]] = summary

    def window(self, start: int | None, end: int | None) -> tuple[int, int]:
        lo = 0 if start is None else bisect.bisect_left(self.keys, (start, -math.inf))
        hi = len(self.keys) if end is None else bisect.bisect_right(self.keys, (end, math.inf))
        return lo, max(lo, hi)


class CywareState:
    def __init__(
        self, seed: int, tenants: dict[str, str], alerts_per_tenant: int, anchor_s: int | None
    ) -> None:
        self.seed = seed
        self.rng = derive_rng(seed, "cyware")
        self.anchor_s = anchor_s if anchor_s is not None else int(time.time()) // 60 * 60
        self._short_ids: set[str] = set()
        self.tenants: dict[str, TenantData] = {}
        for access_id, secret in tenants.items():
            tenant = TenantData(access_id, secret, self._display_name(access_id))
            self._build_reference_data(tenant)
            self.tenants[access_id] = tenant
            self.bulk_publish(tenant, alerts_per_tenant, self.anchor_s, 60 * DAY_S)

    @staticmethod
    def _display_name(access_id: str) -> str:
        return re.split(r"[-_.@]", access_id)[0].title() or access_id

    def _build_reference_data(self, tenant: TenantData) -> None:
        rng = derive_rng(self.seed, "cyware", tenant.access_id, "reference")
        name = tenant.name
        tags = list(TAG_NAMES) + [f"{name} Watchlist", f"{name} Brand Abuse"]
        tenant.tags = [
            {
                "tag_id": seeded_uuid(rng),
                "tag_name": tag,
                "tag_slug": _slug(tag),
                "is_active": tag != "OT/ICS" or rng.random() < 0.5,
            }
            for tag in tags
        ]
        tenant.groups = [
            {"group_id": seeded_uuid(rng), "group_name": group, "group_tlp": tlp, "group_type": kind,
             "allowed_for_intel_submission": intel, "allowed_for_rfi_submission": rfi}
            for group, tlp, kind, intel, rfi in (
                (f"{name} SOC Analysts", "AMBER", "Internal", True, True),
                (f"{name} CISO Office", "RED", "Internal", False, True),
                (f"{name} IT Operations", "GREEN", "Internal", False, False),
                ("Sector ISAC Members", "AMBER", "External", True, False),
                ("All Recipients", "WHITE", "External", False, False),
            )
        ]  # fmt: skip
        system = [
            {
                "field_id": seeded_uuid(rng),
                "field_name": fname,
                "field_label": label,
                "field_type": ftype,
                "field_description": desc,
            }
            for fname, label, ftype, desc in SYSTEM_FIELDS
        ]
        custom = [
            {
                "field_id": seeded_uuid(rng),
                "field_name": fname,
                "field_label": label,
                "field_type": ftype,
                "field_description": desc,
            }
            for fname, label, ftype, desc in rng.sample(CUSTOM_FIELDS, rng.randint(2, 4))
        ]
        tenant.additional_fields = [{"key": "system", "values": system}, {"key": "custom", "values": custom}]
        by_name = {f["field_name"]: f for f in system + custom}

        def refs(names: tuple[str, ...]) -> list[JSON]:
            return [{"field_id": by_name[n]["field_id"], "field_name": n} for n in names]

        tenant.categories = []
        for cat_name, _, indicators, additional, required in CATEGORIES:
            extra = tuple(f["field_name"] for f in custom[:1])
            tenant.categories.append({
                "category_id": seeded_uuid(rng), "category_name": cat_name,
                "threat_indicator_fields": refs(indicators), "additional_fields": refs(additional + extra),
                "required_fields": refs(required),
            })  # fmt: skip

    def _short_id(self, rng: Any) -> str:
        while True:
            number = rng.getrandbits(32) % 36**6
            chars = []
            for _ in range(6):
                number, digit = divmod(number, 36)
                chars.append(_ALPHABET[digit])
            candidate = "".join(chars)
            if candidate not in self._short_ids and not candidate.isdigit():
                self._short_ids.add(candidate)
                return candidate

    def _summary(self, tenant: TenantData, rng: Any, published: int) -> JSON:
        # random() indexing instead of rng.choice/choices: bulk seeding builds 100k of these
        random = rng.random
        index = _weighted(CATEGORY_CUMULATIVE, random())
        templates = CATEGORIES[index][1]
        values = {
            name: pool[int(random() * len(pool))]
            for name, pool in _TITLE_POOLS.items()
            if "{" + name + "}" in templates[0] or "{" + name + "}" in templates[1]
        }
        title = templates[int(random() * len(templates))].format_map(values)
        category = tenant.categories[index]
        return {
            "short_id": self._short_id(rng),
            "title": title,
            "status": "PUBLISHED",
            "published_time": published,
            "tlp": TLPS[_weighted(TLP_CUMULATIVE, random())],
            # list entries reference the category; the same small dict is shared, never mutated
            "card_category": {
                "category_id": category["category_id"],
                "category_name": category["category_name"],
            },
        }

    def bulk_publish(self, tenant: TenantData, count: int, until_s: int, span_s: int) -> list[JSON]:
        """``count`` alerts published in ``[until_s - span_s, until_s]`` (history, not live news)."""
        rng = self.rng
        created = []
        for _ in range(count):
            published = until_s - int(rng.random() * span_s)
            summary = self._summary(tenant, rng, published)
            tenant.keys.append((published, tenant.next_order, summary["short_id"]))
            tenant.recs.append(summary)
            tenant.alerts[summary["short_id"]] = summary
            tenant.next_order += 1
            created.append(summary)
        # ints compare faster than the key tuples; order stays below 2**40 and above -2**40
        pairs = sorted(zip(tenant.keys, tenant.recs, strict=True), key=lambda p: (p[0][0] << 41) + p[0][1])
        tenant.keys = [p[0] for p in pairs]
        tenant.recs = [p[1] for p in pairs]
        if tenant.keys:
            tenant.clock.raise_floor(tenant.keys[-1][0])
        return created

    def publish(self, tenant: TenantData, published: int | None = None, order: int | None = None) -> JSON:
        summary = self._summary(tenant, self.rng, published if published is not None else tenant.clock.next())
        if order is None:
            order = tenant.next_order
            tenant.next_order += 1
        tenant.add(summary, order)
        return summary

    def publish_at_head(self, tenant: TenantData, start: int | None, end: int | None) -> JSON:
        """A late-arriving, back-dated alert that sorts first in the window a client is paging."""
        lo, hi = tenant.window(start, end)
        if lo >= hi:
            return self.publish(tenant)
        head_time, head_order, _ = tenant.keys[lo]
        return self.publish(tenant, published=head_time, order=head_order - 1)

    def detail(self, tenant: TenantData, summary: JSON) -> JSON:
        """The full alert, rebuilt deterministically from its short_id (keeps 100k alerts light)."""
        rng = derive_rng(self.seed, "cyware", tenant.access_id, summary["short_id"])
        category = summary["card_category"]["category_name"]
        ips = [f"{rng.choice((45, 77, 91, 103, 185, 193))}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
               for _ in range(rng.randint(1, 4))]  # fmt: skip
        domains = [f"{rng.choice(('cdn', 'login', 'update', 'secure', 'files'))}-{rng.getrandbits(24):06x}."
                   f"{rng.choice(('com', 'net', 'top', 'xyz', 'info'))}" for _ in range(rng.randint(1, 3))]  # fmt: skip
        hashes = [f"{rng.getrandbits(256):064x}" for _ in range(rng.randint(1, 3))]
        technique = rng.choice(TECHNIQUES)
        shared = known_bad(0.3, "cyware", summary["short_id"])
        if shared is not None:
            # one of the indicators the rest of the simulated estate sees too
            ips[0] = KNOWN_BAD_IPS[shared % len(KNOWN_BAD_IPS)]
            hashes[0] = KNOWN_BAD_SHA256[shared % len(KNOWN_BAD_SHA256)]
            domains[0] = KNOWN_BAD_DOMAINS[shared % len(KNOWN_BAD_DOMAINS)]
        recommendations = rng.sample(
            ["Block the listed indicators on perimeter firewalls and proxies.",
             "Apply the vendor patch or documented mitigation without delay.",
             "Hunt for the listed hashes across endpoint telemetry for the last 30 days.",
             "Enforce phishing-resistant MFA on remote access and e-mail.",
             "Review VPN and SSO logs for logins from the listed addresses.",
             "Brief the service desk to expect related phishing reports."], 3)  # fmt: skip
        content = (
            f"<p><strong>Summary:</strong> {summary['title']}. Activity was observed by member organisations "
            f"and partner feeds; this {category.lower()} is shared under TLP:{summary['tlp']}.</p>"
            f"<p><strong>MITRE ATT&amp;CK:</strong> {technique[0]} &ndash; {technique[1]}</p>"
            "<h4>Indicators of Compromise</h4><ul>"
            + "".join(f"<li>IP: {ip}</li>" for ip in ips)
            + "".join(f"<li>Domain: {d}</li>" for d in domains)
            + "".join(f"<li>SHA-256: {h}</li>" for h in hashes)
            + "</ul><h4>Recommendations</h4><ul>"
            + "".join(f"<li>{r}</li>" for r in recommendations)
            + "</ul>"
        )
        groups = rng.sample(tenant.groups, rng.randint(1, 2))
        tags = rng.sample([t for t in tenant.tags if t["is_active"]], rng.randint(1, 3))
        return {
            "short_id": summary["short_id"],
            "title": summary["title"],
            "content": content,
            "status": summary["status"],
            "tlp": summary["tlp"],
            "published_time": summary["published_time"],
            "push_required": rng.random() < 0.3,
            "push_email_notification": rng.random() < 0.6,
            "tracking_id": f"{tenant.name[:3].upper()}-{time.gmtime(summary['published_time']).tm_year}-{rng.randint(1, 99999):05d}",
            "card_image": f"/media/card_images/{summary['short_id']}.png" if rng.random() < 0.4 else None,
            "card_info": f"{category} | {len(ips) + len(domains) + len(hashes)} indicators | {technique[0]}",
            "event": None
            if rng.random() < 0.7
            else f"Operation {rng.choice(('Silent', 'Midnight', 'Crimson', 'Glass'))} "
            f"{rng.choice(('Harbor', 'Eclipse', 'Lantern', 'Falcon'))}",  # fmt: skip
            "intel_id": seeded_uuid(rng) if rng.random() < 0.15 else None,
            "rfi_id": seeded_uuid(rng) if rng.random() < 0.05 else None,
            "card_group": [{"group_id": g["group_id"], "group_name": g["group_name"]} for g in groups],
            "recipient_groups": [{"group_id": g["group_id"], "group_name": g["group_name"]} for g in groups],
            "card_tag": [{"tag_id": t["tag_id"], "tag_name": t["tag_name"]} for t in tags],
            "card_category": dict(summary["card_category"]),
        }

    def tick(self) -> JSON:
        """Each tenant publishes 1-3 new alerts, stamped with strictly increasing times."""
        published: dict[str, list[str]] = {}
        for access_id, tenant in self.tenants.items():
            published[access_id] = [self.publish(tenant)["short_id"] for _ in range(self.rng.randint(1, 3))]
        return {"now": int(time.time()), "published": published}

    def counts(self) -> JSON:
        return {
            "server_time": int(time.time()),
            "tenants": {
                access_id: {
                    "alerts": len(t.alerts),
                    "tags": len(t.tags),
                    "recipient_groups": len(t.groups),
                    "categories": len(t.categories),
                    "additional_fields": sum(len(group["values"]) for group in t.additional_fields),
                    "latest_published_time": t.keys[-1][0] if t.keys else None,
                }  # fmt: skip
                for access_id, t in self.tenants.items()
            },
        }


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


class SeedRequest(BaseModel):
    alerts: int = Field(default=0, ge=0, le=2_000_000)
    access_id: str | None = None


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise CywareError(400, "invalid_parameter", f"{name} must be a unix timestamp in seconds.") from None


def create_app(
    seed: int = 7,
    live: bool = False,
    *,
    tenants: dict[str, str] | None = None,
    alerts_per_tenant: int = 120,
    signature_window_s: int = 30,
    clock_offset_s: int = 0,
    anchor_s: int | None = None,
    tick_interval: float = 5.0,
    rate_limit_per_minute: int | None = None,
) -> FastAPI:
    """A Cyware CSAP simulator.

    ``tenants`` maps access id to secret key (default: acme/globex/initech); each tenant gets
    ``alerts_per_tenant`` alerts published over the 60 days before ``anchor_s`` (default: now).
    ``rate_limit_per_minute`` turns on per-AccessID throttling (429 with Retry-After);
    ``signature_window_s`` is how far ahead of server time an ``Expires`` may lie;
    ``clock_offset_s`` skews the server's clock against the host's (seconds, either sign).
    """
    state = CywareState(seed, dict(tenants or DEFAULT_TENANTS), alerts_per_tenant, anchor_s)
    app = FastAPI(title="Cyware CSAP simulator", lifespan=live_lifespan(state.tick, live, tick_interval))
    app.state.sim = state
    board = install_faults(app)
    limiter = RateLimiter(rate_limit_per_minute) if rate_limit_per_minute else None

    def server_now() -> int:
        return int(time.time()) + clock_offset_s

    @app.exception_handler(CywareError)
    async def cyware_error(_: Request, exc: CywareError) -> JSONResponse:
        return JSONResponse(
            exc.body,
            status_code=exc.status,
            headers={**exc.headers, "Date": formatdate(server_now(), usegmt=True)},
        )

    async def authenticate(request: Request) -> TenantData:
        """The CSAP signature check (``async``: runs on the event loop, not in a worker thread)."""
        params = request.query_params
        access_id, expires_raw, signature = (
            params.get("AccessID"),
            params.get("Expires"),
            params.get("Signature"),
        )
        if not access_id or not expires_raw or not signature:
            raise CywareError(401, "missing_credentials", "Authentication credentials were not provided: "
                              "sign the request with the AccessID, Expires and Signature query parameters.")  # fmt: skip
        tenant = state.tenants.get(access_id)
        if tenant is None:
            raise CywareError(
                401, "unknown_access_id", "Invalid AccessID: no API credentials exist for this access id."
            )
        try:
            expires = int(expires_raw)
        except ValueError:
            raise CywareError(
                401, "invalid_expires", "Expires must be a unix timestamp in seconds."
            ) from None
        if not hmac.compare_digest(sign(access_id, tenant.secret, expires_raw), signature):
            raise CywareError(401, "invalid_signature", "Invalid signature: the Signature does not match "
                              "base64(HMAC-SHA1(secret_key, AccessID + '\\n' + Expires)).")  # fmt: skip
        now = server_now()
        if expires < now:
            raise CywareError(401, "signature_expired", f"Signature has expired: Expires={expires} is {now - expires} s "
                              "before server time. Check the client clock.", server_time=now)  # fmt: skip
        if expires > now + signature_window_s:
            raise CywareError(401, "expires_too_far", f"Expires={expires} is {expires - now} s ahead of server time "
                              f"(a signature is valid for at most {signature_window_s} s). Check the client clock "
                              "and sign each request just before sending it.", server_time=now)  # fmt: skip
        if limiter is not None:
            wait = limiter.retry_after(access_id)
            if wait is not None:
                raise CywareError(429, "throttled", f"Request was throttled. Expected available in {wait} seconds.",
                                  headers={"Retry-After": str(wait)})  # fmt: skip
        return tenant

    # The CSAP API is served by plain Starlette routes: FastAPI's dependency solving cost more CPU
    # per request than the simulated endpoint, and a benchmark driving thousands of detail calls a
    # second should measure the client, not the simulator's framework.
    def csap(path: str) -> Callable[[Callable[..., Awaitable[Response]]], Callable[..., Awaitable[Response]]]:
        def register(endpoint: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
            app.add_route(f"/api/csap/v1{path}", endpoint, methods=["GET"], include_in_schema=False)
            return endpoint

        return register

    @csap("/list_alert/")
    async def list_alert(request: Request) -> Response:
        tenant = await authenticate(request)
        params = request.query_params
        start, end = _int_param(request, "start_time"), _int_param(request, "end_time")
        if board.shift_pending:
            board.shift_pending = False
            state.publish_at_head(tenant, start, end)
        try:
            page_size = int(params.get("page_size", DEFAULT_PAGE_SIZE))
        except ValueError:
            page_size = DEFAULT_PAGE_SIZE
        page_size = DEFAULT_PAGE_SIZE if page_size < 1 else min(page_size, MAX_PAGE_SIZE)
        lo, hi = tenant.window(start, end)
        count = hi - lo
        pages = max(1, math.ceil(count / page_size))
        raw_page = params.get("page", "1")
        try:
            page = pages if raw_page == "last" else int(raw_page)
        except ValueError:
            page = 0
        if not 1 <= page <= pages:
            raise CywareError(404, "invalid_page", "Invalid page.")
        first = lo + (page - 1) * page_size
        data = tenant.recs[first : min(first + page_size, hi)]
        url = request.url
        previous = None
        if page > 1:
            previous = str(
                url.remove_query_params("page") if page == 2 else url.include_query_params(page=page - 1)
            )
        return JSONResponse({
            "count": count,
            "next": str(url.include_query_params(page=page + 1)) if page < pages else None,
            "previous": previous,
            "data": data,
        })  # fmt: skip

    @csap("/get_alert_detail/{short_id}/")
    async def get_alert_detail(request: Request) -> Response:
        tenant = await authenticate(request)
        summary = tenant.alerts.get(request.path_params["short_id"])
        if summary is None:  # another tenant's alert is as invisible as a missing one
            raise CywareError(404, "not_found", "Not found.")
        return JSONResponse(state.detail(tenant, summary))

    @csap("/tag/")
    async def list_tags(request: Request) -> Response:
        return JSONResponse((await authenticate(request)).tags)

    @csap("/list_recipient_group/")
    async def list_recipient_groups(request: Request) -> Response:
        return JSONResponse((await authenticate(request)).groups)

    @csap("/list_additional_fields/")
    async def list_additional_fields(request: Request) -> Response:
        return JSONResponse((await authenticate(request)).additional_fields)

    @csap("/list_category/")
    async def list_categories(request: Request) -> Response:
        return JSONResponse((await authenticate(request)).categories)

    # -- simulator control (no auth) --------------------------------------------------------------
    @app.post("/_sim/tick", tags=["simulator control"])
    async def sim_tick(steps: int = 1) -> JSON:
        steps = max(1, min(steps, 100))
        results = [state.tick() for _ in range(steps)]
        return results[0] if steps == 1 else {"steps": results}

    @app.post("/_sim/seed", tags=["simulator control"])
    async def sim_seed(body: SeedRequest) -> JSONResponse:
        if body.access_id is not None and body.access_id not in state.tenants:
            return JSONResponse({"detail": f"unknown access id {body.access_id!r}"}, status_code=404)
        started = time.perf_counter()
        targets = [state.tenants[body.access_id]] if body.access_id else list(state.tenants.values())
        created: dict[str, int] = {}
        for i, tenant in enumerate(targets):
            share = body.alerts // len(targets) + (1 if i < body.alerts % len(targets) else 0)
            state.bulk_publish(tenant, share, int(time.time()), 30 * DAY_S)
            created[tenant.access_id] = share
        return JSONResponse(
            {"created": created, "elapsed_ms": round((time.perf_counter() - started) * 1000, 1)}
        )

    @app.get("/_sim/state", tags=["simulator control"])
    async def sim_state() -> JSON:
        return state.counts()

    @app.get("/_sim/sign", tags=["simulator control"])
    async def sim_sign(access_id: str, ttl: int = 20) -> JSONResponse:
        """Signed query parameters for a tenant, for curl in the demo (a simulator convenience)."""
        tenant = state.tenants.get(access_id)
        if tenant is None:
            return JSONResponse({"detail": f"unknown access id {access_id!r}"}, status_code=404)
        expires = server_now() + min(ttl, signature_window_s)
        return JSONResponse(
            {"AccessID": access_id, "Expires": expires, "Signature": sign(access_id, tenant.secret, expires)}
        )

    return app
