"""The directory (OpenLDAP or Active Directory) through ldap3.

- Servers form an ordered pool (FIRST strategy, availability checked): the first reachable
  server answers; one that failed is skipped for ``ldap_server_retry_seconds``, then tried again.
- LDAPS for ``ldaps://`` URLs, StartTLS when configured, certificates verified against the CA file.
- Every value placed in a filter goes through ``escape_filter_chars``: ``*)(uid=*`` is a name
  that matches nobody, never a filter.
- A login searches the person with the service account, then binds as the found DN with the
  given password on the server that answered the search. Exactly one match or nobody.

ldap3 is synchronous: callers run these methods in a worker thread.
"""

from __future__ import annotations

import math
import ssl
from typing import Any

from ldap3 import BASE, FIRST, NONE, SUBTREE, Connection, Server, ServerPool, Tls
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError
from ldap3.utils.config import set_config_parameter
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn
from loguru import logger

from soc_auth.config import Settings
from soc_auth.ldap.dn import normalize_dn
from soc_auth.ldap.models import DirectoryGroup, DirectoryUser

# With every server down, ldap3 would sleep this long (default 10 s) before giving up on a cycle;
# a login must fail fast with "directory unavailable" instead.
set_config_parameter("POOLING_LOOP_TIMEOUT", 0)

_INVALID_CREDENTIALS = 49
_UNAVAILABLE_RESULTS = {51, 52}  # busy, unavailable


class DirectoryUnavailable(Exception):
    """No directory server could be reached or used (the reason is logged, not returned)."""


class Directory:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = bool(settings.ldap_urls)
        tls = None
        if settings.ldap_start_tls or any(u.lower().startswith("ldaps://") for u in settings.ldap_urls):
            tls = Tls(
                validate=ssl.CERT_REQUIRED if settings.ldap_tls_verify else ssl.CERT_NONE,
                ca_certs_file=settings.ldap_ca_file,
            )
        servers = [
            Server(url, connect_timeout=settings.ldap_connect_timeout, get_info=NONE, tls=tls)
            for url in settings.ldap_urls
        ]
        self.pool = (
            ServerPool(servers, FIRST, active=1, exhaust=max(1, settings.ldap_server_retry_seconds))
            if servers
            else None
        )
        self._user_attributes = [
            a
            for a in {
                settings.ldap_login_attribute,
                settings.ldap_mail_attribute,
                settings.ldap_name_attribute,
                settings.ldap_member_of_attribute,
                settings.ldap_upn_attribute,
                "displayName",
            }
            if a
        ]

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
            check_names=False,
        )
        conn.open()
        if self.settings.ldap_start_tls and not conn.server.ssl and not conn.start_tls():
            conn.unbind()
            raise DirectoryUnavailable(f"StartTLS refused by {conn.server.host}")
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
            conn.unbind()
            logger.error(
                "the directory refused the service account bind ({}: {})",
                result.get("result"),
                result.get("description"),
            )
            raise DirectoryUnavailable("service account bind refused")
        return conn

    # --- login ---------------------------------------------------------------------------------------

    def login_filter(self, login: str) -> str:
        s = self.settings
        value = escape_filter_chars(login)
        if "@" in login:
            local, _, domain = login.rpartition("@")
            terms = [f"({s.ldap_mail_attribute}={value})"]
            if s.ldap_upn_attribute:
                terms.append(f"({s.ldap_upn_attribute}={value})")
            if local and s.ldap_upn_domain and domain.lower() == s.ldap_upn_domain.lower():
                terms.append(f"({s.ldap_login_attribute}={escape_filter_chars(local)})")
        else:
            terms = [f"({s.ldap_login_attribute}={value})"]
        return f"(&(objectClass={escape_filter_chars(s.ldap_user_object_class)})(|{''.join(terms)}))"

    def authenticate(self, login: str, password: str) -> DirectoryUser | None:
        """The person if ``password`` is theirs; None for a wrong password, nobody or several matches."""
        if not password or not login or "\x00" in login:
            # An empty password would be an anonymous bind, which "succeeds".
            return None
        try:
            conn = self._service_connection()
            try:
                conn.search(
                    self.settings.ldap_user_search_base,
                    self.login_filter(login),
                    SUBTREE,
                    attributes=self._user_attributes,
                    size_limit=2,
                )
                self._raise_if_unavailable(conn)
                entries = _entries(conn)
                if len(entries) != 1:
                    return None
                person = self._person(conn, entries[0])
                server = conn.server
            finally:
                conn.unbind()
            user_conn, ok = self._open(server, person.dn, password)
            result = user_conn.result or {}
            user_conn.unbind()
        except (LDAPException, OSError) as exc:
            logger.warning("directory unavailable: {}", type(exc).__name__)
            raise DirectoryUnavailable(type(exc).__name__) from None
        if ok:
            return person
        if result.get("result") in _UNAVAILABLE_RESULTS:
            raise DirectoryUnavailable(str(result.get("description")))
        if result.get("result") != _INVALID_CREDENTIALS:
            logger.info("directory refused a bind ({}: {})", result.get("result"), result.get("description"))
        return None

    # --- look-ups for administrators ------------------------------------------------------------------

    def search_users(self, q: str | None) -> list[DirectoryUser]:
        s = self.settings
        cls = f"(objectClass={escape_filter_chars(s.ldap_user_object_class)})"
        if q:
            v = escape_filter_chars(q)
            attrs = [s.ldap_login_attribute, s.ldap_name_attribute, s.ldap_mail_attribute]
            flt = f"(&{cls}(|{''.join(f'({a}=*{v}*)' for a in attrs)}))"
        else:
            flt = cls
        with self._session() as conn:
            conn.search(
                s.ldap_user_search_base,
                flt,
                SUBTREE,
                attributes=self._user_attributes,
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
            groups = [_group(e) for e in _entries(conn)]
        return sorted(groups, key=lambda g: g.name.lower())

    def group_members(self, name: str) -> list[DirectoryUser] | None:
        """The people of group ``name`` (its cn or its DN); None when there is no such group."""
        s = self.settings
        if "=" in name:
            try:
                parse_dn(name)
            except (LDAPInvalidDnError, ValueError, TypeError):
                return None
        with self._session() as conn:
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
            if len(groups) != 1:
                return None
            group_dn = groups[0]["dn"]
            cls = f"(objectClass={escape_filter_chars(s.ldap_user_object_class)})"
            conn.search(
                s.ldap_user_search_base,
                f"(&{cls}({s.ldap_member_of_attribute}={escape_filter_chars(group_dn)}))",
                SUBTREE,
                attributes=self._user_attributes,
                size_limit=s.ldap_lookup_size_limit,
            )
            self._raise_if_unavailable(conn)
            people = [self._person(conn, e, resolve_groups=False) for e in _entries(conn)]
            if not people:
                # No memberOf support: read the group's member list instead.
                attrs = groups[0].get("attributes", {})
                for member_dn in _values(attrs, "member") + _values(attrs, "uniqueMember"):
                    conn.search(member_dn, cls, BASE, attributes=self._user_attributes)
                    people.extend(self._person(conn, e, resolve_groups=False) for e in _entries(conn))
        return sorted(people, key=lambda p: p.username.lower())

    def ping(self) -> None:
        with self._session():
            pass

    # --- helpers ----------------------------------------------------------------------------------------

    class _SessionCtx:
        def __init__(self, directory: Directory) -> None:
            self.directory = directory
            self.conn: Connection | None = None

        def __enter__(self) -> Connection:
            try:
                self.conn = self.directory._service_connection()
            except (LDAPException, OSError) as exc:
                logger.warning("directory unavailable: {}", type(exc).__name__)
                raise DirectoryUnavailable(type(exc).__name__) from None
            return self.conn

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            if self.conn is not None:
                try:
                    self.conn.unbind()
                except LDAPException:
                    pass
            if isinstance(exc, LDAPException | OSError):
                logger.warning("directory unavailable: {}", type(exc).__name__)
                raise DirectoryUnavailable(type(exc).__name__) from None

    def _session(self) -> Directory._SessionCtx:
        return Directory._SessionCtx(self)

    @staticmethod
    def _raise_if_unavailable(conn: Connection) -> None:
        result = (conn.result or {}).get("result")
        if result in _UNAVAILABLE_RESULTS or conn.closed:
            raise DirectoryUnavailable(str((conn.result or {}).get("description")))

    def _person(
        self, conn: Connection, entry: dict[str, Any], *, resolve_groups: bool = True
    ) -> DirectoryUser:
        s = self.settings
        attrs = entry.get("attributes", {})
        member_of = _values(attrs, s.ldap_member_of_attribute)
        if not member_of and resolve_groups:
            # Directories without memberOf: ask which groups list this DN as a member.
            dn = escape_filter_chars(entry["dn"])
            conn.search(
                s.ldap_group_search_base,
                f"(&{s.ldap_group_filter}(|(member={dn})(uniqueMember={dn})))",
                SUBTREE,
                attributes=["cn"],
                size_limit=s.ldap_lookup_size_limit,
            )
            member_of = [e["dn"] for e in _entries(conn)]
        username = _first(attrs, s.ldap_login_attribute) or entry["dn"]
        return DirectoryUser(
            dn=entry["dn"],
            username=username,
            email=_first(attrs, s.ldap_mail_attribute),
            full_name=_first(attrs, "displayName") or _first(attrs, s.ldap_name_attribute) or username,
            member_of=member_of,
        )

    def is_member(self, person: DirectoryUser, group_dn: str) -> bool:
        wanted = normalize_dn(group_dn)
        return bool(group_dn) and any(normalize_dn(dn) == wanted for dn in person.member_of)


def _entries(conn: Connection) -> list[dict[str, Any]]:
    return [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]


def _values(attrs: Any, name: str) -> list[str]:
    if not name or name not in attrs:
        return []
    value = attrs[name]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v not in (None, "")]
    return [] if value in (None, "") else [str(value)]


def _first(attrs: Any, name: str) -> str | None:
    values = _values(attrs, name)
    return values[0] if values else None


def _group(entry: dict[str, Any]) -> DirectoryGroup:
    attrs = entry.get("attributes", {})
    return DirectoryGroup(
        dn=entry["dn"],
        name=_first(attrs, "cn") or entry["dn"],
        description=_first(attrs, "description") or "",
        member_count=len(_values(attrs, "member")) + len(_values(attrs, "uniqueMember")),
    )
