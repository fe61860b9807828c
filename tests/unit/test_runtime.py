"""What the worker and the poller share (`workers/runtime.py`): rules that mutants slipped past.

- `Outcomes.finish` publishes the outcome the store says stands (the first one recorded), not
  the one it was handed: two poll chains for one run must never publish two different terminal
  events.
- `redelay_if_early` obeys `x-flowgate-due` only on deliveries from flowgate's own delay ladder
  (`flowgate.retry`). Even there a non-finite due is ignored (the message is handled now) and a
  far one goes round again for at most the cap, never parked for years.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import pytest

from contracts import ErrorInfo, ErrorKind, EventData, EventKind, event_id
from tests.recording import FakeDelivery
from workers.broker.base import Binding, Exchange, Queue, Topology
from workers.broker.memory import MemoryBroker
from workers.idempotency import MemoryStore
from workers.outcome import Later
from workers.publisher import DUE_HEADER, Context, Publisher
from workers.runtime import Outcomes, redelay_if_early
from workers.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE

CID = "5f1c2d8e-0a51-4d34-9a3e-7d1f2b6c9e01"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
QUEUE = "flowgate.cmd.trigger-batch"
# The promise: flowgate never schedules a delay over two days, so a forged due cannot park a
# command for longer (`_MAX_DELAY` in workers/runtime.py).
MAX_DELAY = 2 * 86400.0


# --- Outcomes.finish ----------------------------------------------------------------------


async def events_broker() -> MemoryBroker:
    """A MemoryBroker where every event lands in the queue `watch`."""
    broker = MemoryBroker()
    await broker.declare(
        Topology(
            exchanges=(Exchange(EVENTS_EXCHANGE),),
            queues=(Queue("watch"),),
            bindings=(Binding(EVENTS_EXCHANGE, "watch", "#"),),
        )
    )
    return broker


async def published_events(broker: MemoryBroker) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(routing key, message id, CloudEvent) of every event published so far."""
    seen: list[tuple[str, str | None, dict[str, Any]]] = []
    while (delivery := await broker.get("watch")) is not None:
        seen.append((delivery.routing_key, delivery.message_id, json.loads(delivery.body)))
        await delivery.ack()
    return seen


def data(**fields: Any) -> EventData:
    return EventData(command_id=CID, command_type="trigger-batch", connection="pbsm-prod", **fields)


async def test_finish_publishes_the_outcome_that_stands_not_its_own() -> None:
    broker = await events_broker()
    store = MemoryStore()
    outcomes = Outcomes(store, Publisher(broker))
    # One poll chain finished the run...
    first = data(vendor_ref={"batch_run_id": "R1"}, status="SUCCESSFUL", result={"rows": 3})
    standing = {"kind": "succeeded", "data": first.model_dump(mode="json")}
    await store.record_outcome(CID, standing)
    # ...and a second chain for the same run (after a redelivery) saw something else.
    late = data(
        vendor_ref={"batch_run_id": "R1"},
        status="FAILED",
        error=ErrorInfo(kind=ErrorKind.VENDOR_FAILED, message="the second chain's view"),
    )
    await outcomes.finish(EventKind.FAILED, late, Context(traceparent=TRACEPARENT))

    ((routing_key, message_id, event),) = await published_events(broker)
    assert event["type"] == "flowgate.trigger-batch.succeeded"
    assert routing_key == "trigger-batch.succeeded"
    assert event["data"] == first.model_dump(mode="json")
    # The same event (same id) the first chain published: consumers deduplicate on it.
    assert message_id == event["id"] == event_id(CID, EventKind.SUCCEEDED)
    assert event["traceparent"] == TRACEPARENT
    assert await store.outcome(CID) == standing, "the standing outcome is never replaced"


async def test_finish_records_and_publishes_the_first_outcome() -> None:
    broker = await events_broker()
    store = MemoryStore()
    outcomes = Outcomes(store, Publisher(broker))
    failed = data(
        status="FAILED", error=ErrorInfo(kind=ErrorKind.VENDOR_FAILED, message="batch failed")
    )
    await outcomes.finish(EventKind.FAILED, failed, Context())

    ((routing_key, _, event),) = await published_events(broker)
    assert (routing_key, event["type"]) == ("trigger-batch.failed", "flowgate.trigger-batch.failed")
    assert event["data"] == failed.model_dump(mode="json")
    assert await store.outcome(CID) == {"kind": "failed", "data": failed.model_dump(mode="json")}


# --- redelay_if_early ---------------------------------------------------------------------


def back_from_the_ladder(due: float) -> FakeDelivery:
    """A command back from the 250 ms delay queue, as RabbitMQ dead-letters it."""
    headers = {
        DUE_HEADER: due,
        "x-first-death-queue": "flowgate.delay.250",
        "x-flowgate-attempt": 2,
    }
    return FakeDelivery(
        b'{"specversion": "1.0"}',
        headers=headers,
        content_type="application/cloudevents+json",
        routing_key=f"d250.{QUEUE}",
        message_id="m-1",
    )


def in_ms(seconds: float) -> int:
    """`x-flowgate-due` for `seconds` from now, as `Publisher.delayed` writes it."""
    return int((time.time() + seconds) * 1000)


@pytest.mark.parametrize("due", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
async def test_non_finite_due_from_the_ladder_is_processed_now(due: float) -> None:
    delivery = back_from_the_ladder(due)
    async with asyncio.timeout(1):  # now: neither sent round again nor waited for
        early = await redelay_if_early(delivery)
    assert early is None
    assert delivery.settlements == [], "left to the caller to process and settle"


@pytest.mark.parametrize("ahead", [10 * 365 * 86400.0, 1e297], ids=["ten-years", "1e297-s"])
async def test_far_due_from_the_ladder_is_redelayed_by_at_most_the_cap(ahead: float) -> None:
    delivery = back_from_the_ladder(in_ms(ahead))
    early = await redelay_if_early(delivery)
    assert isinstance(early, Later)
    assert 0 < early.delay <= MAX_DELAY, f"parked for {early.delay / 86400:.0f} days"
    assert early.body is None, "the same body goes round again"
    # The old due goes (`Publisher.delayed` writes a new one); every other header stays.
    assert early.headers is not None
    assert dict(early.headers) == {k: v for k, v in delivery.headers.items() if k != DUE_HEADER}
    assert delivery.settlements == [], "acked by the caller once the copy is confirmed"


async def test_early_message_from_the_ladder_goes_round_for_the_rest() -> None:
    # The control for the two tests above: a plausible due is obeyed, in full.
    early = await redelay_if_early(back_from_the_ladder(in_ms(30.0)))
    assert isinstance(early, Later)
    assert 29.0 < early.delay <= 30.0


async def test_message_due_already_is_processed_now() -> None:
    delivery = back_from_the_ladder(in_ms(-5.0))
    assert await redelay_if_early(delivery) is None
    assert delivery.settlements == []


async def test_due_header_is_ignored_on_a_message_not_from_the_ladder() -> None:
    delivery = back_from_the_ladder(in_ms(30.0))
    delivery.exchange = COMMANDS_EXCHANGE  # any publisher can set the headers
    assert await redelay_if_early(delivery) is None
    assert delivery.settlements == []
