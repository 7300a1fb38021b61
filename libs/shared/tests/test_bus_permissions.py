"""One broker user per service, limited by RabbitMQ topic authorisation to its own routing keys.
The users are created for this session's vhost only (named after it) and removed afterwards."""

from __future__ import annotations

import os
import secrets

import aio_pika
import httpx
import pytest
from aiormq.exceptions import ChannelAccessRefused
from soc_shared.bus import declare_exchanges
from soc_shared.provision import provision_bus_users
from soc_shared.testing import TEST_VHOST


@pytest.fixture
def bus_users():
    prefix = f"{TEST_VHOST}-"
    passwords = {
        "siem-ingest": secrets.token_urlsafe(12),
        "auth": secrets.token_urlsafe(12),
        "tenant": secrets.token_urlsafe(12),
    }
    users = provision_bus_users(TEST_VHOST, passwords, prefix=prefix)
    hostport = os.environ.get("SOC_AMQP_HOSTPORT", "127.0.0.1:5672")
    urls = {svc: f"amqp://{users[svc]}:{pw}@{hostport}/{TEST_VHOST}" for svc, pw in passwords.items()}
    yield urls
    base = os.environ.get("SOC_AMQP_MGMT_URL", "http://127.0.0.1:15672")
    admin = (os.environ.get("SOC_AMQP_ADMIN_USER", "soc"), os.environ.get("SOC_AMQP_PASSWORD", "soc"))
    for user in users.values():
        httpx.delete(f"{base}/api/users/{user}", auth=admin, timeout=30, trust_env=False)


async def _publish(url: str, routing_key: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchanges = await declare_exchanges(channel)
        await exchanges["soc.events"].publish(aio_pika.Message(b"{}"), routing_key=routing_key)
        await channel.close()
    finally:
        await connection.close()


async def test_a_service_publishes_its_own_routing_keys_only(bus_users):
    await _publish(bus_users["siem-ingest"], "siem.offense.upserted")
    await _publish(bus_users["siem-ingest"], "ingest.sync.reported")
    for forged in ("auth.user.changed", "tenant.company.changed", "soar.incident.upserted"):
        with pytest.raises(ChannelAccessRefused):
            await _publish(bus_users["siem-ingest"], forged)
    await _publish(bus_users["auth"], "auth.user.changed")
    await _publish(bus_users["auth"], "audit.recorded")  # its audit trail, filed by the tenant service
    with pytest.raises(ChannelAccessRefused):
        await _publish(bus_users["auth"], "tenant.company.changed")
    await _publish(bus_users["tenant"], "audit.recorded")
    for forged in ("audit.recorded", "tenant.company.changed"):
        with pytest.raises(ChannelAccessRefused):
            await _publish(bus_users["siem-ingest"], forged)


async def test_a_service_binds_only_the_keys_it_consumes(bus_users):
    connection = await aio_pika.connect(bus_users["siem-ingest"])
    try:
        channel = await connection.channel()
        await declare_exchanges(channel)
        queue = await channel.declare_queue("siem-ingest.perm-test", auto_delete=True)
        await queue.bind("soc.events", routing_key="tenant.integration.changed")
        with pytest.raises(ChannelAccessRefused):
            await queue.bind("soc.events", routing_key="auth.#")
    finally:
        await connection.close()
    connection = await aio_pika.connect(bus_users["tenant"])
    try:  # the tenant service files every service's audit records and the sign-ins
        channel = await connection.channel()
        await declare_exchanges(channel)
        queue = await channel.declare_queue("tenant.perm-test", auto_delete=True)
        await queue.bind("soc.events", routing_key="audit.recorded")
        await queue.bind("soc.events", routing_key="auth.login.failed")
        with pytest.raises(ChannelAccessRefused):
            await queue.bind("soc.events", routing_key="auth.#")
    finally:
        await connection.close()
    connection = await aio_pika.connect(bus_users["siem-ingest"])
    try:
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused):  # another service's queue name
            await channel.declare_queue("tenant.stolen", auto_delete=True)
    finally:
        await connection.close()
