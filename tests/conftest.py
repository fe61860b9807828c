"""Shared fixtures: a private RabbitMQ vhost per test session, simulators on a real port,
an in-process flowgate (worker + poller) and an event collector.

RabbitMQ is required: if it cannot be reached the fixtures fail loudly (`scripts/test`
starts it first); no test is skipped for want of a broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from contracts import TERMINAL_KINDS, EventKind, encode_command
from workers.app import Flowgate
from workers.broker import AmqpBroker, Binding, Delivery, OutgoingMessage, Queue, Topology
from workers.broker.base import Broker
from workers.commands import COMMANDS
from workers.idempotency import IdempotencyStore
from workers.settings import Settings
from workers.simulators import RunningSimulators, SimulatorConfig, Simulators, serve
from workers.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE

RABBIT_HOST = os.environ.get("FLOWGATE_TEST_RABBIT_HOST", "127.0.0.1")
REDIS_URL = os.environ.get("FLOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A fresh vhost for this session, so tests never see a developer's queues (or leave theirs)."""
    vhost = f"flowgate-test-{uuid.uuid4().hex[:8]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"RabbitMQ is not usable (run scripts/services): {exc}", pytrace=False)
    yield f"amqp://guest:guest@{RABBIT_HOST}:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


@asynccontextmanager
async def private_vhost(name: str) -> AsyncIterator[str]:
    """The URL of a vhost of this test's own, deleted afterwards: for a test that closes
    every connection on it, or must see no other test's messages."""
    vhost = f"flowgate-test-{name}-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(_rabbitmqctl, "add_vhost", vhost)
    try:
        await asyncio.to_thread(
            _rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"
        )
        yield f"amqp://guest:guest@{RABBIT_HOST}:5672/{vhost}"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            await asyncio.to_thread(_rabbitmqctl, "delete_vhost", vhost)


def fast_settings(
    amqp_url: str,
    base_url: str,
    *,
    store: str = "memory",
    connections: dict[str, dict[str, dict[str, Any]]] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings for tests: short polls and retries, connections on the simulators.

    `store="redis"` uses the real Redis with a key prefix of this test's own."""
    timing = {
        "base_url": base_url,
        "timeout": 2.0,
        "poll": {"first_delay": 0.25, "factor": 1.5, "max_delay": 1.0, "max_duration": 60},
        "retry": {"first_delay": 0.25, "factor": 2.0, "max_delay": 1.0, "max_attempts": 4},
    }
    vendors: dict[str, dict[str, dict[str, Any]]] = {
        v.name: {"default": dict(timing)} for v in COMMANDS.vendors
    }
    for vendor, named in (connections or {}).items():
        for name, fields in named.items():
            vendors[vendor][name] = {**timing, **vendors[vendor].get(name, {}), **fields}
    idempotency = {"store": store, "key_prefix": f"flowgate-test:{uuid.uuid4().hex[:8]}:"}
    return Settings(
        amqp_url=amqp_url, prefetch=64, idempotency=idempotency, **{**vendors, **overrides}
    )


@pytest.fixture
async def sims() -> AsyncIterator[RunningSimulators]:
    config = SimulatorConfig()
    for vendor in (config.informatica, config.robusta, config.tmf622, config.pbsm):
        vendor.run_seconds = 0.4
    async with serve(Simulators(config)) as running:
        yield running


@dataclass
class Events:
    """Every event seen on flowgate.events, by command id."""

    by_command: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_delivery(self, delivery: Delivery) -> None:
        event = json.loads(delivery.body)
        event["_routing_key"] = delivery.routing_key
        async with self.changed:
            self.by_command.setdefault(event["data"]["command_id"], []).append(event)
            self.changed.notify_all()
        await delivery.ack()

    def kinds(self, command_id: str) -> list[str]:
        return [e["type"].rsplit(".", 1)[-1] for e in self.by_command.get(command_id, [])]

    async def terminal(self, command_id: str, timeout: float = 20.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.by_command.get(command_id, []):
                if EventKind(event["type"].rsplit(".", 1)[-1]) in TERMINAL_KINDS:
                    return event
            return None

        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event


@dataclass
class System:
    app: Flowgate
    broker: AmqpBroker
    sims: Simulators
    events: Events
    settings: Settings

    async def publish(
        self,
        command_type: str,
        data: dict[str, Any],
        *,
        command_id: str | None = None,
        routing_key: str | None = None,
        **kwargs: Any,
    ) -> str:
        command_id = command_id or str(uuid.uuid4())
        body, content_type = encode_command(command_type, data, command_id=command_id, **kwargs)
        await self.publish_raw(routing_key or command_type, body, content_type=content_type)
        return command_id

    async def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        *,
        content_type: str | None = "application/cloudevents+json",
        headers: dict[str, Any] | None = None,
    ) -> None:
        message = OutgoingMessage(body=body, content_type=content_type, headers=headers or {})
        await self.broker.publish(COMMANDS_EXCHANGE, routing_key, message)


async def _purge_all(broker: AmqpBroker) -> None:
    from workers.topology import build_topology

    for queue in build_topology(COMMANDS).queues:
        await broker.purge(queue.name)


async def collect_events(broker: Broker) -> Events:
    """Every event on flowgate.events, from a private queue that lives as long as the test."""
    events = Events()
    watch = f"test.events.{uuid.uuid4().hex[:8]}"
    await broker.declare(
        Topology(
            queues=(Queue(watch, durable=False, arguments={"x-expires": 60_000}),),
            bindings=(Binding(EVENTS_EXCHANGE, watch, "#"),),
        )
    )
    await broker.consume(watch, events.on_delivery, prefetch=256)
    return events


@asynccontextmanager
async def running_system(
    settings: Settings,
    sims: Simulators,
    *,
    purge: bool = True,
    store: IdempotencyStore | None = None,
) -> AsyncIterator[System]:
    """flowgate's worker and poller in this process, on RabbitMQ, plus an event collector;
    `store` replaces the one the settings make (to count its calls, say)."""
    broker = AmqpBroker(settings.amqp_url.get_secret_value())
    app = Flowgate(settings, broker, store=store)
    await app.connect()
    if purge:
        await _purge_all(broker)
    events = await collect_events(broker)
    await app.start_worker(COMMANDS)
    await app.start_poller()
    try:
        yield System(app, broker, sims, events, settings)
    finally:
        await app.stop()


@pytest.fixture
async def system(amqp_url: str, sims: RunningSimulators) -> AsyncIterator[System]:
    """flowgate's worker and poller in this process, on RabbitMQ, against the simulators."""
    settings = fast_settings(amqp_url, sims.base_url, store="redis")
    async with running_system(settings, sims.sims) as running:
        yield running


@pytest.fixture
def every_record(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of every logger at DEBUG, those that do not propagate included."""
    caplog.set_level(logging.DEBUG)
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        caplog.set_level(logging.DEBUG, logger=logger.name)
    detached = [logger for logger in loggers if not logger.propagate]
    for logger in detached:
        logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        for logger in detached:
            logger.removeHandler(caplog.handler)
