"""One settings pattern for every service.

Each service subclasses :class:`ServiceSettings` with its own env prefix (``SOC_AUTH_``,
``SOC_TENANT_``...). Values the whole suite shares (database server, broker, auth URL) fall back to
suite-wide ``SOC_*`` variables so a deployment sets them once, and a service can still override.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import sys
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development values, public on purpose (every developer's database opens with them): refused
# outside `dev`. The sealing default holds both historic development keys so that data sealed
# by earlier development runs still opens; the first is active.
DEV_SERVICE_SECRET = "dev-service-secret"
DEV_SEALING_KEYS = (
    "dev:U09DLVBPUlRBTC1ERVYtT05MWS1OT1QtRk9SLVBST0Q=,dev1:ZGV2LW9ubHktY3JlZGVudGlhbC1rZXktMzItYnl0ZXM="
)
_DEV_KEY_MATERIAL = tuple(entry.split(":", 1)[1] for entry in DEV_SEALING_KEYS.split(","))
# Infrastructure passwords of the local development servers (scripts/deps.sh): accepted in `test`
# when set explicitly (the tests run against those servers), refused in `prod`.
_DEV_INFRA_PASSWORDS = {"soc", "guest", "soc_admin", "svc-portal-pass"}
_PLACEHOLDER_PREFIXES = ("change-me", "changeme", "replace-me", "placeholder")

S = TypeVar("S", bound="ServiceSettings")


class InsecureSetting(ValueError):
    """A secret setting holds a built-in, empty or placeholder value outside ``dev``."""


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_placeholder(value: str) -> bool:
    """True for values that are known to the world: empty, ``change-me-*``, the development constants."""
    text = value.strip()
    lowered = text.lower()
    return (
        not text
        or lowered.startswith(_PLACEHOLDER_PREFIXES)
        or text == DEV_SERVICE_SECRET
        or any(material in text for material in _DEV_KEY_MATERIAL)
    )


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def suite_default(name: str, default: str) -> Callable[[], Any]:
    """Default factory reading a suite-wide ``SOC_<NAME>`` variable at instantiation time (a string
    that the field's own type validates, hence ``Any``)."""
    return lambda: _env(f"SOC_{name}", default)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_SERVICE_", extra="ignore")

    service_name: str = "service"
    environment: Literal["dev", "test", "prod"] = Field(default_factory=suite_default("ENV", "dev"))
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = Field(default_factory=suite_default("LOG_LEVEL", "INFO"))
    log_json: bool | None = None  # None: JSON everywhere but dev

    # PostgreSQL: one database, one schema and one role per service.
    db_host: str = Field(default_factory=suite_default("DB_HOST", "127.0.0.1"))
    db_port: int = Field(default_factory=suite_default("DB_PORT", "55432"))
    db_name: str = Field(default_factory=suite_default("DB_NAME", "soc"))
    db_user: str = ""
    db_password: SecretStr = SecretStr("")
    db_schema: str = ""
    # TLS to PostgreSQL: libpq's sslmode (disable, require, verify-ca, verify-full) and CA file.
    db_sslmode: str = Field(default_factory=suite_default("DB_SSLMODE", ""))
    db_sslrootcert: str = Field(default_factory=suite_default("DB_SSLROOTCERT", ""))
    # TLS of this service's own listener (inter-service HTTPS): certificate and key files.
    tls_certfile: str = Field(default_factory=suite_default("TLS_CERTFILE", ""))
    tls_keyfile: str = Field(default_factory=suite_default("TLS_KEYFILE", ""))
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Upgrade this service's schema before serving. Off where migrations run as their own step
    # (a Kubernetes Job running ``python -m soc_<service> migrate`` before the rollout).
    migrate_on_start: bool = Field(default_factory=suite_default("MIGRATE_ON_START", "true"))

    amqp_url: SecretStr = Field(
        default_factory=lambda: SecretStr(_env("SOC_AMQP_URL", "amqp://soc:soc@127.0.0.1:5672/soc"))
    )

    # Tokens: every service verifies access tokens against the auth service's JWKS.
    auth_url: str = Field(default_factory=suite_default("AUTH_URL", "http://127.0.0.1:8001"))
    jwt_issuer: str = Field(default_factory=suite_default("JWT_ISSUER", "soc-portal-auth"))
    jwt_audience: str = Field(default_factory=suite_default("JWT_AUDIENCE", "soc-portal"))
    # This service's own client credentials for service-to-service calls.
    service_client_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(_env("SOC_SERVICE_SECRET", DEV_SERVICE_SECRET))
    )
    # Credential sealing, suite-wide (every service that seals reads the same setting):
    # "kid:<base64 32 bytes>[,...]", "!" marks the active key (see soc_shared.crypto).
    sealing_keys: SecretStr = Field(
        default_factory=lambda: SecretStr(
            os.environ.get("SOC_SEALING_KEYS") or os.environ.get("SOC_CRYPTO_KEYS") or DEV_SEALING_KEYS
        )
    )

    # Which secrets this service holds and must not run on a public value outside `dev`:
    # any of "service_client_secret", "amqp_url", "db_password", "sealing_keys", plus the
    # service's own (see `extra_secrets`).
    secrets_used: ClassVar[tuple[str, ...]] = ("service_client_secret", "amqp_url", "db_password")

    otel_exporter: Literal["none", "console", "otlp"] = Field(
        default_factory=suite_default("OTEL_EXPORTER", "none")
    )
    otel_endpoint: str = Field(default_factory=suite_default("OTEL_ENDPOINT", "http://127.0.0.1:4318"))

    @model_validator(mode="after")
    def _safe_by_default(self) -> ServiceSettings:
        # SOC_ENV unset means dev only where the process listens on loopback alone.
        if "environment" not in self.model_fields_set and "SOC_ENV" not in os.environ:
            if not is_loopback_host(self.host):
                self.environment = "prod"
        self.resolve_secrets()
        if self.environment != "dev":
            problems = [p for p in (self._secret_problem(*spec) for spec in self.secret_specs()) if p]
            if problems:
                raise InsecureSetting(
                    f"refusing to start with SOC_ENV={self.environment}: " + "; ".join(problems)
                )
        return self

    def resolve_secrets(self) -> None:
        """Fill secrets from their suite-wide variables (``SOC_DB_PASSWORD_<ROLE>``)."""
        self._role_password("db_user", "db_password")

    def _role_password(self, user_field: str, password_field: str) -> None:
        user = getattr(self, user_field)
        if password_field in self.model_fields_set or not user:
            return
        value = os.environ.get(f"SOC_DB_PASSWORD_{user.upper()}")
        if value is not None:
            setattr(self, password_field, SecretStr(value))
            self.model_fields_set.add(password_field)

    def secret_specs(self) -> list[tuple[str, str, bool, set[str]]]:
        """(setting name, value, explicitly configured, development values) of each secret held."""
        specs: list[tuple[str, str, bool, set[str]]] = []
        env = os.environ
        if "service_client_secret" in self.secrets_used:
            specs.append(
                (
                    "SOC_SERVICE_SECRET",
                    self.service_client_secret.get_secret_value(),
                    "service_client_secret" in self.model_fields_set or "SOC_SERVICE_SECRET" in env,
                    set(),
                )
            )
        if "amqp_url" in self.secrets_used:
            password = urlsplit(self.amqp_url.get_secret_value()).password or ""
            specs.append(
                (
                    "SOC_AMQP_URL (password)",
                    password,
                    "amqp_url" in self.model_fields_set or "SOC_AMQP_URL" in env,
                    _DEV_INFRA_PASSWORDS,
                )
            )
        if "db_password" in self.secrets_used and self.db_user:
            specs.append(
                (
                    f"SOC_DB_PASSWORD_{self.db_user.upper()}",
                    self.db_password.get_secret_value(),
                    "db_password" in self.model_fields_set,
                    {self.db_user, *_DEV_INFRA_PASSWORDS},
                )
            )
        if "sealing_keys" in self.secrets_used:
            value = self.sealing_keys.get_secret_value()
            specs.append(("SOC_SEALING_KEYS", value, value != DEV_SEALING_KEYS, set()))
        specs.extend(self.extra_secrets())
        return specs

    def extra_secrets(self) -> list[tuple[str, str, bool, set[str]]]:
        return []

    def _secret_problem(self, name: str, value: str, explicit: bool, dev_values: set[str]) -> str | None:
        if not explicit:
            return f"{name} is not set (its built-in development value is public)"
        if is_placeholder(value):
            return f"{name} is empty or a known placeholder"
        if self.environment == "prod" and value in dev_values:
            return f"{name} is the development servers' default"
        return None

    @property
    def jwks_url(self) -> str:
        return f"{self.auth_url.rstrip('/')}/.well-known/jwks.json"

    @property
    def revocations_url(self) -> str:
        return f"{self.auth_url.rstrip('/')}/auth/internal/revocations"

    @property
    def service_token_url(self) -> str:
        return f"{self.auth_url.rstrip('/')}/auth/internal/token"

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "dev"

    def database_url(self, *, user: str | None = None, password: str | None = None) -> str:
        user = user or self.db_user
        password = password if password is not None else self.db_password.get_secret_value()
        url = f"postgresql+psycopg://{user}:{password}@{self.db_host}:{self.db_port}/{self.db_name}"
        params = [f"sslmode={self.db_sslmode}"] if self.db_sslmode else []
        if self.db_sslrootcert:
            params.append(f"sslrootcert={self.db_sslrootcert}")
        return url + ("?" + "&".join(params) if params else "")


def internal_tls() -> ssl.SSLContext | bool:
    """What internal HTTPS clients trust: ``SOC_TLS_CA_FILE`` (the suite's own CA) on top of the
    system store, or the system store alone. Internal clients ignore proxy variables, and with them
    SSL_CERT_FILE: this is their one setting."""
    ca_file = os.environ.get("SOC_TLS_CA_FILE")
    if not ca_file:
        return True
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_file)
    return context


def load_settings(cls: type[S], **overrides: Any) -> S:
    """The settings of a service's entry point: a refused or invalid configuration ends the process
    with status 2 and a message naming the setting (never its value)."""
    from soc_shared.local_secrets import apply_secrets_file

    apply_secrets_file()
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = [str(error.get("msg", "")).removeprefix("Value error, ") for error in exc.errors()]
        names = [".".join(str(p) for p in error.get("loc", ())) for error in exc.errors()]
        detail = "; ".join(f"{n}: {m}" if n else m for n, m in zip(names, lines, strict=True))
        print(f"{cls.__module__}: configuration refused: {detail}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
