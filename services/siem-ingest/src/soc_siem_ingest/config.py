from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from soc_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Environment: ``SOC_SIEM_INGEST_<FIELD>``. Per-integration overrides of the sync options
    travel in the integration's ``settings`` (see :class:`soc_siem_ingest.resources.SyncOptions`)."""

    model_config = SettingsConfigDict(env_prefix="SOC_SIEM_INGEST_", extra="ignore")

    service_name: str = "siem-ingest"
    port: int = 8011
    db_user: str = "soc_siem_ingest"
    db_password: SecretStr = SecretStr("soc_siem_ingest")
    db_schema: str = "siem_ingest"
    tenant_url: str = "http://127.0.0.1:8002"
    scheduler_enabled: bool = True
    concurrency: int = Field(default=4, ge=1, description="(integration, resource) runs at once per replica")
    # A live run renews its lease every third of this (however long an Ariel window takes before
    # its page); a replica that dies leaves its work to the others after at most this long.
    lease_seconds: int = Field(default=60, ge=10)
    qradar_api_version: str = "16.0"
    page_size: int = Field(default=1000, ge=1, le=10_000, description="Range page size of QRadar lists")
    http_concurrency: int = Field(default=4, ge=1, description="HTTP requests in flight per integration run")
    offense_backfill_days: int = Field(
        default=0, ge=0, description="first sync: last N days of offenses; 0 = all"
    )
    offense_overlap_ms: int = Field(
        default=60_000, ge=0, description="re-read offenses persisted this long before the cursor"
    )
    offense_notes: bool = Field(
        default=True, description="sync offense notes (for changed offenses, and a sweep of open ones)"
    )
    offense_addresses: bool = Field(
        default=True,
        description="resolve offenses' source and local destination address ids to addresses",
    )
    notes_sweep_per_run: int = Field(
        default=100, ge=0, description="open offenses whose notes each notes run re-reads unasked"
    )
    ariel_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Ariel searches slower are cancelled"
    )
    ariel_poll_initial_seconds: float = Field(default=0.1, gt=0)
    ariel_poll_max_seconds: float = Field(default=2.0, gt=0)
    ariel_concurrency: int = Field(
        default=4, ge=1, description="Ariel searches in flight per integration run"
    )
    metrics_settle_seconds: int = Field(default=300, ge=0, description="wait this long after a window closes")
    metrics_catch_up_windows: int = Field(
        default=24, ge=1, description="missed windows computed after an outage"
    )
