"""Both client SDKs come back after RabbitMQ drops their connection: results still arrive on
the reply queue, sends go through, subscriptions read the events published after the drop.

The drop is RabbitMQ closing the client's connection (`rabbitmqctl close_connection`, found by
its connection name), as a broker failover or a network blip looks to a client; flowgate's own
processes keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from contracts import AddPaylink, EventKind, TriggerBatch
from flowgate_client import Event
from flowgate_client.aio import Client
from flowgate_client.sync import Client as SyncClient
from tests.conftest import System
from tests.waiting import poll_until, wait_until

pytestmark = pytest.mark.integration


def _connections_named(name: str) -> list[str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [
        line.split("\t", 1)[0]
        for line in out.splitlines()
        if f'{{"connection_name","{name}"}}' in line
    ]


def _drop(name: str) -> None:
    """Close every connection called `name` from the broker's side; at least one must exist."""
    pids = _connections_named(name)
    assert pids, f"no connection named {name!r}"
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "test: a dropped connection"],
            check=True,
            capture_output=True,
            timeout=60,
        )


async def _reconnected(name: str) -> None:
    async def probe() -> bool:
        return bool(await asyncio.to_thread(_connections_named, name))

    await poll_until(probe, bool, timeout=30, interval=0.1)


def _paylink(n: int) -> AddPaylink:
    return AddPaylink(business_id="PR", order_id=f"O{n}", payment_link=f"https://pay/{n}")


async def test_async_client_results_and_sends_survive_a_dropped_connection(
    system: System, amqp_url: str
) -> None:
    name = f"test-client-{uuid.uuid4().hex[:8]}"
    async with Client(amqp_url, connection_name=name) as client:
        before = await client.send(TriggerBatch(batch="B2001"))
        await asyncio.to_thread(_drop, name)
        # Its events come after the drop: the reply queue outlived the connection, and the
        # robust connection consumes it again.
        assert (await before.result(timeout=60)).kind is EventKind.SUCCEEDED
        await _reconnected(name)
        after = await client.send(_paylink(1))
        assert (await after.result(timeout=60)).kind is EventKind.SUCCEEDED


async def test_async_subscription_reads_events_after_a_dropped_connection(
    system: System, amqp_url: str
) -> None:
    name = f"test-client-{uuid.uuid4().hex[:8]}"
    seen: list[Event] = []
    async with (
        Client(amqp_url, connection_name=name) as client,
        client.subscribe("add-paylink.*") as events,
    ):

        async def read() -> None:
            async for event in events:
                seen.append(event)

        reader = asyncio.create_task(read())
        await asyncio.to_thread(_drop, name)
        await _reconnected(name)
        # The subscription's queue and binding are restored with the channel; a command
        # sent now is seen, however long the restore takes.
        sent: list[str] = []

        def got_one() -> bool:
            return any(e.terminal and e.command_id in sent for e in seen)

        async with asyncio.timeout(60):
            while not got_one():
                handle = await client.send(_paylink(len(sent)))
                sent.append(handle.id)
                await handle.result(timeout=30)
                # Its events reach the subscription's queue too, maybe after the reply queue.
                with contextlib.suppress(AssertionError):
                    await wait_until(got_one, timeout=2)
        reader.cancel()


async def test_sync_client_results_sends_and_subscriptions_survive_a_dropped_connection(
    system: System, amqp_url: str
) -> None:
    """The sync client on kombu: `ensure` reconnects, the reply queue and every open
    subscription are consumed again on the new channel."""
    name = f"test-sync-client-{uuid.uuid4().hex[:8]}"

    def terminal_of(events: Iterator[Event], command_id: str) -> Event:
        return next(e for e in events if e.command_id == command_id and e.terminal)

    def blocking() -> None:
        with (
            SyncClient(amqp_url, connection_name=name) as client,
            client.subscribe("add-paylink.*", idle_timeout=30) as events,
        ):
            before = client.send(TriggerBatch(batch="B2001"))
            first = client.send(_paylink(0))
            assert terminal_of(events, first.id).kind is EventKind.SUCCEEDED
            _drop(name)
            # The drop is noticed at the next read; results of commands sent before it
            # still arrive, on the reply queue that outlived the connection.
            assert before.result(timeout=60).kind is EventKind.SUCCEEDED
            after = client.send(_paylink(1))
            assert after.result(timeout=60).kind is EventKind.SUCCEEDED
            # The subscription was declared and consumed again with the reply queue, before
            # `after` was sent.
            assert terminal_of(events, after.id).kind is EventKind.SUCCEEDED
            assert len(_connections_named(name)) == 1

    await asyncio.to_thread(blocking)
