"""What the command worker and the poller share: early arrivals, terminal outcomes recorded
before they are published, and carrying out a Decision."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from contracts import ErrorInfo, ErrorKind, EventData, EventKind
from workers.broker.base import Delivery
from workers.idempotency import IdempotencyStore
from workers.outcome import Decision
from workers.publisher import DUE_HEADER, Publisher, Trace
from workers.topology import DELAY_TIERS_MS, RETRY_EXCHANGE
from workers.vendors.base import StatusReport

__all__ = ["Answer", "Outcomes", "carry_out", "park", "redelay_if_early", "terminal_event"]

PARKED_HEADER = "x-flowgate-parked"

log = logging.getLogger("flowgate")

# A message back from the delay ladder this close to its due time is processed, not re-sent.
_EARLY_TOLERANCE = 0.05
# No delay flowgate schedules is longer (Retry-After is capped at an hour by default).
_MAX_DELAY = 2 * 86400.0


async def redelay_if_early(delivery: Delivery, queue: str, publisher: Publisher) -> bool:
    """Send a message that came back from a coarse delay tier round again for the rest."""
    due = delivery.headers.get(DUE_HEADER)
    # Only flowgate's own delay ladder may postpone work: a publisher cannot park a command
    # by setting the header itself, and a nonsense value is ignored rather than obeyed.
    if delivery.exchange != RETRY_EXCHANGE or not isinstance(due, int | float):
        return False
    if not math.isfinite(due):
        return False
    remaining = min(due / 1000 - time.time(), _MAX_DELAY)
    if remaining <= _EARLY_TOLERANCE:
        return False
    if remaining < DELAY_TIERS_MS[0] / 1000:
        # Less than the smallest tier is left: another hop would land up to a tier late and
        # cost a publish, a confirm and a consume; a wait this short costs nothing.
        await asyncio.sleep(remaining)
        return False
    await publisher.delayed(
        queue,
        delivery.body,
        delay=remaining,
        content_type=delivery.content_type,
        headers={k: v for k, v in delivery.headers.items() if k != DUE_HEADER},
        message_id=delivery.message_id,
    )
    await delivery.ack()
    return True


class Outcomes:
    """Terminal events go through here: recorded first (the first one recorded wins), then
    published, so a command can never get two different terminal events, and a re-published
    command gets the recorded one again."""

    def __init__(self, store: IdempotencyStore, publisher: Publisher) -> None:
        self.store = store
        self.publisher = publisher

    async def finish(self, kind: EventKind, data: EventData, trace: Trace) -> None:
        recorded = await self.store.record_outcome(
            data.command_id, {"kind": kind.value, "data": data.model_dump(mode="json")}
        )
        await self.republish(recorded, trace)

    async def republish(self, recorded: dict[str, Any], trace: Trace) -> None:
        data = EventData.model_validate(recorded["data"])
        await self.publisher.event(EventKind(recorded["kind"]), data, trace=trace)


async def park(delivery: Delivery, queue: str, publisher: Publisher, exc: Exception) -> None:
    """Send a message round the delay ladder because a dependency is down, then ack it.

    Requeueing would spin through the quorum queue's delivery limit in seconds and dead-letter
    good work during a short Redis outage; parking waits 1, 2, 4 … 60 s between tries, as long
    as the outage lasts. If even this publish fails, the error propagates and the broker gets
    the message back.
    """
    parked = delivery.headers.get(PARKED_HEADER, 0)
    count = parked if isinstance(parked, int) else 0
    delay = float(min(2 ** min(count, 6), 60))
    log.warning(
        "dependency unavailable (%s); retrying a message of %s in %.0f s", exc, queue, delay
    )
    headers = dict(delivery.headers)
    headers[PARKED_HEADER] = count + 1
    await publisher.delayed(
        queue,
        delivery.body,
        delay=delay,
        content_type=delivery.content_type,
        headers=headers,
        message_id=delivery.message_id,
    )
    await delivery.ack()


@dataclass(frozen=True)
class Answer:
    """Who a `failed` event is about; None fields mean the input could not tell us."""

    command_id: str | None
    command_type: str | None
    connection: str
    trace: Trace
    vendor_ref: dict[str, str] | None = None
    status: str | None = None


async def carry_out(
    decision: Decision,
    *,
    delivery: Delivery,
    queue: str,
    outcomes: Outcomes,
    answer: Answer,
    attempt: int,
    retry_body: bytes | None = None,
    retry_headers: dict[str, object] | None = None,
) -> None:
    """Retry later, or answer `failed` and dead-letter; then ack. Outputs are confirmed first.

    A failure is recorded as the command's outcome, except `invalid`: nothing reached the vendor,
    so a corrected command re-published with the same id is still welcome.
    """
    publisher = outcomes.publisher
    if decision.retry_in is not None:
        await publisher.delayed(
            queue,
            retry_body if retry_body is not None else delivery.body,
            delay=decision.retry_in,
            content_type=delivery.content_type,
            headers=retry_headers if retry_headers is not None else dict(delivery.headers),
            message_id=delivery.message_id,
        )
        await delivery.ack()
        return
    error = decision.error
    assert error is not None
    if decision.dead_letter:
        # Before the outcome is recorded: once it is, a redelivery only repeats the event, and
        # a dead letter lost in a crash here would never be written.
        await publisher.dead_letter(
            delivery, queue=queue, reason=error.message, error_kind=error.kind, attempts=attempt
        )
    if answer.command_id is not None:
        data = EventData(
            command_id=answer.command_id,
            command_type=answer.command_type or "unknown",
            connection=answer.connection,
            vendor_ref=answer.vendor_ref or {},
            status=answer.status,
            error=error,
        )
        if error.kind == "invalid":
            await publisher.event(EventKind.FAILED, data, trace=answer.trace)
        else:
            await outcomes.finish(EventKind.FAILED, data, answer.trace)
    log.warning(
        "failed %s %s: %s (%s)",
        answer.command_type or "message",
        answer.command_id or "<no id>",
        error.message,
        error.kind,
    )
    await delivery.ack()


def terminal_event(report: StatusReport) -> tuple[EventKind, ErrorInfo | None]:
    """The event kind for a final report, and the error when it failed."""
    if report.state == "succeeded":
        return EventKind.SUCCEEDED, None
    if report.state == "cancelled":
        return EventKind.CANCELLED, None
    message = report.message or f"the vendor reported {report.status}"
    return EventKind.FAILED, ErrorInfo(
        kind=ErrorKind.VENDOR_FAILED, message=message, vendor_code=report.vendor_code
    )
