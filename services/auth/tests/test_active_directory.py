"""Directory sign-in against a real Active Directory domain controller: Samba's AD DC, provisioned
on loopback by ``scripts/samba-ad.sh`` (LDAP ports 389/636 are AD's own and fixed; the tests skip,
saying why, only where Samba is not installed or another server holds those ports).

The domain (see the script): alice in acme-soc-users; nina only through acme-team-red (nested);
ursula whose UPN (u.smith@soc.test) differs from her account name; dora disabled; eve expired;
mike must change his password; larry for lockouts; adam an admin through soc-admin-team (nested
in soc-admins); rita read-only admin; sam super admin; a computer account WKS01$ beside SOCDC$.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection, Server, Tls
from pydantic import SecretStr
from soc_auth.audit.models import login_attempt
from soc_auth.testing import ACME, GLOBEX, Running, auth_settings, running
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "samba-ad.sh"
BASE = "DC=soc,DC=test"
PORTAL = f"OU=Portal,{BASE}"
GROUPS = f"OU=Groups,{BASE}"
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE}"
ADMIN_PASS = "Adm1n-Samba-Pass!"


@pytest.fixture(scope="session")
def samba_ad() -> Iterator[Path]:
    """The DC's folder (its CA certificate is ``tls/ca.pem``); started if it is not running."""
    done = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=300)
    if done.returncode == 3:
        pytest.skip(
            "Samba is not installed (scripts/deps.sh install adds samba, samba-ad-dc, samba-ad-provision)"
        )
    if done.returncode == 4:
        pytest.skip(
            "ports 389/636 are taken by another server: the Active Directory tests need AD's own ports"
        )
    assert done.returncode == 0, done.stderr
    status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True, check=True)
    yield Path(status.stdout.split("(", 1)[1].rstrip(")\n"))


def ad_settings(folder: Path, **overrides: Any) -> Any:
    base: dict[str, Any] = {
        "ldap_urls": ["ldaps://127.0.0.1:636"],
        "ldap_allow_plain": False,
        "ldap_ca_file": str(folder / "tls" / "ca.pem"),
        "ldap_base_dn": BASE,
        "ldap_bind_dn": f"CN=svc-portal,{PORTAL}",
        "ldap_bind_password": SecretStr("Svc-Portal-Pass-1!"),
        "ldap_user_search_base": PORTAL,
        "ldap_group_search_base": GROUPS,
        "ldap_upn_domain": "soc.test",
        "ldap_netbios_domain": "SOCTEST",
        "ldap_admin_group": "soc-admins",
        "ldap_read_only_admin_group": "soc-read-only-admins",
        "ldap_super_admin_group": "soc-super-admins",
        "consumers_enabled": False,
    }
    return auth_settings(**{**base, **overrides})


@pytest.fixture(scope="session")
async def ad(auth: Running, samba_ad: Path) -> AsyncIterator[Running]:
    """The service against the AD DC; the company mappings (acme-soc-users → Acme, ...) are the
    ones the ``auth`` fixture learnt from tenant events, in the same database."""
    async with running(ad_settings(samba_ad)) as service:
        yield service


def _admin_conn(folder: Path) -> Connection:
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(folder / "tls" / "ca.pem"))
    conn = Connection(Server("ldaps://127.0.0.1:636", tls=tls), ADMIN_DN, ADMIN_PASS, auto_bind=True)
    return conn


async def _audit(auth: Running, username: str) -> list[Any]:
    async with auth.state.db.session() as session:
        rows = await session.execute(
            select(login_attempt).where(login_attempt.c.username == username).order_by(login_attempt.c.id)
        )
        return list(rows)


@pytest.mark.parametrize(
    ("login", "username"),
    [
        ("alice", "alice"),
        ("SOCTEST\\alice", "alice"),
        ("soctest\\alice", "alice"),
        ("alice@soc.test", "alice"),
        ("alice@acme.example", "alice"),
        # The UPN's prefix differs from the account name: found by its UPN, with no setting.
        ("u.smith@soc.test", "ursula"),
        ("SOCTEST\\ursula", "ursula"),
    ],
)
async def test_sign_in_by_account_name_domain_upn_and_mail(ad: Running, login: str, username: str) -> None:
    response = await ad.login(login, f"{username.title()}-Pass-1!", ip="192.0.2.60")
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert (user["username"], user["auth_source"], user["company_id"]) == (username, "ldap", ACME)
    assert ad.state.directory.is_ad


async def test_other_domain_and_filter_injection_match_nobody(ad: Running) -> None:
    for login in ("OTHER\\alice", "SOCTEST\\", "*)(sAMAccountName=*", "ali*", "SOCTEST\\*", "*@*.test"):
        response = await ad.login(login, "Alice-Pass-1!", ip="192.0.2.61")
        assert response.status_code == 401, (login, response.text)
        assert response.json()["error"]["code"] == "invalid_credentials"


async def test_nested_group_member_gets_the_mapped_company(ad: Running) -> None:
    response = await ad.login("nina", "Nina-Pass-1!", ip="192.0.2.62")
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert (user["company_id"], user["role"]) == (ACME, "TENANT_USER")
    groups = {g.split(",")[0].lower() for g in user["directory_groups"]}
    assert {"cn=acme-team-red", "cn=acme-soc-users", "cn=domain users"} <= groups


@pytest.mark.parametrize(
    ("login", "role", "read_only"),
    [("adam", "ADMIN", False), ("rita", "READ_ONLY_ADMIN", True), ("sam", "SUPER_ADMIN", False)],
)
async def test_admin_groups_nested_included(ad: Running, login: str, role: str, read_only: bool) -> None:
    response = await ad.login(login, f"{login.title()}-Pass-1!", ip="192.0.2.63", path="/auth/admin/login/")
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert (user["kind"], user["role"], user["is_read_only"], user["company_id"]) == (
        "admin",
        role,
        read_only,
        None,
    )


@pytest.mark.parametrize(
    ("login", "status", "code", "reason"),
    [
        ("dora", 403, "account_disabled", "account_disabled"),
        ("eve", 403, "account_expired", "account_expired"),
        ("mike", 403, "password_change_required", "password_must_change"),
    ],
)
async def test_directory_account_states_are_named_audited_and_not_counted(
    ad: Running, login: str, status: int, code: str, reason: str
) -> None:
    # More refusals than the portal's own lockout allows (login_lock_after = 5 in tests): the
    # directory's refusals are its own decision, not guesses, and lock nothing here.
    for _ in range(7):
        response = await ad.login(login, f"{login.title()}-Pass-1!", ip="192.0.2.64")
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
    if code == "password_change_required":
        assert "set a new password" in response.json()["error"]["message"]
    rows = await _audit(ad, login)
    assert rows and all(r.reason == reason and r.method == "ldap" and r.outcome == "failed" for r in rows)
    # A wrong password for the same account is an ordinary wrong password (AD says 52e).
    wrong = await ad.login(login, "Not-The-Password-1", ip="192.0.2.64")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    assert (await _audit(ad, login))[-1].reason in ("invalid_password", "unknown_user")
    # No account was created for a refused directory user.
    async with ad.state.db.session() as session:
        from soc_auth.user import service as users

        assert await users.get_by_username(session, login) is None


async def test_account_locked_by_the_directory(ad: Running, samba_ad: Path) -> None:
    # Lock larry in AD itself (threshold 5), as a user mistyping at a Windows sign-in would.
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(samba_ad / "tls" / "ca.pem"))
    for _ in range(6):
        conn = Connection(Server("ldaps://127.0.0.1:636", tls=tls), f"CN=larry,{PORTAL}", "wrong-password")
        assert not conn.bind()
        conn.unbind()
    response = await ad.login("larry", "Larry-Pass-1!", ip="192.0.2.65")
    assert response.status_code == 423, response.text
    assert response.json()["error"]["code"] == "directory_account_locked"
    assert (await _audit(ad, "larry"))[-1].reason == "account_locked"


@pytest.mark.parametrize("path", ["/auth/login/", "/auth/admin/login/"])
async def test_password_refused_by_saslprep_is_a_wrong_password(
    ad: Running, auth: Running, path: str
) -> None:
    for service, login, password in ((ad, "alice", "Alice-Pass-1!"), (auth, "alice", "alice-pass")):
        response = await service.login(login, "Alice\u0085Pass-1!", ip="192.0.2.66", path=path)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_credentials"
        assert (await _audit(service, login))[-1].reason == "password_rejected"
        # Counted like a wrong password; a right one clears the account's counter.
        assert (await service.login(login, password, ip="192.0.2.66")).status_code == 200


async def test_lookups_leave_out_computers_disabled_accounts_and_groups(
    ad: Running, admin_headers: dict
) -> None:
    people = await ad.client.get("/admin/directory/users/", params={"limit": 200}, headers=admin_headers)
    assert people.status_code == 200, people.text
    names = {p["username"] for p in people.json()["items"]}
    assert {"alice", "nina", "ursula", "svc-portal"} <= names
    assert not {n for n in names if n.endswith("$")}, names  # SOCDC$, WKS01$
    assert "dora" not in names

    members = await ad.client.get("/admin/directory/groups/acme-soc-users/users/", headers=admin_headers)
    assert members.status_code == 200, members.text
    member_names = {p["username"] for p in members.json()["items"]}
    # nina through the nested group; the nested group itself and disabled dora are not people.
    assert member_names == {"alice", "nina", "ursula", "mike", "eve", "larry"}

    groups = await ad.client.get("/admin/directory/groups/", params={"q": "acme"}, headers=admin_headers)
    counts = {g["name"]: g["member_count"] for g in groups.json()["items"]}
    assert counts["acme-soc-users"] == 6 and counts["acme-team-red"] == 1


async def test_starttls_on_389_with_the_ca_is_the_default_transport(auth: Running, samba_ad: Path) -> None:
    async with running(ad_settings(samba_ad, ldap_urls=["ldap://127.0.0.1:389"])) as service:
        response = await service.login("bob", "Bob-Pass-1!", ip="192.0.2.67")
        assert response.status_code == 200, response.text
        assert response.json()["user"]["company_id"] == GLOBEX


async def test_plain_ldap_and_unverified_certificates_fail_plainly(
    auth: Running, samba_ad: Path, admin_headers: dict
) -> None:
    # Plain LDAP against AD (the explicit opt-in): AD refuses the simple bind.
    settings = ad_settings(samba_ad, ldap_urls=["ldap://127.0.0.1:389"], ldap_allow_plain=True)
    async with running(settings) as service:
        response = await service.login("bob", "Bob-Pass-1!", ip="192.0.2.68")
        assert response.status_code == 503, response.text
        report = await service.client.get("/admin/directory/status/", headers=admin_headers)
        assert report.status_code == 200, report.text
        server = report.json()["servers"][0]
        assert server["reachable"] and not server["service_bind"]
        assert "strongerAuthRequired" in server["error"]
        assert report.json()["ok"] is False
    # A CA that did not sign the server's certificate: TLS fails, and says so.
    # (The server's own certificate is no CA.)
    async with running(ad_settings(samba_ad, ldap_ca_file=str(samba_ad / "tls" / "cert.pem"))) as service:
        response = await service.login("bob", "Bob-Pass-1!", ip="192.0.2.68")
        assert response.status_code == 503
        report = (await service.client.get("/admin/directory/status/", headers=admin_headers)).json()
        assert "certificate verify failed" in report["servers"][0]["error"].lower()
    async with running(ad_settings(samba_ad)) as service:
        report = (await service.client.get("/admin/directory/status/", headers=admin_headers)).json()
        assert report["ok"] is True
        assert report["servers"][0] | {"error": None} == {
            "url": "ldaps://127.0.0.1:636",
            "transport": "ldaps",
            "reachable": True,
            "tls": True,
            "service_bind": True,
            "flavor": "active_directory",
            "error": None,
        }


async def test_refresh_rechecks_group_membership_and_disabled_state(ad: Running, samba_ad: Path) -> None:
    async with running(ad_settings(samba_ad, ldap_recheck_seconds=0)) as service:
        nina = (await service.login("nina", "Nina-Pass-1!", ip="192.0.2.69")).json()
        ursula = (await service.login("ursula", "Ursula-Pass-1!", ip="192.0.2.69")).json()
        # Still in the groups: refreshes keep working.
        again = await service.client.post(
            "/auth/token/refresh/", json={"refresh_token": nina["refresh_token"]}
        )
        assert again.status_code == 200, again.text
        nina_refresh = again.json()["refresh_token"]
        admin = await asyncio.to_thread(_admin_conn, samba_ad)
        team, ursula_dn = f"CN=acme-team-red,{GROUPS}", f"CN=ursula,{PORTAL}"
        try:
            assert admin.modify(team, {"member": [(MODIFY_DELETE, [f"CN=nina,{PORTAL}"])]})
            assert admin.modify(ursula_dn, {"userAccountControl": [(MODIFY_REPLACE, ["514"])]})
            gone = await service.client.post("/auth/token/refresh/", json={"refresh_token": nina_refresh})
            assert gone.status_code == 401, gone.text
            assert gone.json()["error"]["code"] == "directory_access_revoked"
            assert gone.json()["error"]["details"]["reason"] == "no_company_mapping"
            disabled = await service.client.post(
                "/auth/token/refresh/", json={"refresh_token": ursula["refresh_token"]}
            )
            assert disabled.status_code == 401
            assert disabled.json()["error"]["code"] == "directory_access_revoked"
            assert (await _audit(service, "ursula"))[-1].reason == "directory_account_disabled"
        finally:
            admin.modify(team, {"member": [(MODIFY_ADD, [f"CN=nina,{PORTAL}"])]})
            admin.modify(ursula_dn, {"userAccountControl": [(MODIFY_REPLACE, ["512"])]})
            admin.unbind()
        # The session ended for good: back in the group, the old refresh token stays revoked.
        assert (
            await service.client.post("/auth/token/refresh/", json={"refresh_token": nina_refresh})
        ).status_code == 401


async def test_recheck_is_bounded_by_the_cache(ad: Running, samba_ad: Path) -> None:
    # With the default interval (60 s), a refresh right after sign-in does not ask the directory.
    tokens = (await ad.login("alice", "Alice-Pass-1!", ip="192.0.2.70")).json()
    calls = 0
    original = ad.state.directory.lookup

    def counting(dn: str) -> Any:
        nonlocal calls
        calls += 1
        return original(dn)

    ad.state.directory.lookup = counting
    try:
        response = await ad.client.post(
            "/auth/token/refresh/", json={"refresh_token": tokens["refresh_token"]}
        )
        assert response.status_code == 200 and calls == 0
    finally:
        ad.state.directory.lookup = original
