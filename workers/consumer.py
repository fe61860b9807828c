"""The command worker: decode, trigger the vendor, answer, and hand the run to the poller.

Stateless between messages; many messages are in flight per process (bounded by prefetch).
A command is acked only after everything it produced (events, poll request, retry or dead
letter) was confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

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
from workers.errors import FlowgateError, UnknownOutcome, VendorUnavailable
from workers.outcome import decide
from workers.poller.request import PollRequest, send_poll
from workers.publisher import ATTEMPT_HEADER, Trace
from workers.registry import Registry
from workers.runtime import Answer, Outcomes, carry_out, redelay_if_early, terminal_event
from workers.topology import UNROUTED_QUEUE, command_queue
from workers.vendors._connection import ConnectionBase, RetryPolicy
from workers.vendors.base import Triggered

__all__ = ["CommandWorker"]

log = logging.getLogger("flowgate.worker")


class CommandWorker:
    def __init__(
        self,
        registry: Registry,
        outcomes: Outcomes,
        limits: InputLimits,
        *,
        owner: str,
        poll_hold: float = 0.0,
    ) -> None:
        self._registry = registry
        self._outcomes = outcomes
        self._store = outcomes.store
        self._publisher = outcomes.publisher
        self._limits = limits
        self._owner = owner
        self._poll_hold = poll_hold

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
            connection = self._registry.connection(envelope.type, envelope.connection)
            policy = connection.retry
            # One owner per delivery, not per process: two copies of a command in one process
            # must not both think they hold the claim.
            owner = f"{self._owner}:{uuid.uuid4().hex[:8]}"
            if await self._resume(delivery, queue, envelope, connection, owner):
                return
            triggered = await self._trigger(envelope, connection, owner)
        except (ContractError, FlowgateError) as exc:
            await self._refuse(exc, delivery, queue, envelope, attempt, policy)
            return
        trace = Trace(envelope.traceparent, envelope.tracestate)
        if triggered.report is not None:
            kind, error = terminal_event(triggered.report)
            data = EventData(
                command_id=envelope.id,
                command_type=envelope.type,
                connection=envelope.connection,
                vendor_ref=dict(triggered.vendor_ref),
                status=triggered.report.status,
                result=dict(triggered.report.result),
                error=error,
            )
            await self._outcomes.finish(kind, data, trace)
        else:
            # Recorded before anything is published: from here on, a redelivery resumes.
            await self._store.record_trigger(envelope.id, dict(triggered.vendor_ref))
            await self._follow(envelope, connection, dict(triggered.vendor_ref), triggered.status)
        await delivery.ack()

    async def _resume(
        self,
        delivery: Delivery,
        queue: str,
        envelope: CommandEnvelope,
        connection: ConnectionBase,
        owner: str,
    ) -> bool:
        """Claim the id; when it was seen before, finish from what is recorded. True if done."""
        claim = await self._store.claim(envelope.id, owner=owner, lease=connection.trigger_lease)
        trace = Trace(envelope.traceparent, envelope.tracestate)
        if claim.state == "finished":
            assert claim.outcome is not None
            await self._outcomes.republish(claim.outcome, trace)
        elif claim.state == "triggered":
            assert claim.vendor_ref is not None
            log.info("command %s was triggered before: resuming", envelope.id)
            await self._follow(envelope, connection, claim.vendor_ref, None, resumed=True)
        elif claim.state == "busy":
            # Another process is calling the vendor for this id right now: look again later.
            await self._publisher.delayed(
                queue,
                delivery.body,
                delay=claim.lease_left + 0.5,
                content_type=delivery.content_type,
                headers=dict(delivery.headers),
                message_id=delivery.message_id,
            )
        elif claim.state == "unknown":
            if connection.unknown_outcome == "fail":
                raise UnknownOutcome(
                    "an earlier attempt may have triggered the vendor but stopped before "
                    "recording its answer; this connection never triggers twice"
                )
            await self._store.claim(
                envelope.id, owner=owner, lease=connection.trigger_lease, force=True
            )
            return False
        else:
            return False
        await delivery.ack()
        return True

    async def _trigger(
        self, envelope: CommandEnvelope, connection: ConnectionBase, owner: str
    ) -> Triggered:
        adapter = self._registry.adapter(envelope.type, envelope.connection)
        try:
            return await adapter.trigger(envelope.data, command_id=envelope.id)
        except VendorUnavailable as exc:
            if exc.maybe_sent and connection.unknown_outcome == "fail":
                raise UnknownOutcome(
                    f"{exc.message}; the vendor may have run it, and this connection "
                    "never triggers twice"
                ) from None
            await self._store.release(envelope.id, owner=owner)
            raise
        except FlowgateError:
            await self._store.release(envelope.id, owner=owner)
            raise

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
            outcomes=self._outcomes,
            answer=answer,
            attempt=attempt,
            retry_headers=headers,
        )

    async def _follow(
        self,
        envelope: CommandEnvelope,
        connection: ConnectionBase,
        vendor_ref: dict[str, str],
        status: str | None,
        *,
        resumed: bool = False,
    ) -> None:
        """Publish `accepted` and the first poll request, together."""
        trace = Trace(envelope.traceparent, envelope.tracestate)
        accepted = EventData(
            command_id=envelope.id,
            command_type=envelope.type,
            connection=envelope.connection,
            vendor_ref=vendor_ref,
            status=status,
        )
        now = time.time()
        deadline = now + connection.poll.max_duration
        if envelope.deadline is not None:
            deadline = min(deadline, envelope.deadline.timestamp())
        request = PollRequest(
            command_id=envelope.id,
            command_type=envelope.type,
            connection=envelope.connection,
            vendor_ref=vendor_ref,
            started_at=now,
            deadline=deadline,
            due_at=now + min(connection.poll.first_delay, max(0.0, deadline - now)),
            status=status,
            traceparent=envelope.traceparent,
            tracestate=envelope.tracestate,
            resumed=resumed,
        )
        await asyncio.gather(
            self._publisher.event(EventKind.ACCEPTED, accepted, trace=trace),
            send_poll(self._publisher, request, hold=self._poll_hold),
        )


def _attempt(delivery: Delivery) -> int:
    value = delivery.headers.get(ATTEMPT_HEADER, 1)
    try:
        return max(1, int(value))
    except (TypeError, ValueError, OverflowError):
        return 1


def _trace_of(delivery: Delivery) -> Trace:
    tp = delivery.headers.get("traceparent")
    ts = delivery.headers.get("tracestate")
    return Trace(tp if isinstance(tp, str) else None, ts if isinstance(ts, str) else None)
