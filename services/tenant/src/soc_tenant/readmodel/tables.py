"""The read model's tables as SQLAlchemy Core objects, for building queries (the DDL lives in
migration ``0003_read_model``), and the control plane's tables the read model joins against
(only the columns it reads; their DDL is the control plane's, in ``0001_core`` / ``0002_control_plane``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

md = sa.MetaData()
TS = sa.DateTime(timezone=True)


def _t(name: str, *cols: sa.Column) -> sa.Table:
    return sa.Table(name, md, *cols)


# ---------------------------------------------------------------------------------- control plane
company = _t(
    "company",
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("is_default_sla", sa.Boolean),
    sa.Column("sla_clock_start", sa.Text),
    sa.Column("is_active", sa.Boolean),
    sa.Column("deleted_at", TS),
)
qradar_mapping = _t(
    "qradar_mapping",
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("integration_id", sa.Text),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("contracted_volume_type", sa.Text),
    sa.Column("contracted_volume", sa.Numeric),
    sa.Column("event_collector_ids", JSONB),
    sa.Column("active", sa.Boolean),
)
soar_mapping = _t(
    "soar_mapping",
    sa.Column("company_id", sa.Uuid),
    sa.Column("integration_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("active", sa.Boolean),
)
itsm_mapping = _t(
    "itsm_mapping",
    sa.Column("company_id", sa.Uuid),
    sa.Column("integration_id", sa.Text),
    sa.Column("account_id", sa.Text),
    sa.Column("active", sa.Boolean),
)
integration = _t(
    "integration",
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Uuid),
    sa.Column("integration_type", sa.Text),
    sa.Column("subtype", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("deleted_at", TS),
)
sla_default = _t(
    "sla_default",
    sa.Column("level", sa.Text, primary_key=True),
    sa.Column("tta_minutes", sa.Integer),
    sa.Column("ttn_minutes", sa.Integer),
    sa.Column("ttdn_minutes", sa.Integer),
)
sla_company = _t(
    "sla_company",
    sa.Column("company_id", sa.Uuid),
    sa.Column("integration_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("level", sa.Text),
    sa.Column("tta_minutes", sa.Integer),
    sa.Column("ttn_minutes", sa.Integer),
    sa.Column("ttdn_minutes", sa.Integer),
)

# ------------------------------------------------------------------------------------------ siem
qradar_domain = _t(
    "qradar_domain",
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("deleted", sa.Boolean),
    sa.Column("details", JSONB),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS),
)
qradar_event_collector = _t(
    "qradar_event_collector",
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("collector_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("host_id", sa.BigInteger),
    sa.Column("component_name", sa.Text),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
qradar_log_source_type = _t(
    "qradar_log_source_type",
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("type_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("type_version", sa.Text),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
qradar_log_source_group = _t(
    "qradar_log_source_group",
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("group_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("owner", sa.Text),
    sa.Column("parent_id", sa.BigInteger),
    sa.Column("child_group_ids", JSONB),
    sa.Column("assignable", sa.Boolean),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
qradar_log_source = _t(
    "qradar_log_source",
    sa.Column("id", sa.BigInteger),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("log_source_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("type_id", sa.BigInteger),
    sa.Column("type_name", sa.Text),
    sa.Column("event_collector_id", sa.BigInteger),
    sa.Column("sending_ip", sa.Text),
    sa.Column("enabled", sa.Boolean),
    sa.Column("status", sa.Text),
    sa.Column("status_messages", JSONB),
    sa.Column("group_ids", ARRAY(sa.BigInteger)),
    sa.Column("average_eps", sa.Float),
    sa.Column("creation_time", TS),
    sa.Column("modified_time", TS),
    sa.Column("last_event_time", TS),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
qradar_offense = _t(
    "qradar_offense",
    sa.Column("id", sa.BigInteger),
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("offense_id", sa.BigInteger, primary_key=True),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("severity", sa.SmallInteger),
    sa.Column("magnitude", sa.SmallInteger),
    sa.Column("credibility", sa.SmallInteger),
    sa.Column("relevance", sa.SmallInteger),
    sa.Column("event_count", sa.BigInteger),
    sa.Column("flow_count", sa.BigInteger),
    sa.Column("assigned_to", sa.Text),
    sa.Column("categories", JSONB),
    sa.Column("rules", JSONB),
    sa.Column("offense_source", sa.Text),
    sa.Column("offense_type", sa.Integer),
    sa.Column("source_address_ids", JSONB),
    sa.Column("local_destination_address_ids", JSONB),
    sa.Column("destination_networks", JSONB),
    sa.Column("log_sources", JSONB),
    sa.Column("start_time", TS),
    sa.Column("last_updated_time", TS),
    sa.Column("close_time", TS),
    sa.Column("closing_reason_id", sa.BigInteger),
    sa.Column("closing_reason", sa.Text),
    sa.Column("closing_user", sa.Text),
    sa.Column("follow_up", sa.Boolean),
    sa.Column("protected", sa.Boolean),
    sa.Column("version", sa.BigInteger),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS),
    sa.Column("last_persisted_time", TS),
    sa.Column("notes", JSONB),
)
qradar_offense_notes = _t(
    "qradar_offense_notes",
    sa.Column("integration_id", sa.Text, primary_key=True),
    sa.Column("offense_id", sa.BigInteger, primary_key=True),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("notes", JSONB),
    sa.Column("version", sa.BigInteger),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS),
)
eps_sample = _t(
    "eps_sample",
    sa.Column("integration_id", sa.Text),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("granularity", sa.Text),
    sa.Column("window_start", TS),
    sa.Column("window_end", TS),
    sa.Column("collector", sa.Text),
    sa.Column("average_eps", sa.Float),
    sa.Column("peak_eps", sa.Float),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
metric_sample = _t(
    "metric_sample",
    sa.Column("integration_id", sa.Text),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("family", sa.Text),
    sa.Column("granularity", sa.Text),
    sa.Column("window_start", TS),
    sa.Column("window_end", TS),
    sa.Column("rows", JSONB),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
offense_daily = _t(
    "offense_daily",
    sa.Column("integration_id", sa.Text),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("day", sa.Date),
    sa.Column("severity", sa.SmallInteger),
    sa.Column("status", sa.Text),
    sa.Column("n", sa.BigInteger),
)
offense_category_daily = _t(
    "offense_category_daily",
    sa.Column("integration_id", sa.Text),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("day", sa.Date),
    sa.Column("category", sa.Text),
    sa.Column("n", sa.BigInteger),
)

offense_totals = _t(
    "offense_totals",
    sa.Column("integration_id", sa.Text),
    sa.Column("domain_id", sa.BigInteger),
    sa.Column("severity", sa.SmallInteger),
    sa.Column("status", sa.Text),
    sa.Column("n", sa.BigInteger),
)

# ------------------------------------------------------------------------------------------ soar
soar_account = _t(
    "soar_account",
    sa.Column("integration_id", sa.Text),
    sa.Column("account_id", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("display_name", sa.Text),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
soar_incident = _t(
    "soar_incident",
    sa.Column("id", sa.BigInteger),
    sa.Column("integration_id", sa.Text),
    sa.Column("incident_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("type", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("severity", sa.Text),
    sa.Column("owner", sa.Text),
    sa.Column("playbook_id", sa.Text),
    sa.Column("investigation_id", sa.Text),
    sa.Column("created", TS),
    sa.Column("modified", TS),
    sa.Column("occurred", TS),
    sa.Column("closed", TS),
    sa.Column("close_reason", sa.Text),
    sa.Column("close_notes", sa.Text),
    sa.Column("closing_user_id", sa.Text),
    sa.Column("phase", sa.Text),
    sa.Column("priority", sa.Text),
    sa.Column("tta_at", TS),
    sa.Column("ttn_at", TS),
    sa.Column("ttdn_at", TS),
    sa.Column("initial_notification_at", TS),
    sa.Column("rules", JSONB),
    sa.Column("offense_ids", JSONB),
    sa.Column("log_source_types", JSONB),
    sa.Column("source_ips", JSONB),
    sa.Column("mitre_tactics", JSONB),
    sa.Column("mitre_techniques", JSONB),
    sa.Column("qradar_category", sa.Text),
    sa.Column("qradar_subcategory", sa.Text),
    sa.Column("low_level_categories", JSONB),
    sa.Column("configuration_item", sa.Text),
    sa.Column("itsm_sync_status", sa.Text),
    sa.Column("sla", sa.Integer),
    sa.Column("custom_fields", JSONB),
    sa.Column("version", sa.BigInteger),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS),
    sa.Column("vendor_priority", sa.Text),
)
soar_note = _t(
    "soar_note",
    sa.Column("integration_id", sa.Text),
    sa.Column("note_id", sa.Text),
    sa.Column("incident_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("author", sa.Text),
    sa.Column("created", TS),
    sa.Column("content", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
incident_daily = _t(
    "incident_daily",
    sa.Column("integration_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("day", sa.Date),
    sa.Column("priority", sa.Text),
    sa.Column("severity", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("n", sa.BigInteger),
)
incident_facet_daily = _t(
    "incident_facet_daily",
    sa.Column("integration_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("day", sa.Date),
    sa.Column("facet", sa.Text),
    sa.Column("value", sa.Text),
    sa.Column("n", sa.BigInteger),
)

incident_totals = _t(
    "incident_totals",
    sa.Column("integration_id", sa.Text),
    sa.Column("account", sa.Text),
    sa.Column("priority", sa.Text),
    sa.Column("severity", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("n", sa.BigInteger),
)

# ------------------------------------------------------------------------------------------ itsm
itsm_account = _t(
    "itsm_account",
    sa.Column("integration_id", sa.Text),
    sa.Column("account_id", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("version", sa.BigInteger),
    sa.Column("updated_at", TS),
)
itsm_ticket = _t(
    "itsm_ticket",
    sa.Column("id", sa.BigInteger),
    sa.Column("integration_id", sa.Text),
    sa.Column("ticket_id", sa.Text),
    sa.Column("account_id", sa.Text),
    sa.Column("account_name", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("short_description", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("priority", sa.Text),
    sa.Column("is_overdue", sa.Boolean),
    sa.Column("created_time", TS),
    sa.Column("last_updated_time", TS),
    sa.Column("created_by_name", sa.Text),
    sa.Column("soar_incident_id", sa.Text),
    sa.Column("version", sa.BigInteger),
    sa.Column("event_id", sa.Text),
    sa.Column("updated_at", TS),
    sa.Column("technician_name", sa.Text),
    sa.Column("resolution", sa.Text),
    sa.Column("request_url", sa.Text),
    sa.Column("reference", sa.Text),
)
ticket_daily = _t(
    "ticket_daily",
    sa.Column("integration_id", sa.Text),
    sa.Column("account_id", sa.Text),
    sa.Column("day", sa.Date),
    sa.Column("status", sa.Text),
    sa.Column("priority", sa.Text),
    sa.Column("is_overdue", sa.Boolean),
    sa.Column("n", sa.BigInteger),
)

ticket_totals = _t(
    "ticket_totals",
    sa.Column("integration_id", sa.Text),
    sa.Column("account_id", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("priority", sa.Text),
    sa.Column("is_overdue", sa.Boolean),
    sa.Column("n", sa.BigInteger),
)

# ------------------------------------------------------------------------------------ threat intel
ti_alert = _t(
    "ti_alert",
    sa.Column("id", sa.BigInteger),
    sa.Column("integration_id", sa.Text),
    sa.Column("short_id", sa.Text),
    sa.Column("company_id", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("tlp", sa.Text),
    sa.Column("published_time", TS),
    sa.Column("content", sa.Text),
    sa.Column("push_required", sa.Boolean),
    sa.Column("push_email_notification", sa.Boolean),
    sa.Column("tracking_id", sa.Text),
    sa.Column("card_image", sa.Text),
    sa.Column("card_info", sa.Text),
    sa.Column("event", sa.Text),
    sa.Column("intel_id", sa.Text),
    sa.Column("rfi_id", sa.Text),
    sa.Column("groups", JSONB),
    sa.Column("recipient_groups", JSONB),
    sa.Column("tags", JSONB),
    sa.Column("category", JSONB),
    sa.Column("version", sa.BigInteger),
    sa.Column("event_id", sa.Text),
    sa.Column("created_at", TS),
    sa.Column("updated_at", TS),
)
ti_tag = _t(
    "ti_tag",
    sa.Column("integration_id", sa.Text),
    sa.Column("tag_id", sa.Text),
    sa.Column("company_id", sa.Text),
    sa.Column("tag_name", sa.Text),
    sa.Column("tag_slug", sa.Text),
    sa.Column("is_active", sa.Boolean),
)
ti_group = _t(
    "ti_group",
    sa.Column("integration_id", sa.Text),
    sa.Column("group_id", sa.Text),
    sa.Column("company_id", sa.Text),
    sa.Column("group_name", sa.Text),
    sa.Column("group_tlp", sa.Text),
    sa.Column("group_type", sa.Text),
)
ti_category = _t(
    "ti_category",
    sa.Column("integration_id", sa.Text),
    sa.Column("category_id", sa.Text),
    sa.Column("company_id", sa.Text),
    sa.Column("category_name", sa.Text),
    sa.Column("threat_indicator_fields", JSONB),
    sa.Column("additional_fields", JSONB),
    sa.Column("required_fields", JSONB),
)
ti_custom_field = _t(
    "ti_custom_field",
    sa.Column("integration_id", sa.Text),
    sa.Column("field_id", sa.Text),
    sa.Column("company_id", sa.Text),
    sa.Column("field_name", sa.Text),
    sa.Column("field_label", sa.Text),
    sa.Column("field_type", sa.Text),
)

# The control plane's record of the ingestors' sync reports (it consumes ingest.sync.reported).
sync_report = _t(
    "integration_sync_report",
    sa.Column("integration_id", sa.Text),
    sa.Column("resource", sa.Text),
    sa.Column("outcome", sa.Text),
    sa.Column("started_at", TS),
    sa.Column("finished_at", TS),
    sa.Column("records", sa.Integer),
    sa.Column("error_category", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("consecutive_failures", sa.Integer),
    sa.Column("last_success_at", TS),
    sa.Column("received_at", TS),
)
