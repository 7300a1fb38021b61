"""The gateway's one settings class (``SOC_GATEWAY_*``; suite-wide ``SOC_*`` fallbacks from the base)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from soc_shared.settings import ServiceSettings

DEFAULT_UPSTREAMS: dict[str, str] = {
    "auth": "http://127.0.0.1:8001",
    "tenant": "http://127.0.0.1:8002",
    "siem-ingest": "http://127.0.0.1:8011",
    "soar-ingest": "http://127.0.0.1:8012",
    "itsm-ingest": "http://127.0.0.1:8013",
    "threatintel": "http://127.0.0.1:8014",
}

DEFAULT_ROUTES_FILE = Path(__file__).with_name("routes.yaml")
# The web console's build (`web/dist`, made by `npm run build`) in a checkout of the repository.
DEFAULT_CONSOLE_DIR = Path(__file__).resolve().parents[3] / "web" / "dist"


def _split_list(value: Any) -> Any:
    """Lists from the environment: a JSON array or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    port: int = 8000
    # No database, no broker: its service credential reads the revocation list from auth.
    secrets_used: ClassVar[tuple[str, ...]] = ("service_client_secret",)
    # Revoked users' tokens are refused within this many seconds (0: no revocation polling).
    revocation_poll_seconds: float = Field(default=1.0, ge=0, le=5)

    # Upstream base URLs by service name: DEFAULT_UPSTREAMS, with auth following the suite-wide
    # SOC_AUTH_URL, overridden entry by entry by SOC_GATEWAY_UPSTREAMS, a JSON object such as
    # '{"tenant": "http://tenant:8002"}'. Read the result from `upstream_urls`.
    upstreams: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # The routing table (YAML shipped in the package unless pointed elsewhere).
    routes_file: Path = DEFAULT_ROUTES_FILE
    # The web console's static build, served at `/` (unset or missing: no console, API only).
    console_dir: Path | None = DEFAULT_CONSOLE_DIR

    # Upstream connections: one shared keep-alive pool for every upstream.
    upstream_max_connections: int = 512
    upstream_max_keepalive: int = 256
    # Below uvicorn's 5 s keep-alive so that we never reuse a connection the upstream is closing.
    upstream_keepalive_expiry: float = 4.0
    upstream_connect_timeout: float = 3.0
    default_timeout: float = 30.0

    # Request bodies larger than this answer 413 (checked on Content-Length and on streamed bytes).
    max_body_bytes: int = 10 * 1024 * 1024

    # CORS: exact origins (or "*"). Credentials are allowed only for explicit origins.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = True
    cors_max_age: int = 600

    # Security headers. HSTS is sent only when max-age > 0 (i.e. when TLS terminates in front of us).
    hsts_max_age: int = 0
    hsts_include_subdomains: bool = True

    # Rate limits (token buckets, in-process: each replica enforces its own share). 0 disables a bucket.
    rate_limit_user_per_second: float = 20.0
    rate_limit_user_burst: int = 100
    rate_limit_address_per_second: float = 50.0
    rate_limit_address_burst: int = 200
    rate_limit_login_per_minute: float = 10.0
    rate_limit_login_burst: int = 5
    # Peers whose X-Forwarded-For we believe (a load balancer in front of the gateway).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Peers (probes, Prometheus) allowed to read /metrics and /readyz; to others they answer 404.
    ops_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ]
    )

    # Merged OpenAPI document: refreshed in the background, on demand at most every N seconds.
    openapi_refresh_seconds: float = 300.0
    # A service builds its document on first request (seconds for a large one): wait for it.
    openapi_fetch_timeout: float = 30.0
    openapi_min_refresh_interval: float = 5.0

    # Readiness probe: how long each upstream /healthz may take.
    readiness_timeout: float = 2.0
    # Verified tokens are remembered (by exact token string, until their exp) to skip re-verifying.
    token_cache_size: int = 10_000

    @field_validator("upstreams", mode="before")
    @classmethod
    def _merge_upstreams(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError("SOC_GATEWAY_UPSTREAMS must be a JSON object of service name -> base URL")
        return {str(k): str(v).rstrip("/") for k, v in value.items()}

    @field_validator("cors_origins", "trusted_proxies", "ops_networks", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @model_validator(mode="after")
    def _auth_url_follows_upstream(self) -> Settings:
        # The JWKS comes from the auth upstream the gateway routes to, whichever way it was configured.
        if "auth" in self.upstreams and "auth_url" not in self.model_fields_set:
            self.auth_url = self.upstreams["auth"]
        return self

    @property
    def upstream_urls(self) -> dict[str, str]:
        return {**DEFAULT_UPSTREAMS, "auth": self.auth_url.rstrip("/"), **self.upstreams}
