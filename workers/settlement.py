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

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from contracts import ContractError, EventData, EventKind
from workers.broker.base import Delivery, PublishNotConfirmed
from workers.errors import FlowgateError
from workers.idempotency import StoreUnavailable
from workers.outcome import Done, Drop, Fail, Later, Park, Settlement, decide
from workers.publisher import ATTEMPT_HEADER, ROUTING_KEY_HEADER, Context
from workers.runtime import Outcomes
from workers.topology import RETRY_EXCHANGE
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
        try:
            settlement = await handler(work)
        except (StoreUnavailable, PublishNotConfirmed) as exc:
            settlement = Park(str(exc))
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
                settlement = Later(settlement.delay, headers=work.retry_headers(), retry=True)
            if work.answer is None:
                work.answer = _answer_from(exc, work.delivery)
        await self.settle(work, settlement)

    async def settle(self, work: Work, settlement: Settlement) -> None:
        try:
            await self._carry_out(work, settlement)
        except (StoreUnavailable, PublishNotConfirmed) as exc:
            if work.delivery.settled or isinstance(settlement, Park):
                raise
            await self._carry_out(work, Park(str(exc)))

    async def _carry_out(self, work: Work, settlement: Settlement) -> None:
        delivery = work.delivery
        if isinstance(settlement, Drop):
            return
        if isinstance(settlement, Later):
            await self._later(work, settlement)
        elif isinstance(settlement, Park):
            parked = delivery.headers.get(PARKED_HEADER, 0)
            count = parked if isinstance(parked, int) else 0
            delay = float(min(2 ** min(count, 6), 60))
            log.warning(
                "dependency unavailable (%s); retrying a message of %s in %.0f s",
                settlement.reason,
                work.queue,
                delay,
            )
            headers = dict(delivery.headers)
            headers[PARKED_HEADER] = count + 1
            await self._later(work, Later(delay, headers=headers))
        elif isinstance(settlement, Fail):
            await self._fail(work, settlement)
        else:
            assert isinstance(settlement, Done), settlement
        await delivery.ack()

    async def _later(self, work: Work, later: Later) -> None:
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


def _answer_from(exc: Exception, delivery: Delivery) -> Answer:
    """Who to answer when the handler failed before it knew: what the error could read."""
    return Answer(
        getattr(exc, "command_id", None),
        getattr(exc, "command_type", None),
        "default",
        Context.from_headers(delivery.headers, getattr(exc, "replayof", None), delivery.reply_to),
    )
