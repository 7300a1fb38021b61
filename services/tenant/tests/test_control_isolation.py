"""Isolation between companies and the read-only admin, proven over every control-plane route."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from soc_tenant import control

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def control_routes(app: Any) -> list[Any]:
    """Every HTTP route of the control plane (FastAPI nests included routers; walk them)."""

    def walk(routes: list[Any]) -> list[Any]:
        out = []
        for route in routes:
            if hasattr(route, "original_router"):
                out += walk(route.original_router.routes)
            elif hasattr(route, "methods") and getattr(route, "endpoint", None) is not None:
                out.append(route)
        return out

    ours = {id(r) for router in control.routers for r in router.routes}
    return [
        r for r in walk(app.routes) if id(r) in ours or r.endpoint.__module__.startswith("soc_tenant.control")
    ]


def fill(path: str, **values: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


@pytest.fixture(scope="module")
async def two_companies(client, headers) -> dict[str, str]:
    admin = headers(kind="admin")
    ids = {}
    for key in ("a", "b"):
        r = await client.post(
            "/admin/companies/", headers=admin, json={"name": f"Iso {key} {uuid.uuid4().hex[:6]}"}
        )
        ids[key] = r.json()["id"]
        r = await client.post(
            f"/admin/companies/{ids[key]}/users/",
            headers=admin,
            json={"username": f"iso{key}{uuid.uuid4().hex[:6]}"},
        )
        ids[f"user_{key}"] = r.json()["user_id"]
        await client.post(
            "/tenant/chat/messages/",
            headers=headers(kind="tenant", company_id=ids[key], roles=["TENANT_USER"]),
            json={"body": f"secret of {key}"},
        )
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
        await client.post(
            f"/admin/companies/{ids[key]}/picture/", headers=admin, files={"file": ("p.png", png)}
        )
    return ids


async def test_read_only_admin_can_change_nothing(app, client, headers):
    ro = headers(kind="admin", roles=["READ_ONLY_ADMIN"], read_only=True)
    checked = []
    for route in control_routes(app):
        path = route.path
        if not (path.startswith("/admin") or path.startswith("/integration")):
            continue
        for method in sorted(route.methods & MUTATING):
            r = await client.request(method, fill(path), headers=ro, json={})
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] in ("read_only", "forbidden"), (method, path, r.text)
            checked.append((method, path))
    assert len(checked) >= 35, checked  # the walk really found the routes
    # ...while reading works
    for path in (
        "/admin/companies/",
        "/integration/",
        "/admin/mappings/qradar/",
        "/admin/sla/defaults/",
        "/admin/tenants/",
        "/admin/summary/tools/",
    ):
        assert (await client.get(path, headers=ro)).status_code == 200, path


async def test_a_company_cannot_read_change_or_detect_another(app, client, headers, two_companies):
    """For every control route with a company in its path, a tenant of A gets exactly the same answer
    for B's id as for an id that does not exist: it cannot tell that B exists."""
    a, b = two_companies["a"], two_companies["b"]
    checked = 0
    for role in ("TENANT_ADMIN", "TENANT_USER"):
        ta = headers(kind="tenant", company_id=a, roles=[role])
        for route in control_routes(app):
            if "{company_id}" not in route.path:
                continue
            for method in sorted(route.methods - {"HEAD"}):
                user = two_companies["user_b"]
                on_b = await client.request(
                    method, fill(route.path, company_id=b, user_id=user), headers=ta, json={}
                )
                on_none = await client.request(
                    method, fill(route.path, company_id=str(uuid.uuid4()), user_id=user), headers=ta, json={}
                )
                assert on_b.status_code in (403, 404), (role, method, route.path, on_b.text)
                assert (on_b.status_code, on_b.json()["error"]["code"]) == (
                    on_none.status_code,
                    on_none.json()["error"]["code"],
                )
                assert "secret of b" not in on_b.text
                checked += 1
    assert checked >= 30

    ta = headers(kind="tenant", company_id=a, roles=["TENANT_ADMIN"])
    # and its own company answers (the 404s above are not an accident of a broken route)
    assert (await client.get(f"/admin/companies/{a}/", headers=ta)).status_code == 200
    assert (await client.get(f"/admin/companies/{a}/picture/", headers=ta)).status_code == 200
    assert (await client.get(f"/admin/companies/{a}/users/", headers=ta)).json()["total"] == 1
    assert (await client.get(f"/admin/tenants/{a}/", headers=ta)).status_code == 200
    assert (
        await client.get(f"/admin/companies/{a}/users/{two_companies['user_b']}/", headers=ta)
    ).status_code == 404

    # lists and the chat only ever show A
    assert {
        c["id"]
        for c in (await client.get("/admin/companies/", headers=ta, params={"status": "all"})).json()["items"]
    } == {a}
    msgs = (await client.get("/tenant/chat/messages/", headers=ta)).json()
    assert msgs["total"] == 1 and "secret of b" not in str(msgs)
    for params in ({"company_id": b}, {"company_id": str(uuid.uuid4())}):
        r = await client.get("/tenant/chat/messages/", headers=ta, params=params)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (await client.get("/tenant/chat/unread/", headers=ta, params=params)).status_code == 404
        assert (await client.get("/tenant/", headers=ta, params=params)).status_code == 404
    r = await client.post("/tenant/chat/messages/", headers=ta, json={"body": "x", "company_id": b})
    assert r.status_code == 404
    r = await client.post("/tenant/chat/messages/seen/", headers=ta, json={"company_id": b})
    assert r.status_code == 404
    b_msgs = (
        await client.get("/tenant/chat/messages/", headers=headers(kind="admin"), params={"company_id": b})
    ).json()
    assert b_msgs["total"] == 1 and b_msgs["items"][0]["tenant_seen_at"] is not None

    # admin-only areas answer 403 to every tenant, whatever the id
    for method, path in (
        ("GET", "/integration/"),
        ("GET", "/admin/mappings/qradar/"),
        ("GET", "/admin/tenants/"),
        ("GET", "/admin/summary/tools/"),
        ("GET", f"/integration/{uuid.uuid4()}/"),
        ("GET", "/admin/companies/name-available/?name=x"),
        ("POST", "/admin/tenants/"),
        ("GET", "/internal/integrations/"),
    ):
        r = await client.request(method, path, headers=ta, json={})
        assert r.status_code == 403, (method, path)


async def test_unauthenticated_and_forged_tokens_are_refused(client, tokens):
    assert (await client.get("/admin/companies/")).json()["error"]["code"] == "not_authenticated"
    other = type(tokens)()  # a key the service does not know
    r = await client.get("/admin/companies/", headers=other.headers(kind="admin"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


HOSTILE = ["\x00", "\ud800", "a\x00b", "%", "_", "\\", "' OR 1=1 --", "x" * 5000, "😀"]


async def test_hostile_input_is_a_4xx_never_a_500(client, headers, two_companies):
    admin = headers(kind="admin")
    a = two_companies["a"]
    qradar = {
        "subtype": "IBM_QRADAR",
        "instance_name": "hostile",
        "base_url": "https://q.example",
        "credentials": {"api_key": "k" * 12},
    }
    for value in HOSTILE:
        calls = [
            ("POST", "/admin/companies/", {"name": value}),
            ("PUT", f"/admin/companies/{a}/", {"industry": value}),
            ("POST", f"/admin/companies/{a}/users/", {"username": "ok", "email": f"{value}@x.y"}),
            ("PUT", f"/admin/companies/{a}/directory-groups/", {"items": [{"ldap_group": value}]}),
            ("POST", "/integration/", {**qradar, "instance_name": value}),
            ("POST", "/integration/", {**qradar, "base_url": f"https://{value}.example"}),
            ("POST", "/integration/", {**qradar, "credentials": {"api_key": value * 3}}),
            ("POST", "/integration/", {**qradar, "settings": {"api_version": value, value: value}}),
            ("POST", "/integration/", {**qradar, "ca_pem": value}),
            ("POST", "/tenant/chat/messages/", {"body": value, "company_id": a}),
            (
                "POST",
                "/admin/mappings/soar/",
                {"company_id": a, "integration_id": str(uuid.uuid4()), "account": value},
            ),
            (
                "PUT",
                f"/admin/companies/{a}/sla/",
                {
                    "overrides": [
                        {
                            "level": "P1",
                            "account": value,
                            "integration_id": str(uuid.uuid4()),
                            "tta_minutes": 1,
                            "ttn_minutes": 1,
                            "ttdn_minutes": 1,
                        }
                    ]
                },
            ),
        ]
        for method, path, body in calls:
            # json.dumps escapes lone surrogates ("\\ud800"), as a hostile client would send them
            r = await client.request(
                method,
                path,
                content=json.dumps(body).encode(),
                headers={**admin, "content-type": "application/json"},
            )
            assert r.status_code < 500, (method, path, repr(value)[:20], r.text[:300])
        if not value.isascii() and not value.isprintable():
            continue
        for path, params in (
            ("/admin/companies/", {"q": value}),
            ("/integration/", {"q": value}),
            ("/admin/companies/name-available/", {"name": value}),
            (f"/admin/companies/{a}/users/", {"q": value}),
            ("/admin/tenants/", {"q": value}),
            ("/tenant/chat/messages/", {"company_id": a, "before_id": value}),
            ("/admin/companies/", {"limit": value}),
        ):
            r = await client.get(path, headers=admin, params=params)
            assert r.status_code < 500, (path, repr(value)[:20], r.text[:300])
    for raw_query in ("q=%00", "q=%ED%A0%80", "q=%FF", "name=%00"):
        for path in (
            "/admin/companies/",
            "/admin/companies/name-available/",
            "/integration/",
            "/admin/tenants/",
        ):
            r = await client.get(f"{path}?{raw_query}", headers=admin)
            assert r.status_code < 500, (path, raw_query, r.text[:300])
    for huge in (2**63, 2**64, -1):
        r = await client.post(
            "/tenant/chat/messages/seen/", headers=admin, json={"company_id": a, "up_to_id": huge}
        )
        assert r.status_code == 422
        r = await client.get(
            "/tenant/chat/messages/", headers=admin, params={"company_id": a, "after_id": huge}
        )
        assert r.status_code == 422
    for raw in (b"[]", b"null", b'"text"', b'{"name": ', b"\xff\xfe"):
        r = await client.post(
            "/admin/companies/", headers={**admin, "content-type": "application/json"}, content=raw
        )
        assert r.status_code == 422, raw
