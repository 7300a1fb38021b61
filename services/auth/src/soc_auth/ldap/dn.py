"""Distinguished-name helpers: directories differ in case and blanks, comparisons must not."""

from __future__ import annotations

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn


def normalize_dn(dn: str) -> str:
    """``CN=Acme Users, OU=Groups,DC=soc`` → ``cn=acme users,ou=groups,dc=soc``."""
    try:
        parts = parse_dn(dn.strip())
    except (LDAPInvalidDnError, ValueError, TypeError):
        return dn.strip().lower()
    return ",".join(f"{attr.strip().lower()}={value.strip().lower()}" for attr, value, _ in parts)


def first_rdn_value(dn: str) -> str:
    """The group's own name: ``cn=acme-soc-users,ou=groups,...`` → ``acme-soc-users``."""
    try:
        parts = parse_dn(dn.strip())
    except (LDAPInvalidDnError, ValueError, TypeError):
        return dn.strip()
    return parts[0][1].strip() if parts else dn.strip()


def group_key(ldap_group: str) -> str:
    """How a mapping's group is stored: a normalised DN, or a lower-cased bare name."""
    value = ldap_group.strip()
    return normalize_dn(value) if "=" in value else value.lower()


def membership_keys(member_of: list[str]) -> set[str]:
    """Every key a user's groups can match a mapping by: the normalised DN and the bare name."""
    keys: set[str] = set()
    for dn in member_of:
        keys.add(normalize_dn(dn))
        keys.add(first_rdn_value(dn).lower())
    return keys
