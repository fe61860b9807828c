"""The settler's promises, one delivery at a time (`workers/settlement.py`).

Found by the mutation run (scripts/mutation, TESTING.md); the flows in test_settlement.py show
the same rules end to end, too slowly to run per mutant. Here the handler is a function that
returns or raises, the broker records every publish, and the delivery records its settlement.

- Done acks; Drop leaves the delivery alone; every other settlement is acked only after what it
  published.
- Later goes round the delay ladder to the same queue: same body, content type and message id
  unless the handler replaced them, the routing key it first came with kept for a replay.
- A retry of a failed vendor call carries the next attempt number; a throttled wait does not.
- A dependency that is down parks the message: 1, 2, 4 ... 60 s as the outage lasts, counted in
  a header, whatever raised it (the handler, or a publish or the store while settling).
- When even parking fails the error reaches the broker and the delivery is left unsettled; a
  delivery already settled is never settled again.
- Fail dead-letters first (when asked), then answers `failed`: recorded as the outcome, except
  an invalid command that reached no vendor, which may be sent again corrected.
- Whatever a handler raises, a command whose id is known is answered; a bug says only its type
  and what flowgate was doing; what the decoder could read (id, type, replayed id) and the trace
  headers carry onto the answer, on the default connection, and to its `reply_to` queue.
- The log tells an operator what happened: a bug with its traceback, what flowgate was doing,
  the queue and the message; a park with its reason, queue and delay; a failure with the
  command's type, id, message and kind. An outcome (a refusal, a vendor error) is no bug.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from contracts import ContractError, ErrorInfo, ErrorKind, EventKind, event_id
from tests.recording import FakeDelivery, Recorder
from workers import settlement as settlement_module
from workers.broker.base import PublishNotConfirmed
from workers.errors import Throttled, VendorFailed, VendorUnavailable
from workers.idempotency import MemoryStore, StoreUnavailable
from workers.outcome import Done, Drop, Fail, Later, Settlement
from workers.publisher import (
    ATTEMPT_HEADER,
    DUE_HEADER,
    ROUTING_KEY_HEADER,
    SENDER_HEADER,
    Context,
    Publisher,
)
from workers.runtime import Outcomes
from workers.settlement import PARKED_HEADER, Answer, Settler, Work, consumed, give_back
from workers.topology import (
    COMMANDS_EXCHANGE,
    DEAD_EXCHANGE,
    DELAY_EXCHANGE,
    RETRY_EXCHANGE,
)
from workers.vendors._connection import RetryPolicy

QUEUE = "flowgate.cmd.trigger-batch"
CID = "7d0c1f2e-3a4b-4c5d-8e6f-0a1b2c3d4e5f"
BODY = b'{"specversion": "1.0", "id": "c"}'
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
POLICY = RetryPolicy(max_attempts=5, first_delay=2.0, factor=2.0, max_delay=60.0, jitter=0.0)


class FlakyStore(MemoryStore):
    """A MemoryStore whose writes can be made to fail as an unreachable Redis does."""

    down = False

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise StoreUnavailable("idempotency store unavailable: ConnectionError")
        return await super().record_outcome(command_id, outcome)


@dataclass
class Kit:
    settler: Settler
    broker: Recorder
    store: FlakyStore

    async def run(
        self,
        outcome: Settlement | Exception,
        delivery: FakeDelivery | None = None,
        *,
        answer: Answer | None = None,
        attempt: int = 1,
        doing: str = "calling the vendor",
    ) -> Work:
        work = Work(delivery or command(), QUEUE, attempt=attempt, policy=POLICY)
        work.answer, work.doing = answer, doing

        async def handler(handed: Work) -> Settlement:
            # The handler is given the work it settles (a bug here would read as `internal`).
            assert handed is work
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        await self.settler.run(work, handler)
        return work

    def delayed(self) -> list[tuple[str, dict[str, Any], bytes, str | None, str | None]]:
        """(routing key, headers, body, content type, message id) round the delay ladder."""
        return [
            (key, dict(m.headers), m.body, m.content_type, m.message_id)
            for key, m in self.broker.to(DELAY_EXCHANGE)
        ]


def kit() -> Kit:
    broker = Recorder()
    store = FlakyStore()
    return Kit(Settler(Outcomes(store, Publisher(broker))), broker, store)


def command(**fields: Any) -> FakeDelivery:
    """A command as it arrives from its publisher (not from the delay ladder)."""
    values: dict[str, Any] = {
        "body": BODY,
        "headers": {"traceparent": TRACE},
        "exchange": COMMANDS_EXCHANGE,
        "routing_key": "trigger-batch",
        "content_type": "application/cloudevents+json",
        "message_id": "m-1",
    }
    return FakeDelivery(**{**values, **fields})


def answer(**fields: Any) -> Answer:
    values: dict[str, Any] = {
        "command_id": CID,
        "command_type": "trigger-batch",
        "connection": "pbsm-prod",
        "context": Context(TRACE),
    }
    return Answer(**{**values, **fields})


def delay_of(headers: dict[str, Any]) -> float:
    return float(headers[DUE_HEADER]) / 1000 - time.time()


# --- what each settlement does ---------------------------------------------------------------


async def test_done_acks_and_publishes_nothing() -> None:
    k = kit()
    delivery = command()
    await k.run(Done(), delivery)
    assert delivery.settlements == ["ack"]
    assert k.broker.sent == []


async def test_drop_leaves_the_delivery_unsettled() -> None:
    k = kit()
    delivery = command()
    await k.run(Drop(), delivery)
    assert delivery.settlements == [] and k.broker.sent == []


async def test_later_sends_the_same_message_round_the_ladder_then_acks() -> None:
    k = kit()
    delivery = command(headers={"traceparent": TRACE, "x-custom": "kept"})
    await k.run(Later(3.0), delivery)
    ((key, headers, body, content_type, message_id),) = k.delayed()
    assert key.endswith(f".{QUEUE}")
    assert (body, content_type, message_id) == (BODY, "application/cloudevents+json", "m-1")
    assert headers[ROUTING_KEY_HEADER] == "trigger-batch"
    assert headers["x-custom"] == "kept" and headers["traceparent"] == TRACE
    assert 2.0 < delay_of(headers) <= 3.0
    assert delivery.settlements == ["ack"]


async def test_a_copy_round_the_ladder_keeps_who_waits_for_it_and_who_sent_it() -> None:
    k = kit()
    await k.run(Later(3.0), command(reply_to="client.q", user_id="billing"))
    (copy,) = [m for _, m in k.broker.to(DELAY_EXCHANGE)]
    assert copy.reply_to == "client.q"
    assert copy.headers[SENDER_HEADER] == "billing"


async def test_a_delivery_lost_while_handled_is_left_to_its_redelivery() -> None:
    k = kit()
    delivery = command(lost=True)
    await k.run(Later(3.0), delivery)
    assert k.delayed() == [] and delivery.settlements == []


async def test_later_with_a_new_body_and_headers_sends_those() -> None:
    k = kit()
    delivery = command(headers={"x-old": "dropped"})
    await k.run(Later(1.0, body=b"next", headers={"x-new": "sent"}), delivery)
    ((_, headers, body, _, message_id),) = k.delayed()
    assert body == b"next" and message_id == "m-1"
    assert "x-old" not in headers and headers["x-new"] == "sent"
    assert headers[ROUTING_KEY_HEADER] == "trigger-batch"


async def test_a_message_back_from_the_ladder_keeps_the_routing_key_it_first_came_with() -> None:
    k = kit()
    first = command(headers={ROUTING_KEY_HEADER: "trigger-batch"})
    first.exchange, first.routing_key = RETRY_EXCHANGE, f"d2000.{QUEUE}"
    await k.run(Later(1.0), first)
    # Even without the header, the ladder's own routing key is never taken for it.
    bare = command(headers={})
    bare.exchange, bare.routing_key = RETRY_EXCHANGE, f"d2000.{QUEUE}"
    await k.run(Later(1.0), bare)
    (_, once, *_), (_, again, *_) = k.delayed()
    assert once[ROUTING_KEY_HEADER] == "trigger-batch"
    assert ROUTING_KEY_HEADER not in again


async def test_a_message_that_already_names_its_routing_key_keeps_it() -> None:
    k = kit()
    delivery = command(headers={ROUTING_KEY_HEADER: "first-key"}, routing_key="other")
    await k.run(Later(1.0), delivery)
    ((_, headers, *_),) = k.delayed()
    assert headers[ROUTING_KEY_HEADER] == "first-key"


async def test_a_retried_vendor_call_carries_the_next_attempt_number() -> None:
    k = kit()
    delivery = command(headers={"traceparent": TRACE, ATTEMPT_HEADER: 2})
    await k.run(VendorUnavailable("503", http_status=503), delivery, attempt=2)
    ((_, headers, body, _, _),) = k.delayed()
    assert headers[ATTEMPT_HEADER] == 3
    assert headers["traceparent"] == TRACE and body == BODY
    # backoff(2): 2 s x 2.
    assert 3.0 < delay_of(headers) <= 4.0
    assert delivery.settlements == ["ack"]
    assert k.broker.events() == [] and k.broker.to(DEAD_EXCHANGE) == []


async def test_a_throttled_call_waits_without_spending_an_attempt() -> None:
    k = kit()
    delivery = command(headers={ATTEMPT_HEADER: 2})
    await k.run(Throttled("no room", wait=5.0), delivery, attempt=2)
    ((_, headers, *_),) = k.delayed()
    assert headers[ATTEMPT_HEADER] == 2
    assert 4.0 < delay_of(headers) <= 5.0


def test_retry_headers_are_the_delivered_ones_with_the_next_attempt() -> None:
    work = Work(command(headers={"a": "b", ATTEMPT_HEADER: 4}), QUEUE, attempt=4)
    assert work.retry_headers() == {"a": "b", ATTEMPT_HEADER: 5}
    assert work.delivery.headers == {"a": "b", ATTEMPT_HEADER: 4}, "the delivery is untouched"


def test_learnt_updates_only_what_it_names() -> None:
    work = Work(command(), QUEUE, answer=answer())
    work.learnt(vendor_ref={"batch_run_id": "R1"})
    work.learnt(status="RUNNING")
    assert work.answer == answer(vendor_ref={"batch_run_id": "R1"}, status="RUNNING")


# --- parking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parked", "delay", "count"),
    [
        (None, 1.0, 1),
        (1, 2.0, 2),
        (3, 8.0, 4),
        (5, 32.0, 6),
        (6, 60.0, 7),
        (40, 60.0, 41),
        ("x", 1.0, 1),
    ],
    ids=["first", "second", "fourth", "sixth", "capped", "long-outage", "nonsense-header"],
)
async def test_a_dependency_down_parks_the_message_longer_as_the_outage_lasts(
    parked: object, delay: float, count: int
) -> None:
    k = kit()
    headers: dict[str, Any] = {"traceparent": TRACE}
    if parked is not None:
        headers[PARKED_HEADER] = parked
    delivery = command(headers=headers)
    await k.run(StoreUnavailable("store down"), delivery)
    ((_, sent, body, _, _),) = k.delayed()
    assert sent[PARKED_HEADER] == count
    assert delay - 1.0 < delay_of(sent) <= delay
    assert sent["traceparent"] == TRACE and body == BODY
    assert delivery.settlements == ["ack"]
    assert k.broker.events() == [] and k.broker.to(DEAD_EXCHANGE) == []


async def test_an_unconfirmed_publish_in_the_handler_parks_the_message() -> None:
    k = kit()
    await k.run(PublishNotConfirmed("nack"))
    ((_, headers, *_),) = k.delayed()
    assert headers[PARKED_HEADER] == 1


async def test_a_failure_to_settle_parks_the_message_instead() -> None:
    k = kit()
    k.broker.refuse = lambda exchange, key: exchange == DEAD_EXCHANGE
    delivery = command()
    fail = Fail(ErrorInfo(kind=ErrorKind.REJECTED, message="400"), dead_letter=True)
    await k.run(fail, delivery, answer=answer())
    ((_, headers, *_),) = k.delayed()
    assert headers[PARKED_HEADER] == 1
    assert k.broker.events() == [], "nothing answered before the dead letter is safe"
    assert await k.store.outcome(CID) is None
    assert delivery.settlements == ["ack"]


async def test_an_unreachable_store_while_answering_parks_the_message() -> None:
    k = kit()
    k.store.down = True
    delivery = command()
    fail = Fail(ErrorInfo(kind=ErrorKind.VENDOR_FAILED, message="run failed"))
    await k.run(fail, delivery, answer=answer(vendor_ref={"batch_run_id": "R1"}))
    ((_, headers, *_),) = k.delayed()
    assert headers[PARKED_HEADER] == 1
    assert k.broker.events() == [] and delivery.settlements == ["ack"]


async def test_when_even_parking_fails_the_error_reaches_the_broker_unsettled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """... after holding the message for the park's delay: given back at once, it would come
    straight back and spend its quorum delivery limit in a second."""
    held: list[float] = []

    async def hold(seconds: float) -> None:
        held.append(seconds)

    monkeypatch.setattr(settlement_module, "_hold_for", hold)
    k = kit()
    k.broker.refuse = lambda exchange, key: True
    delivery = command(headers={PARKED_HEADER: 3})
    with pytest.raises(PublishNotConfirmed):
        await k.run(Later(1.0), delivery)
    assert delivery.settlements == []
    assert held == [8.0]
    # The store down while answering, and the ladder refusing the parked copy.
    k.store.down = True
    k.broker.refuse = lambda exchange, key: exchange == DELAY_EXCHANGE
    failed = Fail(ErrorInfo(kind=ErrorKind.VENDOR_FAILED, message="x"))
    with pytest.raises(PublishNotConfirmed):
        await k.run(failed, delivery, answer=answer())
    assert delivery.settlements == []
    assert held == [8.0, 8.0]
    # A handler that parks, and the park refused: held too.
    with pytest.raises(PublishNotConfirmed):
        await k.run(StoreUnavailable("down"), command())
    assert held == [8.0, 8.0, 1.0]


async def test_a_failure_after_the_delivery_was_settled_is_not_settled_again() -> None:
    k = kit()
    delivery = command()
    await delivery.ack()
    refused: list[str] = []

    def once(exchange: str, key: str) -> bool:
        # Only the first publish fails: parking it afterwards would go through.
        refused.append(exchange)
        return len(refused) == 1

    k.broker.refuse = once
    with pytest.raises(PublishNotConfirmed):
        await k.settler.settle(Work(delivery, QUEUE), Later(1.0))
    assert delivery.settlements == ["ack"]
    assert refused == [DELAY_EXCHANGE], "nothing was tried after the failure"


# --- failing --------------------------------------------------------------------------------------


async def test_a_failure_is_dead_lettered_first_then_recorded_and_answered() -> None:
    k = kit()
    delivery = command()
    error = ErrorInfo(kind=ErrorKind.REJECTED, message="400 bad batch", http_status=400)
    await k.run(
        Fail(error, dead_letter=True),
        delivery,
        answer=answer(vendor_ref={"batch_run_id": "R1"}, status="QUEUED"),
        attempt=3,
    )
    assert [exchange for exchange, _, _ in k.broker.sent] == [DEAD_EXCHANGE, "flowgate.events"]
    ((key, letter),) = k.broker.to(DEAD_EXCHANGE)
    assert key == "trigger-batch" and letter.body == BODY
    assert letter.headers["x-flowgate-reason"] == "400 bad batch"
    assert letter.headers["x-flowgate-error-kind"] == "rejected"
    assert letter.headers["x-flowgate-attempts"] == 3
    assert letter.headers["x-flowgate-queue"] == QUEUE
    ((key, message_id, event),) = k.broker.events()
    assert key == "trigger-batch.failed"
    assert message_id == event_id(CID, EventKind.FAILED)
    assert event["traceparent"] == TRACE
    data = event["data"]
    assert (data["command_id"], data["connection"]) == (CID, "pbsm-prod")
    assert (data["vendor_ref"], data["status"]) == ({"batch_run_id": "R1"}, "QUEUED")
    assert data["error"]["kind"] == "rejected" and data["error"]["http_status"] == 400
    recorded = await k.store.outcome(CID)
    assert recorded is not None and recorded["data"] == data
    assert delivery.settlements == ["ack"]


async def test_a_failure_without_dead_letter_is_only_answered() -> None:
    k = kit()
    await k.run(VendorFailed("run failed", status="ERROR"), answer=answer(vendor_ref={"r": "1"}))
    assert k.broker.to(DEAD_EXCHANGE) == []
    ((key, _, event),) = k.broker.events()
    assert key == "trigger-batch.failed"
    assert event["data"]["error"]["kind"] == "vendor_failed"


async def test_the_recorded_outcome_is_answered_not_a_second_one() -> None:
    k = kit()
    first = Fail(ErrorInfo(kind=ErrorKind.VENDOR_FAILED, message="first"))
    await k.run(first, answer=answer(vendor_ref={"r": "1"}))
    second = Fail(ErrorInfo(kind=ErrorKind.DEADLINE, message="second"))
    await k.run(second, answer=answer(vendor_ref={"r": "1"}))
    messages = [event["data"]["error"]["message"] for _, _, event in k.broker.events()]
    assert messages == ["first", "first"]


async def test_an_invalid_command_that_reached_no_vendor_is_answered_but_not_recorded() -> None:
    k = kit()
    invalid = Fail(ErrorInfo(kind=ErrorKind.INVALID, message="bad"), dead_letter=True)
    await k.run(invalid, answer=answer())
    ((_, _, event),) = k.broker.events()
    assert event["data"]["error"]["kind"] == "invalid"
    assert event["data"]["vendor_ref"] == {}
    assert await k.store.outcome(CID) is None, "a corrected command may be sent again"
    # Once something reached the vendor, even an invalid outcome stands.
    await k.run(invalid, answer=answer(vendor_ref={"r": "1"}))
    assert await k.store.outcome(CID) is not None


@pytest.mark.parametrize("who", [None, answer(command_id=None)], ids=["no-answer", "no-id"])
async def test_a_failure_nobody_can_be_told_of_is_only_dead_lettered(who: Answer | None) -> None:
    k = kit()
    delivery = command()
    fail = Fail(ErrorInfo(kind=ErrorKind.INVALID, message="unreadable"), dead_letter=True)
    await k.run(fail, delivery, answer=who)
    assert len(k.broker.to(DEAD_EXCHANGE)) == 1
    assert k.broker.events() == []
    assert delivery.settlements == ["ack"]


async def test_a_failure_of_an_unknown_command_type_is_answered_as_unknown() -> None:
    k = kit()
    fail = Fail(ErrorInfo(kind=ErrorKind.INVALID, message="no such type"), dead_letter=True)
    await k.run(fail, answer=answer(command_type=None))
    ((key, _, event),) = k.broker.events()
    assert key == "unknown.failed" and event["data"]["command_type"] == "unknown"


# --- whatever the handler raises ---------------------------------------------------------------


async def test_a_bug_before_anything_was_read_is_dead_lettered_and_acked() -> None:
    k = kit()
    delivery = command()
    work = await k.run(RuntimeError("quotes a secret"), delivery, doing="reading the message")
    ((_, letter),) = k.broker.to(DEAD_EXCHANGE)
    assert letter.headers["x-flowgate-error-kind"] == "internal"
    assert letter.headers["x-flowgate-reason"] == (
        "flowgate failed while reading the message (RuntimeError); see its log"
    )
    assert k.broker.events() == []
    assert work.answer == Answer(None, None, "default", Context(TRACE))
    assert delivery.settlements == ["ack"]


async def test_an_unreadable_command_is_answered_with_what_the_decoder_read() -> None:
    k = kit()
    exc = ContractError("data.batch: Field required", command_id=CID, command_type="trigger-batch")
    exc.replayof = "the-old-id"
    delivery = command(headers={"traceparent": TRACE, "tracestate": "k=v"})
    await k.run(exc, delivery)
    ((key, _, event),) = k.broker.events()
    assert key == "trigger-batch.failed"
    assert event["source"] == "urn:flowgate:default"
    assert event["data"]["connection"] == "default"
    error = event["data"]["error"]
    assert (error["kind"], error["message"]) == ("invalid", "data.batch: Field required")
    assert (event["traceparent"], event["tracestate"], event["replayof"]) == (
        TRACE,
        "k=v",
        "the-old-id",
    )
    assert len(k.broker.to(DEAD_EXCHANGE)) == 1


async def test_a_replayed_binary_command_names_the_replayed_id_from_its_header() -> None:
    k = kit()
    delivery = command(headers={"ce-replayof": "the-old-id"})
    await k.run(ContractError("bad", command_id=CID), delivery)
    ((key, _, event),) = k.broker.events()
    assert key == "unknown.failed" and event["replayof"] == "the-old-id"


async def test_a_bug_after_the_command_was_read_answers_the_command() -> None:
    k = kit()
    await k.run(KeyError("secret"), answer=answer(vendor_ref={"r": "1"}), doing="calling it")
    ((_, _, event),) = k.broker.events()
    assert event["data"]["connection"] == "pbsm-prod", "what the handler learnt is kept"
    assert event["data"]["error"]["message"] == (
        "flowgate failed while calling it (KeyError); see its log"
    )
    assert "secret" not in json.dumps(event)


async def test_a_retry_used_up_fails_for_good() -> None:
    k = kit()
    await k.run(VendorUnavailable("503"), answer=answer(), attempt=POLICY.max_attempts)
    ((_, _, event),) = k.broker.events()
    assert event["data"]["error"]["kind"] == "exhausted"
    assert k.delayed() == []


# --- tools outside the handlers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "settled"),
    [(consumed, ["ack"]), (give_back, ["requeue"])],
    ids=["consumed", "give_back"],
)
async def test_a_tool_settles_what_it_took(
    tool: Callable[[FakeDelivery], Awaitable[None]], settled: list[str]
) -> None:
    delivery = command()
    await tool(delivery)
    assert delivery.settlements == settled


# --- what the log says --------------------------------------------------------------------------


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, bool]]:
    """(level, message, has a traceback) of every `flowgate` record."""
    return [
        (r.levelno, r.getMessage(), r.exc_info is not None)
        for r in caplog.records
        if r.name == "flowgate"
    ]


async def test_a_bug_is_logged_with_its_traceback_and_where_it_happened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowgate")
    k = kit()
    await k.run(KeyError("k"), command(message_id="m-7"), doing="reading the message")
    await k.run(KeyError("k"), answer=answer(), doing="calling the vendor")
    bugs = [(m, tb) for level, m, tb in records(caplog) if level == logging.ERROR]
    assert bugs == [
        (f"bug while reading the message ({QUEUE}, message m-7)", True),
        (f"bug while calling the vendor ({QUEUE}, message {CID})", True),
    ]


async def test_an_outcome_is_not_logged_as_a_bug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flowgate")
    k = kit()
    await k.run(ContractError("bad", command_id=CID))
    await k.run(VendorFailed("run failed"), answer=answer(vendor_ref={"r": "1"}))
    assert [level for level, _, _ in records(caplog)] == [logging.WARNING, logging.WARNING]


async def test_a_failure_is_logged_with_who_and_why(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flowgate")
    k = kit()
    rejected = Fail(ErrorInfo(kind=ErrorKind.REJECTED, message="400 nope"), dead_letter=True)
    await k.run(rejected, answer=answer())
    await k.run(rejected, answer=None)
    await k.run(rejected, answer=answer(command_id=None, command_type=None))
    assert [m for _, m, _ in records(caplog)] == [
        f"failed trigger-batch {CID}: 400 nope (rejected)",
        "failed message <no id>: 400 nope (rejected)",
        "failed message <no id>: 400 nope (rejected)",
    ]


async def test_a_park_is_logged_with_its_reason_queue_and_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowgate")
    k = kit()
    await k.run(StoreUnavailable("store down"), command(headers={PARKED_HEADER: 2}))
    k.broker.refuse = lambda exchange, key: exchange == DEAD_EXCHANGE
    await k.run(Fail(ErrorInfo(kind=ErrorKind.REJECTED, message="x"), dead_letter=True))
    parks = [m for _, m, _ in records(caplog) if m.startswith("dependency")]
    assert parks == [
        f"dependency unavailable (store down); retrying a message of {QUEUE} in 4 s",
        f"dependency unavailable ({DEAD_EXCHANGE} nacked it); retrying a message of {QUEUE} in 1 s",
    ]


async def test_an_unreadable_command_is_answered_on_its_reply_to_queue_too() -> None:
    k = kit()
    delivery = command(reply_to="client-queue")
    await k.run(ContractError("bad", command_id=CID, command_type="trigger-batch"), delivery)
    ((key, message),) = k.broker.to("")
    assert key == "client-queue"
    ((_, message_id, event),) = k.broker.events()
    assert message.message_id == message_id and json.loads(message.body) == event


def retries(caplog: pytest.LogCaptureFixture) -> list[tuple[str, object, object]]:
    """(message, reason, delay) of every `retry` record of the settler."""
    return [
        (r.getMessage(), getattr(r, "reason", None), getattr(r, "delay", None))
        for r in caplog.records
        if r.name == "flowgate" and getattr(r, "event", None) == "retry"
    ]


async def test_a_retry_is_one_line_with_its_reason_and_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flowgate")
    k = kit()
    await k.run(Later(2.34567, reason="claim_busy"), answer=answer())
    await k.run(Later(1.0, reason="throttled"), answer=None)
    await k.run(Later(1.0, reason="throttled"), answer=answer(command_id=None, command_type=None))
    await k.run(Later(5.0), answer=answer())  # no reason: a step of its own, not a retry
    await k.run(StoreUnavailable("store down"), command(headers={}))
    assert retries(caplog) == [
        (f"trigger-batch {CID}: trying again in 2.3 s (claim_busy)", "claim_busy", 2.346),
        ("message <no id>: trying again in 1.0 s (throttled)", "throttled", 1.0),
        ("message <no id>: trying again in 1.0 s (throttled)", "throttled", 1.0),
        (
            f"dependency unavailable (store down); retrying a message of {QUEUE} in 1 s",
            "store_unavailable",
            1.0,
        ),
    ]
