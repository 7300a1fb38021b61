"""One settings pattern for every service.

Each service subclasses :class:`ServiceSettings` with its own env prefix (``SOC_AUTH_``,
``SOC_TENANT_``...). Values the whole suite shares (database server, broker, auth URL) fall back to
suite-wide ``SOC_*`` variables so a deployment sets them once, and a service can still override.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def suite_default(name: str, default: str):  # noqa: ANN201 - a pydantic default factory
    """Default factory reading a suite-wide ``SOC_<NAME>`` variable at instantiation time."""
    return lambda: _env(f"SOC_{name}", default)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_SERVICE_", extra="ignore")

    service_name: str = "service"
    environment: Literal["dev", "test", "prod"] = Field(default_factory=suite_default("ENV", "dev"))  # type: ignore[arg-type]
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = Field(default_factory=suite_default("LOG_LEVEL", "INFO"))
    log_json: bool | None = None  # None: JSON everywhere but dev

    # PostgreSQL: one database, one schema and one role per service.
    db_host: str = Field(default_factory=suite_default("DB_HOST", "127.0.0.1"))
    db_port: int = Field(default_factory=suite_default("DB_PORT", "55432"))  # type: ignore[arg-type]
    db_name: str = Field(default_factory=suite_default("DB_NAME", "soc"))
    db_user: str = ""
    db_password: SecretStr = SecretStr("")
    db_schema: str = ""
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Upgrade this service's schema before serving. Off where migrations run as their own step
    # (a Kubernetes Job running ``python -m soc_<service> migrate`` before the rollout).
    migrate_on_start: bool = Field(default_factory=suite_default("MIGRATE_ON_START", "true"))  # type: ignore[arg-type]

    amqp_url: SecretStr = Field(
        default_factory=lambda: SecretStr(_env("SOC_AMQP_URL", "amqp://soc:soc@127.0.0.1:5672/soc"))
    )

    # Tokens: every service verifies access tokens against the auth service's JWKS.
    auth_url: str = Field(default_factory=suite_default("AUTH_URL", "http://127.0.0.1:8001"))
    jwt_issuer: str = Field(default_factory=suite_default("JWT_ISSUER", "soc-portal-auth"))
    jwt_audience: str = Field(default_factory=suite_default("JWT_AUDIENCE", "soc-portal"))
    # This service's own client credentials for service-to-service calls.
    service_client_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(_env("SOC_SERVICE_SECRET", "dev-service-secret"))
    )

    otel_exporter: Literal["none", "console", "otlp"] = Field(
        default_factory=suite_default("OTEL_EXPORTER", "none")
    )  # type: ignore[arg-type]
    otel_endpoint: str = Field(default_factory=suite_default("OTEL_ENDPOINT", "http://127.0.0.1:4318"))

    @property
    def jwks_url(self) -> str:
        return f"{self.auth_url.rstrip('/')}/.well-known/jwks.json"

    @property
    def service_token_url(self) -> str:
        return f"{self.auth_url.rstrip('/')}/auth/internal/token"

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "dev"

    def database_url(self, *, user: str | None = None, password: str | None = None) -> str:
        user = user or self.db_user
        password = password if password is not None else self.db_password.get_secret_value()
        return f"postgresql+psycopg://{user}:{password}@{self.db_host}:{self.db_port}/{self.db_name}"
