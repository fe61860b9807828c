"""An in-process broker that routes, expires and dead-letters the way RabbitMQ does.

The embedded demo mode and the unit tests run flowgate without a RabbitMQ server, so this broker
must not be "roughly" RabbitMQ: a topology that works here has to work there and vice versa. The
integration test module runs the same scenarios against both to keep them honest. It mirrors:
topic/direct/fanout/default exchanges, alternate exchanges, queue and per-message TTL (each
message expires at its own time on an asyncio timer), dead-lettering with `x-death` headers,
quorum-style `x-delivery-limit`, prefetch and round-robin between competing consumers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from workers.broker.base import (
    Delivery,
    Exchange,
    Handler,
    OutgoingMessage,
    PublishNotConfirmed,
    Queue,
    Topology,
    TopologyError,
)

__all__ = ["MemoryBroker", "TopologyError", "topic_matches"]

log = logging.getLogger(__name__)

DeathReason = Literal["rejected", "expired", "delivery_limit"]


def _words(key: str) -> list[str]:
    # RabbitMQ splits "" into zero words (so "#" matches it and "*" does not), not one empty word.
    return key.split(".") if key else []


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic match: `*` is exactly one word, `#` is zero or more words."""
    pat, key = _words(pattern), _words(routing_key)
    # reachable[j]: pattern prefix consumed so far can match key[:j].
    reachable = [True] + [False] * len(key)
    for word in pat:
        if word == "#":
            nxt = list(itertools.accumulate(reachable, lambda a, b: a or b))
        else:
            nxt = [False] + [
                reachable[j] and (word == "*" or word == key[j]) for j in range(len(key))
            ]
        reachable = nxt
    return reachable[-1]


@dataclass(eq=False)  # identity semantics: equal-looking messages are still distinct
class _Message:
    body: bytes
    content_type: str | None
    headers: dict[str, Any]
    message_id: str | None
    exchange: str
    routing_key: str
    expiration_ms: int | None
    reply_to: str | None = None
    user_id: str | None = None
    delivery_count: int = 0
    redelivered: bool = False
    deadline: float | None = None  # loop.time() at which it expires while ready in `queue`
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Consumer:
    handler: Handler
    prefetch: int
    unacked: int = 0
    active: bool = True


@dataclass
class _QueueState:
    spec: Queue
    ready: deque[_Message] = field(default_factory=deque)
    consumers: list[_Consumer] = field(default_factory=list)
    next_consumer: int = 0


class _MemoryDelivery:
    """A received message; settling it hands it back to the owning broker."""

    def __init__(self, broker: MemoryBroker, queue: str, msg: _Message, consumer: _Consumer | None):
        self._broker, self._queue, self._msg, self._consumer = broker, queue, msg, consumer
        self.body = msg.body
        self.content_type = msg.content_type
        headers = dict(msg.headers)
        if msg.delivery_count and broker._is_quorum(queue):
            headers["x-delivery-count"] = msg.delivery_count  # as quorum queues add it
        self.headers: Mapping[str, Any] = headers
        self.routing_key = msg.routing_key
        self.exchange = msg.exchange
        self.message_id = msg.message_id
        self.reply_to = msg.reply_to
        self.user_id = msg.user_id
        self.redelivered = msg.redelivered
        self.delivery_count = msg.delivery_count
        self.settled = False
        # In memory nothing hands a message to another consumer behind the holder's back.
        self.lost = False

    def _settle(self) -> None:
        if self.settled:
            raise RuntimeError("delivery already acked, requeued or rejected")
        self.settled = True
        if self._consumer is not None:
            self._consumer.unacked -= 1
            self._broker._dispatch_soon(self._queue)

    async def ack(self) -> None:
        self._settle()

    async def requeue(self) -> None:
        self._settle()
        self._broker._requeue(self._queue, self._msg)

    async def reject(self) -> None:
        self._settle()
        self._broker._dead_letter(self._queue, self._msg, "rejected")


class MemoryBroker:
    """The `Broker` protocol in-process; see the module docstring for what it mirrors."""

    def __init__(self) -> None:
        self._exchanges: dict[str, Exchange] = {}
        self._bindings: dict[str, list[tuple[str, str]]] = {}  # exchange -> [(key, queue)]
        self._queues: dict[str, _QueueState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatch_pending: set[str] = set()

    async def connect(self) -> None:
        """Nothing to connect to; present so callers treat both brokers alike."""

    async def close(self) -> None:
        await self.cancel_consumers()
        for state in self._queues.values():
            for msg in state.ready:
                if msg.timer is not None:
                    msg.timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def declare(self, topology: Topology) -> None:
        for ex in topology.exchanges:
            known = self._exchanges.get(ex.name)
            if known is not None and known != ex:
                raise TopologyError(f"exchange {ex.name!r} redeclared with other settings")
            self._exchanges[ex.name] = ex
            self._bindings.setdefault(ex.name, [])
        for q in topology.queues:
            state = self._queues.get(q.name)
            if state is None:
                self._queues[q.name] = _QueueState(spec=q)
            elif dict(state.spec.arguments) != dict(q.arguments):
                raise TopologyError(f"queue {q.name!r} redeclared with other arguments")
        for b in topology.bindings:
            if b.exchange not in self._exchanges or b.queue not in self._queues:
                raise TopologyError(f"binding {b} refers to an undeclared exchange or queue")
            entry = (b.routing_key, b.queue)
            if entry not in self._bindings[b.exchange]:
                self._bindings[b.exchange].append(entry)

    async def delete(self, topology: Topology) -> None:
        """Remove the topology's queues (with their messages) and exchanges; for tests/tooling."""
        for q in topology.queues:
            state = self._queues.pop(q.name, None)
            for msg in state.ready if state else ():
                if msg.timer is not None:
                    msg.timer.cancel()
            for bound in self._bindings.values():
                bound[:] = [(k, name) for k, name in bound if name != q.name]
        for ex in topology.exchanges:
            self._exchanges.pop(ex.name, None)
            self._bindings.pop(ex.name, None)

    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        if exchange and exchange not in self._exchanges:
            raise PublishNotConfirmed(f"no exchange {exchange!r} (NOT_FOUND)")
        msg = _Message(
            body=message.body,
            content_type=message.content_type,
            headers=dict(message.headers),
            message_id=message.message_id,
            exchange=exchange,
            routing_key=routing_key,
            expiration_ms=message.expiration_ms,
            reply_to=message.reply_to,
            user_id=message.user_id,
        )
        self._route(exchange, routing_key, msg)

    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> None:
        state = self._queue(queue)
        state.consumers.append(_Consumer(handler=handler, prefetch=max(prefetch, 1)))
        self._dispatch_soon(queue)

    async def cancel_consumers(self) -> None:
        for state in self._queues.values():
            for consumer in state.consumers:
                consumer.active = False
            state.consumers.clear()

    async def get(self, queue: str) -> Delivery | None:
        """basic.get: take the head message (unacked until settled) or None when empty."""
        state = self._queue(queue)
        if not state.ready:
            return None
        return self._take(queue, state.ready.popleft(), None)

    async def purge(self, queue: str) -> int:
        """Drop every ready message of `queue`; the count, like RabbitMQ's queue.purge."""
        state = self._queue(queue)
        count = len(state.ready)
        for msg in state.ready:
            if msg.timer is not None:
                msg.timer.cancel()
        state.ready.clear()
        return count

    async def queue_length(self, queue: str) -> int:
        """Ready messages (not the unacked ones), like RabbitMQ's `messages_ready`."""
        return len(self._queue(queue).ready)

    # --- routing -------------------------------------------------------------------------------

    def _is_quorum(self, queue: str) -> bool:
        state = self._queues.get(queue)
        return state is not None and state.spec.arguments.get("x-queue-type") == "quorum"

    def _queue(self, name: str) -> _QueueState:
        try:
            return self._queues[name]
        except KeyError:
            raise TopologyError(f"no queue {name!r} (NOT_FOUND)") from None

    def _targets(self, exchange: str, routing_key: str) -> list[str]:
        """Queues a message routes to, following alternate exchanges when it routes nowhere."""
        seen: set[str] = set()
        name: str | None = exchange
        while name is not None and name not in seen:
            seen.add(name)
            if name == "":
                return [routing_key] if routing_key in self._queues else []
            ex = self._exchanges.get(name)
            if ex is None:
                return []  # RabbitMQ drops (and logs) when the alternate exchange is missing.
            bound = self._bindings.get(name, [])
            if ex.type == "fanout":
                hits = [q for _, q in bound]
            elif ex.type == "direct":
                hits = [q for key, q in bound if key == routing_key]
            else:
                hits = [q for key, q in bound if topic_matches(key, routing_key)]
            if hits:
                return list(dict.fromkeys(hits))
            name = ex.alternate_exchange
        return []

    def _route(self, exchange: str, routing_key: str, msg: _Message) -> None:
        targets = self._targets(exchange, routing_key)
        if "x-death" in msg.headers:
            targets = [q for q in targets if not _is_cycle(q, msg.headers["x-death"])]
        for i, qname in enumerate(targets):
            self._enqueue(qname, msg if i == 0 else _copy(msg))

    def _enqueue(self, queue: str, msg: _Message) -> None:
        state = self._queues[queue]
        ttls = [
            t
            for t in (state.spec.arguments.get("x-message-ttl"), msg.expiration_ms)
            if t is not None
        ]
        if ttls:
            msg.deadline = asyncio.get_running_loop().time() + min(int(t) for t in ttls) / 1000
        state.ready.append(msg)
        self._arm(queue, msg)
        self._dispatch_soon(queue)

    def _arm(self, queue: str, msg: _Message) -> None:
        if msg.deadline is not None:
            loop = asyncio.get_running_loop()
            msg.timer = loop.call_at(msg.deadline, self._expire, queue, msg)

    def _expire(self, queue: str, msg: _Message) -> None:
        state = self._queues.get(queue)
        msg.timer = None
        if state is None or msg not in state.ready:
            return  # delivered meanwhile (unacked messages do not expire) or queue deleted
        state.ready.remove(msg)
        self._dead_letter(queue, msg, "expired")

    def _requeue(self, queue: str, msg: _Message) -> None:
        state = self._queues.get(queue)
        if state is None:
            return
        msg.delivery_count += 1
        msg.redelivered = True
        limit = state.spec.arguments.get("x-delivery-limit")
        if limit is not None and msg.delivery_count > int(limit):
            self._dead_letter(queue, msg, "delivery_limit")
            return
        state.ready.appendleft(msg)  # back at the head; it keeps its original expiry time
        self._arm(queue, msg)
        self._dispatch_soon(queue)

    def _dead_letter(self, queue: str, msg: _Message, reason: DeathReason) -> None:
        args = self._queues[queue].spec.arguments if queue in self._queues else {}
        dlx = args.get("x-dead-letter-exchange")
        if dlx is None:
            return  # no DLX: RabbitMQ discards the message
        deaths: list[dict[str, Any]] = [dict(d) for d in msg.headers.get("x-death", [])]
        for death in deaths:
            if death["queue"] == queue and death["reason"] == reason:
                death["count"] += 1
                deaths.remove(death)
                deaths.insert(0, death)
                break
        else:
            death = {
                "queue": queue,
                "reason": reason,
                "count": 1,
                "exchange": msg.exchange,
                "routing-keys": [msg.routing_key],
                "time": datetime.now(UTC).replace(microsecond=0),  # AMQP timestamp
            }
            if msg.expiration_ms is not None:
                death["original-expiration"] = str(msg.expiration_ms)
            deaths.insert(0, death)
        headers = {**msg.headers, "x-death": deaths}
        headers.setdefault("x-first-death-reason", reason)
        headers.setdefault("x-first-death-queue", queue)
        headers.setdefault("x-first-death-exchange", msg.exchange)
        key = args.get("x-dead-letter-routing-key", msg.routing_key)
        dead = _Message(
            body=msg.body,
            content_type=msg.content_type,
            headers=headers,
            message_id=msg.message_id,
            reply_to=msg.reply_to,
            user_id=msg.user_id,
            exchange=dlx,
            routing_key=key,
            expiration_ms=None,  # RabbitMQ strips `expiration` so it cannot expire again
        )
        self._route(dlx, key, dead)

    # --- dispatch ------------------------------------------------------------------------------

    def _dispatch_soon(self, queue: str) -> None:
        if queue not in self._dispatch_pending:
            self._dispatch_pending.add(queue)
            asyncio.get_running_loop().call_soon(self._dispatch, queue)

    def _dispatch(self, queue: str) -> None:
        self._dispatch_pending.discard(queue)
        state = self._queues.get(queue)
        while state is not None and state.ready:
            consumer = self._next_consumer(state)
            if consumer is None:
                return
            delivery = self._take(queue, state.ready.popleft(), consumer)
            consumer.unacked += 1
            task = asyncio.get_running_loop().create_task(self._run(consumer, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _next_consumer(self, state: _QueueState) -> _Consumer | None:
        n = len(state.consumers)
        for i in range(n):
            consumer = state.consumers[(state.next_consumer + i) % n]
            if consumer.active and consumer.unacked < consumer.prefetch:
                state.next_consumer = (state.next_consumer + i + 1) % n
                return consumer
        return None

    def _take(self, queue: str, msg: _Message, consumer: _Consumer | None) -> _MemoryDelivery:
        if msg.timer is not None:
            msg.timer.cancel()
            msg.timer = None
        return _MemoryDelivery(self, queue, msg, consumer)

    async def _run(self, consumer: _Consumer, delivery: _MemoryDelivery) -> None:
        try:
            await consumer.handler(delivery)
        except Exception:
            # Same contract as AmqpBroker: a failing handler never kills the consumer.
            log.exception("handler failed for %s; requeueing", delivery.routing_key)
            if not delivery.settled:
                await delivery.requeue()


def _is_cycle(queue: str, deaths: list[dict[str, Any]]) -> bool:
    """RabbitMQ drops a dead letter headed back to a queue it already died in, unless a
    rejection happened since (a deliberate retry loop); fully automatic loops would spin."""
    for death in deaths:  # most recent first
        if death["reason"] == "rejected":
            return False
        if death["queue"] == queue:
            return True
    return False


def _copy(msg: _Message) -> _Message:
    return _Message(
        body=msg.body,
        content_type=msg.content_type,
        headers=dict(msg.headers),
        message_id=msg.message_id,
        exchange=msg.exchange,
        routing_key=msg.routing_key,
        expiration_ms=msg.expiration_ms,
        reply_to=msg.reply_to,
        user_id=msg.user_id,
    )
