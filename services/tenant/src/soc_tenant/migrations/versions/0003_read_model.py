"""Read model: offenses, assets, incidents, tickets, alerts, metrics, rollups (owned by soc_tenant.readmodel)

Every row keeps the vendor's keys (integration id + QRadar domain / XSOAR account / SDP account);
which company a row belongs to is decided at read time through the admin's mapping tables, so a
mapping made or changed later applies to rows already stored. Row-level security on every table
resolves the caller's company the same way (``FOR SELECT`` only: the API role never writes here).

The rollup tables are maintained by the consumers in the same statement as the upserts (see
``soc_tenant.readmodel.ingest``), so dashboards read a few thousand rollup rows instead of
scanning millions of offenses or incidents.

Revision ID: 0003_read_model
"""

from alembic import op

revision = "0003_read_model"
down_revision = "0002_control_plane"
branch_labels = None
depends_on = None

COMPANY = "current_setting('app.company_id', true)"
ADMIN = "current_setting('app.is_admin', true) = 'on'"

# One predicate per way a vendor record reaches a company. Uncorrelated IN-subqueries on purpose:
# PostgreSQL runs them once per query as a hashed subplan, not once per row.
QRADAR = f"""(integration_id, domain_id) IN (
    SELECT m.integration_id::text, m.domain_id FROM qradar_mapping m WHERE m.active AND m.company_id::text = {COMPANY})"""
QRADAR_INTEGRATION = f"""integration_id IN (
    SELECT m.integration_id::text FROM qradar_mapping m WHERE m.active AND m.company_id::text = {COMPANY})"""
SOAR = f"""(integration_id, account) IN (
    SELECT m.integration_id::text, m.account FROM soar_mapping m WHERE m.active AND m.company_id::text = {COMPANY})"""
ITSM = f"""(integration_id, account_id) IN (
    SELECT m.integration_id::text, m.account_id::text FROM itsm_mapping m WHERE m.active AND m.company_id::text = {COMPANY})"""
TI = f"""(company_id = {COMPANY} OR (company_id IS NULL AND integration_id IN (
    SELECT i.id::text FROM integration i WHERE i.deleted_at IS NULL AND i.company_id::text = {COMPANY})))"""
COLLECTOR = f"""EXISTS (SELECT 1 FROM qradar_mapping m
    WHERE m.active AND m.company_id::text = {COMPANY} AND m.integration_id::text = qradar_event_collector.integration_id
      AND (m.event_collector_ids @> to_jsonb(qradar_event_collector.collector_id)
           OR EXISTS (SELECT 1 FROM qradar_domain d WHERE d.integration_id = m.integration_id
                      AND d.domain_id = m.domain_id
                      AND d.details -> 'event_collector_ids' @> to_jsonb(qradar_event_collector.collector_id))))
    OR EXISTS (SELECT 1 FROM qradar_log_source ls WHERE ls.integration_id = qradar_event_collector.integration_id
               AND ls.event_collector_id = qradar_event_collector.collector_id)"""

TABLES = """
CREATE TABLE qradar_event_collector (
    integration_id text NOT NULL,
    collector_id bigint NOT NULL,
    name text NOT NULL,
    host_id bigint,
    component_name text,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, collector_id)
);
CREATE TABLE qradar_log_source_type (
    integration_id text NOT NULL,
    type_id bigint NOT NULL,
    name text NOT NULL,
    type_version text,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, type_id)
);
CREATE TABLE qradar_log_source_group (
    integration_id text NOT NULL,
    group_id bigint NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    owner text,
    parent_id bigint,
    child_group_ids jsonb NOT NULL DEFAULT '[]',
    assignable boolean NOT NULL DEFAULT false,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, group_id)
);
CREATE TABLE qradar_log_source (
    id bigserial UNIQUE,
    integration_id text NOT NULL,
    log_source_id bigint NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    domain_id bigint,
    type_id bigint,
    type_name text,
    event_collector_id bigint,
    sending_ip text,
    enabled boolean NOT NULL DEFAULT true,
    status text,
    status_messages jsonb NOT NULL DEFAULT '[]',
    group_ids bigint[] NOT NULL DEFAULT '{}',
    average_eps double precision NOT NULL DEFAULT 0,
    creation_time timestamptz,
    modified_time timestamptz,
    last_event_time timestamptz,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, log_source_id)
);
CREATE INDEX ix_log_source_domain ON qradar_log_source (integration_id, domain_id, name);
CREATE INDEX ix_log_source_collector ON qradar_log_source (integration_id, event_collector_id);

CREATE TABLE qradar_offense (
    id bigserial UNIQUE,
    integration_id text NOT NULL,
    offense_id bigint NOT NULL,
    domain_id bigint NOT NULL,
    description text NOT NULL,
    status text NOT NULL,
    severity smallint NOT NULL,
    magnitude smallint NOT NULL,
    credibility smallint NOT NULL,
    relevance smallint NOT NULL,
    event_count bigint NOT NULL DEFAULT 0,
    flow_count bigint NOT NULL DEFAULT 0,
    assigned_to text,
    categories jsonb NOT NULL DEFAULT '[]',
    rules jsonb NOT NULL DEFAULT '[]',
    offense_source text,
    offense_type integer,
    source_address_ids jsonb NOT NULL DEFAULT '[]',
    local_destination_address_ids jsonb NOT NULL DEFAULT '[]',
    destination_networks jsonb NOT NULL DEFAULT '[]',
    log_sources jsonb NOT NULL DEFAULT '[]',
    start_time timestamptz NOT NULL,
    last_updated_time timestamptz NOT NULL,
    close_time timestamptz,
    closing_reason_id bigint,
    closing_reason text,
    closing_user text,
    follow_up boolean NOT NULL DEFAULT false,
    protected boolean NOT NULL DEFAULT false,
    version bigint NOT NULL,
    event_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, offense_id)
);
CREATE INDEX ix_offense_scope_time ON qradar_offense (integration_id, domain_id, start_time DESC, id DESC);
CREATE INDEX ix_offense_scope_status ON qradar_offense (integration_id, domain_id, status, start_time DESC)
    INCLUDE (severity);
CREATE INDEX ix_offense_offense_id ON qradar_offense (offense_id);

CREATE TABLE eps_sample (
    integration_id text NOT NULL,
    domain_id bigint NOT NULL,
    granularity text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    collector text NOT NULL DEFAULT '',
    average_eps double precision NOT NULL,
    peak_eps double precision NOT NULL,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, domain_id, granularity, window_start, collector)
);
CREATE TABLE metric_sample (
    integration_id text NOT NULL,
    domain_id bigint NOT NULL,
    family text NOT NULL,
    granularity text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    rows jsonb NOT NULL DEFAULT '[]',
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, domain_id, family, granularity, window_start)
);

CREATE TABLE soar_account (
    integration_id text NOT NULL,
    account_id text NOT NULL,
    name text NOT NULL,
    display_name text,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, account_id)
);
CREATE INDEX ix_soar_account_name ON soar_account (integration_id, name);
CREATE TABLE soar_incident (
    id bigserial UNIQUE,
    integration_id text NOT NULL,
    incident_id text NOT NULL,
    account text NOT NULL DEFAULT '',
    name text NOT NULL,
    type text,
    status text NOT NULL,
    severity text NOT NULL,
    owner text,
    playbook_id text,
    investigation_id text,
    created timestamptz NOT NULL,
    modified timestamptz NOT NULL,
    occurred timestamptz,
    closed timestamptz,
    close_reason text,
    close_notes text,
    closing_user_id text,
    phase text,
    priority text NOT NULL,
    tta_at timestamptz,
    ttn_at timestamptz,
    ttdn_at timestamptz,
    initial_notification_at timestamptz,
    rules jsonb NOT NULL DEFAULT '[]',
    offense_ids jsonb NOT NULL DEFAULT '[]',
    log_source_types jsonb NOT NULL DEFAULT '[]',
    source_ips jsonb NOT NULL DEFAULT '[]',
    mitre_tactics jsonb NOT NULL DEFAULT '[]',
    mitre_techniques jsonb NOT NULL DEFAULT '[]',
    qradar_category text,
    qradar_subcategory text,
    low_level_categories jsonb NOT NULL DEFAULT '[]',
    configuration_item text,
    itsm_sync_status text,
    sla integer,
    custom_fields jsonb NOT NULL DEFAULT '{}',
    version bigint NOT NULL,
    event_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, incident_id)
);
CREATE INDEX ix_incident_scope_created ON soar_incident (integration_id, account, created DESC, id DESC)
    INCLUDE (priority, severity, status, tta_at, ttn_at, ttdn_at, closed);
CREATE INDEX ix_incident_scope_status ON soar_incident (integration_id, account, status, created DESC);
CREATE INDEX ix_incident_offense_ids ON soar_incident USING gin (offense_ids jsonb_path_ops);
CREATE INDEX ix_incident_incident_id ON soar_incident (incident_id);

CREATE TABLE soar_note (
    integration_id text NOT NULL,
    note_id text NOT NULL,
    incident_id text NOT NULL,
    account text NOT NULL DEFAULT '',
    author text,
    created timestamptz NOT NULL,
    content text NOT NULL,
    category text,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, note_id)
);
CREATE INDEX ix_note_incident ON soar_note (integration_id, incident_id, created);

CREATE TABLE itsm_account (
    integration_id text NOT NULL,
    account_id text NOT NULL,
    name text NOT NULL,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, account_id)
);
CREATE TABLE itsm_ticket (
    id bigserial UNIQUE,
    integration_id text NOT NULL,
    ticket_id text NOT NULL,
    account_id text NOT NULL DEFAULT '',
    account_name text,
    subject text NOT NULL,
    short_description text,
    status text NOT NULL DEFAULT '',
    priority text NOT NULL DEFAULT '',
    is_overdue boolean NOT NULL DEFAULT false,
    created_time timestamptz NOT NULL,
    last_updated_time timestamptz NOT NULL,
    created_by_name text,
    soar_incident_id text,
    version bigint NOT NULL,
    event_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, ticket_id)
);
CREATE INDEX ix_ticket_scope_created ON itsm_ticket (integration_id, account_id, created_time DESC, id DESC);
CREATE INDEX ix_ticket_incident ON itsm_ticket (soar_incident_id);

CREATE TABLE ti_alert (
    id bigserial UNIQUE,
    integration_id text NOT NULL,
    short_id text NOT NULL,
    company_id text,
    title text NOT NULL,
    status text,
    tlp text,
    published_time timestamptz,
    content text,
    push_required boolean,
    push_email_notification boolean,
    tracking_id text,
    card_image text,
    card_info text,
    event text,
    intel_id text,
    rfi_id text,
    groups jsonb NOT NULL DEFAULT '[]',
    recipient_groups jsonb NOT NULL DEFAULT '[]',
    tags jsonb NOT NULL DEFAULT '[]',
    category jsonb,
    version bigint NOT NULL,
    event_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, short_id)
);
CREATE INDEX ix_ti_alert_published ON ti_alert (integration_id, published_time DESC);
CREATE INDEX ix_ti_alert_company ON ti_alert (company_id, published_time DESC);
CREATE TABLE ti_tag (
    integration_id text NOT NULL,
    tag_id text NOT NULL,
    company_id text,
    tag_name text NOT NULL,
    tag_slug text,
    is_active boolean NOT NULL DEFAULT true,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, tag_id)
);
CREATE TABLE ti_group (
    integration_id text NOT NULL,
    group_id text NOT NULL,
    company_id text,
    group_name text NOT NULL,
    group_tlp text,
    group_type text,
    allowed_for_intel_submission boolean NOT NULL DEFAULT false,
    allowed_for_rfi_submission boolean NOT NULL DEFAULT false,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, group_id)
);
CREATE TABLE ti_category (
    integration_id text NOT NULL,
    category_id text NOT NULL,
    company_id text,
    category_name text NOT NULL,
    threat_indicator_fields jsonb NOT NULL DEFAULT '[]',
    additional_fields jsonb NOT NULL DEFAULT '[]',
    required_fields jsonb NOT NULL DEFAULT '[]',
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, category_id)
);
CREATE TABLE ti_custom_field (
    integration_id text NOT NULL,
    field_id text NOT NULL,
    company_id text,
    field_name text NOT NULL,
    field_label text,
    field_type text,
    field_description text,
    is_system boolean NOT NULL DEFAULT false,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, field_id)
);

-- Rollups, maintained by the consumers in the upsert's own statement.
CREATE TABLE offense_daily (
    integration_id text NOT NULL,
    domain_id bigint NOT NULL,
    day date NOT NULL,
    severity smallint NOT NULL,
    status text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (integration_id, domain_id, day, severity, status)
);
CREATE TABLE offense_category_daily (
    integration_id text NOT NULL,
    domain_id bigint NOT NULL,
    day date NOT NULL,
    category text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (integration_id, domain_id, day, category)
);
CREATE TABLE incident_daily (
    integration_id text NOT NULL,
    account text NOT NULL,
    day date NOT NULL,
    priority text NOT NULL,
    severity text NOT NULL,
    status text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (integration_id, account, day, priority, severity, status)
);
CREATE TABLE incident_facet_daily (
    integration_id text NOT NULL,
    account text NOT NULL,
    day date NOT NULL,
    facet text NOT NULL,
    value text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (integration_id, account, facet, day, value)
);
-- All-time totals (the same deltas without the day): the dashboards' current-state widgets and
-- the lists' totals read a few dozen rows instead of a year of daily rows.
CREATE TABLE offense_totals (
    integration_id text NOT NULL,
    domain_id bigint NOT NULL,
    severity smallint NOT NULL,
    status text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (integration_id, domain_id, severity, status)
);
CREATE TABLE incident_totals (
    integration_id text NOT NULL,
    account text NOT NULL,
    priority text NOT NULL,
    severity text NOT NULL,
    status text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (integration_id, account, priority, severity, status)
);
CREATE TABLE ticket_totals (
    integration_id text NOT NULL,
    account_id text NOT NULL,
    status text NOT NULL,
    priority text NOT NULL,
    is_overdue boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (integration_id, account_id, status, priority, is_overdue)
);
CREATE TABLE ticket_daily (
    integration_id text NOT NULL,
    account_id text NOT NULL,
    day date NOT NULL,
    status text NOT NULL,
    priority text NOT NULL,
    is_overdue boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (integration_id, account_id, day, status, priority, is_overdue)
);
"""

POLICIES = {
    "qradar_event_collector": COLLECTOR,
    "qradar_log_source_type": QRADAR_INTEGRATION,
    "qradar_log_source_group": QRADAR_INTEGRATION,
    "qradar_log_source": QRADAR,
    "qradar_offense": QRADAR,
    "eps_sample": QRADAR,
    "metric_sample": QRADAR,
    "offense_daily": QRADAR,
    "offense_category_daily": QRADAR,
    "offense_totals": QRADAR,
    "soar_account": f"""(integration_id, name) IN (
        SELECT m.integration_id::text, m.account FROM soar_mapping m WHERE m.active AND m.company_id::text = {COMPANY})""",
    "soar_incident": SOAR,
    "soar_note": SOAR,
    "incident_daily": SOAR,
    "incident_facet_daily": SOAR,
    "incident_totals": SOAR,
    "itsm_account": ITSM,
    "itsm_ticket": ITSM,
    "ticket_daily": ITSM,
    "ticket_totals": ITSM,
    "ti_alert": TI,
    "ti_tag": TI,
    "ti_group": TI,
    "ti_category": TI,
    "ti_custom_field": TI,
}


def upgrade() -> None:
    op.execute(TABLES)
    for table, predicate in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY readmodel_isolation ON {table} FOR SELECT USING ({ADMIN} OR {predicate})")
    # QRadar domains were created by 0001 without a policy: vendor tenants a company is not mapped
    # to must stay invisible to it as well.
    op.execute("ALTER TABLE qradar_domain ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY readmodel_isolation ON qradar_domain FOR SELECT USING ({ADMIN} OR {QRADAR})")


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS readmodel_isolation ON qradar_domain")
    op.execute("ALTER TABLE qradar_domain DISABLE ROW LEVEL SECURITY")
    for table in reversed(list(POLICIES)):
        op.execute(f"DROP TABLE IF EXISTS {table}")
