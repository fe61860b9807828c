"""Messages RabbitMQ itself dead-letters are answered too, on both brokers.

A quorum queue dead-letters a message handed back more often than its `x-delivery-limit`,
crashed consumers included, and nobody had answered it: the chaos run of 2026-11-25 lost 474
commands that way. Each test hands a message back past a delivery limit of 1 (two requeues),
then starts a worker, which answers it from `flowgate.given-up` by what the store knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from contracts import encode_command
from tests.conftest import Events, collect_events, fast_settings, private_vhost
from tests.quiet import QuietBroker
from workers.app import Flowgate
from workers.broker.amqp import AmqpBroker
from workers.broker.base import Broker, Delivery, OutgoingMessage
from workers.idempotency import IdempotencyStore
from workers.poller.request import PollRequest
from workers.simulators import RunningSimulators
from workers.topology import (
    COMMANDS_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DELAY_EXCHANGE,
    DELAY_TIERS_MS,
    GIVEN_UP_QUEUE,
    POLL_QUEUE,
    command_queue,
    delay_routing_key,
)

BATCH = {"batch": "B2001"}


@dataclass
class Given:
    app: Flowgate
    broker: Broker
    events: Events
    sims: RunningSimulators

    @property
    def store(self) -> IdempotencyStore:
        return self.app.store

    async def command(self, command_type: str = "trigger-batch", data: Any = None) -> str:
        command_id = str(uuid.uuid4())
        body, content_type = encode_command(command_type, data or BATCH, command_id=command_id)
        message = OutgoingMessage(body=body, content_type=content_type, message_id=command_id)
        await self.broker.publish(COMMANDS_EXCHANGE, command_type, message)
        return command_id

    async def take(self, queue: str) -> Delivery:
        async with asyncio.timeout(10):
            while (delivery := await self.broker.get(queue)) is None:
                await asyncio.sleep(0.02)
        return delivery

    async def hand_back_past_the_limit(self, queue: str) -> None:
        """What a process that dies holding the message does to it, once more than allowed."""
        for _ in range(2):
            await (await self.take(queue)).requeue()


@pytest.fixture(params=["memory", "amqp"])
async def given(request: pytest.FixtureRequest, sims: RunningSimulators) -> AsyncIterator[Given]:
    async with contextlib.AsyncExitStack() as stack:
        broker: Broker
        if request.param == "memory":
            settings = fast_settings("amqp://unused/", sims.base_url, delivery_limit=1)
            broker = QuietBroker()
        else:
            url = await stack.enter_async_context(private_vhost("given-up"))
            settings = fast_settings(url, sims.base_url, store="redis", delivery_limit=1)
            broker = AmqpBroker(url)
        app = Flowgate(settings, broker)
        await app.connect()
        events = await collect_events(broker)
        try:
            yield Given(app, broker, events, sims)
        finally:
            await app.stop()


async def test_a_command_nobody_settled_is_answered_failed_and_never_triggered(
    given: Given,
) -> None:
    command_id = await given.command()
    await given.hand_back_past_the_limit(command_queue("trigger-batch"))
    await given.app.start_worker(["trigger-batch"])
    event = await given.events.terminal(command_id)
    error = event["data"]["error"]
    assert event["type"].endswith(".failed")
    assert error["kind"] == "internal"
    assert "delivery_limit" in error["message"]
    assert "the vendor was not called" in error["message"]
    assert given.sims.sims.ledger.entries("pbsm.trigger") == []
    # The answer is the command's outcome; the letter stays for the operator.
    assert (await given.store.outcome(command_id)) is not None
    letter = await given.take(DEAD_LETTER_QUEUE)
    assert json.loads(letter.body)["id"] == command_id
    assert letter.headers["x-first-death-reason"] == "delivery_limit"


async def test_a_command_claimed_but_not_recorded_is_an_unknown_outcome(given: Given) -> None:
    command_id = await given.command()
    await given.store.claim(command_id, owner="a-process-that-died", lease=30)
    await given.hand_back_past_the_limit(command_queue("trigger-batch"))
    await given.app.start_worker(["trigger-batch"])
    event = await given.events.terminal(command_id)
    assert event["data"]["error"]["kind"] == "unknown_outcome"
    assert given.sims.sims.ledger.entries("pbsm.trigger") == []


async def test_a_command_whose_run_was_started_is_followed_to_its_end(given: Given) -> None:
    command_id = await given.command()
    # The process triggered the vendor and recorded it, then died before settling.
    handler = given.app.registry.handler("trigger-batch", "default")
    from contracts.commands import TriggerBatch

    triggered = await handler.trigger(TriggerBatch(**BATCH), command_id=command_id)
    vendor_ref = dict(triggered.vendor_ref)
    await given.store.record_trigger(
        command_id, vendor_ref, run={"command_type": "trigger-batch", "connection": "default"}
    )
    await given.hand_back_past_the_limit(command_queue("trigger-batch"))
    await given.app.start_worker(["trigger-batch"])
    await given.app.start_poller()
    event = await given.events.terminal(command_id)
    assert event["type"].endswith(".succeeded")
    assert event["data"]["vendor_ref"] == vendor_ref
    assert len(given.sims.sims.ledger.entries("pbsm.trigger")) == 1


async def test_a_command_with_an_outcome_gets_that_outcome_again(given: Given) -> None:
    command_id = await given.command()
    await given.hand_back_past_the_limit(command_queue("trigger-batch"))
    recorded = {
        "kind": "succeeded",
        "data": {
            "command_id": command_id,
            "command_type": "trigger-batch",
            "connection": "default",
            "vendor_ref": {"jobId": "41"},
            "status": "COMPLETED",
        },
    }
    await given.store.record_outcome(command_id, recorded)
    await given.app.start_worker(["trigger-batch"])
    event = await given.events.terminal(command_id)
    assert event["type"].endswith(".succeeded")
    assert event["data"]["vendor_ref"] == {"jobId": "41"}


@pytest.mark.parametrize("via_ladder", [False, True], ids=["straight", "via-delay-ladder"])
async def test_a_poll_request_nobody_settled_ends_its_run_failed(
    given: Given, via_ladder: bool
) -> None:
    """Through the delay ladder first, its first death is `expired` in a delay queue: the one
    that says why it is a dead letter is the last (the soak of 2026-11-25 lost runs so)."""
    command_id = str(uuid.uuid4())
    now = time.time()
    request = PollRequest(
        command_id=command_id,
        command_type="run-partner",
        connection="default",
        vendor_ref={"runId": "7"},
        started_at=now,
        deadline=now + 60,
        reply_to=None,
    )
    message = OutgoingMessage(body=request.model_dump_json().encode(), message_id=command_id)
    if via_ladder:
        key = delay_routing_key(DELAY_TIERS_MS[0], POLL_QUEUE)
        await given.broker.publish(DELAY_EXCHANGE, key, message)
    else:
        await given.broker.publish("", POLL_QUEUE, message)
    await given.hand_back_past_the_limit(POLL_QUEUE)
    await given.app.start_worker(["run-partner"])  # no poller: only the answer can end it
    event = await given.events.terminal(command_id)
    assert event["type"] == "flowgate.run-partner.failed"
    assert event["data"]["error"]["kind"] == "internal"
    assert event["data"]["vendor_ref"] == {"runId": "7"}
    assert "stopped following the run" in event["data"]["error"]["message"]


async def test_flowgates_own_dead_letters_are_not_answered_twice(sims: RunningSimulators) -> None:
    """A copy of every dead letter reaches `flowgate.given-up`; one flowgate wrote was
    answered when written, and its copy is only acked."""
    settings = fast_settings("amqp://unused/", sims.base_url, delivery_limit=1)
    broker = QuietBroker()
    app = Flowgate(settings, broker)
    await app.connect()
    events = await collect_events(broker)
    await app.start_worker(["trigger-batch"])
    try:
        command_id = str(uuid.uuid4())
        body, content_type = encode_command("trigger-batch", {"batch": ""}, command_id=command_id)
        await broker.publish(
            COMMANDS_EXCHANGE,
            "trigger-batch",
            OutgoingMessage(body=body, content_type=content_type, message_id=command_id),
        )
        await events.terminal(command_id)
        await broker.until_at_rest()
        assert events.kinds(command_id) == ["failed"]
        assert await broker.queue_length(GIVEN_UP_QUEUE) == 0
        assert await broker.queue_length(DEAD_LETTER_QUEUE) == 1
    finally:
        await app.stop()
