"""soar-ingest settings (environment prefix ``SOC_SOAR_INGEST_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from soc_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_SOAR_INGEST_", extra="ignore")

    service_name: str = "soar-ingest"
    port: int = 8012
    db_user: str = "soc_soar_ingest"
    db_password: SecretStr = SecretStr("soc_soar_ingest")
    db_schema: str = "soar_ingest"
    tenant_url: str = "http://127.0.0.1:8002"
    scheduler_enabled: bool = True
    concurrency: int = 4
    # Incidents per search page; XSOAR refuses more than 1000.
    page_size: int = Field(default=1000, ge=1, le=1000)
    # War-room reads in flight per integration while collecting notes.
    notes_concurrency: int = Field(default=8, ge=1, le=64)

    # Actions on command (soar.action.requested): escalate, update, run a playbook.
    actions_enabled: bool = Field(default=True, description="consume soar.action.requested")
    action_queue: str = "soar-ingest.actions"
    action_max_attempts: int = Field(default=6, ge=1, description="then the action is marked failed")
    action_retry_base_seconds: float = Field(
        default=5.0, gt=0, description="first backoff after a vendor fault (doubles per attempt)"
    )
    action_retry_max_seconds: float = Field(default=600.0, gt=0)
    action_lease_seconds: float = Field(
        default=120.0, ge=10, description="an action not finished within this is taken up again"
    )
    action_reconcile_seconds: float = Field(default=5.0, gt=0)
