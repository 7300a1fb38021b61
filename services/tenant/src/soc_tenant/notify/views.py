"""Notification routes: channels and rules (per company, or the MSSP's own staff's without one),
deliveries with their attempts, and the in-app list with its unread marks.

Administrators manage every company's and the staff's; a tenant administrator their own company's
(row-level security, and 404 for another company's, exactly like an id that does not exist).
Secrets (SMTP password, webhook secret, Slack/Teams URL) are sealed before they touch the database
and never returned. Every change is written to the audit trail in its own transaction.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response
from pydantic import Field, SecretStr, StringConstraints, field_validator, model_validator
from soc_shared.api import ApiModel, Page
from soc_shared.egress import EgressPolicy
from soc_shared.errors import ApiError
from soc_shared.security import Principal
from sqlalchemy.dialects.postgresql import insert as pg_insert

from soc_tenant.audit import views as audit
from soc_tenant.control.deps import (
    ControlTx,
    ManagerReader,
    ManagerWriter,
    Paging,
    Person,
    Tx,
    invalid,
    not_found,
    page,
    scoped_company,
)
from soc_tenant.control.models import Strict, storable, text
from soc_tenant.notify import render
from soc_tenant.notify.delivery import channel_aad
from soc_tenant.notify.options import notify_options
from soc_tenant.notify.tables import (
    notify_attempt,
    notify_channel,
    notify_delivery,
    notify_notice,
    notify_read,
    notify_rule,
)
from soc_tenant.notify.triggers import INCIDENT_SEVERITIES, SLA_DUE_SOON, TRIGGERS

router = APIRouter(tags=["notifications"])

ChannelKind = Literal["email", "webhook", "slack", "teams", "in_app"]
Trigger = Literal[
    "sla_due_soon",
    "sla_breached",
    "offense_created",
    "incident_created",
    "integration_error",
    "integration_silent",
    "eps_exceeded",
    "ticket_created",
]
assert set(TRIGGERS) == set(Trigger.__args__)  # type: ignore[attr-defined]
SmtpSecurity = Literal["none", "starttls", "tls"]
# Stricter than a directory login's e-mail: mail goes out to it (a dotted domain, no display name).
EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)]
Template = Annotated[str, StringConstraints(max_length=20_000)]


def _email(value: str) -> str:
    if not EMAIL.match(value) or len(value.split("@", 1)[0]) > 64:
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


class ChannelIn(Strict):
    """A channel. Secrets are write-only: leave one out on an update to keep it."""

    name: text(120)  # type: ignore[valid-type]
    kind: ChannelKind
    company_id: uuid.UUID | None = Field(None, description="none: the MSSP's own staff (admins only)")
    enabled: bool = True
    rate_per_minute: int = Field(30, ge=1, le=6000, description="deliveries per minute at most")
    # e-mail
    sender: Email | None = None
    recipients: list[Email] = Field(default_factory=list, max_length=50)
    smtp_host: Annotated[str, StringConstraints(strip_whitespace=True, max_length=253)] | None = Field(
        None, description="none: the operator's relay"
    )
    smtp_port: int | None = Field(None, ge=1, le=65535)
    smtp_security: SmtpSecurity = "starttls"
    smtp_username: Annotated[str, StringConstraints(max_length=254)] | None = None
    smtp_password: SecretStr | None = Field(None, max_length=512)
    subject_template: Template | None = None
    text_template: Template | None = None
    html_template: Template | None = None
    # webhook (url), Slack and Teams (url, itself the secret)
    url: SecretStr | None = Field(None, max_length=2048)
    secret: SecretStr | None = Field(None, max_length=512, description="webhook HMAC secret (16+ characters)")

    @model_validator(mode="after")
    def _storable(self) -> ChannelIn:
        for name in type(self).model_fields:
            value = getattr(self, name)
            values = value if isinstance(value, list) else [value]
            for v in values:
                text_value = v.get_secret_value() if isinstance(v, SecretStr) else v
                if isinstance(text_value, str) and not storable(text_value):
                    raise ValueError(f"{name} must not contain NUL or unpaired surrogates")
        return self

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return None if value is None else _email(value)

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_email(v) for v in value]


class Channel(ApiModel):
    id: uuid.UUID
    company_id: uuid.UUID | None
    name: str
    kind: ChannelKind
    enabled: bool
    rate_per_minute: int
    config: dict[str, Any] = Field(description="the channel's settings, secrets left out")
    secret_set: bool
    secret_version: int
    consecutive_failures: int
    parked_at: datetime | None = Field(description="set while the channel is parked after repeated failures")
    park_reason: str | None
    pending: int = Field(description="deliveries waiting on this channel")
    failed: int = Field(description="deliveries that failed for good (they can be sent again)")
    created_at: datetime
    updated_at: datetime


class RuleIn(Strict):
    name: text(120)  # type: ignore[valid-type]
    trigger: Trigger
    company_id: uuid.UUID | None = Field(None, description="none: the MSSP's own staff (every company)")
    enabled: bool = True
    min_offense_severity: int | None = Field(None, ge=0, le=10, description="offense_created: at least")
    min_incident_severity: Literal["unknown", "informational", "low", "medium", "high", "critical"] | None = (
        Field(None, description="incident_created: at least")
    )
    lead_minutes: int | None = Field(None, ge=1, le=10_080, description="sla_due_soon: how long before")
    polls: int | None = Field(None, ge=1, le=1000, description="integration_error/silent: polls in a row")
    channel_ids: list[uuid.UUID] = Field(min_length=1, max_length=20)


class Rule(ApiModel):
    id: uuid.UUID
    company_id: uuid.UUID | None
    name: str
    trigger: Trigger
    enabled: bool
    min_offense_severity: int | None
    min_incident_severity: str | None
    lead_minutes: int | None
    polls: int | None
    channel_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime


class DeliveryView(ApiModel):
    id: int
    company_id: uuid.UUID | None
    notice_id: int
    channel_id: uuid.UUID
    channel_name: str
    channel_kind: str
    trigger: str
    title: str
    status: Literal["pending", "sent", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime


class Attempt(ApiModel):
    id: int
    at: datetime
    outcome: Literal["sent", "retry", "failed"]
    error_code: str | None
    detail: str | None
    duration_ms: int


class InAppNotice(ApiModel):
    id: int
    company_id: uuid.UUID | None
    trigger: str
    severity: str
    title: str
    summary: str
    facts: dict[str, Any]
    at: datetime
    read: bool


class InAppPage(Page[InAppNotice]):
    unread: int = Field(description="unread notifications in all")


class ReadIn(Strict):
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(default_factory=list, max_length=500)
    all: bool = Field(False, description="mark every notification read")


class Marked(ApiModel):
    marked: int


# --- helpers ----------------------------------------------------------------------------------------
def _owner(principal: Principal, company_id: uuid.UUID | None) -> uuid.UUID | None:
    """The company a new channel or rule belongs to: a tenant administrator's own (another company's
    answers 404), an administrator's choice (none: the staff's)."""
    if principal.is_admin:
        return company_id
    scope = scoped_company(principal, company_id or principal.company_id)
    if scope is None:
        raise ApiError(403, "admin_required", "staff notifications are for administrators")
    return scope


def _company_filter(principal: Principal, company_id: uuid.UUID | None, column: Any) -> list[Any]:
    scope = scoped_company(principal, company_id)
    if scope is not None:
        return [column == scope]
    return []


async def _check_company(tx: Tx, company_id: uuid.UUID | None) -> None:
    if company_id is None:
        return
    found = (
        await tx.session.execute(
            sa.text("SELECT 1 FROM company WHERE id = :id AND deleted_at IS NULL"), {"id": company_id}
        )
    ).first()
    if found is None:
        raise not_found("company")


def _egress(tx: Tx) -> EgressPolicy:
    return notify_options(tx.app).egress or EgressPolicy.from_env()


def _check_url(tx: Tx, url: str, loc: str, kind: str) -> None:
    parts = re.match(r"^(https?)://([^/?#\s]+)", url)
    if parts is None:
        raise invalid(["body", loc], "must be an http(s) URL")
    if "@" in parts.group(2):
        raise invalid(["body", loc], "must not carry user information")
    try:
        split = urlsplit(url)
        split.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise invalid(["body", loc], f"not a valid URL: {exc}") from None
    if not split.hostname or any(ch.isspace() for ch in url):
        raise invalid(["body", loc], "not a valid URL")
    refused = _egress(tx).check_literal(url)
    if refused:
        raise invalid(["body", loc], f"not allowed: {refused}", code="egress_denied")


def _validate_channel(tx: Tx, body: ChannelIn, existing: Any | None) -> tuple[dict[str, Any], str | None]:
    """The stored config and the secret to seal (None: keep the existing one) — or a 422."""
    config: dict[str, Any] = {}
    secret: str | None = None
    has_secret = existing is not None and existing.secret_sealed is not None and existing.kind == body.kind
    if body.kind == "email":
        if not body.sender:
            raise invalid(["body", "sender"], "an e-mail channel needs a sender")
        if not body.recipients:
            raise invalid(["body", "recipients"], "an e-mail channel needs at least one recipient")
        for name in ("subject_template", "text_template", "html_template"):
            value = getattr(body, name)
            if value:
                problem = render.template_problem(value)
                if problem:
                    raise invalid(["body", name], problem, code="template_error")
        if body.smtp_host:
            if not re.fullmatch(
                r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Fa-f:]{2,45}", body.smtp_host
            ):
                raise invalid(["body", "smtp_host"], "a host name or an IP address")
            try:
                refused = _egress(tx).check_literal(f"smtp://{body.smtp_host}")
            except ValueError:
                raise invalid(["body", "smtp_host"], "a host name or an IP address") from None
            if refused:
                raise invalid(["body", "smtp_host"], f"not allowed: {refused}", code="egress_denied")
        config = {
            "sender": body.sender,
            "recipients": body.recipients,
            "smtp_host": body.smtp_host,
            "smtp_port": body.smtp_port,
            "smtp_security": body.smtp_security,
            "smtp_username": body.smtp_username,
            "subject_template": body.subject_template,
            "text_template": body.text_template,
            "html_template": body.html_template,
        }
        if body.smtp_password is not None:
            secret = body.smtp_password.get_secret_value()
    elif body.kind == "webhook":
        if body.url is None:
            raise invalid(["body", "url"], "a webhook channel needs a url")
        url = body.url.get_secret_value().strip()
        _check_url(tx, url, "url", body.kind)
        config = {"url": url}
        if body.secret is not None:
            secret = body.secret.get_secret_value()
            if len(secret) < 16:
                raise invalid(["body", "secret"], "at least 16 characters")
        elif not has_secret:
            raise invalid(["body", "secret"], "a webhook channel needs a signing secret")
    elif body.kind in ("slack", "teams"):
        if body.url is not None:
            url = body.url.get_secret_value().strip()
            _check_url(tx, url, "url", body.kind)
            secret = url
            config = {"host": re.sub(r"^https://([^/:]+).*$", r"\1", url)}
        elif not has_secret:
            raise invalid(["body", "url"], f"a {body.kind} channel needs its incoming-webhook url")
        else:
            assert existing is not None  # a stored secret: the channel exists
            config = dict(existing.config)
    if body.kind != "email" and any(
        getattr(body, f)
        for f in ("sender", "smtp_host", "smtp_password", "subject_template", "text_template")
    ):
        raise invalid(["body", "kind"], f"e-mail settings on a {body.kind} channel")
    if body.kind == "in_app" and (body.url is not None or body.secret is not None):
        raise invalid(["body", "url"], "an in-app channel has no url")
    return config, secret


_PENDING = (
    sa.select(sa.func.count())
    .select_from(notify_delivery)
    .where(notify_delivery.c.channel_id == notify_channel.c.id, notify_delivery.c.status == "pending")
    .scalar_subquery()
)
_FAILED = (
    sa.select(sa.func.count())
    .select_from(notify_delivery)
    .where(notify_delivery.c.channel_id == notify_channel.c.id, notify_delivery.c.status == "failed")
    .scalar_subquery()
)


def _channel_view(row: Any) -> dict[str, Any]:
    view = {k: row[k] for k in Channel.model_fields if k in row.keys() and k not in ("secret_set",)}
    view["secret_set"] = row["secret_sealed"] is not None
    view["config"] = {k: v for k, v in (row["config"] or {}).items() if v is not None}
    return view


def _audit_view(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("pending", "failed", "created_at", "updated_at")}


async def _load_channel(tx: Tx, channel_id: uuid.UUID, *, lock: bool = False) -> Any:
    stmt = sa.select(notify_channel, _PENDING.label("pending"), _FAILED.label("failed")).where(
        notify_channel.c.id == channel_id, *_company_filter(tx.principal, None, notify_channel.c.company_id)
    )
    if lock:
        stmt = (
            sa.select(notify_channel, sa.literal(0).label("pending"), sa.literal(0).label("failed"))
            .where(notify_channel.c.id == channel_id)
            .with_for_update()
        )
    row = (await tx.session.execute(stmt)).mappings().one_or_none()
    if row is None:
        raise not_found("channel")
    return row


# --- channels -----------------------------------------------------------------------------------------
@router.get("/admin/notifications/channels/", response_model=Page[Channel])
async def list_channels(
    tx: ControlTx,
    principal: ManagerReader,
    paging: Paging,
    company_id: uuid.UUID | None = None,
    kind: ChannelKind | None = None,
    parked: bool | None = None,
) -> dict[str, Any]:
    """Channels, parked ones included (``parked=true`` for those alone)."""
    c = notify_channel.c
    where = _company_filter(principal, company_id, c.company_id)
    if kind:
        where.append(c.kind == kind)
    if parked is not None:
        where.append(c.parked_at.is_not(None) if parked else c.parked_at.is_(None))
    total = (
        await tx.session.execute(sa.select(sa.func.count()).select_from(notify_channel).where(*where))
    ).scalar_one()
    rows = (
        await tx.session.execute(
            sa.select(notify_channel, _PENDING.label("pending"), _FAILED.label("failed"))
            .where(*where)
            .order_by(c.created_at, c.id)
            .limit(paging.limit)
            .offset(paging.offset)
        )
    ).mappings()
    return page([_channel_view(r) for r in rows], total, paging)


@router.post("/admin/notifications/channels/", response_model=Channel, status_code=201)
async def create_channel(tx: ControlTx, principal: ManagerWriter, body: ChannelIn) -> dict[str, Any]:
    owner = _owner(principal, body.company_id)
    await _check_company(tx, owner)
    config, secret = _validate_channel(tx, body, None)
    channel_id = uuid.uuid4()
    await tx.session.execute(
        sa.insert(notify_channel).values(
            id=channel_id,
            company_id=owner,
            name=body.name,
            kind=body.kind,
            config=config,
            secret_sealed=None
            if secret is None
            else tx.app.state.sealer.seal(secret, channel_aad(channel_id)),
            secret_version=0 if secret is None else 1,
            rate_per_minute=body.rate_per_minute,
            enabled=body.enabled,
        )
    )
    view = _channel_view(await _load_channel(tx, channel_id))
    await audit.record(
        tx, "notify_channel.created", "notify_channel", channel_id, company_id=owner, after=_audit_view(view)
    )
    return view


@router.get("/admin/notifications/channels/{channel_id}/", response_model=Channel)
async def get_channel(tx: ControlTx, principal: ManagerReader, channel_id: uuid.UUID) -> dict[str, Any]:
    return _channel_view(await _load_channel(tx, channel_id))


@router.put("/admin/notifications/channels/{channel_id}/", response_model=Channel)
async def update_channel(
    tx: ControlTx, principal: ManagerWriter, channel_id: uuid.UUID, body: ChannelIn
) -> dict[str, Any]:
    """Replace the channel's settings; a secret left out is kept (same kind)."""
    before_row = await _load_channel(tx, channel_id)
    before = _channel_view(before_row)
    if body.company_id != before_row["company_id"] and (principal.is_admin or body.company_id is not None):
        raise invalid(["body", "company_id"], "a channel cannot move to another company")
    config, secret = _validate_channel(tx, body, type("Existing", (), dict(before_row))())
    values: dict[str, Any] = {
        "name": body.name,
        "kind": body.kind,
        "config": config,
        "rate_per_minute": body.rate_per_minute,
        "enabled": body.enabled,
        "updated_at": sa.func.now(),
    }
    if secret is not None:
        values["secret_sealed"] = tx.app.state.sealer.seal(secret, channel_aad(channel_id))
        values["secret_version"] = notify_channel.c.secret_version + 1
    elif body.kind != before_row["kind"]:
        values["secret_sealed"] = None
    await tx.session.execute(
        sa.update(notify_channel).where(notify_channel.c.id == channel_id).values(**values)
    )
    after = _channel_view(await _load_channel(tx, channel_id))
    await audit.record(
        tx,
        "notify_channel.updated",
        "notify_channel",
        channel_id,
        company_id=before_row["company_id"],
        before=_audit_view(before),
        after=_audit_view(after),
    )
    return after


@router.delete("/admin/notifications/channels/{channel_id}/", status_code=204, response_class=Response)
async def delete_channel(tx: ControlTx, principal: ManagerWriter, channel_id: uuid.UUID) -> Response:
    """Delete the channel with its deliveries; rules keep naming it until edited (nothing is sent)."""
    row = await _load_channel(tx, channel_id)
    await tx.session.execute(sa.delete(notify_channel).where(notify_channel.c.id == channel_id))
    await audit.record(
        tx,
        "notify_channel.deleted",
        "notify_channel",
        channel_id,
        company_id=row["company_id"],
        before=_audit_view(_channel_view(row)),
    )
    return Response(status_code=204)


@router.post("/admin/notifications/channels/{channel_id}/resume/", response_model=Channel)
async def resume_channel(tx: ControlTx, principal: ManagerWriter, channel_id: uuid.UUID) -> dict[str, Any]:
    """Unpark a channel: its waiting deliveries are due now."""
    row = await _load_channel(tx, channel_id)
    await tx.session.execute(
        sa.update(notify_channel)
        .where(notify_channel.c.id == channel_id)
        .values(parked_at=None, park_reason=None, consecutive_failures=0, updated_at=sa.func.now())
    )
    now = notify_options(tx.app).clock()
    await tx.session.execute(
        sa.update(notify_delivery)
        .where(notify_delivery.c.channel_id == channel_id, notify_delivery.c.status == "pending")
        .values(next_attempt_at=now)
    )
    after = _channel_view(await _load_channel(tx, channel_id))
    await audit.record(
        tx,
        "notify_channel.resumed",
        "notify_channel",
        channel_id,
        company_id=row["company_id"],
        before={"parked_at": row["parked_at"], "park_reason": row["park_reason"]},
        after={"parked_at": None, "park_reason": None},
    )
    _wake(tx)
    return after


def _wake(tx: Tx) -> None:
    deliverer = getattr(tx.app.state, "notify_deliverer", None)
    if deliverer is not None:
        tx.on_commit(lambda: _set(deliverer))


async def _set(deliverer: Any) -> None:
    deliverer.wake()


# --- rules --------------------------------------------------------------------------------------------
def _check_rule(body: RuleIn) -> None:
    if body.trigger == SLA_DUE_SOON and body.lead_minutes is None:
        raise invalid(["body", "lead_minutes"], "sla_due_soon needs lead_minutes")
    if body.lead_minutes is not None and body.trigger != SLA_DUE_SOON:
        raise invalid(["body", "lead_minutes"], "only for sla_due_soon")
    if body.min_offense_severity is not None and body.trigger != "offense_created":
        raise invalid(["body", "min_offense_severity"], "only for offense_created")
    if body.min_incident_severity is not None and body.trigger != "incident_created":
        raise invalid(["body", "min_incident_severity"], "only for incident_created")
    if body.polls is not None and body.trigger not in ("integration_error", "integration_silent"):
        raise invalid(["body", "polls"], "only for integration_error and integration_silent")
    assert body.min_incident_severity is None or body.min_incident_severity in INCIDENT_SEVERITIES


async def _check_channels(tx: Tx, owner: uuid.UUID | None, channel_ids: list[uuid.UUID]) -> None:
    rows = (
        await tx.session.execute(
            sa.select(notify_channel.c.id, notify_channel.c.company_id).where(
                notify_channel.c.id.in_(channel_ids)
            )
        )
    ).all()
    found = {r.id: r.company_id for r in rows}
    for k, ch in enumerate(channel_ids):
        if ch not in found or found[ch] != owner:
            raise invalid(["body", "channel_ids", str(k)], "no such channel of the rule's company")


def _rule_view(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in Rule.model_fields}


def _rule_audit(view: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if k not in ("created_at", "updated_at")}
    out["channel_ids"] = [str(c) for c in out["channel_ids"]]
    return out


async def _load_rule(tx: Tx, rule_id: uuid.UUID) -> Any:
    row = (
        (
            await tx.session.execute(
                sa.select(notify_rule).where(
                    notify_rule.c.id == rule_id,
                    *_company_filter(tx.principal, None, notify_rule.c.company_id),
                )
            )
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise not_found("rule")
    return row


@router.get("/admin/notifications/rules/", response_model=Page[Rule])
async def list_rules(
    tx: ControlTx,
    principal: ManagerReader,
    paging: Paging,
    company_id: uuid.UUID | None = None,
    trigger: Trigger | None = None,
) -> dict[str, Any]:
    c = notify_rule.c
    where = _company_filter(principal, company_id, c.company_id)
    if trigger:
        where.append(c.trigger == trigger)
    total = (
        await tx.session.execute(sa.select(sa.func.count()).select_from(notify_rule).where(*where))
    ).scalar_one()
    rows = (
        await tx.session.execute(
            sa.select(notify_rule)
            .where(*where)
            .order_by(c.created_at, c.id)
            .limit(paging.limit)
            .offset(paging.offset)
        )
    ).mappings()
    return page([_rule_view(r) for r in rows], total, paging)


@router.post("/admin/notifications/rules/", response_model=Rule, status_code=201)
async def create_rule(tx: ControlTx, principal: ManagerWriter, body: RuleIn) -> dict[str, Any]:
    owner = _owner(principal, body.company_id)
    await _check_company(tx, owner)
    _check_rule(body)
    await _check_channels(tx, owner, body.channel_ids)
    rule_id = uuid.uuid4()
    await tx.session.execute(
        sa.insert(notify_rule).values(
            id=rule_id,
            company_id=owner,
            **body.model_dump(exclude={"company_id", "channel_ids"}),
            channel_ids=list(dict.fromkeys(body.channel_ids)),
        )
    )
    view = _rule_view(await _load_rule(tx, rule_id))
    await audit.record(
        tx, "notify_rule.created", "notify_rule", rule_id, company_id=owner, after=_rule_audit(view)
    )
    return view


@router.get("/admin/notifications/rules/{rule_id}/", response_model=Rule)
async def get_rule(tx: ControlTx, principal: ManagerReader, rule_id: uuid.UUID) -> dict[str, Any]:
    return _rule_view(await _load_rule(tx, rule_id))


@router.put("/admin/notifications/rules/{rule_id}/", response_model=Rule)
async def update_rule(
    tx: ControlTx, principal: ManagerWriter, rule_id: uuid.UUID, body: RuleIn
) -> dict[str, Any]:
    row = await _load_rule(tx, rule_id)
    if body.company_id != row["company_id"] and (principal.is_admin or body.company_id is not None):
        raise invalid(["body", "company_id"], "a rule cannot move to another company")
    _check_rule(body)
    await _check_channels(tx, row["company_id"], body.channel_ids)
    await tx.session.execute(
        sa.update(notify_rule)
        .where(notify_rule.c.id == rule_id)
        .values(
            **body.model_dump(exclude={"company_id", "channel_ids"}),
            channel_ids=list(dict.fromkeys(body.channel_ids)),
            updated_at=sa.func.now(),
        )
    )
    after = _rule_view(await _load_rule(tx, rule_id))
    await audit.record(
        tx,
        "notify_rule.updated",
        "notify_rule",
        rule_id,
        company_id=row["company_id"],
        before=_rule_audit(_rule_view(row)),
        after=_rule_audit(after),
    )
    return after


@router.delete("/admin/notifications/rules/{rule_id}/", status_code=204, response_class=Response)
async def delete_rule(tx: ControlTx, principal: ManagerWriter, rule_id: uuid.UUID) -> Response:
    row = await _load_rule(tx, rule_id)
    await tx.session.execute(sa.delete(notify_rule).where(notify_rule.c.id == rule_id))
    await audit.record(
        tx,
        "notify_rule.deleted",
        "notify_rule",
        rule_id,
        company_id=row["company_id"],
        before=_rule_audit(_rule_view(row)),
    )
    return Response(status_code=204)


# --- deliveries ---------------------------------------------------------------------------------------
@router.get("/admin/notifications/deliveries/", response_model=Page[DeliveryView])
async def list_deliveries(
    tx: ControlTx,
    principal: ManagerReader,
    paging: Paging,
    company_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    status: Literal["pending", "sent", "failed"] | None = None,
) -> dict[str, Any]:
    """Deliveries, newest first."""
    d, c, n = notify_delivery.c, notify_channel.c, notify_notice.c
    where = _company_filter(principal, company_id, d.company_id)
    if channel_id:
        where.append(d.channel_id == channel_id)
    if status:
        where.append(d.status == status)
    joined = notify_delivery.join(notify_channel, c.id == d.channel_id).join(
        notify_notice, n.id == d.notice_id
    )
    total = (
        await tx.session.execute(sa.select(sa.func.count()).select_from(notify_delivery).where(*where))
    ).scalar_one()
    rows = (
        await tx.session.execute(
            sa.select(
                notify_delivery,
                c.name.label("channel_name"),
                c.kind.label("channel_kind"),
                n.trigger,
                n.title,
            )
            .select_from(joined)
            .where(*where)
            .order_by(d.id.desc())
            .limit(paging.limit)
            .offset(paging.offset)
        )
    ).mappings()
    return page([dict(r) for r in rows], total, paging)


async def _load_delivery(tx: Tx, delivery_id: int) -> Any:
    row = (
        (
            await tx.session.execute(
                sa.select(notify_delivery).where(
                    notify_delivery.c.id == delivery_id,
                    *_company_filter(tx.principal, None, notify_delivery.c.company_id),
                )
            )
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise not_found("delivery")
    return row


DeliveryId = Annotated[int, Field(ge=1, le=2**63 - 1)]


@router.get("/admin/notifications/deliveries/{delivery_id}/attempts/", response_model=Page[Attempt])
async def list_attempts(
    tx: ControlTx, principal: ManagerReader, paging: Paging, delivery_id: DeliveryId
) -> dict[str, Any]:
    await _load_delivery(tx, delivery_id)
    a = notify_attempt.c
    where = [a.delivery_id == delivery_id]
    total = (
        await tx.session.execute(sa.select(sa.func.count()).select_from(notify_attempt).where(*where))
    ).scalar_one()
    rows = (
        await tx.session.execute(
            sa.select(notify_attempt).where(*where).order_by(a.id).limit(paging.limit).offset(paging.offset)
        )
    ).mappings()
    return page([dict(r) for r in rows], total, paging)


@router.post("/admin/notifications/deliveries/{delivery_id}/retry/", response_model=DeliveryView)
async def retry_delivery(tx: ControlTx, principal: ManagerWriter, delivery_id: DeliveryId) -> dict[str, Any]:
    """Send a failed delivery again (its attempts start over)."""
    row = await _load_delivery(tx, delivery_id)
    if row["status"] == "sent":
        raise ApiError(409, "already_sent", "this delivery was sent")
    now = notify_options(tx.app).clock()
    await tx.session.execute(
        sa.update(notify_delivery)
        .where(notify_delivery.c.id == delivery_id)
        .values(status="pending", attempts=0, next_attempt_at=now, lease_until=None)
    )
    await audit.record(
        tx,
        "notify_delivery.retried",
        "notify_delivery",
        delivery_id,
        company_id=row["company_id"],
        before={"status": row["status"]},
        after={"status": "pending"},
    )
    _wake(tx)
    d, c, n = notify_delivery.c, notify_channel.c, notify_notice.c
    view = (
        (
            await tx.session.execute(
                sa.select(
                    notify_delivery,
                    c.name.label("channel_name"),
                    c.kind.label("channel_kind"),
                    n.trigger,
                    n.title,
                )
                .select_from(
                    notify_delivery.join(notify_channel, c.id == d.channel_id).join(
                        notify_notice, n.id == d.notice_id
                    )
                )
                .where(d.id == delivery_id)
            )
        )
        .mappings()
        .one()
    )
    return dict(view)


# --- in-app -------------------------------------------------------------------------------------------
def _in_app_where(principal: Principal, company_id: uuid.UUID | None) -> list[Any]:
    n = notify_notice.c
    delivered = sa.exists().where(
        notify_delivery.c.notice_id == n.id,
        notify_delivery.c.status == "sent",
        notify_delivery.c.channel_id.in_(
            sa.select(notify_channel.c.id).where(notify_channel.c.kind == "in_app")
        ),
    )
    if principal.is_admin:
        # An administrator's own list is the staff's; another company's with company_id.
        return [delivered, n.company_id == company_id if company_id else n.company_id.is_(None)]
    scope = scoped_company(principal, company_id)
    return [delivered, n.company_id == scope]


@router.get("/tenant/notifications/", response_model=InAppPage)
async def in_app_list(
    tx: ControlTx,
    principal: Person,
    paging: Paging,
    company_id: uuid.UUID | None = None,
    unread: Annotated[bool, Query(description="only the unread ones")] = False,
) -> dict[str, Any]:
    """The caller's in-app notifications, newest first, with what they read."""
    n = notify_notice.c
    read = sa.exists().where(notify_read.c.notice_id == n.id, notify_read.c.user_id == principal.sub)
    where = _in_app_where(principal, company_id)
    unread_count = (
        await tx.session.execute(sa.select(sa.func.count()).select_from(notify_notice).where(*where, ~read))
    ).scalar_one()
    if unread:
        where.append(~read)
    total = (
        await tx.session.execute(sa.select(sa.func.count()).select_from(notify_notice).where(*where))
    ).scalar_one()
    rows = (
        await tx.session.execute(
            sa.select(
                n.id,
                n.company_id,
                n.trigger,
                n.severity,
                n.title,
                n.summary,
                n.facts,
                sa.func.coalesce(n.due_at, n.created_at).label("at"),
                read.label("read"),
            )
            .where(*where)
            .order_by(n.id.desc())
            .limit(paging.limit)
            .offset(paging.offset)
        )
    ).mappings()
    return {**page([dict(r) for r in rows], total, paging), "unread": unread_count}


@router.post("/tenant/notifications/read/", response_model=Marked)
async def mark_read(
    tx: ControlTx, principal: Person, body: ReadIn, company_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """Mark notifications read (``ids``, or ``all``) for the caller."""
    if not body.ids and not body.all:
        raise invalid(["body", "ids"], "give ids or all")
    n = notify_notice.c
    where = _in_app_where(principal, company_id)
    if not body.all:
        where.append(n.id.in_(body.ids))
    stmt = (
        pg_insert(notify_read)
        .from_select(
            ["notice_id", "user_id", "company_id"],
            sa.select(n.id, sa.literal(principal.sub), n.company_id).where(*where),
        )
        .on_conflict_do_nothing()
    )
    marked = (await tx.session.execute(stmt.returning(notify_read.c.notice_id))).all()
    return {"marked": len(marked)}
