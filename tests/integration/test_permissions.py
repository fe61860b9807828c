"""Who may publish what, with real RabbitMQ users holding the patterns `flowgate declare
--permissions ROLE` prints: a publisher sends commands and reads its own replies, and cannot
forge an event, read a command, poll or dead-letter queue, or another publisher's replies; the
worker cannot forge a command; a connection with `allowed_publishers` refuses anyone else."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import pytest

from contracts import ErrorKind, EventKind, TriggerBatch
from flowgate_client import CommandFailed
from flowgate_client.aio import Client
from tests.conftest import RABBIT_HOST, _rabbitmqctl, fast_settings
from workers.app import Flowgate
from workers.broker.amqp import AmqpBroker
from workers.permissions import Role, permissions
from workers.simulators import RunningSimulators
from workers.topology import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, EVENTS_EXCHANGE

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-for-tests"


@dataclass
class Broker:
    vhost: str
    tag: str

    def url(self, user: str) -> str:
        return f"amqp://{user}:{PASSWORD}@{RABBIT_HOST}:5672/{self.vhost}"

    def user(self, name: str) -> str:
        return f"{name}-{self.tag}"

    async def add_user(self, name: str, role: Role) -> str:
        user = self.user(name)
        granted = permissions(role, user)
        await asyncio.to_thread(_rabbitmqctl, "add_user", user, PASSWORD)
        await asyncio.to_thread(
            _rabbitmqctl,
            "set_permissions",
            "-p",
            self.vhost,
            user,
            granted.configure,
            granted.write,
            granted.read,
        )
        return user


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    tag = uuid.uuid4().hex[:8]
    found = Broker(f"flowgate-test-perms-{tag}", tag)
    await asyncio.to_thread(_rabbitmqctl, "add_vhost", found.vhost)
    try:
        yield found
    finally:
        for name in ("svc", "alice", "bob"):
            with contextlib.suppress(subprocess.CalledProcessError):
                await asyncio.to_thread(_rabbitmqctl, "delete_user", found.user(name))
        with contextlib.suppress(subprocess.CalledProcessError):
            await asyncio.to_thread(_rabbitmqctl, "delete_vhost", found.vhost)


Act = Callable[[aiormq.abc.AbstractChannel], Awaitable[Any]]


async def _refused(url: str, act: Act) -> str:
    """Run `act` on a fresh confirming channel of a fresh connection as the URL's user, and
    return the text of RabbitMQ's refusal (it closes the channel)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(aiormq.exceptions.ChannelClosed) as refused:
            await act(await channel.get_underlay_channel())
        return str(refused.value)
    finally:
        await connection.close()


def _publish(exchange: str, routing_key: str, *, user_id: str | None = None) -> Act:
    async def act(channel: aiormq.abc.AbstractChannel) -> None:
        properties = aiormq.spec.Basic.Properties(user_id=user_id)
        await channel.basic_publish(
            b"{}", exchange=exchange, routing_key=routing_key, properties=properties
        )

    return act


def _consume(queue: str) -> Act:
    async def act(channel: aiormq.abc.AbstractChannel) -> None:
        async def ignore(message: aiormq.abc.DeliveredMessage) -> None:
            return None

        await channel.basic_consume(queue, ignore)

    return act


async def test_each_role_can_do_its_job_and_nothing_more(
    broker: Broker, sims: RunningSimulators
) -> None:
    svc = await broker.add_user("svc", "worker")
    alice = await broker.add_user("alice", "publisher")
    bob = await broker.add_user("bob", "publisher")
    settings = fast_settings(
        broker.url(svc),
        sims.base_url,
        store="redis",
        connections={"pbsm": {"restricted": {"allowed_publishers": [alice]}}},
    )
    app = Flowgate(settings, AmqpBroker(broker.url(svc)))
    await app.start_worker(["trigger-batch"])
    await app.start_poller()
    try:
        async with Client(broker.url(alice)) as as_alice, Client(broker.url(bob)) as as_bob:
            # The job: send, and read the outcome from one's own reply queue.
            done = await (await as_alice.send(TriggerBatch(batch="B1"))).result(timeout=60)
            assert done.kind is EventKind.SUCCEEDED
            # Only alice may use the restricted connection; bob's command never reaches PBSM.
            allowed = await as_alice.send(TriggerBatch(batch="B2"), connection="restricted")
            assert (await allowed.result(timeout=60)).kind is EventKind.SUCCEEDED
            refused = await as_bob.send(TriggerBatch(batch="B3"), connection="restricted")
            with pytest.raises(CommandFailed) as failed:
                await refused.result(timeout=60)
            assert failed.value.kind is ErrorKind.REJECTED
            assert f"AMQP user {bob!r} is not allowed on connection 'restricted'" in (
                failed.value.error.message
            )
            batches = [(e.json or {}).get("batchName") for e in sims.sims.ledger.entries()]
            assert "B3" not in batches and "B2" in batches

            # Nothing more: a publisher cannot forge an event, ...
            text = await _refused(broker.url(alice), _publish(EVENTS_EXCHANGE, "x.succeeded"))
            assert "ACCESS_REFUSED" in text and EVENTS_EXCHANGE in text
            # ... read the commands, the dead letters or bob's replies, ...
            for queue in ("flowgate.cmd.trigger-batch", DEAD_LETTER_QUEUE, as_bob.reply_queue):
                text = await _refused(broker.url(alice), _consume(queue))
                assert "ACCESS_REFUSED" in text and queue in text
            # ... or send a command as someone else: RabbitMQ checks user_id.
            text = await _refused(
                broker.url(alice), _publish(COMMANDS_EXCHANGE, "trigger-batch", user_id=bob)
            )
            assert "PRECONDITION_FAILED" in text and "user_id" in text
        # A worker cannot forge a command.
        text = await _refused(broker.url(svc), _publish(COMMANDS_EXCHANGE, "trigger-batch"))
        assert "ACCESS_REFUSED" in text and COMMANDS_EXCHANGE in text
    finally:
        await app.stop()
