"""The routing table: which upstream serves a public path, with what timeout, access and rate limit.

The table is data (``routes.yaml``), not code: adding a public path means adding an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

RateLimitClass = Literal["default", "login"]


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the table. ``path`` is the prefix (ending in "/") or the exact path."""

    path: str
    service: str
    exact: bool = False
    public: bool = False
    timeout: float = 30.0
    rate_limit: RateLimitClass = "default"
    websocket: bool = False


class NotRouted(Exception):
    """The path is not public (unknown, or blocked as internal)."""


class BadPath(Exception):
    """The path tries to climb out of its prefix (dot segments)."""


def normalise_path(path: str) -> str:
    """The form the services declare: a trailing slash, unless the last segment looks like a file."""
    if path.endswith("/"):
        return path
    last = path.rsplit("/", 1)[-1]
    return path if "." in last else path + "/"


class RouteTable:
    def __init__(
        self, routes: list[Route], blocked_segments: frozenset[str] = frozenset({"internal"})
    ) -> None:
        self.routes = routes
        self.blocked_segments = blocked_segments
        self._exact: dict[str, Route] = {}
        self._prefix: dict[str, Route] = {}
        for route in routes:
            if not route.path.startswith("/"):
                raise ValueError(f"route path {route.path!r} must start with '/'")
            if route.exact:
                target = self._exact
            else:
                if not route.path.endswith("/"):
                    raise ValueError(f"route prefix {route.path!r} must end with '/'")
                target = self._prefix
            if route.path in target:
                raise ValueError(f"route {route.path!r} is declared twice")
            if any(segment in blocked_segments for segment in route.path.split("/")):
                raise ValueError(f"route {route.path!r} would expose a blocked path")
            target[route.path] = route

    @property
    def services(self) -> list[str]:
        return sorted({route.service for route in self.routes})

    def resolve(self, path: str) -> tuple[Route, str]:
        """The route for a request path and the path to forward (normalised). Raises
        :class:`NotRouted` or :class:`BadPath`."""
        segments = path.split("/")
        for segment in segments:
            if segment in (".", ".."):
                raise BadPath(path)
            if segment in self.blocked_segments:
                raise NotRouted(path)
        forward = normalise_path(path)
        route = self._exact.get(forward)
        if route is not None:
            return route, forward
        # Longest prefix first: walk back from the full path one segment at a time (dict look-ups,
        # not a scan of the table).
        end = len(forward)
        while end > 0:
            route = self._prefix.get(forward[:end])
            if route is not None:
                return route, forward
            end = forward.rfind("/", 0, end - 1) + 1
        raise NotRouted(path)

    def route_for(self, path: str) -> Route | None:
        try:
            return self.resolve(path)[0]
        except (NotRouted, BadPath):
            return None

    @classmethod
    def from_dict(cls, document: dict[str, Any], *, default_timeout: float = 30.0) -> RouteTable:
        defaults = document.get("defaults") or {}
        routes = []
        for entry in document.get("routes") or []:
            if ("prefix" in entry) == ("path" in entry):
                raise ValueError(f"route {entry!r} needs exactly one of 'prefix' or 'path'")
            rate_limit = entry.get("rate_limit", defaults.get("rate_limit", "default"))
            if rate_limit not in ("default", "login"):
                raise ValueError(f"route {entry!r}: unknown rate_limit class {rate_limit!r}")
            routes.append(
                Route(
                    path=entry.get("prefix") or entry["path"],
                    service=str(entry["service"]),
                    exact="path" in entry,
                    public=bool(entry.get("public", False)),
                    timeout=float(entry.get("timeout", defaults.get("timeout", default_timeout))),
                    rate_limit=rate_limit,
                    websocket=bool(entry.get("websocket", False)),
                )
            )
        blocked = frozenset(document.get("blocked_segments") or ["internal"]) | {"internal"}
        return cls(routes, blocked)

    @classmethod
    def load(cls, path: Path, *, default_timeout: float = 30.0) -> RouteTable:
        with path.open(encoding="utf-8") as handle:
            return cls.from_dict(yaml.safe_load(handle) or {}, default_timeout=default_timeout)
