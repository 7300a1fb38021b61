"""What every read-model view shares: the caller's scope (company + the vendor keys mapped to it),
pagination, sorting, time ranges, text search, CSV/XLSX rendering.

Scoping is done twice on purpose: row-level security on the app role (``0003_read_model``) and
an explicit filter built here from the company's mappings, so a forgotten filter cannot leak and
a present one lets PostgreSQL use the ``(integration_id, vendor tenant, time)`` indexes.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import IntEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, Query, Request
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from soc_shared.api import CSV, checking_responses, file_responses
from soc_shared.errors import ApiError
from soc_shared.security import CurrentPrincipal, Principal, company_scope, require_permission
from sqlalchemy.ext.asyncio import AsyncSession

from soc_tenant.db import ScopedSession

EXPORT_MAX_ROWS = 100_000


# ------------------------------------------------------------------------------------ responses
def _json_default(value: Any) -> Any:
    converted = plain(value)
    return converted if converted is not value else str(value)


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=_json_default).encode()


class ReadRoute(APIRoute):
    """Routes of the read model answer their dicts with a plain ``json.dumps``: the views build
    JSON-ready dicts already, and FastAPI's validation of a response model costs more than the
    database for a 50-row page. The declared ``response_model`` documents the answer (it becomes
    the 200 response's schema) and, under ``SOC_CHECK_RESPONSES`` (the tests), every answer is
    validated against it before it leaves."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        original = endpoint
        model = kwargs.get("response_model")
        if isinstance(model, DefaultPlaceholder):
            model = None
        checker = functools.cache(lambda: TypeAdapter(model)) if model is not None else None
        if model is not None:
            status = kwargs.get("status_code")
            status = 200 if status is None or isinstance(status, DefaultPlaceholder) else status
            responses = dict(kwargs.get("responses") or {})
            documented = dict(responses.get(status) or {})
            documented.setdefault("model", model)
            responses[status] = documented
            kwargs["responses"] = responses

        @functools.wraps(original)
        async def answer(*args: Any, **kw: Any) -> Any:
            result = await original(*args, **kw)
            if isinstance(result, Response):
                return result
            response = FastJSONResponse(result)
            if checker is not None and checking_responses():
                checker().validate_json(bytes(response.body))
            return response

        kwargs["response_model"] = None
        super().__init__(path, answer, **kwargs)


def list_responses(*, csv: bool = True) -> dict[int | str, Any]:
    """``responses=`` of a list that also answers ``?format=csv`` (the whole filtered list)."""
    return (
        file_responses(CSV, description="The page as JSON, or with ?format=csv the whole list as CSV.")
        if csv
        else {}
    )


# -------------------------------------------------------------------------------------- scope
@dataclass
class Scope:
    """Whose data a request reads. ``company_id`` None means every company (admins only)."""

    principal: Principal
    company_id: str | None
    qradar: list[tuple[str, int]] = field(default_factory=list)
    soar: list[tuple[str, str]] = field(default_factory=list)
    itsm: list[tuple[str, str]] = field(default_factory=list)
    integrations: list[str] = field(default_factory=list)  # integrations owned by the company (TI)
    shared_feeds: list[str] = field(default_factory=list)  # the default threat-intel feeds it takes

    @property
    def everything(self) -> bool:
        return self.company_id is None

    def qradar_filter(self, table: sa.Table) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        if not self.qradar:
            return sa.false()
        return sa.or_(*[sa.and_(table.c.integration_id == i, table.c.domain_id == d) for i, d in self.qradar])

    def soar_filter(self, table: sa.Table, column: str = "account") -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        if not self.soar:
            return sa.false()
        return sa.or_(*[sa.and_(table.c.integration_id == i, table.c[column] == a) for i, a in self.soar])

    def itsm_filter(self, table: sa.Table) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        if not self.itsm:
            return sa.false()
        return sa.or_(*[sa.and_(table.c.integration_id == i, table.c.account_id == a) for i, a in self.itsm])

    def ti_filter(self, table: sa.Table) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        broadcast = self.integrations + self.shared_feeds
        owned = (
            sa.and_(table.c.company_id.is_(None), table.c.integration_id.in_(broadcast))
            if broadcast
            else sa.false()
        )
        return sa.or_(table.c.company_id == self.company_id, owned)

    def integration_ids(self) -> list[str]:
        return sorted(
            {i for i, _ in self.qradar}
            | {i for i, _ in self.soar}
            | {i for i, _ in self.itsm}
            | set(self.integrations)
        )


# JIT compilation costs PostgreSQL 100-300 ms on the row-level-security subplans' cost estimates and
# saves nothing on these index-bound reads: every scoped request turns it off for its transaction.
# Parallel workers likewise cost more to start than the rollup reads they would share.
NO_JIT = sa.text(
    "SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)"
)
MAPPINGS_SQL = sa.text("""
SELECT 'j' AS kind, set_config('jit', 'off', true) || set_config('max_parallel_workers_per_gather', '0', true), NULL
UNION ALL SELECT 'c' AS kind, id::text AS integration_id, NULL AS vendor_tenant FROM company WHERE id::text = :company
UNION ALL SELECT 'q', integration_id::text, domain_id::text FROM qradar_mapping WHERE active AND company_id::text = :company
UNION ALL SELECT 's', integration_id::text, account::text FROM soar_mapping WHERE active AND company_id::text = :company
UNION ALL SELECT 'i', integration_id::text, account_id::text FROM itsm_mapping WHERE active AND company_id::text = :company
UNION ALL SELECT 't', id::text, NULL FROM integration WHERE deleted_at IS NULL AND company_id::text = :company
UNION ALL SELECT 'f', f.integration_id, NULL FROM ti_default_feed f
    WHERE EXISTS (SELECT 1 FROM company c WHERE c.id::text = :company AND c.is_default_threat_intel)
""")


async def load_scope(session: AsyncSession, principal: Principal, company_id: str | None) -> Scope:
    scope = Scope(principal, company_id)
    if company_id is None:
        await session.execute(NO_JIT)
        return scope
    try:
        company_key = str(uuid.UUID(company_id))
    except ValueError:
        raise ApiError(404, "not_found", "company not found") from None
    scope.company_id = company_key
    rows = (await session.execute(MAPPINGS_SQL, {"company": company_key})).all()
    if not any(kind == "c" for kind, _, _ in rows):
        raise ApiError(404, "not_found", "company not found")
    for kind, integration_id, tenant in rows:
        if kind == "q":
            scope.qradar.append((integration_id, int(tenant)))
        elif kind == "s":
            scope.soar.append((integration_id, tenant or ""))
        elif kind == "i":
            scope.itsm.append((integration_id, tenant or ""))
        elif kind == "t":
            scope.integrations.append(integration_id)
        elif kind == "f" and integration_id not in scope.shared_feeds:
            scope.shared_feeds.append(integration_id)
    return scope


def _requested(principal: Principal, company_id: uuid.UUID | None) -> str | None:
    return company_scope(principal, str(company_id) if company_id is not None else None)


CompanyParam = Annotated[uuid.UUID | None, Query(description="admins: the company to look at")]


async def any_scope(
    session: ScopedSession, principal: CurrentPrincipal, company_id: CompanyParam = None
) -> Scope:
    """The caller's company; an admin without ``company_id`` sees every company."""
    return await load_scope(session, principal, _requested(principal, company_id))


async def company_required(
    session: ScopedSession, principal: CurrentPrincipal, company_id: CompanyParam = None
) -> Scope:
    """One company: a tenant user's own, or the one an admin picked with ``company_id``."""
    requested = _requested(principal, company_id)
    if requested is None:
        raise ApiError(400, "company_required", "choose a company with ?company_id=")
    return await load_scope(session, principal, requested)


AnyScope = Annotated[Scope, Depends(any_scope)]
CompanyScope = Annotated[Scope, Depends(company_required)]

DASHBOARD = Depends(require_permission("DASHBOARD"))
ASSETS = Depends(require_permission("ASSETS"))
REPORTS = Depends(require_permission("REPORTS"))
THREAT_INTELLIGENCE = Depends(require_permission("THREAT_INTELLIGENCE"))


def can_export(principal: Principal) -> bool:
    return principal.is_admin or principal.is_service or "REPORTS" in principal.permissions


# ------------------------------------------------------------------------------- query params
@dataclass
class Page:
    limit: int
    offset: int
    sort: str | None
    format: str


def page_params(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    sort: Annotated[
        str | None, Query(max_length=64, description="a field name, '-' first for descending")
    ] = None,
    format: Annotated[Literal["json", "csv"], Query(description="csv needs the REPORTS permission")] = "json",
) -> Page:
    return Page(limit, offset, sort, format)


PageParams = Annotated[Page, Depends(page_params)]


@dataclass
class TimeRange:
    start: datetime | None
    end: datetime | None
    preset: int | None = None  # the ``filter_type`` it came from, if any

    def bounded(self, days: int = 30) -> Bounded:
        """The range with defaults filled in: ``days`` back from ``to`` (or now)."""
        end = self.end or datetime.now(UTC)
        return Bounded(self.start or end - timedelta(days=days), end, self.preset)

    def previous(self, now: datetime | None = None) -> TimeRange | None:
        """The period of the same length just before this one (None for an open start)."""
        if self.start is None:
            return None
        end = self.end or now or datetime.now(UTC)
        if self.preset is not None and self.preset != FilterType.custom:
            # whole days: today vs yesterday, the last 7 days vs the 7 before, ...
            days = PRESET_DAYS[FilterType(self.preset)]
            return TimeRange(self.start - timedelta(days=days), self.start - timedelta(microseconds=1))
        length = end - self.start
        return TimeRange(
            self.start - length - timedelta(microseconds=1), self.start - timedelta(microseconds=1)
        )


@dataclass
class Bounded(TimeRange):
    """A time range with both ends (:meth:`TimeRange.bounded`)."""

    start: datetime
    end: datetime


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class FilterType(IntEnum):
    """The original product's time presets (``filter_type``): whole UTC days ending today."""

    today = 1
    week = 2
    month = 3
    custom = 9


PRESET_DAYS = {FilterType.today: 1, FilterType.week: 7, FilterType.month: 30}


def bad_param(parameter: str, message: str, **details: Any) -> ApiError:
    """A filter value that cannot be used: 422 naming the query parameter."""
    return ApiError(422, "invalid_parameter", message, {"parameter": parameter, **details})


def parse_day(parameter: str, value: str | None) -> date | None:
    """A ``YYYY-MM-DD`` query value; an empty value counts as absent (as the original's forms send)."""
    if value is None or not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise bad_param(parameter, f"{parameter} must be a date (YYYY-MM-DD)") from None
    if not (1970 <= day.year <= 9998):
        raise bad_param(parameter, f"{parameter} must be between 1970 and 9998")
    return day


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_end(day: date) -> datetime:
    return day_start(day) + timedelta(days=1) - timedelta(microseconds=1)


def preset_window(
    filter_type: FilterType | None,
    start_date: date | None,
    end_date: date | None,
    now: datetime | None = None,
) -> TimeRange | None:
    """The window a ``filter_type`` (and ``start_date``/``end_date``) stands for, None without one.

    1 today, 2 the last 7 days, 3 the last 30 days (each counted in whole UTC days, today included,
    open-ended at now); 9 from ``start_date`` to ``end_date`` inclusive. Dates without a
    ``filter_type`` are a custom range as well; with 1/2/3 they are ignored, as the original did."""
    if filter_type is None and start_date is None and end_date is None:
        return None
    if filter_type in PRESET_DAYS:
        today = (now or datetime.now(UTC)).date()
        return TimeRange(day_start(today - timedelta(days=PRESET_DAYS[filter_type] - 1)), None, filter_type)
    if filter_type is FilterType.custom:
        for name, value in (("start_date", start_date), ("end_date", end_date)):
            if value is None:
                raise bad_param(name, f"filter_type=9 (custom range) needs {name}")
    if start_date is not None and end_date is not None and start_date > end_date:
        raise bad_param("start_date", "start_date must not be after end_date")
    return TimeRange(
        day_start(start_date) if start_date else None,
        day_end(end_date) if end_date else None,
        FilterType.custom,
    )


# The original's SLA levels as numbers (``sla_level``, summary ``priority``): 4 P1 … 1 P4.
SLA_LEVEL_NUMBERS = {
    "4": "P1",
    "3": "P2",
    "2": "P3",
    "1": "P4",
    "P1": "P1",
    "P2": "P2",
    "P3": "P3",
    "P4": "P4",
}


def parse_levels(parameter: str, values: list[str] | None) -> list[str] | None:
    """P1..P4 or the original's level numbers (comma-separated or repeated) → P1..P4; 422 otherwise."""
    if not values:
        return None
    out: list[str] = []
    for raw in values:
        for part in raw.split(","):
            key = part.strip().upper()
            if not key:
                continue
            if key not in SLA_LEVEL_NUMBERS:
                raise bad_param(
                    parameter, f"unknown {parameter} {part.strip()!r}", allowed=list(SLA_LEVEL_NUMBERS)
                )
            if SLA_LEVEL_NUMBERS[key] not in out:
                out.append(SLA_LEVEL_NUMBERS[key])
    return out or None


def time_range(
    start: Annotated[datetime | None, Query(alias="from", description="ISO 8601; naive means UTC")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="ISO 8601; naive means UTC")] = None,
    filter_type: Annotated[
        FilterType | None,
        Query(
            description="the original's presets: 1 today, 2 last 7 days, 3 last 30 days, 9 start_date..end_date"
        ),
    ] = None,
    start_date: Annotated[
        str | None, Query(max_length=32, description="YYYY-MM-DD, first day (with filter_type=9 or alone)")
    ] = None,
    end_date: Annotated[
        str | None,
        Query(max_length=32, description="YYYY-MM-DD, last day included (with filter_type=9 or alone)"),
    ] = None,
) -> TimeRange:
    start, end = _aware(start), _aware(end)
    preset = preset_window(filter_type, parse_day("start_date", start_date), parse_day("end_date", end_date))
    if preset is not None:
        if start is not None or end is not None:
            raise bad_param(
                "filter_type" if filter_type is not None else "start_date",
                "use either from/to or filter_type/start_date/end_date, not both",
            )
        return preset
    if start is not None and end is not None and start > end:
        raise ApiError(
            422,
            "invalid_range",
            "'from' must not be after 'to'",
            {"parameter": "from", "from": start.isoformat(), "to": end.isoformat()},
        )
    for name, value in (("from", start), ("to", end)):
        if value is not None and not (1970 <= value.year <= 9998):
            raise ApiError(422, "invalid_range", "dates must be between 1970 and 9998", {"parameter": name})
    return TimeRange(start, end)


Range = Annotated[TimeRange, Depends(time_range)]
TextQuery = Annotated[str | None, Query(max_length=200, description="text search")]
IntegrationParam = Annotated[
    str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9._:-]+$", description="one integration's records")
]


def spellings(value: str) -> list[str]:
    """The usual spellings of a name (as given, lower, upper, capitalised): the case-insensitive
    match the original made, as plain equality — under row-level security only leakproof
    conditions such as text ``=`` can use an index, ``lower()`` and ``ILIKE`` cannot."""
    return list(dict.fromkeys([value, value.lower(), value.upper(), value.capitalize(), value.title()]))


def like_pattern(q: str) -> str:
    """``%q%`` with LIKE's wildcards escaped (use with ``escape='\\\\'``)."""
    q = q.replace("\x00", "")
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def text_filter(q: str | None, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    if not q or not q.replace("\x00", "").strip():
        return sa.true()
    pattern = like_pattern(q.strip())
    return sa.or_(*[sa.cast(c, sa.Text).ilike(pattern, escape="\\") for c in columns])


def clean_str(value: str | None) -> str | None:
    return value.replace("\x00", "") if value is not None else None


def ordering(
    sort: str | None,
    allowed: Mapping[str, sa.ColumnElement[Any]],
    default: str,
    tiebreak: sa.ColumnElement[Any] | None = None,
) -> list[Any]:
    wanted = sort or default
    desc = wanted.startswith("-")
    name = wanted.lstrip("-")
    if name not in allowed:
        raise ApiError(400, "invalid_sort", f"cannot sort by {name!r}", {"allowed": sorted(allowed)})
    column = allowed[name]
    # PostgreSQL's default NULLS placement, so that the (…, time DESC, id DESC) indexes serve the ORDER BY.
    out = [column.desc() if desc else column.asc()]
    if tiebreak is not None:
        out.append(tiebreak.desc() if desc else tiebreak.asc())
    return out


# ---------------------------------------------------------------------------------- rendering
def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def as_dict(row: Any) -> dict[str, Any]:
    return {k: plain(v) for k, v in row._mapping.items()}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={_cell(v)}" for k, v in value.items())
    text = str(plain(value))
    # Spreadsheet formula injection: a vendor string must never run as a formula.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        text = "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def csv_bytes(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    # Header cells too: a column may be named after vendor data (custom fields).
    writer.writerow([_cell(c) for c in columns])
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue().encode("utf-8-sig")


def xlsx_bytes(columns: Sequence[str], rows: Iterable[dict[str, Any]], title: str = "export") -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title[:31] or "export")
    ws.append([_cell(c) for c in columns])
    for row in rows:
        ws.append([_cell(row.get(c)) for c in columns])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def csv_response(columns: Sequence[str], rows: Iterable[dict[str, Any]], name: str) -> Response:
    return download(csv_bytes(columns, rows), "text/csv; charset=utf-8", f"{name}.csv")


def xlsx_response(columns: Sequence[str], rows: Iterable[dict[str, Any]], name: str) -> Response:
    return download(
        xlsx_bytes(columns, rows, name),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        f"{name}.xlsx",
    )


async def run_list(
    session: AsyncSession,
    stmt: sa.Select[Any],
    page: Page,
    order: list[Any],
    *,
    principal: Principal,
    name: str,
    serialize: Callable[[Any], dict[str, Any]] = as_dict,
    total: int | None = None,
) -> dict[str, Any] | Response:
    """One list answer: ``{"items", "total", "limit", "offset"}``, or the whole (filtered, sorted)
    list as CSV with ``?format=csv`` for callers holding REPORTS."""
    if page.format == "csv":
        if not can_export(principal):
            raise ApiError(
                403, "permission_denied", "the REPORTS permission is required", {"permission": "REPORTS"}
            )
        rows = [
            serialize(r) for r in (await session.execute(stmt.order_by(*order).limit(EXPORT_MAX_ROWS))).all()
        ]
        columns = list(rows[0].keys()) if rows else [c.name for c in stmt.selected_columns]
        return csv_response(columns, rows, name)
    if total is None:
        total = (
            await session.execute(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))
        ).scalar_one()
    rows = (await session.execute(stmt.order_by(*order).limit(page.limit).offset(page.offset))).all()
    return {"items": [serialize(r) for r in rows], "total": total, "limit": page.limit, "offset": page.offset}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def request_base(request: Request) -> str:
    return str(request.base_url).rstrip("/")
