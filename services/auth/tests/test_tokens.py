"""Access and refresh tokens: what is accepted, what is refused, rotation and revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from soc_auth.testing import ADMIN_PASSWORD, Running, auth_settings, running
from soc_auth.token.models import signing_key
from soc_shared.security import TokenVerifier
from sqlalchemy import select


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{_b64(signature)}"


async def _admin_claims(auth: Running) -> dict[str, Any]:
    token = await auth.token("admin", ADMIN_PASSWORD)
    return jwt.decode(token, options={"verify_signature": False})


def _fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {**claims, "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + 300, **changes}


async def _me(auth: Running, token: str) -> int:
    return (await auth.client.get("/auth/me/", headers={"Authorization": f"Bearer {token}"})).status_code


async def test_access_token_carries_the_contract_claims(auth: Running) -> None:
    claims = await _admin_claims(auth)
    assert {
        "sub",
        "username",
        "kind",
        "roles",
        "permissions",
        "company_id",
        "read_only",
        "jti",
        "iat",
        "nbf",
        "exp",
        "iss",
        "aud",
        "typ",
    } <= set(claims)
    assert claims["typ"] == "access" and claims["kind"] == "admin" and "SUPER_ADMIN" in claims["roles"]
    assert claims["exp"] - claims["iat"] == 900
    header = jwt.get_unverified_header(await auth.token("admin", ADMIN_PASSWORD))
    assert header["alg"] == "EdDSA" and header["kid"] in {
        k["kid"] for k in (await auth.client.get("/.well-known/jwks.json")).json()["keys"]
    }


async def test_jwks_is_served_at_both_paths_and_keys_are_sealed_at_rest(auth: Running) -> None:
    well_known = (await auth.client.get("/.well-known/jwks.json")).json()
    assert well_known == (await auth.client.get("/auth/jwks/")).json()
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and "d" not in k for k in well_known["keys"])
    async with auth.state.db.session() as session:
        sealed = (await session.execute(select(signing_key.c.private_key_sealed))).scalars().all()
    assert sealed and all(s.startswith("v1.") for s in sealed)


@pytest.mark.parametrize(
    "attack",
    [
        "alg_none",
        "hs256_with_public_key",
        "unknown_kid",
        "wrong_audience",
        "wrong_issuer",
        "expired",
        "not_yet_valid",
        "tampered_payload",
        "tampered_signature",
        "refresh_as_access",
        "garbage",
    ],
)
async def test_forged_or_invalid_tokens_are_refused_without_detail(auth: Running, attack: str) -> None:
    ring = auth.state.keys
    claims = await _admin_claims(auth)
    assert await _me(auth, ring.sign(_fresh(claims))) == 200  # the control: a well-made token works
    kid = ring.active_kid
    jwk = next(k for k in ring.jwks()["keys"] if k["kid"] == kid)
    public_pem = Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"])).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    if attack == "alg_none":
        token = _forge({"alg": "none", "kid": kid, "typ": "JWT"}, _fresh(claims))
    elif attack == "hs256_with_public_key":
        token = _forge(
            {"alg": "HS256", "kid": kid, "typ": "JWT"},
            _fresh(claims),
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        )
    elif attack == "unknown_kid":
        token = jwt.encode(
            _fresh(claims), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "not-our-key"}
        )
    elif attack == "wrong_audience":
        token = ring.sign(_fresh(claims, aud="someone-else"))
    elif attack == "wrong_issuer":
        token = ring.sign(_fresh(claims, iss="https://evil.example"))
    elif attack == "expired":
        token = ring.sign(_fresh(claims, iat=now - 3600, nbf=now - 3600, exp=now - 1800))
    elif attack == "not_yet_valid":
        token = ring.sign(_fresh(claims, nbf=now + 3600, exp=now + 7200))
    elif attack == "tampered_payload":
        header, _, signature = ring.sign(_fresh(claims, roles=["TENANT_USER"])).split(".")
        token = f"{header}.{_b64(json.dumps(_fresh(claims, roles=['SUPER_ADMIN'])).encode())}.{signature}"
    elif attack == "tampered_signature":
        header, payload, signature = ring.sign(_fresh(claims)).split(".")
        raw = bytearray(_unb64(signature))
        raw[0] ^= 0x01
        token = f"{header}.{payload}.{_b64(bytes(raw))}"
    elif attack == "refresh_as_access":
        token = (await auth.login("admin", ADMIN_PASSWORD)).json()["refresh_token"]
    else:
        token = "not.a.jwt"
    response = await auth.client.get("/auth/me/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert response.json()["error"]["message"] == "invalid or expired token"
    assert response.json()["error"]["details"] == {}


async def test_access_token_is_refused_as_refresh_token(auth: Running) -> None:
    access = await auth.token("admin", ADMIN_PASSWORD)
    response = await auth.client.post("/auth/token/refresh/", json={"refresh_token": access})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


async def test_refresh_rotates_and_the_old_token_is_spent(auth: Running) -> None:
    first = (await auth.login("admin", ADMIN_PASSWORD)).json()
    second = await auth.client.post("/auth/token/refresh/", json={"refresh": first["refresh_token"]})
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert await _me(auth, pair["access_token"]) == 200
    old = jwt.decode(first["refresh_token"], options={"verify_signature": False})
    new = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert old["fam"] == new["fam"] and old["typ"] == new["typ"] == "refresh"
    third = await auth.client.post("/auth/token/refresh/", json={"refresh_token": pair["refresh_token"]})
    assert third.status_code == 200


async def test_spent_refresh_token_revokes_family(auth: Running) -> None:
    first = (await auth.login("admin", ADMIN_PASSWORD)).json()["refresh_token"]
    second = (await auth.client.post("/auth/token/refresh/", json={"refresh_token": first})).json()[
        "refresh_token"
    ]
    reused = await auth.client.post("/auth/token/refresh/", json={"refresh_token": first})
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "token_reused"
    # The thief's copy and the legitimate holder's newer token are both dead now.
    after = await auth.client.post("/auth/token/refresh/", json={"refresh_token": second})
    assert after.status_code == 401 and after.json()["error"]["code"] == "token_revoked"
    # Another session of the same user is untouched.
    other = (await auth.login("admin", ADMIN_PASSWORD)).json()["refresh_token"]
    assert (await auth.client.post("/auth/token/refresh/", json={"refresh_token": other})).status_code == 200


async def test_logout_revokes_the_session(auth: Running) -> None:
    pair = (await auth.login("admin", ADMIN_PASSWORD)).json()
    response = await auth.client.post(
        "/auth/logout/",
        json={"refresh_token": pair["refresh_token"]},
        headers={"Authorization": f"Bearer {pair['access_token']}"},
    )
    assert response.status_code == 204
    refused = await auth.client.post("/auth/token/refresh/", json={"refresh_token": pair["refresh_token"]})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"


async def test_logout_all_sessions_with_the_access_token(auth: Running) -> None:
    one = (await auth.login("admin", ADMIN_PASSWORD)).json()
    two = (await auth.login("admin", ADMIN_PASSWORD)).json()
    response = await auth.client.post(
        "/auth/logout",
        json={"all_sessions": True},
        headers={"Authorization": f"Bearer {one['access_token']}"},
    )
    assert response.status_code == 204
    for pair in (one, two):
        assert (
            await auth.client.post("/auth/token/refresh/", json={"refresh_token": pair["refresh_token"]})
        ).status_code == 401


async def test_key_rotation_keeps_old_tokens_valid_and_publishes_both_keys(auth: Running) -> None:
    admin = {"Authorization": f"Bearer {await auth.token('admin', ADMIN_PASSWORD)}"}
    old_pair = (await auth.login("admin", ADMIN_PASSWORD)).json()
    old_kid = jwt.get_unverified_header(old_pair["access_token"])["kid"]
    response = await auth.client.post("/admin/keys/rotate/", headers=admin)
    assert response.status_code == 200, response.text
    new_kid = response.json()["active"]["kid"]
    assert new_kid != old_kid and old_kid in response.json()["retired"]
    kids = {k["kid"] for k in (await auth.client.get("/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, new_kid} <= kids
    assert await _me(auth, old_pair["access_token"]) == 200
    refreshed = await auth.client.post(
        "/auth/token/refresh/", json={"refresh_token": old_pair["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert jwt.get_unverified_header(refreshed.json()["access_token"])["kid"] == new_kid
    # Other services verify with the published JWKS alone.
    jwks = (await auth.client.get("/.well-known/jwks.json")).json()
    verifier = TokenVerifier.from_keys(jwks, auth.state.settings.jwt_issuer, auth.state.settings.jwt_audience)
    for token in (old_pair["access_token"], refreshed.json()["access_token"]):
        assert (await verifier.verify(token)).username == "admin"


async def test_a_replica_learns_a_rotation_made_by_another(auth: Running, migrated: None) -> None:
    async with running(auth_settings(consumers_enabled=False)) as replica:
        admin = {"Authorization": f"Bearer {await auth.token('admin', ADMIN_PASSWORD)}"}
        assert (await auth.client.post("/admin/keys/rotate/", headers=admin)).status_code == 200
        fresh = await auth.token("admin", ADMIN_PASSWORD)
        replica.state.keys.loaded_at = 0  # as if its last reload was long ago
        assert await _me(replica, fresh) == 200


async def test_service_token_for_known_clients_only(auth: Running) -> None:
    secret = auth.state.settings.service_client_secret.get_secret_value()
    response = await auth.client.post(
        "/auth/internal/token", json={"client_id": "siem-ingest", "client_secret": secret}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    principal = await auth.state.keys.verifier.verify(body["access_token"])
    assert (principal.kind, principal.roles, principal.sub, principal.username) == (
        "service",
        ["SERVICE"],
        "siem-ingest",
        "siem-ingest",
    )
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300 and claims["typ"] == "access"
    for client_id, client_secret in (("siem-ingest", "wrong"), ("intruder", secret), ("tenant", "")):
        refused = await auth.client.post(
            "/auth/internal/token", json={"client_id": client_id, "client_secret": client_secret}
        )
        assert refused.status_code in (401, 422)
        if refused.status_code == 401:
            assert refused.json()["error"] == {
                **refused.json()["error"],
                "code": "invalid_client",
                "message": "invalid client credentials",
                "details": {},
            }


async def test_internal_api_needs_a_service_token(auth: Running, service_headers: dict) -> None:
    admin = {"Authorization": f"Bearer {await auth.token('admin', ADMIN_PASSWORD)}"}
    assert (await auth.client.get("/auth/internal/users", headers=admin)).status_code == 403
    assert (await auth.client.get("/auth/internal/users")).status_code == 401
    assert (await auth.client.get("/auth/internal/users", headers=service_headers)).status_code == 200


async def test_signing_keys_survive_a_restart(auth: Running, migrated: None) -> None:
    async with running(auth_settings(consumers_enabled=False)) as restarted:
        assert (await restarted.client.get("/.well-known/jwks.json")).json() == (
            await auth.client.get("/.well-known/jwks.json")
        ).json()
        assert restarted.state.keys.active_kid == auth.state.keys.active_kid


async def test_openapi_document_and_operations_endpoints(auth: Running) -> None:
    spec = (await auth.client.get("/openapi.json")).json()
    assert "/auth/login/" in spec["paths"] and "/admin/users/{user_id}/" in spec["paths"]
    assert "/auth/login" not in spec["paths"]  # the slash-less aliases are not documented twice
    assert (await auth.client.get("/healthz")).status_code == 200
    ready = await auth.client.get("/readyz")
    assert ready.status_code == 200 and set(ready.json()["checks"]) == {"database", "broker"}
    response = await auth.client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 200 and response.headers["X-Request-ID"]
