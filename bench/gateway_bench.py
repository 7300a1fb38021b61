"""Gateway overhead: the same JSON endpoint called directly and through the gateway, side by side.

    cd /work/main && UV_PYTHON_DOWNLOADS=never uv run python bench/gateway_bench.py [--requests 5000] [--concurrency 32]

Starts, on loopback, an upstream (a tiny FastAPI app: one JSON endpoint, plus the JWKS the gateway
verifies tokens against) and the gateway (``python -m soc_gateway``, as deployed), each under uvicorn
in its own process. Then drives the endpoint directly and through the gateway with an
``httpx.AsyncClient`` at bounded concurrency, alternating rounds so that both see the same machine
state, and prints throughput and p50/p99 latency for both, and their ratio. A sequential pass
(concurrency 1) shows the latency one hop adds without queueing.

The upstream does not check the token itself (the same for both paths); the gateway does, with a
real Ed25519 access token. Access logging stays on (to /dev/null) as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from soc_shared.testing import cpu_seconds

ENDPOINT = "/tenant/dashboard/"


# --- the upstream (runs in its own process: `gateway_bench.py --serve-upstream PORT JWKS_FILE`) -------------


def serve_upstream(port: int, jwks_file: str) -> None:
    import uvicorn
    from fastapi import FastAPI

    jwks = json.loads(Path(jwks_file).read_text())
    app = FastAPI()
    payload = {
        "company_id": "3b1f6a8e-6f0e-4c43-9d1e-5d1d6c1c2a10",
        "offenses": {"open": 12, "closed": 340, "critical": 2},
        "incidents": {"open": 7, "closed": 120},
        "tickets": {"open": 4, "breached_sla": 1},
        "eps": {"current": 1840.5, "contracted": 2500},
    }

    @app.get(ENDPOINT)
    async def dashboard() -> dict:
        return payload

    @app.get("/.well-known/jwks.json")
    async def jwks_document() -> dict:
        return jwks

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the driver ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


# Transport errors seen by the driver, by target URL: reported, not fatal (a shared machine under
# load drops the odd keep-alive connection), but a non-200 answer aborts the run.
ERRORS: dict[str, list[str]] = {}


class Failed(RuntimeError):
    pass


async def drive(
    url: str, headers: dict[str, str], requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """(wall seconds, per-request latencies in seconds) for `requests` GETs at `concurrency`."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    remaining = requests

    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False, headers=headers) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                except httpx.TransportError as exc:
                    ERRORS.setdefault(url, []).append(type(exc).__name__)
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise Failed(f"{url} answered {response.status_code}: {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, wall: float, latencies: list[float]) -> dict[str, float]:
    stats = {
        "rps": len(latencies) / wall,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }
    print(
        f"  {name:<8} {len(latencies):>6} req  {stats['rps']:>8.0f} req/s  p50 {stats['p50_ms']:6.2f} ms  "
        f"p99 {stats['p99_ms']:6.2f} ms"
    )
    return stats


async def measure(
    args: argparse.Namespace,
    targets: dict[str, str],
    headers: dict[str, str],
    upstream_pid: int,
    gateway_pid: int,
) -> None:
    for url in targets.values():  # warm-up: connections, the JWKS, the token cache
        await drive(url, headers, 500, args.concurrency)

    results: dict[str, tuple[float, list[float]]] = {name: (0.0, []) for name in targets}
    cpu = {"upstream (direct)": 0.0, "upstream (via gateway)": 0.0, "gateway": 0.0}
    per_round = args.requests // args.rounds
    for _ in range(args.rounds):
        for name, url in targets.items():
            before = cpu_seconds(upstream_pid), cpu_seconds(gateway_pid)
            wall, latencies = await drive(url, headers, per_round, args.concurrency)
            after = cpu_seconds(upstream_pid), cpu_seconds(gateway_pid)
            results[name] = (results[name][0] + wall, results[name][1] + latencies)
            cpu["upstream (direct)" if name == "direct" else "upstream (via gateway)"] += after[0] - before[0]
            if name == "gateway":
                cpu["gateway"] += after[1] - before[1]

    print(
        f"\n{args.requests} requests each, concurrency {args.concurrency}, {args.rounds} alternating rounds, "
        f"{os.cpu_count()} CPUs shared by client, gateway and upstream"
    )
    direct = summary("direct", *results["direct"])
    through = summary("gateway", *results["gateway"])
    print(
        f"  ratio    throughput {through['rps'] / direct['rps']:.2f} of direct; "
        f"p50 +{through['p50_ms'] - direct['p50_ms']:.2f} ms, p99 +{through['p99_ms'] - direct['p99_ms']:.2f} ms"
    )
    for url, errors in ERRORS.items():
        print(f"  transport errors from {url}: {len(errors)} ({', '.join(sorted(set(errors)))})")
    print(
        "  CPU per request: "
        + ", ".join(f"{name} {seconds / args.requests * 1000:.2f} ms" for name, seconds in cpu.items())
    )

    sequential = {}
    for name, url in targets.items():
        _, latencies = await drive(url, headers, args.sequential, 1)
        sequential[name] = percentile(latencies, 0.5) * 1000
    print(
        f"\nsequential ({args.sequential} requests, concurrency 1): p50 direct {sequential['direct']:.2f} ms, "
        f"gateway {sequential['gateway']:.2f} ms, the hop adds {sequential['gateway'] - sequential['direct']:.2f} ms"
    )


def run(args: argparse.Namespace) -> int:
    from soc_shared.testing import TokenFactory

    tokens = TokenFactory()
    upstream_port, gateway_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        jwks_file = Path(tmp) / "jwks.json"
        jwks_file.write_text(json.dumps(tokens.jwks))
        env = {
            **os.environ,
            "SOC_ENV": "prod",
            "SOC_SERVICE_SECRET": secrets.token_urlsafe(24),
            "SOC_GATEWAY_REVOCATION_POLL_SECONDS": "0",  # no auth service behind this bench
            "SOC_GATEWAY_PORT": str(gateway_port),
            "SOC_GATEWAY_UPSTREAMS": json.dumps({"auth": upstream_url, "tenant": upstream_url}),
            # One client drives thousands of requests per second: the abuse guards must not trip.
            "SOC_GATEWAY_RATE_LIMIT_USER_PER_SECOND": "0",
            "SOC_GATEWAY_RATE_LIMIT_ADDRESS_PER_SECOND": "0",
            "SOC_GATEWAY_OPENAPI_FETCH_TIMEOUT": "1",
        }
        try:
            processes.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve-upstream", str(upstream_port), str(jwks_file)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "soc_gateway"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=None if args.gateway_logs else subprocess.DEVNULL,
                )
            )
            wait_until_up(f"{upstream_url}/healthz")
            wait_until_up(f"{gateway_url}/healthz")
            headers = {"Authorization": f"Bearer {tokens.token(kind='tenant', company_id='c-1', ttl=3600)}"}
            targets = {"direct": upstream_url + ENDPOINT, "gateway": gateway_url + ENDPOINT}
            try:
                import uvloop

                uvloop.run(measure(args, targets, headers, processes[0].pid, processes[1].pid))
            except ImportError:
                asyncio.run(measure(args, targets, headers, processes[0].pid, processes[1].pid))
            return 0
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve-upstream":
        serve_upstream(int(sys.argv[2]), sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--gateway-logs", action="store_true", help="let the gateway's log through to stderr")
    args = parser.parse_args()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
