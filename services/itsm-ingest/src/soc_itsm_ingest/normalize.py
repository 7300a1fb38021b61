"""ServiceDesk Plus JSON → the shared event models, and an incident → a new request's fields.
Pure functions, tested against recorded payloads.

SDP times are objects ``{"value": "<epoch ms as a string>", "display_value": "..."}``; references
(status, priority, account, created_by) are objects with a ``name``. A list answer carries only the
fields the list view shows unless ``fields_required`` asked for more, so every field but ``id`` and
``subject`` may be missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from soc_shared.events import ItsmAccount, ItsmTicket, SoarIncident
from soc_shared.events import ticket_reference as ticket_reference

from soc_itsm_ingest.client import time_ms

DEFAULT_INCIDENT_ID_FIELD = "udf_fields.udf_sline_4506"
# XSOAR incident priority → SDP priority name (the SOC's convention; configurable per integration).
DEFAULT_PRIORITY_MAP = {"P1": "Urgent", "P2": "High", "P3": "Medium", "P4": "Low"}


MAX_SUBJECT = 250
_REFERENCE = re.compile(r"\[(SOC-[A-Z2-7]{16})\]", re.IGNORECASE)


def tagged_subject(subject: str, reference: str) -> str:
    """``<subject> [SOC-…]`` within SDP's subject length; the tag is what a search can always
    filter on (``subject contains``), whatever fields the customer's SDP lets us use."""
    tag = f" [{reference}]"
    return subject.strip()[: MAX_SUBJECT - len(tag)] + tag


def references_in(text: Any) -> set[str]:
    """The SOC references tagged in a subject (upper case)."""
    return {m.upper() for m in _REFERENCE.findall(str(text or ""))}


def ms_to_datetime(value: int | None) -> datetime | None:
    if value is None or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def field_value(raw: Mapping[str, Any], dotted: str) -> Any:
    """A (dotted) field of a request, e.g. ``udf_fields.udf_sline_4506``; None when absent."""
    value: Any = raw
    for part in dotted.split("."):
        if not isinstance(value, dict):  # JSON objects are dicts; an ABC check costs more
            return None
        value = value.get(part)
    return value


def nested(dotted: str, value: Any) -> dict[str, Any]:
    """``("udf_fields.udf_sline_4506", "42")`` → ``{"udf_fields": {"udf_sline_4506": "42"}}``."""
    head, _, rest = dotted.partition(".")
    return {head: nested(rest, value) if rest else value}


def _name(ref: Any) -> str | None:
    if isinstance(ref, dict):
        ref = ref.get("name")
    return None if ref is None or ref == "" else str(ref)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def account(raw: Mapping[str, Any]) -> ItsmAccount:
    return ItsmAccount(account_id=str(raw["id"]), name=str(raw.get("name") or f"Account {raw['id']}"))


def ticket_version(raw: Mapping[str, Any]) -> int:
    """``last_updated_time`` in epoch ms; a record listed without it (the default list view has no
    such column) falls back to its creation time, so it still gets a stable version."""
    version = time_ms(raw.get("last_updated_time")) or time_ms(raw.get("created_time"))
    if version is None:
        raise ValueError(f"request {raw.get('id')} has neither last_updated_time nor created_time")
    return version


def request_url(base_url: str | None, request_id: Any) -> str | None:
    """The request in SDP's web UI: ``<base>/ui/requests/<id>/details`` in the cloud edition (base
    ``https://…/app/<portal>``), ``<base>/WorkOrder.do?woMode=viewWO&woID=<id>`` on premises."""
    if not base_url or request_id is None:
        return None
    base = base_url.rstrip("/").removesuffix("/api/v3")
    if re.search(r"/app/[^/]+$", base):
        return f"{base}/ui/requests/{request_id}/details"
    return f"{base}/WorkOrder.do?woMode=viewWO&woID={request_id}"


def _resolution(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return _opt_str(value)


def ticket(
    raw: Mapping[str, Any],
    *,
    incident_id_field: str = DEFAULT_INCIDENT_ID_FIELD,
    base_url: str | None = None,
) -> ItsmTicket:
    """A request version (the seed's DuITSMFinalTickets row); ``version`` = last_updated_time (ms).
    ``base_url`` (the integration's) gives the ticket its link into SDP's web UI."""
    version = ticket_version(raw)
    references = sorted(references_in(raw.get("subject")))
    account_ref = raw.get("account")
    created_by = raw.get("created_by") or raw.get("requester")
    return ItsmTicket(
        ticket_id=str(raw["id"]),
        account_id=_opt_str(account_ref.get("id")) if isinstance(account_ref, dict) else None,
        account_name=_name(account_ref),
        subject=str(raw.get("subject") or "").strip() or f"Request {raw.get('display_id') or raw['id']}",
        short_description=_opt_str(raw.get("short_description")),
        status=_name(raw.get("status")),
        priority=_name(raw.get("priority")),
        is_overdue=bool(raw.get("is_overdue") or False),
        created_time=ms_to_datetime(time_ms(raw.get("created_time"))),
        last_updated_time=ms_to_datetime(version) or datetime.fromtimestamp(0, tz=UTC),
        created_by_name=_name(created_by),
        soar_incident_id=_opt_str(field_value(raw, incident_id_field)),
        version=version,
        technician_name=_name(raw.get("technician")),
        resolution=_resolution(raw.get("resolution")),
        request_url=request_url(base_url, raw.get("id")),
        reference=references[0] if references else None,
    )


def ticket_subject(incident: SoarIncident) -> str:
    return f"Security incident #{incident.incident_id}: {incident.name}"[:250]


def ticket_description(incident: SoarIncident) -> str:
    """What the service desk needs to pick the incident up without opening XSOAR."""
    lines = [
        f"Raised by the SOC from Cortex XSOAR incident {incident.incident_id} "
        f"({incident.priority or 'no priority'}, severity {incident.severity.value}).",
        f"Name: {incident.name}",
    ]
    if incident.account:
        lines.append(f"XSOAR account: {incident.account}")
    if incident.rules:
        lines.append("Rules: " + "; ".join(incident.rules[:10]))
    if incident.source_ips:
        lines.append("Source IPs: " + ", ".join(incident.source_ips[:20]))
    if incident.configuration_item:
        lines.append(f"Affected asset: {incident.configuration_item}")
    if incident.mitre_tactics or incident.mitre_techniques:
        lines.append("MITRE ATT&CK: " + ", ".join([*incident.mitre_tactics, *incident.mitre_techniques][:10]))
    if incident.offense_ids:
        lines.append("QRadar offenses: " + ", ".join(str(i) for i in incident.offense_ids[:20]))
    lines.append(f"Created: {incident.created.isoformat()}")
    return "\n".join(lines)


def request_fields(
    *,
    subject: str,
    description: str,
    incident_id: str,
    account_id: str,
    priority: str | None,
    incident_id_field: str = DEFAULT_INCIDENT_ID_FIELD,
    priority_map: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    reference: str | None = None,
    reference_field: str | None = None,
) -> dict[str, Any]:
    """The ``request`` object of ``POST requests`` for one incident.

    ``priority`` is a SOAR priority (P1–P4, mapped) or already an SDP priority name. ``defaults``
    (integration setting ``ticket_defaults``, e.g. ``{"group": {"name": "SOC L1"}, "request_type":
    {"name": "Incident"}}``) is merged first, so the incident's own fields always win.
    """
    fields: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if k not in ("account", "udf_fields")}
    fields.update(subject=subject, description=description, account={"id": account_id})
    mapping = {**DEFAULT_PRIORITY_MAP, **(priority_map or {})}
    if priority:
        fields["priority"] = {"name": mapping.get(priority, priority)}
    link = nested(incident_id_field, incident_id)
    head = next(iter(link))
    if isinstance(link[head], dict) and isinstance((defaults or {}).get(head), dict):
        link[head] = {**defaults[head], **link[head]}  # type: ignore[index]
    fields.update(link)
    if reference:
        fields["subject"] = tagged_subject(subject, reference)
        if reference_field:
            ref = nested(reference_field, reference)
            head = next(iter(ref))
            if isinstance(ref[head], dict) and isinstance(fields.get(head), dict):
                ref[head] = {**fields[head], **ref[head]}
            fields.update(ref)
    return fields
