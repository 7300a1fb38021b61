"""The auth service's settings: one class, environment variables ``SOC_AUTH_*``.

A few values are suite-wide and read without the prefix: ``SOC_ADMIN_USERNAME``,
``SOC_ADMIN_PASSWORD``, ``SOC_LDAP_URLS``, ``SOC_CRYPTO_KEYS`` and ``SOC_SERVICE_SECRET``.

Production must set ``SOC_CRYPTO_KEYS`` (the key that seals the token-signing keys at rest) and
``SOC_SERVICE_SECRET``: the service refuses to start with ``SOC_ENV=prod`` and the documented
development defaults below.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from soc_shared.settings import ServiceSettings

SERVICE_CLIENTS = ["tenant", "siem-ingest", "soar-ingest", "itsm-ingest", "threatintel", "gateway"]
# What each service client may do on the others' internal APIs (the `scope` claim of its tokens).
# The callee checks it; a stolen ingestor credential reads its own vendor's credentials, no more.
SERVICE_SCOPES: dict[str, list[str]] = {
    "tenant": ["auth.users:write", "auth.revocations:read", "ingest.control"],
    "siem-ingest": ["tenant.credentials:IBM_QRADAR", "tenant.integrations:read", "auth.revocations:read"],
    "soar-ingest": ["tenant.credentials:CORTEX_XSOAR", "tenant.integrations:read", "auth.revocations:read"],
    "itsm-ingest": [
        "tenant.credentials:MANAGEENGINE_SDP",
        "tenant.integrations:read",
        "tenant.tickets",
        "auth.revocations:read",
    ],
    "threatintel": ["tenant.credentials:CYWARE", "tenant.integrations:read", "auth.revocations:read"],
    "gateway": ["auth.revocations:read"],
}

CommaList = Annotated[list[str], NoDecode]


def _alias(*names: str) -> Any:
    return AliasChoices(*names)


class OidcProvider(BaseModel):
    """One OpenID Connect identity provider (an MSSP's own, or a customer's)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="the provider's id in URLs")
    display_name: str = ""
    issuer: str
    client_id: str
    client_secret: SecretStr | None = None
    # Where the IdP sends the browser back (the console's callback page), registered at the IdP.
    redirect_uri: str
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile", "groups"])
    username_claim: str = "preferred_username"
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"
    # Group → administrator role; other users need a group mapped to a company (as directory groups).
    super_admin_groups: list[str] = Field(default_factory=list)
    admin_groups: list[str] = Field(default_factory=list)
    read_only_admin_groups: list[str] = Field(default_factory=list)
    # Plain http issuers only for a provider on loopback (tests, demo).
    allow_http: bool = False

    @model_validator(mode="after")
    def _https(self) -> OidcProvider:
        if not self.issuer.startswith("https://") and not self.allow_http:
            raise ValueError(f"identity provider {self.name}: the issuer must be an https:// URL")
        return self


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_AUTH_", extra="ignore", populate_by_name=True)

    service_name: str = "auth"
    port: int = 8001
    db_user: str = "soc_auth"
    db_password: SecretStr = Field(
        default=SecretStr("soc_auth"),
        validation_alias=_alias("SOC_AUTH_DB_PASSWORD", "SOC_DB_PASSWORD_SOC_AUTH"),
    )
    db_schema: str = "auth"

    # --- tokens -----------------------------------------------------------------------------------
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=24 * 3600)
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    service_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    # The Ed25519 private keys in auth.signing_key are sealed with the suite-wide SOC_SEALING_KEYS.
    secrets_used: ClassVar[tuple[str, ...]] = ServiceSettings.secrets_used + ("sealing_keys",)
    # How often each replica reloads the signing keys (a rotation made by another replica).
    signing_key_reload_seconds: float = 15.0
    # How often each replica reads the per-user revocation times set by the others.
    revocation_poll_seconds: float = Field(default=1.0, gt=0, le=5)

    # --- service clients (client-credentials for service tokens) ---------------------------------------
    service_clients: CommaList = Field(default_factory=lambda: list(SERVICE_CLIENTS))
    # Optional per-client secrets (JSON object client_id → secret); others use SOC_SERVICE_SECRET.
    service_client_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    # --- bootstrap super admin -------------------------------------------------------------------------
    admin_username: str = Field(
        default="admin", validation_alias=_alias("SOC_AUTH_ADMIN_USERNAME", "SOC_ADMIN_USERNAME")
    )
    admin_password: SecretStr | None = Field(
        default=None, validation_alias=_alias("SOC_AUTH_ADMIN_PASSWORD", "SOC_ADMIN_PASSWORD")
    )
    admin_email: str | None = Field(
        default=None, validation_alias=_alias("SOC_AUTH_ADMIN_EMAIL", "SOC_ADMIN_EMAIL")
    )

    # --- passwords (Argon2id; RFC 9106 "low memory" profile = argon2-cffi's defaults) ------------------
    argon2_time_cost: int = 3
    argon2_memory_cost_kib: int = 65536
    argon2_parallelism: int = 4
    password_min_length: int = 12

    # --- brute-force protection --------------------------------------------------------------------------
    # Per account: a growing delay after `login_delay_after` failures, a lock after `login_lock_after`.
    login_failure_window_seconds: float = 900
    login_delay_after: int = 5
    login_delay_base_seconds: float = 1.0
    login_delay_max_seconds: float = 60.0
    login_lock_after: int = 10
    login_lock_seconds: float = 900
    # Per client address (many accounts from one place): a delay, then a temporary block.
    login_ip_delay_after: int = 20
    login_ip_block_after: int = 100
    login_ip_block_seconds: float = 900
    # Peers whose X-Forwarded-For is believed (the gateway); the client address is the nearest
    # address in the chain that is not one of them.
    trusted_proxies: CommaList = Field(default_factory=lambda: ["127.0.0.1", "::1"])

    # --- LDAP / Active Directory --------------------------------------------------------------------------
    ldap_urls: CommaList = Field(
        default_factory=lambda: ["ldap://127.0.0.1:3389"],
        validation_alias=_alias("SOC_AUTH_LDAP_URLS", "SOC_LDAP_URLS"),
    )
    # "auto" asks the server's root DSE (Active Directory announces itself there); the flavour
    # decides the defaults of the attribute settings below that are left empty.
    ldap_flavor: Literal["auto", "active_directory", "openldap"] = "auto"
    ldap_base_dn: str = "dc=soc,dc=local"
    ldap_bind_dn: str = "cn=svc-portal,ou=services,dc=soc,dc=local"
    ldap_bind_password: SecretStr = SecretStr("svc-portal-pass")
    ldap_user_search_base: str = "ou=people,dc=soc,dc=local"
    ldap_group_search_base: str = "ou=groups,dc=soc,dc=local"
    # `user@<upn_domain>` logs in as `user` (Active Directory's userPrincipalName form).
    ldap_upn_domain: str = "soc.local"
    # `DOMAIN\user` (what Windows users type): empty accepts any domain part (the directory's own
    # base decides who exists), otherwise only this NetBIOS domain name.
    ldap_netbios_domain: str = ""
    # Transport: ldaps:// URLs use TLS, ldap:// URLs StartTLS; the server certificate is verified
    # against ldap_ca_file (the system's CAs when unset). Plain LDAP, which sends passwords in
    # clear, only with ldap_allow_plain=true (the demo's OpenLDAP on loopback).
    ldap_allow_plain: bool = False
    ldap_ca_file: str | None = None
    ldap_tls_verify: bool = True
    ldap_connect_timeout: float = 2.0
    ldap_receive_timeout: float = 5.0
    # Seconds a server that failed stays out of the pool before it is tried again.
    ldap_server_retry_seconds: int = 10
    # Attribute names and filters; empty = the flavour's default:
    #   Active Directory: sAMAccountName, userPrincipalName, (&(objectCategory=person)(objectClass=user)),
    #   nested membership through the in-chain matching rule (1.2.840.113556.1.4.1941);
    #   OpenLDAP: uid, no UPN, (objectClass=person), memberOf.
    ldap_login_attribute: str = ""
    ldap_mail_attribute: str = "mail"
    ldap_upn_attribute: str = ""
    ldap_name_attribute: str = "cn"
    ldap_member_of_attribute: str = "memberOf"
    ldap_user_object_class: str = ""
    ldap_user_filter: str = ""
    ldap_group_filter: str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group)(objectClass=posixGroup))"
    # Administrators' groups: a DN, or a bare group name (cn). Membership through nested groups
    # counts on Active Directory.
    ldap_admin_group: str = "soc-admins"
    ldap_read_only_admin_group: str = "soc-read-only-admins"
    ldap_super_admin_group: str = "soc-super-admins"
    ldap_lookup_size_limit: int = 1000
    # A directory user's account is looked up again at token refresh when the last look-up is
    # older than this (removed from its group or disabled: the refresh is refused).
    ldap_recheck_seconds: float = Field(default=60.0, ge=0)
    # With the directory unreachable, a refresh is still allowed while the last look-up is
    # younger than this; after it, 503 directory_unavailable.
    ldap_recheck_grace_seconds: float = Field(default=3600.0, ge=0)

    # --- multi-factor authentication (TOTP, RFC 6238) -----------------------------------------------------
    # optional: who enrolled answers a code; admins: administrators must (enrolment at sign-in);
    # everyone: every password sign-in must.
    mfa_policy: Literal["optional", "admins", "everyone"] = "optional"
    mfa_issuer: str = "SOC Portal"
    mfa_challenge_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    # Wrong codes one challenge accepts before it is spent (the account's lockout counts them too).
    mfa_challenge_max_attempts: int = Field(default=5, ge=1, le=20)
    mfa_recovery_codes: int = Field(default=10, ge=4, le=20)

    # --- OpenID Connect identity providers (JSON list of OidcProvider) -----------------------------------
    oidc_providers: list[OidcProvider] = Field(default_factory=list)
    oidc_login_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    oidc_http_timeout_seconds: float = 10.0

    # --- the administrators' directory (the original's ad_flag=ADMIN) -----------------------------------
    # Set admin_ldap_urls to give administrators a directory of their own: /auth/admin/login/ and
    # administrators' refreshes use it, its groups SUPER_ADMIN / ADMIN / READ_ONLY decide the role,
    # and the customer directory (ldap_*) then makes tenant users only. Empty values below take
    # the customer directory's; the attribute names are shared.
    admin_ldap_urls: CommaList = Field(default_factory=list)
    admin_ldap_flavor: Literal["", "auto", "active_directory", "openldap"] = ""
    admin_ldap_base_dn: str = ""
    admin_ldap_bind_dn: str = ""
    admin_ldap_bind_password: SecretStr | None = None
    admin_ldap_user_search_base: str = ""
    admin_ldap_group_search_base: str = ""
    admin_ldap_upn_domain: str = ""
    admin_ldap_netbios_domain: str = ""
    admin_ldap_allow_plain: bool | None = None
    admin_ldap_ca_file: str | None = None
    admin_ldap_super_admin_group: str = "SUPER_ADMIN"
    admin_ldap_admin_group: str = "ADMIN"
    admin_ldap_read_only_admin_group: str = "READ_ONLY"

    # --- misc -------------------------------------------------------------------------------------------------
    preferences_max_bytes: int = 16384
    login_audit_retention_days: int = 180
    maintenance_interval_seconds: float = 300
    consumers_enabled: bool = True

    @field_validator("service_clients", "trusted_proxies", "ldap_urls", "admin_ldap_urls", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def extra_secrets(self) -> list[tuple[str, str, bool, set[str]]]:
        specs = [
            (
                "SOC_AUTH_LDAP_BIND_PASSWORD",
                self.ldap_bind_password.get_secret_value(),
                "ldap_bind_password" in self.model_fields_set,
                {"svc-portal-pass"},
            )
        ]
        # Unset, the bootstrap admin gets a random password nobody sees; set, it must be a real one.
        if self.admin_password is not None:
            specs.append(("SOC_ADMIN_PASSWORD", self.admin_password.get_secret_value(), True, {"admin"}))
        for client_id, secret in self.service_client_secrets.items():
            specs.append(
                (f"SOC_AUTH_SERVICE_CLIENT_SECRETS[{client_id}]", secret.get_secret_value(), True, set())
            )
        return specs

    @model_validator(mode="after")
    def _directory_urls(self) -> Settings:
        odd = [u for u in self.ldap_urls if not u.lower().startswith(("ldaps://", "ldap://"))]
        if odd:
            raise ValueError(f"directory URLs must start with ldap:// or ldaps://: {odd}")
        return self

    @property
    def has_admin_directory(self) -> bool:
        return bool(self.admin_ldap_urls)

    def admin_directory_settings(self) -> Settings:
        """These settings with the admin directory's values in the ``ldap_*`` fields."""
        update: dict[str, Any] = {"ldap_urls": list(self.admin_ldap_urls)}
        for name in (
            "flavor",
            "base_dn",
            "bind_dn",
            "user_search_base",
            "group_search_base",
            "upn_domain",
            "netbios_domain",
            "super_admin_group",
            "admin_group",
            "read_only_admin_group",
        ):
            value = getattr(self, f"admin_ldap_{name}")
            if value:
                update[f"ldap_{name}"] = value
        for name in ("bind_password", "allow_plain", "ca_file"):
            value = getattr(self, f"admin_ldap_{name}")
            if value is not None:
                update[f"ldap_{name}"] = value
        return self.model_copy(update=update)

    def secret_for_client(self, client_id: str) -> str | None:
        if client_id not in self.service_clients:
            return None
        specific = self.service_client_secrets.get(client_id)
        return (specific or self.service_client_secret).get_secret_value()
