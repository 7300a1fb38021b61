"""Pure checks of an integration's connection settings (base URL, port, TLS, CA, credentials, settings).

Every failure is a 422 in the request-validation shape with the exact location of the bad field.
Rejected values are never echoed back (a credential may be in them)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from soc_shared.egress import EgressPolicy
from soc_shared.errors import ApiError

from soc_tenant.control.deps import invalid
from soc_tenant.control.models import storable, storable_json
from soc_tenant.integrations.catalog import SUBTYPES, Subtype

MAX_SETTINGS_BYTES = 16 * 1024
MAX_CA_PEM = 64 * 1024


@dataclass
class Connection:
    subtype: str
    base_url: str
    verify_tls: bool
    ca_pem: str | None
    credential_kind: str
    credentials: dict[str, str]
    settings: dict[str, Any]


def subtype_of(name: str, integration_type: str | None, loc: list[str]) -> Subtype:
    spec = SUBTYPES.get(name)
    if spec is None:
        raise invalid(loc + ["subtype"], f"unknown subtype; one of {', '.join(SUBTYPES)}", "enum")
    if integration_type is not None and integration_type != spec.integration_type:
        raise invalid(
            loc + ["subtype"],
            f"{name} is a {spec.integration_type} integration, not {integration_type}",
            "subtype_mismatch",
        )
    return spec


def normalise_base_url(base_url: str, port: int | None, loc: list[str]) -> str:
    text = (base_url or "").strip()
    if not text or len(text) > 2048:
        raise invalid(loc + ["base_url"], "a base URL of at most 2048 characters is required")
    if any(ord(c) < 33 for c in text) or not storable(text):
        raise invalid(loc + ["base_url"], "the base URL must not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        url_port = parts.port
    except ValueError:
        raise invalid(
            loc + ["base_url"], "the port in the base URL must be a number from 1 to 65535"
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise invalid(loc + ["base_url"], "the base URL must start with http:// or https://")
    if not parts.hostname:
        raise invalid(loc + ["base_url"], "the base URL must name a host")
    if parts.username is not None or parts.password is not None:
        raise invalid(loc + ["base_url"], "credentials do not belong in the URL; use the credentials fields")
    if parts.query or parts.fragment:
        raise invalid(loc + ["base_url"], "the base URL must not have a query string or fragment")
    if url_port is not None and not 1 <= url_port <= 65535:
        raise invalid(loc + ["base_url"], "the port in the base URL must be a number from 1 to 65535")
    if port is not None:
        if not 1 <= port <= 65535:
            raise invalid(loc + ["port"], "the port must be a number from 1 to 65535")
        if url_port is not None and url_port != port:
            raise invalid(loc + ["port"], "the port disagrees with the port in the base URL")
        url_port = port
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{url_port}" if url_port is not None else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


def check_ca_pem(ca_pem: str | None, loc: list[str]) -> str | None:
    if ca_pem is None or not ca_pem.strip():
        return None
    if len(ca_pem) > MAX_CA_PEM:
        raise invalid(loc + ["ca_pem"], f"the CA bundle must be at most {MAX_CA_PEM} characters")
    if "PRIVATE KEY" in ca_pem:
        # A CA bundle is public; a private key pasted by mistake must not be stored in clear.
        raise invalid(
            loc + ["ca_pem"], "the CA bundle contains a private key; paste only the CA certificate(s)"
        )
    try:
        certs = x509.load_pem_x509_certificates(ca_pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        certs = []
    if not certs:
        raise invalid(loc + ["ca_pem"], "not a PEM-encoded X.509 certificate", "invalid_certificate")
    return ca_pem.strip() + "\n"


def ca_summary(ca_pem: str | None) -> list[dict[str, Any]] | None:
    if not ca_pem:
        return None
    try:
        certs = x509.load_pem_x509_certificates(ca_pem.encode("ascii"))
    except ValueError:
        return None
    return [
        {
            "subject": c.subject.rfc4514_string(),
            "issuer": c.issuer.rfc4514_string(),
            "not_after": c.not_valid_after_utc.isoformat(),
            "fingerprint_sha256": hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest(),
        }
        for c in certs
    ]


def check_credentials(
    spec: Subtype, kind_name: str | None, credentials: Any, loc: list[str]
) -> tuple[str, dict[str, str]]:
    kind_name = kind_name or spec.credential_kinds[0].kind
    kind = spec.kind(kind_name)
    if kind is None:
        accepted = ", ".join(k.kind for k in spec.credential_kinds)
        raise invalid(loc + ["credential_kind"], f"{spec.subtype} accepts {accepted}", "enum")
    if not isinstance(credentials, dict):
        raise invalid(loc + ["credentials"], "must be an object of credential fields", "dict_type")
    known = {f.name for f in kind.fields}
    for name in credentials:
        if name not in known:
            raise invalid(
                loc + ["credentials", str(name)[:64]],
                f"not a field of {kind.kind} for {spec.subtype}; expected {', '.join(sorted(known))}",
                "extra_forbidden",
            )
    out: dict[str, str] = {}
    for f in kind.fields:
        value = credentials.get(f.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if f.required:
                raise invalid(loc + ["credentials", f.name], f"{f.label} is required", "missing")
            continue
        if not isinstance(value, str):
            raise invalid(loc + ["credentials", f.name], "must be a string", "string_type")
        value = value.strip()
        if len(value) > f.max_length:
            raise invalid(
                loc + ["credentials", f.name], f"must be at most {f.max_length} characters", "string_too_long"
            )
        if any(ord(c) < 32 for c in value) or not storable(value):
            raise invalid(loc + ["credentials", f.name], "must not contain control characters")
        out[f.name] = value
    return kind.kind, out


def check_settings(spec: Subtype, settings: Any, loc: list[str]) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise invalid(loc + ["settings"], "must be an object", "dict_type")
    try:
        size = len(json.dumps(settings))
    except (TypeError, ValueError):
        raise invalid(loc + ["settings"], "must be plain JSON") from None
    if size > MAX_SETTINGS_BYTES:
        raise invalid(loc + ["settings"], f"must be at most {MAX_SETTINGS_BYTES} bytes of JSON")
    if not storable_json(settings):
        raise invalid(loc + ["settings"], "must not contain NUL characters or lone surrogates")
    by_name = {s.name: s for s in spec.settings}
    for name, value in settings.items():
        s = by_name.get(name)
        where = loc + ["settings", str(name)[:64]]
        if s is None:
            continue  # forward compatible: an ingestor may understand settings this version does not list
        if s.type == "enum" and value not in s.choices:
            raise invalid(where, f"one of {', '.join(s.choices)}", "enum")
        if s.type == "string" and (not isinstance(value, str) or len(value) > 200):
            raise invalid(where, "a string of at most 200 characters", "string_type")
        if s.type == "object" and not isinstance(value, dict):
            raise invalid(where, "must be an object", "dict_type")
        if name == "resource_intervals":
            for resource, seconds in value.items():
                if isinstance(seconds, bool) or not isinstance(seconds, int) or not 30 <= seconds <= 86400:
                    raise invalid(where + [str(resource)[:64]], "seconds from 30 to 86400", "int_range")
    return dict(settings)


def check_connection(
    *,
    subtype: str,
    integration_type: str | None,
    base_url: str,
    port: int | None,
    verify_tls: bool,
    ca_pem: str | None,
    credential_kind: str | None,
    credentials: Any,
    settings: Any,
    loc: list[str] | None = None,
) -> Connection:
    loc = loc or ["body"]
    spec = subtype_of(subtype, integration_type, loc)
    kind, secrets = check_credentials(spec, credential_kind, credentials, loc)
    url = normalise_base_url(base_url, port, loc)
    # Addresses written in the URL are refused at once; names are checked by the ingestor on the
    # address it actually connects to (soc_shared.egress).
    refused = EgressPolicy.from_env().check_literal(url)
    if refused is not None:
        raise ApiError(
            422,
            "egress_denied",
            f"{refused}: vendor connections to internal addresses are not allowed "
            "(an operator may admit them with SOC_EGRESS_ALLOW)",
            {"errors": [{"loc": loc + ["base_url"], "msg": refused, "type": "egress_denied"}]},
        )
    return Connection(
        subtype=spec.subtype,
        base_url=url,
        verify_tls=verify_tls,
        ca_pem=check_ca_pem(ca_pem, loc),
        credential_kind=kind,
        credentials=secrets,
        settings=check_settings(spec, settings, loc),
    )


__all__ = [
    "Connection",
    "ca_summary",
    "check_ca_pem",
    "check_connection",
    "check_credentials",
    "check_settings",
    "normalise_base_url",
    "subtype_of",
]
