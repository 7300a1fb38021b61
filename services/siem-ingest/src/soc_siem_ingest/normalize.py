"""QRadar JSON → the shared event models. Pure functions, tested against recorded payloads."""

from __future__ import annotations

from typing import Any

from soc_shared.events import SiemDomain


def domain(raw: dict[str, Any]) -> SiemDomain:
    return SiemDomain(
        domain_id=int(raw["id"]),
        name=str(raw.get("name") or f"Domain {raw['id']}"),
        description=str(raw.get("description") or ""),
        deleted=bool(raw.get("deleted", False)),
        tenant_id=raw.get("tenant_id"),
        event_collector_ids=[int(x) for x in raw.get("event_collector_ids") or []],
        log_source_ids=[int(x) for x in raw.get("log_source_ids") or []],
    )
