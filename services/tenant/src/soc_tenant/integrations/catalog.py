"""The integrations we speak: types, subtypes, the credential kinds each accepts, the fields each
kind needs (and which of them are secret), and the settings each subtype understands.

A new vendor is a new :class:`Subtype` entry here plus its ingestor — no branch elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str
    secret: bool
    required: bool = True
    max_length: int = 4096


@dataclass(frozen=True)
class CredentialKind:
    kind: str  # API_KEY | USERNAME_PASSWORD | SECRET_KEY_ACCESS_KEY | OAUTH_CLIENT
    label: str
    fields: tuple[CredentialField, ...]
    # settings this kind requires
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class SettingSpec:
    name: str
    label: str
    type: str  # "string" | "enum" | "object" | "integer"
    choices: tuple[str, ...] = ()
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class Subtype:
    subtype: str
    integration_type: str
    label: str
    vendor: str
    ingestor: str
    credential_kinds: tuple[CredentialKind, ...]
    settings: tuple[SettingSpec, ...] = ()
    company_scoped: bool = False  # one per company (threat intelligence)

    def kind(self, name: str) -> CredentialKind | None:
        return next((k for k in self.credential_kinds if k.kind == name), None)


_COMMON_SETTINGS = (
    SettingSpec(
        "resource_intervals",
        "Per-resource polling intervals",
        "object",
        description="resource name → seconds, overriding the ingestor's default cadence",
    ),
)

SUBTYPES: dict[str, Subtype] = {
    s.subtype: s
    for s in (
        Subtype(
            "IBM_QRADAR",
            "SIEM",
            "IBM QRadar",
            "IBM",
            "siem-ingest",
            (
                CredentialKind(
                    "API_KEY",
                    "Authorised service token",
                    (CredentialField("api_key", "Authorised service token (SEC header)", secret=True),),
                ),
                CredentialKind(
                    "USERNAME_PASSWORD",
                    "Username and password",
                    (
                        CredentialField("username", "Username", secret=False, max_length=255),
                        CredentialField("password", "Password", secret=True, max_length=1024),
                    ),
                ),
            ),
            (SettingSpec("api_version", "QRadar API version", "string", default="16.0"), *_COMMON_SETTINGS),
        ),
        Subtype(
            "CORTEX_XSOAR",
            "SOAR",
            "Cortex XSOAR",
            "Palo Alto Networks",
            "soar-ingest",
            (
                CredentialKind(
                    "API_KEY",
                    "API key",
                    (
                        CredentialField("api_key", "API key", secret=True),
                        CredentialField(
                            "api_key_id",
                            "API key id (XSOAR 8 only)",
                            secret=False,
                            required=False,
                            max_length=64,
                        ),
                    ),
                    description="XSOAR 6: the key alone; XSOAR 8: the key and its id (x-xdr-auth-id)",
                ),
            ),
            (
                SettingSpec("xsoar_version", "XSOAR major version", "enum", ("6", "8"), default="6"),
                SettingSpec(
                    "custom_field_map",
                    "Custom field mapping",
                    "object",
                    description="our field → the deployment's CustomFields key",
                ),
                *_COMMON_SETTINGS,
            ),
        ),
        Subtype(
            "MANAGEENGINE_SDP",
            "ITSM",
            "ManageEngine ServiceDesk Plus",
            "Zoho ManageEngine",
            "itsm-ingest",
            (
                CredentialKind(
                    "API_KEY",
                    "Technician key (on-premises)",
                    (CredentialField("api_key", "Technician authtoken", secret=True),),
                    description="on-premises ServiceDesk Plus: the technician key goes in the authtoken header",
                ),
                CredentialKind(
                    "OAUTH_CLIENT",
                    "Zoho OAuth client (ServiceDesk Plus Cloud)",
                    (
                        CredentialField("client_id", "Client id", secret=True),
                        CredentialField("client_secret", "Client secret", secret=True),
                        CredentialField("refresh_token", "Refresh token", secret=True),
                    ),
                    description="ServiceDesk Plus Cloud: access tokens (valid one hour) are obtained with the "
                    "refresh token from the Zoho accounts server of the data centre (settings.accounts_url, "
                    "default from the base URL) and renewed before they expire",
                ),
            ),
            (
                SettingSpec(
                    "accounts_url",
                    "Zoho accounts server (cloud)",
                    "string",
                    description="e.g. https://accounts.zoho.eu; default: the data centre of the base URL",
                ),
                SettingSpec(
                    "soar_id_field",
                    "User-defined field holding the SOAR incident id",
                    "string",
                    default="udf_sline_4506",
                ),
                *_COMMON_SETTINGS,
            ),
        ),
        Subtype(
            "CYWARE",
            "THREAT_INTELLIGENCE",
            "Cyware CSAP",
            "Cyware",
            "threatintel",
            (
                CredentialKind(
                    "SECRET_KEY_ACCESS_KEY",
                    "Access id and secret key",
                    (
                        CredentialField("access_key", "Access id", secret=True, max_length=512),
                        CredentialField("secret_key", "Secret key", secret=True),
                    ),
                ),
            ),
            _COMMON_SETTINGS,
            company_scoped=True,
        ),
    )
}

TYPES: dict[str, str] = {
    "SIEM": "Security information and event management",
    "SOAR": "Security orchestration, automation and response",
    "ITSM": "IT service management",
    "THREAT_INTELLIGENCE": "Threat intelligence",
}

CREDENTIAL_KIND_LABELS = {
    "API_KEY": "API key / token",
    "USERNAME_PASSWORD": "Username and password",
    "SECRET_KEY_ACCESS_KEY": "Access key and secret key",
    "OAUTH_CLIENT": "OAuth client id, client secret and refresh token",
}


def subtype_view(s: Subtype) -> dict[str, Any]:
    return {
        "subtype": s.subtype,
        "label": s.label,
        "vendor": s.vendor,
        "ingestor": s.ingestor,
        "one_per_company": s.company_scoped,
        "requires_company": s.company_scoped,
        "credential_kinds": [
            {
                "kind": k.kind,
                "label": k.label,
                "description": k.description,
                "settings": k.settings,
                "fields": [
                    {
                        "name": f.name,
                        "label": f.label,
                        "secret": f.secret,
                        "required": f.required,
                        "max_length": f.max_length,
                    }
                    for f in k.fields
                ],
            }
            for k in s.credential_kinds
        ],
        "settings": [
            {
                "name": x.name,
                "label": x.label,
                "type": x.type,
                "choices": list(x.choices),
                "default": x.default,
                "description": x.description,
            }
            for x in s.settings
        ],
    }


def types_view() -> list[dict[str, Any]]:
    return [
        {
            "integration_type": t,
            "label": label,
            "subtypes": [subtype_view(s) for s in SUBTYPES.values() if s.integration_type == t],
        }
        for t, label in TYPES.items()
    ]
