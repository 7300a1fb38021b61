from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from soc_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_TENANT_", extra="ignore")

    service_name: str = "tenant"
    port: int = 8002
    db_user: str = "soc_tenant"
    db_password: SecretStr = SecretStr("soc_tenant")
    db_schema: str = "tenant"
    # API requests read through this role, which row-level security applies to (it owns nothing).
    app_db_user: str = "soc_tenant_app"
    app_db_password: SecretStr = SecretStr("soc_tenant_app")

    siem_ingest_url: str = "http://127.0.0.1:8011"
    soar_ingest_url: str = "http://127.0.0.1:8012"
    itsm_ingest_url: str = "http://127.0.0.1:8013"
    threatintel_url: str = "http://127.0.0.1:8014"

    # Credentials of integrations are sealed with these keys ("kid:base64key,..."); set in prod.
    crypto_keys: SecretStr = SecretStr("dev1:ZGV2LW9ubHktY3JlZGVudGlhbC1rZXktMzItYnl0ZXM=")

    consumer_batch_size: int = 1000
    consumers_enabled: bool = True
    upload_max_bytes: int = 2 * 1024 * 1024
