"""Service settings (environment). Per-integration overrides travel in ``IntegrationChanged.settings``
(see :class:`soc_threatintel.resources.SyncOptions`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from soc_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Environment: ``SOC_THREATINTEL_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="SOC_THREATINTEL_", extra="ignore")

    service_name: str = "threatintel"
    port: int = 8014
    db_user: str = "soc_threatintel"
    db_password: SecretStr = SecretStr("soc_threatintel")
    db_schema: str = "threatintel"
    tenant_url: str = "http://127.0.0.1:8002"
    scheduler_enabled: bool = True
    concurrency: int = Field(
        default=4, ge=1, description="(integration, resource) runs in parallel per replica"
    )
    # A run renews its lease every third of this while it lives; a dead replica's work moves on after it.
    lease_seconds: int = Field(default=60, ge=10)
    page_size: int = Field(
        default=500, ge=1, le=1000, description="list_alert page_size (CSAP caps it at 1000)"
    )
    http_concurrency: int = Field(
        default=8,
        ge=1,
        le=128,
        description="requests in flight per integration run (alert details in parallel)",
    )
    signature_window_seconds: int = Field(
        default=20,
        ge=1,
        le=30,
        description="Expires = now + this: Cyware accepts a signature for at most 30 s from issue",
    )
    alert_backfill_days: int = Field(
        default=0, ge=0, description="first sync: alerts published in the last N days; 0 = all"
    )
    alert_overlap_seconds: int = Field(
        default=0,
        ge=0,
        le=86_400,
        description="also re-read this much before the cursor (back-dated late alerts)",
    )
    alert_revisit_hours: int = Field(
        default=24,
        ge=0,
        le=24 * 30,
        description="alert_updates re-reads alerts published this recently; 0 = off",
    )
