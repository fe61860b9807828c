"""The client SDKs against the real RabbitMQ and an in-process flowgate on the simulators:
typed commands sent, events read back from one reply queue per client (the commands' AMQP
`reply_to`), outcomes raised, subscriptions on flowgate.events."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pytest

from contracts import AddPaylink, ErrorKind, EventKind, TriggerBatch
from flowgate_client import CommandCancelled, CommandFailed, Event, ResultTimeout
from flowgate_client.aio import Client
from flowgate_client.sync import Client as SyncClient
from tests.conftest import System

pytestmark = pytest.mark.integration


def _reply_queues(amqp_url: str) -> dict[str, int]:
    """Every flowgate.reply.* queue of the vhost that has a consumer, with its consumer count
    (clients closed earlier in the session leave queues that expire later, with none)."""
    vhost = urlsplit(amqp_url).path.lstrip("/")
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "consumers"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {
        r[0]: int(r[1])
        for r in rows
        if len(r) == 2 and r[0].startswith("flowgate.reply.") and int(r[1]) > 0
    }


def _paylink(n: int) -> AddPaylink:
    return AddPaylink(business_id="PR", order_id=f"O{n}", payment_link=f"https://pay/{n}")


async def test_a_thousand_results_on_one_reply_queue(system: System, amqp_url: str) -> None:
    async with Client(amqp_url) as client:
        handles = [await client.send(_paylink(n)) for n in range(1000)]
        assert len({h.id for h in handles}) == 1000
        assert _reply_queues(amqp_url) == {client.reply_queue: 1}
        results = await asyncio.gather(*(h.result(timeout=240) for h in handles))
    assert [r.kind for r in results] == [EventKind.SUCCEEDED] * 1000
    assert [r.command_id for r in results] == [h.id for h in handles]
    assert {r.data.command_type for r in results} == {"add-paylink"}


async def test_events_of_a_followed_command_in_order(system: System, amqp_url: str) -> None:
    async with Client(amqp_url) as client:
        handle = await client.send(TriggerBatch(batch="B2001", params={"$X$": "1"}))
        seen = [event async for event in handle.events(timeout=30)]
        result = await handle.result(timeout=1)
    kinds = [e.kind for e in seen]
    assert kinds[0] is EventKind.ACCEPTED and kinds[-1] is EventKind.SUCCEEDED
    assert set(kinds[1:-1]) <= {EventKind.PROGRESS}
    assert seen[0].data.vendor_ref["batch"] == "B2001"
    assert result == seen[-1]
    # The same events went to flowgate.events, for everyone else.
    terminal = await system.events.terminal(handle.id)
    assert terminal["id"] == result.id


async def test_failed_and_cancelled_raise_with_the_event(system: System, amqp_url: str) -> None:
    system.sims.set_outcome("pbsm", "FAILS", "FAILED")
    system.sims.set_outcome("pbsm", "STOPPED", "INTERRUPTED")
    async with Client(amqp_url) as client:
        failing = await client.send(TriggerBatch(batch="FAILS"))
        cancelled = await client.send(TriggerBatch(batch="STOPPED"))
        refused = await client.send(TriggerBatch(batch="B1"), connection="no-such-connection")
        with pytest.raises(CommandFailed) as failed:
            await failing.result(timeout=30)
        with pytest.raises(CommandCancelled) as stopped:
            await cancelled.result(timeout=30)
        with pytest.raises(CommandFailed) as invalid:
            await refused.result(timeout=30)
    assert failed.value.kind is ErrorKind.VENDOR_FAILED
    assert failed.value.event.command_id == failing.id
    assert stopped.value.event.kind is EventKind.CANCELLED
    assert invalid.value.kind is ErrorKind.INVALID
    assert "no-such-connection" in invalid.value.error.message


async def test_result_timeout_and_a_safe_resend(system: System, amqp_url: str) -> None:
    async with Client(amqp_url) as client:
        handle = await client.send(TriggerBatch(batch="B2001"))
        with pytest.raises(ResultTimeout):
            await handle.result(timeout=0.01)
        first = await handle.result(timeout=30)
        # The same id again: flowgate answers with the same outcome, same event id.
        again = await client.send(TriggerBatch(batch="B2001"), id=handle.id)
        second = await again.result(timeout=30)
    assert second.id == first.id
    assert len(system.sims.ledger.entries("pbsm.trigger")) == 1


async def test_subscribe_reads_one_command_type(system: System, amqp_url: str) -> None:
    async with Client(amqp_url) as client:
        seen: list[Event] = []

        async def subscriber() -> None:
            async for event in events:
                seen.append(event)
                if event.terminal:
                    return

        async with client.subscribe("trigger-batch.*") as events:
            task = asyncio.create_task(subscriber())
            paylink = await client.send(_paylink(0))
            batch = await client.send(TriggerBatch(batch="B2001"))
            await paylink.result(timeout=30)
            await batch.result(timeout=30)
            await asyncio.wait_for(task, 30)
    assert {e.routing_key.split(".")[0] for e in seen} == {"trigger-batch"}
    assert seen[-1].routing_key == "trigger-batch.succeeded"


async def test_the_sync_client(system: System, amqp_url: str) -> None:
    system.sims.set_outcome("pbsm", "FAILS", "FAILED")

    def blocking() -> tuple[list[Event], Event, str, list[Event]]:
        with SyncClient(amqp_url) as client:
            handles = [client.send(_paylink(n)) for n in range(50)]
            results = [h.result(timeout=60) for h in handles]
            assert _reply_queues(amqp_url)[client.reply_queue] == 1
            batch = client.send(TriggerBatch(batch="B2001"), id=str(uuid.uuid4()))
            events = list(batch.events(timeout=30))
            failed = "it did not fail"
            try:
                client.send(TriggerBatch(batch="FAILS")).result(timeout=30)
            except CommandFailed as exc:
                failed = exc.kind.value
            started = time.monotonic()
            idle = list(client.subscribe("nothing.*", idle_timeout=0.5))
            assert idle == [] and time.monotonic() - started < 5
        return results, events[-1], failed, events

    results, terminal, failed, events = await asyncio.to_thread(blocking)
    assert {r.kind for r in results} == {EventKind.SUCCEEDED}
    assert terminal.kind is EventKind.SUCCEEDED
    assert events[0].kind is EventKind.ACCEPTED
    assert failed == "vendor_failed"
