"""The notification tables (migration 0014), on the control plane's metadata.

Every table carries ``company_id`` and row-level security keyed on it; rows without a company are the
MSSP's own staff's (admins only).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from soc_tenant.control.tables import md

TS = sa.DateTime(timezone=True)

notify_channel = sa.Table(
    "notify_channel",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # email | webhook | slack | teams | in_app
    sa.Column("config", JSONB, nullable=False),  # nothing secret
    sa.Column("secret_sealed", sa.Text),  # SMTP password, webhook secret, Slack/Teams URL
    sa.Column("secret_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rate_per_minute", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("parked_at", TS),
    sa.Column("park_reason", sa.Text),
    sa.Column("created_at", TS, server_default=sa.func.now()),
    sa.Column("updated_at", TS, server_default=sa.func.now()),
)

notify_rule = sa.Table(
    "notify_rule",
    md,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("min_offense_severity", sa.Integer),
    sa.Column("min_incident_severity", sa.Text),
    sa.Column("lead_minutes", sa.Integer),
    sa.Column("polls", sa.Integer),
    sa.Column("channel_ids", ARRAY(sa.Uuid), nullable=False),
    sa.Column("created_at", TS, server_default=sa.func.now()),
    sa.Column("updated_at", TS, server_default=sa.func.now()),
)

notify_notice = sa.Table(
    "notify_notice",
    md,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("rule_id", sa.Uuid, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("dedup_key", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("facts", JSONB, nullable=False),
    sa.Column("due_at", TS),  # the moment the condition became true (an SLA deadline, an event's time)
    sa.Column("created_at", TS, nullable=False),
)

notify_delivery = sa.Table(
    "notify_delivery",
    md,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("notice_id", sa.BigInteger, nullable=False),
    sa.Column("channel_id", sa.Uuid, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS, nullable=False),
    sa.Column("lease_until", TS),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", TS),
    sa.Column("created_at", TS, nullable=False),
)

notify_attempt = sa.Table(
    "notify_attempt",
    md,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("delivery_id", sa.BigInteger, nullable=False),
    sa.Column("channel_id", sa.Uuid, nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),  # sent | retry | failed
    sa.Column("error_code", sa.Text),
    sa.Column("detail", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
)

notify_read = sa.Table(
    "notify_read",
    md,
    sa.Column("notice_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("read_at", TS, server_default=sa.func.now()),
)

# Per (integration, resource): the current run of failed or empty polls (integration triggers).
notify_sync_watch = sa.Table(
    "notify_sync_watch",
    md,
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("resource", sa.Text, primary_key=True),
    sa.Column("failing_since", TS),
    sa.Column("empty_polls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("empty_since", TS),
)
