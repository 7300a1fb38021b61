from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
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

    # Credentials of integrations are sealed with the suite-wide SOC_SEALING_KEYS (base settings).
    secrets_used: ClassVar[tuple[str, ...]] = ServiceSettings.secrets_used + ("sealing_keys",)

    # The true/false-positive rule (readmodel.positives): the ITSM sync status of each kind and what a
    # true positive must have (any of owner, tta, ttn, ttdn, priority).
    true_positive_status: str = "Ready"
    false_positive_status: str = "Done"
    true_positive_requires: str = "owner,tta,ttn,ttdn,priority"

    # The operator's SMTP relay for e-mail channels that name no server of their own.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr = SecretStr("")
    # Notices (with their deliveries, attempts and read marks) older than this are purged once none
    # of their deliveries is still pending; 0 keeps them.
    notify_retention_days: int = Field(default=180, ge=0)

    consumer_batch_size: int = 1000
    # Threat-intel matching: a new alert is matched against the offenses and incidents seen within
    # this many days; a new offense or incident against the alerts published within the other.
    ti_match_lookback_days: int = 30
    ti_alert_max_age_days: int = 365
    consumers_enabled: bool = True
    # Extract and match the observables of records stored before matching existed, in the
    # background after the consumers start (resumes where it stopped; ``python -m soc_tenant
    # ti-backfill`` runs the same to the end in the foreground).
    ti_backfill_on_start: bool = True
    upload_max_bytes: int = 2 * 1024 * 1024
    # Peers whose X-Forwarded-For is believed (the gateway): the audit trail records the nearest
    # address of the chain that is not one of them. Anyone else is recorded under their own address.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    # The audit store keeps records this many days (0: for ever) unless a company has its own
    # retention; the purge runs this often.
    audit_retention_days: int = Field(default=400, ge=0, le=36500)
    audit_purge_interval_seconds: float = 3600.0
    # The growing read-model records (offenses, incidents, EPS and metric samples) are kept this many days
    # after their vendor time (0: for ever) unless a company has its own retention; monthly
    # partitions are created this many months ahead; the maintenance (partitions, retention) runs
    # this often and deletes at most ``record_retention_batch`` rows per statement,
    # ``record_retention_max_batches`` statements per table and round.
    record_retention_days: int = Field(default=0, ge=0, le=36500)
    partition_months_ahead: int = Field(default=3, ge=1, le=24)
    partition_maintenance_interval_seconds: float = 3600.0
    record_retention_batch: int = Field(default=5000, ge=1)
    record_retention_max_batches: int = Field(default=200, ge=1)
    # A vendor action without an outcome this long after it was accepted (no ingestor took it, or
    # it is still retrying) ends ``expired``, and the ingestor never starts it after that time
    # (0: actions wait for ever); expired actions are looked for this often.
    action_expiry_seconds: float = Field(default=1800.0, ge=0)
    action_expiry_check_seconds: float = Field(default=30.0, gt=0)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def resolve_secrets(self) -> None:
        super().resolve_secrets()
        self._role_password("app_db_user", "app_db_password")

    def extra_secrets(self) -> list[tuple[str, str, bool, set[str]]]:
        return [
            (
                f"SOC_DB_PASSWORD_{self.app_db_user.upper()}",
                self.app_db_password.get_secret_value(),
                "app_db_password" in self.model_fields_set,
                {self.app_db_user},
            )
        ]
