"""Notifications: configuration (4xx for bad input, secrets sealed and never returned, audited),
the SLA clock driven by a controllable clock, delivery to a real SMTP server on loopback and to a
real HTTP receiver that verifies the webhook signature, retries, parking, rate limits, and that no
delivery waits for another."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response
from soc_shared.egress import EgressPolicy
from soc_shared.events import IncidentSeverity, IncidentStatus, SiemOffense, SoarIncident
from soc_shared.testing import free_port
from soc_tenant import notify
from soc_tenant.notify.options import NotifyOptions
from soc_tenant.readmodel import ingest
from soc_tenant.readmodel.testing import event, map_qradar, map_soar, set_company_sla

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


# --- real servers -----------------------------------------------------------------------------------
class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((time.time(), envelope.rcpt_tos, msg))
        return "250 Message accepted"

    def to(self, address: str) -> list[Any]:
        return [m for _, rcpts, m in self.messages if address in rcpts]


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


class Receiver:
    """A webhook endpoint that verifies the signature the way a customer would."""

    def __init__(self) -> None:
        self.secret = "whsec-" + uuid.uuid4().hex
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.mode: dict[str, str] = {}  # path -> ok | fail | slow | reject
        self.release = asyncio.Event()
        self.app = FastAPI()

        @self.app.post("/{path}")
        async def hook(path: str, request: Request) -> Response:
            body = await request.body()
            mode = self.mode.get(path, "ok")
            if mode == "slow":
                await self.release.wait()
            if mode == "fail":
                return Response("upstream trouble", status_code=503)
            if mode == "reject":
                return Response("bad request", status_code=400)
            if path.startswith("signed"):
                header = request.headers.get("x-soc-signature", "")
                parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
                mac = hmac.new(self.secret.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256)
                fresh = abs(time.time() - int(parts.get("t", "0"))) < 300
                if not (fresh and hmac.compare_digest(mac.hexdigest(), parts.get("v1", ""))):
                    self.refused += 1
                    return Response("bad signature", status_code=401)
            self.received.append({"path": path, "body": json.loads(body), "headers": dict(request.headers)})
            return Response("ok")

    def on(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["path"] == path]


@pytest.fixture
async def receiver(serve_app):
    r = Receiver()
    async with serve_app(r.app) as address:
        r.base = f"http://{address}"
        yield r
        r.release.set()


# --- helpers ----------------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(app):
    opts = app.state.notify_options
    saved = (opts.clock, opts.park_after, opts.send_timeout_seconds, opts.egress)
    c = Clock(datetime.now(UTC))
    opts.clock = c
    yield c
    opts.clock, opts.park_after, opts.send_timeout_seconds, opts.egress = saved


async def deliver(app) -> int:
    return await app.state.notify_deliverer.run_once()


async def new_company(client, headers) -> str:
    r = await client.post(
        "/admin/companies/", headers=headers(kind="admin"), json={"name": f"Notify {uuid.uuid4().hex[:8]}"}
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def email_channel(mailbox, company_id: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "name": "SOC mail",
        "kind": "email",
        "company_id": company_id,
        "sender": "soc@mssp.example",
        "recipients": [f"oncall-{uuid.uuid4().hex[:6]}@customer.example"],
        "smtp_host": "127.0.0.1",
        "smtp_port": mailbox.port,
        "smtp_security": "none",
        **extra,
    }


async def post(client, path: str, h, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    r = await client.post(path, headers=h, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def incident(
    app, integration: str, account: str, incident_id: str, created: datetime, **kw: Any
) -> None:
    payload = SoarIncident(
        incident_id=incident_id,
        account=account,
        name=kw.pop("name", f"Phishing {incident_id}"),
        status=kw.pop("status", IncidentStatus.ACTIVE),
        severity=kw.pop("severity", IncidentSeverity.CRITICAL),
        created=created,
        modified=created,
        occurred=created,
        priority=kw.pop("priority", "P1"),
        version=1,
        **kw,
    )
    env = event("soar.incident.upserted", payload, integration, incident_id, version=1)
    await ingest.store(app.state.db, [(env, payload, "soar.incident.upserted")])


async def notices(app, company_id: str | None, trigger: str | None = None) -> list[Any]:
    async with app.state.db.session() as s:
        rows = await s.execute(
            sa.text(
                "SELECT n.*, r.company_id AS rule_company FROM notify_notice n JOIN notify_rule r ON r.id = n.rule_id "
                "WHERE r.company_id IS NOT DISTINCT FROM :c AND (CAST(:t AS text) IS NULL OR n.trigger = :t) ORDER BY n.id"
            ),
            {"c": company_id, "t": trigger},
        )
        return list(rows.mappings())


# --- configuration ----------------------------------------------------------------------------------
async def test_bad_configuration_is_a_clear_4xx_and_writes_nothing(client, headers, mailbox):
    admin = headers(kind="admin")
    company = await new_company(client, headers)
    base = email_channel(mailbox, company)
    bad = [
        ({**base, "recipients": ["not-an-address"]}, "validation_error"),
        ({**base, "recipients": ["a@b"]}, "validation_error"),
        ({**base, "sender": "soc@@mssp.example"}, "validation_error"),
        ({**base, "recipients": []}, "validation_error"),
        ({**base, "text_template": "Hello ${nobody}"}, "template_error"),
        ({**base, "subject_template": "cost $5 ${title"}, "template_error"),
        (
            {
                "name": "h",
                "kind": "webhook",
                "company_id": company,
                "url": "http://169.254.169.254/latest",
                "secret": "s" * 20,
            },
            "egress_denied",
        ),
        (
            {
                "name": "h",
                "kind": "webhook",
                "company_id": company,
                "url": "ftp://x.example/",
                "secret": "s" * 20,
            },
            "validation_error",
        ),
        (
            {
                "name": "h",
                "kind": "webhook",
                "company_id": company,
                "url": "https://x.example/",
                "secret": "short",
            },
            "validation_error",
        ),
        (
            {"name": "h", "kind": "webhook", "company_id": company, "url": "https://x.example/"},
            "validation_error",
        ),
        ({"name": "s", "kind": "slack", "company_id": company}, "validation_error"),
        ({**base, "kind": "pager"}, "validation_error"),
        ({**base, "smtp_host": "mail relay.example"}, "validation_error"),
        ({**base, "smtp_host": "[::1"}, "validation_error"),
        (
            {
                "name": "h",
                "kind": "webhook",
                "company_id": company,
                "url": "http://[::1/x",
                "secret": "s" * 20,
            },
            "validation_error",
        ),
        (
            {"name": "h", "kind": "teams", "company_id": company, "url": "https://x.example:99999/"},
            "validation_error",
        ),
        (
            {
                "name": "h",
                "kind": "webhook",
                "company_id": company,
                "url": "https://a\x00b.example/",
                "secret": "s" * 20,
            },
            "validation_error",
        ),
    ]
    for body, code in bad:
        r = await client.post("/admin/notifications/channels/", headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == code, r.text
    r = await client.post(
        "/admin/notifications/channels/", headers=admin, json={**base, "company_id": str(uuid.uuid4())}
    )
    assert r.status_code == 404
    listed = await client.get("/admin/notifications/channels/", headers=admin, params={"company_id": company})
    assert listed.json()["total"] == 0

    channel = await post(client, "/admin/notifications/channels/", admin, base)
    other = await new_company(client, headers)
    foreign = await post(client, "/admin/notifications/channels/", admin, email_channel(mailbox, other))
    rule = {"name": "r", "trigger": "sla_due_soon", "company_id": company, "channel_ids": [channel["id"]]}
    for body in (
        rule,  # no lead time
        {**rule, "trigger": "sla_breached", "lead_minutes": 5},
        {**rule, "lead_minutes": 5, "channel_ids": [foreign["id"]]},  # another company's channel
        {**rule, "lead_minutes": 5, "channel_ids": []},
        {**rule, "trigger": "offense_created", "min_offense_severity": 11},
        {**rule, "trigger": "incident_created", "min_incident_severity": "urgent"},
    ):
        r = await client.post("/admin/notifications/rules/", headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
    assert (
        await client.get("/admin/notifications/rules/", headers=admin, params={"company_id": company})
    ).json()["total"] == 0


async def test_secrets_are_sealed_never_returned_and_changes_are_audited(app, client, headers):
    admin = headers(kind="admin")
    company = await new_company(client, headers)
    secret = "whsec-" + uuid.uuid4().hex
    body = {
        "name": "SIEM hook",
        "kind": "webhook",
        "company_id": company,
        "url": "https://hooks.customer.example/soc",
        "secret": secret,
    }
    created = await post(client, "/admin/notifications/channels/", admin, body)
    assert created["secret_set"] is True and created["secret_version"] == 1
    slack_url = "https://hooks.slack.com/services/T000/B000/" + uuid.uuid4().hex
    slack = await post(
        client,
        "/admin/notifications/channels/",
        admin,
        {"name": "slack", "kind": "slack", "company_id": company, "url": slack_url},
    )
    assert slack["config"] == {"host": "hooks.slack.com"}
    for view in (
        created,
        slack,
        (
            await client.get("/admin/notifications/channels/", headers=admin, params={"company_id": company})
        ).json(),
    ):
        text = json.dumps(view)
        assert secret not in text and slack_url not in text and "B000" not in text

    async with app.state.db.session() as s:
        row = (
            await s.execute(
                sa.text("SELECT secret_sealed FROM notify_channel WHERE id = :i"), {"i": created["id"]}
            )
        ).one()
    assert secret not in row.secret_sealed
    assert app.state.sealer.open(row.secret_sealed, f"notify_channel:{created['id']}").decode() == secret

    # An update without the secret keeps it; with one, the version moves.
    kept = (
        await client.put(
            f"/admin/notifications/channels/{created['id']}/",
            headers=admin,
            json={**body, "secret": None, "name": "SIEM hook 2"},
        )
    ).json()
    assert kept["secret_set"] and kept["secret_version"] == 1 and kept["name"] == "SIEM hook 2"
    rotated = await client.put(
        f"/admin/notifications/channels/{created['id']}/", headers=admin, json={**body, "secret": "n" * 32}
    )
    assert rotated.json()["secret_version"] == 2

    records = (await client.get("/admin/audit/", headers=admin, params={"target_id": created["id"]})).json()[
        "items"
    ]
    assert [r["action"] for r in records] == [
        "notify_channel.updated",
        "notify_channel.updated",
        "notify_channel.created",
    ]
    assert records[0]["after"] == {"name": "SIEM hook", "secret_version": 2}
    assert secret not in json.dumps(records)
    # A read-only admin changes nothing.
    ro = headers(kind="admin", roles=["READ_ONLY_ADMIN"], read_only=True)
    r = await client.delete(f"/admin/notifications/channels/{created['id']}/", headers=ro)
    assert r.status_code == 403 and r.json()["error"]["code"] == "read_only"


# --- the SLA clock and e-mail -----------------------------------------------------------------------
async def test_sla_about_to_breach_and_breached_reach_the_mailbox_once_per_incident_and_step(
    app, client, headers, mailbox, clock
):
    admin = headers(kind="admin")
    company = await new_company(client, headers)
    integration, account = str(uuid.uuid4()), f"acct-{uuid.uuid4().hex[:6]}"
    await map_soar(app.state.db, company, integration, account)
    await set_company_sla(app.state.db, company, "P1", 15, 30, 240)
    mail = await post(
        client,
        "/admin/notifications/channels/",
        admin,
        email_channel(
            mailbox, company, text_template="${title}\nStep ${step} due ${deadline} for ${company}\n"
        ),
    )
    inbox = await post(
        client,
        "/admin/notifications/channels/",
        admin,
        {"name": "in app", "kind": "in_app", "company_id": company},
    )
    await post(
        client,
        "/admin/notifications/rules/",
        admin,
        {
            "name": "soon",
            "trigger": "sla_due_soon",
            "company_id": company,
            "lead_minutes": 5,
            "channel_ids": [mail["id"]],
        },
    )
    await post(
        client,
        "/admin/notifications/rules/",
        admin,
        {
            "name": "late",
            "trigger": "sla_breached",
            "company_id": company,
            "channel_ids": [mail["id"], inbox["id"]],
        },
    )
    started = clock.now - timedelta(minutes=1)
    await incident(app, integration, account, "INC-1", started)
    to = mail["config"]["recipients"][0]

    clock.now = started + timedelta(minutes=9, seconds=59)
    await notify.sla_once(app)
    assert await notices(app, company) == []

    clock.now = started + timedelta(minutes=10)  # 5 minutes before TTA's deadline
    await notify.sla_once(app)
    soon = await notices(app, company, "sla_due_soon")
    assert [(n["facts"]["step"], n["due_at"]) for n in soon] == [("TTA", started + timedelta(minutes=15))]
    assert await deliver(app) == 1
    [msg] = mailbox.to(to)
    assert msg["Subject"].startswith("[SOC high] SLA about to breach: TTA of incident INC-1")
    assert msg["From"] == "soc@mssp.example"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Step TTA due" in plain and "Notify" in plain
    assert "<h2>SLA about to breach" in html and "&#x27;Phishing INC-1&#x27;" in html  # values escaped

    clock.now = started + timedelta(minutes=15)  # exactly on the deadline: met if done now
    await notify.sla_once(app)
    assert await notices(app, company, "sla_breached") == []
    clock.now = started + timedelta(minutes=15, seconds=1)
    for _ in range(3):  # the next rounds write nothing again
        await notify.sla_once(app)
    breached = await notices(app, company, "sla_breached")
    assert [(n["facts"]["step"], n["dedup_key"].endswith(":INC-1:tta")) for n in breached] == [("TTA", True)]
    assert len(await notices(app, company, "sla_due_soon")) == 1
    assert await deliver(app) == 2  # e-mail and in-app
    assert len(mailbox.to(to)) == 2 and "SLA breached" in mailbox.to(to)[1]["Subject"]

    # In-app: the company's users see it unread, mark it read.
    user = headers(kind="tenant", company_id=company, roles=["TENANT_USER"])
    listed = (await client.get("/tenant/notifications/", headers=user)).json()
    assert (
        listed["unread"] == 1
        and listed["items"][0]["title"].startswith("SLA breached")
        and not listed["items"][0]["read"]
    )
    marked = (await client.post("/tenant/notifications/read/", headers=user, json={"all": True})).json()
    assert marked == {"marked": 1}
    assert (await client.get("/tenant/notifications/", headers=user)).json()["unread"] == 0
    # Another user of the company still has it unread; another company sees nothing.
    assert (
        await client.get(
            "/tenant/notifications/",
            headers=headers(kind="tenant", company_id=company, roles=["TENANT_USER"]),
        )
    ).json()["unread"] == 1
    other = await new_company(client, headers)
    assert (
        await client.get(
            "/tenant/notifications/", headers=headers(kind="tenant", company_id=other, roles=["TENANT_USER"])
        )
    ).json()["total"] == 0

    # A step done in time raises nothing; a closed incident neither.
    await incident(
        app,
        integration,
        account,
        "INC-2",
        started,
        tta_at=started + timedelta(minutes=2),
        ttn_at=started,
        ttdn_at=started,
    )
    await incident(app, integration, account, "INC-3", started, status=IncidentStatus.CLOSED)
    clock.now = started + timedelta(hours=5)
    await notify.sla_once(app)
    keys = {n["dedup_key"].split(":", 2)[2] for n in await notices(app, company)}
    assert not any(k.startswith(("INC-2", "INC-3")) for k in keys)
    assert {"INC-1:ttn", "INC-1:ttdn"} <= keys


# --- webhooks, Slack, Teams, failures ---------------------------------------------------------------
async def _offense_notice_setup(
    app, client, headers, channels: list[dict[str, Any]], company: str
) -> list[str]:
    admin = headers(kind="admin")
    ids = [
        (await post(client, "/admin/notifications/channels/", admin, {**c, "company_id": company}))["id"]
        for c in channels
    ]
    await post(
        client,
        "/admin/notifications/rules/",
        admin,
        {
            "name": "offenses",
            "trigger": "offense_created",
            "company_id": company,
            "min_offense_severity": 5,
            "channel_ids": ids,
        },
    )
    return ids


async def _offenses(app, company: str, n: int, severity: int = 7, start: int = 1) -> None:
    integration = str(uuid.uuid4())
    await map_qradar(app.state.db, company, integration, 4)
    batch = []
    for k in range(start, start + n):
        p = SiemOffense(
            offense_id=k,
            domain_id=4,
            description=f"Malware beacon {k} <!channel>",
            status="OPEN",
            severity=severity,
            magnitude=5,
            credibility=5,
            relevance=5,
            start_time=datetime.now(UTC),
            last_updated_time=datetime.now(UTC),
            version=1,
        )
        batch.append(
            type(
                "D",
                (),
                {"payload": p, "envelope": event("siem.offense.upserted", p, integration, str(k), version=1)},
            )()
        )
    await notify.triggers.handle_events(app.state.db, batch, app.state.notify_options.clock())


async def test_webhook_is_signed_and_slack_and_teams_get_their_formats(app, client, headers, receiver, clock):
    company = await new_company(client, headers)
    await _offense_notice_setup(
        app,
        client,
        headers,
        [
            {"name": "hook", "kind": "webhook", "url": f"{receiver.base}/signed", "secret": receiver.secret},
            {"name": "slack", "kind": "slack", "url": f"{receiver.base}/slack"},
            {"name": "teams", "kind": "teams", "url": f"{receiver.base}/teams"},
        ],
        company,
    )
    await _offenses(app, company, 1, severity=7)
    await _offenses(app, company, 1, severity=3, start=2)  # below the rule's severity
    clock.now = datetime.now(UTC)
    assert await deliver(app) == 3
    [hook] = receiver.on("signed")
    assert receiver.refused == 0
    assert (
        hook["body"]["notice"]["trigger"] == "offense_created"
        and hook["body"]["notice"]["facts"]["offense_id"] == 1
    )
    assert hook["headers"]["x-soc-delivery"] == str(hook["body"]["delivery_id"])
    [slack] = receiver.on("slack")
    assert (
        slack["body"]["text"].startswith("New offense 1") and slack["body"]["blocks"][0]["type"] == "header"
    )
    assert "&lt;!channel&gt;" in slack["body"]["blocks"][2]["text"]["text"]
    assert "<!channel>" not in json.dumps(slack["body"])
    [teams] = receiver.on("teams")
    card = teams["body"]["attachments"][0]
    assert (
        teams["body"]["type"] == "message"
        and card["contentType"] == "application/vnd.microsoft.card.adaptive"
    )
    assert card["content"]["type"] == "AdaptiveCard" and card["content"]["body"][0]["text"].startswith(
        "New offense 1"
    )
    # A replay with a timestamp older than the receiver's tolerance is refused by it.
    old = int(time.time()) - 600
    body = json.dumps(hook["body"]).encode()
    mac = hmac.new(receiver.secret.encode(), f"{old}.".encode() + body, hashlib.sha256).hexdigest()
    sig = f"t={old},v1={mac}"
    import httpx

    async with httpx.AsyncClient() as c:
        r = await c.post(f"{receiver.base}/signed", content=body, headers={"x-soc-signature": sig})
    assert r.status_code == 401
    from soc_tenant.notify.render import verify

    assert not verify(receiver.secret, sig, body, time.time())
    assert verify(
        receiver.secret,
        hook["headers"]["x-soc-signature"],
        json.dumps(hook["body"], separators=(",", ":")).encode(),
        time.time(),
    )


async def test_a_failing_endpoint_retries_with_backoff_is_parked_and_holds_up_nobody(
    app, client, headers, receiver, mailbox, clock
):
    admin = headers(kind="admin")
    app.state.notify_options.park_after = 3
    company = await new_company(client, headers)
    receiver.mode = {"down": "fail", "slow": "slow", "reject": "reject"}
    closed = f"http://127.0.0.1:{free_port()}/nothing"
    down, slow, reject, unreachable, mail, broken = await _offense_notice_setup(
        app,
        client,
        headers,
        [
            {"name": "down", "kind": "webhook", "url": f"{receiver.base}/down", "secret": "x" * 20},
            {"name": "slow", "kind": "webhook", "url": f"{receiver.base}/slow", "secret": "x" * 20},
            {"name": "reject", "kind": "webhook", "url": f"{receiver.base}/reject", "secret": "x" * 20},
            {"name": "unreachable", "kind": "webhook", "url": closed, "secret": "x" * 20},
            email_channel(mailbox, None),
            email_channel(mailbox, None, text_template="Step ${step}"),  # offenses have no step
        ],
        company,
    )
    to = (await client.get(f"/admin/notifications/channels/{mail}/", headers=admin)).json()["config"][
        "recipients"
    ][0]
    await _offenses(app, company, 1)
    clock.now = datetime.now(UTC)
    # The slow endpoint holds its own delivery only: the e-mail arrives while it still waits.
    run = asyncio.create_task(deliver(app))
    for _ in range(200):
        if mailbox.to(to):
            break
        await asyncio.sleep(0.05)
    assert mailbox.to(to), "the e-mail waited for the slow webhook"
    assert not run.done()
    receiver.release.set()
    assert await run == 6

    async def deliveries() -> dict[str, Any]:
        items = (
            await client.get(
                "/admin/notifications/deliveries/", headers=admin, params={"company_id": company}
            )
        ).json()["items"]
        return {d["channel_id"]: d for d in items}

    d = await deliveries()
    assert d[mail]["status"] == "sent" and d[slow]["status"] == "sent"
    assert d[reject]["status"] == "failed" and "400" in d[reject]["last_error"]  # permanent: no retry
    assert d[broken]["status"] == "failed" and "step" in d[broken]["last_error"]
    attempts = (
        await client.get(f"/admin/notifications/deliveries/{d[broken]['id']}/attempts/", headers=admin)
    ).json()["items"]
    assert [(a["outcome"], a["error_code"]) for a in attempts] == [("failed", "template_error")]
    for ch in (down, unreachable):
        assert d[ch]["status"] == "pending" and d[ch]["attempts"] == 1
        assert datetime.fromisoformat(d[ch]["next_attempt_at"]) >= clock.now + timedelta(
            seconds=20
        )  # backoff
    assert (
        await client.get(f"/admin/notifications/deliveries/{d[unreachable]['id']}/attempts/", headers=admin)
    ).json()["items"][0]["error_code"] == "unreachable"

    # Not due yet: nothing is sent. Later, two more failures in a row park the channel.
    assert await deliver(app) == 0
    for _ in range(2):
        clock.now += timedelta(hours=2)
        await deliver(app)
    parked = (
        await client.get(
            "/admin/notifications/channels/", headers=admin, params={"company_id": company, "parked": True}
        )
    ).json()["items"]
    assert {c["id"] for c in parked} == {down, unreachable}
    assert all(c["pending"] == 1 and "in a row" in c["park_reason"] for c in parked)
    # New notices still reach the healthy channels; the parked ones keep theirs waiting.
    await _offenses(app, company, 1, start=50)
    clock.now += timedelta(hours=2)
    await deliver(app)
    newest = (
        await client.get(
            "/admin/notifications/deliveries/", headers=admin, params={"company_id": company, "limit": 6}
        )
    ).json()["items"]
    assert {x["channel_id"]: x["status"] for x in newest} == {
        slow: "sent",
        reject: "failed",
        mail: "sent",
        broken: "failed",
        down: "pending",
        unreachable: "pending",
    }
    assert len(mailbox.to(to)) == 2
    # Resumed, the waiting deliveries go out.
    receiver.mode = {}
    r = await client.post(f"/admin/notifications/channels/{down}/resume/", headers=admin)
    assert r.status_code == 200 and r.json()["parked_at"] is None
    await deliver(app)
    assert len(receiver.on("down")) == 2
    d = await deliveries()
    # A failed delivery can be sent again.
    r = await client.post(f"/admin/notifications/deliveries/{d[reject]['id']}/retry/", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    await deliver(app)
    assert len(receiver.on("reject")) >= 1


async def test_egress_policy_applies_where_the_webhook_and_the_mail_relay_really_connect(
    app, client, headers, clock, mailbox
):
    company = await new_company(client, headers)

    async def resolver(host: str, port: int) -> list[str]:
        return ["10.1.2.3"] if host.endswith("customer.example") else ["127.0.0.1"]

    app.state.notify_options.egress = EgressPolicy(allow_loopback=False, resolver=resolver)
    app.state.notify_deliverer.http._transport.egress = app.state.notify_options.egress
    saved_egress = app.state.notify_deliverer.egress
    app.state.notify_deliverer.egress = app.state.notify_options.egress
    try:
        [hook, relay] = await _offense_notice_setup(
            app,
            client,
            headers,
            [
                {
                    "name": "internal",
                    "kind": "webhook",
                    "url": "http://hooks.customer.example/x",
                    "secret": "x" * 20,
                },
                email_channel(mailbox, None, smtp_host="mail.customer.example"),
            ],
            company,
        )
        r = await client.post(
            "/admin/notifications/channels/",
            headers=headers(kind="admin"),
            json={
                "company_id": company,
                "name": "lo",
                "kind": "webhook",
                "url": "http://localhost:8002/",
                "secret": "x" * 20,
            },
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "egress_denied"
        await _offenses(app, company, 1)
        clock.now = datetime.now(UTC)
        await deliver(app)
        items = (
            await client.get(
                "/admin/notifications/deliveries/", headers=headers(kind="admin"), params={"channel_id": hook}
            )
        ).json()["items"]
        assert items[0]["status"] == "failed" and "10.1.2.3" in items[0]["last_error"]
        items = (
            await client.get(
                "/admin/notifications/deliveries/",
                headers=headers(kind="admin"),
                params={"channel_id": relay},
            )
        ).json()["items"]
        assert items[0]["status"] == "failed" and "10.1.2.3" in items[0]["last_error"]
    finally:
        app.state.notify_deliverer.egress = saved_egress
        app.state.notify_deliverer.http._transport.egress = saved_egress


async def test_rate_limit_per_channel_defers_without_losing(app, client, headers, mailbox, clock):
    company = await new_company(client, headers)
    [mail] = await _offense_notice_setup(
        app, client, headers, [email_channel(mailbox, None, rate_per_minute=2)], company
    )
    await _offenses(app, company, 5)
    clock.now = datetime.now(UTC)
    assert await deliver(app) == 2
    assert await deliver(app) == 0
    clock.now += timedelta(seconds=61)
    assert await deliver(app) == 2
    clock.now += timedelta(seconds=61)
    assert await deliver(app) == 1
    items = (
        await client.get(
            "/admin/notifications/deliveries/", headers=headers(kind="admin"), params={"channel_id": mail}
        )
    ).json()["items"]
    assert [i["status"] for i in items] == ["sent"] * 5


# --- events from the real bus, the live socket ------------------------------------------------------
async def test_bus_events_raise_one_notice_per_condition_and_in_app_reaches_the_socket(
    app, client, headers, tokens, make_app, serve_app, clock
):
    from soc_shared.events import ItsmTicket, SiemEpsSample, SyncReported
    from soc_tenant.notify.options import NotifyOptions
    from soc_tenant.readmodel.testing import add_ti_integration, eventually, map_itsm
    from websockets.asyncio.client import connect

    admin = headers(kind="admin")
    company = await new_company(client, headers)
    db = app.state.db
    qradar, soar, itsm = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    await map_qradar(db, company, qradar, 7, volume=100)
    await map_soar(db, company, soar, "acme")
    await map_itsm(db, company, itsm, "acme-sdp")
    feed = await add_ti_integration(db, company)  # an integration the company owns
    inbox = await post(
        client,
        "/admin/notifications/channels/",
        admin,
        {"name": "in app", "kind": "in_app", "company_id": company},
    )
    rules = {
        "offense_created": {"min_offense_severity": 5},
        "incident_created": {"min_incident_severity": "high"},
        "ticket_created": {},
        "eps_exceeded": {},
        "integration_error": {"polls": 3},
        "integration_silent": {"polls": 2},
    }
    for trigger, extra in rules.items():
        await post(
            client,
            "/admin/notifications/rules/",
            admin,
            {
                "name": trigger,
                "trigger": trigger,
                "company_id": company,
                "channel_ids": [inbox["id"]],
                **extra,
            },
        )

    now = datetime.now(UTC)
    clock.now = now

    def offense(k: int, severity: int) -> Any:
        p = SiemOffense(
            offense_id=k,
            domain_id=7,
            description=f"Beacon {k}",
            status="OPEN",
            severity=severity,
            magnitude=5,
            credibility=5,
            relevance=5,
            start_time=now,
            last_updated_time=now,
            version=k,
        )
        return event("siem.offense.upserted", p, qradar, str(k), version=k)

    def incident_event(k: str, severity: IncidentSeverity) -> Any:
        p = SoarIncident(
            incident_id=k,
            account="acme",
            name=f"Incident {k}",
            status=IncidentStatus.ACTIVE,
            severity=severity,
            created=now,
            modified=now,
            version=1,
        )
        return event("soar.incident.upserted", p, soar, k, version=1)

    def report(k: int, outcome: str, failures: int, records: int = 0) -> Any:
        p = SyncReported(
            integration_id=feed,
            resource="alerts",
            outcome=outcome,
            started_at=now + timedelta(minutes=k),
            finished_at=now + timedelta(minutes=k, seconds=5),
            records=records,
            consecutive_failures=failures,
            error_category="auth" if outcome == "error" else None,
            error_message="401 from the vendor" if outcome == "error" else None,
        )
        return event("ingest.sync.reported", p, feed, f"{feed}:alerts:{k}", version=k)

    ticket = ItsmTicket(
        ticket_id="4711",
        account_id="acme-sdp",
        subject="Phishing at ACME",
        last_updated_time=now,
        created_time=now,
        soar_incident_id="INC-9",
        version=1,
    )
    eps = SiemEpsSample(
        domain_id=7,
        granularity="hour",
        window_start=now - timedelta(hours=1),
        window_end=now,
        average_eps=150.5,
        peak_eps=300,
    )
    events = [
        offense(1, 7),
        offense(1, 7),  # the same offense again (a redelivery, another version)
        offense(2, 2),  # below the rule's severity
        incident_event("INC-9", IncidentSeverity.CRITICAL),
        incident_event("INC-10", IncidentSeverity.LOW),
        event("itsm.ticket.upserted", ticket, itsm, "4711", version=1),
        event("siem.eps.sampled", eps, qradar, "7:hour", version=1),
        report(1, "error", 1),
        report(2, "error", 2),
        report(3, "error", 3),
        report(4, "error", 4),
        report(5, "ok", 0, records=0),
        report(6, "ok", 0, records=0),
        report(7, "ok", 0, records=0),
    ]
    consumer_app = make_app()
    consumer_app.state.notify_options = NotifyOptions(background_tasks=False, consumer=True, clock=clock)
    async with consumer_app.router.lifespan_context(consumer_app), serve_app(make_app()) as replica:
        user = tokens.token(kind="tenant", company_id=company, roles=["TENANT_USER"])
        async with connect(f"ws://{replica}/ws/chat/", subprotocols=["soc.v1", f"access_token.{user}"]) as ws:
            for e in events:
                await app.state.bus.publish([e])  # one by one: the sync reports in their order

            async def all_raised() -> list[Any]:
                found = await notices(app, company)
                return found if len(found) >= 6 else []

            raised = await eventually(all_raised, within=30)
            assert sorted(n["trigger"] for n in raised) == sorted(rules)
            by = {n["trigger"]: n for n in raised}
            assert by["offense_created"]["facts"]["offense_id"] == 1
            assert by["incident_created"]["facts"]["incident_id"] == "INC-9"
            assert (
                by["ticket_created"]["facts"]["ticket_id"] == "4711"
                and by["ticket_created"]["facts"]["incident_id"] == "INC-9"
            )
            assert (
                by["eps_exceeded"]["facts"]["eps"] == 150.5
                and by["eps_exceeded"]["facts"]["contracted_eps"] == 100
            )
            assert by["integration_error"]["facts"]["polls"] == 3  # raised on the third failure, once
            assert by["integration_silent"]["facts"]["polls"] == 2
            # A second error run after a success is a new condition.
            await app.state.bus.publish(
                [report(8, "error", 1), report(9, "error", 2), report(10, "error", 3)]
            )

            async def second_run() -> list[Any]:
                return [n for n in await notices(app, company, "integration_error")][1:]

            await eventually(second_run, within=30)
            assert len(await notices(app, company)) == 7

            await deliver(app)
            pushed = []
            async with asyncio.timeout(15):
                while len(pushed) < 7:
                    data = json.loads(await ws.recv())
                    if data["type"] == "notification" and data.get("event") == "notification.posted":
                        pushed.append(data)
            assert {p["trigger"] for p in pushed} == set(rules)
            assert all(p["company_id"] == company for p in pushed)


# --- isolation, through the gateway -----------------------------------------------------------------
async def test_a_company_sees_and_changes_only_its_own_notifications_through_the_gateway(
    app, client, headers, tokens, serve_app, mailbox
):
    import httpx
    from soc_gateway.config import Settings as GatewaySettings
    from soc_gateway.main import create_app as create_gateway

    jwks = FastAPI()

    @jwks.get("/.well-known/jwks.json")
    async def keys() -> dict[str, Any]:
        return tokens.jwks

    admin = headers(kind="admin")
    a, b = await new_company(client, headers), await new_company(client, headers)
    mine = await post(client, "/admin/notifications/channels/", admin, email_channel(mailbox, a))
    theirs = await post(client, "/admin/notifications/channels/", admin, email_channel(mailbox, b))
    their_rule = await post(
        client,
        "/admin/notifications/rules/",
        admin,
        {"name": "b", "trigger": "sla_breached", "company_id": b, "channel_ids": [theirs["id"]]},
    )
    staff = await post(client, "/admin/notifications/channels/", admin, {"name": "staff", "kind": "in_app"})
    closed = f"http://127.0.0.1:{free_port()}"
    async with serve_app(jwks) as auth:
        settings = GatewaySettings(
            upstreams={
                "auth": f"http://{auth}",
                "tenant": "http://tenant.test",
                "siem-ingest": closed,
                "soar-ingest": closed,
                "itsm-ingest": closed,
                "threatintel": closed,
            },
            auth_url=f"http://{auth}",
            environment="test",
            revocation_poll_seconds=0,
            openapi_refresh_seconds=3600,
            console_dir=None,
        )
        gateway = create_gateway(settings, transport_overrides={"tenant": httpx.ASGITransport(app=app)})
        async with (
            gateway.router.lifespan_context(gateway),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw.test") as gw,
        ):
            ta = headers(kind="tenant", company_id=a, roles=["TENANT_ADMIN"])
            tu = headers(kind="tenant", company_id=a, roles=["TENANT_USER"])
            listed = (await gw.get("/admin/notifications/channels/", headers=ta)).json()
            assert [c["id"] for c in listed["items"]] == [mine["id"]]
            r = await gw.get("/admin/notifications/channels/", headers=ta, params={"company_id": b})
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            missing = str(uuid.uuid4())
            for method, path in (
                ("GET", f"/admin/notifications/channels/{theirs['id']}/"),
                ("PUT", f"/admin/notifications/channels/{theirs['id']}/"),
                ("DELETE", f"/admin/notifications/channels/{theirs['id']}/"),
                ("POST", f"/admin/notifications/channels/{theirs['id']}/resume/"),
                ("GET", f"/admin/notifications/rules/{their_rule['id']}/"),
                ("DELETE", f"/admin/notifications/rules/{their_rule['id']}/"),
                ("GET", f"/admin/notifications/channels/{staff['id']}/"),
            ):
                body = email_channel(mailbox, None) if method == "PUT" else None
                on_b = await gw.request(method, path, headers=ta, json=body)
                on_none = await gw.request(
                    method,
                    path.replace(theirs["id"], missing)
                    .replace(their_rule["id"], missing)
                    .replace(staff["id"], missing),
                    headers=ta,
                    json=body,
                )
                assert on_b.status_code == on_none.status_code == 404, (method, path, on_b.text)
            # Creating for another company, or for the staff, is refused; for its own, it works.
            r = await gw.post("/admin/notifications/channels/", headers=ta, json=email_channel(mailbox, b))
            assert r.status_code == 404
            r = await gw.post(
                "/admin/notifications/rules/",
                headers=ta,
                json={"name": "x", "trigger": "sla_breached", "company_id": a, "channel_ids": [theirs["id"]]},
            )
            assert r.status_code == 422
            r = await gw.post(
                "/admin/notifications/rules/",
                headers=ta,
                json={"name": "x", "trigger": "sla_breached", "channel_ids": [mine["id"]]},
            )
            assert r.status_code == 201 and r.json()["company_id"] == a
            # A tenant user manages nothing; reads its in-app list only.
            assert (await gw.get("/admin/notifications/channels/", headers=tu)).status_code == 403
            assert (
                await gw.post("/admin/notifications/channels/", headers=tu, json=email_channel(mailbox, a))
            ).status_code == 403
            assert (await gw.get("/tenant/notifications/", headers=tu)).status_code == 200
            assert (
                await gw.get("/tenant/notifications/", headers=tu, params={"company_id": b})
            ).status_code == 404
            assert (
                await gw.get("/admin/notifications/deliveries/", headers=ta, params={"company_id": b})
            ).status_code == 404
            # Without a token the gateway answers before the service.
            assert (await gw.get("/admin/notifications/channels/")).status_code == 401
            # The admin sees both companies' channels and the staff's.
            every = (
                await gw.get("/admin/notifications/channels/", headers=admin, params={"limit": 500})
            ).json()["items"]
            assert {mine["id"], theirs["id"], staff["id"]} <= {c["id"] for c in every}


async def test_old_finished_notices_are_purged_and_pending_ones_kept(app, client, headers, mailbox, clock):
    company = await new_company(client, headers)
    [mail] = await _offense_notice_setup(app, client, headers, [email_channel(mailbox, None)], company)
    clock.now = datetime.now(UTC) - timedelta(days=400)
    await _offenses(app, company, 2)
    clock.now = datetime.now(UTC)
    async with app.state.db.session() as s:
        old = [
            r.id
            for r in await s.execute(
                sa.text("SELECT id FROM notify_notice WHERE company_id = :c ORDER BY id"), {"c": company}
            )
        ]
        # one delivered, one still waiting (a parked channel, say)
        await s.execute(
            sa.text("UPDATE notify_delivery SET status = 'sent' WHERE notice_id = :n"), {"n": old[0]}
        )
    await _offenses(app, company, 1, start=10)  # a recent one
    assert await notify.purge_once(app) >= 1
    async with app.state.db.session() as s:
        left = [
            r.id
            for r in await s.execute(
                sa.text("SELECT id FROM notify_notice WHERE company_id = :c ORDER BY id"), {"c": company}
            )
        ]
        attempts_gone = (
            await s.execute(
                sa.text("SELECT count(*) FROM notify_delivery WHERE notice_id = :n"), {"n": old[0]}
            )
        ).scalar_one()
    assert old[0] not in left and old[1] in left and len(left) == 2
    assert attempts_gone == 0
    assert mail


async def test_a_replica_watches_the_sla_and_delivers_by_itself(
    app, client, headers, mailbox, make_app, serve_app
):
    """The background loops of a replica (not driven by the test): the SLA watch raises the notice
    of a breach, wakes the delivery loop, which sends it; both stop with the replica."""
    admin = headers(kind="admin")
    company = await new_company(client, headers)
    integration, account = str(uuid.uuid4()), f"acct-{uuid.uuid4().hex[:6]}"
    await map_soar(app.state.db, company, integration, account)
    await set_company_sla(app.state.db, company, "P1", 15, 30, 240)
    mail = await post(client, "/admin/notifications/channels/", admin, email_channel(mailbox, company))
    await post(
        client,
        "/admin/notifications/rules/",
        admin,
        {"name": "late", "trigger": "sla_breached", "company_id": company, "channel_ids": [mail["id"]]},
    )
    await incident(app, integration, account, "INC-LOOP", datetime.now(UTC) - timedelta(minutes=20))
    to = mail["config"]["recipients"][0]
    replica = make_app()
    # the delivery loop's own round is slow: only the watch's wake-up makes the mail go quickly
    replica.state.notify_options = NotifyOptions(
        consumer=False, sla_watch_seconds=0.2, deliver_idle_seconds=3600
    )
    async with serve_app(replica):
        for _ in range(200):  # up to 20 s on a loaded machine
            if mailbox.to(to):
                break
            await asyncio.sleep(0.1)
        assert [m["Subject"] for m in mailbox.to(to)] and len(mailbox.to(to)) == 1
        loops = replica.state.notify_loops
        assert [loop.name for loop in loops] == ["tenant-notify-delivery", "tenant-notify-sla"]
    assert all(loop._task is None for loop in loops)  # stopped with the replica
    assert len(mailbox.to(to)) == 1  # once per incident and step
