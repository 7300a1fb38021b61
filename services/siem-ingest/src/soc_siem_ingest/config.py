from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from soc_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_SIEM_INGEST_", extra="ignore")

    service_name: str = "siem-ingest"
    port: int = 8011
    db_user: str = "soc_siem_ingest"
    db_password: SecretStr = SecretStr("soc_siem_ingest")
    db_schema: str = "siem_ingest"
    tenant_url: str = "http://127.0.0.1:8002"
    scheduler_enabled: bool = True
    concurrency: int = 4
    qradar_api_version: str = "16.0"
    page_size: int = 1000
