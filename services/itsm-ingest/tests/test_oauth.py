"""ServiceDesk Plus Cloud over Zoho OAuth against the simulated accounts server and SDP: access
tokens that expire after an hour, one token shared by every replica (sealed in the database),
renewal ahead of expiry and on a 401, and a revoked refresh token as a credential error on the
integration's sync health — never a lost record, a skipped cursor or a hot loop."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import sqlalchemy as sa
from soc_itsm_ingest.oauth import ZohoCredentials, ZohoTokens, accounts_url_for, oauth_token_table
from soc_shared.crypto import Sealer
from soc_simulators import sdp as sdp_sim
from soc_simulators import zoho as zoho_sim

SIM = {"accounts_url": "http://sdp.sim"}  # the simulator is its own Zoho accounts server


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counting(httpx.AsyncBaseTransport):
    """The simulator, counting what SDP refused with 401 and how often Zoho was asked."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.refused = 0
        self.grants = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/oauth/v2/token":
            self.grants += 1
        elif response.status_code == 401:
            self.refused += 1
        return response


def cloud_harness(harness: Any, clock: Clock | None = None, **zoho: Any) -> Any:
    """The harness with a cloud SDP whose Zoho accounts server runs on ``clock``."""
    accounts = zoho_sim.ZohoAccounts(clock=clock or Clock(), **zoho)
    harness.sim = sdp_sim.create_app(seed=21, requests=120, xsoar_incidents=100, zoho=accounts)
    harness.default_credentials = harness_credentials()
    return accounts


def harness_credentials(**secrets: str) -> dict[str, Any]:
    base = {
        "client_id": zoho_sim.CLIENT_ID,
        "client_secret": zoho_sim.CLIENT_SECRET,
        "refresh_token": zoho_sim.REFRESH_TOKEN,
    }
    return {"credential_kind": "OAUTH_CLIENT", "secrets": {**base, **secrets}, "ca_pem": None}


def shared_tokens(harness: Any, clock: Clock) -> ZohoTokens:
    sealer = Sealer.from_env_value(harness.settings.sealing_keys.get_secret_value())
    return ZohoTokens(harness.db, sealer, renew_ahead_seconds=300, clock=clock)


async def test_replicas_share_one_sealed_token_and_refresh_once(harness: Any, tap: Any) -> None:
    clock = Clock()
    accounts = cloud_harness(harness, clock)
    transport = Counting(harness.sim)
    replicas = [
        harness.ingestor(
            ["accounts", "tickets"], transport=transport, oauth_tokens=shared_tokens(harness, clock)
        )
        for _ in range(3)
    ]
    integrations = [await harness.add_integration(replicas[0], settings=SIM) for _ in range(2)]
    for integration in integrations:
        await replicas[0].trigger(integration)
    # three replicas (each with its own process cache) run the four (integration, resource) pairs
    # at once: two runs of one integration in two replicas need one token between them
    while any(await asyncio.gather(*(r.run_due_once() for r in replicas))):
        pass
    states = [s for i in integrations for s in await replicas[0].states(i)]
    assert len(states) == 4 and all(s["last_error"] is None for s in states), states
    assert transport.grants == 2 and transport.refused == 0  # one token per integration
    # a replica started later finds the token in the database
    late = harness.ingestor(["tickets"], transport=transport, oauth_tokens=shared_tokens(harness, clock))
    harness.state.tick()
    await harness.sync(late, integrations[0])
    assert transport.grants == 2 and transport.refused == 0
    assert sum(g.total for g in accounts.grants.values()) == 2

    async with harness.db.session() as session:
        rows = (
            (
                await session.execute(
                    sa.select(oauth_token_table).where(oauth_token_table.c.integration_id.in_(integrations))
                )
            )
            .mappings()
            .all()
        )
    assert len(rows) == 2
    sealer = Sealer.from_env_value(harness.settings.sealing_keys.get_secret_value())
    for row in rows:
        token = sealer.open(row["access_token"], f"zoho-oauth:{row['integration_id']}").decode()
        assert token in accounts.access and row["access_token"] != token and token not in row["access_token"]
        assert row["expires_at"].timestamp() == clock.now + 3600


async def test_a_token_is_renewed_ahead_of_expiry_and_on_a_401(harness: Any, tap: Any) -> None:
    clock = Clock()
    accounts = cloud_harness(harness, clock)
    transport = Counting(harness.sim)
    tokens = shared_tokens(harness, clock)
    ingestor = harness.ingestor(["tickets"], transport=transport, oauth_tokens=tokens)
    integration = await harness.add_integration(ingestor, settings=SIM)
    await harness.sync(ingestor, integration)
    assert (transport.grants, transport.refused) == (1, 0)

    clock.now += 3400  # 200 s left: inside the renewal margin, renewed before SDP would refuse it
    [state] = await harness.sync(ingestor, integration)
    assert state["last_error"] is None and (transport.grants, transport.refused) == (2, 0)

    accounts.expire_all()  # Zoho ends the token early (or our clock is off): SDP answers 401
    harness.state.tick()
    [state] = await harness.sync(ingestor, integration)
    assert state["last_error"] is None
    assert transport.refused == 1 and transport.grants == 3  # renewed once, the request repeated
    await tap.settle()
    assert tap.of(integration, "itsm.ticket.upserted")


async def test_a_revoked_refresh_token_is_a_credential_error_without_loss_or_hot_loop(
    harness: Any, tap: Any
) -> None:
    clock = Clock()
    accounts = cloud_harness(harness, clock)
    transport = Counting(harness.sim)
    ingestor = harness.ingestor(["tickets"], transport=transport, oauth_tokens=shared_tokens(harness, clock))
    integration = await harness.add_integration(ingestor, settings=SIM)
    [state] = await harness.sync(ingestor, integration)
    cursor = state["cursor"]
    assert state["last_error"] is None and cursor

    accounts.revoke(zoho_sim.REFRESH_TOKEN)  # the customer revoked the app's grant
    harness.state.tick()
    grants = transport.grants
    [state] = await harness.sync(ingestor, integration)
    assert state["last_error_category"] == "bad_credentials"
    assert "refresh token" in state["last_error"] and "invalid_code" in state["last_error"]
    assert state["cursor"] == cursor and state["consecutive_failures"] == 1
    assert state["next_run_at"] > state["last_started_at"]  # backs off: not retried in a loop
    # the run asked SDP (401, the token died with its grant), renewed once at Zoho, and stopped
    assert transport.refused == 1 and transport.grants == grants + 1
    await tap.settle()
    reports = [
        e.data
        for e in tap.events
        if e.type == "soc.ingest.sync.reported.v1" and e.data["integration_id"] == integration
    ]
    assert reports[-1]["error_category"] == "bad_credentials"

    # new credentials entered: the old token is not reused, and the sync carries on from its cursor
    accounts.grants["1000.re-issued"] = zoho_sim._Grant(zoho_sim.CLIENT_ID)
    harness.default_credentials = harness_credentials(refresh_token="1000.re-issued")
    [state] = await harness.sync(ingestor, integration)
    assert state["last_error"] is None and state["consecutive_failures"] == 0
    assert state["cursor"]["last_updated_time"] >= cursor["last_updated_time"]


async def test_zoho_throttling_and_a_wrong_client_are_categorised(harness: Any) -> None:
    clock = Clock()
    cloud_harness(harness, clock, max_refreshes=1)
    credentials = ZohoCredentials(
        zoho_sim.CLIENT_ID, zoho_sim.CLIENT_SECRET, zoho_sim.REFRESH_TOKEN, "http://sdp.sim"
    )
    options = {"transport": httpx.ASGITransport(app=harness.sim)}
    tokens = ZohoTokens(clock=clock)
    first = await tokens.access_token("i1", credentials, http_options=options)
    try:
        await tokens.access_token("i1", credentials, http_options=options, rejected=first)
    except Exception as exc:  # noqa: BLE001 - asserted below
        throttled = exc
    assert getattr(throttled, "category", None) == "rate_limited"
    wrong = ZohoCredentials(zoho_sim.CLIENT_ID, "nope", zoho_sim.REFRESH_TOKEN, "http://sdp.sim")
    try:
        await ZohoTokens(clock=clock).access_token("i2", wrong, http_options=options)
    except Exception as exc:  # noqa: BLE001 - asserted below
        refused = exc
    assert getattr(refused, "category", None) == "bad_credentials"
    assert getattr(refused, "vendor_code", None) == "invalid_client"


def test_the_accounts_server_follows_the_data_centre() -> None:
    assert accounts_url_for("https://sdpondemand.manageengine.com/app/itdesk") == "https://accounts.zoho.com"
    assert accounts_url_for("https://sdpondemand.manageengine.eu") == "https://accounts.zoho.eu"
    assert accounts_url_for("https://sdpondemand.manageengine.in") == "https://accounts.zoho.in"
    assert accounts_url_for("https://servicedeskplus.net.au") == "https://accounts.zoho.com.au"
    assert accounts_url_for("https://servicedeskplus.cn") == "https://accounts.zoho.com.cn"
    assert accounts_url_for("https://x.example", "https://accounts.zoho.eu/") == "https://accounts.zoho.eu"


def test_recorded_token_refresh_answer_is_what_the_client_reads(kit: Any) -> None:
    recorded = kit.sample("zoho_oauth_v2_token_refresh.json")
    assert isinstance(recorded["access_token"], str) and recorded["expires_in"] == 3600
    assert recorded["token_type"] == "Bearer"
