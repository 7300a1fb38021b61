"""Where the suite may connect on a vendor's behalf, and to which origin credentials belong.

An integration URL is typed by an administrator; without a policy it could point the ingestors
at the cloud metadata service (169.254.169.254), the database, the broker's management API or
anything else on the internal network, and the response (or the error) would come back through
the portal. :class:`EgressPolicy` refuses loopback, link-local, private, shared (CGNAT),
multicast, unspecified and reserved addresses unless the operator's allowlist admits them:

``SOC_EGRESS_ALLOW``: comma-separated CIDRs (``10.20.0.0/16``), host names (``qradar.corp``) or
host suffixes (``.corp.example``). In ``dev`` and ``test`` (``SOC_ENV``), loopback is admitted
too: the vendor simulators listen there.

The check is made on the address actually connected: the transport resolves the name once,
checks every address, and connects to an admitted one (TLS still verifies the name), so a DNS
answer that changes between a check and the connect (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

__all__ = ["EgressDenied", "EgressPolicy", "origin_of"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, lower-cased, with the scheme's default port made explicit:
    the unit credentials are bound to (a new scheme, host or port is another origin)."""
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = 0
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class EgressDenied(httpx.ConnectError):
    """The destination resolves only to addresses the egress policy refuses (never retried)."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self.host = host
        self.addresses = addresses
        shown = ", ".join(addresses[:4]) or "no address"
        super().__init__(
            f"{host} resolves to {shown}: loopback, link-local, private and other internal addresses "
            "are not allowed for vendor connections (an operator may admit them with SOC_EGRESS_ALLOW)"
        )


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


@dataclass
class EgressPolicy:
    """Which destination addresses vendor connections may reach."""

    allow_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    allow_hosts: list[str] = field(default_factory=list)
    allow_loopback: bool = False
    resolver: Resolver = system_resolver

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> EgressPolicy:
        env = os.environ if environ is None else environ
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        hosts: list[str] = []
        for entry in (env.get("SOC_EGRESS_ALLOW") or "").split(","):
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.append(entry.rstrip("."))
        return cls(networks, hosts, allow_loopback=env.get("SOC_ENV", "dev") in ("dev", "test"))

    def host_admitted(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(
            host == entry or (entry.startswith(".") and host.endswith(entry)) for entry in self.allow_hosts
        )

    def address_admitted(self, address: str | IPAddress) -> bool:
        ip = _unwrap(ipaddress.ip_address(address) if isinstance(address, str) else address)
        if any(ip in network for network in self.allow_networks):
            return True
        if ip.is_loopback:
            return self.allow_loopback
        return not (
            ip.is_private
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_unspecified
            or ip.is_reserved
            or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED)
            or not ip.is_global
        )

    async def admitted_addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` a connection may use, in resolver order; raises
        :class:`EgressDenied` when there is none."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        addresses = [str(literal)] if literal is not None else await self.resolver(host, port)
        if literal is None and self.host_admitted(host):
            return addresses
        admitted = [a for a in addresses if self.address_admitted(a)]
        if not admitted:
            raise EgressDenied(host, addresses)
        return admitted

    def check_literal(self, url: str) -> str | None:
        """Why a URL is refused without resolving anything (an IP literal or ``localhost``), or None."""
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        if not host or self.host_admitted(host):
            return None
        if host == "localhost" or host.endswith(".localhost"):
            return None if self.allow_loopback else f"{host} is a loopback name"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None
        return None if self.address_admitted(ip) else f"{ip} is an internal address"


def describe(addresses: Iterable[str]) -> str:
    return ", ".join(addresses)
