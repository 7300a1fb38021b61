"""OpenID Connect sign-in end to end against a real OpenID Provider: the certified `oidc-provider`
package on Node (scripts/oidc-provider), started on loopback by these tests. The browser's part
(the provider's sign-in page and its redirects) is played by an HTTP client with a cookie jar."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from soc_auth.audit.models import login_attempt
from soc_auth.oidc.models import oidc_login
from soc_auth.oidc.service import OidcError
from soc_auth.testing import ACME, GLOBEX, Running, auth_settings, running
from soc_shared.testing import free_port
from sqlalchemy import select, update

ROOT = Path(__file__).resolve().parents[3]
PROVIDER_DIR = ROOT / "scripts" / "oidc-provider"
REDIRECT = "http://127.0.0.1:9/oidc/callback"
CLIENT_SECRET = "oidc-test-client-secret-0123456789abcdef"
ACCOUNTS = {
    "olivia": {
        "password": "olivia-pass",
        "claims": {"email": "olivia@acme.example", "name": "Olivia Ortiz", "groups": ["acme-soc-users"]},
    },
    "gary": {
        "password": "gary-pass",
        "claims": {"email": "gary@globex.example", "name": "Gary Green", "groups": ["globex-soc-admins"]},
    },
    "iris": {
        "password": "iris-pass",
        "claims": {"email": "iris@mssp.example", "name": "Iris Idp", "groups": ["soc-idp-admins"]},
    },
    "uma": {
        "password": "uma-pass",
        "claims": {"email": "uma@nowhere.example", "name": "Uma Unmapped", "groups": ["elsewhere"]},
    },
}


@pytest.fixture(scope="session")
def oidc_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed to run the OpenID provider (apt-get install nodejs npm)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=PROVIDER_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    config = tmp_path_factory.mktemp("oidc") / "config.json"
    config.write_text(
        json.dumps(
            {
                "port": free_port(),
                "clients": [
                    {
                        "client_id": "soc-portal",
                        "client_secret": CLIENT_SECRET,
                        "redirect_uris": [REDIRECT],
                        "grant_types": ["authorization_code", "refresh_token"],
                        "response_types": ["code"],
                    }
                ],
                "accounts": ACCOUNTS,
                "control": True,
            }
        )
    )
    proc = subprocess.Popen(
        ["node", "server.mjs", str(config)],
        cwd=PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, "the OpenID provider did not start"
        issuer = json.loads(line)["issuer"]
        for _ in range(100):
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def oidc_settings(issuer: str, **overrides: Any) -> Any:
    provider = {
        "name": "testidp",
        "display_name": "Test IdP",
        "issuer": issuer,
        "client_id": "soc-portal",
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "admin_groups": ["soc-idp-admins"],
        "allow_http": True,
    }
    return auth_settings(oidc_providers=[provider], consumers_enabled=False, **overrides)


@pytest.fixture(scope="module")
async def sso(auth: Running, oidc_issuer: str) -> AsyncIterator[Running]:
    async with running(oidc_settings(oidc_issuer)) as service:
        yield service


async def browser(authorization_url: str, login: str, password: str) -> dict[str, str]:
    """What a browser does at the provider: follow redirects, submit the sign-in form, and stop
    at the redirect back to the portal. Returns that redirect's query (code, state)."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=10) as client:
        response = await client.get(authorization_url)
        for _ in range(10):
            location = response.headers.get("location")
            if location is None:
                break
            target = urljoin(str(response.url), location)
            if target.startswith(REDIRECT):
                return {k: v[0] for k, v in parse_qs(urlparse(target).query).items()}
            response = await client.get(target)
        assert response.status_code == 200, response.text
        uid = urlparse(str(response.url)).path.rstrip("/").split("/")[-1]
        base = f"{urlparse(str(response.url)).scheme}://{urlparse(str(response.url)).netloc}"
        response = await client.post(
            f"{base}/interaction/{uid}/login", data={"login": login, "password": password}
        )
        for _ in range(10):
            location = response.headers.get("location")
            assert location, (response.status_code, response.text)
            target = urljoin(str(response.url), location)
            if target.startswith(REDIRECT):
                return {k: v[0] for k, v in parse_qs(urlparse(target).query).items()}
            response = await client.get(target)
    raise AssertionError("the provider never sent the browser back")


async def sign_in(service: Running, login: str, password: str) -> tuple[httpx.Response, dict[str, str]]:
    started = await service.client.post("/auth/oidc/testidp/start/")
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]
    query = parse_qs(urlparse(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    back = await browser(url, login, password)
    assert back["state"] == started.json()["state"]
    answer = await service.client.post(
        "/auth/oidc/testidp/callback/", json={"code": back["code"], "state": back["state"]}
    )
    return answer, back


async def test_providers_are_listed(sso: Running, oidc_issuer: str) -> None:
    listed = (await sso.client.get("/auth/oidc/providers/")).json()
    assert listed == {"items": [{"name": "testidp", "display_name": "Test IdP", "issuer": oidc_issuer}]}


async def test_sign_in_creates_then_refreshes_the_user_from_the_id_token(sso: Running) -> None:
    answer, _ = await sign_in(sso, "olivia", "olivia-pass")
    assert answer.status_code == 200, answer.text
    user = answer.json()["user"]
    assert (user["username"], user["auth_source"], user["company_id"], user["role"]) == (
        "olivia",
        "oidc",
        ACME,
        "TENANT_USER",
    )
    assert (user["email"], user["full_name"], user["directory_groups"]) == (
        "olivia@acme.example",
        "Olivia Ortiz",
        ["acme-soc-users"],
    )
    again, _ = await sign_in(sso, "olivia", "olivia-pass")
    assert again.json()["user"]["id"] == user["id"]
    # The portal's own tokens work like any other sign-in's.
    me = await sso.client.get(
        "/auth/me/", headers={"Authorization": f"Bearer {again.json()['access_token']}"}
    )
    assert me.json()["username"] == "olivia"
    refreshed = await sso.client.post(
        "/auth/token/refresh/", json={"refresh_token": again.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    async with sso.state.db.session() as session:
        rows = (
            await session.execute(
                select(login_attempt.c.method, login_attempt.c.outcome).where(
                    login_attempt.c.username == "olivia"
                )
            )
        ).all()
    assert ("oidc", "succeeded") in {tuple(r) for r in rows}


async def test_groups_map_to_company_role_and_admin(sso: Running) -> None:
    gary, _ = await sign_in(sso, "gary", "gary-pass")
    assert (gary.json()["user"]["company_id"], gary.json()["user"]["role"]) == (GLOBEX, "TENANT_ADMIN")
    iris, _ = await sign_in(sso, "iris", "iris-pass")
    assert (iris.json()["user"]["kind"], iris.json()["user"]["role"]) == ("admin", "ADMIN")


async def test_unmapped_user_is_refused_and_nothing_is_created(sso: Running, admin_headers: dict) -> None:
    answer, _ = await sign_in(sso, "uma", "uma-pass")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "no_company_mapping"
    found = (await sso.client.get("/admin/users/", params={"q": "uma"}, headers=admin_headers)).json()
    assert found["total"] == 0


async def test_state_is_single_use_and_unknown_provider_is_404(sso: Running) -> None:
    answer, back = await sign_in(sso, "olivia", "olivia-pass")
    assert answer.status_code == 200
    replay = await sso.client.post("/auth/oidc/testidp/callback/", json=back)
    assert replay.status_code == 400 and replay.json()["error"]["code"] == "invalid_state"
    forged = await sso.client.post("/auth/oidc/testidp/callback/", json={"code": "x", "state": "y" * 43})
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_state"
    for path in ("/auth/oidc/nope/start/", "/auth/oidc/nope/callback/"):
        response = await sso.client.post(path, json={"code": "x", "state": "y" * 43})
        assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_identity_provider"


async def test_bad_code_and_nonce_mismatch_are_refused(sso: Running) -> None:
    started = (await sso.client.post("/auth/oidc/testidp/start/")).json()
    back = await browser(started["authorization_url"], "olivia", "olivia-pass")
    bogus = await sso.client.post(
        "/auth/oidc/testidp/callback/", json={"code": "not-the-code", "state": back["state"]}
    )
    assert bogus.status_code == 401 and bogus.json()["error"]["code"] == "oidc_code_rejected"
    assert bogus.json()["error"]["details"]["idp_error"] == "invalid_grant"

    started = (await sso.client.post("/auth/oidc/testidp/start/")).json()
    back = await browser(started["authorization_url"], "olivia", "olivia-pass")
    async with sso.state.db.session() as session:
        await session.execute(
            update(oidc_login).where(oidc_login.c.used_at.is_(None)).values(nonce="another-sign-in")
        )
    mismatch = await sso.client.post("/auth/oidc/testidp/callback/", json=back)
    assert mismatch.status_code == 401 and mismatch.json()["error"]["code"] == "nonce_mismatch"
    async with sso.state.db.session() as session:
        reasons = (
            (
                await session.execute(
                    select(login_attempt.c.reason).where(
                        login_attempt.c.method == "oidc", login_attempt.c.outcome == "failed"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert {"code_rejected", "nonce_mismatch"} <= set(reasons)


async def test_forged_expired_and_foreign_id_tokens(sso: Running) -> None:
    """A real id_token from the provider, then altered: each check refuses its own case."""
    client = sso.state.oidc_clients["testidp"]
    started = (await sso.client.post("/auth/oidc/testidp/start/")).json()
    back = await browser(started["authorization_url"], "olivia", "olivia-pass")
    async with sso.state.db.session() as session:
        pending = (
            await session.execute(
                select(oidc_login)
                .where(oidc_login.c.used_at.is_(None))
                .order_by(oidc_login.c.created_at.desc())
            )
        ).first()
    # PKCE: the provider refuses the code without the right verifier...
    with pytest.raises(OidcError) as wrong_verifier:
        await client.exchange(back["code"], "x" * 64, REDIRECT)
    assert wrong_verifier.value.reason == "code_rejected"
    # ...and the code was burnt by that attempt; a fresh round trip gives a real id_token.
    started = (await sso.client.post("/auth/oidc/testidp/start/")).json()
    back = await browser(started["authorization_url"], "olivia", "olivia-pass")
    async with sso.state.db.session() as session:
        pending = (
            await session.execute(
                select(oidc_login)
                .where(oidc_login.c.used_at.is_(None))
                .order_by(oidc_login.c.created_at.desc())
            )
        ).first()
    token = (await client.exchange(back["code"], pending.code_verifier, REDIRECT))["id_token"]
    claims = await client.validate_id_token(token, pending.nonce)
    assert claims["sub"] == "olivia" and claims["groups"] == ["acme-soc-users"]

    async def reason(candidate: str, nonce: str = pending.nonce, **kw: Any) -> str:
        with pytest.raises(OidcError) as refused:
            await client.validate_id_token(candidate, nonce, **kw)
        return refused.value.reason

    head, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(json.dumps({**claims, "sub": "admin"}).encode()).decode()
    assert await reason(f"{head}.{forged_payload}.{signature}") == "signature"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    own_kid = jwt.get_unverified_header(token)["kid"]
    assert (
        await reason(jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": own_kid})) == "signature"
    )
    assert (
        await reason(jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "someone-else"}))
        == "unknown_key"
    )
    assert (
        await reason(jwt.encode(claims, "secret-secret-secret-secret-32b!", algorithm="HS256")) == "algorithm"
    )
    assert await reason(token, now=claims["exp"] + 120) == "expired"
    assert await reason(token, nonce="another") == "nonce_mismatch"
    assert await reason("not-a-jwt") == "malformed"
    await asyncio.sleep(0)


async def test_refresh_asks_the_provider_again(sso: Running, oidc_issuer: str) -> None:
    async with running(oidc_settings(oidc_issuer, ldap_recheck_seconds=0)) as service:
        ACCOUNTS["mona"] = {
            "password": "mona-pass",
            "claims": {"email": "mona@acme.example", "groups": ["acme-soc-users"]},
        }
        ACCOUNTS["ned"] = {
            "password": "ned-pass",
            "claims": {"email": "ned@acme.example", "groups": ["acme-soc-users"]},
        }
        async with httpx.AsyncClient() as idp:
            for name in ("mona", "ned"):
                assert (
                    await idp.put(f"{oidc_issuer}/control/accounts/{name}", json=ACCOUNTS[name])
                ).status_code == 204
            mona = (await sign_in(service, "mona", "mona-pass"))[0].json()
            ned = (await sign_in(service, "ned", "ned-pass"))[0].json()
            # Still in the group: the provider answers, the session goes on (its claims refreshed).
            again = await service.client.post(
                "/auth/token/refresh/", json={"refresh_token": mona["refresh_token"]}
            )
            assert again.status_code == 200, again.text
            # Removed from the mapped group at the provider: the next refresh ends the session.
            moved = {
                "password": "mona-pass",
                "claims": {"email": "mona@acme.example", "groups": ["elsewhere"]},
            }
            await idp.put(f"{oidc_issuer}/control/accounts/mona", json=moved)
            gone = await service.client.post(
                "/auth/token/refresh/", json={"refresh_token": again.json()["refresh_token"]}
            )
            assert gone.status_code == 401, gone.text
            assert gone.json()["error"]["code"] == "directory_access_revoked"
            assert gone.json()["error"]["details"]["reason"] == "no_company_mapping"
            # Deleted at the provider: its refresh token no longer works there, nor the session here.
            await idp.delete(f"{oidc_issuer}/control/accounts/ned")
            refused = await service.client.post(
                "/auth/token/refresh/", json={"refresh_token": ned["refresh_token"]}
            )
            assert (
                refused.status_code == 401 and refused.json()["error"]["code"] == "directory_access_revoked"
            )
        async with service.state.db.session() as session:
            reasons = (
                (
                    await session.execute(
                        select(login_attempt.c.reason).where(
                            login_attempt.c.method == "oidc", login_attempt.c.endpoint == "refresh"
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert {"no_company_mapping", "identity_provider_refused"} <= set(reasons)


async def test_several_providers_keep_their_sign_ins_and_users_apart(sso: Running, oidc_issuer: str) -> None:
    def provider(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "issuer": oidc_issuer,
            "client_id": "soc-portal",
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT,
            "allow_http": True,
        }

    known = (await sign_in(sso, "olivia", "olivia-pass"))[0]
    assert known.status_code == 200, known.text  # olivia is known through "testidp"
    settings = auth_settings(
        oidc_providers=[provider("customer-a"), provider("customer-b")], consumers_enabled=False
    )
    async with running(settings) as service:
        names = [p["name"] for p in (await service.client.get("/auth/oidc/providers/")).json()["items"]]
        assert names == ["customer-a", "customer-b"]
        started = (await service.client.post("/auth/oidc/customer-a/start/")).json()
        back = await browser(started["authorization_url"], "gary", "gary-pass")
        # A's sign-in cannot be finished at B (the state belongs to A)...
        crossed = await service.client.post("/auth/oidc/customer-b/callback/", json=back)
        assert crossed.status_code == 400 and crossed.json()["error"]["code"] == "invalid_state"
        # ...and olivia, already known through another provider, is not taken over by this one.
        started = (await service.client.post("/auth/oidc/customer-a/start/")).json()
        back = await browser(started["authorization_url"], "olivia", "olivia-pass")
        taken = await service.client.post("/auth/oidc/customer-a/callback/", json=back)
        assert taken.status_code == 409, taken.text
        assert taken.json()["error"]["code"] == "account_conflict"
