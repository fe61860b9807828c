"""Short waits between status calls are held in the poller; long ones go round the delay ladder.

On the in-memory broker with the simulators: which exchange each poll request went through, how
many status calls the vendor saw, what a stop or a lost channel does to a held run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from contracts import TERMINAL_KINDS, EventKind, encode_command
from tests.conftest import Events, fast_settings
from tests.quiet import QuietBroker
from tests.waiting import wait_until
from workers.app import Flowgate
from workers.broker.base import Binding, OutgoingMessage, Queue, Topology
from workers.demo import SAMPLE_COMMANDS
from workers.poller.request import PollRequest
from workers.settlement import Work
from workers.simulators import SimulatorConfig, Simulators, serve
from workers.topology import (
    COMMANDS_EXCHANGE,
    DELAY_EXCHANGE,
    EVENTS_EXCHANGE,
    POLL_QUEUE,
    RETRY_EXCHANGE,
)


class RecordingBroker(QuietBroker):
    """An in-memory broker that remembers where every poll request was published."""

    def __init__(self) -> None:
        super().__init__()
        self.poll_publishes: list[str] = []  # the exchange of each

    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        if routing_key.endswith(f".{POLL_QUEUE}"):
            self.poll_publishes.append(exchange)
        await super().publish(exchange, routing_key, message)


@dataclass
class Run:
    broker: RecordingBroker
    sims: Simulators
    app: Flowgate
    events: Events = field(default_factory=Events)

    async def publish(self, command_type: str) -> str:
        command_id = str(uuid.uuid4())
        body, content_type = encode_command(
            command_type, SAMPLE_COMMANDS[command_type], command_id=command_id
        )
        message = OutgoingMessage(body=body, content_type=content_type, message_id=command_id)
        await self.broker.publish(COMMANDS_EXCHANGE, command_type, message)
        return command_id


@asynccontextmanager
async def system(
    run_seconds: float, *, consume_polls: bool = True, **overrides: Any
) -> AsyncIterator[Run]:
    config = SimulatorConfig()
    config.robusta.run_seconds = run_seconds
    sims = Simulators(config)
    async with serve(sims) as running:
        settings = fast_settings("amqp://unused/", running.base_url, **overrides)
        broker = RecordingBroker()
        app = Flowgate(settings, broker)
        run = Run(broker, sims, app)
        try:
            await app.start_worker(["start-process"])
            if consume_polls:
                await app.start_poller()
            await broker.declare(
                Topology(
                    queues=(Queue("watch"),), bindings=(Binding(EVENTS_EXCHANGE, "watch", "#"),)
                )
            )
            await broker.consume("watch", run.events.on_delivery, prefetch=64)
            yield run
        finally:
            await app.stop()


async def test_short_waits_are_held_and_only_changes_are_checkpointed() -> None:
    async with system(run_seconds=1.5) as run:
        command_id = await run.publish("start-process")
        event = await run.events.terminal(command_id, timeout=10)
        assert event["type"] == "flowgate.start-process.succeeded"
        calls = len(run.sims.ledger.entries("robusta.status"))
        progress = run.events.kinds(command_id).count("progress")
        # WAITING -> RUNNING -> SUCCEEDED: a few unchanged answers were polled in between.
        assert progress >= 1
        assert calls > progress + 1, (calls, progress)
        # Every wait was short: nothing went round the delay ladder. The worker's first request
        # and one per announced change went straight to the poll queue; the unchanged polls
        # were held and cost no message at all.
        assert DELAY_EXCHANGE not in run.broker.poll_publishes
        assert run.broker.poll_publishes == [RETRY_EXCHANGE] * (1 + progress)


async def test_without_hold_every_wait_goes_round_the_delay_ladder() -> None:
    async with system(run_seconds=1.5, poller={"hold": 0.0}) as run:
        command_id = await run.publish("start-process")
        event = await run.events.terminal(command_id, timeout=10)
        assert event["type"] == "flowgate.start-process.succeeded"
        calls = len(run.sims.ledger.entries("robusta.status"))
        # At least one trip per status call except the last, which ends the run; nothing
        # straight to the poll queue.
        assert RETRY_EXCHANGE not in run.broker.poll_publishes
        assert len(run.broker.poll_publishes) >= calls


async def test_a_full_poller_sends_waits_round_the_ladder_instead_of_holding() -> None:
    async with system(run_seconds=1.5, poller={"hold": 2.0, "max_held": 0}) as run:
        command_id = await run.publish("start-process")
        await run.events.terminal(command_id, timeout=10)
        assert run.app.poller.held == 0
        assert DELAY_EXCHANGE in run.broker.poll_publishes


class HeldDelivery:
    """A poll request delivery whose channel a test can 'close' while the poller holds it."""

    def __init__(self, request: PollRequest) -> None:
        self.body = request.model_dump_json().encode()
        self.content_type: str | None = "application/json"
        self.headers: Mapping[str, Any] = {}
        self.routing_key = f"d0.{POLL_QUEUE}"
        self.exchange = RETRY_EXCHANGE
        self.message_id: str | None = None
        self.reply_to: str | None = None
        self.user_id: str | None = None
        self.redelivered = False
        self.delivery_count = 0
        self.settled = False
        self.lost = False

    async def ack(self) -> None:
        self.settled = True

    async def requeue(self) -> None:
        self.settled = True

    async def reject(self) -> None:
        self.settled = True


async def _started_run(run: Run) -> PollRequest:
    """Trigger a real Robusta run and return a poll request for it, its call due in 1 s."""
    command_id = await run.publish("start-process")
    async with asyncio.timeout(5), run.events.changed:
        await run.events.changed.wait_for(lambda: "accepted" in run.events.kinds(command_id))
    accepted = run.events.by_command[command_id][0]
    return PollRequest(
        command_id=command_id,
        command_type="start-process",
        connection="default",
        vendor_ref=accepted["data"]["vendor_ref"],
        started_at=time.time(),
        deadline=time.time() + 60,
        due_at=time.time() + 1.0,
    )


async def test_a_held_run_whose_channel_closed_is_dropped_without_a_call() -> None:
    # No poller consuming: the only chain for this run is the one the test hands in.
    async with system(run_seconds=30, consume_polls=False) as run:
        request = await _started_run(run)
        calls_before = len(run.sims.ledger.entries("robusta.status"))
        delivery = HeldDelivery(request)
        task = asyncio.create_task(
            run.app.settler.run(Work(delivery, POLL_QUEUE), run.app.poller.handle)
        )
        await wait_until(lambda: run.app.poller.held >= 1)
        delivery.lost = True  # the broker has given it to someone else by now
        await asyncio.wait_for(task, 3)
        assert not delivery.settled, "a lost delivery must not be acked"
        statuses = run.sims.ledger.entries("robusta.status")
        assert [
            e for e in statuses[calls_before:] if request.vendor_ref["robusta_spid"] in e.path
        ] == []


async def test_release_hands_held_runs_back_at_once() -> None:
    async with system(run_seconds=30, consume_polls=False) as run:
        request = await _started_run(run)
        delivery = HeldDelivery(request)
        task = asyncio.create_task(
            run.app.settler.run(Work(delivery, POLL_QUEUE), run.app.poller.handle)
        )
        await wait_until(lambda: run.app.poller.held >= 1)
        published = len(run.broker.poll_publishes)
        started = asyncio.get_running_loop().time()
        run.app.poller.release()
        await asyncio.wait_for(task, 1)
        assert asyncio.get_running_loop().time() - started < 0.5, "stop waited out the hold"
        assert delivery.settled, "handed back, so acked"
        # Handed back round the delay ladder, due when it was due before.
        assert run.broker.poll_publishes[published:] == [DELAY_EXCHANGE]
        # A released poller holds nothing new either.
        assert run.app.poller.held == 0


async def test_terminal_events_stay_single_with_holds_under_load() -> None:
    async with system(run_seconds=0.8) as run:
        ids = [await run.publish("start-process") for _ in range(40)]
        async with asyncio.timeout(20):
            await asyncio.gather(*(run.events.terminal(c) for c in ids))
        await run.broker.until_at_rest()  # a duplicate would be in by then
        for command_id in ids:
            terminal = [k for k in run.events.kinds(command_id) if EventKind(k) in TERMINAL_KINDS]
            assert terminal == ["succeeded"]
        assert len(run.sims.ledger.entries("robusta.start")) == 40
