"""`make chaos`: faults injected into a running suite while vendor data flows, then the read model
compared record by record with the vendor. For each fault it prints events lost, duplicated and the
seconds from the fault's end until the API's data equals the vendor's again; it exits non-zero when
anything is lost or duplicated.

The suite runs in a sandbox of its own — its own PostgreSQL and RabbitMQ (scripts/deps.sh with
SOC_STATE_DIR=.local/chaos and other ports), its own processes under the same supervisor as
`make up` (a killed process is restarted with backoff) — so a fault never touches a suite you are
using. Faults, in order:

  baseline    no fault: how long a change takes to show when nothing fails (the polling interval,
              30 s at the shortest, bounds it) — the yardstick for the recovery times below
  broker      RabbitMQ stopped for 20 s mid-ingest, then started
  consumer    the tenant service (read-model consumer) killed -9 mid-batch
  ingestor    siem-ingest killed -9 mid-page
  postgres    PostgreSQL restarted (fast shutdown) mid-ingest
  vendor      20 % of vendor requests fail (5xx, 429, timeouts, garbage) for --vendor-seconds (300)
  upstream    the gateway's upstream (tenant) killed while clients call it: every answer meanwhile
              must be a 502/503/504 in the error shape, never a hang or another 5xx

    uv run --frozen python scripts/chaos.py [--only broker,consumer] [--vendor-seconds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from soc_shared.testing import Launcher, healthy  # noqa: E402
from supervise import Supervisor  # noqa: E402

STATE = ROOT / ".local" / "chaos"
LOGS = STATE / "logs"
PORTS = {
    "pg": 56433,
    "amqp": 5674,
    "amqp-mgmt": 15674,
    "amqp-dist": 25674,
    "sim-qradar": 19201,
    "auth": 18101,
    "tenant": 18102,
    "siem-ingest": 18111,
    "gateway": 18100,
}
DB = VHOST = "soc_chaos"
ADMIN_PASSWORD = "Chaos-admin-Passw0rd!"
TOKEN = "qradar-demo-token"
POLL_SECONDS = 30  # the shortest polling interval an integration may have
# About one request in five fails, the ways vendors fail (each fault draws on its own).
VENDOR_FAULTS = (
    ("500", 0.06, {}),
    ("429", 0.05, {"retry_after": 1}),
    ("garbage", 0.05, {}),
    ("hang", 0.05, {"hang_seconds": 15}),
)
SCENARIOS = ("baseline", "broker", "consumer", "ingestor", "postgres", "vendor", "upstream")


def url(name: str) -> str:
    return f"http://127.0.0.1:{PORTS[name]}"


def deps_env() -> dict[str, str]:
    return {
        **os.environ,
        "SOC_STATE_DIR": str(STATE),
        "SOC_PG_PORT": str(PORTS["pg"]),
        "SOC_AMQP_PORT": str(PORTS["amqp"]),
        "SOC_AMQP_MGMT_PORT": str(PORTS["amqp-mgmt"]),
        "SOC_AMQP_DIST_PORT": str(PORTS["amqp-dist"]),
        "SOC_AMQP_NODE": "soc-chaos@localhost",
    }


def deps(command: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "deps.sh"), command], env=deps_env(), check=True)


def suite_env() -> dict[str, str]:
    env = deps_env()
    env.update(
        {
            "SOC_ENV": "dev",
            "SOC_LOG_LEVEL": "WARNING",
            "SOC_DB_HOST": "127.0.0.1",
            "SOC_DB_PORT": str(PORTS["pg"]),
            "SOC_DB_NAME": DB,
            "SOC_AMQP_URL": f"amqp://soc:soc@127.0.0.1:{PORTS['amqp']}/{VHOST}",
            "SOC_AMQP_MGMT_URL": url("amqp-mgmt"),
            "SOC_ADMIN_USERNAME": "admin",
            "SOC_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SOC_AUTH_URL": url("auth"),
            "SOC_AUTH_PORT": str(PORTS["auth"]),
            "SOC_TENANT_PORT": str(PORTS["tenant"]),
            "SOC_SIEM_INGEST_PORT": str(PORTS["siem-ingest"]),
            "SOC_GATEWAY_PORT": str(PORTS["gateway"]),
            "SOC_GATEWAY_UPSTREAMS": json.dumps({n: url(n) for n in ("auth", "tenant", "siem-ingest")}),
            "SOC_TENANT_SIEM_INGEST_URL": url("siem-ingest"),
            "SOC_SIEM_INGEST_TENANT_URL": url("tenant"),
            "SOC_GATEWAY_RATE_LIMIT_USER_PER_SECOND": "0",
            "SOC_GATEWAY_RATE_LIMIT_ADDRESS_PER_SECOND": "0",
        }
    )
    return env


class Sandbox:
    def __init__(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.env = suite_env()
        # processes are spawned by the launcher and restarted by the supervisor
        self.launcher = Launcher(env=self.env, logs=LOGS)
        self.supervisor = Supervisor(log=lambda line: print(f"    [supervisor] {line}", flush=True))
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def _supervise(self) -> None:
        while self._running:
            with self._lock:
                self.supervisor.tick()
            time.sleep(0.2)

    def start(self, name: str, args: list[str], health: str) -> None:
        def spawn() -> subprocess.Popen[bytes]:
            return self.launcher.spawn(name, args)

        proc = spawn()
        with self._lock:
            self.supervisor.add(name, spawn, proc)
        wait_until(lambda: healthy(health), 120, f"{name} healthy")

    def pid(self, name: str) -> int:
        with self._lock:
            return next(c.proc.pid for c in self.supervisor.children if c.name == name)

    def kill9(self, name: str) -> None:
        os.kill(self.pid(name), signal.SIGKILL)

    def stop(self) -> None:
        self._running = False
        with self._lock:
            self.supervisor.stop()


def wait_until(predicate, timeout: float, what: str) -> float:  # noqa: ANN001
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.5)
    raise TimeoutError(f"not {what} after {timeout:.0f} s")


class Vendor:
    """The simulator: drives console life (new offenses, updates, closures) and tells the truth."""

    def __init__(self) -> None:
        self.client = httpx.Client(base_url=url("sim-qradar"), timeout=30)
        self._ticking = False
        self._thread: threading.Thread | None = None

    def start_ticking(self) -> None:
        self._ticking = True

        def run() -> None:
            while self._ticking:
                try:
                    self.client.post("/_sim/tick", params={"steps": 20})
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop_ticking(self) -> None:
        self._ticking = False
        if self._thread:
            self._thread.join()

    def offenses(self) -> dict[int, tuple[str, int]]:
        """id → (status, last_persisted_time) of every offense the console holds."""
        out: dict[int, tuple[str, int]] = {}
        start = 0
        while True:
            r = self.client.get(
                "/api/siem/offenses",
                params={"fields": "id,status,last_persisted_time", "sort": "+id"},
                headers={"SEC": TOKEN, "Range": f"items={start}-{start + 4999}", "Version": "20.0"},
            )
            r.raise_for_status()
            page = r.json()
            for o in page:
                out[int(o["id"])] = (o["status"], int(o["last_persisted_time"]))
            if not page:
                return out
            start += len(page)


def read_model(integration_id: str) -> tuple[dict[int, tuple[str, int]], int]:
    dsn = f"host=127.0.0.1 port={PORTS['pg']} dbname={DB} user=soc_admin password=soc_admin"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT offense_id, status, (extract(epoch FROM last_persisted_time) * 1000)::bigint"
            " FROM tenant.qradar_offense WHERE integration_id = %s",
            (integration_id,),
        ).fetchall()
    out = {int(r[0]): (r[1], int(r[2] or 0)) for r in rows}
    return out, len(rows) - len(out)


@dataclass
class Outcome:
    fault: str
    lost: int
    duplicated: int
    recover_seconds: float | None
    note: str = ""


def compare(vendor: Vendor, integration_id: str) -> tuple[int, int, int]:
    """(missing, stale, duplicated): offenses the API lacks, holds an older version of, or holds twice."""
    truth = vendor.offenses()
    ours, duplicated = read_model(integration_id)
    missing = [i for i in truth if i not in ours]
    stale = [i for i, v in truth.items() if i in ours and ours[i][1] < v[1]]
    if missing or stale:
        LAST_DIFF.update(missing=missing[:20], stale=[(i, ours[i], truth[i]) for i in stale[:5]])
    return len(missing), len(stale), duplicated


LAST_DIFF: dict[str, object] = {}


def converge(vendor: Vendor, integration_id: str, timeout: float) -> tuple[float | None, int, int]:
    start = time.monotonic()
    missing = stale = duplicated = 0
    while time.monotonic() - start < timeout:
        try:
            missing, stale, duplicated = compare(vendor, integration_id)
        except (httpx.HTTPError, psycopg.Error):
            missing = stale = -1
        if missing == 0 and stale == 0:
            return time.monotonic() - start, 0, duplicated
        time.sleep(1)
    return None, missing + stale, duplicated


def main() -> None:
    parser = argparse.ArgumentParser(prog="make chaos")
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--vendor-seconds", type=float, default=300)
    parser.add_argument("--recover-timeout", type=float, default=180)
    parser.add_argument("--keep-servers", action="store_true", help="leave the sandbox's servers running")
    args = parser.parse_args()
    chosen = [s for s in args.only.split(",") if s]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown fault(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")

    print(f"chaos sandbox: {STATE} (PostgreSQL :{PORTS['pg']}, RabbitMQ :{PORTS['amqp']})", flush=True)
    deps("start-core")
    env = suite_env()
    subprocess.run(
        [sys.executable, "-m", "soc_shared.provision", "--db", DB, "--vhost", VHOST, "--fresh"],
        env=env,
        check=True,
    )
    box = Sandbox()
    box._thread.start()
    outcomes: list[Outcome] = []
    try:
        box.start(
            "sim-qradar",
            ["-m", "soc_simulators", "qradar", "--port", str(PORTS["sim-qradar"])],
            f"{url('sim-qradar')}/_sim/state",
        )
        for name, module in (
            ("auth", "soc_auth"),
            ("tenant", "soc_tenant"),
            ("siem-ingest", "soc_siem_ingest"),
            ("gateway", "soc_gateway"),
        ):
            box.start(name, ["-m", module], f"{url(name)}/healthz")
        api = httpx.Client(base_url=url("gateway"), timeout=30)
        token = api.post("/auth/login/", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        api.headers["authorization"] = f"Bearer {token['access_token']}"
        created = api.post(
            "/integration/",
            json={
                "integration_type": "SIEM",
                "subtype": "IBM_QRADAR",
                "instance_name": "chaos",
                "base_url": url("sim-qradar"),
                "polling_interval_seconds": POLL_SECONDS,
                "credential_kind": "API_KEY",
                "credentials": {"api_key": TOKEN},
                "settings": {"offense_notes": False},
            },
        )
        created.raise_for_status()
        integration_id = created.json()["id"]
        vendor = Vendor()
        took, _, _ = converge(vendor, integration_id, args.recover_timeout)
        print(
            f"initial sync converged in {took:.1f} s" if took is not None else "initial sync did not converge"
        )

        for fault in chosen:
            print(f"\n== {fault}", flush=True)
            vendor.start_ticking()
            time.sleep(3)  # data in flight
            note = ""
            if fault == "baseline":
                pass
            elif fault == "broker":
                deps("broker-stop")
                time.sleep(20)
                deps("broker-start")
            elif fault == "consumer":
                box.kill9("tenant")
            elif fault == "ingestor":
                box.kill9("siem-ingest")
            elif fault == "postgres":
                deps("pg-restart")
            elif fault == "vendor":
                for kind, chance, extra in VENDOR_FAULTS:
                    body = {"kind": kind, "probability": chance, "count": 1_000_000, **extra}
                    vendor.client.post("/_sim/faults", json=body).raise_for_status()
                time.sleep(args.vendor_seconds)
                vendor.client.delete("/_sim/faults")
            elif fault == "upstream":
                try:
                    note = upstream_fault(box, api, args.recover_timeout)
                except TimeoutError as exc:
                    note = f"({exc})"
            time.sleep(2)
            vendor.stop_ticking()
            seconds, lost, duplicated = converge(vendor, integration_id, args.recover_timeout)
            if lost:
                note = f"{note} first differences: {LAST_DIFF}".strip()
            outcomes.append(Outcome(fault, lost, duplicated, seconds, note))
            shown = f"{seconds:.1f} s" if seconds is not None else f"not within {args.recover_timeout:.0f} s"
            print(f"   lost {lost}, duplicated {duplicated}, recovered in {shown} {note}", flush=True)
    finally:
        box.stop()
        if not args.keep_servers:
            deps("stop-core")
    print(f"\n{'fault':<10}{'lost':>6}{'dup':>6}{'recover s':>11}  note")
    for o in outcomes:
        rec = f"{o.recover_seconds:.1f}" if o.recover_seconds is not None else "—"
        print(f"{o.fault:<10}{o.lost:>6}{o.duplicated:>6}{rec:>11}  {o.note}")
    print("lost: vendor records missing or older in the read model when the recovery timeout ran out")
    bad = [o for o in outcomes if o.lost or o.duplicated or o.recover_seconds is None]
    sys.exit(1 if bad or len(outcomes) < len(chosen) else 0)


def upstream_fault(box: Sandbox, api: httpx.Client, timeout: float) -> str:
    """Kill the tenant service under a stream of API calls: count what the callers saw."""
    statuses: dict[int, int] = {}
    bad_shape = 0
    stop = threading.Event()
    recovered_at: list[float] = []
    killed_at = 0.0

    def caller() -> None:
        nonlocal bad_shape
        client = httpx.Client(base_url=api.base_url, headers=api.headers, timeout=10)
        while not stop.is_set():
            try:
                r = client.get("/tenant/offenses/", params={"limit": 1})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code >= 500 and "error" not in r.json():
                    bad_shape += 1
                if r.status_code == 200 and killed_at and not recovered_at:
                    recovered_at.append(time.monotonic())
            except (httpx.HTTPError, ValueError):
                statuses[0] = statuses.get(0, 0) + 1
            time.sleep(0.05)

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    time.sleep(2)
    killed_at = time.monotonic()
    box.kill9("tenant")
    try:
        wait_until(lambda: bool(recovered_at), timeout, "serving again")
    finally:
        stop.set()
        thread.join()
    wrong = sum(n for s, n in statuses.items() if s == 0 or (s >= 500 and s not in (502, 503, 504)))
    return (
        f"(callers saw {dict(sorted(statuses.items()))}; {wrong} wrong answers, {bad_shape} outside the error"
        f" shape; API back {recovered_at[0] - killed_at:.1f} s after the kill)"
    )


if __name__ == "__main__":
    main()
