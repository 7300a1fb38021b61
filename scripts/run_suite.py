"""Start the whole suite in the foreground: every service, every vendor simulator (live), demo
data; print the gateway URL and the demo logins; stop everything on Ctrl-C.

Dependencies (PostgreSQL, RabbitMQ, OpenLDAP) are started before by ``make up``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / ".local" / "logs"
# The generated admin password outlives one run: the admin it created stays in the database, so a
# second `make up` must log in with the same password (owner-only file, like the data beside it).
ADMIN_PASSWORD_FILE = ROOT / ".local" / "admin-password"
# The sealing keys and the service secret, generated on the first run (owner-only), reused after.
SECRETS_FILE = ROOT / ".local" / "secrets.env"

SIMULATORS = [("qradar", 9101), ("xsoar", 9102), ("sdp", 9103), ("cyware", 9104)]
# The demo's history as a working SOC's (most incidents within SLA, months of it); the tests keep
# the simulators' default profile with its frequent edge cases.
DEMO_PROFILE = {vendor: ["--profile", "demo"] for vendor in ("qradar", "xsoar", "sdp")}
# Auth first: everyone else fetches its JWKS and service tokens from it.
SERVICES = [
    ("auth", "soc_auth", 8001),
    ("tenant", "soc_tenant", 8002),
    ("siem-ingest", "soc_siem_ingest", 8011),
    ("soar-ingest", "soc_soar_ingest", 8012),
    ("itsm-ingest", "soc_itsm_ingest", 8013),
    ("threatintel", "soc_threatintel", 8014),
    ("gateway", "soc_gateway", int(os.environ.get("SOC_GATEWAY_PORT", "8000"))),
]


def wait_healthy(name: str, url: str, proc: subprocess.Popen[bytes], timeout: float | None = None) -> None:
    # A first start after an install compiles every module it imports; on a busy two-core machine
    # one service can take minutes, so the wait is generous and adjustable.
    if timeout is None:
        timeout = float(os.environ.get("SOC_START_TIMEOUT", "240"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}; see {LOGS / (name + '.log')}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} did not become healthy at {url}; see {LOGS / (name + '.log')}")


def admin_directory_lines(gateway: str) -> list[str]:
    """Sign the demo directory's administrators in once, so the demo shows the admin directory working."""
    lines = []
    for name, role in (("sofia", "SUPER_ADMIN"), ("andy", "ADMIN"), ("rory", "READ_ONLY")):
        answer = httpx.post(
            f"{gateway}/auth/admin/login/", json={"username": name, "password": f"{name}-pass"}, timeout=30
        )
        got = answer.json().get("user", {}).get("role") if answer.status_code == 200 else answer.status_code
        lines.append(f"Admin directory ({role:<11}): {name} / {name}-pass  (admin sign-in: {got})")
    return lines


MFA_DEMO_FILE = ROOT / ".local" / "mfa-demo"
MFA_DEMO_USER = "mfa-demo"


def mfa_demo_lines(gateway: str, admin_username: str, admin_password: str) -> list[str]:
    """A demo administrator with TOTP MFA: created and enrolled on the first run (the secret and a
    recovery code kept in .local/mfa-demo, 0600), then signed in through the challenge step."""
    import pyotp

    api = httpx.Client(base_url=gateway, timeout=30)
    if not MFA_DEMO_FILE.exists():
        admin = api.post("/auth/login/", json={"username": admin_username, "password": admin_password}).json()
        headers = {"Authorization": f"Bearer {admin['access_token']}"}
        password = secrets.token_urlsafe(12) + "-Mfa1"
        created = api.post(
            "/admin/users/",
            json={
                "username": MFA_DEMO_USER,
                "password": password,
                "kind": "admin",
                "role": "READ_ONLY_ADMIN",
            },
            headers=headers,
        )
        if created.status_code != 201:
            return [f"MFA demo: {MFA_DEMO_USER} exists without {MFA_DEMO_FILE.name}; skipped"]
        own = api.post("/auth/login/", json={"username": MFA_DEMO_USER, "password": password}).json()
        own_headers = {"Authorization": f"Bearer {own['access_token']}"}
        enrolment = api.post("/auth/mfa/enrol/", headers=own_headers).json()
        api.post(
            "/auth/mfa/confirm/", json={"code": pyotp.TOTP(enrolment["secret"]).now()}, headers=own_headers
        )
        MFA_DEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
        MFA_DEMO_FILE.touch(mode=0o600)
        MFA_DEMO_FILE.write_text(
            json.dumps(
                {
                    "password": password,
                    "secret": enrolment["secret"],
                    "provisioning_uri": enrolment["provisioning_uri"],
                    "recovery_codes": enrolment["recovery_codes"],
                }
            )
        )
    saved = json.loads(MFA_DEMO_FILE.read_text())

    def throttled(path: str, body: dict[str, str]) -> httpx.Response:
        # The demo has signed many people in from this address by now: the gateway's login
        # throttle (the login and its MFA step alike) may ask it to wait, as it would anyone.
        for _ in range(5):
            answer = api.post(path, json=body)
            if answer.status_code != 429:
                break
            time.sleep(min(float(answer.headers.get("retry-after", "5")), 30))
        return answer

    step = throttled("/auth/login/", {"username": MFA_DEMO_USER, "password": saved["password"]}).json()
    outcome = "no challenge?"
    if step.get("mfa_required"):
        # The code of the next time step: the confirmation may have used the current one.
        code = pyotp.TOTP(saved["secret"]).at(time.time() + 30)
        done = throttled("/auth/mfa/verify/", {"challenge": step["challenge"], "code": code})
        outcome = (
            "challenge → code → tokens" if done.status_code == 200 else f"verify answered {done.status_code}"
        )
    return [
        f"MFA (TOTP) demo: {MFA_DEMO_USER} / {saved['password']}  ({outcome})",
        f"          authenticator: {saved['provisioning_uri']}",
        f"          recovery codes and secret in {MFA_DEMO_FILE.relative_to(ROOT)}",
    ]


def main() -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("SOC_ENV", "dev")
    env.setdefault("SOC_ADMIN_USERNAME", "admin")
    from soc_shared.local_secrets import ensure_secrets_file
    from soc_shared.settings import DEV_SEALING_KEYS

    # The development keys stay configured as retired keys: a database made by a run from before
    # this file still opens (`python -m soc_tenant reseal` / `python -m soc_auth reseal` move it on).
    for name, value in ensure_secrets_file(SECRETS_FILE, retired_keys=DEV_SEALING_KEYS).items():
        env.setdefault(name, value)
    # The demo OpenLDAP (scripts/deps.sh) speaks plain LDAP on loopback: the explicit opt-in.
    env.setdefault("SOC_AUTH_LDAP_ALLOW_PLAIN", "true")
    # The administrators' directory (the original's ad_flag=ADMIN): the demo directory's admin tree.
    env.setdefault("SOC_AUTH_ADMIN_LDAP_URLS", env.get("SOC_LDAP_URLS", "ldap://127.0.0.1:3389"))
    env.setdefault("SOC_AUTH_ADMIN_LDAP_BASE_DN", "ou=admins,dc=soc,dc=local")
    env.setdefault("SOC_AUTH_ADMIN_LDAP_USER_SEARCH_BASE", "ou=people,ou=admins,dc=soc,dc=local")
    env.setdefault("SOC_AUTH_ADMIN_LDAP_GROUP_SEARCH_BASE", "ou=groups,ou=admins,dc=soc,dc=local")
    generated = "SOC_ADMIN_PASSWORD" not in env
    new_password = False
    if generated:
        if ADMIN_PASSWORD_FILE.exists():
            env["SOC_ADMIN_PASSWORD"] = ADMIN_PASSWORD_FILE.read_text().strip()
        else:
            env["SOC_ADMIN_PASSWORD"] = secrets.token_urlsafe(14)
            ADMIN_PASSWORD_FILE.parent.mkdir(parents=True, exist_ok=True)
            ADMIN_PASSWORD_FILE.touch(mode=0o600)
            ADMIN_PASSWORD_FILE.write_text(env["SOC_ADMIN_PASSWORD"] + "\n")
            new_password = True
    sys.path.insert(0, str(ROOT / "scripts"))
    from supervise import Supervisor

    supervisor = Supervisor(log=lambda line: print(f"  {line}; see {LOGS}/", flush=True))

    def start(name: str, args: list[str], health: str) -> None:
        def spawn() -> subprocess.Popen[bytes]:
            with open(LOGS / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
                return subprocess.Popen(
                    [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )

        proc = spawn()
        supervisor.add(name, spawn, proc)
        wait_healthy(name, health, proc)
        print(f"  started {name:<12} {health.rsplit('/', 1)[0]}")

    def stop(*_: object) -> None:
        supervisor.stop()
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print("Starting the SOC Portal suite (logs in .local/logs/)")
    try:
        for vendor, port in SIMULATORS:
            start(
                f"sim-{vendor}",
                [
                    "-m",
                    "soc_simulators",
                    vendor,
                    "--port",
                    str(port),
                    "--live",
                    *DEMO_PROFILE.get(vendor, []),
                ],
                f"http://127.0.0.1:{port}/_sim/state",
            )
        for name, module, port in SERVICES:
            start(name, ["-m", module], f"http://127.0.0.1:{port}/healthz")
        if new_password:
            # A database kept from before this password file existed has an admin with another
            # password (the bootstrap only creates one): give it the one printed below.
            subprocess.run(
                [sys.executable, "-m", "soc_auth", "set-password", env["SOC_ADMIN_USERNAME"]],
                cwd=ROOT,
                env={**env, "SOC_NEW_PASSWORD": env["SOC_ADMIN_PASSWORD"]},
                check=True,
                stdout=subprocess.DEVNULL,
            )
        gateway = f"http://127.0.0.1:{SERVICES[-1][2]}"
        from demo import seed_demo

        logins = seed_demo(gateway, env["SOC_ADMIN_USERNAME"], env["SOC_ADMIN_PASSWORD"])
    except BaseException:
        supervisor.stop()
        raise
    print()
    print(f"Gateway:  {gateway}   (API docs: {gateway}/docs/)")
    print(
        f"Admin:    {env['SOC_ADMIN_USERNAME']} / {env['SOC_ADMIN_PASSWORD']}"
        + ("  (generated)" if generated else "")
    )
    for line in logins:
        print(f"          {line}")
    for line in admin_directory_lines(gateway):
        print(f"          {line}")
    for line in mfa_demo_lines(gateway, env["SOC_ADMIN_USERNAME"], env["SOC_ADMIN_PASSWORD"]):
        print(f"          {line}")
    print("Ctrl-C stops everything; a process that dies is restarted with backoff.")
    while True:
        supervisor.tick()
        time.sleep(0.5)


if __name__ == "__main__":
    main()
