"""POST /internal/test-connection (service token) reports each failure category correctly."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from soc_itsm_ingest.config import Settings
from soc_itsm_ingest.main import create_app
from soc_simulators import sdp as sdp_sim
from soc_simulators import zoho as zoho_sim
from soc_simulators.faults import Fault

ZOHO_CLIENT = {
    "client_id": zoho_sim.CLIENT_ID,
    "client_secret": zoho_sim.CLIENT_SECRET,
    "refresh_token": zoho_sim.REFRESH_TOKEN,
}


def self_signed(directory: Path) -> tuple[Path, Path]:
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sdp.local")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class Caller:
    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    async def __call__(
        self,
        base_url: str,
        *,
        secrets: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        kind: str = "API_KEY",
    ) -> dict[str, Any]:
        body = {
            "subtype": "MANAGEENGINE_SDP",
            "base_url": base_url,
            "credential_kind": kind,
            "credentials": secrets if secrets is not None else {"api_key": sdp_sim.AUTH_TOKEN},
            "settings": settings or {},
        }
        r = await self.client.post("/internal/test-connection", json=body, headers=self.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())


async def _app_caller(tokens: Any, client_options: dict[str, Any] | None = None) -> AsyncIterator[Caller]:
    app = create_app(
        Settings(scheduler_enabled=False, tickets_enabled=False),
        verifier=tokens.verifier(),
        client_options=client_options,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://itsm-ingest") as client,
    ):
        yield Caller(client, tokens.headers(kind="service", sub="tenant"))


@pytest_asyncio.fixture(loop_scope="session")
async def call(tokens: Any, settings: Settings) -> AsyncIterator[Caller]:
    async for caller in _app_caller(tokens):
        yield caller


async def test_test_connection_needs_a_service_token(call: Caller, tokens: Any) -> None:
    r = await call.client.post("/internal/test-connection", json={}, headers=tokens.headers(kind="admin"))
    assert r.status_code == 403


async def test_both_auth_styles_pass_every_check(call: Caller, socket_sim: Any) -> None:
    _, base = socket_sim
    ok = await call(base)
    assert ok["ok"] is True and ok["details"]["passed_checks"] == [
        "accounts",
        "requests",
        "incident_id_field",
    ]
    assert ok["details"]["accounts"] == len(sdp_sim.ACCOUNTS) and ok["details"]["auth_style"] == "authtoken"
    cloud = await call(
        base + "/app/itdesk",
        kind="OAUTH_CLIENT",
        secrets=dict(ZOHO_CLIENT),
        settings={"accounts_url": base},  # the simulator is its own Zoho accounts server
    )
    assert cloud["ok"] is True and cloud["details"]["auth_style"] == "oauth"


async def test_bad_credentials(call: Caller, socket_sim: Any) -> None:
    _, base = socket_sim
    result = await call(base, secrets={"api_key": "wrong"})
    assert (result["ok"], result["category"]) == (False, "bad_credentials")
    assert result["details"]["failed_check"] == "accounts" and result["details"]["vendor_code"] == "4022"
    for secrets, code in (
        ({**ZOHO_CLIENT, "refresh_token": "1000.revoked"}, "invalid_code"),
        ({**ZOHO_CLIENT, "client_secret": "wrong"}, "invalid_client"),
    ):
        refused = await call(base, kind="OAUTH_CLIENT", secrets=secrets, settings={"accounts_url": base})
        assert (refused["ok"], refused["category"]) == (False, "bad_credentials"), refused
        assert refused["details"]["vendor_code"] == code and "Zoho" in refused["message"]
    incomplete = await call(base, kind="OAUTH_CLIENT", secrets={"client_id": "x"})
    assert (incomplete["ok"], incomplete["category"]) == (False, "invalid_request")
    missing = await call(base, secrets={})
    assert (missing["ok"], missing["category"]) == (False, "invalid_request")


async def test_a_wrong_incident_id_field_is_named(call: Caller, socket_sim: Any) -> None:
    _, base = socket_sim
    result = await call(base, settings={"incident_id_field": "udf_fields.udf_sline_9999"})
    assert (result["ok"], result["category"]) == (False, "invalid_request")
    assert result["details"]["failed_check"] == "incident_id_field"
    assert result["details"]["passed_checks"] == ["accounts", "requests"]
    assert "udf_sline_9999" in result["message"]


async def test_unreachable_and_not_found(call: Caller, socket_sim: Any, kit: Any) -> None:
    closed = await call(f"http://127.0.0.1:{kit.free_port()}")
    assert (closed["ok"], closed["category"]) == (False, "unreachable")
    _, base = socket_sim
    wrong_path = await call(base + "/servicedesk")
    assert (wrong_path["ok"], wrong_path["category"]) == (False, "not_found")


async def test_tls_https_to_plain_http_and_self_signed(call: Caller, socket_sim: Any, kit: Any) -> None:
    _, base = socket_sim
    plain = await call(base.replace("http://", "https://"))
    assert (plain["ok"], plain["category"]) == (False, "tls")
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed(Path(tmp))
        app = sdp_sim.create_app(seed=5, requests=5, xsoar_incidents=10)
        with kit.ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
            result = await call(f"https://127.0.0.1:{server.port}")
            assert (result["ok"], result["category"]) == (False, "tls")
            trusted = await call.client.post(
                "/internal/test-connection",
                headers=call.headers,
                json={
                    "subtype": "MANAGEENGINE_SDP",
                    "base_url": f"https://127.0.0.1:{server.port}",
                    "credential_kind": "API_KEY",
                    "credentials": {"api_key": sdp_sim.AUTH_TOKEN},
                    "ca_pem": cert.read_text(),
                },
            )
            assert trusted.json()["ok"] is True, trusted.text


async def test_bad_response(call: Caller, socket_sim: Any) -> None:
    app, base = socket_sim
    app.state.faults.arm(Fault(kind="garbage", count=5, path="/api/v3/accounts"))
    try:
        result = await call(base)
    finally:
        app.state.faults.clear()
    assert (result["ok"], result["category"]) == (False, "bad_response")


async def test_permission(tokens: Any, settings: Settings) -> None:
    """The simulator has no restricted technician; a recorded-shape 403 stands in for one."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/accounts"):
            body = {
                "response_status": [{"status_code": 2000, "status": "success"}],
                "accounts": [],
                "list_info": {"has_more_rows": False},
            }
            return httpx.Response(200, json=body)
        body = {
            "response_status": {
                "status_code": 4000,
                "status": "failed",
                "messages": [
                    {"status_code": 4002, "type": "failed", "message": "User not authorised to view requests"}
                ],
            }
        }
        return httpx.Response(
            403, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )

    async for call in _app_caller(tokens, {"transport": httpx.MockTransport(handler)}):
        result = await call("https://sdp.example")
        assert (result["ok"], result["category"]) == (False, "permission")
        assert result["details"]["failed_check"] == "requests" and result["details"]["vendor_code"] == "4002"
