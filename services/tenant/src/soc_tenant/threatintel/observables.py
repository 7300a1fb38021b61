"""Observables (indicators) in the text of the records we ingest: IPv4/IPv6 addresses, domains, URLs,
e-mail addresses, MD5/SHA-1/SHA-256 hashes, CVE ids and MITRE ATT&CK technique ids.

Pure functions, no I/O. Everything is bounded so a hostile or huge vendor string can never stall or
crash a consumer:

- each text is cut at :data:`MAX_TEXT` characters and a record yields at most :data:`MAX_PER_RECORD`
  observables; nested JSON (custom fields) is walked to :data:`MAX_DEPTH` levels only;
- the patterns are linear (no nested quantifiers) and match ASCII only: a look-alike made of other
  scripts (Cyrillic ``а`` in ``pаypal.com``) is refused as a whole, never cut down to a suffix
  that would match something else; full-width forms (``１．２．３．４``) are folded by NFKC first;
- defanged forms analysts and feeds write (``hxxp://``, ``1.2.3[.]4``, ``evil(.)com``,
  ``user[@]evil.com``, ``[:]//``) are understood;
- addresses are classified with :mod:`ipaddress`: anything not globally routable (RFC 1918,
  loopback, link-local, CGNAT, documentation, multicast, reserved) is kept but flagged ``private``,
  as are internal names (``*.local``, ``*.internal``, ``localhost`` …); private observables are
  never matched against threat intelligence.

Written on the standard library rather than ``iocextract``: that package's last release is from
2023 and its URL patterns backtrack on long hostile strings; ``ioc-fanger`` only refangs. The
few defang forms above and ``ipaddress`` cover what the vendors send.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

KINDS = ("ipv4", "ipv6", "domain", "url", "email", "md5", "sha1", "sha256", "cve", "mitre")
MAX_TEXT = 65_536
MAX_PER_RECORD = 2_000
MAX_DEPTH = 6
MAX_URL = 1_000
MAX_DOMAIN = 253


@dataclass(frozen=True, order=True)
class Observable:
    kind: str
    value: str
    private: bool = False


# ------------------------------------------------------------------------------------- refanging
_REFANG = [
    (re.compile(r"\bhxxp(s?)\b", re.I), r"http\1"),
    (re.compile(r"\bfxp\b", re.I), "ftp"),
    (re.compile(r"\[\s*(?:\.|dot)\s*\]|\(\s*(?:\.|dot)\s*\)|\{\s*(?:\.|dot)\s*\}", re.I), "."),
    (re.compile(r"\[\s*(?:@|at)\s*\]|\(\s*(?:@|at)\s*\)", re.I), "@"),
    (re.compile(r"\[\s*:\s*\]"), ":"),
    (re.compile(r"\[\s*/\s*\]"), "/"),
]


_MAYBE_DEFANGED = re.compile(r"[\[({]|xxp|fxp", re.I)


def refang(text: str) -> str:
    """Undo the usual defanging (``hxxp``, ``[.]``, ``(.)``, ``[dot]``, ``[@]``, ``[:]``)."""
    if not _MAYBE_DEFANGED.search(text):  # every defanged form has one of these
        return text
    for pattern, repl in _REFANG:
        text = pattern.sub(repl, text)
    return text


def clean(text: str) -> str:
    """The text as scanned: bounded, HTML entities decoded, NFKC-folded, refanged."""
    text = text[:MAX_TEXT].replace("\x00", " ")
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():  # ASCII is its own NFKC form
        text = unicodedata.normalize("NFKC", text)[:MAX_TEXT]
    return refang(text)


# -------------------------------------------------------------------------------------- patterns
# Boundaries: not preceded/followed by a word character of any script, so ``xаbc.com`` (Cyrillic)
# or ``abc123def`` never yield a partial match.
_B = r"(?<![\w.@/-])"
_E = r"(?![\w@-])"
_URL = re.compile(r"(?<![\w])(?:https?|ftp)://[^\s\"'<>`{}|\\^\[\]]{1," + str(MAX_URL) + "}", re.I)
_EMAIL = re.compile(_B + r"([A-Za-z0-9._%+-]{1,64})@([A-Za-z0-9.-]{1,253})" + _E)
_IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|\d{1,3}(?:\.\d{1,3}){3}))(?![\w:])"
)
_DOMAIN = re.compile(
    _B + r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,126}[A-Za-z][A-Za-z0-9-]{1,62})" + _E
)
_HASH = re.compile(r"(?<![\w])([0-9A-Fa-f]{32}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})(?![\w])")
_CVE = re.compile(r"(?<![\w])(CVE-\d{4}-\d{4,7})(?![\w])", re.I)
_MITRE = re.compile(r"(?<![\w])(T\d{4}(?:\.\d{3})?)(?![\w])")

# Names that look like domains but are files, code or internal names.
_NOT_TLDS = frozenset(
    "exe dll sys bat cmd ps1 vbs js jar py sh bin tmp log txt csv json xml yml yaml ini cfg conf dat db "
    "doc docx xls xlsx ppt pptx pdf rtf zip rar gz tgz 7z iso img png jpg jpeg gif bmp svg htm html php "
    "asp aspx jsp lnk msi scr hta wsf evtx pcap eml msg md rst".split()
)
_PRIVATE_SUFFIXES = (".local", ".internal", ".lan", ".corp", ".home", ".localdomain", ".intranet", ".arpa")
_PRIVATE_NAMES = frozenset({"localhost"})


def _ip(candidate: str) -> Observable | None:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        else:
            return Observable("ipv6", address.compressed, not address.is_global)
    return Observable("ipv4", str(address), not address.is_global)


def _domain(candidate: str) -> Observable | None:
    name = candidate.lower().rstrip(".")
    if len(name) > MAX_DOMAIN or "." not in name:
        return None
    tld = name.rsplit(".", 1)[1]
    if tld in _NOT_TLDS or tld.isdigit() or not tld.isalpha() and not tld.startswith("xn--"):
        return None
    private = name in _PRIVATE_NAMES or name.endswith(_PRIVATE_SUFFIXES)
    return Observable("domain", name, private)


def _host(host: str) -> Observable | None:
    host = host.strip("[]")
    return _ip(host) or _domain(host)


def _url(candidate: str) -> tuple[Observable | None, Observable | None]:
    url = candidate.rstrip(".,;:!?)'\"")
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    tail = rest[len(authority) :]
    hostport = authority.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        host = hostport[1 : hostport.find("]")] if "]" in hostport else ""
    else:
        host = hostport.split(":", 1)[0]
    host_obs = _host(host) if host else None
    if host_obs is None:
        return None, None
    normal = f"{scheme.lower()}://{authority[: len(authority) - len(hostport)]}{hostport.lower()}{tail}"
    return Observable("url", normal, host_obs.private), host_obs


CACHED_TEXT = 2_048
"""Strings up to this long are remembered (:func:`_extract_cached`): most of an offense's text
repeats across offenses and versions — categories, rule and log source names, rule-made
descriptions — and scanning it was the read-model consumer's largest cost per offense."""


def extract_text(text: str) -> set[Observable]:
    """Every observable in one string (bounded, see the module's notes)."""
    if not text:
        return set()
    if len(text) <= CACHED_TEXT:
        return set(_extract_cached(text))
    return _scan(text)


@functools.lru_cache(maxsize=32_768)
def _extract_cached(text: str) -> frozenset[Observable]:
    return frozenset(_scan(text))


def _scan(text: str) -> set[Observable]:
    text = clean(text)
    found: set[Observable] = set()
    consumed: list[tuple[int, int]] = []

    def add(obs: Observable | None) -> None:
        if obs is not None and len(found) < MAX_PER_RECORD:
            found.add(obs)

    for m in _URL.finditer(text):
        url, host = _url(m.group(0))
        add(url)
        add(host)
        consumed.append(m.span())
    for m in _EMAIL.finditer(text):
        domain = _domain(m.group(2))
        if domain is not None:
            add(Observable("email", f"{m.group(1).lower()}@{domain.value}", domain.private))
        consumed.append(m.span())

    def inside(span: tuple[int, int]) -> bool:
        return any(a <= span[0] and span[1] <= b for a, b in consumed)

    for m in _IPV4.finditer(text):
        add(_ip(m.group(1)))
    for m in _IPV6.finditer(text):
        if m.group(1).count(":") >= 2 and any(c.isalnum() for c in m.group(1)):
            obs = _ip(m.group(1))
            if obs is not None and obs.kind == "ipv6":
                add(obs)
    for m in _DOMAIN.finditer(text):
        if not inside(m.span()):
            add(_domain(m.group(1)))
    for m in _HASH.finditer(text):
        value = m.group(1).lower()
        add(Observable({32: "md5", 40: "sha1", 64: "sha256"}[len(value)], value))
    for m in _CVE.finditer(text):
        add(Observable("cve", m.group(1).upper()))
    for m in _MITRE.finditer(text):
        add(Observable("mitre", m.group(1)))
    return found


def strings(value: Any, depth: int = 0) -> Iterable[str]:
    """The strings inside a JSON-like value (dict keys are names, not content: skipped)."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value[:MAX_PER_RECORD]:
            yield from strings(v, depth + 1)


def extract(*values: Any) -> list[Observable]:
    """The observables of a record's fields (strings, lists, nested dicts), sorted, at most
    :data:`MAX_PER_RECORD`; the total text scanned is bounded by :data:`MAX_TEXT` per string and
    ``MAX_PER_RECORD`` strings."""
    found: set[Observable] = set()
    for n, s in enumerate(s for v in values for s in strings(v)):
        if n >= MAX_PER_RECORD or len(found) >= MAX_PER_RECORD:
            break
        found |= extract_text(s)
    return sorted(found)[:MAX_PER_RECORD]


# ------------------------------------------------------------------------------ per record kind
def offense_observables(p: Any) -> list[Observable]:
    """A QRadar offense: its source (an address, a user or a host name), the addresses its source and
    local destination address ids name (resolved by the ingestor), description, categories, rule
    names and log source names."""
    return extract(
        p.offense_source,
        getattr(p, "source_addresses", None),
        getattr(p, "local_destination_addresses", None),
        p.description,
        p.categories,
        [r.name for r in p.rules if getattr(r, "name", None)],
        [s.name for s in p.log_sources if getattr(s, "name", None)],
    )


def incident_observables(p: Any) -> list[Observable]:
    """An XSOAR incident: name, source IPs, MITRE techniques, rules, configuration item, close
    notes and every custom field (labels arrive among them)."""
    return extract(
        p.name,
        p.source_ips,
        p.mitre_techniques,
        p.rules,
        p.configuration_item,
        p.close_notes,
        p.custom_fields,
    )


def alert_observables(p: Any) -> list[Observable]:
    """A Cyware alert: title, content (HTML), card info, event, tag names."""
    return extract(p.title, p.content, p.card_info, p.event, [t.name for t in p.tags if t.name])


def ticket_observables(p: Any) -> list[Observable]:
    """A service-desk ticket: subject, description, resolution."""
    return extract(p.subject, p.short_description, p.resolution)
