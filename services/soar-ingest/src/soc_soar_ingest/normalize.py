"""XSOAR JSON → the shared event models. Pure functions, tested against recorded-shape payloads.

Which ``CustomFields`` feed which :class:`SoarIncident` field is configuration, not code: the dict
:data:`DEFAULT_FIELD_SOURCES` names the fields the seed's deployment uses (compiled once into
:data:`DEFAULT_FIELD_MAP`), and an integration's ``settings["field_map"]`` overrides any entry.
A source is a ``CustomFields`` key (``incidenttta``), a top-level incident key (``incident:phase``)
or the values of the labels of one type (``label:offense_id``). Scalar fields take the first source
with a value; list fields collect from every source, in order, without duplicates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from soc_shared.events import IncidentSeverity, IncidentStatus, SoarAccount, SoarIncident, SoarNote

# Go's zero time: XSOAR writes it into every time that is not set (``closed`` of an open incident).
NULL_TIME = "0001-01-01T00:00:00Z"

STATUS: dict[int, IncidentStatus] = {
    0: IncidentStatus.PENDING,
    1: IncidentStatus.ACTIVE,
    2: IncidentStatus.CLOSED,
    3: IncidentStatus.ARCHIVED,
}

FieldKind = Literal["text", "priority", "time", "texts", "ips", "rules", "offense_ids"]

# SoarIncident fields that come from configurable sources, and how their values are read.
MAPPED_FIELDS: dict[str, FieldKind] = {
    "phase": "text",
    "priority": "priority",
    "tta_at": "time",
    "ttn_at": "time",
    "ttdn_at": "time",
    "initial_notification_at": "time",
    "rules": "rules",
    "offense_ids": "offense_ids",
    "log_source_types": "texts",
    "source_ips": "ips",
    "mitre_tactics": "texts",
    "mitre_techniques": "texts",
    "qradar_category": "text",
    "qradar_subcategory": "text",
    "low_level_categories": "texts",
    "configuration_item": "text",
    "itsm_sync_status": "text",
}

DEFAULT_FIELD_SOURCES: dict[str, tuple[str, ...]] = {
    "phase": ("incidentphase", "incident:phase"),
    "priority": ("incidentpriority",),
    "tta_at": ("incidenttta",),
    "ttn_at": ("incidentttn",),
    "ttdn_at": ("incidentttdn",),
    # The seed's deployment keeps a yes/no flag here; a deployment storing the time gets it mapped.
    "initial_notification_at": ("initialnotification",),
    "rules": ("listofrulesoffense",),
    # Offense ids: the QRadar fetch's own field, the labels it writes, and rule entries carrying ids.
    "offense_ids": ("offenseid", "offenseids", "label:offense_id", "listofrulesoffense"),
    "log_source_types": ("logsourcetype",),
    "source_ips": ("sourceips", "sourceipoffense"),
    "mitre_tactics": ("mitretactics", "mitretactic"),
    "mitre_techniques": ("mitretechnique", "mitretechniques"),
    "qradar_category": ("qradarcategory",),
    "qradar_subcategory": ("qradarsubcategory",),
    "low_level_categories": ("lowlevelcategoriesevents",),
    "configuration_item": ("configurationitem",),
    "itsm_sync_status": ("itsmsyncstatus",),
}

_CUSTOM, _TOP, _LABEL = 0, 1, 2


class FieldMap:
    """SoarIncident field → its sources, compiled once into a reading plan (it runs per incident)."""

    def __init__(self, sources: Mapping[str, tuple[str, ...]]) -> None:
        self.sources: dict[str, tuple[str, ...]] = {
            target: tuple(sources.get(target, ())) for target in MAPPED_FIELDS
        }
        self.plan: tuple[tuple[str, FieldKind, tuple[tuple[int, str], ...]], ...] = tuple(
            (target, kind, tuple(_compile_source(source) for source in self.sources[target]))
            for target, kind in MAPPED_FIELDS.items()
        )
        # CustomFields already carried by a typed field: not repeated in ``custom_fields``.
        self.mapped_custom: frozenset[str] = frozenset(
            key for _, _, sources in self.plan for where, key in sources if where == _CUSTOM
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldMap) and other.sources == self.sources

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.sources.items())))

    def __repr__(self) -> str:
        return f"FieldMap({self.sources!r})"


def _compile_source(source: str) -> tuple[int, str]:
    if source.startswith("incident:"):
        return _TOP, source.removeprefix("incident:")
    if source.startswith("label:"):
        return _LABEL, source.removeprefix("label:").lower()
    return _CUSTOM, source.removeprefix("CustomFields.")


DEFAULT_FIELD_MAP = FieldMap(DEFAULT_FIELD_SOURCES)


def build_field_map(overrides: Mapping[str, Any] | None) -> FieldMap:
    """The default mapping with an integration's overrides (``{"tta_at": "mytta"}``, a list of
    sources, or ``[]``/``null`` to switch a field off). Unknown fields are refused, not ignored:
    a typo must not silently leave a column empty."""
    if not overrides:
        return DEFAULT_FIELD_MAP
    if not isinstance(overrides, Mapping):
        raise ValueError("field_map must be an object of SoarIncident field → source(s)")
    mapping = dict(DEFAULT_FIELD_SOURCES)
    for target, sources in overrides.items():
        if target not in MAPPED_FIELDS:
            raise ValueError(f"field_map: {target!r} is not a mappable field; known: {sorted(MAPPED_FIELDS)}")
        if sources is None:
            mapping[target] = ()
            continue
        items = [sources] if isinstance(sources, str) else sources
        if not isinstance(items, list | tuple) or not all(isinstance(s, str) and s.strip() for s in items):
            raise ValueError(f"field_map: {target!r} needs a source name or a list of source names")
        mapping[target] = tuple(s.strip() for s in items)
    return FieldMap(mapping)


# ------------------------------------------------------------------------------------------ time

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS = 1_000_000_000


def parse_time_ns(text: str) -> int:
    """An RFC 3339 time (XSOAR writes up to nanoseconds, in UTC or with an offset) → epoch ns.

    Nanoseconds, not datetime: two changes a few hundred nanoseconds apart must not compare equal
    in an incremental cursor. ``ValueError`` when malformed.
    """
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=UTC
    )
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    ns = seconds * _NS + (int(fraction[:9].ljust(9, "0")) if fraction else 0)
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * _NS
    return ns


def format_time_ns(ns: int) -> str:
    """Epoch ns → RFC 3339 in UTC (nanoseconds only when there are any)."""
    seconds, rest = divmod(ns, _NS)
    base = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if rest == 0:
        return f"{base}Z"
    if rest % 1000 == 0:
        return f"{base}.{rest // 1000:06d}Z"
    return f"{base}.{rest:09d}Z"


def parse_time(value: Any) -> datetime | None:
    """An XSOAR time → aware datetime in UTC (µs); ``None`` for the unset forms (null, "", Go's
    zero time) and for text that is no time at all.

    Numbers are epoch milliseconds (some custom time fields are stored that way).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _EPOCH + timedelta(milliseconds=value) if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        # The C parser takes every form XSOAR writes (Z or offsets, up to nanoseconds) in well under
        # a microsecond; the regex below is the fallback for the odd one it refuses.
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return _EPOCH + timedelta(microseconds=parse_time_ns(text) // 1000)
        except ValueError:
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# ------------------------------------------------------------------------------------ enumerations


def status(value: Any, *, closed: datetime | None = None) -> IncidentStatus:
    """XSOAR's numeric status. A number the API does not document is read from the close time
    rather than refused: one odd record must not stop an integration's sync."""
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        number = -1
    if number in STATUS:
        return STATUS[number]
    return IncidentStatus.CLOSED if closed is not None else IncidentStatus.ACTIVE


def severity(value: Any) -> IncidentSeverity:
    """0 unknown, 0.5 informational, 1 low, 2 medium, 3 high, 4 critical (in-between values round down)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return IncidentSeverity.UNKNOWN
    if number >= 4:
        return IncidentSeverity.CRITICAL
    if number >= 3:
        return IncidentSeverity.HIGH
    if number >= 2:
        return IncidentSeverity.MEDIUM
    if number >= 1:
        return IncidentSeverity.LOW
    if number > 0:
        return IncidentSeverity.INFORMATIONAL
    return IncidentSeverity.UNKNOWN


# "P2", "p2", "2", and the labels the seed's deployment writes: "P1 Critical", "P2 High",
# "P3 Medium", "P4 Low" (also "P2 - High"); the number decides.
_PRIORITY = re.compile(r"^\s*p?\s*([1-4])(?:\s*[-:–]?\s*(?:critical|high|medium|low))?\s*$", re.IGNORECASE)


def priority(value: Any) -> Literal["P1", "P2", "P3", "P4"] | None:
    if isinstance(value, bool) or value is None:
        return None
    match = _PRIORITY.match(str(value))
    if match is None:
        return None
    return f"P{match.group(1)}"  # type: ignore[return-value]


# --------------------------------------------------------------------------------- field sources


def _source_value(raw: Mapping[str, Any], custom: Mapping[str, Any], where: int, key: str) -> Any:
    if where == _CUSTOM:
        return custom.get(key)
    if where == _TOP:
        return raw.get(key)
    return [
        label.get("value")
        for label in raw.get("labels") or ()
        if isinstance(label, Mapping) and str(label.get("type", "")).lower() == key
    ]


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        if not any(isinstance(item, list | tuple) for item in value):  # the usual, flat case
            return [item for item in value if item is not None and item != ""]
        out: list[Any] = []
        for item in value:
            out.extend(_flatten(item))
        return out
    return [] if value is None or value == "" else [value]


def _is_scalar(item: Any) -> bool:
    return isinstance(item, str | int | float) and not isinstance(item, bool)


def _text(value: Any) -> str | None:
    if isinstance(value, str):  # the common case, first
        return value.strip() or None
    for item in _flatten(value):
        if _is_scalar(item) and str(item).strip():
            return str(item).strip()
    return None


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        return [text] if text else []
    if isinstance(value, list) and all(type(item) is str for item in value):  # the usual multi-select
        return [text for text in (item.strip() for item in value) if text]
    return [str(item).strip() for item in _flatten(value) if _is_scalar(item) and str(item).strip()]


_SEPARATORS = re.compile(r"[,;\s]+")


def _ips(value: Any) -> list[str]:
    return [part for text in _texts(value) for part in _SEPARATORS.split(text) if part]


_OFFENSE_IN_TEXT = re.compile(r"\boffense\s*(?:id)?\s*[#:]?\s*(\d+)", re.IGNORECASE)
_ID_LIST = re.compile(r"\d+(?:\s*,\s*\d+)*")
_RULE_NAME_KEYS = ("name", "rule", "rulename", "rule_name", "description")
# Not "id": a rule entry's own id is a QRadar rule id, not an offense id.
_OFFENSE_ID_KEYS = ("offenseid", "offense_id", "offenseId", "offense")


def _offense_ids(value: Any) -> list[int]:
    found: list[int] = []
    for item in _flatten(value):
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            found.append(item)
        elif isinstance(item, float) and item.is_integer():
            found.append(int(item))
        elif isinstance(item, str):
            text = item.strip()
            if _ID_LIST.fullmatch(text):
                found.extend(int(part) for part in text.split(","))
            elif "ffense" in text or "FFENSE" in text:  # cheap test before the regex
                found.extend(int(m) for m in _OFFENSE_IN_TEXT.findall(text))
        elif isinstance(item, Mapping):
            for key in _OFFENSE_ID_KEYS:
                if key in item:
                    found.extend(_offense_ids(item[key]))
                    break
    return [n for n in found if n >= 0]


def _rules(value: Any) -> list[str]:
    names: list[str] = []
    for item in _flatten(value):
        if isinstance(item, Mapping):
            name = next(
                (item[k] for k in _RULE_NAME_KEYS if isinstance(item.get(k), str) and item[k].strip()), None
            )
            if name:
                names.append(name.strip())
        elif isinstance(item, str) and item.strip():
            names.append(item.strip())
    return names


_LIST_READERS: dict[str, Callable[[Any], list[Any]]] = {
    "texts": _texts,
    "ips": _ips,
    "rules": _rules,
    "offense_ids": _offense_ids,
}


def mapped_fields(raw: Mapping[str, Any], field_map: FieldMap = DEFAULT_FIELD_MAP) -> dict[str, Any]:
    """The configurable SoarIncident fields of one incident."""
    custom = raw.get("CustomFields") or raw.get("customFields") or {}
    if not isinstance(custom, Mapping):
        custom = {}
    out: dict[str, Any] = {}
    for target, kind, sources in field_map.plan:
        reader = _LIST_READERS.get(kind)
        if reader is not None:
            merged: list[Any] = []
            for where, key in sources:
                candidate = custom.get(key) if where == _CUSTOM else _source_value(raw, custom, where, key)
                if candidate is not None and candidate != "":
                    merged.extend(reader(candidate))
            out[target] = (
                list(dict.fromkeys(merged)) if len(merged) > 1 else merged
            )  # in order, no duplicates
            continue
        value: Any = None
        for where, key in sources:
            candidate = custom.get(key) if where == _CUSTOM else _source_value(raw, custom, where, key)
            if candidate is None or candidate == "":
                continue
            if kind == "time":
                value = parse_time(candidate if not isinstance(candidate, list) else _text(candidate))
            elif kind == "priority":
                value = priority(_text(candidate))
            else:
                value = _text(candidate)
            if value is not None:
                break
        out[target] = value
    return out


# ------------------------------------------------------------------------------------------ models


def soar_account(raw_id: str, name: str, display_name: str | None) -> SoarAccount:
    return SoarAccount(account_id=raw_id, name=name, display_name=display_name)


def account_name(value: Any) -> str | None:
    """The tenant an incident belongs to, as ``/acc_<name>/`` addresses it (the master may write
    ``acc_<name>``, the tenant itself ``<name>``)."""
    text = str(value or "").strip()
    return text.removeprefix("acc_") or None


def incident_version(raw: Mapping[str, Any]) -> int:
    """XSOAR's optimistic-locking ``version``, or the modification time in ms when it is missing."""
    version = raw.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        return version
    modified = parse_time(raw.get("modified"))
    if modified is None:
        raise ValueError(f"incident {raw.get('id')!r} has neither a version nor a modification time")
    return _millis(modified)


def _optional(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def incident(
    raw: Mapping[str, Any], field_map: FieldMap = DEFAULT_FIELD_MAP, *, account: str | None = None
) -> SoarIncident:
    """One XSOAR incident → SoarIncident. ``account`` is the tenant it was read from (used when the
    record itself does not say). ``custom_fields`` keeps the CustomFields no typed field took
    (e.g. the ``ttacalculation`` SLA timer), so nothing the incident carried is lost."""
    incident_id = _optional(raw.get("id"))
    if incident_id is None:
        raise ValueError("an XSOAR incident without an id")
    modified = parse_time(raw.get("modified"))
    if modified is None:
        raise ValueError(f"incident {incident_id}: no modification time")
    created = parse_time(raw.get("created")) or modified
    closed = parse_time(raw.get("closed"))
    custom = raw.get("CustomFields") or raw.get("customFields") or {}
    fields = mapped_fields(raw, field_map)
    if fields["phase"] is None:
        fields["phase"] = _optional(raw.get("phase"))
    sla = raw.get("sla")
    return SoarIncident(
        incident_id=incident_id,
        account=account_name(raw.get("account")) or account_name(account),
        name=_optional(raw.get("name")) or f"Incident {incident_id}",
        type=_optional(raw.get("type")),
        status=status(raw.get("status"), closed=closed),
        severity=severity(raw.get("severity")),
        owner=_optional(raw.get("owner")),
        playbook_id=_optional(raw.get("playbookId")),
        investigation_id=_optional(raw.get("investigationId")),
        created=created,
        modified=modified,
        occurred=parse_time(raw.get("occurred")),
        closed=closed,
        close_reason=_optional(raw.get("closeReason")),
        close_notes=_optional(raw.get("closeNotes")),
        closing_user_id=_optional(raw.get("closingUserId")),
        sla=int(sla) if isinstance(sla, int | float) and not isinstance(sla, bool) else None,
        custom_fields=(
            {k: v for k, v in custom.items() if k not in field_map.mapped_custom}
            if isinstance(custom, Mapping)
            else {}
        ),
        version=incident_version(raw),
        **fields,
    )


def note(entry: Mapping[str, Any], *, incident_id: str, account: str | None) -> SoarNote | None:
    """A war-room entry → SoarNote, or ``None`` when it is not a note (or was deleted)."""
    if not entry.get("note") or entry.get("deleted"):
        return None
    note_id = _optional(entry.get("id"))
    created = parse_time(entry.get("created"))
    if note_id is None or created is None:
        raise ValueError(f"a note of incident {incident_id} without an id or creation time")
    contents = entry.get("contents")
    content = contents if isinstance(contents, str) else json.dumps(contents, sort_keys=True, default=str)
    return SoarNote(
        note_id=note_id,
        incident_id=incident_id,
        account=account_name(account),
        author=_optional(entry.get("user")),
        created=created,
        content=content,
        category=_optional(entry.get("category")),
    )


def entry_version(entry: Mapping[str, Any]) -> int:
    version = entry.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        return version
    modified = parse_time(entry.get("modified")) or parse_time(entry.get("created"))
    return _millis(modified) if modified else 0
