"""The admin live feed's figures (the original's system-metrics socket): integrations and companies
counted in the control plane, tenant users, this host's CPU and memory, and each service's own CPU
and resident memory read from its Prometheus ``/metrics`` (``process_cpu_seconds_total``,
``process_resident_memory_bytes``).

Admins ask for them with ``/ws/chat/?metrics=true``: one ``metrics`` frame on connect, then one
every ``ControlOptions.live_metrics_seconds``.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from loguru import logger

SERVICES = {
    "auth": "auth_url",
    "siem-ingest": "siem_ingest_url",
    "soar-ingest": "soar_ingest_url",
    "itsm-ingest": "itsm_ingest_url",
    "threatintel": "threatintel_url",
}
COUNTS_SQL = sa.text("""
SELECT 'integration' AS kind, integration_type AS k1, status AS k2, count(*) AS n
    FROM integration WHERE deleted_at IS NULL GROUP BY 2, 3
UNION ALL SELECT 'company', CASE WHEN is_active THEN 'active' ELSE 'inactive' END, NULL, count(*)
    FROM company WHERE deleted_at IS NULL GROUP BY 2
UNION ALL SELECT 'member', CASE WHEN active THEN 'active' ELSE 'inactive' END, NULL, count(*)
    FROM tenant_member GROUP BY 2
""")


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of the host from /proc/stat; None where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            parts = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
    total = sum(parts[:8])
    return total - idle, total


def _memory() -> dict[str, Any]:
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: float(line.split()[1]) * 1024 for line in f if ":" in line}
    except (OSError, ValueError, IndexError):
        return {"memory_percent": None, "memory_total_bytes": None}
    total, available = info.get("MemTotal"), info.get("MemAvailable")
    if not total or available is None:
        return {"memory_percent": None, "memory_total_bytes": total}
    return {"memory_percent": round((total - available) * 100 / total, 1), "memory_total_bytes": int(total)}


def _own_rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def parse_process_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("process_cpu_seconds_total ", "process_resident_memory_bytes ")):
            name, value = line.split()[:2]
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


@dataclass
class MetricsSampler:
    """Keeps the previous sample so CPU figures are rates over the last interval."""

    app: FastAPI
    host_prev: tuple[float, float] | None = None
    cpu_prev: dict[str, tuple[float, float]] = field(default_factory=dict)  # service -> (cpu s, wall s)

    def host(self) -> dict[str, Any]:
        now = _cpu_times()
        cpu = None
        if now is not None and self.host_prev is not None and now[1] > self.host_prev[1]:
            cpu = round((now[0] - self.host_prev[0]) * 100 / (now[1] - self.host_prev[1]), 1)
        if now is not None:
            self.host_prev = now
        try:
            load = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            load = None
        return {"cpu_percent": cpu, "cpu_count": os.cpu_count(), "load_average": load, **_memory()}

    def _rate(self, name: str, cpu_seconds: float | None) -> float | None:
        if cpu_seconds is None:
            return None
        wall = time.monotonic()
        previous = self.cpu_prev.get(name)
        self.cpu_prev[name] = (cpu_seconds, wall)
        if previous is None or wall <= previous[1]:
            return None
        return round((cpu_seconds - previous[0]) * 100 / (wall - previous[1]), 1)

    async def services(self) -> list[dict[str, Any]]:
        settings = self.app.state.settings
        transport = getattr(self.app.state, "metrics_transport", None)

        async def one(client: httpx.AsyncClient, name: str, setting: str) -> dict[str, Any]:
            base = getattr(settings, setting, None)
            if not base:
                return {"service": name, "up": False, "cpu_percent": None, "rss_bytes": None}
            try:
                r = await client.get(f"{str(base).rstrip('/')}/metrics")
                r.raise_for_status()
                figures = parse_process_metrics(r.text)
            except (httpx.HTTPError, OSError) as exc:
                logger.debug("live metrics: {} unreachable ({})", name, type(exc).__name__)
                return {"service": name, "up": False, "cpu_percent": None, "rss_bytes": None}
            rss = figures.get("process_resident_memory_bytes")
            return {
                "service": name,
                "up": True,
                "cpu_percent": self._rate(name, figures.get("process_cpu_seconds_total")),
                "rss_bytes": int(rss) if rss is not None else None,
            }

        async with httpx.AsyncClient(timeout=2.0, transport=transport) as client:
            others = await asyncio.gather(*(one(client, n, s) for n, s in SERVICES.items()))
        own = os.times()
        tenant = {
            "service": "tenant",
            "up": True,
            "cpu_percent": self._rate("tenant", own.user + own.system),
            "rss_bytes": _own_rss(),
        }
        return [tenant, *others]

    async def counts(self) -> dict[str, Any]:
        async with self.app.state.db.session() as s:
            rows = (await s.execute(COUNTS_SQL)).all()
        by_type: dict[str, int] = {}
        by_status: dict[str, int] = {}
        companies: dict[str, int] = {"active": 0, "inactive": 0}
        members: dict[str, int] = {"active": 0, "inactive": 0}
        for kind, k1, k2, n in rows:
            if kind == "integration":
                by_type[k1] = by_type.get(k1, 0) + int(n)
                by_status[k2] = by_status.get(k2, 0) + int(n)
            elif kind == "company":
                companies[k1] = int(n)
            else:
                members[k1] = int(n)
        total = sum(by_type.values())
        return {
            "integrations": {
                "total": total,
                "active": by_status.get("active", 0),
                "error": by_status.get("error", 0),
                "disabled": by_status.get("disabled", 0),
                "by_type": by_type,
                "by_status": by_status,
            },
            "companies": {**companies, "total": companies["active"] + companies["inactive"]},
            "tenant_users": {**members, "total": members["active"] + members["inactive"]},
        }

    async def frame(self) -> dict[str, Any]:
        counts = await self.counts()
        return {
            "type": "metrics",
            "at": datetime.now(UTC).isoformat(),
            **counts,
            "host": self.host(),
            "services": await self.services(),
        }
