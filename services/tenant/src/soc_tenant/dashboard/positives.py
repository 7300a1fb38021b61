"""True and false positives: which incidents the original product counted.

The rule (the original's, the default; configurable per deployment):

* **true positive** — the incident's ITSM sync status is ``Ready`` (case-insensitive) and it has an
  owner, a TTA, a TTN and a TTDN time and a priority of its own;
* **false positive** — its ITSM sync status is ``Done`` (case-insensitive);
* anything else (untriaged, still being worked, a status the rule does not name) is neither and
  is not counted.

Only true positives count in the SLA compliance figures. Dashboards show both counts; lists take
``false_positives`` (``true``: only false positives, ``false``: only true positives).

Settings (``SOC_TENANT_`` prefix): ``TRUE_POSITIVE_STATUS`` (``Ready``), ``FALSE_POSITIVE_STATUS``
(``Done``), ``TRUE_POSITIVE_REQUIRES`` (``owner,tta,ttn,ttdn,priority``: any subset).

The rule is one SQL expression per kind over ``soar_incident`` columns, so lists, aggregates and
the pure function the tests check agree by construction (:func:`PositiveRule.classify` is the same
rule in Python).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

REQUIREMENTS = ("owner", "tta", "ttn", "ttdn", "priority")
TRUE_POSITIVE, FALSE_POSITIVE, NOT_COUNTED = "true_positive", "false_positive", "not_counted"


@dataclass(frozen=True)
class PositiveRule:
    true_status: str = "Ready"
    false_status: str = "Done"
    requires: tuple[str, ...] = REQUIREMENTS

    @classmethod
    def from_settings(cls, settings: Any) -> PositiveRule:
        requires = tuple(
            x.strip().lower()
            for x in str(getattr(settings, "true_positive_requires", ",".join(REQUIREMENTS))).split(",")
            if x.strip()
        )
        unknown = sorted(set(requires) - set(REQUIREMENTS))
        if unknown:
            raise ValueError(f"true_positive_requires: unknown {unknown}; known: {list(REQUIREMENTS)}")
        true_status = str(getattr(settings, "true_positive_status", cls.true_status)).strip()
        false_status = str(getattr(settings, "false_positive_status", cls.false_status)).strip()
        if not true_status or not false_status or true_status.lower() == false_status.lower():
            raise ValueError("true_positive_status and false_positive_status must be two different statuses")
        return cls(true_status, false_status, requires)

    # ------------------------------------------------------------------------------------ python
    def classify(
        self,
        *,
        itsm_sync_status: str | None,
        owner: str | None,
        tta_at: datetime | None,
        ttn_at: datetime | None,
        ttdn_at: datetime | None,
        priority: str | None,
    ) -> str:
        status = (itsm_sync_status or "").lower()
        if status == self.false_status.lower():
            return FALSE_POSITIVE
        if status != self.true_status.lower():
            return NOT_COUNTED
        present = {
            "owner": bool(owner and owner.strip()),
            "tta": tta_at is not None,
            "ttn": ttn_at is not None,
            "ttdn": ttdn_at is not None,
            "priority": bool(priority),
        }
        return TRUE_POSITIVE if all(present[r] for r in self.requires) else NOT_COUNTED

    # --------------------------------------------------------------------------------------- sql
    def true_sql(self, table: Any) -> sa.ColumnElement[bool]:
        c = table.c
        clauses: list[sa.ColumnElement[bool]] = [
            sa.func.lower(c.itsm_sync_status) == self.true_status.lower()
        ]
        present = {
            "owner": sa.func.coalesce(sa.func.btrim(c.owner), "") != "",
            "tta": c.tta_at.is_not(None),
            "ttn": c.ttn_at.is_not(None),
            "ttdn": c.ttdn_at.is_not(None),
            "priority": sa.func.coalesce(c.vendor_priority, "") != "",
        }
        clauses += [present[r] for r in self.requires]
        return sa.and_(*clauses)

    def false_sql(self, table: Any) -> sa.ColumnElement[bool]:
        return sa.func.lower(table.c.itsm_sync_status) == self.false_status.lower()

    def describe(self) -> dict[str, Any]:
        return {
            "true_positive": {"itsm_sync_status": self.true_status, "requires": list(self.requires)},
            "false_positive": {"itsm_sync_status": self.false_status},
        }


RULE = PositiveRule()


def configure(settings: Any) -> PositiveRule:
    """Set the deployment's rule from the service settings (at start)."""
    global RULE
    RULE = PositiveRule.from_settings(settings)
    return RULE


def rule() -> PositiveRule:
    return RULE


def positives_filter(table: Any, false_positives: bool | None) -> sa.ColumnElement[bool] | None:
    """The lists' ``false_positives``: ``True`` only false positives, ``False`` only true positives,
    ``None`` every incident."""
    if false_positives is None:
        return None
    return RULE.false_sql(table) if false_positives else RULE.true_sql(table)
