"""The command worker: decode, trigger the vendor, answer, and hand the run to the poller.

Stateless between messages; many messages are in flight per process (bounded by prefetch).
A command is acked only after everything it produced (events, poll request, retry or dead
letter) was confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time

from contracts import (
    COMMAND_TYPES,
    CommandEnvelope,
    ContractError,
    EventData,
    EventKind,
    InputLimits,
    decode_command,
)
from workers.broker.base import Delivery
from workers.errors import FlowgateError
from workers.outcome import decide
from workers.poller.request import PollRequest
from workers.publisher import ATTEMPT_HEADER, Publisher, Trace
from workers.registry import Registry
from workers.runtime import Answer, carry_out, redelay_if_early, terminal_event
from workers.topology import POLL_QUEUE, UNROUTED_QUEUE, command_queue
from workers.vendors._connection import RetryPolicy
from workers.vendors.base import Triggered

__all__ = ["CommandWorker"]

log = logging.getLogger("flowgate.worker")


class CommandWorker:
    def __init__(self, registry: Registry, publisher: Publisher, limits: InputLimits) -> None:
        self._registry = registry
        self._publisher = publisher
        self._limits = limits

    async def handle(self, delivery: Delivery, *, command_type: str) -> None:
        """Handle one delivery from `command_queue(command_type)`."""
        queue = command_queue(command_type)
        if await redelay_if_early(delivery, queue, self._publisher):
            return
        attempt = _attempt(delivery)
        envelope: CommandEnvelope | None = None
        policy = RetryPolicy()
        try:
            envelope = decode_command(
                delivery.body,
                content_type=delivery.content_type,
                headers=delivery.headers,
                routing_key=command_type,
                limits=self._limits,
            )
            policy = self._registry.connection(envelope.type, envelope.connection).retry
            adapter = self._registry.adapter(envelope.type, envelope.connection)
            triggered = await adapter.trigger(envelope.data, command_id=envelope.id)
        except (ContractError, FlowgateError) as exc:
            await self._refuse(exc, delivery, queue, envelope, attempt, policy)
            return
        await self._answer(envelope, triggered)
        await delivery.ack()

    async def handle_unrouted(self, delivery: Delivery) -> None:
        """A command whose routing key matched no command type: answer it, keep it."""
        routing_key = delivery.routing_key
        try:
            decode_command(
                delivery.body,
                content_type=delivery.content_type,
                headers=delivery.headers,
                routing_key=routing_key,
                limits=self._limits,
            )
        except ContractError as exc:
            error: ContractError = exc
        else:
            error = ContractError(f"routing key {routing_key!r} has no command queue")
        if not error.message.startswith("unknown command type"):
            error = ContractError(
                f"routing key {routing_key!r} is not a command type "
                f"({', '.join(sorted(COMMAND_TYPES))}): {error.message}",
                command_id=error.command_id,
                command_type=error.command_type,
            )
        await self._refuse(error, delivery, UNROUTED_QUEUE, None, 1, RetryPolicy())

    async def _refuse(
        self,
        exc: Exception,
        delivery: Delivery,
        queue: str,
        envelope: CommandEnvelope | None,
        attempt: int,
        policy: RetryPolicy,
    ) -> None:
        decision = decide(exc, attempt=attempt, policy=policy)
        if envelope is not None:
            answer = Answer(
                envelope.id,
                envelope.type,
                envelope.connection,
                Trace(envelope.traceparent, envelope.tracestate),
            )
        else:
            answer = Answer(
                getattr(exc, "command_id", None),
                getattr(exc, "command_type", None),
                "default",
                _trace_of(delivery),
            )
        headers = dict(delivery.headers)
        headers[ATTEMPT_HEADER] = attempt + 1
        await carry_out(
            decision,
            delivery=delivery,
            queue=queue,
            publisher=self._publisher,
            answer=answer,
            attempt=attempt,
            retry_headers=headers,
        )

    async def _answer(self, envelope: CommandEnvelope, triggered: Triggered) -> None:
        trace = Trace(envelope.traceparent, envelope.tracestate)
        base = EventData(
            command_id=envelope.id,
            command_type=envelope.type,
            connection=envelope.connection,
            vendor_ref=dict(triggered.vendor_ref),
            status=triggered.status,
        )
        if triggered.report is not None:
            kind, error = terminal_event(triggered.report)
            data = base.model_validate(
                {
                    **base.model_dump(),
                    "status": triggered.report.status,
                    "result": dict(triggered.report.result),
                    "error": error,
                }
            )
            await self._publisher.event(kind, data, trace=trace)
            return
        connection = self._registry.connection(envelope.type, envelope.connection)
        now = time.time()
        deadline = now + connection.poll.max_duration
        if envelope.deadline is not None:
            deadline = min(deadline, envelope.deadline.timestamp())
        request = PollRequest(
            command_id=envelope.id,
            command_type=envelope.type,
            connection=envelope.connection,
            vendor_ref=dict(triggered.vendor_ref),
            started_at=now,
            deadline=deadline,
            status=triggered.status,
            traceparent=envelope.traceparent,
            tracestate=envelope.tracestate,
        )
        await asyncio.gather(
            self._publisher.event(EventKind.ACCEPTED, base, trace=trace),
            self._publisher.delayed(
                POLL_QUEUE,
                request.model_dump_json().encode(),
                delay=connection.poll.first_delay,
                content_type="application/json",
                headers={},
                message_id=f"poll:{envelope.id}:0",
            ),
        )


def _attempt(delivery: Delivery) -> int:
    value = delivery.headers.get(ATTEMPT_HEADER, 1)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def _trace_of(delivery: Delivery) -> Trace:
    tp = delivery.headers.get("traceparent")
    ts = delivery.headers.get("tracestate")
    return Trace(tp if isinstance(tp, str) else None, ts if isinstance(ts, str) else None)
