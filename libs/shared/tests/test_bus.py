import asyncio
import os
import uuid

import pytest
from soc_shared.bus import BatchConsumer, Bus, Delivery, list_dead_letters, replay_dead_letters
from soc_shared.events import SiemDomain, make_event


@pytest.fixture
async def bus():
    b = Bus(os.environ["SOC_AMQP_URL"], service="test-bus")
    await b.connect()
    yield b
    await b.close()


def _domain_event(i: int):
    return make_event(
        "siem.domain.upserted", SiemDomain(domain_id=i, name=f"d{i}"), source="/test", subject=str(i)
    )


async def _wait_for(predicate, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_batches_are_acked_after_the_handler_and_every_event_arrives(bus):
    queue = f"test.batch.{uuid.uuid4().hex[:8]}"
    seen: list[int] = []
    batch_sizes: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        batch_sizes.append(len(batch))
        seen.extend(d.payload.domain_id for d in batch)

    consumer = BatchConsumer(bus, queue, ["siem.domain.upserted"], handler, batch_size=100, max_wait=0.05)
    await consumer.start()
    try:
        await bus.publish([_domain_event(i) for i in range(250)])
        await _wait_for(lambda: len(seen) >= 250)
    finally:
        await consumer.stop()
    assert sorted(seen) == list(range(250))
    assert max(batch_sizes) > 1, "events should be handled in batches"


async def test_malformed_message_is_dead_lettered_with_reason_and_consumer_continues(bus):
    queue = f"test.poison.{uuid.uuid4().hex[:8]}"
    seen: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        seen.extend(d.payload.domain_id for d in batch)

    consumer = BatchConsumer(bus, queue, ["siem.domain.upserted"], handler, batch_size=10)
    await consumer.start()
    try:
        await bus.publish_raw(b"{this is not json", "siem.domain.upserted")
        await bus.publish([_domain_event(1), _domain_event(2)])
        await _wait_for(lambda: len(seen) == 2)
        dead = await list_dead_letters(bus, queue)
        assert len(dead) == 1
        assert "not a CloudEvents 1.0 envelope" in dead[0]["reason"]
        assert dead[0]["routing_key"] == "siem.domain.upserted"
        # Peeking leaves the message parked.
        assert len(await list_dead_letters(bus, queue)) == 1
    finally:
        await consumer.stop()


async def test_event_that_keeps_failing_is_parked_after_the_delivery_limit_and_can_be_replayed(bus):
    queue = f"test.failing.{uuid.uuid4().hex[:8]}"
    attempts: dict[int, int] = {}
    broken = {"on": True}
    handled: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        for d in batch:
            attempts[d.payload.domain_id] = attempts.get(d.payload.domain_id, 0) + 1
            if d.payload.domain_id == 13 and broken["on"]:
                raise RuntimeError("cannot store domain 13")
        handled.extend(d.payload.domain_id for d in batch)

    consumer = BatchConsumer(bus, queue, ["siem.domain.upserted"], handler, batch_size=10, delivery_limit=3)
    await consumer.start()
    try:
        await bus.publish([_domain_event(i) for i in (12, 13, 14)])
        await _wait_for(lambda: len(asyncio.all_tasks()) > 0 and 12 in handled and 14 in handled)
        dead: list[dict] = []

        async def parked() -> bool:
            nonlocal dead
            dead = await list_dead_letters(bus, queue)
            return bool(dead)

        for _ in range(100):
            if await parked():
                break
            await asyncio.sleep(0.1)
        assert dead and "cannot store domain 13" in dead[0]["reason"]
        assert 13 not in handled
        broken["on"] = False
        assert await replay_dead_letters(bus, queue) == 1
        await _wait_for(lambda: 13 in handled)
        assert await list_dead_letters(bus, queue) == []
    finally:
        await consumer.stop()


async def test_consumer_that_was_stopped_finds_every_event_when_it_restarts(bus):
    queue = f"test.restart.{uuid.uuid4().hex[:8]}"
    seen: set[int] = set()

    async def handler(batch: list[Delivery]) -> None:
        seen.update(d.payload.domain_id for d in batch)

    consumer = BatchConsumer(bus, queue, ["siem.domain.upserted"], handler, batch_size=50)
    await consumer.start()
    await consumer.stop()
    await bus.publish([_domain_event(i) for i in range(100)])
    consumer = BatchConsumer(bus, queue, ["siem.domain.upserted"], handler, batch_size=50)
    await consumer.start()
    try:
        await _wait_for(lambda: len(seen) == 100)
    finally:
        await consumer.stop()


async def test_events_of_one_type_travel_as_one_batch_message_and_a_bad_element_is_parked_alone(bus):
    from soc_shared.bus import BATCH_CONTENT_TYPE, batch_body

    queue = f"test.batchmsg.{uuid.uuid4().hex[:8]}"
    seen: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        seen.extend(d.payload.domain_id for d in batch)

    channel = await bus.channel()
    probe = await channel.declare_queue(exclusive=True, auto_delete=True)
    await probe.bind("soc.events", routing_key="siem.domain.upserted")
    await bus.publish([_domain_event(i) for i in range(300)])
    messages = []
    for _ in range(50):
        message = await probe.get(no_ack=True, fail=False)
        if message is None:
            if messages:
                break
            await asyncio.sleep(0.05)
            continue
        messages.append(message)
    assert all(m.content_type == BATCH_CONTENT_TYPE for m in messages)
    assert len(messages) == 2 and sum(int(m.headers["ce-count"]) for m in messages) == 300
    await channel.close()

    consumer = BatchConsumer(bus, queue, ["siem.domain.upserted"], handler, batch_size=100)
    await consumer.start()
    try:
        good = [_domain_event(i) for i in (1, 2)]
        body = (
            batch_body(good)[:-1]
            + b',{"specversion":"1.0","id":"x","source":"/s","type":"soc.siem.domain.upserted.v1","time":"2024-01-01T00:00:00Z","data":{"name":"no id"}}]'
        )
        await bus.publish_raw(body, "siem.domain.upserted", content_type=BATCH_CONTENT_TYPE)
        await _wait_for(lambda: sorted(seen) == [1, 2])
        dead: list[dict] = []
        for _ in range(50):
            dead = await list_dead_letters(bus, queue)
            if dead:
                break
            await asyncio.sleep(0.05)
        assert len(dead) == 1 and "payload does not match" in dead[0]["reason"]
        assert dead[0]["event_id"] == "x"
    finally:
        await consumer.stop()


async def test_decoded_events_in_flight_are_capped_whatever_the_message_prefetch(bus):
    """Messages are batches (up to Bus.batch_max events): the broker's prefetch counts messages,
    so the consumer itself must hold back decoding while its batches are being handled."""
    queue = f"test.inflight.{uuid.uuid4().hex[:8]}"
    release = asyncio.Event()
    peak = {"in_flight": 0}
    seen: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        peak["in_flight"] = max(peak["in_flight"], consumer._in_flight)
        await release.wait()
        seen.extend(d.payload.domain_id for d in batch)

    consumer = BatchConsumer(bus, queue, ["siem.domain.upserted"], handler, batch_size=10, prefetch_batches=2)
    await consumer.start()
    small = Bus(os.environ["SOC_AMQP_URL"], service="test-bus-small", batch_max=5)
    try:
        await small.publish([_domain_event(i) for i in range(200)])  # 40 messages of 5 events
        await _wait_for(lambda: consumer._in_flight >= 10)
        await asyncio.sleep(0.3)  # every prefetched message has had its chance to be decoded
        assert consumer._in_flight <= consumer.max_events_in_flight == 20
        # and the broker holds back the rest: undecoded pages do not pile up in memory either.
        assert consumer._unsettled <= consumer.prefetch_messages == 4
        release.set()
        await _wait_for(lambda: len(seen) >= 200)
    finally:
        release.set()
        await consumer.stop()
        await small.close()
    assert sorted(seen) == list(range(200))
    assert peak["in_flight"] <= 20


async def test_two_batches_at_once_are_each_acked_only_after_their_own_handler(bus):
    queue = f"test.concurrent.{uuid.uuid4().hex[:8]}"
    running = {"now": 0, "peak": 0}
    gate = asyncio.Event()
    seen: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        try:
            if batch[0].payload.domain_id < 10:
                await gate.wait()  # the first batch is still being written...
            seen.extend(d.payload.domain_id for d in batch)
        finally:
            running["now"] -= 1

    consumer = BatchConsumer(bus, queue, ["siem.domain.upserted"], handler, batch_size=10, concurrency=2)
    await consumer.start()
    small = Bus(os.environ["SOC_AMQP_URL"], service="test-bus-small", batch_max=10)
    try:
        await small.publish([_domain_event(i) for i in range(40)])
        # ...while the later batches go through beside it and are acked.
        await _wait_for(lambda: len(seen) >= 30)
        assert running["peak"] == 2 and not any(i < 10 for i in seen)
        # The consumer dies with the first batch unfinished: its messages, and only those, must come
        # back (one ack "up to here" for a later batch would have acked them too).
        assert consumer._channel is not None
        await consumer._channel.close()
    finally:
        gate.set()
        await consumer.stop()
        await small.close()
    again: list[int] = []

    async def collect(batch: list[Delivery]) -> None:
        again.extend(d.payload.domain_id for d in batch)

    second = BatchConsumer(bus, queue, ["siem.domain.upserted"], collect, batch_size=10)
    await second.start()
    try:
        await _wait_for(lambda: len(again) >= 10)
        await asyncio.sleep(0.3)
    finally:
        await second.stop()
    assert sorted(again) == list(range(10))


async def test_single_event_messages_form_batches_without_waiting_for_the_timer(bus):
    """With fewer messages in flight than a batch holds, a batch is cut as soon as every message the
    broker will send before an ack has arrived (not only when the wait timer fires)."""
    queue = f"test.singles.{uuid.uuid4().hex[:8]}"
    sizes: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        sizes.append(len(batch))

    consumer = BatchConsumer(
        bus, queue, ["siem.domain.upserted"], handler, batch_size=100, max_wait=30.0, prefetch_messages=10
    )
    await consumer.start()
    single = Bus(os.environ["SOC_AMQP_URL"], service="test-bus-single", batch_max=1)
    try:
        await single.publish([_domain_event(i) for i in range(60)])
        await _wait_for(lambda: sum(sizes) >= 60, within=10.0)  # the 30 s timer would be far too late
    finally:
        await consumer.stop()
        await single.close()
    assert max(sizes) <= 10 and sum(sizes) == 60
