"""One status call per due time, then: a terminal event, the next call, or a hand-back.

A call due within `hold` seconds is waited for here, the poll request unacked: a crash gives it
back to the queue, and a clean stop (`release`) hands every held run back at once. Anything the
run announced (a `progress` event) or read (a new cursor) is checkpointed first: the next request
is published and the current one acked, so a redelivery never replays from before it. Later
calls go round the delay ladder. Deadlines (the command's own, or the connection's
`poll.max_duration`) end a run with `failed` kind `deadline`.

A run whose status stays the same longer than its connection's `poll.stuck_after` is announced
once (`progress` with `stuck: true`; a call is scheduled for that moment), and a change after
that says `stuck: false`. Each announcement also records the run's state in the store for
`flowgate runs`: one store call per change, none per unchanged call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from pydantic import ValidationError

from contracts import ErrorInfo, ErrorKind, EventData, EventKind
from workers import logs, tracing
from workers.errors import FlowgateError, UnknownConnection
from workers.idempotency import RunEvent, RunState
from workers.metrics import current as current_metrics
from workers.outcome import Done, Drop, Fail, Later, Settlement, decide
from workers.poller.request import PollRequest, next_poll_delay, send_poll
from workers.publisher import Context
from workers.registry import Registry
from workers.runtime import Outcomes, redelay_if_early, terminal_event
from workers.settlement import Answer, Work
from workers.topology import DELAY_TIERS_MS
from workers.vendors._connection import PollPolicy

__all__ = ["Poller"]

log = logging.getLogger("flowgate.poller")

# A remainder under the smallest delay tier is always waited out: the ladder would land it late.
_SUB_TIER = DELAY_TIERS_MS[0] / 1000


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Poller:
    def __init__(
        self, registry: Registry, outcomes: Outcomes, *, hold: float = 0.0, max_held: int = 0
    ) -> None:
        self._registry = registry
        self._outcomes = outcomes
        self._publisher = outcomes.publisher
        self._hold = hold
        self._max_held = max_held
        self._held: set[asyncio.Future[None]] = set()
        self._released = False

    @property
    def held(self) -> int:
        """Runs waiting in this process for their next status call."""
        return len(self._held)

    def release(self) -> None:
        """Stop holding (at shutdown): every waiting run is handed back to the queue now."""
        self._released = True
        for waiter in self._held:
            _wake(waiter)

    async def handle(self, work: Work) -> Settlement:
        delivery = work.delivery
        try:
            request = PollRequest.model_validate_json(delivery.body)
        except ValidationError as exc:
            # Only flowgate writes poll requests: a bad one is a bug or a stray publish. Its
            # command still gets its terminal event when the request names it.
            work.answer = _answer_of_unreadable(delivery.body)
            return Fail(
                ErrorInfo(
                    kind=ErrorKind.INTERNAL,
                    message=f"unreadable poll request ({exc.error_count()} validation errors); "
                    "flowgate stopped following this run",
                ),
                dead_letter=True,
            )
        # Requests written before `due_at` existed rely on the ladder's due header.
        if request.due_at is None:
            early = await redelay_if_early(delivery)
            if early is not None:
                return early
        context = Context(
            request.traceparent, request.tracestate, request.replayof, request.reply_to
        )
        work.answer = Answer(
            request.command_id,
            request.command_type,
            request.connection,
            context,
            vendor_ref=request.vendor_ref,
            status=request.status,
        )
        work.attempt = request.errors + 1
        work.doing = "following the run"
        in_hand = current_metrics().following(request.command_type)
        in_hand.inc()
        work.on_done(in_hand.dec)
        # Only a chain started again after a redelivery can run beside another one; for the
        # rest, recording the outcome (first one wins) is protection enough, and this read
        # would cost a Redis round trip per poll.
        recorded = (
            await self._outcomes.store.outcome(request.command_id) if request.resumed else None
        )
        if recorded is not None:
            # Another poll chain for the same run (after a redelivery) already finished it:
            # repeat its event (same id) in case that chain died before publishing, and stop.
            await self._outcomes.republish(recorded, context)
            return Done()
        while True:
            wait = request.wait()
            if wait > 0:
                if not await self._wait(wait):
                    # Due too late to hold, too many held, or stopping: round the delay
                    # ladder (straight back to the queue would only come back here at once).
                    await send_poll(self._publisher, request, hold=0.0)
                    return Done()
                if delivery.lost:
                    return Drop()  # its channel closed while it waited: the broker has it again
            with tracing.span(
                f"poll {request.command_type}",
                traceparent=request.traceparent,
                tracestate=request.tracestate,
                remote=True,
            ):
                following = await self._poll(work, request, context)
            if not isinstance(following, PollRequest):
                return following
            request = following

    async def _wait(self, seconds: float) -> bool:
        """Wait here for a call due in `seconds`; False, at once or when released, if not."""
        if self._released or seconds > max(self._hold, _SUB_TIER):
            return False
        if seconds > _SUB_TIER and len(self._held) >= self._max_held:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _wake, waiter)
        self._held.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._held.discard(waiter)
        return not self._released

    async def _poll(
        self, work: Work, request: PollRequest, context: Context
    ) -> PollRequest | Settlement:
        """One status call. The next request when the run may be held on; otherwise how this
        delivery is to be settled (finished, handed on, retried or given up)."""
        work.learnt(status=request.status)
        try:
            _, connection = self._registry.resolve(request.command_type, request.connection)
        except UnknownConnection as exc:
            # Renamed or removed while this run was followed: nothing here can follow it.
            return Fail(
                ErrorInfo(
                    kind=ErrorKind.INTERNAL,
                    message=f"{exc.message}: the connection this run was started on is no "
                    "longer configured, so flowgate stopped following it; the vendor run may "
                    "still be going",
                ),
                dead_letter=True,
            )
        if time.time() >= request.deadline:
            return await self._give_up(request, interrupt=connection.on_deadline == "interrupt")
        if request.due_at is not None:
            current_metrics().polled(request.command_type, time.time() - request.due_at)
        try:
            handler = self._registry.handler(request.command_type, request.connection)
            report = await handler.status(request.vendor_ref, cursor=request.cursor)
        except FlowgateError as exc:
            policy = connection.retry.model_copy(
                update={"max_attempts": connection.poll.max_errors}
            )
            decision = decide(exc, attempt=request.errors + 1, policy=policy)
            if isinstance(decision, Fail):
                return decision
            # A failed call counts towards max_errors; a throttled one (no room in the
            # account's shared rate limit) only waits.
            errors = request.errors + 1 if decision.retry else request.errors
            retry = request.model_copy(
                update={"errors": errors, "due_at": time.time() + decision.delay}
            )
            return Later(
                decision.delay,
                body=retry.model_dump_json().encode(),
                headers={},
                reason=decision.reason,
            )
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
            await self._outcomes.finish(kind, base.model_copy(update={"error": error}), context)
            return Done()
        now = time.time()
        poll = connection.poll
        changed = report.status != request.status
        since = now if changed else request.since()
        # Announced once per period the status stays the same; a change ends the period.
        stuck_after = poll.stuck_after or 0.0
        newly_stuck = (
            stuck_after > 0 and not changed and not request.stuck and now - since >= stuck_after
        )
        stuck = newly_stuck or (request.stuck and not changed)
        # The first call came `first_delay` after the trigger; this is the delay after call
        # number `polls + 1`, so the schedule runs 1, 1.2, 1.44 … and not 1, 1, 1.2 ….
        delay = next_poll_delay(
            request.polls + 1, first=poll.first_delay, factor=poll.factor, maximum=poll.max_delay
        )
        if stuck_after > 0 and not stuck:
            # Look again when the run would turn stuck: told then, not a long poll later.
            delay = min(delay, since + stuck_after - now)
        # Never sleep past the deadline: the last look happens at it, not long after.
        delay = max(0.0, min(delay, request.deadline - now))
        cursor = dict(report.cursor)
        following = request.model_copy(
            update={
                "status": report.status,
                "status_since": since,
                "stuck": stuck,
                "cursor": cursor,
                "polls": request.polls + 1,
                "errors": 0,
                "due_at": now + delay,
            }
        )
        if changed or newly_stuck:
            # `stuck: false` only on the change that ends a stuck period; absent otherwise.
            flag = True if newly_stuck else (False if request.stuck else None)
            which = f"{request.polls}:stuck" if newly_stuck else f"{request.polls}"
            await self._announce(
                base.model_copy(update={"stuck": flag}), following, poll, context, which
            )
        if changed or newly_stuck or cursor != request.cursor or delay > self._hold:
            # Checkpoint: a redelivery must never replay from before what was announced.
            await send_poll(self._publisher, following, hold=self._hold)
            return Done()
        return following

    async def _announce(
        self,
        event: EventData,
        following: PollRequest,
        poll: PollPolicy,
        context: Context,
        discriminator: str,
    ) -> None:
        """A `progress` event, and the run's new state for `flowgate runs`: the one store call
        a change costs (an unchanged status call costs none)."""
        if event.stuck:
            unchanged = time.time() - following.since()
            log.warning(
                "run %s (%s, %s) stuck: status %s unchanged for %.0f s",
                following.command_id,
                following.command_type,
                following.connection,
                following.status,
                unchanged,
                extra=logs.fields(event="run_stuck", unchanged_for=round(unchanged, 1)),
            )
            current_metrics().stuck(following.command_type)
        state = RunState(
            status=following.status,
            since=following.since(),
            next_poll_at=following.due_at,
            polls=following.polls,
            stuck=following.stuck,
            deadline=following.deadline,
            schedule=(poll.first_delay, poll.factor, poll.max_delay),
        )
        entry = RunEvent("progress", following.status, time.time(), event.stuck)
        await asyncio.gather(
            self._publisher.event(
                EventKind.PROGRESS, event, context=context, discriminator=discriminator
            ),
            self._outcomes.store.record_status(following.command_id, state, event=entry),
        )

    async def _give_up(self, request: PollRequest, *, interrupt: bool) -> Fail:
        waited = time.time() - request.started_at
        message = (
            f"run not finished by its deadline ({waited:.0f} s after the trigger, "
            f"last status {request.status or 'unknown'})"
        )
        if interrupt:
            handler = self._registry.handler(request.command_type, request.connection)
            if handler.can_cancel:
                try:
                    said = await handler.cancel(request.vendor_ref)
                except FlowgateError as exc:
                    # Gone past its deadline all the same: say what the vendor answered.
                    message += f"; the interrupt was not taken: {exc.message}"
                else:
                    message += f"; interrupted at the vendor: {said}"
            else:
                message += "; its vendor offers no way to stop it, so it may still be going"
        return Fail(ErrorInfo(kind=ErrorKind.DEADLINE, message=message))


def _answer_of_unreadable(body: bytes) -> Answer | None:
    """Who an unreadable poll request is about, when its JSON still says."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    command_id, command_type = raw.get("command_id"), raw.get("command_type")
    connection, vendor_ref = raw.get("connection"), raw.get("vendor_ref")
    if not isinstance(command_id, str) or not command_id:
        return None
    ref_ok = isinstance(vendor_ref, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in vendor_ref.items()
    )
    return Answer(
        command_id,
        command_type if isinstance(command_type, str) else None,
        connection if isinstance(connection, str) else "default",
        Context(),
        # Recorded as the outcome even without a readable reference: the run was triggered.
        vendor_ref=dict(vendor_ref) if ref_ok and isinstance(vendor_ref, dict) else {},
    )
