from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from soc_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Environment: ``SOC_ITSM_INGEST_<FIELD>``. Per-integration overrides travel in the
    integration's ``settings`` (see :class:`soc_itsm_ingest.resources.SyncOptions` and README.md)."""

    model_config = SettingsConfigDict(env_prefix="SOC_ITSM_INGEST_", extra="ignore")

    # Zoho OAuth access tokens are sealed in the shared token store.
    secrets_used: ClassVar[tuple[str, ...]] = ServiceSettings.secrets_used + ("sealing_keys",)

    service_name: str = "itsm-ingest"
    port: int = 8013
    db_user: str = "soc_itsm_ingest"
    db_password: SecretStr = SecretStr("soc_itsm_ingest")
    db_schema: str = "itsm_ingest"
    tenant_url: str = "http://127.0.0.1:8002"
    scheduler_enabled: bool = True
    concurrency: int = Field(
        default=4, ge=1, description="(integration, resource) runs in parallel per replica"
    )
    # A run renews its lease every third of this while it lives; a dead replica's work moves on after it.
    lease_seconds: int = Field(default=60, ge=10)
    page_size: int = Field(
        default=100, ge=1, le=100, description="row_count per list page (SDP allows at most 100)"
    )
    http_concurrency: int = Field(default=4, ge=1, description="HTTP requests in flight per integration")
    oauth_renew_ahead_seconds: float = Field(
        default=300,
        ge=0,
        le=3000,
        description="renew a Zoho OAuth access token this long before it expires (tokens live 3600 s)",
    )
    incident_id_field: str = Field(
        default="udf_fields.udf_sline_4506",
        description="the request field holding the SOAR incident id (dotted path)",
    )
    ticket_backfill_days: int = Field(
        default=0, ge=0, description="first sync: tickets updated in the last N days; 0 = all"
    )
    ticket_overlap_ms: int = Field(
        default=0, ge=0, description="re-read this much before the cursor (clock skew)"
    )

    # Tickets from incidents.
    tickets_enabled: bool = Field(
        default=True, description="consume soar.incident.upserted and itsm.ticket.create"
    )
    ticket_queue: str = "itsm-ingest.tickets"
    ticket_concurrency: int = Field(default=8, ge=1, description="incidents handled at once per replica")
    ticket_lease_seconds: int = Field(
        default=300,
        ge=30,
        description="a pending ticket request older than this is presumed abandoned "
        "(its owner crashed) and reconciled by searching SDP first; must exceed the longest vendor call",
    )
    ticket_retry_max_seconds: int = Field(
        default=900, ge=1, description="cap of the backoff between attempts"
    )
    ticket_search_before_create: bool = Field(
        default=True,
        description="search SDP for a request already linked to the incident before the "
        "first create too (tickets made by hand or by the old portal); retries always search",
    )
    ticket_max_attempts: int = Field(default=12, ge=1, description="then the request is marked failed")
    reconcile_interval_seconds: float = Field(default=30.0, gt=0)
    routing: Literal["tenant", "static"] = Field(
        default="tenant", description="where incident → (ITSM integration, account) routes come from"
    )
    routing_cache_seconds: float = Field(default=60.0, ge=0)
    static_routes: str = Field(
        default="[]", description="JSON list of routes for routing=static (tests, demo)"
    )

    # Actions on command (itsm.action.requested): a note or a status on a request.
    actions_enabled: bool = Field(default=True, description="consume itsm.action.requested")
    action_queue: str = "itsm-ingest.actions"
    action_max_attempts: int = Field(default=6, ge=1, description="then the action is marked failed")
    action_retry_base_seconds: float = Field(
        default=5.0, gt=0, description="first backoff after a vendor fault (doubles per attempt)"
    )
    action_retry_max_seconds: float = Field(default=600.0, gt=0)
    action_lease_seconds: float = Field(
        default=120.0, ge=10, description="an action not finished within this is taken up again"
    )
    action_reconcile_seconds: float = Field(default=5.0, gt=0)
