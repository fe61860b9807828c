"""Everything flowgate publishes: events, delayed messages and dead letters, all confirmed.

Each method returns only after the broker confirmed the publish, so a caller acks its input only
once what it produced is safe. Independent publishes are awaited together (`asyncio.gather`), not
one after the other: a confirm costs a round trip, and sequential confirms would cap throughput.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from contracts import EVENT_CONTENT_TYPE, EventData, EventKind, encode_event, event_id
from workers import logs, tracing
from workers.broker.base import Broker, Delivery, HeaderValue, OutgoingMessage
from workers.metrics import current as current_metrics
from workers.topology import (
    DEAD_EXCHANGE,
    DELAY_EXCHANGE,
    EVENTS_EXCHANGE,
    RETRY_EXCHANGE,
    delay_routing_key,
    delay_tier,
    event_routing_key,
)

__all__ = [
    "ATTEMPT_HEADER",
    "DUE_HEADER",
    "ROUTING_KEY_HEADER",
    "SENDER_HEADER",
    "Context",
    "Publisher",
    "sender_of",
]

ATTEMPT_HEADER = "x-flowgate-attempt"
DUE_HEADER = "x-flowgate-due"
# The routing key a command first came with; the delay queues route it by another.
ROUTING_KEY_HEADER = "x-flowgate-routing-key"
# Headers a dead letter gets; `flowgate dlq` reads them.
REASON_HEADER = "x-flowgate-reason"
ERROR_KIND_HEADER = "x-flowgate-error-kind"
ATTEMPTS_HEADER = "x-flowgate-attempts"
DEAD_AT_HEADER = "x-flowgate-dead-at"
SOURCE_QUEUE_HEADER = "x-flowgate-queue"
LETTER_ID_HEADER = "x-flowgate-letter-id"
# Who sent a command, on its copies round the delay ladder. RabbitMQ checks a message's
# `user_id` against the connection that publishes it, flowgate's own for a copy, so the
# sender's name (as RabbitMQ validated it on the original) travels here instead: written over
# on every copy, and read only from the ladder, where nobody but flowgate publishes.
SENDER_HEADER = "x-flowgate-sender"

log = logging.getLogger("flowgate.publisher")


@dataclass(frozen=True)
class Context:
    """What a command's events carry from it: its W3C trace context, `replayof` when the
    command replays a dead letter, and `reply_to`: the queue (the command's AMQP property)
    that also gets every event, so a waiting client reads only its own."""

    traceparent: str | None = None
    tracestate: str | None = None
    replayof: str | None = None
    reply_to: str | None = None

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, Any], replayof: str | None = None, reply_to: str | None = None
    ) -> Context:
        """The context of a message that could not be decoded: its trace headers, the
        replayed id when the decoder (or a binary-mode `ce-replayof` header) could read it,
        and its `reply_to`."""
        tp, ts = headers.get("traceparent"), headers.get("tracestate")
        replayed = replayof or headers.get("ce-replayof")
        return cls(
            tp if isinstance(tp, str) else None,
            ts if isinstance(ts, str) else None,
            replayed if isinstance(replayed, str) else None,
            reply_to,
        )

    def headers(self) -> dict[str, HeaderValue]:
        out: dict[str, HeaderValue] = {}
        if self.traceparent:
            out["traceparent"] = self.traceparent
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out


class Publisher:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def event(
        self, kind: EventKind, data: EventData, *, context: Context, discriminator: str = ""
    ) -> None:
        routing_key = event_routing_key(data.command_type, kind.value)
        # Tracing on: the event's trace context is its publish span's, a child of the command's.
        with tracing.publishing(
            f"publish {routing_key}", context.traceparent, context.tracestate
        ) as (traceparent, tracestate):
            if traceparent != context.traceparent:
                context = replace(context, traceparent=traceparent, tracestate=tracestate)
            await self._publish_event(kind, data, context, discriminator, routing_key)
        _logged(kind, data)

    async def _publish_event(
        self,
        kind: EventKind,
        data: EventData,
        context: Context,
        discriminator: str,
        routing_key: str,
    ) -> None:
        body = encode_event(
            kind,
            data,
            discriminator=discriminator,
            traceparent=context.traceparent,
            tracestate=context.tracestate,
            replayof=context.replayof,
        )
        message = OutgoingMessage(
            body=body,
            content_type=EVENT_CONTENT_TYPE,
            headers=context.headers(),
            message_id=event_id(data.command_id, kind, discriminator),
        )
        topic = self._broker.publish(EVENTS_EXCHANGE, routing_key, message)
        if context.reply_to is None:
            await topic
            return
        # The same event, straight to the waiting client's queue (default exchange). A queue
        # that is gone (the client left) drops it: the event is on flowgate.events all the same.
        await asyncio.gather(topic, self._broker.publish("", context.reply_to, message))

    async def delayed(
        self,
        target_queue: str,
        body: bytes,
        *,
        delay: float,
        content_type: str | None,
        headers: Mapping[str, Any],
        message_id: str | None = None,
        reply_to: str | None = None,
        sender: str | None = None,
    ) -> None:
        """Deliver `body` to `target_queue` after `delay` seconds, through the delay ladder,
        with the `reply_to` of the original (its events still go to the client that waits for
        them) and its `sender` (`sender_of`)."""
        due_ms = int((time.time() + max(delay, 0.0)) * 1000)
        tier = delay_tier(delay * 1000)
        out_headers: dict[str, HeaderValue] = {
            k: v
            for k, v in headers.items()
            if isinstance(v, str | int | float | bool) and k != SENDER_HEADER
        }
        out_headers[DUE_HEADER] = due_ms
        if sender is not None:
            out_headers[SENDER_HEADER] = sender
        message = OutgoingMessage(
            body=body,
            content_type=content_type,
            headers=out_headers,
            message_id=message_id,
            reply_to=reply_to,
        )
        await self._broker.publish(DELAY_EXCHANGE, delay_routing_key(tier, target_queue), message)

    async def direct(
        self,
        target_queue: str,
        body: bytes,
        *,
        content_type: str | None,
        message_id: str | None = None,
    ) -> None:
        """Deliver `body` to `target_queue` now, through `flowgate.retry` (where every work
        queue is bound) rather than the default exchange, so both brokers route it alike."""
        message = OutgoingMessage(body=body, content_type=content_type, message_id=message_id)
        await self._broker.publish(RETRY_EXCHANGE, delay_routing_key(0, target_queue), message)

    async def dead_letter(
        self,
        delivery: Delivery,
        *,
        queue: str,
        reason: str,
        error_kind: str,
        attempts: int,
    ) -> None:
        """Keep the original message, byte for byte, with why it was given up on, under the
        routing key it first came with, and an id of its own (`flowgate dlq` tells a letter
        from a duplicate of it by this id)."""
        headers: dict[str, HeaderValue] = {
            k: v for k, v in delivery.headers.items() if isinstance(v, str | int | float | bool)
        }
        original = headers.get(ROUTING_KEY_HEADER)
        routing_key = original if isinstance(original, str) else delivery.routing_key or queue
        headers[ROUTING_KEY_HEADER] = routing_key
        headers.update(
            {
                REASON_HEADER: reason[:1000],
                ERROR_KIND_HEADER: error_kind,
                ATTEMPTS_HEADER: attempts,
                DEAD_AT_HEADER: datetime.now(UTC).isoformat(),
                SOURCE_QUEUE_HEADER: queue,
                LETTER_ID_HEADER: str(uuid.uuid4()),
            }
        )
        message = OutgoingMessage(
            body=delivery.body,
            content_type=delivery.content_type,
            headers=headers,
            message_id=delivery.message_id,
        )
        await self._broker.publish(DEAD_EXCHANGE, routing_key, message)
        log.warning(
            "dead-lettered a message of %s after %d attempt(s): %s (%s)",
            queue,
            attempts,
            reason,
            error_kind,
            extra=logs.fields(event="dead_letter", error_kind=error_kind, reason=reason[:1000]),
        )


def _logged(kind: EventKind, data: EventData) -> None:
    """An event's log line and metric. Never its result: it may hold a secret (a PAR URL)."""
    error = data.error
    error_kind = error.kind.value if error is not None else ""
    current_metrics().event(data.command_type, kind.value, error_kind)
    level = logging.WARNING if kind is EventKind.FAILED else logging.INFO
    if not log.isEnabledFor(level):
        return
    text = f"{kind.value} {data.command_type} {data.command_id}"
    if data.status:
        text += f": {data.status}"
    if error is not None:
        text += f": {error.message} ({error_kind})"
    log.log(
        level,
        "%s",
        text,
        extra=logs.fields(
            event=kind.value,
            command_id=data.command_id,
            command_type=data.command_type,
            connection=data.connection,
            vendor_ref=data.vendor_ref,
            status=data.status,
            error_kind=error_kind,
        ),
    )


def sender_of(delivery: Delivery) -> str | None:
    """The AMQP user who sent this command, as RabbitMQ validated it: its `user_id`, or on a
    copy back from the delay ladder, the name flowgate carried there (`SENDER_HEADER`)."""
    if delivery.user_id is not None:
        return delivery.user_id
    if delivery.exchange != RETRY_EXCHANGE:
        return None  # a publisher's own header proves nothing
    value = delivery.headers.get(SENDER_HEADER)
    return value if isinstance(value, str) and value else None
