"""What the command worker and the poller share: early arrivals from the delay queues, and
terminal outcomes recorded before they are published."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from contracts import ErrorInfo, EventData, EventKind
from workers.broker.base import Delivery
from workers.idempotency import IdempotencyStore
from workers.outcome import Later
from workers.publisher import DUE_HEADER, Context, Publisher
from workers.topology import DELAY_TIERS_MS, RETRY_EXCHANGE
from workers.vendors.base import StatusReport

__all__ = ["Outcomes", "redelay_if_early", "terminal_event"]

# A message back from the delay ladder this close to its due time is processed, not re-sent.
_EARLY_TOLERANCE = 0.05
# No delay flowgate schedules is longer (Retry-After is capped at an hour by default).
_MAX_DELAY = 2 * 86400.0


async def redelay_if_early(delivery: Delivery) -> Later | None:
    """A message back from a coarse delay tier before it is due: round again for the rest
    (`Later`), or None to handle it now (waiting out a remainder under the smallest tier)."""
    due = delivery.headers.get(DUE_HEADER)
    # Only flowgate's own delay ladder may postpone work: a publisher cannot park a command
    # by setting the header itself, and a nonsense value is ignored rather than obeyed.
    if delivery.exchange != RETRY_EXCHANGE or not isinstance(due, int | float):
        return None
    if not math.isfinite(due):
        return None
    remaining = min(due / 1000 - time.time(), _MAX_DELAY)
    if remaining <= _EARLY_TOLERANCE:
        return None
    if remaining < DELAY_TIERS_MS[0] / 1000:
        # Less than the smallest tier is left: another hop would land up to a tier late and
        # cost a publish, a confirm and a consume; a wait this short costs nothing.
        await asyncio.sleep(remaining)
        return None
    headers = {k: v for k, v in delivery.headers.items() if k != DUE_HEADER}
    return Later(remaining, headers=headers)


class Outcomes:
    """Terminal events go through here: recorded first (the first one recorded wins), then
    published, so a command can never get two different terminal events, and a re-published
    command gets the recorded one again."""

    def __init__(self, store: IdempotencyStore, publisher: Publisher) -> None:
        self.store = store
        self.publisher = publisher

    async def finish(self, kind: EventKind, data: EventData, context: Context) -> None:
        recorded = await self.store.record_outcome(
            data.command_id, {"kind": kind.value, "data": data.model_dump(mode="json")}
        )
        await self.republish(recorded, context)

    async def republish(self, recorded: dict[str, Any], context: Context) -> None:
        data = EventData.model_validate(recorded["data"])
        await self.publisher.event(EventKind(recorded["kind"]), data, context=context)


def terminal_event(report: StatusReport) -> tuple[EventKind, ErrorInfo | None]:
    """The event kind for a final report, and the error when it failed."""
    if report.state == "succeeded":
        return EventKind.SUCCEEDED, None
    if report.state == "cancelled":
        return EventKind.CANCELLED, None
    message = report.message or f"the vendor reported {report.status}"
    return EventKind.FAILED, ErrorInfo(
        kind=report.error_kind, message=message, vendor_code=report.vendor_code
    )
