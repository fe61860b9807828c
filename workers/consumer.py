"""The command worker: decode, trigger the vendor, answer, and hand the run to the poller.

Stateless between messages; many messages are in flight per process (bounded by prefetch).
Each handler returns how its message is to be settled (or raises); `workers.settlement` does
the settling, only after everything the message produced (events, poll request) is confirmed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError

from contracts import (
    COMMAND_TYPES,
    CommandEnvelope,
    ContractError,
    ErrorInfo,
    ErrorKind,
    EventData,
    EventKind,
    InputLimits,
    decode_command,
)
from workers import logs, tracing
from workers.broker.base import Delivery
from workers.dead_letters import DeadLetter
from workers.errors import (
    FlowgateError,
    Refused,
    UnknownConnection,
    UnknownOutcome,
    VendorUnavailable,
)
from workers.idempotency import RunState, StoreUnavailable
from workers.metrics import current as current_metrics
from workers.outcome import Done, Fail, Later, Settlement
from workers.poller.request import PollRequest, send_poll
from workers.publisher import ATTEMPT_HEADER, Context, sender_of
from workers.registry import Registry
from workers.runtime import Outcomes, redelay_if_early, terminal_event
from workers.settlement import Answer, Work
from workers.vendors._connection import ConnectionBase
from workers.vendors.base import Triggered

__all__ = ["CommandWorker"]

log = logging.getLogger("flowgate.worker")

T = TypeVar("T")

# A store write after the claim (the trigger's record, a terminal outcome, a release) is tried
# again in place while the claim holds, instead of parking the message: parked, it would come
# back to a claim nobody completed and be answered `unknown_outcome`. A Redis failover takes
# 3-4 s; a claim holds at least 7 s (`trigger_lease`), and the last second is left alone so
# no write lands after another process could have taken the claim over.
_STORE_RETRY_FIRST = 0.2
_STORE_RETRY_MAX = 2.0
_LEASE_MARGIN = 1.0


async def _while_claimed(write: Callable[[], Awaitable[T]], until: float) -> T:
    """`write()`, tried again on `StoreUnavailable` until `until` (monotonic) less a margin."""
    delay = _STORE_RETRY_FIRST
    while True:
        try:
            return await write()
        except StoreUnavailable:
            left = until - _LEASE_MARGIN - time.monotonic()
            if left <= 0:
                raise
            log.warning("idempotency store unavailable: trying again in %.1f s", min(delay, left))
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, _STORE_RETRY_MAX)


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

    async def handle(self, work: Work, *, command_type: str) -> Settlement:
        """Handle one delivery from `command_queue(command_type)`."""
        delivery = work.delivery
        early = await redelay_if_early(delivery)
        if early is not None:
            return early
        work.attempt = _attempt(delivery)
        work.doing = "decoding the command"
        envelope = decode_command(
            delivery.body,
            content_type=delivery.content_type,
            headers=delivery.headers,
            routing_key=command_type,
            limits=self._limits,
            message_id=delivery.message_id,
        )
        context = _context(envelope, delivery)
        work.answer = Answer(envelope.id, envelope.type, envelope.connection or "default", context)
        work.trace(f"consume {envelope.type}", envelope.traceparent, envelope.tracestate)
        log.info(
            "consumed %s %s (attempt %d)",
            envelope.type,
            envelope.id,
            work.attempt,
            extra=logs.fields(event="consumed"),
        )
        try:
            name, connection = self._registry.resolve(envelope.type, envelope.connection)
        except UnknownConnection as unknown:
            return await self._connection_gone(work, envelope, unknown)
        work.learnt(connection=name)
        work.policy = connection.retry
        _check_publisher(connection, name, sender_of(delivery))
        # One owner per delivery, not per process: two copies of a command in one process
        # must not both think they hold the claim.
        owner = f"{self._owner}:{uuid.uuid4().hex[:8]}"
        work.doing = "checking the idempotency store"
        # Taken before the claim, so never later than the claim's own end.
        claimed_until = time.monotonic() + connection.trigger_lease
        resumed = await self._resume(work, envelope, name, connection, owner)
        if resumed is not None:
            return resumed
        work.doing = "calling the vendor"
        triggered = await self._trigger(envelope, name, connection, owner, claimed_until)
        vendor_ref = dict(triggered.vendor_ref)
        work.learnt(vendor_ref=vendor_ref)
        if triggered.report is not None:
            work.doing = "answering the command"
            kind, error = terminal_event(triggered.report)
            data = EventData(
                command_id=envelope.id,
                command_type=envelope.type,
                connection=name,
                vendor_ref=vendor_ref,
                status=triggered.report.status,
                result=dict(triggered.report.result),
                error=error,
            )
            await _while_claimed(lambda: self._outcomes.finish(kind, data, context), claimed_until)
            work.outcome = kind.value
            return Done()
        work.doing = "handing the run to the poller"
        await self._follow(
            envelope,
            name,
            connection,
            vendor_ref,
            triggered.status,
            triggered.starts_at,
            context,
            record_until=claimed_until,
        )
        work.outcome = "accepted"
        return Done()

    async def _resume(
        self,
        work: Work,
        envelope: CommandEnvelope,
        name: str,
        connection: ConnectionBase,
        owner: str,
    ) -> Settlement | None:
        """Claim the id; when it was seen before, finish from what is recorded."""
        claim = await self._store.claim(envelope.id, owner=owner, lease=connection.trigger_lease)
        context = _context(envelope, work.delivery)
        if claim.state == "finished":
            assert claim.outcome is not None
            await self._outcomes.republish(claim.outcome, context)
            work.outcome = "repeated"
            return Done()
        if claim.state == "triggered":
            assert claim.vendor_ref is not None
            work.learnt(vendor_ref=claim.vendor_ref)
            log.info("command %s was triggered before: resuming", envelope.id)
            await self._follow(
                envelope, name, connection, claim.vendor_ref, None, None, context, resumed=True
            )
            work.outcome = "accepted"
            return Done()
        if claim.state == "busy":
            # Another process is calling the vendor for this id right now: look again later.
            return Later(claim.lease_left + 0.5, reason="claim_busy")
        if claim.state == "unknown":
            if connection.unknown_outcome == "fail":
                raise UnknownOutcome(
                    "an earlier attempt may have triggered the vendor but stopped before "
                    "recording its answer; this connection never triggers twice"
                )
            await self._store.claim(
                envelope.id, owner=owner, lease=connection.trigger_lease, force=True
            )
        return None

    async def _trigger(
        self,
        envelope: CommandEnvelope,
        name: str,
        connection: ConnectionBase,
        owner: str,
        claimed_until: float,
    ) -> Triggered:
        handler = self._registry.handler(envelope.type, name)

        async def release() -> None:
            await _while_claimed(
                lambda: self._store.release(envelope.id, owner=owner), claimed_until
            )

        try:
            return await handler.trigger(envelope.data, command_id=envelope.id)
        except VendorUnavailable as exc:
            if exc.maybe_sent and connection.unknown_outcome == "fail":
                raise UnknownOutcome(
                    f"{exc.message}; the vendor may have run it, and this connection "
                    "never triggers twice"
                ) from None
            await release()
            raise
        except FlowgateError:
            await release()
            raise

    async def handle_unrouted(self, work: Work) -> Settlement:
        """A command whose routing key matched no command type: answer it, keep it."""
        delivery = work.delivery
        routing_key = delivery.routing_key
        try:
            decode_command(
                delivery.body,
                content_type=delivery.content_type,
                headers=delivery.headers,
                routing_key=routing_key,
                limits=self._limits,
                message_id=delivery.message_id,
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
        raise error

    async def _connection_gone(
        self, work: Work, envelope: CommandEnvelope, unknown: UnknownConnection
    ) -> Settlement:
        """The command names a connection this process does not have. Never seen before, it
        is invalid (not recorded: re-sent on a configured connection, it is welcome). Seen
        before (a redelivery after the connection was renamed or removed), its answer must
        agree with whatever else answers it: the recorded outcome again, or, for a started
        run, a `failed` that is recorded, so a poll chain still following it publishes the
        same one (the first outcome recorded wins)."""
        record = await self._store.lookup(envelope.id)
        if record is not None and record.outcome is not None:
            await self._outcomes.republish(record.outcome, _context(envelope, work.delivery))
            return Done()
        if record is not None and record.vendor_ref is not None:
            work.learnt(vendor_ref=record.vendor_ref)
        raise unknown

    async def handle_given_up(self, work: Work) -> Settlement:
        """A copy of a dead letter, from `flowgate.given-up`: answer the ones nobody answered.

        flowgate's own dead letters were answered when they were written. One RabbitMQ wrote
        itself (a quorum queue's delivery limit: every process that took the message stopped
        before settling it) never was. What the store knows decides the answer:

            an outcome recorded        that outcome again
            a vendor run recorded      the run is followed again (a new poll request)
            claimed, no run recorded   failed, unknown_outcome: a trigger may have gone out
            nothing                    failed, internal: the vendor was never called
            a poll request             failed, internal, with the run's vendor_ref

        The letter itself stays in `flowgate.dead-letters` for the operator.
        """
        delivery = work.delivery
        letter = DeadLetter.from_delivery(delivery)
        if not letter.by_rabbitmq:
            return Done()
        current_metrics().dead_letter(_rabbitmq_reason(letter.error_kind), source="rabbitmq")
        if letter.command_id is None:
            log.error(
                "RabbitMQ dead-lettered a message of %s with no readable command id (%s): "
                "nobody to answer; it stays in the dead-letter queue",
                letter.source_queue or "?",
                letter.error_kind,
            )
            return Done()
        work.doing = "answering a message RabbitMQ dead-lettered"
        why = (
            f"RabbitMQ dead-lettered it from {letter.source_queue or '?'} ({letter.error_kind}): "
            "every process that took it stopped before settling it"
        )
        fallback = Context.from_headers(delivery.headers, reply_to=delivery.reply_to)
        work.answer = Answer(letter.command_id, letter.command_type, "default", fallback)
        if letter.is_poll:
            return _given_up_poll(work, letter, why)
        record = await self._store.lookup(letter.command_id)
        envelope = self._decoded(letter)
        context = fallback if envelope is None else _context(envelope, delivery)
        connection_name = (record.run.get("connection") if record else None) or (
            envelope.connection if envelope else None
        )
        work.learnt(
            connection=connection_name or "default",
            context=context,
            vendor_ref=record.vendor_ref if record else None,
        )
        if record is not None and record.outcome is not None:
            await self._outcomes.republish(record.outcome, context)
            return Done()
        if record is not None and record.vendor_ref is not None:
            if envelope is not None:
                try:
                    name, connection = self._registry.resolve(envelope.type, envelope.connection)
                except FlowgateError:
                    pass
                else:
                    log.warning("command %s: %s; following its run again", envelope.id, why)
                    await self._follow(
                        envelope,
                        name,
                        connection,
                        record.vendor_ref,
                        None,
                        None,
                        context,
                        resumed=True,
                    )
                    return Done()
            message = f"{why}; its vendor run was started but cannot be followed again"
            return Fail(ErrorInfo(kind=ErrorKind.INTERNAL, message=message))
        if record is not None:
            message = (
                f"{why}, one of them while calling the vendor: the vendor may or may not have "
                "run it"
            )
            return Fail(ErrorInfo(kind=ErrorKind.UNKNOWN_OUTCOME, message=message))
        message = f"{why}; the vendor was not called"
        return Fail(ErrorInfo(kind=ErrorKind.INTERNAL, message=message))

    def _decoded(self, letter: DeadLetter) -> CommandEnvelope | None:
        """The dead letter's command, when it decodes as one of its own type."""
        if letter.command_type is None:
            return None
        try:
            return decode_command(
                letter.body,
                content_type=letter.content_type,
                headers=letter.headers,
                routing_key=letter.command_type,
                limits=self._limits,
                message_id=letter.message_id,
            )
        except ContractError:
            return None

    async def _follow(
        self,
        envelope: CommandEnvelope,
        name: str,
        connection: ConnectionBase,
        vendor_ref: dict[str, str],
        status: str | None,
        starts_at: float | None,
        context: Context,
        *,
        resumed: bool = False,
        record_until: float | None = None,
    ) -> None:
        """Publish `accepted` and the first poll request, together. A run the vendor starts
        later is first looked at `first_delay` after its start, and may last `max_duration`
        from then; the command's own deadline still bounds it. With `record_until` (a trigger
        just answered, its claim holding until then), the trigger and the run's first state are
        recorded together with them."""
        accepted = EventData(
            command_id=envelope.id,
            command_type=envelope.type,
            connection=name,
            vendor_ref=vendor_ref,
            status=status,
        )
        now = time.time()
        begins = max(now, starts_at) if starts_at is not None else now
        deadline = begins + connection.poll.max_duration
        if envelope.deadline is not None:
            deadline = min(deadline, envelope.deadline.timestamp())
        # Tracing on: the run's polls continue the consume span's trace.
        traceparent, tracestate = tracing.carried(envelope.traceparent, envelope.tracestate)
        request = PollRequest(
            command_id=envelope.id,
            command_type=envelope.type,
            connection=name,
            vendor_ref=vendor_ref,
            started_at=now,
            deadline=deadline,
            due_at=min(begins + connection.poll.first_delay, max(now, deadline)),
            status=status,
            traceparent=traceparent,
            tracestate=tracestate,
            replayof=envelope.replayof,
            reply_to=context.reply_to,
            resumed=resumed,
        )
        writes: list[Awaitable[None]] = []
        if record_until is not None:
            # Recorded together with the two publishes, not before them: one round trip less
            # per followed command. Whichever of the three lands first, one terminal event:
            # - The poller may get there first (a first_delay shorter than a store call): a
            #   state change before the trigger is recorded is dropped (the runs' view shows
            #   the trigger's state until the next change), and a trigger recorded after the
            #   outcome keeps the run out of the runs in flight (`record_trigger`).
            # - The publishes out, the record lost: the message is parked; its redelivery finds
            #   a claim with no vendor_ref, `busy` until the lease lapses, then the connection's
            #   `unknown_outcome` (`finished` once the poll chain already out recorded its
            #   outcome). The first outcome recorded wins, so that is the one terminal event,
            #   and the other side repeats it under the same event id.
            # - The record in, a publish lost: the redelivery resumes; its `accepted` has the
            #   same event id, and its poll chain repeats an outcome recorded meanwhile.
            # As with the publishes alone, one failing does not cancel the others: they run on
            # unobserved (a duplicate at worst, dropped by event id) while its error reaches
            # the settler, which parks or fails the message as before.
            poll = connection.poll
            state = RunState(
                status=status,
                since=now,
                next_poll_at=request.due_at,
                deadline=deadline,
                schedule=(poll.first_delay, poll.factor, poll.max_delay),
            )
            run = {"command_type": envelope.type, "connection": name}
            writes.append(
                _while_claimed(
                    lambda: self._store.record_trigger(
                        envelope.id, vendor_ref, run=run, state=state
                    ),
                    record_until,
                )
            )
        writes.append(self._publisher.event(EventKind.ACCEPTED, accepted, context=context))
        writes.append(send_poll(self._publisher, request, hold=self._poll_hold))
        await asyncio.gather(*writes)


def _check_publisher(connection: ConnectionBase, name: str, user_id: str | None) -> None:
    """`Refused` unless the connection lets this AMQP user send commands on it. RabbitMQ
    refuses a publish whose `user_id` is not the user it authenticated, so it is not forged."""
    allowed = connection.allowed_publishers
    if allowed is None or (user_id is not None and user_id in allowed):
        return
    who = f"AMQP user {user_id!r}" if user_id else "a command without an AMQP user_id"
    raise Refused(
        f"{who} is not allowed on connection {name!r}: its allowed_publishers are "
        f"{', '.join(allowed) or 'none'}"
    )


# RabbitMQ's dead-letter reasons; anything else is one label, not a new series.
_RABBITMQ_REASONS = frozenset({"delivery_limit", "rejected", "expired", "maxlen"})


def _rabbitmq_reason(reason: str) -> str:
    return reason if reason in _RABBITMQ_REASONS else "other"


def _given_up_poll(work: Work, letter: DeadLetter, why: str) -> Settlement:
    """A poll request RabbitMQ gave up on: the run is answered `failed`, with its vendor_ref
    so the operator can look it up at the vendor. Never sent round again: a request that
    stops every poller that takes it would stop them forever."""
    try:
        request = PollRequest.model_validate_json(letter.body)
    except ValidationError:
        request = None
    if request is not None:
        work.learnt(
            command_type=request.command_type,
            connection=request.connection,
            context=Context(
                request.traceparent, request.tracestate, request.replayof, request.reply_to
            ),
            vendor_ref=request.vendor_ref,
            status=request.status,
        )
    message = f"{why}; flowgate stopped following the run, which may still be going at the vendor"
    return Fail(ErrorInfo(kind=ErrorKind.INTERNAL, message=message))


def _context(envelope: CommandEnvelope, delivery: Delivery) -> Context:
    return Context(envelope.traceparent, envelope.tracestate, envelope.replayof, delivery.reply_to)


def _attempt(delivery: Delivery) -> int:
    value = delivery.headers.get(ATTEMPT_HEADER, 1)
    try:
        return max(1, int(value))
    except (TypeError, ValueError, OverflowError):
        return 1
