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
    i = t.soar_incident
    # The whole key of the incidents' scope index (integration, account, created, id), not the id
    # alone: each term finds its incident with an index-only probe of that index (no heap visit) in
    # the one monthly partition its created names, and the term index's order is the list's
    # newest-first order. (Joined by id alone, a probe visits every partition's id index; measured
    # at 1M incidents on a loaded machine, neither form made an all-time term with 111k matches
    # cheap: its exact count dominates.)
    return sa.tuple_(i.c.integration_id, i.c.account, i.c.created, i.c.id).in_(
        sa.select(term.c.integration_id, term.c.account, term.c.created, term.c.id).where(*where)
    )


# A list page resolves the values first and sends them as literals (:func:`resolve_values`): with
# ``= ANY(<subquery>)`` the planner cannot know how many records match and may walk the newest-first
# index through thousands of rows for a page of 50, while with the values themselves it estimates
# from the column's statistics. Above this many values the subquery form is kept.
MAX_LITERAL_VALUES = 1000


async def resolve_values(session: Any, condition: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """``condition`` (from :func:`incident_value` / :func:`ticket_value`) with its lookup run now:
    ``column IN (<the values>)``, or ``false`` when none matches."""
    lookup = getattr(condition, "soc_lookup", None)
    if lookup is None:
        return condition
    column, values = lookup
    found = list((await session.execute(values.limit(MAX_LITERAL_VALUES + 1))).scalars())
    if len(found) > MAX_LITERAL_VALUES:
        return condition
    if not found:
        return sa.false()
    return column.in_(found)


def _any_of(column: sa.ColumnElement[Any], values: sa.Select[Any]) -> sa.ColumnElement[bool]:
    # ``= ANY(ARRAY(subquery))``: the subquery runs once (an init plan) and the condition on the
    # big table is a plain text ``=`` against its result — leakproof, so an index condition.
    condition = column == sa.any_(sa.func.array(values.scalar_subquery()))
    condition.soc_lookup = (column, values)  # type: ignore[attr-defined]  # for resolve_values
    return condition


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
