"""Integrations: validation, sealed credentials (never stored, returned, published or logged in clear),
rotation, test-connection through the ingestors, sync-now, sync reports, and the internal API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loguru import logger
from soc_shared.events import SyncReported, make_event
from soc_tenant.control.tables import integration, outbox
from soc_tenant.integrations.views import apply_sync_reports


def self_signed_pem() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Vendor CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def qradar_body(**overrides) -> dict:
    return {
        "subtype": "IBM_QRADAR",
        "instance_name": f"QRadar {uuid.uuid4().hex[:8]}",
        "base_url": "https://qradar.example.com",
        "credential_kind": "API_KEY",
        "credentials": {"api_key": f"tok{uuid.uuid4().hex}"},
        **overrides,
    }


async def create(client, headers, body) -> dict:
    r = await client.post("/integration/", json=body, headers=headers(kind="admin"))
    assert r.status_code == 201, r.text
    return r.json()


async def test_types_describe_subtypes_credential_kinds_and_secret_fields(client, headers):
    r = await client.get(
        "/integration/types/", headers=headers(kind="admin", read_only=True, roles=["READ_ONLY_ADMIN"])
    )
    assert r.status_code == 200
    types = {t["integration_type"]: t for t in r.json()["items"]}
    assert set(types) == {"SIEM", "SOAR", "ITSM", "THREAT_INTELLIGENCE"}
    qradar = types["SIEM"]["subtypes"][0]
    kinds = {k["kind"]: k for k in qradar["credential_kinds"]}
    assert set(kinds) == {"API_KEY", "USERNAME_PASSWORD"}
    assert {f["name"]: f["secret"] for f in kinds["USERNAME_PASSWORD"]["fields"]} == {
        "username": False,
        "password": True,
    }
    xsoar = types["SOAR"]["subtypes"][0]["credential_kinds"][0]
    assert {f["name"]: f["required"] for f in xsoar["fields"]} == {"api_key": True, "api_key_id": False}
    sdp = types["ITSM"]["subtypes"][0]
    sdp_kinds = {k["kind"]: k for k in sdp["credential_kinds"]}
    assert [f["name"] for f in sdp_kinds["OAUTH_CLIENT"]["fields"]] == [
        "client_id",
        "client_secret",
        "refresh_token",
    ]
    assert all(f["secret"] for f in sdp_kinds["OAUTH_CLIENT"]["fields"])
    assert "accounts_url" in {s["name"] for s in sdp["settings"]}
    cyware = types["THREAT_INTELLIGENCE"]["subtypes"][0]
    assert (
        cyware["requires_company"] is True
        and cyware["credential_kinds"][0]["kind"] == "SECRET_KEY_ACCESS_KEY"
    )
    assert (
        await client.get("/integration/types/", headers=headers(kind="tenant", company_id=str(uuid.uuid4())))
    ).status_code == 403


@pytest.mark.parametrize(
    "change, loc",
    [
        ({"base_url": "ftp://qradar.example.com"}, "base_url"),
        ({"base_url": "https://"}, "base_url"),
        ({"base_url": "qradar.example.com"}, "base_url"),
        ({"base_url": "https://user:pw@qradar.example.com"}, "base_url"),
        ({"base_url": "https://qradar.example.com:70000"}, "base_url"),
        ({"base_url": "https://qradar.example.com:0"}, "base_url"),
        ({"base_url": "https://qradar.example.com/?x=1"}, "base_url"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"base_url": "https://qradar.example.com:8443", "port": 443}, "port"),
        ({"polling_interval_seconds": 29}, "polling_interval_seconds"),
        ({"polling_interval_seconds": 86401}, "polling_interval_seconds"),
        ({"instance_name": ""}, "instance_name"),
        ({"instance_name": "x" * 101}, "instance_name"),
        ({"subtype": "SPLUNK"}, "subtype"),
        ({"integration_type": "SOAR"}, "subtype"),
        ({"credential_kind": "SECRET_KEY_ACCESS_KEY"}, "credential_kind"),
        ({"credentials": {}}, "api_key"),
        ({"credentials": {"api_key": "   "}}, "api_key"),
        ({"credentials": {"api_key": 12345}}, "api_key"),
        ({"credentials": {"api_key": "k", "password": "p"}}, "password"),
        ({"credential_kind": "USERNAME_PASSWORD", "credentials": {"username": "u"}}, "password"),
        ({"ca_pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"}, "ca_pem"),
        ({"ca_pem": "hello"}, "ca_pem"),
        ({"settings": {"api_version": 16}}, "api_version"),
        ({"settings": {"resource_intervals": {"offenses": 5}}}, "offenses"),
        ({"company_id": str(uuid.uuid4())}, "company_id"),
        ({"extra_field": 1}, "extra_field"),
    ],
)
async def test_invalid_integrations_are_refused_with_the_field_named(client, headers, change, loc):
    body = {**qradar_body(), **change}
    r = await client.post("/integration/", json=body, headers=headers(kind="admin"))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert any(loc in err["loc"] for err in error["details"]["errors"]), error
    secret = body["credentials"].get("api_key")
    if isinstance(secret, str) and len(secret) >= 8:
        assert secret not in r.text  # a rejected body is never echoed


async def test_ca_pem_must_be_certificates_only(client, headers):
    cert, key = self_signed_pem()
    created = await create(client, headers, qradar_body(ca_pem=cert, port=8443))
    assert created["base_url"] == "https://qradar.example.com:8443"
    assert created["has_custom_ca"] is True and created["ca"][0]["subject"] == "CN=Test Vendor CA"
    r = await client.post("/integration/", json=qradar_body(ca_pem=cert + key), headers=headers(kind="admin"))
    assert r.status_code == 422 and "private key" in r.json()["error"]["details"]["errors"][0]["msg"]


async def test_credentials_are_sealed_masked_never_returned_published_or_logged(
    app, client, headers, event_tap, fake_ingestors
):
    secret = f"SEC{uuid.uuid4().hex}{uuid.uuid4().hex}"
    password = f"pw{uuid.uuid4().hex}"
    logs: list[str] = []
    sink = logger.add(lambda m: logs.append(str(m) + repr(m.record["extra"])), level="TRACE")
    try:
        async with event_tap("tenant.integration.changed") as tap:
            created = await create(client, headers, qradar_body(credentials={"api_key": secret}))
            iid = created["id"]
            await tap.wait_for(lambda evs: [e for e in evs if e.subject == iid])
            rotated = await client.put(
                f"/integration/{iid}/credentials/",
                headers=headers(kind="admin"),
                json={
                    "credential_kind": "USERNAME_PASSWORD",
                    "credentials": {"username": "svc-portal", "password": password},
                },
            )
            assert rotated.status_code == 200, rotated.text
            await tap.wait_for(lambda evs: len([e for e in evs if e.subject == iid]) >= 2)
            tested = await client.post(
                "/integration/test-connection/", headers=headers(kind="admin"), json={"integration_id": iid}
            )
            assert tested.status_code == 200
            internal = await client.get(
                f"/internal/integrations/{iid}/credentials",
                headers=headers(kind="service", sub="siem-ingest", roles=[]),
            )
            listed = await client.get("/integration/", headers=headers(kind="admin"))
            events = [e for e in tap.events if e.subject == iid]
    finally:
        logger.remove(sink)
    assert created["credentials"] == {"api_key": "••••" + secret[-4:]}
    assert (
        rotated.json()["credentials_version"] == 2
        and rotated.json()["credential_kind"] == "USERNAME_PASSWORD"
    )
    assert rotated.json()["credentials"]["password"].startswith("••••")
    for response in (rotated, tested, listed):
        assert secret not in response.text and password not in response.text
    for event in events:
        assert secret not in event.model_dump_json() and password not in event.model_dump_json()
    assert events[-1].payload().credentials_version == 2
    # the only way out: the internal API, to a service
    assert internal.status_code == 200
    assert internal.json() == {
        "integration_id": iid,
        "origin": "https://qradar.example.com:443",
        "base_url": "https://qradar.example.com",
        "credential_kind": "USERNAME_PASSWORD",
        "secrets": {"username": "svc-portal", "password": password},
        "ca_pem": None,
        "credentials_version": 2,
    }
    # the ingestor got them to test the connection, which is its job
    assert fake_ingestors.requests[-1][2]["credentials"] == {"username": "svc-portal", "password": password}
    text = "\n".join(logs)
    assert secret not in text and password not in text
    assert f"credentials of integration {iid}" in text  # the audit line is there, without the secret
    async with app.state.db.session() as s:
        row = (
            (await s.execute(sa.select(integration).where(integration.c.id == uuid.UUID(iid))))
            .mappings()
            .one()
        )
        dumped = (
            await s.execute(sa.text("SELECT i::text FROM integration i WHERE id = :id"), {"id": iid})
        ).scalar_one()
        boxed = (await s.execute(sa.select(sa.cast(outbox.c.event, sa.Text)))).scalars().all()
    assert secret not in dumped and password not in dumped
    assert row["credentials_sealed"].startswith("v1.")
    assert not any(secret in b or password in b for b in boxed)
    # a sealed value copied onto another integration does not open there
    other = await create(client, headers, qradar_body())
    async with app.state.db.session() as s:
        await s.execute(
            sa.update(integration)
            .where(integration.c.id == uuid.UUID(other["id"]))
            .values(credentials_sealed=row["credentials_sealed"])
        )
    r = await client.get(
        f"/internal/integrations/{other['id']}/credentials",
        headers=headers(kind="service", sub="siem-ingest", roles=[]),
    )
    assert (
        r.status_code == 500
        and r.json()["error"]["code"] == "credentials_unreadable"
        and password not in r.text
    )


async def test_internal_api_is_for_services_only(client, headers):
    created = await create(client, headers, qradar_body())
    for h in (headers(kind="admin"), headers(kind="tenant", company_id=str(uuid.uuid4())), {}):
        r = await client.get(f"/internal/integrations/{created['id']}/credentials", headers=h)
        assert r.status_code in (401, 403)
    svc = headers(kind="service", sub="siem-ingest", roles=[])
    assert (
        await client.get(f"/internal/integrations/{uuid.uuid4()}/credentials", headers=svc)
    ).status_code == 404
    assert (await client.get("/internal/integrations/not-a-uuid/credentials", headers=svc)).status_code == 404
    listed = (
        await client.get("/internal/integrations/", params={"subtype": "IBM_QRADAR"}, headers=svc)
    ).json()
    item = next(i for i in listed["items"] if i["integration_id"] == created["id"])
    assert item["subtype"] == "IBM_QRADAR" and "credentials" not in item and "secrets" not in item
    assert {
        "integration_id",
        "status",
        "base_url",
        "credential_kind",
        "credentials_version",
        "changed_at",
    } <= set(item)
    assert (await client.get("/internal/integrations", headers=svc)).status_code == 200


async def test_republish_sends_every_integration_again(client, headers, event_tap):
    created = await create(client, headers, qradar_body())
    svc = headers(kind="service", sub="siem-ingest", roles=[])
    async with event_tap("tenant.integration.changed") as tap:
        r = await client.post("/internal/integrations/republish", headers=svc, json={"subtype": "IBM_QRADAR"})
        assert r.status_code == 200 and r.json()["published"] >= 1
        await tap.wait_for(lambda evs: [e for e in evs if e.subject == created["id"]])


async def test_threat_intelligence_belongs_to_one_company(client, headers):
    admin = headers(kind="admin")
    company = (
        await client.post("/admin/companies/", headers=admin, json={"name": f"TI {uuid.uuid4().hex[:6]}"})
    ).json()
    body = {
        "subtype": "CYWARE",
        "instance_name": f"Cyware {uuid.uuid4().hex[:6]}",
        "base_url": "https://cyware.example",
        "credentials": {"access_key": "acme-access", "secret_key": "acme-secret"},
    }
    r = await client.post("/integration/", headers=admin, json=body)
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["loc"] == ["body", "company_id"]
    first = await create(client, headers, {**body, "company_id": company["id"]})
    assert first["company_id"] == company["id"] and first["integration_type"] == "THREAT_INTELLIGENCE"
    r = await client.post(
        "/integration/", headers=admin, json={**body, "instance_name": "second", "company_id": company["id"]}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "threat_intel_exists"
    r = await client.post("/integration/", headers=admin, json={**body, "company_id": str(uuid.uuid4())})
    assert r.status_code == 422
    r = await client.post(
        "/integration/",
        headers=admin,
        json={**body, "instance_name": first["instance_name"].upper(), "company_id": company["id"]},
    )
    assert r.status_code == 409


async def test_update_disable_enable_and_delete(client, headers, event_tap):
    admin = headers(kind="admin")
    created = await create(client, headers, qradar_body())
    iid = created["id"]
    async with event_tap("tenant.integration.changed") as tap:
        r = await client.put(
            f"/integration/{iid}/",
            headers=admin,
            json={"polling_interval_seconds": 60, "settings": {"api_version": "19.0"}},
        )
        assert r.status_code == 200 and r.json()["polling_interval_seconds"] == 60
        assert r.json()["credentials_version"] == 1  # settings are not credentials
        r = await client.put(f"/integration/{iid}/", headers=admin, json={"enabled": False})
        assert r.json()["status"] == "disabled"
        r = await client.put(f"/integration/{iid}/", headers=admin, json={"enabled": True})
        assert r.json()["status"] == "pending"
        assert (
            await client.put(f"/integration/{iid}/", headers=admin, json={"base_url": "gopher://x"})
        ).status_code == 422
        assert (
            await client.put(f"/integration/{iid}/", headers=admin, json={"subtype": "CYWARE"})
        ).status_code == 422
        assert (await client.delete(f"/integration/{iid}/", headers=admin)).status_code == 204
        deleted = await tap.wait_for(
            lambda evs: [e.payload() for e in evs if e.subject == iid and e.payload().deleted]
        )
    assert deleted[0].status == "disabled"
    assert (
        await client.put(f"/integration/{iid}/", headers=admin, json={"enabled": True})
    ).status_code == 404
    listed = (await client.get("/integration/", headers=admin)).json()
    assert iid not in [i["id"] for i in listed["items"]]
    instances = (
        await client.get("/integration/instances/", params={"integration_type": "SIEM"}, headers=admin)
    ).json()
    assert instances["items"][0]["subtype"] == "IBM_QRADAR"


async def test_test_connection_categories_from_the_ingestor(client, headers, fake_ingestors, app, event_tap):
    admin = headers(kind="admin")
    unsaved = {
        "subtype": "MANAGEENGINE_SDP",
        "base_url": "https://sdp.example.com",
        "credentials": {"api_key": "sdp-key"},
        "settings": {"accounts_url": "https://accounts.zoho.eu"},
    }
    fake_ingestors.results["MANAGEENGINE_SDP"] = {"ok": True, "message": "connected to ServiceDesk Plus"}
    r = await client.post("/integration/test-connection/", headers=admin, json=unsaved)
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["saved"] is False
    host, path, sent = fake_ingestors.requests[-1]
    assert (host, path) == ("127.0.0.1:8013", "/internal/test-connection")
    assert (
        sent["settings"] == {"accounts_url": "https://accounts.zoho.eu"}
        and sent["credential_kind"] == "API_KEY"
    )

    for category in ("unreachable", "tls", "bad_credentials", "permission", "bad_response", "timeout"):
        fake_ingestors.results["MANAGEENGINE_SDP"] = {
            "ok": False,
            "category": category,
            "message": f"vendor said {category}",
        }
        r = await client.post("/integration/test-connection/", headers=admin, json=unsaved)
        body = r.json()
        assert r.status_code == 200 and body["ok"] is False and body["category"] == category and body["hint"]

    fake_ingestors.results["MANAGEENGINE_SDP"] = "unreachable"
    r = await client.post("/integration/test-connection/", headers=admin, json=unsaved)
    assert r.status_code == 502 and r.json()["error"]["code"] == "ingestor_unavailable"
    assert r.json()["error"]["details"]["ingestor"] == "itsm-ingest"
    fake_ingestors.results["MANAGEENGINE_SDP"] = "http500"
    r = await client.post("/integration/test-connection/", headers=admin, json=unsaved)
    assert r.status_code == 502 and r.json()["error"]["code"] == "ingestor_error"
    fake_ingestors.results["MANAGEENGINE_SDP"] = "garbage"
    r = await client.post("/integration/test-connection/", headers=admin, json=unsaved)
    assert r.status_code == 502 and r.json()["error"]["details"]["category"] == "ingestor_bad_response"

    r = await client.post("/integration/test-connection/", headers=admin, json={"base_url": "https://x"})
    assert r.status_code == 422
    r = await client.post(
        "/integration/test-connection/", headers=admin, json={**unsaved, "base_url": "nope"}
    )
    assert r.status_code == 422

    # a saved integration: failure puts it in error, success activates it (and says so on the bus)
    saved = await create(client, headers, {**unsaved, "instance_name": f"SDP {uuid.uuid4().hex[:6]}"})
    fake_ingestors.results["MANAGEENGINE_SDP"] = {
        "ok": False,
        "category": "bad_credentials",
        "message": "401",
    }
    r = await client.post(f"/integration/{saved['id']}/test-connection/", headers=admin)
    assert r.json()["status"] == "error" and r.json()["saved"] is True
    fake_ingestors.results["MANAGEENGINE_SDP"] = {"ok": True, "message": "ok"}
    async with event_tap("tenant.integration.changed") as tap:
        r = await client.post(
            "/integration/test-connection/", headers=admin, json={"integration_id": saved["id"]}
        )
        assert r.json()["ok"] is True and r.json()["status"] == "active"
        active = await tap.wait_for(lambda evs: [e.payload() for e in evs if e.subject == saved["id"]])
    assert active[-1].status == "active"
    detail = (await client.get(f"/integration/{saved['id']}/", headers=admin)).json()
    assert detail["status"] == "active" and detail["last_test"]["ok"] is True and detail["last_tested_at"]
    # trying other credentials on a saved integration saves nothing
    fake_ingestors.results["MANAGEENGINE_SDP"] = {
        "ok": False,
        "category": "bad_credentials",
        "message": "401",
    }
    r = await client.post(
        "/integration/test-connection/",
        headers=admin,
        json={"integration_id": saved["id"], "credentials": {"api_key": "other"}},
    )
    assert r.json()["saved"] is False and r.json()["status"] == "active"
    assert (
        await client.post(
            "/integration/test-connection/", headers=admin, json={"integration_id": str(uuid.uuid4())}
        )
    ).status_code == 404


async def test_sync_now_reaches_the_owning_ingestor(client, headers, fake_ingestors):
    admin = headers(kind="admin")
    created = await create(client, headers, qradar_body())
    r = await client.post(
        f"/admin/integrations/{created['id']}/sync-now/", headers=admin, json={"resource": "offenses"}
    )
    assert r.status_code == 200 and r.json()["scheduled"] == 3 and r.json()["ingestor"] == "siem-ingest"
    assert fake_ingestors.requests[-1] == (
        "127.0.0.1:8011",
        "/internal/sync-now",
        {"integration_id": created["id"], "resource": "offenses"},
    )
    r = await client.post("/admin/sync/qradar/", headers=admin, json={"integration_id": created["id"]})
    assert r.status_code == 200
    r = await client.post("/admin/sync/soar/", headers=admin, json={"integration_id": created["id"]})
    assert (
        r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["type"] == "wrong_integration_type"
    )
    fake_ingestors.down.add("127.0.0.1:8011")
    try:
        r = await client.post("/admin/sync/qradar/", headers=admin, json={"integration_id": created["id"]})
    finally:
        fake_ingestors.down.discard("127.0.0.1:8011")
    assert r.status_code == 502 and r.json()["error"]["code"] == "ingestor_unavailable"
    await client.put(f"/integration/{created['id']}/", headers=admin, json={"enabled": False})
    r = await client.post(f"/admin/integrations/{created['id']}/sync-now/", headers=admin)
    assert r.status_code == 409


async def test_sync_now_for_every_integration_of_a_vendor(client, headers, fake_ingestors):
    admin = headers(kind="admin")
    first = await create(client, headers, qradar_body())
    second = await create(client, headers, qradar_body())
    disabled = await create(client, headers, qradar_body())
    await client.put(f"/integration/{disabled['id']}/", headers=admin, json={"enabled": False})
    before = len(fake_ingestors.requests)
    r = await client.post("/admin/sync/qradar/", headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    asked = {x["integration_id"] for x in body["integrations"]}
    # every enabled QRadar integration (other tests' too), never the disabled one nor another vendor's
    assert {first["id"], second["id"]} <= asked and disabled["id"] not in asked
    sent = [
        b["integration_id"]
        for host, path, b in fake_ingestors.requests[before:]
        if path == "/internal/sync-now"
    ]
    assert sorted(sent) == sorted(asked) and all(
        host == "127.0.0.1:8011" for host, *_ in fake_ingestors.requests[before:]
    )
    assert body["subtype"] == "IBM_QRADAR" and body["failed"] == []
    # the resource is passed on; an unreachable ingestor is reported per integration
    fake_ingestors.down.add("127.0.0.1:8011")
    try:
        r = await client.post("/admin/sync/qradar/", headers=admin, json={"resource": "offenses"})
    finally:
        fake_ingestors.down.discard("127.0.0.1:8011")
    assert r.status_code == 200 and r.json()["integrations"] == []
    assert {x["integration_id"] for x in r.json()["failed"]} == asked
    assert {x["code"] for x in r.json()["failed"]} == {"ingestor_unavailable"}


async def test_sync_reports_drive_status_and_are_shown_per_resource(app, client, headers, event_tap):
    admin = headers(kind="admin")
    created = await create(client, headers, qradar_body())
    iid = created["id"]
    now = datetime.now(UTC)

    def report(
        resource: str, outcome: str, at: datetime, failures: int = 0, category: str | None = None
    ) -> SyncReported:
        return SyncReported(
            integration_id=iid,
            resource=resource,
            outcome=outcome,
            started_at=at - timedelta(seconds=1),
            finished_at=at,
            records=5 if outcome == "ok" else 0,
            error_category=category,
            error_message=None if outcome == "ok" else "boom",
            consecutive_failures=failures,
        )

    # through the bus, as the ingestors send them
    await app.state.bus.publish(
        [
            make_event(
                "ingest.sync.reported",
                report("offenses", "ok", now),
                source="/siem-ingest",
                subject=f"{iid}/offenses",
                integration_id=iid,
            )
        ]
    )
    for _ in range(100):
        detail = (await client.get(f"/integration/{iid}/", headers=admin)).json()
        if detail["status"] == "active":
            break
        await asyncio.sleep(0.05)
    assert (
        detail["status"] == "active"
        and detail["sync"][0]["resource"] == "offenses"
        and detail["sync"][0]["records"] == 5
    )

    async with event_tap("tenant.integration.changed") as tap:
        await apply_sync_reports(
            app, [report("domains", "error", now + timedelta(seconds=1), 1, "server_error")]
        )
        assert (await client.get(f"/integration/{iid}/", headers=admin)).json()[
            "status"
        ] == "active"  # one blip
        await apply_sync_reports(
            app, [report("domains", "error", now + timedelta(seconds=2), 1, "bad_credentials")]
        )
        detail = (await client.get(f"/integration/{iid}/", headers=admin)).json()
        assert detail["status"] == "error" and "bad_credentials" in detail["status_message"]
        await tap.wait_for(lambda evs: [e for e in evs if e.subject == iid and e.payload().status == "error"])
    # an older report delivered late changes nothing
    await apply_sync_reports(app, [report("domains", "ok", now - timedelta(minutes=5))])
    assert (await client.get(f"/integration/{iid}/", headers=admin)).json()["status"] == "error"
    await apply_sync_reports(app, [report("domains", "ok", now + timedelta(seconds=3))])
    detail = (await client.get(f"/integration/{iid}/", headers=admin)).json()
    assert detail["status"] == "active" and {s["resource"]: s["outcome"] for s in detail["sync"]} == {
        "domains": "ok",
        "offenses": "ok",
    }
    assert detail["sync"][0]["last_success_at"] is not None
    # after a rotation, failures reported for the old credentials no longer decide the status
    await apply_sync_reports(app, [report("assets", "error", datetime.now(UTC), 5, "bad_credentials")])
    assert (await client.get(f"/integration/{iid}/", headers=admin)).json()["status"] == "error"
    rotated = await client.put(
        f"/integration/{iid}/credentials/", headers=admin, json={"credentials": {"api_key": "new" * 8}}
    )
    assert rotated.json()["status"] == "pending"
    await apply_sync_reports(app, [report("offenses", "ok", datetime.now(UTC) + timedelta(seconds=10))])
    assert (await client.get(f"/integration/{iid}/", headers=admin)).json()["status"] == "active"
    # reports about integrations we do not know are kept harmlessly
    await apply_sync_reports(
        app,
        [
            SyncReported(
                integration_id="not-ours", resource="x", outcome="ok", started_at=now, finished_at=now
            )
        ],
    )


async def test_outbox_relay_publishes_what_the_request_could_not(app, event_tap):
    from soc_shared.events import CompanyChanged
    from soc_tenant.outbox import service as outbox_module

    subject = str(uuid.uuid4())
    event = outbox_module.build_event(
        "tenant.company.changed",
        CompanyChanged(company_id=subject, name="relay", changed_at=datetime.now(UTC)),
        subject,
    )
    async with app.state.db.session() as s:
        [row_id] = await outbox_module.stage(s, [event])
        # as if the request that wrote it had died before publishing
        await s.execute(
            sa.update(outbox)
            .where(outbox.c.id == row_id)
            .values(created_at=sa.func.now() - timedelta(minutes=1))
        )
    async with event_tap("tenant.company.changed") as tap:
        assert await outbox_module.flush(app.state.db, app.state.bus) >= 1
        await tap.wait_for(lambda evs: [e for e in evs if e.subject == subject])
    async with app.state.db.session() as s:
        assert (
            await s.execute(sa.select(outbox.c.published_at).where(outbox.c.id == row_id))
        ).scalar_one() is not None
    assert await outbox_module.flush(app.state.db, app.state.bus, [row_id]) == 0  # published once


async def test_test_connection_through_the_real_siem_ingest_and_qradar_simulator(
    app, client, headers, tokens, serve_app
):
    """The contract end to end: our ConnectionTestRequest, the real siem-ingest, the QRadar simulator."""
    import socket

    import httpx
    from soc_siem_ingest.config import Settings as SiemSettings
    from soc_siem_ingest.main import create_app as create_siem_app
    from soc_simulators import qradar

    siem = create_siem_app(SiemSettings(), verifier=tokens.verifier())
    siem.state.token_verifier = (
        tokens.verifier()
    )  # its lifespan (bus, scheduler) is not needed for this route
    previous = app.state.ingestor_transport
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    admin = headers(kind="admin")
    async with serve_app(qradar.create_app(seed=7, live=False)) as simulator:
        app.state.ingestor_transport = httpx.ASGITransport(app=siem)
        body = {
            "subtype": "IBM_QRADAR",
            "base_url": f"http://{simulator}",
            "credentials": {"api_key": "qradar-demo-token"},
        }
        try:
            ok = (await client.post("/integration/test-connection/", headers=admin, json=body)).json()
            bad = (
                await client.post(
                    "/integration/test-connection/",
                    headers=admin,
                    json={**body, "credentials": {"api_key": "wrong-token-123"}},
                )
            ).json()
            basic = (
                await client.post(
                    "/integration/test-connection/",
                    headers=admin,
                    json={
                        **body,
                        "credential_kind": "USERNAME_PASSWORD",
                        "credentials": {"username": "nobody", "password": "nothing1"},
                    },
                )
            ).json()
            down = (
                await client.post(
                    "/integration/test-connection/",
                    headers=admin,
                    json={**body, "base_url": f"http://127.0.0.1:{closed_port}"},
                )
            ).json()
        finally:
            app.state.ingestor_transport = previous
    assert ok["ok"] is True and "QRadar" in ok["message"], ok
    assert bad["ok"] is False and bad["category"] == "bad_credentials" and bad["hint"], bad
    assert basic["ok"] is False and basic["category"] in ("bad_credentials", "permission"), basic
    assert down["ok"] is False and down["category"] in ("unreachable", "timeout"), down
