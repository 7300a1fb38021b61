"""One OpenAPI document for the whole public API, merged from the services' own documents.

Each service's ``/openapi.json`` is fetched at startup and every ``openapi_refresh_seconds`` (and on
demand, rate-limited). A service that cannot be reached keeps its last good document, marked
``stale`` in ``info.x-soc-upstreams``; one never fetched is marked ``unavailable``.

Only what the routing table exposes is kept: a path stays if the table routes it to the service
that documented it (so ``/internal/...``, ``/healthz`` and friends drop out). Components merge by
name; when two services define different components under one name, each gets its service name as
a prefix (``tenant_Company``) and that service's ``$ref``s are rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import yaml
from loguru import logger

from soc_gateway import metrics
from soc_gateway.routing import RouteTable

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
COMPONENT_SECTIONS = (
    "schemas",
    "responses",
    "parameters",
    "examples",
    "requestBodies",
    "headers",
    "links",
    "callbacks",
    "pathItems",
)
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "An access token from POST /auth/login/ (or the admin login).",
}


@dataclass
class UpstreamSpec:
    service: str
    document: dict[str, Any] | None = None
    status: str = "unavailable"  # ok | stale | unavailable
    fetched_at: str | None = None
    error: str | None = None

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.fetched_at:
            out["fetched_at"] = self.fetched_at
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class MergedSpec:
    document: dict[str, Any]
    json_bytes: bytes
    _yaml_bytes: bytes | None = field(default=None, repr=False)

    @property
    def yaml_bytes(self) -> bytes:
        if self._yaml_bytes is None:
            self._yaml_bytes = yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True).encode()
        return self._yaml_bytes


# --- merging (pure functions) --------------------------------------------------------------------


def _rewrite_refs(node: Any, renames: dict[tuple[str, str], str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/"):
                parts = value.split("/", 4)
                if len(parts) == 4 and (parts[2], parts[3]) in renames:
                    value = f"#/components/{parts[2]}/{renames[(parts[2], parts[3])]}"
                out[key] = value
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _public_paths(service: str, document: dict[str, Any], table: RouteTable) -> dict[str, Any]:
    kept = {}
    for path, item in (document.get("paths") or {}).items():
        route = table.route_for(path)
        if route is None or route.service != service:
            continue
        item = copy.deepcopy(item)
        for method in HTTP_METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                operation["security"] = [] if route.public else [{"bearerAuth": []}]
        kept[path] = item
    return kept


def merge_specs(
    documents: dict[str, dict[str, Any]],
    table: RouteTable,
    *,
    title: str = "SOC Portal API",
    version: str = "1.0.0",
    upstream_report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge the services' documents (service name -> OpenAPI document) into the public one."""
    services = sorted(documents)
    sources: dict[str, dict[str, Any]] = {}
    for service in services:
        document = documents[service]
        own_components = dict(document.get("components") or {})
        # Every public operation uses the gateway's one bearer scheme; the services' own schemes go.
        own_components.pop("securitySchemes", None)
        sources[service] = {"paths": _public_paths(service, document, table), "components": own_components}

    # Rename clashing components until no clash is left: renaming one component changes the $refs
    # inside others, which can make two formerly identical definitions differ.
    renames: dict[str, dict[tuple[str, str], str]] = {service: {} for service in services}
    while True:
        rewritten = {
            service: _rewrite_refs(sources[service]["components"], renames[service]) for service in services
        }
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        clashes: set[tuple[str, str]] = set()
        for service in services:
            for section, entries in rewritten[service].items():
                if section not in COMPONENT_SECTIONS or not isinstance(entries, dict):
                    continue
                for name, definition in entries.items():
                    if (section, name) in renames[service]:
                        continue
                    key = (section, name)
                    if key in seen and seen[key]["definition"] != definition:
                        clashes.add(key)
                    seen.setdefault(key, {"definition": definition})
        if not clashes:
            break
        for service in services:
            for section, name in clashes:
                if name in (sources[service]["components"].get(section) or {}):
                    renames[service][(section, name)] = f"{service}_{name}"

    paths: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    tags: dict[str, dict[str, Any]] = {}
    for service in services:
        service_renames = renames[service]
        for section, entries in rewritten[service].items():
            if section not in COMPONENT_SECTIONS or not isinstance(entries, dict):
                continue
            target = components.setdefault(section, {})
            for name, definition in entries.items():
                target[service_renames.get((section, str(name)), str(name))] = definition
        for path, item in _rewrite_refs(sources[service]["paths"], service_renames).items():
            for method in HTTP_METHODS:
                operation = item.get(method)
                if not isinstance(operation, dict):
                    continue
                operation_id = operation.get("operationId")
                if operation_id:
                    if operation_id in operation_ids:
                        operation_id = f"{service}_{operation_id}"
                        operation["operationId"] = operation_id
                    operation_ids.add(operation_id)
                for tag in operation.get("tags") or []:
                    tags.setdefault(tag, {"name": tag})
            paths[path] = item
        for tag in documents[service].get("tags") or []:
            if isinstance(tag, dict) and "name" in tag:
                tags[tag["name"]] = tag
    components["securitySchemes"] = {"bearerAuth": BEARER_SCHEME}

    versions = [str(documents[s].get("openapi", "3.1.0")) for s in services] or ["3.1.0"]
    info: dict[str, Any] = {
        "title": title,
        "version": version,
        "description": "The SOC Portal's public API, served through the gateway. Every route needs a bearer "
        "access token unless marked otherwise; errors answer "
        '`{"error": {"code", "message", "details", "request_id"}}`.',
    }
    if upstream_report is not None:
        info["x-soc-upstreams"] = upstream_report
    merged: dict[str, Any] = {
        "openapi": max(versions),
        "info": info,
        "paths": dict(sorted(paths.items())),
        "components": {
            section: dict(sorted(entries.items())) for section, entries in components.items() if entries
        },
        "security": [{"bearerAuth": []}],
    }
    if tags:
        merged["tags"] = sorted(tags.values(), key=lambda tag: tag["name"])
    return merged


# --- fetching ------------------------------------------------------------------------------------


class OpenApiAggregator:
    def __init__(
        self,
        table: RouteTable,
        upstream_urls: dict[str, str],
        http: httpx.AsyncClient,
        *,
        fetch_timeout: float = 5.0,
        min_refresh_interval: float = 5.0,
        version: str = "1.0.0",
    ) -> None:
        self.table = table
        self.upstream_urls = upstream_urls
        self.http = http
        self.fetch_timeout = fetch_timeout
        self.min_refresh_interval = min_refresh_interval
        self.version = version
        self.upstreams = {service: UpstreamSpec(service) for service in table.services}
        self.merged: MergedSpec = self._merge()
        self._lock = asyncio.Lock()
        self._last_refresh = float("-inf")
        self.refreshed = asyncio.Event()

    async def refresh(self, *, force: bool = True) -> MergedSpec:
        """Fetch every service's document again (unless one did so within the minimum interval)."""
        async with self._lock:
            if not force and time.monotonic() - self._last_refresh < self.min_refresh_interval:
                return self.merged
            self._last_refresh = time.monotonic()
            await asyncio.gather(*(self._fetch(spec) for spec in self.upstreams.values()))
            self.merged = self._merge()
            self.refreshed.set()
            return self.merged

    async def first(self, wait_seconds: float) -> MergedSpec:
        """The merged document, waiting (a little) for the first fetch after startup."""
        if not self.refreshed.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_seconds):
                    await self.refreshed.wait()
        return self.merged

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the refresher must outlive any one bad document
                logger.opt(exception=exc).error("merging the OpenAPI documents failed")
            # A service still starting (or down) is asked again soon, not after the full interval.
            missing = any(spec.status != "ok" for spec in self.upstreams.values())
            await asyncio.sleep(min(interval, max(self.min_refresh_interval, 1.0)) if missing else interval)

    async def _fetch(self, spec: UpstreamSpec) -> None:
        url = f"{self.upstream_urls.get(spec.service, '')}/openapi.json"
        try:
            response = await self.http.get(url, timeout=self.fetch_timeout)
            response.raise_for_status()
            document = response.json()
            if not isinstance(document, dict) or "paths" not in document:
                raise ValueError("not an OpenAPI document")
        except Exception as exc:  # noqa: BLE001 - a service being down must not break the docs
            spec.error = f"{type(exc).__name__}: {str(exc)[:160]}"
            spec.status = "stale" if spec.document is not None else "unavailable"
            metrics.OPENAPI_UPSTREAM_OK.labels(spec.service).set(0)
            logger.warning(
                "OpenAPI document of {} unavailable ({}); {}",
                spec.service,
                spec.error,
                "keeping the last good copy" if spec.document else "leaving it out",
            )
            return
        spec.document = document
        spec.status = "ok"
        spec.error = None
        spec.fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
        metrics.OPENAPI_UPSTREAM_OK.labels(spec.service).set(1)

    def _merge(self) -> MergedSpec:
        documents = {s.service: s.document for s in self.upstreams.values() if s.document is not None}
        report = {s.service: s.report() for s in self.upstreams.values()}
        document = merge_specs(documents, self.table, version=self.version, upstream_report=report)
        return MergedSpec(document, json.dumps(document, separators=(",", ":")).encode())
