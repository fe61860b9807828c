"""The one place a message is settled: ack, retry later, park, dead-letter, or leave alone.

Handlers (the command worker, the poller) return a settlement or raise; `Settler.run` turns
whatever they raised into one (`workers.outcome.decide`) and carries it out here, after every
output it needs is confirmed. Nothing else in `workers/` acks, nacks or rejects. Whatever a
handler raises, a command whose id is known gets its terminal event: a bug is `failed` kind
`internal`, recorded like any other outcome, and the message is dead-lettered with the reason.

What a settlement costs, in order:

    Done     ack
    Later    publish a copy round the delay queues (confirmed), ack
    Fail     dead letter (confirmed) when asked, then the `failed` event (recorded first,
             unless nothing reached the vendor and the command was invalid), ack
    Park     publish a copy round the delay queues, 1, 2, 4 ... 60 s as the outage lasts, ack
    Drop     nothing: the broker already has the message again

A publish or the store failing while settling parks the message instead; if even that fails
the error reaches the broker, which gives the message back to its queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from contracts import ContractError, EventData, EventKind
from workers import logs, tracing
from workers.broker.base import Delivery, PublishNotConfirmed
from workers.errors import FlowgateError
from workers.idempotency import StoreUnavailable
from workers.metrics import current as current_metrics
from workers.outcome import Done, Drop, Fail, Later, Park, Settlement, decide
from workers.publisher import ATTEMPT_HEADER, ROUTING_KEY_HEADER, Context, sender_of
from workers.runtime import Outcomes
from workers.topology import GIVEN_UP_QUEUE, POLL_QUEUE, RETRY_EXCHANGE
from workers.vendors._connection import RetryPolicy

__all__ = ["Answer", "Handler", "Settler", "Work", "consumed", "give_back"]

PARKED_HEADER = "x-flowgate-parked"

log = logging.getLogger("flowgate")


@dataclass(frozen=True)
class Answer:
    """Who a `failed` event is about; None fields mean the input could not tell us."""

    command_id: str | None
    command_type: str | None
    connection: str
    context: Context
    vendor_ref: dict[str, str] | None = None
    status: str | None = None


@dataclass
class Work:
    """One delivery being handled, and what the handler has learnt about it so far: enough
    for the settler to answer it whatever the handler raises next."""

    delivery: Delivery
    queue: str
    attempt: int = 1
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    answer: Answer | None = None
    doing: str = "reading the message"
    # What the handler answered when it returns Done (accepted, succeeded, repeated, ...),
    # then how the settler settled it: the metric's and the span's outcome.
    outcome: str | None = None
    error_kind: str = ""
    # Run once the message is settled, last first (a span to end, a gauge to take down).
    _done: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def on_done(self, callback: Callable[[], None]) -> None:
        self._done.append(callback)

    def trace(self, name: str, traceparent: str | None, tracestate: str | None) -> None:
        """A span (tracing on) under `traceparent`, current until the message is settled."""
        answer = self.answer
        scope = tracing.begin(
            name,
            traceparent,
            tracestate,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.destination.name": self.queue,
                "flowgate.command_id": (answer.command_id if answer else None) or "",
                "flowgate.attempt": self.attempt,
            },
        )
        if scope is not None:
            self.on_done(lambda: scope.end(self.outcome, self.error_kind))

    def log_fields(self) -> dict[str, Any]:
        """Who the message is about, for its log lines (`workers.logs`)."""
        answer = self.answer
        if answer is None:
            return {"queue": self.queue, "attempt": self.attempt}
        found: dict[str, Any] = {
            "command_id": answer.command_id,
            "command_type": answer.command_type,
            "connection": answer.connection,
            "attempt": self.attempt,
        }
        if answer.vendor_ref:
            found["vendor_ref"] = answer.vendor_ref
        return found

    def learnt(self, **changes: Any) -> None:
        """Update the answer (the vendor reference once the trigger answered, ...)."""
        assert self.answer is not None
        self.answer = replace(self.answer, **changes)

    def retry_headers(self) -> dict[str, Any]:
        """The delivered headers with the attempt number of the next try."""
        headers = dict(self.delivery.headers)
        headers[ATTEMPT_HEADER] = self.attempt + 1
        return headers


Handler = Callable[[Work], Awaitable[Settlement]]


async def consumed(delivery: Delivery) -> None:
    """Ack a message a tool has fully dealt with (an event read by the demo, a dead letter
    copied or replayed by `flowgate dlq`): outside the runtime's handlers, this is the way."""
    await delivery.ack()


async def give_back(delivery: Delivery) -> None:
    """Requeue a message a tool took but does not consume."""
    await delivery.requeue()


class Settler:
    def __init__(self, outcomes: Outcomes) -> None:
        self._outcomes = outcomes
        self._publisher = outcomes.publisher

    async def run(self, work: Work, handler: Handler) -> None:
        """Handle `work.delivery` with `handler` and settle it, whatever happens."""
        bound = logs.bind(work)
        try:
            await self._run(work, handler)
        finally:
            logs.unbind(bound)
            for callback in reversed(work._done):
                callback()

    async def _run(self, work: Work, handler: Handler) -> None:
        try:
            settlement = await handler(work)
        except (StoreUnavailable, PublishNotConfirmed) as exc:
            settlement = Park(str(exc), cause=_cause(exc))
        except Exception as exc:
            if not isinstance(exc, ContractError | FlowgateError):  # those are outcomes
                log.exception(
                    "bug while %s (%s, message %s)",
                    work.doing,
                    work.queue,
                    work.answer.command_id if work.answer else work.delivery.message_id,
                )
            settlement = decide(exc, attempt=work.attempt, policy=work.policy, doing=work.doing)
            if isinstance(settlement, Later) and settlement.retry:
                settlement = replace(settlement, headers=work.retry_headers())
            if work.answer is None:
                work.answer = _answer_from(exc, work.delivery)
        await self.settle(work, settlement)

    async def settle(self, work: Work, settlement: Settlement) -> None:
        try:
            await self._carry_out(work, settlement)
        except (StoreUnavailable, PublishNotConfirmed) as exc:
            if work.delivery.settled:
                raise
            if isinstance(settlement, Park):
                await _hold(work.delivery)
                raise
            settlement = Park(str(exc), cause=_cause(exc))
            try:
                await self._carry_out(work, settlement)
            except (StoreUnavailable, PublishNotConfirmed):
                if not work.delivery.settled:
                    await _hold(work.delivery)
                raise
        _observe(work, settlement)

    async def _carry_out(self, work: Work, settlement: Settlement) -> None:
        delivery = work.delivery
        if isinstance(settlement, Drop) or delivery.lost:
            # Lost: its channel closed while it was handled, and RabbitMQ gives the message
            # again; a copy for later, or an ack, would only fail or double it.
            return
        if isinstance(settlement, Later):
            await self._later(work, settlement)
        elif isinstance(settlement, Park):
            count = _parked(delivery)
            delay = _park_delay(delivery)
            log.warning(
                "dependency unavailable (%s); retrying a message of %s in %.0f s",
                settlement.reason,
                work.queue,
                delay,
                extra=logs.fields(event="retry", reason=settlement.cause, delay=delay),
            )
            headers = dict(delivery.headers)
            headers[PARKED_HEADER] = count + 1
            await self._later(work, Later(delay, headers=headers))
        elif isinstance(settlement, Fail):
            await self._fail(work, settlement)
        else:
            assert isinstance(settlement, Done), settlement
        if not delivery.lost:
            await delivery.ack()

    async def _later(self, work: Work, later: Later) -> None:
        if later.reason:
            log.info(
                "%s %s: trying again in %.1f s (%s)",
                (work.answer.command_type if work.answer else None) or "message",
                (work.answer.command_id if work.answer else None) or "<no id>",
                later.delay,
                later.reason,
                extra=logs.fields(event="retry", reason=later.reason, delay=round(later.delay, 3)),
            )
        delivery = work.delivery
        headers = dict(delivery.headers if later.headers is None else later.headers)
        if delivery.exchange != RETRY_EXCHANGE:
            # The routing key it came with, kept for `flowgate dlq replay` (the delay queues
            # give it another).
            headers.setdefault(ROUTING_KEY_HEADER, delivery.routing_key)
        await self._publisher.delayed(
            work.queue,
            delivery.body if later.body is None else later.body,
            delay=later.delay,
            content_type=delivery.content_type,
            headers=headers,
            message_id=delivery.message_id,
            reply_to=delivery.reply_to,
            sender=sender_of(delivery),
        )

    async def _fail(self, work: Work, fail: Fail) -> None:
        error = fail.error
        answer = work.answer
        if fail.dead_letter:
            # Before the outcome is recorded: once it is, a redelivery only repeats the event,
            # and a dead letter lost in a crash here would never be written.
            await self._publisher.dead_letter(
                work.delivery,
                queue=work.queue,
                reason=error.message,
                error_kind=error.kind,
                attempts=work.attempt,
            )
            current_metrics().dead_letter(error.kind)
        if answer is not None and answer.command_id is not None:
            data = EventData(
                command_id=answer.command_id,
                command_type=answer.command_type or "unknown",
                connection=answer.connection,
                vendor_ref=answer.vendor_ref or {},
                status=answer.status,
                error=error,
            )
            if error.kind == "invalid" and answer.vendor_ref is None:
                # Nothing reached the vendor: a corrected command re-published with the same
                # id is still welcome, so this failure is not the command's recorded outcome.
                await self._publisher.event(EventKind.FAILED, data, context=answer.context)
            else:
                await self._outcomes.finish(EventKind.FAILED, data, answer.context)
        log.warning(
            "failed %s %s: %s (%s)",
            (answer.command_type if answer else None) or "message",
            (answer.command_id if answer else None) or "<no id>",
            error.message,
            error.kind,
        )


def _cause(exc: Exception) -> str:
    return "store_unavailable" if isinstance(exc, StoreUnavailable) else "publish_unconfirmed"


def _observe(work: Work, settlement: Settlement) -> None:
    """The metrics of a settled message: how a command was settled, and retries."""
    outcome, error_kind = _outcome(work, settlement)
    work.outcome, work.error_kind = outcome, error_kind
    answer = work.answer
    command_type = answer.command_type if answer is not None else None
    metrics = current_metrics()
    if work.queue not in _NOT_COMMANDS:
        metrics.consumed(command_type, outcome, error_kind)
    if isinstance(settlement, Later) and settlement.reason:
        metrics.retry(command_type, settlement.reason)
    elif isinstance(settlement, Park):
        metrics.retry(command_type, settlement.cause)


# The queues whose messages are not commands (every other one is a command queue or unrouted).
_NOT_COMMANDS = frozenset({POLL_QUEUE, GIVEN_UP_QUEUE})


def _outcome(work: Work, settlement: Settlement) -> tuple[str, str]:
    if isinstance(settlement, Done):
        return work.outcome or "done", work.error_kind
    if isinstance(settlement, Fail):
        return "failed", settlement.error.kind.value
    if isinstance(settlement, Later):
        return ("retried" if settlement.retry else "deferred"), ""
    if isinstance(settlement, Park):
        return "parked", ""
    return "dropped", ""


def _answer_from(exc: Exception, delivery: Delivery) -> Answer:
    """Who to answer when the handler failed before it knew: what the error could read."""
    return Answer(
        getattr(exc, "command_id", None),
        getattr(exc, "command_type", None),
        "default",
        Context.from_headers(delivery.headers, getattr(exc, "replayof", None), delivery.reply_to),
    )


def _parked(delivery: Delivery) -> int:
    """How many times this message was parked before."""
    parked = delivery.headers.get(PARKED_HEADER, 0)
    return parked if isinstance(parked, int) else 0


def _park_delay(delivery: Delivery) -> float:
    """1, 2, 4 ... 60 s as the outage lasts."""
    return float(min(2 ** min(_parked(delivery), 6), 60))


async def _hold(delivery: Delivery) -> None:
    """Even parking failed (RabbitMQ nacked the delay publish too: a quorum queue without its
    leader while a node is down). Given back at once, the message would come straight back
    and spend its delivery limit in a second, then be dead-lettered while the outage lasts
    (measured: the soak on the cluster, 2026-11-26). Held unacked for the park's delay first,
    it is given back when the outage may be over; a process that dies meanwhile gives it back
    all the same."""
    await _hold_for(_park_delay(delivery))


_hold_for = asyncio.sleep  # a test counts the holds instead of waiting them out
