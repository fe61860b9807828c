"""One status call per poll request, then: a terminal event, or the next poll, later.

`progress` is published only when the vendor's status changed. Deadlines (the command's own,
or the connection's `poll.max_duration`) end a run with `failed` kind `deadline`.
"""

from __future__ import annotations

import logging
import time

from pydantic import ValidationError

from contracts import ErrorInfo, ErrorKind, EventData, EventKind
from workers.broker.base import Delivery
from workers.errors import FlowgateError
from workers.outcome import Decision, decide
from workers.poller.request import PollRequest, next_poll_delay
from workers.publisher import Trace
from workers.registry import Registry
from workers.runtime import Answer, Outcomes, carry_out, redelay_if_early, terminal_event
from workers.topology import POLL_QUEUE
from workers.vendors._connection import RetryPolicy

__all__ = ["Poller"]

log = logging.getLogger("flowgate.poller")


class Poller:
    def __init__(self, registry: Registry, outcomes: Outcomes) -> None:
        self._registry = registry
        self._outcomes = outcomes
        self._publisher = outcomes.publisher

    async def handle(self, delivery: Delivery) -> None:
        if await redelay_if_early(delivery, POLL_QUEUE, self._publisher):
            return
        try:
            request = PollRequest.model_validate_json(delivery.body)
        except ValidationError as exc:
            # Only flowgate writes poll requests: a bad one is a bug or a stray publish.
            await self._publisher.dead_letter(
                delivery,
                queue=POLL_QUEUE,
                reason=f"not a poll request: {exc.error_count()} validation errors",
                error_kind="invalid",
                attempts=1,
            )
            await delivery.ack()
            return
        trace = Trace(request.traceparent, request.tracestate)
        answer = Answer(
            request.command_id,
            request.command_type,
            request.connection,
            trace,
            vendor_ref=request.vendor_ref,
            status=request.status,
        )
        # Only a chain started again after a redelivery can run beside another one; for the
        # rest, recording the outcome (first one wins) is protection enough, and this read
        # would cost a Redis round trip per poll.
        recorded = (
            await self._outcomes.store.outcome(request.command_id) if request.resumed else None
        )
        if recorded is not None:
            # Another poll chain for the same run (after a redelivery) already finished it:
            # repeat its event (same id) in case that chain died before publishing, and stop.
            await self._outcomes.republish(recorded, trace)
            await delivery.ack()
            return
        if time.time() >= request.deadline:
            await self._give_up(delivery, request, answer)
            return
        try:
            connection = self._registry.connection(request.command_type, request.connection)
            adapter = self._registry.adapter(request.command_type, request.connection)
            report = await adapter.status(request.vendor_ref, cursor=request.cursor)
        except FlowgateError as exc:
            policy = self._status_retry(request)
            decision = decide(exc, attempt=request.errors + 1, policy=policy)
            retry = request.model_copy(update={"errors": request.errors + 1})
            await carry_out(
                decision,
                delivery=delivery,
                queue=POLL_QUEUE,
                outcomes=self._outcomes,
                answer=answer,
                attempt=request.errors + 1,
                retry_body=retry.model_dump_json().encode(),
                retry_headers={},
            )
            return
        base = EventData(
            command_id=request.command_id,
            command_type=request.command_type,
            connection=request.connection,
            vendor_ref=request.vendor_ref,
            status=report.status,
            result=dict(report.result),
        )
        if report.state != "running":
            kind, error = terminal_event(report)
            await self._outcomes.finish(kind, base.model_copy(update={"error": error}), trace)
            await delivery.ack()
            return
        if report.status != request.status:
            await self._publisher.event(
                EventKind.PROGRESS, base, trace=trace, discriminator=f"{request.polls}"
            )
        poll = connection.poll
        # The first call came `first_delay` after the trigger; this is the delay after call
        # number `polls + 1`, so the schedule runs 1, 1.2, 1.44 … and not 1, 1, 1.2 ….
        delay = next_poll_delay(
            request.polls + 1, first=poll.first_delay, factor=poll.factor, maximum=poll.max_delay
        )
        # Never sleep past the deadline: the last look happens at it, not long after.
        delay = max(0.0, min(delay, request.deadline - time.time()))
        following = request.model_copy(
            update={
                "status": report.status,
                "cursor": dict(report.cursor),
                "polls": request.polls + 1,
                "errors": 0,
            }
        )
        await self._publisher.delayed(
            POLL_QUEUE,
            following.model_dump_json().encode(),
            delay=delay,
            content_type="application/json",
            headers={},
            message_id=f"poll:{request.command_id}:{following.polls}",
        )
        await delivery.ack()

    def _status_retry(self, request: PollRequest) -> RetryPolicy:
        connection = self._registry.connection(request.command_type, request.connection)
        return connection.retry.model_copy(update={"max_attempts": connection.poll.max_errors})

    async def _give_up(self, delivery: Delivery, request: PollRequest, answer: Answer) -> None:
        waited = time.time() - request.started_at
        error = ErrorInfo(
            kind=ErrorKind.DEADLINE,
            message=f"run not finished by its deadline ({waited:.0f} s after the trigger, "
            f"last status {request.status or 'unknown'})",
        )
        await carry_out(
            Decision(error),
            delivery=delivery,
            queue=POLL_QUEUE,
            outcomes=self._outcomes,
            answer=answer,
            attempt=request.polls,
        )
