"""Simulator → threatintel → RabbitMQ: every resource with the owning company, incremental alerts
across ticks, faults, exhausted retries, publish failures, refused signatures and two replicas,
counted on a queue bound to soc.events."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from soc_shared.bus import Bus, PublishError
from soc_simulators import cyware as cyware_sim
from soc_simulators.faults import Fault
from soc_threatintel.resources import RESOURCES

ALERTS = "ti.alert.upserted"


def detail_requests(harness: Any) -> Counter[str]:
    """get_alert_detail requests the simulator served, by short id."""
    return Counter(
        {
            path.rstrip("/").rsplit("/", 1)[1]: n
            for path, n in harness.board.requests.items()
            if "/get_alert_detail/" in path
        }
    )


def listed(tenant: Any) -> list[str]:
    return [k[2] for k in tenant.keys]


async def test_full_sync_publishes_every_resource_for_the_owning_company(harness: Any, tap: Any) -> None:
    ingestor = harness.ingestor()
    acme = await harness.add_integration(ingestor, company_id="company-acme")
    states_acme = await harness.sync(ingestor, acme)
    globex = await harness.add_integration(
        ingestor, tenant=("globex-access", "globex-secret"), company_id="company-globex"
    )
    for states in (states_acme, await harness.sync(ingestor, globex)):
        assert {s["resource"] for s in states} == {r.name for r in RESOURCES}
        assert all(s["last_error"] is None and s["last_success_at"] is not None for s in states), states
    await tap.settle()

    for integration, access_id, company in (
        (acme, "acme-access", "company-acme"),
        (globex, "globex-access", "company-globex"),
    ):
        tenant = harness.tenant(access_id)
        events = tap.of(integration)
        count = Counter(e.type.removeprefix("soc.").removesuffix(".v1") for e in events)
        assert count["ti.tag.upserted"] == len(tenant.tags) == 16
        assert count["ti.group.upserted"] == len(tenant.groups) == 5
        assert count["ti.category.upserted"] == len(tenant.categories) == 5
        assert count["ti.custom_field.upserted"] == sum(len(g["values"]) for g in tenant.additional_fields)
        # every ti event carries the integration's company
        assert {e.data["company_id"] for e in events if e.type.startswith("soc.ti.")} == {company}
        assert {e.source for e in events if e.type.startswith("soc.ti.")} == {
            f"/threatintel/cyware/{integration}"
        }
        # alerts: each listed alert once from `alerts`; `alert_updates` adds the recent ones once more,
        # as the very same events (same ids)
        alert_events = tap.of(integration, ALERTS)
        by_id = {e.id: e for e in alert_events}
        assert {e.data["short_id"] for e in by_id.values()} == set(listed(tenant))
        assert len(by_id) == len(tenant.alerts) == 120
        copies = Counter(e.id for e in alert_events)
        recent = {k[2] for k in tenant.keys if k[0] >= time.time() - 24 * 3600}
        assert {by_id[i].data["short_id"] for i, n in copies.items() if n == 2} == recent
        assert max(copies.values()) <= 2

    # the normalised alert is the simulator's detail, field for field
    tenant = harness.tenant("acme-access")
    for event in tap.of(acme, ALERTS)[:25]:
        detail = harness.state.detail(tenant, tenant.alerts[event.data["short_id"]])
        data = event.data
        assert event.subject == detail["short_id"] and data["title"] == detail["title"]
        assert data["version"] == detail["published_time"] and data["tlp"] == detail["tlp"]
        assert data["content"] == detail["content"] and data["tracking_id"] == detail["tracking_id"]
        assert (data["push_required"], data["push_email_notification"]) == (
            detail["push_required"],
            detail["push_email_notification"],
        )
        assert (data["card_image"], data["card_info"], data["event"], data["intel_id"], data["rfi_id"]) == (
            detail["card_image"],
            detail["card_info"],
            detail["event"],
            detail["intel_id"],
            detail["rfi_id"],
        )
        assert data["groups"] == [
            {"id": g["group_id"], "name": g["group_name"]} for g in detail["card_group"]
        ]
        assert data["recipient_groups"] == [
            {"id": g["group_id"], "name": g["group_name"]} for g in detail["recipient_groups"]
        ]
        assert data["tags"] == [{"id": t["tag_id"], "name": t["tag_name"]} for t in detail["card_tag"]]
        assert data["category"] == {
            "id": detail["card_category"]["category_id"],
            "name": detail["card_category"]["category_name"],
        }
    fields = tap.of(acme, "ti.custom_field.upserted")
    assert sum(e.data["is_system"] for e in fields) == 9 and all(
        e.data["is_system"] == (e.data["field_name"] in {f[0] for f in cyware_sim.SYSTEM_FIELDS})
        for e in fields
    )
    advisory = next(
        e.data
        for e in tap.of(acme, "ti.category.upserted")
        if e.data["category_name"] == "Vulnerability Advisory"
    )
    assert advisory["threat_indicator_fields"] == ["ioc_ip"] and advisory["required_fields"] == [
        "cve_id",
        "severity",
    ]
    assert advisory["additional_fields"][:3] == ["cve_id", "affected_products", "severity"]
    assert not set(tap.alerts(acme)) & set(tap.alerts(globex)), "each integration sees only its own tenant"

    # nothing new: a second run of `alerts` publishes nothing and reads no detail again
    before, details_before = len(tap.alerts(acme)), sum(detail_requests(harness).values())
    await harness.sync(ingestor, acme, "alerts")
    await tap.settle()
    assert len(tap.alerts(acme)) == before and sum(detail_requests(harness).values()) == details_before


async def test_incremental_sync_sees_every_alert_exactly_once_across_ticks(harness: Any, tap: Any) -> None:
    tenant = harness.tenant()
    ingestor = harness.ingestor(["alerts"])
    integration = await harness.add_integration(ingestor, settings={"page_size": 40})
    await harness.sync(ingestor, integration)
    published_per_tick: list[int] = []
    async with harness.control() as control:
        for steps in (1, 3, 10, 2):
            before = len(tenant.alerts)
            assert (await control.post("/_sim/tick", params={"steps": steps})).status_code == 200
            published_per_tick.append(len(tenant.alerts) - before)
            # a crowded second too: more alerts published at the newest second than fit in a page
            if steps == 10:
                newest = tenant.keys[-1][0]
                for _ in range(45):
                    harness.state.publish(tenant, published=newest)
            await harness.sync(ingestor, integration)
    await tap.settle()
    seen = tap.alerts(integration)
    assert all(n > 0 for n in published_per_tick)
    assert len(seen) == len(set(seen)) == len(tenant.alerts)
    assert seen == listed(tenant), "handed out in the vendor's order"
    # every alert's detail was read exactly once by this integration
    state = await harness.state_of(ingestor, integration, "alerts")
    last_second = tenant.keys[-1][0]
    assert state["cursor"] == {
        "published_time": last_second,
        "short_ids": [k[2] for k in tenant.keys if k[0] == last_second],
    }
    assert state["total_records"] == len(tenant.alerts)


async def test_each_alert_detail_is_read_once_per_integration(harness: Any, tap: Any) -> None:
    tenant = harness.tenant("initech-access")
    ingestor = harness.ingestor(["alerts"])
    integration = await harness.add_integration(
        ingestor,
        tenant=("initech-access", "initech-secret"),
        settings={"page_size": 33},
        company_id="company-initech",
    )
    before = detail_requests(harness)
    async with harness.control() as control:
        for _ in range(3):
            await harness.sync(ingestor, integration)
            await control.post("/_sim/tick", params={"steps": 4})
        await harness.sync(ingestor, integration)
    fetched = detail_requests(harness) - before
    assert set(fetched) == set(tenant.alerts) and set(fetched.values()) == {1}


async def test_every_fault_is_retried_and_nothing_is_lost(harness: Any, tap: Any) -> None:
    tenant = harness.tenant()
    board = harness.board
    ingestor = harness.ingestor(["alerts", "tags"])
    integration = await harness.add_integration(ingestor, settings={"page_size": 25})
    faults = [
        Fault(kind="shift_page", count=3),
        Fault(kind="429", count=2, retry_after=0),
        Fault(kind="500", count=2),
        Fault(kind="502", count=1),
        Fault(kind="503", count=2, retry_after=0),
        Fault(kind="truncate", count=2),
        Fault(kind="garbage", count=2),
        Fault(kind="hang", count=1, hang_seconds=0.2),
    ]
    async with harness.control() as control:
        for i, fault in enumerate(faults):
            # the first round pages all alerts; later rounds read what a tick published
            if i:
                await control.post("/_sim/tick", params={"steps": 3})
            path = "/list_alert/" if fault.kind == "shift_page" or i % 2 == 0 else "/get_alert_detail/"
            board.arm(fault.model_copy(update={"path": path}))
            states = await harness.sync(ingestor, integration)
            assert all(s["last_error"] is None for s in states), (fault.kind, states)
            assert not board.armed(), fault.kind
    await tap.settle()
    seen = tap.alerts(integration)
    assert len(seen) == len(set(seen)) == len(tenant.alerts)
    assert board.fired["shift_page"] == 3  # each fault kind really fired
    assert {k: board.fired[k] for k in ("429", "500", "503", "truncate", "garbage")} == dict.fromkeys(
        ("429", "500", "503", "truncate", "garbage"), 2
    )


async def test_a_hanging_vendor_times_out_and_is_retried_over_real_sockets(
    harness: Any, tap: Any, socket_sim: Any
) -> None:
    app, url = socket_sim
    ingestor = harness.ingestor(["alerts"], network=True, timeout=httpx.Timeout(0.5, connect=1.0))
    integration = await harness.add_integration(ingestor, base_url=url, settings={"page_size": 15})
    app.state.faults.arm(Fault(kind="hang", count=2, hang_seconds=2, path="/get_alert_detail/"))
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error"] is None and app.state.faults.fired["hang"] == 2
    seen = tap.alerts(integration)
    assert len(seen) == len(set(seen)) == len(app.state.sim.tenants["acme-access"].alerts)


class ArmAfter(httpx.AsyncBaseTransport):
    """Passes requests to the simulator and arms a fault once ``after`` alert list pages went through."""

    def __init__(self, inner: httpx.AsyncBaseTransport, board: Any, fault: Fault, after: int) -> None:
        self.inner, self.board, self.fault, self.after = inner, board, fault, after
        self.pages = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/list_alert/"):
            self.pages += 1
            if self.pages == self.after + 1:
                self.board.arm(self.fault)
        return await self.inner.handle_async_request(request)


async def test_exhausted_retries_keep_the_cursor_on_the_last_confirmed_page(harness: Any, tap: Any) -> None:
    tenant = harness.tenant()
    board = harness.board
    transport = ArmAfter(
        harness.transport(), board, Fault(kind="500", count=20, path="/list_alert/"), after=3
    )
    ingestor = harness.ingestor(["alerts"], transport=transport)
    integration = await harness.add_integration(ingestor, settings={"page_size": 25})
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error_category"] == "server_error" and state["consecutive_failures"] == 1
    published = tap.alerts(integration)
    order = listed(tenant)
    # three list pages (the 2nd and 3rd re-read their boundary second), then the retries ran out
    assert 3 * 25 - 4 <= len(published) <= 3 * 25 and published == order[: len(published)]
    last_second = tenant.alerts[published[-1]]["published_time"]
    assert state["cursor"] == {
        "published_time": last_second,
        "short_ids": [i for i in published if tenant.alerts[i]["published_time"] == last_second],
    }
    assert state["total_records"] == len(published)
    board.clear()
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    seen = tap.alerts(integration)
    assert state["last_error"] is None and state["consecutive_failures"] == 0
    assert len(seen) == len(set(seen)) == len(tenant.alerts)


async def test_a_failing_detail_keeps_the_cursor_before_its_page(harness: Any, tap: Any) -> None:
    tenant = harness.tenant()
    ingestor = harness.ingestor(["alerts"])
    integration = await harness.add_integration(ingestor, settings={"page_size": 25})
    victim = listed(tenant)[60]  # on the third page
    harness.board.arm(Fault(kind="503", count=50, retry_after=0, path=f"/get_alert_detail/{victim}/"))
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error_category"] == "server_error"
    published, order = tap.alerts(integration), listed(tenant)
    # the pages before the victim's are confirmed, the victim's page is not
    assert published == order[: len(published)] and 0 < order.index(victim) - len(published) < 25
    assert state["total_records"] == len(published) >= 45
    harness.board.clear()
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    seen = tap.alerts(integration)
    assert state["last_error"] is None and len(seen) == len(set(seen)) == len(tenant.alerts)


class NackingBus(Bus):
    """A real bus whose alert publishes fail (as a broker nack would) while ``failing`` is set."""

    failing = False
    calls = 0

    async def publish(self, events: Any, *, exchange: str | None = None) -> None:
        if any(e.type == "soc.ti.alert.upserted.v1" for e in events):
            self.calls += 1
            if self.failing and self.calls > 1:
                raise PublishError(f"0 of {len(events)} events confirmed (broker nack)")
        await super().publish(events, exchange=exchange)


async def test_publish_failure_does_not_advance_the_cursor(harness: Any, tap: Any) -> None:
    tenant = harness.tenant()
    bus = NackingBus(harness.settings.amqp_url.get_secret_value(), service="threatintel-tests-nack")
    bus.failing = True
    try:
        ingestor = harness.ingestor(["alerts"], bus=bus)
        integration = await harness.add_integration(ingestor, settings={"page_size": 50})
        [state] = await harness.sync(ingestor, integration)
        await tap.settle()
        assert state["last_error_category"] == "bus"
        order = listed(tenant)
        assert tap.alerts(integration) == order[:50]
        second = tenant.alerts[order[49]]["published_time"]
        assert state["cursor"] == {
            "published_time": second,
            "short_ids": [i for i in order[:50] if tenant.alerts[i]["published_time"] == second],
        }
        bus.failing = False
        [state] = await harness.sync(ingestor, integration)
        await tap.settle()
        seen = tap.alerts(integration)
        assert state["last_error"] is None and len(seen) == len(set(seen)) == len(tenant.alerts)
    finally:
        await bus.close()


async def test_refused_signatures_are_recorded_and_reported_with_their_category(
    harness: Any, tap: Any
) -> None:
    # a wrong secret key: bad_credentials on every resource, nothing published
    ingestor = harness.ingestor(["alerts", "tags"])
    integration = await harness.add_integration(ingestor, tenant=("acme-access", "wrong-secret"))
    states = await harness.sync(ingestor, integration)
    assert {(s["last_error_category"], s["consecutive_failures"], s["cursor"]) for s in states} == {
        ("bad_credentials", 1, None)
    }
    assert all("secret key does not belong to this access id" in s["last_error"] for s in states)
    # a host clock an hour slow: clock, and the message says whose time is what
    skewed = harness.ingestor(["alerts", "tags"], clock=lambda: time.time() - 3600)
    late = await harness.add_integration(skewed)
    states = await harness.sync(skewed, late)
    assert {s["last_error_category"] for s in states} == {"clock"}
    assert all(
        "the Cyware server time is" in s["last_error"] and "behind the server" in s["last_error"]
        for s in states
    )
    await tap.settle()
    assert not tap.of(integration, ALERTS) and not tap.of(late, ALERTS)
    reports = [
        e.data
        for e in tap.events
        if e.type == "soc.ingest.sync.reported.v1" and e.data["integration_id"] in (integration, late)
    ]
    assert {(r["integration_id"], r["resource"], r["outcome"], r["error_category"]) for r in reports} == {
        (integration, "alerts", "error", "bad_credentials"),
        (integration, "tags", "error", "bad_credentials"),
        (late, "alerts", "error", "clock"),
        (late, "tags", "error", "clock"),
    }
    # the right secret: the next run works
    harness.credentials[integration] = harness.credentials[late]
    states = await harness.sync(ingestor, integration)
    assert all(s["last_error"] is None and s["consecutive_failures"] == 0 for s in states)


async def test_invalid_integration_settings_are_recorded_as_invalid_request(harness: Any) -> None:
    ingestor = harness.ingestor(["alerts"])
    integration = await harness.add_integration(ingestor, settings={"page_size": 5000})
    [state] = await harness.sync(ingestor, integration)
    assert state["last_error_category"] == "invalid_request" and "page_size" in state["last_error"]


async def test_alert_updates_republishes_only_changed_alerts(harness: Any, tap: Any) -> None:
    tenant = harness.tenant("globex-access")
    ingestor = harness.ingestor(["alert_updates"])
    integration = await harness.add_integration(
        ingestor,
        tenant=("globex-access", "globex-secret"),
        company_id="company-globex",
        settings={"page_size": 4},
    )
    async with harness.control() as control:
        await control.post("/_sim/tick", params={"steps": 5})
    recent = {k[2] for k in tenant.keys if k[0] >= time.time() - 24 * 3600}
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error"] is None and set(tap.alerts(integration)) == recent
    first = {e.data["short_id"]: e for e in tap.of(integration, ALERTS)}
    # an analyst edits one alert's title at the vendor: only that one is published again
    edited = sorted(recent)[0]
    tenant.alerts[edited]["title"] = "UPDATED: " + tenant.alerts[edited]["title"]
    await harness.sync(ingestor, integration)
    await tap.settle()
    again = tap.of(integration, ALERTS)[len(first) :]
    assert [e.data["short_id"] for e in again] == [edited]
    assert again[0].data["title"].startswith("UPDATED: ") and again[0].id != first[edited].id
    await harness.sync(ingestor, integration)  # nothing changed since
    await tap.settle()
    assert len(tap.of(integration, ALERTS)) == len(first) + 1


async def test_two_replicas_share_the_work_and_never_run_the_same_resource_at_once(
    harness: Any, tap: Any
) -> None:
    running: set[tuple[str, str]] = set()
    overlaps: list[tuple[str, str]] = []
    runs: Counter[tuple[str, str]] = Counter()
    by_replica: Counter[str] = Counter()
    resources = ["alerts", "tags", "recipient_groups", "categories"]

    def replica(name: str) -> Any:
        ingestor = harness.ingestor(resources, concurrency=2)
        original = ingestor.run_one

        async def run_one(row: dict[str, Any]) -> None:
            key = (row["integration_id"], row["resource"])
            if key in running:
                overlaps.append(key)
            running.add(key)
            runs[key] += 1
            by_replica[name] += 1
            try:
                await asyncio.sleep(0.01)  # widen the window in which a second claim could collide
                await original(row)
            finally:
                running.discard(key)

        ingestor.run_one = run_one  # type: ignore[method-assign]
        return ingestor

    first, second = replica("a"), replica("b")
    integrations = [await harness.add_integration(first) for _ in range(3)]
    tenant = harness.tenant()
    details_before = sum(detail_requests(harness).values())
    while True:
        done = await asyncio.gather(first.run_due_once(), second.run_due_once())
        if not any(done):
            break
    await tap.settle()
    assert not overlaps
    assert set(runs) == {(i, r) for i in integrations for r in resources}
    assert set(runs.values()) == {1}, "each (integration, resource) ran exactly once"
    assert by_replica["a"] > 0 and by_replica["b"] > 0
    for integration in integrations:
        seen = tap.alerts(integration)
        assert len(seen) == len(set(seen)) == len(tenant.alerts)
        states = await first.states(integration)
        assert all(s["lease_owner"] is None and s["last_error"] is None for s in states)
    # the vendor served each alert's detail once per integration, no more
    assert sum(detail_requests(harness).values()) - details_before == 3 * len(tenant.alerts)


async def test_a_leased_resource_is_not_claimed_by_another_replica(harness: Any) -> None:
    first, second = harness.ingestor(["alerts"]), harness.ingestor(["alerts"])
    integration = await harness.add_integration(first)
    claimed = [r for r in await first.claim(10) if r["integration_id"] == integration]
    assert len(claimed) == 1 and claimed[0]["lease_owner"] == first.owner
    assert not [r for r in await second.claim(10) if r["integration_id"] == integration]
    await first.run_one(claimed[0])
    await first.trigger(integration)
    assert [r["integration_id"] for r in await second.claim(10)] == [integration]


class Garble(httpx.AsyncBaseTransport):
    """The simulator, with one alert's detail answered unreadably (no usable short_id) while
    ``broken`` is set — a vendor bug in one record."""

    def __init__(self, app: Any, victim: str) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.victim, self.broken = victim, True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.broken and request.url.path.endswith(f"/get_alert_detail/{self.victim}/"):
            await response.aread()
            body = {**response.json(), "short_id": "   "}
            return httpx.Response(
                response.status_code, headers={"content-type": "application/json"}, json=body
            )
        return response


async def test_an_unreadable_alert_stops_the_run_before_it_and_is_read_once_fixed(
    harness: Any, tap: Any
) -> None:
    """Garbage in one alert: the alerts in front of it are published, the cursor stays right before
    it (it neither vanishes nor is skipped), the sync state says bad_response naming it, the run
    backs off instead of looping; once Cyware answers it properly it is read."""
    tenant = harness.tenant()
    order = listed(tenant)
    victim = order[37]
    transport = Garble(harness.sim, victim)
    ingestor = harness.ingestor(["alerts"], transport=transport)
    integration = await harness.add_integration(ingestor, settings={"page_size": 25})
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error_category"] == "bad_response" and victim in state["last_error"]
    assert tap.alerts(integration) == order[:37]
    assert state["cursor"]["short_ids"][-1] == order[36] and state["consecutive_failures"] == 1
    assert state["next_run_at"] > state["last_started_at"]

    [state] = await harness.sync(ingestor, integration)  # still broken: no progress, nothing lost
    assert state["cursor"]["short_ids"][-1] == order[36] and state["consecutive_failures"] == 2

    transport.broken = False
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    seen = tap.alerts(integration)
    assert state["last_error"] is None and set(seen) == set(order) and seen[37] == victim


async def test_an_unreadable_tag_is_reported_after_the_others_are_published(harness: Any, tap: Any) -> None:
    class BadTag(httpx.AsyncBaseTransport):
        def __init__(self, app: Any) -> None:
            self.inner = httpx.ASGITransport(app=app)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            if request.url.path.endswith("/tag/"):
                await response.aread()
                tags = response.json()
                tags[0] = {**tags[0], "tag_name": None, "name": None}
                return httpx.Response(200, headers={"content-type": "application/json"}, json=tags)
            return response

    ingestor = harness.ingestor(["tags"], transport=BadTag(harness.sim))
    integration = await harness.add_integration(ingestor)
    [state] = await harness.sync(ingestor, integration)
    await tap.settle()
    assert state["last_error_category"] == "bad_response" and "tags record(s)" in state["last_error"]
    assert len(tap.of(integration, "ti.tag.upserted")) == len(harness.tenant().tags) - 1
