"""The `Broker` protocol on RabbitMQ via aio-pika.

Publishing goes through one channel in publisher-confirm mode: every publish awaits its own
confirm, and many publishes may be in flight on that channel at once (aio-pika matches confirms
by delivery tag), so no lock. Each `consume()` gets its own channel so its prefetch (basic.qos)
applies to it alone. `connect_robust` re-opens channels and re-registers consumers after a
connection loss; queues are obtained with a passive declare so aio-pika knows to restore them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from typing import Any

import aiormq.exceptions
from aio_pika.exceptions import ChannelInvalidStateError
from pamqp.commands import Basic

from flowgate_client import _failover as failover
from workers.broker.base import (
    Delivery,
    Handler,
    OutgoingMessage,
    PublishNotConfirmed,
    Topology,
    TopologyError,
)
from workers.metrics import current as current_metrics

__all__ = ["AmqpBroker"]

log = logging.getLogger(__name__)


class _NoFrameDumps(logging.Filter):
    """aiormq logs every AMQP frame it sends or receives at DEBUG, message bodies included:
    events carry what vendors answered (a PAR URL is a credential) and commands whatever
    publishers put in them. Those two records are dropped at the source, whatever the log
    level; aiormq's other records pass."""

    DUMPS = frozenset({"Prepare to send %r", "Received frame %r in channel #%d weight=%s on %r"})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.DUMPS


logging.getLogger("aiormq.connection").addFilter(_NoFrameDumps())

# Everything a publish can die of before its confirm arrives.
_PUBLISH_FAILURES = (
    aiormq.exceptions.AMQPError,  # DeliveryError (nack), PublishError (return), channel closed
    ChannelInvalidStateError,
    asyncio.TimeoutError,
    ConnectionError,
)


def _decode(value: Any) -> Any:
    """AMQP tables may carry bytes (longstr) even for text; callers want str throughout."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): _decode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decode(v) for v in value]
    return value


def _reconnected(*_: Any) -> None:
    current_metrics().amqp_reconnects.inc()
    log.warning("connection to RabbitMQ re-established; channels and consumers restored")


class _AmqpDelivery:
    """Adapts an aio-pika incoming message to the `Delivery` protocol."""

    def __init__(self, message: Any) -> None:
        self._message = message
        self.body: bytes = message.body
        self.content_type: str | None = message.content_type
        self.headers: Mapping[str, Any] = _decode(dict(message.headers or {}))
        self.routing_key: str = message.routing_key or ""
        self.exchange: str = message.exchange or ""
        self.message_id: str | None = message.message_id
        self.reply_to: str | None = message.reply_to or None
        self.user_id: str | None = message.user_id or None
        self.redelivered: bool = bool(message.redelivered)
        count = self.headers.get("x-delivery-count", 0)
        self.delivery_count: int = int(count) if isinstance(count, int | str) else 0

    @property
    def settled(self) -> bool:
        return bool(self._message.processed)

    @property
    def lost(self) -> bool:
        try:
            self._message.channel  # noqa: B018 - raises once the delivering channel is closed
        except ChannelInvalidStateError:
            return True
        return False

    async def ack(self) -> None:
        await self._message.ack()

    async def requeue(self) -> None:
        await self._message.nack(requeue=True)

    async def reject(self) -> None:
        await self._message.reject(requeue=False)


class AmqpBroker:
    """RabbitMQ broker; see the module docstring for the channel layout."""

    def __init__(
        self,
        url: str,
        *,
        publish_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._url = url
        self._publish_timeout = publish_timeout
        self._connection: Any = None
        self._channel: Any = None  # publisher-confirm channel; also used for declare / get
        self._consumers: list[tuple[Any, Any, str]] = []  # (channel, queue, consumer tag)
        self._handling: set[asyncio.Future[None]] = set()  # referenced until done
        self._reopened = asyncio.Event()

    async def connect(self) -> None:
        # One node, or several separated by `;` to fail over between (flowgate_client._failover).
        if self._ssl_context is not None:
            self._connection = await failover.connect(self._url, ssl_context=self._ssl_context)
        else:
            self._connection = await failover.connect(self._url)
        self._connection.reconnect_callbacks.add(_reconnected)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._channel.reopen_callbacks.add(lambda *_: self._reopened.set())

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = None
        self._consumers.clear()

    def _require_channel(self) -> Any:
        if self._channel is None:
            raise RuntimeError("AmqpBroker.connect() was not awaited")
        return self._channel

    async def _ready(self) -> Any:
        """The shared channel once it is open again.

        RabbitMQ closes a channel on any channel error (publishing to a missing exchange, a
        failed passive declare) and aio-pika reopens it in the background; until then every
        call on it fails with ChannelInvalidStateError, so wait for the reopen instead.
        """
        channel = self._require_channel()
        while channel.is_closed:
            self._reopened.clear()
            await asyncio.wait_for(self._reopened.wait(), self._publish_timeout)
        return channel

    async def declare(self, topology: Topology) -> None:
        channel = await self._ready()
        try:
            for ex in topology.exchanges:
                arguments = {}
                if ex.alternate_exchange is not None:
                    arguments["alternate-exchange"] = ex.alternate_exchange
                await channel.declare_exchange(
                    ex.name, ex.type, durable=ex.durable, arguments=arguments
                )
            for q in topology.queues:
                await channel.declare_queue(
                    q.name, durable=q.durable, arguments=dict(q.arguments), robust=False
                )
            for b in topology.bindings:
                queue = await channel.get_queue(b.queue, ensure=False)
                await queue.bind(b.exchange, routing_key=b.routing_key, robust=False)
        except (
            aiormq.exceptions.ChannelPreconditionFailed,
            aiormq.exceptions.ChannelNotFoundEntity,
        ) as exc:
            raise TopologyError(str(exc)) from exc

    async def delete(self, topology: Topology) -> None:
        """Delete the topology's queues and exchanges (tests and tooling)."""
        channel = await self._ready()
        for q in topology.queues:
            await channel.queue_delete(q.name)
        for ex in topology.exchanges:
            await channel.exchange_delete(ex.name)

    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        properties = Basic.Properties(
            content_type=message.content_type,
            headers=dict(message.headers),
            message_id=message.message_id,
            reply_to=message.reply_to,
            user_id=message.user_id,
            expiration=None if message.expiration_ms is None else str(message.expiration_ms),
            delivery_mode=2 if message.persistent else 1,
        )
        try:
            channel = await self._ready()
            # Straight to aiormq, on the robust channel's current channel: aio-pika's Message
            # and Exchange wrappers cost ~45 us a publish (25 %) and add nothing here
            # (BENCHMARKS.md). mandatory=False: unroutable commands are caught by the
            # alternate exchange instead. A broker nack surfaces as aiormq DeliveryError.
            underlay = await channel.get_underlay_channel()
            await underlay.basic_publish(
                message.body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=False,
                timeout=self._publish_timeout,
            )
        except _PUBLISH_FAILURES as exc:
            raise PublishNotConfirmed(
                f"publish to {exchange!r}/{routing_key!r} not confirmed: {exc!r}"
            ) from exc

    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> None:
        if self._connection is None:
            raise RuntimeError("AmqpBroker.connect() was not awaited")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        try:
            # Passive declare registers the queue with the robust channel, which then
            # re-declares it and re-subscribes the consumer after a reconnect.
            source = await channel.declare_queue(queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise TopologyError(str(exc)) from exc

        async def on_message(message: Any) -> None:
            # aiormq cancels a consumer's tasks when their channel closes (a lost connection,
            # a node killed): cancelled between a vendor's answer and its record, a command
            # could only be answered unknown_outcome when it comes again. So the handling goes
            # on, shielded, to its end: its writes land, its settlement finds the delivery lost
            # (RabbitMQ gives the message again), and the redelivery resumes from the record.
            task = asyncio.ensure_future(handle(message))
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)
            await asyncio.shield(task)

        async def handle(message: Any) -> None:
            delivery = _AmqpDelivery(message)
            try:
                await handler(delivery)
            except Exception:
                # A failing handler must never kill the consumer: log, give the message back.
                log.exception(
                    "handler failed for %s on %s; requeueing", delivery.routing_key, queue
                )
                if not delivery.settled:
                    try:
                        await message.nack(requeue=True)
                    except Exception:  # channel gone with the connection: RabbitMQ requeues
                        log.debug("could not nack on a closed channel", exc_info=True)

        tag = await source.consume(on_message, no_ack=False)
        self._consumers.append((channel, source, tag))

    async def cancel_consumers(self) -> None:
        consumers, self._consumers = self._consumers, []
        for _channel, source, tag in consumers:
            await source.cancel(tag)

    async def get(self, queue: str) -> Delivery | None:
        """basic.get: the head message (unacked until settled) or None when the queue is empty."""
        channel = await self._ready()
        source = await channel.get_queue(queue, ensure=False)
        message = await source.get(no_ack=False, fail=False)
        return None if message is None else _AmqpDelivery(message)

    async def purge(self, queue: str) -> int:
        """Drop every ready message of `queue` (tests and `flowgate dlq purge`); the count."""
        source = await self._passive(queue)
        result = await source.purge()
        return int(result.message_count)

    async def queue_length(self, queue: str) -> int:
        """Ready messages, from a passive declare."""
        source = await self._passive(queue)
        return int(source.declaration_result.message_count)

    async def _passive(self, queue: str) -> Any:
        channel = await self._ready()
        try:
            return await channel.declare_queue(queue, passive=True, robust=False)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise TopologyError(f"no queue {queue!r} (NOT_FOUND)") from exc
