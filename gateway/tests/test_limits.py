"""Rate limits (per user, per address, stricter for logins) and the request body limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from soc_gateway.ratelimit import TokenBuckets
from soc_shared.testing import TokenFactory


def test_a_bucket_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate=2, burst=2)
    assert buckets.take("k", now=0) == 0
    assert buckets.take("k", now=0) == 0
    assert buckets.take("k", now=0) == 0.5  # one token comes back after half a second
    assert buckets.take("k", now=0.5) == 0
    assert buckets.take("other", now=0.5) == 0  # keys do not share


def test_a_user_over_the_limit_gets_429_with_retry_after(
    strict_gateway, tokens: TokenFactory, client_address: str
) -> None:
    headers = {**tokens.headers(sub=str(uuid.uuid4())), "X-Forwarded-For": client_address}
    with strict_gateway.client() as client:
        statuses = [client.get("/tenant/", headers=headers).status_code for _ in range(3)]
        limited = client.get("/tenant/", headers=headers)
        other_user = client.get("/tenant/", headers={**tokens.headers(), "X-Forwarded-For": client_address})
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert other_user.status_code == 200


def test_an_address_over_the_limit_gets_429_whoever_it_is(
    strict_gateway, tokens: TokenFactory, client_address: str
) -> None:
    with strict_gateway.client() as client:
        statuses = [
            client.get(
                "/tenant/", headers={**tokens.headers(), "X-Forwarded-For": client_address}
            ).status_code
            for _ in range(6)
        ]
        unauthenticated = client.get("/tenant/", headers={"X-Forwarded-For": client_address})
    assert statuses == [200] * 5 + [429]
    assert unauthenticated.status_code == 429  # counted before the token is even looked at


def test_login_has_a_stricter_bucket_per_address(strict_gateway, client_address: str) -> None:
    with strict_gateway.client() as client:
        statuses = [
            client.post(
                "/auth/login/",
                json={"username": "u", "password": "p"},
                headers={"X-Forwarded-For": client_address},
            ).status_code
            for _ in range(3)
        ]
        limited = client.post(
            "/auth/login/",
            json={"username": "u", "password": "p"},
            headers={"X-Forwarded-For": client_address},
        )
    assert statuses == [200, 200, 429]
    assert int(limited.headers["retry-after"]) >= 30  # one attempt per minute refills


def test_declared_oversize_body_answers_413_before_reaching_the_upstream(
    strict_gateway, tokens: TokenFactory, client_address: str
) -> None:
    with strict_gateway.client() as client:
        response = client.post(
            "/integration/",
            content=b"x" * 2048,
            headers={**tokens.headers(), "X-Forwarded-For": client_address},
        )
        fits = client.post(
            "/integration/",
            content=b"x" * 1024,
            headers={**tokens.headers(), "X-Forwarded-For": client_address},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response.json()["error"]["details"] == {"limit_bytes": 1024}
    assert fits.status_code == 200 and fits.json()["body_length"] == 1024


def test_chunked_oversize_body_answers_413_when_the_limit_is_crossed(
    strict_gateway, tokens: TokenFactory, client_address: str
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 256

    def small() -> Iterator[bytes]:
        yield b"z" * 300
        yield b"z" * 300

    with strict_gateway.client() as client:
        response = client.post(
            "/integration/", content=chunks(), headers={**tokens.headers(), "X-Forwarded-For": client_address}
        )
        ok = client.post(
            "/integration/", content=small(), headers={**tokens.headers(), "X-Forwarded-For": client_address}
        )
    assert "content-length" not in response.request.headers  # really sent chunked
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert ok.status_code == 200 and ok.json()["body_length"] == 600
