"""The caller's real address behind trusted proxies.

A service behind the gateway sees the gateway as its peer; the gateway appends the address it saw to
``X-Forwarded-For``. That header is believed only when the peer is a trusted proxy (an attacker that
reaches a service directly cannot choose the address it is recorded under): the client is then the
nearest address in the chain that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> list[Network]:
    """CIDRs or addresses; entries that are neither are skipped."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return networks


def is_trusted(address: str, trusted: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str | None:
    """The peer, or — when the peer is a trusted proxy — the nearest untrusted address of
    ``forwarded_for`` (at most 64 characters)."""
    if peer is None or not is_trusted(peer, trusted):
        return peer
    chain = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(chain):
        if not is_trusted(hop, trusted):
            return hop[:64]
    return (chain[0] if chain else peer)[:64]


__all__ = ["Network", "client_address", "is_trusted", "trusted_networks"]
