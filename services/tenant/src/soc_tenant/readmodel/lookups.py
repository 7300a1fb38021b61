"""Filters through the lookup tables the read-model consumer writes beside incidents and tickets
(``soar_incident_term``, ``soar_incident_value``, ``itsm_ticket_value``; migration 0019).

Why: under row-level security PostgreSQL evaluates a condition of the API role's query before the
policy — and so as an index condition — only when its functions are leakproof. Text ``=`` is;
``ILIKE``, ``lower()``, jsonb containment are not, so a filter written with them reads every row of
the company's window. Here the non-leakproof part runs on a small table and the big one is reached
with ``=`` only:

- a list element (MITRE tactic or technique, rule): ``id IN (SELECT id FROM soar_incident_term
  WHERE <scope> AND field = … AND value = lower(…))`` — an index range of the term table, joined
  to the incidents by ``id``;
- a substring or case-insensitive name (configuration item, owner, phase, ITSM sync status;
  ticket requester and account names): the distinct values of the company's accounts are matched
  first (a few hundred rows), then ``column = ANY(ARRAY(<those values>))``, which the scope-led
  indexes answer.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from soc_tenant.readmodel import tables as t
from soc_tenant.readmodel.common import Scope, like_pattern


def incident_has_term(
    scope: Scope,
    field: str,
    value: str,
    start: Any = None,
    end: Any = None,
) -> sa.ColumnElement[bool]:
    """The incident's list ``field`` (mitre_tactic, mitre_technique, use_case) has an element equal
    to ``value``, case-insensitively; ``start``/``end`` bound the incident's ``created`` (the
    caller's window, repeated here so the term range is read only for it)."""
    term = t.soar_incident_term
    where = [
        scope.soar_filter(term),
        term.c.field == field,
        term.c.value == value.replace("\x00", "").lower(),
    ]
    if start is not None:
        where.append(term.c.created >= start)
    if end is not None:
        where.append(term.c.created <= end)
    return t.soar_incident.c.id.in_(sa.select(term.c.id).where(*where))


def _any_of(column: sa.ColumnElement[Any], values: sa.Select[Any]) -> sa.ColumnElement[bool]:
    # ``= ANY(ARRAY(subquery))``: the subquery runs once (an init plan) and the condition on the
    # big table is a plain text ``=`` against its result — leakproof, so an index condition.
    return column == sa.any_(sa.func.array(values.scalar_subquery()))


def _value_match(value_column: sa.ColumnElement[Any], text: str, *, contains: bool) -> sa.ColumnElement[bool]:
    text = text.replace("\x00", "")
    if contains:
        return value_column.ilike(like_pattern(text), escape="\\")
    return sa.func.lower(value_column) == text.lower()


def incident_value(
    scope: Scope, column: sa.ColumnElement[Any], field: str, text: str, *, contains: bool
) -> sa.ColumnElement[bool]:
    """``column`` holds one of the company's stored ``field`` values that contains ``text``
    (``contains``) or equals it ignoring case."""
    v = t.soar_incident_value
    values = sa.select(v.c.value).where(
        scope.soar_filter(v), v.c.field == field, _value_match(v.c.value, text, contains=contains)
    )
    return _any_of(column, values)


def ticket_value(
    scope: Scope, column: sa.ColumnElement[Any], field: str, text: str
) -> sa.ColumnElement[bool]:
    """``column`` holds one of the company's stored ``field`` values (created_by, account_name)
    that contains ``text``, case-insensitively."""
    v = t.itsm_ticket_value
    values = sa.select(v.c.value).where(
        scope.itsm_filter(v), v.c.field == field, _value_match(v.c.value, text.strip(), contains=True)
    )
    return _any_of(column, values)
