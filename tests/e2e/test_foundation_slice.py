"""The thin slice across every layer: admin login through the gateway; a QRadar simulator's domains
polled by siem-ingest, published on the bus, consumed by tenant and listed through the gateway."""

from __future__ import annotations

import time

import httpx

from .conftest import ADMIN_PASSWORD, SIM_PORTS, Suite, url

GATEWAY = url("gateway")


def _login() -> dict[str, str]:
    r = httpx.post(
        f"{GATEWAY}/auth/login/", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["access_token"] and body["refresh_token"]
    return {"Authorization": f"Bearer {body['access_token']}"}


def _sim_domain_names() -> set[str]:
    r = httpx.get(
        f"http://127.0.0.1:{SIM_PORTS['qradar']}/api/config/domain_management/domains",
        headers={"SEC": "qradar-demo-token", "Version": "16.0"},
        timeout=10,
    )
    r.raise_for_status()
    return {d["name"] for d in r.json()}


def _listed_domain_names(headers: dict[str, str]) -> set[str]:
    r = httpx.get(f"{GATEWAY}/tenant/qradar-tenants/", params={"limit": 500}, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return {d["name"] for d in r.json()["items"]}


def _wait_for_domains(headers: dict[str, str], expected: set[str], timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    names: set[str] = set()
    while time.monotonic() < deadline:
        names = _listed_domain_names(headers)
        if expected <= names:
            return names
        time.sleep(0.5)
    return names


def _create_qradar_integration(headers: dict[str, str], name: str) -> str:
    r = httpx.post(
        f"{GATEWAY}/integration/",
        headers=headers,
        timeout=20,
        json={
            "integration_type": "SIEM",
            "subtype": "IBM_QRADAR",
            "instance_name": name,
            "base_url": f"http://127.0.0.1:{SIM_PORTS['qradar']}",
            "verify_tls": True,
            "polling_interval_seconds": 60,
            "credential_kind": "API_KEY",
            "credentials": {"api_key": "qradar-demo-token"},
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_without_a_token_the_gateway_answers_401_in_the_error_shape(suite: Suite):
    r = httpx.get(f"{GATEWAY}/tenant/qradar-tenants/", timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] in ("not_authenticated", "invalid_token")
    assert r.headers.get("x-request-id")


def test_domains_flow_from_the_simulator_through_the_bus_to_the_tenant_api(suite: Suite):
    headers = _login()
    _create_qradar_integration(headers, "QRadar e2e")
    expected = _sim_domain_names()
    assert len(expected) >= 3
    assert expected <= _wait_for_domains(headers, expected)
