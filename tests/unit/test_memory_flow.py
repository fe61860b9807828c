"""The whole system on the in-memory broker: worker, poller, delay ladder and the simulators."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import TERMINAL_KINDS, EventKind, encode_command
from tests.conftest import Events, fast_settings
from tests.quiet import QuietBroker
from workers.app import Flowgate
from workers.broker.base import Binding, OutgoingMessage, Queue, Topology
from workers.demo import SAMPLE_COMMANDS
from workers.simulators import SimulatorConfig, Simulators, serve
from workers.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE

WATCH = "test.events"


@dataclass
class Memory:
    broker: QuietBroker
    sims: Simulators
    events: Events

    async def publish(self, command_type: str, data: dict[str, Any], **kwargs: Any) -> str:
        command_id = str(uuid.uuid4())
        body, content_type = encode_command(command_type, data, command_id=command_id, **kwargs)
        message = OutgoingMessage(body=body, content_type=content_type, message_id=command_id)
        await self.broker.publish(COMMANDS_EXCHANGE, command_type, message)
        return command_id

    async def settled(self, command_ids: list[str]) -> None:
        """Wait for every terminal event, then until nothing can happen any more: a duplicate
        would be in by then."""
        async with asyncio.timeout(15):
            await asyncio.gather(*(self.events.terminal(c) for c in command_ids))
        await self.broker.until_at_rest()


@asynccontextmanager
async def memory_system(
    run_seconds: float = 0.3, tweak: Callable[[SimulatorConfig], None] | None = None
) -> AsyncIterator[Memory]:
    config = SimulatorConfig()
    for vendor in (config.informatica, config.robusta, config.tmf622, config.pbsm):
        vendor.run_seconds = run_seconds
    if tweak is not None:
        tweak(config)
    sims = Simulators(config)
    async with serve(sims) as running:
        settings = fast_settings("amqp://unused/", running.base_url)
        broker = QuietBroker()
        app = Flowgate(settings, broker)
        try:
            await app.start_worker(sorted(SAMPLE_COMMANDS))
            await app.start_poller()
            events = Events()
            await broker.declare(
                Topology(queues=(Queue(WATCH),), bindings=(Binding(EVENTS_EXCHANGE, WATCH, "#"),))
            )
            await broker.consume(WATCH, events.on_delivery, prefetch=256)
            yield Memory(broker, sims, events)
        finally:
            await app.stop()


def kinds(events: Events, command_id: str) -> list[str]:
    return events.kinds(command_id)


async def test_every_command_type_runs_to_success() -> None:
    async with memory_system() as system:
        ids = {t: await system.publish(t, data) for t, data in SAMPLE_COMMANDS.items()}
        await system.settled(list(ids.values()))
        for command_type, command_id in ids.items():
            seen = system.events.by_command[command_id]
            names = kinds(system.events, command_id)
            terminal = [k for k in names if EventKind(k) in TERMINAL_KINDS]
            assert terminal == ["succeeded"], (command_type, names)
            assert names[-1] == "succeeded", (command_type, names)
            if "accepted" in names:
                assert names[0] == "accepted" and names.count("accepted") == 1
            for event in seen:
                assert event["data"]["command_type"] == command_type
                assert event["data"]["connection"] == "default"
                assert event["subject"] == command_id
                assert event["_routing_key"] == f"{command_type}.{event['type'].rsplit('.')[-1]}"
            assert len({e["id"] for e in seen}) == len(seen), "event ids repeat"
        # The polled vendors answer `accepted` first; only TMF622's PATCH is synchronous.
        for command_type in ("run-partner", "start-process", "trigger-batch"):
            assert kinds(system.events, ids[command_type])[0] == "accepted"
        assert await system.broker.queue_length("flowgate.dead-letters") == 0


async def test_poll_past_command_deadline_fails_with_kind_deadline() -> None:
    async with memory_system(run_seconds=30) as system:
        deadline = datetime.now(UTC) + timedelta(seconds=1)
        command_id = await system.publish(
            "run-partner", SAMPLE_COMMANDS["run-partner"], deadline=deadline
        )
        started = asyncio.get_running_loop().time()
        event = await system.events.terminal(command_id, timeout=10)
        elapsed = asyncio.get_running_loop().time() - started
        assert event["type"] == "flowgate.run-partner.failed"
        error = event["data"]["error"]
        assert error["kind"] == "deadline"
        assert "deadline" in error["message"]
        assert event["data"]["vendor_ref"], "the run it gave up on is named"
        assert 0.8 <= elapsed < 4.0, f"gave up after {elapsed:.2f}s for a 1s deadline"
        await system.broker.until_at_rest()
        names = kinds(system.events, command_id)
        assert names[0] == "accepted"
        assert [k for k in names if EventKind(k) in TERMINAL_KINDS] == ["failed"]


async def test_progress_published_only_when_status_changes() -> None:
    async with memory_system(run_seconds=1.5) as system:
        command_id = await system.publish("run-partner", SAMPLE_COMMANDS["run-partner"])
        await system.settled([command_id])
        seen = system.events.by_command[command_id]
        assert seen[-1]["type"] == "flowgate.run-partner.succeeded"
        statuses = [e["data"]["status"] for e in seen if e["type"].endswith(".progress")]
        assert statuses, "a 1.5 s run with 0.25-1 s polls reports progress"
        accepted = seen[0]["data"]["status"]
        for before, after in zip([accepted, *statuses], statuses, strict=False):
            assert before != after, f"progress repeated status {after!r}: {statuses}"
        polls = system.sims.ledger.entries("informatica.status")
        assert len(polls) > len(statuses) + 1, "some polls saw no change and stayed silent"
