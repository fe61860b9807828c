"""The small broker surface flowgate's runtime is written against.

Two implementations share it: `AmqpBroker` (aio-pika, RabbitMQ) and `MemoryBroker` (in-process,
for the embedded mode and unit tests). Topology is plain data (`Topology`) that both declare, so
the same names, bindings, TTLs and dead-letter routes hold in both; the routing test module runs
the same scenarios against each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "Binding",
    "Broker",
    "Delivery",
    "Exchange",
    "OutgoingMessage",
    "PublishNotConfirmed",
    "Queue",
    "Topology",
    "TopologyError",
]

HeaderValue = str | int | float | bool | None


@dataclass(frozen=True)
class Exchange:
    name: str
    type: Literal["topic", "direct", "fanout"] = "topic"
    durable: bool = True
    alternate_exchange: str | None = None


@dataclass(frozen=True)
class Queue:
    """A queue and its RabbitMQ arguments (`x-queue-type`, `x-message-ttl`, `x-dead-letter-*`, ...).

    `arguments` are passed to RabbitMQ as they are; `MemoryBroker` honours `x-message-ttl`,
    `x-dead-letter-exchange`, `x-dead-letter-routing-key` and `x-delivery-limit`.
    """

    name: str
    durable: bool = True
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Binding:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[Exchange, ...] = ()
    queues: tuple[Queue, ...] = ()
    bindings: tuple[Binding, ...] = ()


@dataclass(frozen=True)
class OutgoingMessage:
    body: bytes
    content_type: str | None = None
    headers: Mapping[str, HeaderValue] = field(default_factory=dict)
    message_id: str | None = None
    # AMQP `reply_to`: the queue a command's events also go to (contract: waiting clients).
    reply_to: str | None = None
    # AMQP `user_id`: RabbitMQ refuses a publish whose user_id is not the connection's user.
    user_id: str | None = None
    # Per-message TTL in milliseconds (AMQP `expiration`); None = no per-message TTL.
    expiration_ms: int | None = None
    persistent: bool = True


class Delivery(Protocol):
    """One received message. Exactly one of ack / requeue / reject must be awaited."""

    body: bytes
    content_type: str | None
    headers: Mapping[str, Any]
    routing_key: str
    exchange: str
    message_id: str | None
    reply_to: str | None
    # The publisher's AMQP `user_id`, checked by RabbitMQ against the user it authenticated.
    user_id: str | None
    redelivered: bool
    # Times this message was delivered before (quorum queues' `x-delivery-count`), 0 if unknown.
    delivery_count: int

    @property
    def settled(self) -> bool:
        """True once ack, requeue or reject was awaited."""

    @property
    def lost(self) -> bool:
        """True when the channel it came on is gone: the broker has already given it back to
        the queue, so whoever holds it must drop it without settling it."""

    async def ack(self) -> None: ...

    async def requeue(self) -> None:
        """Give the message back to its queue for another consumer (counts towards the limit)."""

    async def reject(self) -> None:
        """Refuse without requeue: the queue dead-letters it to its `x-dead-letter-exchange`."""


Handler = Callable[[Delivery], Awaitable[None]]


class Broker(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def declare(self, topology: Topology) -> None: ...

    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        """Publish and return once the broker confirmed it (publisher confirms).

        Raises `PublishNotConfirmed` when the broker nacks or returns an unroutable mandatory
        message, so callers never ack their input on the strength of a lost output.
        """

    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> None:
        """Start delivering messages from `queue` to `handler`, at most `prefetch` unacked."""

    async def cancel_consumers(self) -> None:
        """Stop taking new deliveries (graceful shutdown); in-flight handlers may finish."""

    async def get(self, queue: str) -> Delivery | None:
        """basic.get: the head message (unacked until settled), None when the queue is empty."""

    async def purge(self, queue: str) -> int:
        """Drop every ready message of `queue`; how many were dropped."""

    async def queue_length(self, queue: str) -> int:
        """Ready messages of `queue` (not the unacked ones), like RabbitMQ's messages_ready."""

    async def delete(self, topology: Topology) -> None:
        """Delete the topology's queues (with their messages) and exchanges."""


class TopologyError(Exception):
    """A declaration RabbitMQ would refuse (PRECONDITION_FAILED / NOT_FOUND)."""


class PublishNotConfirmed(Exception):
    """The broker did not confirm a publish (nack, return, or connection loss before confirm)."""
