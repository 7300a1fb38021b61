"""Cyware CSAP JSON → the shared event models. Pure functions, tested against the recorded-style
fixtures in ``tests/fixtures``.

Conventions:

* Times are unix seconds in CSAP (``published_time``); a value above 10^11 is taken as
  milliseconds, a digit string or an ISO-8601 string is accepted too.
* **Alert version** = the alert's modification time in seconds when the payload carries one
  (``modified_time`` / ``updated_time`` / ``last_updated_time``), else its ``published_time``: the
  documented CSAP API exposes no modification time, and an alert's publication is the only dated
  event it has. The event id additionally hashes the normalised content (see
  :func:`alert_digest`), so an alert edited without a new timestamp still yields a new, distinct
  event while re-reading an unchanged alert yields the same event id again.
* References (groups, recipient groups, tags, category) become ``{id, name}``; CSAP sends objects
  (``{group_id, group_name}``, ``{tag_id, tag_name}``, ``{category_id, category_name}``) and, in
  some versions, bare ids — both are read.
* A category's threat-indicator / additional / required fields are listed by ``field_name`` (the
  stable machine name the custom-field events carry too), falling back to the field id.
* Custom fields: ``list_additional_fields`` groups them under a ``key``; key ``"system"`` →
  ``is_system=True``, any other key → a customer-defined field.
* ``company_id`` is the owning company of the integration (a threat-intel integration belongs to
  one company) and is set on every payload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from soc_shared.events import TiAlert, TiCategory, TiCustomField, TiGroup, TiRef, TiTag

JSON = Mapping[str, Any]
_MODIFIED_KEYS = ("modified_time", "updated_time", "last_updated_time", "modified")


def epoch_seconds(value: Any) -> int | None:
    """Unix seconds from CSAP's time values; None for missing, 0 or unreadable values."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return int(parsed.timestamp())
    if not isinstance(value, int | float):
        return None
    seconds = int(value / 1000) if value > 10**11 else int(value)
    return seconds if seconds > 0 else None


def to_datetime(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y")
    return bool(value)


def ref(raw: Any, id_key: str, name_key: str) -> TiRef | None:
    """``{<id_key>, <name_key>}`` (or ``{id, name}``, or a bare id) → TiRef; None if there is no id."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, Mapping):
        ident = raw.get(id_key, raw.get("id"))
        if ident is None or ident == "":
            return None
        # model_construct: both fields are already the declared types (str / str | None), and an
        # alert carries a handful of these, validated again as part of the TiAlert.
        return TiRef.model_construct(id=str(ident), name=_text(raw.get(name_key, raw.get("name"))))
    return TiRef.model_construct(id=str(raw), name=None)


def refs(raw: Any, id_key: str, name_key: str) -> list[TiRef]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list | tuple) else [raw]
    out: list[TiRef] = []
    seen: set[str] = set()
    for item in items:
        r = ref(item, id_key, name_key)
        if r is not None and r.id not in seen:  # a group listed twice is one membership
            seen.add(r.id)
            out.append(r)
    return out


# --------------------------------------------------------------------------------------- alerts
def alert_version(raw: JSON, summary: JSON | None = None) -> int:
    """Modification time if the payload has one, else the publication time (seconds); 0 if neither."""
    times = [epoch_seconds(source.get(key)) for source in (raw, summary or {}) for key in _MODIFIED_KEYS]
    times += [epoch_seconds(raw.get("published_time")), epoch_seconds((summary or {}).get("published_time"))]
    return max((t for t in times if t is not None), default=0)


def alert(detail: JSON, summary: JSON | None = None, *, company_id: str | None) -> TiAlert:
    """An alert from its detail (``get_alert_detail``), the list summary filling what it lacks."""
    s = summary or {}

    def pick(key: str) -> Any:
        value = detail.get(key)
        return s.get(key) if value is None else value

    short_id = _text(pick("short_id"))
    if short_id is None:
        raise ValueError("alert without short_id")
    published = epoch_seconds(pick("published_time"))
    return TiAlert(
        short_id=short_id,
        title=_text(pick("title")) or "",
        status=_text(pick("status")),
        tlp=(_text(pick("tlp")) or "").upper() or None,
        published_time=to_datetime(published),
        content=detail.get("content")
        if isinstance(detail.get("content"), str)
        else _text(detail.get("content")),
        push_required=_bool(detail.get("push_required")),
        push_email_notification=_bool(detail.get("push_email_notification")),
        tracking_id=_text(detail.get("tracking_id")),
        card_image=_text(detail.get("card_image")),
        card_info=_text(detail.get("card_info")),
        event=_text(detail.get("event")),
        intel_id=_text(detail.get("intel_id")),
        rfi_id=_text(detail.get("rfi_id")),
        groups=refs(detail.get("card_group"), "group_id", "group_name"),
        recipient_groups=refs(detail.get("recipient_groups"), "group_id", "group_name"),
        tags=refs(detail.get("card_tag"), "tag_id", "tag_name"),
        category=ref(pick("card_category"), "category_id", "category_name"),
        company_id=company_id,
        version=alert_version(detail, summary),
    )


def alert_digest(payload: TiAlert) -> str:
    """A short fingerprint of the normalised alert (what changes when anything in it changes)."""
    return hashlib.sha256(payload.model_dump_json().encode()).hexdigest()[:16]


def alert_vendor_version(payload: TiAlert) -> str:
    """What makes the event id: the version and the content fingerprint."""
    return f"{payload.version}:{alert_digest(payload)}"


# ------------------------------------------------------------------------------- reference data
def tag(raw: JSON, *, company_id: str | None) -> TiTag:
    name = _text(raw.get("tag_name")) or _text(raw.get("name"))
    tag_id = _text(raw.get("tag_id")) or _text(raw.get("id"))
    if tag_id is None or name is None:
        raise ValueError("tag without tag_id or tag_name")
    active = _bool(raw.get("is_active"))
    return TiTag(
        tag_id=tag_id,
        tag_name=name,
        tag_slug=_text(raw.get("tag_slug")),
        is_active=True if active is None else active,
        company_id=company_id,
    )


def group(raw: JSON, *, company_id: str | None) -> TiGroup:
    group_id = _text(raw.get("group_id")) or _text(raw.get("id"))
    name = _text(raw.get("group_name")) or _text(raw.get("name"))
    if group_id is None or name is None:
        raise ValueError("recipient group without group_id or group_name")
    return TiGroup(
        group_id=group_id,
        group_name=name,
        group_tlp=(_text(raw.get("group_tlp")) or "").upper() or None,
        group_type=_text(raw.get("group_type")),
        allowed_for_intel_submission=bool(_bool(raw.get("allowed_for_intel_submission"))),
        allowed_for_rfi_submission=bool(_bool(raw.get("allowed_for_rfi_submission"))),
        company_id=company_id,
    )


def is_system_key(key: Any) -> bool:
    """``list_additional_fields`` groups CSAP's own fields under key ``"system"``."""
    return str(key or "").strip().lower() == "system"


def custom_fields(raw_groups: Iterable[JSON], *, company_id: str | None) -> list[TiCustomField]:
    """``[{key, values: [field, ...]}]`` → one TiCustomField per field; key "system" → is_system."""
    out: list[TiCustomField] = []
    for raw_group in raw_groups:
        is_system = is_system_key(raw_group.get("key"))
        for raw in raw_group.get("values") or ():
            out.append(custom_field(raw, is_system=is_system, company_id=company_id))
    return out


def custom_field(raw: JSON, *, is_system: bool, company_id: str | None) -> TiCustomField:
    field_id = _text(raw.get("field_id")) or _text(raw.get("id"))
    name = _text(raw.get("field_name")) or _text(raw.get("name"))
    if field_id is None or name is None:
        raise ValueError("custom field without field_id or field_name")
    return TiCustomField(
        field_id=field_id,
        field_name=name,
        field_label=_text(raw.get("field_label")),
        field_type=_text(raw.get("field_type")),
        field_description=_text(raw.get("field_description")),
        is_system=is_system,
        company_id=company_id,
    )


def _field_names(raw: Any) -> list[str]:
    names: list[str] = []
    for item in raw or ():
        if isinstance(item, Mapping):
            name = _text(item.get("field_name")) or _text(item.get("field_id")) or _text(item.get("id"))
        else:
            name = _text(item)
        if name is not None and name not in names:
            names.append(name)
    return names


def category(raw: JSON, *, company_id: str | None) -> TiCategory:
    category_id = _text(raw.get("category_id")) or _text(raw.get("id"))
    name = _text(raw.get("category_name")) or _text(raw.get("name"))
    if category_id is None or name is None:
        raise ValueError("category without category_id or category_name")
    return TiCategory(
        category_id=category_id,
        category_name=name,
        threat_indicator_fields=_field_names(raw.get("threat_indicator_fields")),
        additional_fields=_field_names(raw.get("additional_fields")),
        required_fields=_field_names(raw.get("required_fields")),
        company_id=company_id,
    )
