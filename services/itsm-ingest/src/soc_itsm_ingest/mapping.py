"""Which company, ITSM integration and SDP account an incident's ticket belongs to, and whether
the company's ticketing policy wants one.

The tenant service owns the mappings (``soar_mapping``: company ↔ (SOAR integration, account);
``itsm_mapping``: company ↔ (ITSM integration, SDP account id)) and the companies' policies. This
module only asks. :class:`TenantTicketRouting` calls the tenant service's internal API::

    GET {tenant_url}/internal/ticket-routing?soar_integration_id=<id>&account=<XSOAR account>
    Authorization: Bearer <service token>

    200 {"company_id": "…", "itsm_integration_id": "…", "account_id": "<SDP account id>",
         "policy": {"priorities": ["P1", "P2"], "statuses": ["pending", "active"], "types": null}}
    404 the incident's (integration, account) is not mapped to a company with an ITSM mapping

``policy`` and its keys are optional (defaults below). :class:`StaticTicketRouting` reads the same
shape, plus ``soar_integration_id`` and ``account`` to match on (``"*"`` matches any), from a JSON
list in settings (tests, the demo).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import httpx
from loguru import logger
from pydantic import BaseModel, Field, ValidationError
from soc_shared.events import SoarIncident
from soc_shared.settings import internal_tls

DEFAULT_PRIORITIES = frozenset({"P1", "P2"})
# A closed or archived incident gets no new ticket: the first sync of an XSOAR integration
# publishes its whole history, which must not flood the service desk.
DEFAULT_STATUSES = frozenset({"pending", "active"})


# "P1", "p1", "P1 Critical", "P2 - High", "Critical" (the original product's labels), 4..1 (its
# level numbers, 4 = P1).
_P_LABEL = re.compile(r"^\s*p\s*([1-4])(?:\s*[-:–]?\s*(?:critical|high|medium|low))?\s*$", re.IGNORECASE)
_NAMES = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}
_LEVELS = {4: "P1", 3: "P2", 2: "P3", 1: "P4"}


def priority_of(label: Any) -> str | None:
    """A priority as a rule may write it → ``P1``..``P4`` (None: not a priority)."""
    if isinstance(label, bool):
        return None
    if isinstance(label, int):
        return _LEVELS.get(label)
    value = str(label).strip()
    if value.isdigit():
        return _LEVELS.get(int(value))
    match = _P_LABEL.match(value)
    return f"P{match.group(1)}" if match else _NAMES.get(value.lower())


@dataclass(frozen=True)
class TicketPolicy:
    """A company's (or XSOAR account's) rule: which incidents get a ticket (and only ever one) —
    priorities, statuses and, when given, incident types (None: any type)."""

    priorities: frozenset[str] = DEFAULT_PRIORITIES
    statuses: frozenset[str] = DEFAULT_STATUSES
    types: frozenset[str] | None = None

    def applies(self, incident: SoarIncident) -> bool:
        return (
            incident.priority in self.priorities
            and incident.status.value in self.statuses
            and (self.types is None or (incident.type or "").lower() in self.types)
        )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> TicketPolicy:
        raw = raw or {}
        priorities = raw.get("priorities")
        statuses = raw.get("statuses")
        types = raw.get("types")
        return cls(
            priorities=DEFAULT_PRIORITIES
            if priorities is None
            else frozenset(p for p in (priority_of(x) for x in priorities) if p),
            statuses=DEFAULT_STATUSES if statuses is None else frozenset(str(s).lower() for s in statuses),
            types=None if types is None else frozenset(str(t).lower() for t in types),
        )


class TicketRoute(NamedTuple):
    itsm_integration_id: str
    account_id: str
    company_id: str
    policy: TicketPolicy


class TicketRouting(Protocol):
    """Resolves an incident (of a SOAR integration) to where its ticket goes; None when unmapped."""

    async def resolve(self, incident: SoarIncident, *, soar_integration_id: str) -> TicketRoute | None: ...


class RoutingUnavailable(RuntimeError):
    """The routing source could not answer (the incident is retried, not dropped)."""


class _PolicyModel(BaseModel):
    priorities: list[str | int] | None = None
    statuses: list[str] | None = None
    types: list[str] | None = None


class RouteModel(BaseModel):
    """The tenant service's answer (and one entry of the static routes)."""

    company_id: str = Field(min_length=1)
    itsm_integration_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    policy: _PolicyModel | None = None

    def route(self) -> TicketRoute:
        policy = TicketPolicy.from_mapping(
            self.policy.model_dump(exclude_unset=True) if self.policy else None
        )
        return TicketRoute(self.itsm_integration_id, self.account_id, self.company_id, policy)


class StaticRouteModel(RouteModel):
    soar_integration_id: str = "*"
    account: str = "*"


@dataclass
class StaticTicketRouting:
    """Routes from configuration: the first entry matching (SOAR integration, account) wins."""

    routes: list[StaticRouteModel] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str | Iterable[Mapping[str, Any]]) -> StaticTicketRouting:
        raw = json.loads(text) if isinstance(text, str) else list(text)
        if not isinstance(raw, list):
            raise ValueError("static routes must be a JSON list")
        return cls([StaticRouteModel.model_validate(r) for r in raw])

    async def resolve(self, incident: SoarIncident, *, soar_integration_id: str) -> TicketRoute | None:
        for r in self.routes:
            if r.soar_integration_id in ("*", soar_integration_id) and r.account in (
                "*",
                incident.account or "",
            ):
                return r.route()
        return None


class TenantTicketRouting:
    """Asks the tenant service (``GET /internal/ticket-routing``) and caches answers, "unmapped"
    included, for ``ttl`` seconds: a burst of incident versions costs one call per account."""

    def __init__(
        self,
        tenant_url: str,
        token: Callable[[], Awaitable[str]],
        *,
        ttl: float = 60.0,
        http: httpx.AsyncClient | None = None,
        invalidate_token: Callable[[], None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = f"{tenant_url.rstrip('/')}/internal/ticket-routing"
        self.token = token
        self.ttl = ttl
        self.invalidate_token = invalidate_token
        self._http = http or httpx.AsyncClient(timeout=timeout, trust_env=False, verify=internal_tls())
        self._owns_http = http is None
        self._cache: dict[tuple[str, str], tuple[float, TicketRoute | None]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[TicketRoute | None]] = {}
        self.calls = 0

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def forget(self) -> None:
        self._cache.clear()

    async def resolve(self, incident: SoarIncident, *, soar_integration_id: str) -> TicketRoute | None:
        key = (soar_integration_id, incident.account or "")
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[TicketRoute | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            route = await self._ask(*key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        else:
            future.set_result(route)
            self._cache[key] = (time.monotonic() + self.ttl, route)
            return route
        finally:
            self._inflight.pop(key, None)

    async def _ask(self, soar_integration_id: str, account: str) -> TicketRoute | None:
        params = {"soar_integration_id": soar_integration_id, "account": account}
        for attempt in (1, 2):
            self.calls += 1
            try:
                response = await self._http.get(
                    self.url, params=params, headers={"Authorization": f"Bearer {await self.token()}"}
                )
            except httpx.HTTPError as exc:
                raise RoutingUnavailable(
                    f"tenant service unreachable for ticket routing ({type(exc).__name__})"
                ) from None
            if response.status_code == 401 and attempt == 1 and self.invalidate_token is not None:
                self.invalidate_token()  # a rotated signing key: fetch a fresh service token once
                continue
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise RoutingUnavailable(
                    f"tenant service answered ticket routing with HTTP {response.status_code}"
                )
            try:
                return RouteModel.model_validate_json(response.content).route()
            except ValidationError as exc:
                logger.error("tenant ticket routing answered an unexpected body: {}", exc.errors()[:1])
                raise RoutingUnavailable(
                    "tenant service answered ticket routing with an unexpected body"
                ) from None
        raise RoutingUnavailable("tenant service refused the service token for ticket routing")


def routing_from_settings(
    settings: Any, token: Callable[[], Awaitable[str]], invalidate_token: Callable[[], None] | None = None
) -> TicketRouting:
    if settings.routing == "static":
        return StaticTicketRouting.from_json(settings.static_routes)
    return TenantTicketRouting(
        settings.tenant_url, token, ttl=settings.routing_cache_seconds, invalidate_token=invalidate_token
    )
