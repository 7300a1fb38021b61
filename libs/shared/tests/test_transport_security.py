"""Internal HTTP ignores proxy variables; TLS to PostgreSQL and between services is configurable."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from soc_shared.runtime import tls_options
from soc_shared.security import ServiceTokenProvider
from soc_shared.settings import ServiceSettings
from soc_shared.sync import TenantCredentials
from soc_shared.testing import ServerThread


async def test_internal_clients_never_go_through_a_proxy(monkeypatch):
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    proxy_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    app = FastAPI()

    @app.post("/auth/internal/token")
    async def token() -> dict:
        return {"access_token": "svc-token", "expires_in": 300}

    @app.get("/internal/integrations/{iid}/credentials")
    async def credentials(iid: str) -> dict:
        return {"integration_id": iid, "origin": "https://q.example:443", "secrets": {}}

    try:
        with ServerThread(app) as upstream:
            base = f"http://127.0.0.1:{upstream.port}"
            provider = ServiceTokenProvider(f"{base}/auth/internal/token", "siem-ingest", "s3cret")
            assert await provider.token() == "svc-token"
            await provider.aclose()
            got = await TenantCredentials(base, provider.token)("i-1")
            assert got["origin"] == "https://q.example:443"
            # The same environment does send a default httpx client through the proxy.
            async with httpx.AsyncClient() as plain:
                assert (await plain.get(f"{base}/x")).status_code == 502
    finally:
        server.close()
    assert len(seen) == 1  # only the default client's request reached the proxy


def test_postgres_tls_mode_reaches_libpq(monkeypatch):
    monkeypatch.setenv("SOC_DB_SSLMODE", "verify-full")
    monkeypatch.setenv("SOC_DB_SSLROOTCERT", "/etc/ssl/certs/ca-certificates.crt")
    settings = ServiceSettings(db_user="soc_tenant")
    url = settings.database_url(password="x")
    assert url.endswith("?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt")
    # libpq applies it: the local development server speaks no TLS, so verify-full cannot connect.
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=5).close()


def test_service_listener_tls_options():
    assert tls_options(ServiceSettings()) == {}
    settings = ServiceSettings(tls_certfile="/run/tls/cert.pem", tls_keyfile="/run/tls/key.pem")
    assert tls_options(settings) == {"ssl_certfile": "/run/tls/cert.pem", "ssl_keyfile": "/run/tls/key.pem"}
