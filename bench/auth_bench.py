"""Auth service benchmark: local login, refresh, and token verification.

Starts the auth app in-process with uvicorn on a free loopback port, against a database and a
vhost of its own (``soc_bench_auth``, recreated each run), creates a local user through the API,
then measures, with bounded concurrency:

- local login (``POST /auth/login/``: Argon2id verification, token pair, audit row + event),
- refresh (``POST /auth/token/refresh/``: rotation of the refresh token),
- token verification (``TokenVerifier.verify`` in a loop, as every service does on every request).

    cd /work/main && UV_PYTHON_DOWNLOADS=never uv run python bench/auth_bench.py [--logins 200] [--refreshes 1000]
        [--verifications 20000] [--concurrency 16] [--fast-hash]

PostgreSQL, RabbitMQ (and, not needed here, OpenLDAP) must be running: ``scripts/deps.sh start``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import soc_auth
import uvicorn
from pydantic import SecretStr
from soc_auth.config import Settings
from soc_auth.main import create_app
from soc_shared.db import migrate
from soc_shared.provision import provision_database, provision_vhost
from soc_shared.security import TokenVerifier

BENCH_DB = "soc_bench_auth"
BENCH_VHOST = "soc_bench_auth"
ADMIN_PASSWORD = "Bench-Adm1n-Password!"
USER_PASSWORD = "Bench-User-Passw0rd!"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def report(name: str, latencies: list[float], wall: float, cpu: float) -> None:
    """Throughput and latency, plus this process's CPU time per request (client and server share
    the process): the figure that stays meaningful on a busy machine."""
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(
        f"{name:<20} {len(ordered):>6} req {len(ordered) / wall:>9.1f} req/s   p50 {p50:>8.2f} ms   "
        f"p99 {p99:>8.2f} ms   cpu {cpu / len(ordered) * 1000:>7.2f} ms/req"
    )


async def run_bounded(
    count: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float, float]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(count)))
    return latencies, time.perf_counter() - started, time.process_time() - cpu


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--refreshes", type=int, default=1000)
    parser.add_argument("--verifications", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--fast-hash", action="store_true", help="cheap Argon2 parameters (measures everything but the hash)"
    )
    args = parser.parse_args()

    provision_database(BENCH_DB, fresh=True)
    provision_vhost(BENCH_VHOST, fresh=True)
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    port = free_port()
    hashing = (
        {"argon2_time_cost": 1, "argon2_memory_cost_kib": 8192, "argon2_parallelism": 1}
        if args.fast_hash
        else {}
    )
    settings = Settings(
        db_name=BENCH_DB,
        amqp_url=SecretStr(f"amqp://soc:soc@{hostport}/{BENCH_VHOST}"),
        host="127.0.0.1",
        port=port,
        admin_password=SecretStr(ADMIN_PASSWORD),
        log_level="WARNING",
        consumers_enabled=False,
        # One client address sends everything here: do not let the address throttle get in the way.
        login_ip_delay_after=10**9,
        login_ip_block_after=10**9,
        db_pool_size=20,
        db_max_overflow=20,
        **hashing,
    )
    migrate(settings, Path(soc_auth.__file__).parent / "migrations")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.05)

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
        login = await client.post("/auth/login/", json={"username": "admin", "password": ADMIN_PASSWORD})
        login.raise_for_status()
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await client.post(
            "/admin/users/",
            headers=admin,
            json={
                "username": "bench-user",
                "password": USER_PASSWORD,
                "kind": "tenant",
                "company_id": "bench-company",
            },
        )
        created.raise_for_status()
        print(
            f"auth on 127.0.0.1:{port}; concurrency {args.concurrency}; argon2 "
            f"t={settings.argon2_time_cost} m={settings.argon2_memory_cost_kib} KiB p={settings.argon2_parallelism}"
        )

        async def do_login(_: int) -> None:
            response = await client.post(
                "/auth/login/", json={"username": "bench-user", "password": USER_PASSWORD}
            )
            response.raise_for_status()

        report("local login", *await run_bounded(args.logins, args.concurrency, do_login))

        # Refresh chains: each spends its token and continues with the new one.
        chains = []
        for _ in range(args.concurrency):
            response = await client.post(
                "/auth/login/", json={"username": "bench-user", "password": USER_PASSWORD}
            )
            chains.append(response.json()["refresh_token"])

        async def do_refresh(i: int) -> None:
            chain = i % len(chains)
            response = await client.post("/auth/token/refresh/", json={"refresh_token": chains[chain]})
            response.raise_for_status()
            chains[chain] = response.json()["refresh_token"]

        # One request per chain at a time (a spent token must not be presented twice).
        chain_locks = [asyncio.Lock() for _ in chains]

        async def serialised_refresh(i: int) -> None:
            async with chain_locks[i % len(chains)]:
                await do_refresh(i)

        report("refresh", *await run_bounded(args.refreshes, args.concurrency, serialised_refresh))

        jwks = (await client.get("/.well-known/jwks.json")).json()
        token = (
            await client.post("/auth/login/", json={"username": "bench-user", "password": USER_PASSWORD})
        ).json()["access_token"]
    verifier = TokenVerifier.from_keys(jwks, settings.jwt_issuer, settings.jwt_audience)
    latencies = []
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.verifications):
        one = time.perf_counter()
        await verifier.verify(token)
        latencies.append(time.perf_counter() - one)
    report("token verification", latencies, time.perf_counter() - started, time.process_time() - cpu)

    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
