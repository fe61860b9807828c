"""Bootstrap: the one place where settings become a broker, adapters, a worker and a poller."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable

import httpx

from contracts import InputLimits
from workers.broker.base import Broker, Delivery
from workers.commands import COMMANDS
from workers.consumer import CommandWorker
from workers.idempotency import IdempotencyStore, MemoryStore, RedisStore
from workers.poller.service import Poller
from workers.publisher import Publisher
from workers.ratelimit import MemoryRateLimiter, RedisRateLimiter
from workers.registry import Registry
from workers.runtime import Outcomes
from workers.settings import Settings
from workers.settlement import Handler, Settler, Work
from workers.topology import (
    GIVEN_UP_QUEUE,
    POLL_QUEUE,
    UNROUTED_QUEUE,
    build_topology,
    command_queue,
)
from workers.vendors._connection import ConnectionBase
from workers.vendors.base import Resources

__all__ = [
    "Flowgate",
    "make_broker",
    "make_resources",
    "make_store",
    "parse_command_types",
    "worker_prefetch",
]

log = logging.getLogger("flowgate")


def make_broker(settings: Settings, *, memory: bool = False) -> Broker:
    """The broker every flowgate process and tool uses, built from every setting that
    concerns it (the URL, the CA for amqps://)."""
    if memory:
        from workers.broker.memory import MemoryBroker

        return MemoryBroker()
    from workers.broker.amqp import AmqpBroker

    url = settings.amqp_url.get_secret_value()
    context = None
    if url.startswith("amqps://"):
        # Verification stays on: a CA file adds trust, it never switches checks off.
        cafile = str(settings.amqp_ca_file) if settings.amqp_ca_file else None
        context = ssl.create_default_context(cafile=cafile)
    return AmqpBroker(url, ssl_context=context)


def make_store(settings: Settings) -> IdempotencyStore:
    config = settings.idempotency
    if config.store == "memory":
        return MemoryStore(retention=config.retention)
    return RedisStore(
        config.redis_url.get_secret_value(),
        retention=config.retention,
        prefix=config.key_prefix,
        max_connections=config.max_connections,
        replicas=config.replicas,
        replica_wait=config.replica_wait,
    )


def make_resources(settings: Settings) -> Resources:
    """What every vendor client of this process shares: the rate limiter, on the same Redis
    (and key prefix) as the idempotency store, or in memory when the store is."""
    config = settings.idempotency
    if config.store == "memory":
        return Resources(MemoryRateLimiter())
    return Resources(
        RedisRateLimiter(config.redis_url.get_secret_value(), prefix=config.key_prefix)
    )


# Seconds each readiness check may take (the health server allows 5 for all of them).
_READY_CHECK = 2.0
# Unrouted commands are refusals, and dead letters to answer are rare: a few at a time is plenty.
_UNROUTED_PREFETCH = 16
# However many command types a worker serves, each queue may keep this many in flight.
_MIN_QUEUE_PREFETCH = 16


def worker_prefetch(prefetch: int, queues: int) -> int:
    """Unacked messages per command queue: the worker's `prefetch` shared among its queues.

    Quorum queues count a delivery handed back by a consumer that died against the message's
    `x-delivery-limit`, and every message a worker holds is handed back when it dies. A full
    prefetch on each of many queues (16 command types x 256) keeps thousands held at once,
    and a few crashes in a row then dead-letter good commands unanswered (measured: the
    chaos run, 2026-11-25). Shared, a worker holds about `prefetch` in all.
    """
    return max(_MIN_QUEUE_PREFETCH, prefetch // max(1, queues))


def parse_command_types(value: str | None) -> list[str]:
    """`--commands trigger-batch,add-paylink` → validated list; None or "all" → every type."""
    if not value or value == "all":
        return list(COMMANDS)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [c for c in chosen if c not in COMMANDS]
    if unknown:
        raise ValueError(
            f"unknown command type(s) {', '.join(unknown)}; choose from {', '.join(COMMANDS)}"
        )
    return chosen


class Flowgate:
    """Wires one process's roles. `start_*` declare the topology first (idempotent)."""

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        *,
        http_factory: Callable[[ConnectionBase], httpx.AsyncClient] | None = None,
        store: IdempotencyStore | None = None,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.resources = make_resources(settings)
        self.store = store or make_store(settings)
        self.registry = Registry(
            settings, http_factory=http_factory, resources=self.resources, store=self.store
        )
        self.publisher = Publisher(broker)
        self.outcomes = Outcomes(self.store, self.publisher)
        self.settler = Settler(self.outcomes)
        limits = InputLimits(settings.input.max_bytes, settings.input.max_depth)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        hold = settings.poller.hold
        self.worker = CommandWorker(
            self.registry, self.outcomes, limits, owner=owner, poll_hold=hold
        )
        self.poller = Poller(
            self.registry, self.outcomes, hold=hold, max_held=settings.poller.max_held
        )
        self._connected = False
        self._consuming: set[str] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def _consumer(self, queue: str, handler: Handler) -> Callable[[Delivery], Awaitable[None]]:
        """Settle every delivery of `queue` through the settler, counting the ones in progress
        (so `stop` can let them finish)."""

        async def run(delivery: Delivery) -> None:
            self._in_flight += 1
            self._idle.clear()
            try:
                await self.settler.run(Work(delivery, queue), handler)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

        return run

    async def connect(self) -> None:
        if not self._connected:
            await self.broker.connect()
            try:
                await self.broker.declare(
                    build_topology(COMMANDS, delivery_limit=self.settings.delivery_limit)
                )
            except BaseException:
                await self.broker.close()  # no reconnect loop behind a refused topology
                raise
            self._connected = True

    async def start_worker(self, command_types: Iterable[str]) -> None:
        command_types = list(command_types)
        self.registry.warm(command_types)
        await self.connect()
        prefetch = worker_prefetch(self.settings.prefetch, len(command_types))
        for command_type in command_types:
            queue = command_queue(command_type)
            handler = functools.partial(self.worker.handle, command_type=command_type)
            await self.broker.consume(queue, self._consumer(queue, handler), prefetch=prefetch)
            self._consuming.add(queue)
        await self.broker.consume(
            UNROUTED_QUEUE,
            self._consumer(UNROUTED_QUEUE, self.worker.handle_unrouted),
            prefetch=_UNROUTED_PREFETCH,
        )
        self._consuming.add(UNROUTED_QUEUE)
        await self.broker.consume(
            GIVEN_UP_QUEUE,
            self._consumer(GIVEN_UP_QUEUE, self.worker.handle_given_up),
            prefetch=_UNROUTED_PREFETCH,
        )
        self._consuming.add(GIVEN_UP_QUEUE)
        self._log_connections()
        log.info("worker consuming %s", ", ".join(command_types))

    async def start_poller(self) -> None:
        self.registry.warm(COMMANDS)
        await self.connect()
        await self.broker.consume(
            POLL_QUEUE,
            self._consumer(POLL_QUEUE, self.poller.handle),
            # Held runs sit in the prefetch window; the rest of it keeps new work flowing.
            prefetch=self.settings.prefetch + self.settings.poller.max_held,
        )
        self._consuming.add(POLL_QUEUE)
        self._log_connections()
        log.info("poller consuming %s", POLL_QUEUE)

    def _log_connections(self) -> None:
        for vendor, names in self.registry.describe().items():
            log.info("%s connections: %s", vendor, ", ".join(names) or "none")

    async def ready(self) -> tuple[bool, dict[str, object]]:
        """Readiness, for `/readyz`: connected to RabbitMQ (a round trip on the channel), the
        idempotency store answering, and consuming every queue this process should."""
        checks: dict[str, object] = {}
        if not self._connected:
            checks["rabbitmq"] = "connecting"  # no broker call before the topology is there
        else:
            try:
                # Bounded well inside the health server's own limit: while RabbitMQ is away
                # the channel waits to reopen, and the answer should still say which check
                # failed.
                await asyncio.wait_for(self.broker.queue_length(POLL_QUEUE), _READY_CHECK)
                checks["rabbitmq"] = "ok"
            except Exception as exc:
                checks["rabbitmq"] = f"unavailable ({type(exc).__name__})"
        try:
            await asyncio.wait_for(self.store.ping(), _READY_CHECK)
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"unavailable ({type(exc).__name__})"
        checks["consuming"] = sorted(self._consuming)
        ready = (
            self._connected
            and bool(self._consuming)
            and all(v == "ok" for k, v in checks.items() if k != "consuming")
        )
        return ready, checks

    async def stop(self) -> None:
        """Stop taking work, let in-flight messages finish (up to the grace), then close."""
        if not self._connected:
            await self.registry.aclose()
            await self.resources.aclose()
            await self.store.aclose()
            return
        await self.broker.cancel_consumers()
        self._consuming.clear()
        self.poller.release()
        try:
            await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_grace)
        except TimeoutError:
            # Unacked messages go back to their queues when the connection closes: nothing lost.
            log.warning("stopping with %d messages still in flight", self._in_flight)
        await self.broker.close()
        await self.registry.aclose()
        await self.resources.aclose()
        await self.store.aclose()
        self._connected = False
