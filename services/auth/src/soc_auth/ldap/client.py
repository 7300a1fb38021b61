"""The directory (Active Directory or OpenLDAP) through ldap3.

- Servers form an ordered pool (FIRST strategy, availability checked): the first reachable
  server answers; one that failed is skipped for ``ldap_server_retry_seconds``, then tried again.
- Transport: LDAPS for ``ldaps://`` URLs, StartTLS for ``ldap://`` URLs, certificates verified
  against the configured CA. Plain LDAP only with ``ldap_allow_plain`` (an explicit opt-in).
- The flavour (Active Directory or not) is read once from the server's root DSE unless
  configured; it decides the attribute defaults, how membership is resolved (AD: the in-chain
  matching rule, so nested groups count, plus the primary group; others: ``memberOf``) and that
  look-ups leave out computer and disabled accounts.
- Every value placed in a filter goes through ``escape_filter_chars``: ``*)(uid=*`` is a name
  that matches nobody, never a filter.
- A login searches the person with the service account, then binds as the found DN with the
  given password on the server that answered the search. Exactly one match or nobody. Active
  Directory's reason for refusing a bind (the ``data`` code) becomes a stable reason.

ldap3 is synchronous: callers run these methods in a worker thread.
"""

from __future__ import annotations

import math
import re
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from ldap3 import BASE, FIRST, NONE, SUBTREE, Connection, Server, ServerPool, Tls
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError, LDAPSASLPrepError
from ldap3.utils.config import set_config_parameter
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn
from loguru import logger

from soc_auth.config import Settings
from soc_auth.ldap.dn import group_key, membership_keys
from soc_auth.ldap.models import DirectoryGroup, DirectoryUser

# With every server down, ldap3 would sleep this long (default 10 s) before giving up on a cycle;
# a login must fail fast with "directory unavailable" instead.
set_config_parameter("POOLING_LOOP_TIMEOUT", 0)

_INVALID_CREDENTIALS = 49
_UNAVAILABLE_RESULTS = {51, 52}  # busy, unavailable
_STRONGER_AUTH_REQUIRED = 8
AD_CAPABILITY = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID in the root DSE
IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN
_BIT_AND = "1.2.840.113556.1.4.803"
_UAC_DISABLED = 0x2
_AD_PERSON = "(&(objectCategory=person)(objectClass=user))"
_AD_ENABLED = f"(!(userAccountControl:{_BIT_AND}:=2))"
_NEVER_EXPIRES = {0, 0x7FFFFFFFFFFFFFFF}

# Active Directory's bind refusals: "80090308: LdapErr: ..., data 775, v1db1".
_AD_DATA = re.compile(r"\bdata ([0-9a-fA-F]{3,8})\b")
AD_BIND_REASONS = {
    "525": "unknown_user",
    "52e": "invalid_password",
    "530": "logon_hours_restricted",
    "531": "workstation_restricted",
    "532": "password_expired",
    "533": "account_disabled",
    "701": "account_expired",
    "773": "password_must_change",
    "775": "account_locked",
}


class DirectoryUnavailable(Exception):
    """No directory server could be reached or used (the reason is logged, not returned)."""


@dataclass(frozen=True)
class BindResult:
    """The outcome of a sign-in against the directory: the person, or why not."""

    person: DirectoryUser | None
    reason: str | None = None  # None when the password was right and the account usable

    @property
    def ok(self) -> bool:
        return self.person is not None and self.reason is None


def ad_bind_reason(result: dict[str, Any]) -> str | None:
    match = _AD_DATA.search(str(result.get("message") or ""))
    return AD_BIND_REASONS.get(match.group(1).lower()) if match else None


def _filetime_passed(value: Any) -> bool:
    try:
        ticks = int(value)
    except (TypeError, ValueError):
        return False
    if ticks in _NEVER_EXPIRES:
        return False
    return ticks < (time.time() + 11644473600) * 10**7


def _sid_string(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw if raw.startswith("S-") else None
    if not isinstance(raw, bytes | bytearray) or len(raw) < 8:
        return None
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack("<" + "I" * count, raw[8 : 8 + 4 * count])
    return "S-" + "-".join(str(x) for x in (revision, authority, *subs))


class Directory:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = bool(settings.ldap_urls)
        self._flavor: str | None = None if settings.ldap_flavor == "auto" else settings.ldap_flavor
        self._flavor_lock = threading.Lock()
        self.tls = Tls(
            validate=ssl.CERT_REQUIRED if settings.ldap_tls_verify else ssl.CERT_NONE,
            ca_certs_file=settings.ldap_ca_file,
        )
        servers = [self._server(url) for url in settings.ldap_urls]
        self.pool = (
            ServerPool(servers, FIRST, active=1, exhaust=max(1, settings.ldap_server_retry_seconds))
            if servers
            else None
        )

    def _server(self, url: str) -> Server:
        return Server(url, connect_timeout=self.settings.ldap_connect_timeout, get_info=NONE, tls=self.tls)

    # --- flavour and its defaults ------------------------------------------------------------------

    @property
    def is_ad(self) -> bool:
        return self._flavor == "active_directory"

    def _detect(self, conn: Connection) -> None:
        if self._flavor is not None:
            return
        with self._flavor_lock:
            if self._flavor is not None:
                return
            conn.search("", "(objectClass=*)", BASE, attributes=["supportedCapabilities"])
            caps = (
                _values(_entries(conn)[0].get("attributes", {}), "supportedCapabilities")
                if _entries(conn)
                else []
            )
            self._flavor = "active_directory" if AD_CAPABILITY in caps else "openldap"
            logger.info("directory flavour: {}", self._flavor)

    @property
    def login_attribute(self) -> str:
        return self.settings.ldap_login_attribute or ("sAMAccountName" if self.is_ad else "uid")

    @property
    def upn_attribute(self) -> str:
        return self.settings.ldap_upn_attribute or ("userPrincipalName" if self.is_ad else "")

    @property
    def person_filter(self) -> str:
        s = self.settings
        if s.ldap_user_filter:
            return s.ldap_user_filter if s.ldap_user_filter.startswith("(") else f"({s.ldap_user_filter})"
        if s.ldap_user_object_class:
            return f"(objectClass={escape_filter_chars(s.ldap_user_object_class)})"
        # On AD, objectClass=person also matches computer accounts (SOCDC$); objectCategory does not.
        return _AD_PERSON if self.is_ad else "(objectClass=person)"

    @property
    def listed_person_filter(self) -> str:
        """People that look-ups show: on AD without the disabled accounts."""
        return f"(&{self.person_filter}{_AD_ENABLED})" if self.is_ad else self.person_filter

    def _user_attributes(self) -> list[str]:
        s = self.settings
        attrs = {
            self.login_attribute,
            s.ldap_mail_attribute,
            s.ldap_name_attribute,
            s.ldap_member_of_attribute,
            self.upn_attribute,
            "displayName",
        }
        if self.is_ad:
            attrs |= {"userAccountControl", "accountExpires", "objectSid", "primaryGroupID"}
        return [a for a in attrs if a]

    # --- connections ------------------------------------------------------------------------------

    def _open(self, target: ServerPool | Server, user: str, password: str) -> tuple[Connection, bool]:
        conn = Connection(
            # ldap3 packs the timeout into a C struct on Linux: whole seconds only.
            target,
            user=user,
            password=password,
            receive_timeout=max(1, math.ceil(self.settings.ldap_receive_timeout)),
            raise_exceptions=False,
            read_only=True,
            auto_bind=False,
            auto_referrals=False,
            check_names=False,
        )
        conn.open()
        server = conn.server
        if not server.ssl and not self.settings.ldap_allow_plain:
            try:
                started = conn.start_tls()
            except LDAPException as exc:
                conn.unbind()
                logger.error("StartTLS with {}:{} failed: {}", server.host, server.port, exc)
                raise DirectoryUnavailable(f"StartTLS failed: {exc}") from None
            if not started:
                result = conn.result or {}
                conn.unbind()
                logger.error(
                    "{}:{} refused StartTLS ({}); use an ldaps:// URL, or set "
                    "SOC_AUTH_LDAP_ALLOW_PLAIN=true for a plain directory on a trusted network",
                    server.host,
                    server.port,
                    result.get("description"),
                )
                raise DirectoryUnavailable("StartTLS refused")
        ok = conn.bind()
        return conn, ok

    def _service_connection(self) -> Connection:
        if self.pool is None:
            raise DirectoryUnavailable("no directory server is configured")
        conn, ok = self._open(
            self.pool, self.settings.ldap_bind_dn, self.settings.ldap_bind_password.get_secret_value()
        )
        if not ok:
            result = conn.result or {}
            server = conn.server
            conn.unbind()
            hint = ""
            if result.get("result") == _STRONGER_AUTH_REQUIRED:
                hint = " — the server requires TLS for simple binds: use ldaps:// or leave StartTLS on"
            elif result.get("result") == _INVALID_CREDENTIALS:
                hint = f" — check SOC_AUTH_LDAP_BIND_DN / SOC_AUTH_LDAP_BIND_PASSWORD ({ad_bind_reason(result) or 'wrong'})"
            logger.error(
                "{}:{} refused the service account bind ({}: {}){}",
                server.host,
                server.port,
                result.get("result"),
                result.get("description"),
                hint,
            )
            raise DirectoryUnavailable(f"service account bind refused ({result.get('description')})")
        self._detect(conn)
        return conn

    # --- login ---------------------------------------------------------------------------------------

    def split_login(self, login: str) -> str | None:
        """``DOMAIN\\user`` → ``user`` (None when the domain is not ours); other forms unchanged."""
        if "\\" not in login:
            return login
        domain, _, name = login.partition("\\")
        wanted = self.settings.ldap_netbios_domain
        if not name or "\\" in name or (wanted and domain.lower() != wanted.lower()):
            return None
        return name

    def login_filter(self, login: str) -> str:
        s = self.settings
        value = escape_filter_chars(login)
        if "@" in login:
            local, _, domain = login.rpartition("@")
            terms = [f"({s.ldap_mail_attribute}={value})"]
            if self.upn_attribute:
                terms.append(f"({self.upn_attribute}={value})")
            if local and s.ldap_upn_domain and domain.lower() == s.ldap_upn_domain.lower():
                terms.append(f"({self.login_attribute}={escape_filter_chars(local)})")
        else:
            terms = [f"({self.login_attribute}={value})"]
        return f"(&{self.person_filter}(|{''.join(terms)}))"

    def authenticate(self, login: str, password: str) -> BindResult:
        """Who ``login`` is if ``password`` is theirs, or the reason why not: ``unknown_user``,
        ``invalid_password``, ``password_rejected`` (not a string a directory accepts), or AD's
        own account states (``account_disabled``, ``account_locked``, ``password_must_change``...)."""
        name = self.split_login(login)
        if not password or not name or "\x00" in name:
            # An empty password would be an anonymous bind, which "succeeds".
            return BindResult(None, "unknown_user" if not name else "invalid_password")
        try:
            conn = self._service_connection()
            try:
                conn.search(
                    self.settings.ldap_user_search_base,
                    self.login_filter(name),
                    SUBTREE,
                    attributes=self._user_attributes(),
                    size_limit=2,
                )
                self._raise_if_unavailable(conn)
                entries = _entries(conn)
                if len(entries) != 1:
                    return BindResult(None, "unknown_user" if not entries else "ambiguous_user")
                person = self._person(conn, entries[0])
                server = conn.server
            finally:
                conn.unbind()
            try:
                user_conn, ok = self._open(server, person.dn, password)
            except LDAPSASLPrepError:
                # The password holds characters that LDAP's string preparation refuses: it cannot
                # be anybody's password. Bad input, not a directory fault.
                return BindResult(None, "password_rejected")
            result = user_conn.result or {}
            user_conn.unbind()
        except LDAPSASLPrepError:
            return BindResult(None, "password_rejected")
        except (LDAPException, OSError) as exc:
            logger.warning("directory unavailable: {}: {}", type(exc).__name__, exc)
            raise DirectoryUnavailable(type(exc).__name__) from None
        if ok:
            if not person.enabled:
                # A directory that let a disabled account bind (not AD): still refused.
                return BindResult(person, "account_disabled")
            return BindResult(person)
        if result.get("result") in _UNAVAILABLE_RESULTS:
            raise DirectoryUnavailable(str(result.get("description")))
        reason = ad_bind_reason(result)
        if reason is None:
            if result.get("result") != _INVALID_CREDENTIALS:
                logger.info(
                    "directory refused a bind ({}: {})", result.get("result"), result.get("description")
                )
            reason = "invalid_password"
        return BindResult(person, reason)

    def lookup(self, dn: str) -> DirectoryUser | None:
        """The person at ``dn`` as the directory sees it now (groups, enabled); None when gone."""
        with self._session() as conn:
            conn.search(dn, self.person_filter, BASE, attributes=self._user_attributes())
            if (conn.result or {}).get("result") in (32, 34):  # noSuchObject, invalidDNSyntax
                return None
            self._raise_if_unavailable(conn)
            entries = _entries(conn)
            return self._person(conn, entries[0]) if entries else None

    # --- look-ups for administrators ------------------------------------------------------------------

    def search_users(self, q: str | None) -> list[DirectoryUser]:
        s = self.settings
        with self._session() as conn:
            cls = self.listed_person_filter
            if q:
                v = escape_filter_chars(q)
                attrs = [self.login_attribute, s.ldap_name_attribute, s.ldap_mail_attribute]
                flt = f"(&{cls}(|{''.join(f'({a}=*{v}*)' for a in attrs)}))"
            else:
                flt = cls
            conn.search(
                s.ldap_user_search_base,
                flt,
                SUBTREE,
                attributes=self._user_attributes(),
                size_limit=s.ldap_lookup_size_limit,
            )
            self._raise_if_unavailable(conn)
            people = [self._person(conn, e, resolve_groups=False) for e in _entries(conn)]
        return sorted(people, key=lambda p: p.username.lower())

    def list_groups(self, q: str | None) -> list[DirectoryGroup]:
        s = self.settings
        flt = f"(&{s.ldap_group_filter}(cn=*{escape_filter_chars(q)}*))" if q else s.ldap_group_filter
        with self._session() as conn:
            conn.search(
                s.ldap_group_search_base,
                flt,
                SUBTREE,
                attributes=["cn", "description", "member", "uniqueMember"],
                size_limit=s.ldap_lookup_size_limit,
            )
            self._raise_if_unavailable(conn)
            entries = _entries(conn)
            groups = [self._group(conn, e) for e in entries]
        return sorted(groups, key=lambda g: g.name.lower())

    def group_members(self, name: str) -> list[DirectoryUser] | None:
        """The people of group ``name`` (its cn or its DN), nested groups resolved on AD, groups
        themselves, computers and disabled accounts left out; None when there is no such group."""
        if "=" in name:
            try:
                parse_dn(name)
            except (LDAPInvalidDnError, ValueError, TypeError):
                return None
        with self._session() as conn:
            group = self._find_group(conn, name)
            if group is None:
                return None
            return sorted(self._members(conn, group), key=lambda p: p.username.lower())

    def _find_group(self, conn: Connection, name: str) -> dict[str, Any] | None:
        s = self.settings
        if "=" in name:
            conn.search(name, s.ldap_group_filter, BASE, attributes=["cn", "member", "uniqueMember"])
        else:
            conn.search(
                s.ldap_group_search_base,
                f"(&{s.ldap_group_filter}(cn={escape_filter_chars(name)}))",
                SUBTREE,
                attributes=["cn", "member", "uniqueMember"],
                size_limit=2,
            )
        if (conn.result or {}).get("result") in (32, 34):  # noSuchObject, invalidDNSyntax
            return None
        self._raise_if_unavailable(conn)
        groups = _entries(conn)
        return groups[0] if len(groups) == 1 else None

    def _members(self, conn: Connection, group: dict[str, Any], *, only_dns: bool = False) -> list[Any]:
        s = self.settings
        group_dn = escape_filter_chars(group["dn"])
        if self.is_ad:
            member_of = f"({s.ldap_member_of_attribute}:{IN_CHAIN}:={group_dn})"
        else:
            member_of = f"({s.ldap_member_of_attribute}={group_dn})"
        attributes = ["1.1"] if only_dns else self._user_attributes()
        conn.search(
            s.ldap_user_search_base,
            f"(&{self.listed_person_filter}{member_of})",
            SUBTREE,
            attributes=attributes,
            size_limit=s.ldap_lookup_size_limit,
        )
        self._raise_if_unavailable(conn)
        found = _entries(conn)
        if not found and not self.is_ad:
            # No memberOf support: read the group's member list instead (people only).
            attrs = group.get("attributes", {})
            for member_dn in _values(attrs, "member") + _values(attrs, "uniqueMember"):
                conn.search(member_dn, self.listed_person_filter, BASE, attributes=attributes)
                found.extend(_entries(conn))
        if only_dns:
            return [e["dn"] for e in found]
        return [self._person(conn, e, resolve_groups=False) for e in found]

    def ping(self) -> None:
        with self._session():
            pass

    def diagnose(self) -> list[dict[str, Any]]:
        """Each configured server on its own: reachable, TLS, service bind, flavour — in words."""
        report = []
        for url in self.settings.ldap_urls:
            entry: dict[str, Any] = {
                "url": url,
                "transport": "ldaps"
                if url.lower().startswith("ldaps://")
                else ("plain" if self.settings.ldap_allow_plain else "starttls"),
                "reachable": False,
                "tls": None,
                "service_bind": False,
                "flavor": None,
                "error": None,
            }
            try:
                conn = Connection(
                    self._server(url),
                    user=self.settings.ldap_bind_dn,
                    password=self.settings.ldap_bind_password.get_secret_value(),
                    receive_timeout=max(1, math.ceil(self.settings.ldap_receive_timeout)),
                    raise_exceptions=False,
                    read_only=True,
                    auto_referrals=False,
                )
                conn.open()
                entry["reachable"] = True
                if entry["transport"] == "starttls":
                    if not conn.start_tls():
                        entry["error"] = f"StartTLS refused ({(conn.result or {}).get('description')})"
                        report.append(entry)
                        continue
                entry["tls"] = entry["transport"] != "plain"
                if conn.bind():
                    entry["service_bind"] = True
                    conn.search("", "(objectClass=*)", BASE, attributes=["supportedCapabilities"])
                    found = _entries(conn)
                    caps = _values(found[0].get("attributes", {}), "supportedCapabilities") if found else []
                    entry["flavor"] = "active_directory" if AD_CAPABILITY in caps else "openldap"
                else:
                    result = conn.result or {}
                    entry["error"] = f"service account bind refused: {result.get('description')}" + (
                        f" ({ad_bind_reason(result)})" if ad_bind_reason(result) else ""
                    )
                conn.unbind()
            except LDAPException as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            except OSError as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            report.append(entry)
        return report

    # --- helpers ----------------------------------------------------------------------------------------

    class _SessionCtx:
        def __init__(self, directory: Directory) -> None:
            self.directory = directory
            self.conn: Connection | None = None

        def __enter__(self) -> Connection:
            try:
                self.conn = self.directory._service_connection()
            except (LDAPException, OSError) as exc:
                logger.warning("directory unavailable: {}: {}", type(exc).__name__, exc)
                raise DirectoryUnavailable(type(exc).__name__) from None
            return self.conn

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            if self.conn is not None:
                try:
                    self.conn.unbind()
                except LDAPException:
                    pass
            if isinstance(exc, LDAPException | OSError):
                logger.warning("directory unavailable: {}: {}", type(exc).__name__, exc)
                raise DirectoryUnavailable(type(exc).__name__) from None

    def _session(self) -> Directory._SessionCtx:
        return Directory._SessionCtx(self)

    @staticmethod
    def _raise_if_unavailable(conn: Connection) -> None:
        result = (conn.result or {}).get("result")
        if result in _UNAVAILABLE_RESULTS or conn.closed:
            raise DirectoryUnavailable(str((conn.result or {}).get("description")))

    def _groups_of(self, conn: Connection, dn: str, attrs: Any, raw: Any) -> list[str]:
        s = self.settings
        if self.is_ad:
            # Every group the person is in, through nested groups too, and the primary group
            # (Domain Users), which memberOf never lists.
            conn.search(
                s.ldap_group_search_base,
                f"(&{s.ldap_group_filter}(member:{IN_CHAIN}:={escape_filter_chars(dn)}))",
                SUBTREE,
                attributes=["1.1"],
                size_limit=s.ldap_lookup_size_limit,
            )
            self._raise_if_unavailable(conn)
            groups = [e["dn"] for e in _entries(conn)]
            sid = _sid_string(_raw_first(raw, "objectSid"))
            rid = _first(attrs, "primaryGroupID")
            if sid and rid:
                primary = sid.rsplit("-", 1)[0] + f"-{rid}"
                conn.search(
                    s.ldap_base_dn, f"(objectSid={primary})", SUBTREE, attributes=["1.1"], size_limit=1
                )
                groups.extend(e["dn"] for e in _entries(conn) if e["dn"] not in groups)
            return groups
        member_of = _values(attrs, s.ldap_member_of_attribute)
        if member_of:
            return member_of
        # Directories without memberOf: ask which groups list this DN as a member.
        value = escape_filter_chars(dn)
        conn.search(
            s.ldap_group_search_base,
            f"(&{s.ldap_group_filter}(|(member={value})(uniqueMember={value})))",
            SUBTREE,
            attributes=["cn"],
            size_limit=s.ldap_lookup_size_limit,
        )
        return [e["dn"] for e in _entries(conn)]

    def _person(
        self, conn: Connection, entry: dict[str, Any], *, resolve_groups: bool = True
    ) -> DirectoryUser:
        s = self.settings
        attrs = entry.get("attributes", {})
        member_of = (
            self._groups_of(conn, entry["dn"], attrs, entry.get("raw_attributes") or {})
            if resolve_groups
            else _values(attrs, s.ldap_member_of_attribute)
        )
        username = _first(attrs, self.login_attribute) or entry["dn"]
        enabled = True
        if self.is_ad:
            try:
                uac = int(_first(attrs, "userAccountControl") or 0)
            except ValueError:
                uac = 0
            enabled = not (uac & _UAC_DISABLED) and not _filetime_passed(_first(attrs, "accountExpires"))
        return DirectoryUser(
            dn=entry["dn"],
            username=username,
            email=_first(attrs, s.ldap_mail_attribute),
            full_name=_first(attrs, "displayName") or _first(attrs, s.ldap_name_attribute) or username,
            member_of=member_of,
            enabled=enabled,
            upn=_first(attrs, self.upn_attribute) if self.upn_attribute else None,
        )

    def _group(self, conn: Connection, entry: dict[str, Any]) -> DirectoryGroup:
        attrs = entry.get("attributes", {})
        return DirectoryGroup(
            dn=entry["dn"],
            name=_first(attrs, "cn") or entry["dn"],
            description=_first(attrs, "description") or "",
            # People, not nested groups (on AD, the people of nested groups count).
            member_count=len(self._members(conn, entry, only_dns=True)),
        )

    def is_member(self, person: DirectoryUser, group: str) -> bool:
        """``group`` is a DN or a bare group name (its cn)."""
        return bool(group) and group_key(group) in membership_keys(person.member_of)


def _entries(conn: Connection) -> list[dict[str, Any]]:
    return [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]


def _values(attrs: Any, name: str) -> list[str]:
    if not name or name not in attrs:
        return []
    value = attrs[name]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v not in (None, "")]
    return [] if value in (None, "") else [str(value)]


def _raw_first(attrs: Any, name: str) -> Any:
    value = attrs.get(name) if hasattr(attrs, "get") else None
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def _first(attrs: Any, name: str) -> str | None:
    values = _values(attrs, name)
    return values[0] if values else None
