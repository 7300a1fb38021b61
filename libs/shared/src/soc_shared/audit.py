"""What every service's audit trail shares: the changed fields of a change (before and after), with
anything secret-looking masked, and the trace id of the request that made it.

The tenant service keeps the audit store; the other services publish their records on the bus
(``audit.recorded``, written to their outbox in the change's own transaction) and the tenant service
files them there.
"""

from __future__ import annotations

import json
import re
from typing import Any

from opentelemetry import trace

MASK = "***"
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|api_?key|private|credential|access_?key|auth|totp|recovery|otp_?seed",
    re.I,
)
# Facts about a secret that are not the secret (when it was rotated, which version, which kind, how
# many) or settings that merely name a mechanism.
_NOT_SECRET_SUFFIXES = ("_at", "_version", "_kind", "_count", "_source", "_changed", "_enabled")
# Bookkeeping that changes with every write and says nothing about what was changed.
_NOISE = frozenset({"updated_at", "modified_at", "status_changed_at", "health_since"})


def mask(value: Any, key: str = "") -> Any:
    """``value`` with every value under a secret-looking key replaced by ``***`` (recursively)."""
    if (
        key
        and _SECRET_KEY.search(key)
        and not key.endswith(_NOT_SECRET_SUFFIXES)
        and not isinstance(value, (bool, int, float))
        and value not in (None, "", [], {})
    ):
        return MASK
    if isinstance(value, dict):
        return {str(k): mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, default=str))


def changes(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The fields that differ (both sides), masked; a create keeps the whole ``after``, a delete the
    whole ``before``."""
    b, a = jsonable(before), jsonable(after)
    if b is not None and a is not None:
        keys = [k for k in {**b, **a} if k not in _NOISE and b.get(k) != a.get(k)]
        b = {k: b.get(k) for k in keys}
        a = {k: a.get(k) for k in keys}
    else:
        b = None if b is None else {k: v for k, v in b.items() if k not in _NOISE}
        a = None if a is None else {k: v for k, v in a.items() if k not in _NOISE}
    return mask(b), mask(a)


def unchanged(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    """Both sides given and nothing differs: nothing changed, nothing to record."""
    b, a = changes(before, after)
    return before is not None and after is not None and not b and not a


def trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


__all__ = ["MASK", "changes", "jsonable", "mask", "trace_id", "unchanged"]
