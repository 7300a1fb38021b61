"""Demo data through the public API (the gateway), idempotently: integrations pointing at the vendor
simulators, two companies ("Acme Corp", "Globex") with a tenant admin, a tenant user and their
directory groups, the vendor tenants the ingestors discover mapped to them with contracted volumes,
and each company's own Cyware integration.

``seed_demo(gateway_url, admin_username, admin_password)`` returns the login lines to print. Run it
alone against a running suite: ``python scripts/demo.py [gateway_url]`` (admin from
``SOC_ADMIN_USERNAME`` / ``SOC_ADMIN_PASSWORD``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

SIMULATOR_HOST = os.environ.get("SOC_DEMO_SIMULATOR_HOST", "127.0.0.1")
# Where the vendor simulators listen (make up's fixed ports; the browser tests pass their own).
SIMULATOR_PORTS = {"qradar": 9101, "xsoar": 9102, "sdp": 9103, "cyware": 9104}
DISCOVERY_TIMEOUT = float(os.environ.get("SOC_DEMO_DISCOVERY_TIMEOUT", "120"))

INTEGRATIONS = [
    # (instance name, subtype, simulator, credential kind, credentials, settings)
    ("Demo QRadar", "IBM_QRADAR", "qradar", "API_KEY", {"api_key": "qradar-demo-token"}, {}),
    ("Demo XSOAR", "CORTEX_XSOAR", "xsoar", "API_KEY", {"api_key": "xsoar-demo-key"}, {}),
    (
        "Demo ServiceDesk Plus",
        "MANAGEENGINE_SDP",
        "sdp",
        "API_KEY",
        {"api_key": "sdp-demo-key"},
        {"auth_style": "authtoken"},
    ),
]


@dataclass(frozen=True)
class DemoCompany:
    name: str
    slug: str
    country: str
    industry: str
    volume_type: str
    volume: int
    cyware_access: str
    cyware_secret: str

    @property
    def users(self) -> list[dict[str, Any]]:
        # Local demo accounts; the passwords meet auth's policy (12+ characters, 3 classes, not common).
        return [
            {
                "username": f"{self.slug}.admin",
                "email": f"admin@{self.slug}.example",
                "tenant_role": "TENANT_ADMIN",
                "password": f"{self.slug.capitalize()}-Admin-Demo-42",
                "country": self.country,
            },
            {
                "username": f"{self.slug}.user",
                "email": f"user@{self.slug}.example",
                "tenant_role": "TENANT_USER",
                "permissions": ["DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE"],
                "password": f"{self.slug.capitalize()}-User-Demo-42",
                "country": self.country,
            },
        ]

    @property
    def directory_groups(self) -> list[dict[str, Any]]:
        return [
            {"ldap_group": f"{self.slug}-soc-admins", "tenant_role": "TENANT_ADMIN"},
            {
                "ldap_group": f"{self.slug}-soc-users",
                "tenant_role": "TENANT_USER",
                "permissions": ["DASHBOARD", "REPORTS", "THREAT_INTELLIGENCE", "ASSETS"],
            },
        ]


COMPANIES = [
    DemoCompany("Acme Corp", "acme", "US", "Manufacturing", "EPS", 1500, "acme-access", "acme-secret"),
    DemoCompany("Globex", "globex", "DE", "Energy", "GB_PER_DAY", 50, "globex-access", "globex-secret"),
]


class DemoError(RuntimeError):
    pass


class Api:
    """The public API through the gateway, with the admin's token; every failure names the call."""

    def __init__(self, gateway_url: str) -> None:
        self.http = httpx.Client(base_url=gateway_url.rstrip("/"), timeout=90)
        self.token: str | None = None

    def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204), **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise DemoError(
                f"{method} {path}: cannot reach the gateway ({type(exc).__name__}: {exc})"
            ) from None
        if response.status_code not in ok:
            hint = (
                " — is this endpoint implemented by its service yet?"
                if response.status_code in (404, 405)
                else ""
            )
            raise DemoError(
                f"{method} {path} answered HTTP {response.status_code}{hint}: {response.text[:400]}"
            )
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        return response.json() if response.content else None

    def login(self, username: str, password: str) -> None:
        body = self.json("POST", "/auth/admin/login/", json={"username": username, "password": password})
        self.token = body["access_token"]

    def all_items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.json("GET", path, params={**params, "limit": 500, "offset": offset})
            items += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items


def say(message: str) -> None:
    print(f"  demo: {message}", flush=True)  # noqa: T201 - a command-line tool's progress


def ensure_integration(
    api: Api,
    name: str,
    subtype: str,
    base_url: str,
    kind: str,
    credentials: dict[str, str],
    settings: dict[str, Any],
    company_id: str | None = None,
) -> dict[str, Any]:
    existing = [
        i for i in api.all_items("/integration/", subtype=subtype, q=name) if i["instance_name"] == name
    ]
    if existing:
        integration = existing[0]
        if integration["base_url"] != base_url:
            integration = api.json("PUT", f"/integration/{integration['id']}/", json={"base_url": base_url})
    else:
        body = {
            "subtype": subtype,
            "instance_name": name,
            "base_url": base_url,
            "credential_kind": kind,
            "credentials": credentials,
            "settings": settings,
            "polling_interval_seconds": 60,
        }
        if company_id:
            body["company_id"] = company_id
        integration = api.json("POST", "/integration/", json=body)
        say(f"created integration {name} ({subtype})")
    try:
        result = api.json("POST", f"/integration/{integration['id']}/test-connection/")
        state = "ok" if result["ok"] else f"FAILED [{result['category']}] {result['message']}"
        say(f"test-connection {name}: {state}")
    except DemoError as exc:
        say(f"test-connection {name} could not run: {exc}")
    return integration


def ensure_company(api: Api, demo: DemoCompany) -> dict[str, Any]:
    found = [
        c
        for c in api.all_items("/admin/companies/", q=demo.name, status="all")
        if c["name"].lower() == demo.name.lower()
    ]
    if found:
        company = found[0]
        if company["status"] != "active":
            api.call("POST", f"/admin/tenants/{company['id']}/reactivate/")
    else:
        company = api.json(
            "POST",
            "/admin/companies/",
            json={"name": demo.name, "country": demo.country, "industry": demo.industry},
        )
        say(f"created company {demo.name}")
    api.call(
        "PUT", f"/admin/companies/{company['id']}/directory-groups/", json={"items": demo.directory_groups}
    )
    members = {m["username"] for m in api.all_items(f"/admin/companies/{company['id']}/users/")}
    for user in demo.users:
        if user["username"] not in members:
            api.call("POST", f"/admin/companies/{company['id']}/users/", json=user)
            say(f"created {user['tenant_role']} {user['username']} of {demo.name}")
    return company


def is_default(name: str | None, key: Any) -> bool:
    text = (name or "").lower()
    return "default" in text or str(key) in ("0", "") or text in ("master", "system")


def discover(
    api: Api, qradar_id: str, xsoar_id: str, sdp_id: str
) -> tuple[list[dict], list[dict], list[dict]]:
    """Wait until the ingestors found the vendor tenants (at least two non-default ones each)."""
    deadline = time.monotonic() + DISCOVERY_TIMEOUT
    last_error = None
    while True:
        try:
            domains = [
                d
                for d in api.all_items("/tenant/qradar-tenants/")
                if d["integration_id"] == qradar_id
                and not d.get("deleted")
                and not is_default(d.get("name"), d.get("domain_id"))
            ]
            accounts = [
                a
                for a in api.all_items("/tenant/soar-tenants/")
                if a["integration_id"] == xsoar_id and not is_default(a.get("name"), a.get("account_id"))
            ]
            sdp_accounts = [
                a
                for a in api.all_items("/tenant/itsm-tenants/")
                if a["integration_id"] == sdp_id and not is_default(a.get("name"), a.get("account_id"))
            ]
            if len(domains) >= 2 and len(accounts) >= 2 and len(sdp_accounts) >= 2:
                return (
                    sorted(domains, key=lambda d: d["domain_id"]),
                    sorted(accounts, key=lambda a: a["name"]),
                    sorted(sdp_accounts, key=lambda a: str(a["account_id"])),
                )
            last_error = f"so far {len(domains)} QRadar domains, {len(accounts)} XSOAR accounts, {len(sdp_accounts)} SDP accounts"
        except DemoError as exc:
            last_error = str(exc)
        if time.monotonic() > deadline:
            raise DemoError(
                f"the ingestors did not discover the vendor tenants within {DISCOVERY_TIMEOUT:.0f}s ({last_error})"
            )
        time.sleep(2)


def ensure_mapping(api: Api, kind: str, body: dict[str, Any]) -> None:
    response = api.call("POST", f"/admin/mappings/{kind}/", json=body, ok=(201, 409))
    if response.status_code == 409:
        mapping_id = response.json()["error"]["details"].get("mapping_id")
        extra = {k: body[k] for k in ("contracted_volume_type", "contracted_volume") if k in body}
        if mapping_id:
            api.call("PUT", f"/admin/mappings/{kind}/{mapping_id}/", json={**extra, "active": True})


def ensure_notifications(api: Api, company_id: str | None, rules: list[dict[str, Any]]) -> None:
    """An in-app channel and ``rules`` sending to it, for a company (None: the MSSP's staff);
    kept as they are when they exist (matched by name)."""
    scope = {"company_id": company_id} if company_id else {}
    channels = [
        c
        for c in api.all_items("/admin/notifications/channels/", kind="in_app", **scope)
        if c["company_id"] == company_id
    ]
    channel = next((c for c in channels if c["name"] == "Portal"), None)
    if channel is None:
        channel = api.json(
            "POST",
            "/admin/notifications/channels/",
            json={"name": "Portal", "kind": "in_app", "company_id": company_id, "rate_per_minute": 600},
        )
    existing = {
        r["name"]
        for r in api.all_items("/admin/notifications/rules/", **scope)
        if r["company_id"] == company_id
    }
    for rule in rules:
        if rule["name"] not in existing:
            api.call(
                "POST",
                "/admin/notifications/rules/",
                json={**rule, "company_id": company_id, "channel_ids": [channel["id"]]},
            )


COMPANY_RULES = [
    {"name": "SLA about to breach", "trigger": "sla_due_soon", "lead_minutes": 15},
    {"name": "SLA breached", "trigger": "sla_breached"},
    {"name": "High and critical incidents", "trigger": "incident_created", "min_incident_severity": "high"},
    {"name": "Contracted EPS exceeded", "trigger": "eps_exceeded"},
    {"name": "Ticket opened", "trigger": "ticket_created"},
]
STAFF_RULES = [
    {"name": "Integration failing", "trigger": "integration_error", "polls": 3},
    {"name": "Severe offenses", "trigger": "offense_created", "min_offense_severity": 7},
]


def seed_demo(
    gateway_url: str,
    admin_username: str,
    admin_password: str,
    simulator_ports: dict[str, int] | None = None,
) -> list[str]:
    ports = {**SIMULATOR_PORTS, **(simulator_ports or {})}
    api = Api(gateway_url)
    say("seeding demo data")
    try:
        api.login(admin_username, admin_password)
    except DemoError as exc:
        raise DemoError(f"admin login failed: {exc}") from None

    created = {
        subtype: ensure_integration(
            api, name, subtype, f"http://{SIMULATOR_HOST}:{ports[simulator]}", kind, creds, settings
        )
        for name, subtype, simulator, kind, creds, settings in INTEGRATIONS
    }
    companies = [(demo, ensure_company(api, demo)) for demo in COMPANIES]

    try:
        domains, accounts, sdp_accounts = discover(
            api, created["IBM_QRADAR"]["id"], created["CORTEX_XSOAR"]["id"], created["MANAGEENGINE_SDP"]["id"]
        )
    except DemoError as exc:
        say(f"WARNING: vendor tenants not mapped: {exc}")
    else:
        for n, (demo, company) in enumerate(companies):
            ensure_mapping(
                api,
                "qradar",
                {
                    "company_id": company["id"],
                    "integration_id": created["IBM_QRADAR"]["id"],
                    "domain_id": domains[n]["domain_id"],
                    "contracted_volume_type": demo.volume_type,
                    "contracted_volume": demo.volume,
                },
            )
            ensure_mapping(
                api,
                "soar",
                {
                    "company_id": company["id"],
                    "integration_id": created["CORTEX_XSOAR"]["id"],
                    "account": accounts[n]["name"],
                },
            )
            ensure_mapping(
                api,
                "itsm",
                {
                    "company_id": company["id"],
                    "integration_id": created["MANAGEENGINE_SDP"]["id"],
                    "account_id": str(sdp_accounts[n]["account_id"]),
                },
            )
            say(
                f"{demo.name}: QRadar domain {domains[n]['name']!r}, XSOAR account {accounts[n]['name']!r}, "
                f"SDP account {sdp_accounts[n]['name']!r}"
            )

    # Threat intelligence last: its alerts are matched as they arrive against the offenses and
    # incidents of the companies mapped by then (records of a mapping made later are matched by the
    # tenant service's next rematch pass, up to a minute later).
    for demo, company in companies:
        ensure_integration(
            api,
            f"Cyware ({demo.name})",
            "CYWARE",
            f"http://{SIMULATOR_HOST}:{ports['cyware']}",
            "SECRET_KEY_ACCESS_KEY",
            {"access_key": demo.cyware_access, "secret_key": demo.cyware_secret},
            {},
            company_id=company["id"],
        )

    # Notifications in the portal: each company's SLA, incident, EPS and ticket rules; the staff's
    # integration and severe-offense rules.
    try:
        for _demo, company in companies:
            ensure_notifications(api, company["id"], COMPANY_RULES)
        ensure_notifications(api, None, STAFF_RULES)
    except DemoError as exc:
        say(f"WARNING: demo notification rules not made: {exc}")

    lines = []
    for demo, _company in companies:
        for user in demo.users:
            role = "tenant admin" if user["tenant_role"] == "TENANT_ADMIN" else "tenant user "
            lines.append(f"{demo.name:<10} {role}: {user['username']} / {user['password']}")
        lines.append(
            f"{demo.name:<10} directory groups: {demo.slug}-soc-admins (admins), {demo.slug}-soc-users (users)"
        )
    return lines


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    for line in seed_demo(
        url, os.environ.get("SOC_ADMIN_USERNAME", "admin"), os.environ["SOC_ADMIN_PASSWORD"]
    ):
        print(line)  # noqa: T201
