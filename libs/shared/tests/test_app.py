"""The service app factory: one error shape everywhere, request ids, operations routes."""

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel
from soc_shared.app import create_service_app
from soc_shared.errors import ApiError
from soc_shared.settings import ServiceSettings

router = APIRouter()


class Body(BaseModel):
    name: str


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("kaboom password=hunter2")


@router.get("/conflict")
async def conflict() -> None:
    raise ApiError(409, "name_taken", "that name is taken", {"name": "acme"})


@router.post("/things")
async def things(body: Body) -> dict[str, str]:
    raise ValueError("A string literal cannot contain NUL (0x00) characters.")


async def _not_ready() -> None:
    raise ConnectionError("db down")


@pytest.fixture
async def client():
    app = create_service_app(
        ServiceSettings(service_name="t", environment="test"),
        title="t",
        routers=[router],
        readiness={"database": _not_ready},
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_unhandled_error_is_a_500_in_the_error_shape_with_the_request_id(client):
    r = await client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "req-123"
    assert r.json() == {
        "error": {
            "code": "internal_error",
            "message": "an internal error occurred; it has been logged",
            "details": {},
            "request_id": "req-123",
        }
    }
    assert "hunter2" not in r.text and "Traceback" not in r.text


async def test_api_errors_validation_and_unknown_routes_share_the_shape(client):
    r = await client.get("/conflict")
    assert r.status_code == 409 and r.json()["error"]["code"] == "name_taken"
    assert (
        r.json()["error"]["details"] == {"name": "acme"}
        and r.json()["error"]["request_id"] == r.headers["x-request-id"]
    )
    r = await client.post("/things", json={"name": 5})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["details"]["errors"][0]["loc"] == ["body", "name"]
    r = await client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_nul_characters_are_bad_input_not_a_server_fault(client):
    r = await client.post("/things", json={"name": "a\u0000b"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"


async def test_operations_routes(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["database"].startswith("unavailable")
    r = await client.get("/metrics")
    assert r.status_code == 200 and "soc_http_requests_total" in r.text
