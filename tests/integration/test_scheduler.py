"""`flowgate scheduler` on the real RabbitMQ and Redis: a schedule publishes its command on
time, with the fire's id and data, two schedulers (or a restart in the fire minute) publish
each fire once, and its health port says it is ready and counts the fires.

Each scheduler is `workers.scheduler.run`, in a thread, as `flowgate scheduler` runs it, on a
clock shifted so that a chosen fire time (Monday 06:00 in Paris) is 1.5 s away in real time:
beat waits the real 1.5 s for it, nothing waits a minute. The commands are read from a queue
of the test's own bound to `flowgate.commands`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import EventData, EventKind, TriggerBatch, encode_event
from flowgate_client.sync import Client
from tests.conftest import fast_settings
from tests.waiting import poll_until, wait_until
from workers.app import Flowgate
from workers.broker import AmqpBroker, Binding, Delivery, OutgoingMessage, Queue, Topology
from workers.metrics import Metrics, installed
from workers.scheduler import SOURCE, Schedule, command_id, load_schedules, run
from workers.settings import Settings
from workers.topology import COMMANDS_EXCHANGE

pytestmark = pytest.mark.integration

SCHEDULES = """
[NIGHTLY]
command = "trigger-batch"
cron = "0 6 * * 1-5"
timezone = "Europe/Paris"
deadline_after = "4h"
data = { batch = "NIGHTLY", params = { "$FICMISDATE$" = "{{ previous_business_day }}" } }
"""
MONDAY = datetime(2026, 3, 30, 4, tzinfo=UTC)  # 06:00 in Paris, the day after the clocks change
TUESDAY = MONDAY + timedelta(days=1)
LEAD = 1.5
SENTINEL = "end-of-test-sentinel"


class ShiftedClock:
    """The wall clock, shifted; `aim` puts a fire time `lead` real seconds ahead."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def aim(self, fire_time: datetime, lead: float = LEAD) -> None:
        self.shift = fire_time - timedelta(seconds=lead) - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


@dataclass
class Commands:
    """Every message of the test's queue, in order; `barrier` returns once everything
    published before it was read."""

    broker: AmqpBroker
    queue: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_delivery(self, delivery: Delivery) -> None:
        async with self.changed:
            self.bodies.append(json.loads(delivery.body))
            self.changed.notify_all()
        await delivery.ack()

    async def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: len(self.bodies) >= count)
        return list(self.bodies)

    async def barrier(self) -> list[dict[str, Any]]:
        """The commands read so far, once a message published now has come through: the queue
        keeps its order, so nothing confirmed before this call is still on its way."""
        body = json.dumps({"id": SENTINEL}).encode()
        await self.broker.publish("", self.queue, OutgoingMessage(body=body))
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(lambda: any(b["id"] == SENTINEL for b in self.bodies))
        commands = [b for b in self.bodies if b["id"] != SENTINEL]
        self.bodies[:] = commands
        return commands


@pytest.fixture
def settings(amqp_url: str) -> Settings:
    return fast_settings(amqp_url, "http://127.0.0.1:9", store="redis")


@pytest.fixture
def schedules(tmp_path: Path) -> list[Schedule]:
    path = tmp_path / "schedules.toml"
    path.write_text(SCHEDULES)
    return load_schedules(path)


@pytest.fixture
async def commands(settings: Settings) -> AsyncIterator[Commands]:
    """A queue of the test's own, bound to flowgate.commands for trigger-batch."""
    broker = AmqpBroker(settings.amqp_url.get_secret_value())
    app = Flowgate(settings, broker)
    await app.connect()  # flowgate's exchanges first
    name = f"test.scheduled.{uuid.uuid4().hex[:8]}"
    await broker.declare(
        Topology(
            queues=(Queue(name, durable=False, arguments={"x-expires": 60_000}),),
            bindings=(Binding(COMMANDS_EXCHANGE, name, "trigger-batch"),),
        )
    )
    collected = Commands(broker, name)
    await broker.consume(name, collected.on_delivery, prefetch=64)
    try:
        yield collected
    finally:
        await app.stop()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="flowgate.scheduler")
    return caplog


def outcomes(logs: pytest.LogCaptureFixture, fire_time: datetime) -> list[str]:
    at = fire_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return sorted(r.__dict__["outcome"] for r in logs.records if r.__dict__.get("fire_time") == at)


def decided(logs: pytest.LogCaptureFixture, fire_time: datetime, count: int) -> Callable[[], bool]:
    """Whether `count` schedulers logged what they did with `fire_time`."""
    return lambda: len(outcomes(logs, fire_time)) == count


def running(logs: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage().startswith("scheduler running") for r in logs.records)


@asynccontextmanager
async def schedulers(
    count: int,
    settings: Settings,
    schedules: list[Schedule],
    clock: ShiftedClock,
    logs: pytest.LogCaptureFixture,
) -> AsyncIterator[None]:
    """`count` schedulers, each as `flowgate scheduler` runs, in threads; stopped on exit."""
    stop = threading.Event()
    already = running(logs)
    threads = [
        threading.Thread(
            target=run,
            args=(settings, schedules),
            kwargs={"stop": stop, "clock": clock, "max_interval": 0.5},
            name=f"scheduler-{index}",
        )
        for index in range(count)
    ]
    for thread in threads:
        thread.start()
    try:
        await wait_until(lambda: running(logs) == already + count, timeout=30)
        yield
    finally:
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)
        assert not any(thread.is_alive() for thread in threads)


async def test_a_schedule_publishes_its_command_on_time(
    settings: Settings,
    schedules: list[Schedule],
    commands: Commands,
    logs: pytest.LogCaptureFixture,
) -> None:
    clock = ShiftedClock()
    clock.aim(MONDAY, lead=600)  # nothing due while it starts
    async with schedulers(1, settings, schedules, clock, logs):
        clock.aim(MONDAY)
        (command,) = await commands.wait_for(1, timeout=LEAD + 10)
        published = datetime.fromisoformat(command["time"]) + clock.shift
    assert command["id"] == command_id("NIGHTLY", MONDAY)
    assert command["type"] == "flowgate.trigger-batch"
    assert command["source"] == SOURCE
    # Monday's previous business day is the Friday before (and the clocks changed on Sunday).
    assert command["data"] == {"batch": "NIGHTLY", "params": {"$FICMISDATE$": "2026-03-27"}}
    assert command["deadline"] == "2026-03-30T08:00:00Z"
    # On time: published within a second after its fire time, on the scheduler's clock.
    assert MONDAY <= published < MONDAY + timedelta(seconds=1), published - MONDAY
    assert outcomes(logs, MONDAY) == ["sent"]
    assert await commands.barrier() == [command]


async def test_two_schedulers_publish_one_command_per_fire(
    settings: Settings,
    schedules: list[Schedule],
    commands: Commands,
    logs: pytest.LogCaptureFixture,
) -> None:
    clock = ShiftedClock()
    clock.aim(MONDAY, lead=600)
    async with schedulers(2, settings, schedules, clock, logs):
        for fire_time in (MONDAY, TUESDAY):
            clock.aim(fire_time)
            # Both have decided: one sent (confirmed by RabbitMQ), the other found it claimed.
            await wait_until(decided(logs, fire_time, 2), timeout=LEAD + 10)
            assert outcomes(logs, fire_time) == ["claimed", "sent"]
    published = await commands.barrier()
    assert [c["id"] for c in published] == [
        command_id("NIGHTLY", MONDAY),
        command_id("NIGHTLY", TUESDAY),
    ]
    assert [c["data"]["params"]["$FICMISDATE$"] for c in published] == [
        "2026-03-27",
        "2026-03-30",
    ]


async def test_a_restart_in_the_fire_minute_does_not_publish_again(
    settings: Settings,
    schedules: list[Schedule],
    commands: Commands,
    logs: pytest.LogCaptureFixture,
) -> None:
    clock = ShiftedClock()
    clock.aim(MONDAY, lead=600)
    async with schedulers(1, settings, schedules, clock, logs):
        clock.aim(MONDAY)
        await commands.wait_for(1, timeout=LEAD + 10)
    # A new process within the grace finds the slot due again, and its claim taken.
    async with schedulers(1, settings, schedules, clock, logs):
        await wait_until(decided(logs, MONDAY, 2), timeout=10)
    assert outcomes(logs, MONDAY) == ["claimed", "sent"]
    assert [c["id"] for c in await commands.barrier()] == [command_id("NIGHTLY", MONDAY)]


def health_port(logs: pytest.LogCaptureFixture) -> int:
    (port,) = [r.__dict__["health_port"] for r in logs.records if "health_port" in r.__dict__]
    return int(port)


def sample(page: httpx.Response, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(page.text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


async def test_the_health_port_says_ready_and_counts_the_fires(
    settings: Settings,
    schedules: list[Schedule],
    commands: Commands,
    logs: pytest.LogCaptureFixture,
) -> None:
    """`health_port` set: /healthz, /readyz (beat running, RabbitMQ and Redis answering) and
    /metrics, where the sent-fires counter goes from 0 to 1 with a fire."""
    settings = settings.model_copy(update={"health_host": "127.0.0.1", "health_port": 0})
    clock = ShiftedClock()
    clock.aim(MONDAY, lead=600)
    sent = {"schedule": "NIGHTLY", "outcome": "sent"}
    with installed(Metrics()):
        async with (
            schedulers(1, settings, schedules, clock, logs),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{health_port(logs)}") as http,
        ):
            assert (await http.get("/healthz")).text == "ok\n"
            ready = await poll_until(
                lambda: http.get("/readyz"), lambda r: r.status_code == 200, timeout=10
            )
            assert ready.json() == {
                "ready": True,
                "checks": {"schedules": 1, "beat": "running", "rabbitmq": "ok", "redis": "ok"},
            }
            before = await http.get("/metrics")
            assert sample(before, "flowgate_scheduler_fires_total", **sent) == 0
            clock.aim(MONDAY)
            await commands.wait_for(1, timeout=LEAD + 10)
            after = await poll_until(
                lambda: http.get("/metrics"),
                lambda r: sample(r, "flowgate_scheduler_fires_total", **sent) == 1,
            )
    last = sample(after, "flowgate_scheduler_last_fire_timestamp_seconds", schedule="NIGHTLY")
    assert last == MONDAY.timestamp()
    assert outcomes(logs, MONDAY) == ["sent"]


async def test_waiting_reads_the_events_that_come_back(
    settings: Settings, commands: Commands
) -> None:
    """Between fires the scheduler drains its client (`Client.drain`): what flowgate sends
    back to its reply queue is read and acked there, not left to pile up for months."""
    client = Client(settings.amqp_url.get_secret_value(), source=SOURCE)
    await asyncio.to_thread(client.connect)
    try:
        handle = await asyncio.to_thread(client.send, TriggerBatch(batch="B"))
        data = EventData(command_id=handle.id, command_type="trigger-batch", connection="default")
        body = encode_event(EventKind.SUCCEEDED, data)
        await commands.broker.publish("", client.reply_queue, OutgoingMessage(body=body))
        async with asyncio.timeout(10):
            while not handle.done:
                await asyncio.to_thread(client.drain, 0.5)
    finally:
        await asyncio.to_thread(client.close)
    assert [c["id"] for c in await commands.barrier()] == [handle.id]
