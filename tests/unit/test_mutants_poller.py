"""The poller's promises, one status call at a time (`workers/poller/service.py`, `request.py`).

Found by the mutation run (scripts/mutation, TESTING.md): the in-memory flows exercise these
rules but wait in real time on simulated runs, too slowly to run per mutant. Here the vendor is
a script of status reports, the broker records what was published, and no test waits on a
clock: a held run waits only until the test releases it, or for a due time a few ms away.

- A poll request nobody can read is given up as `internal` and dead-lettered, answered with
  whatever its JSON still says (each unreadable field falls back).
- A request is answered as its run: id, type, connection, reference, trace context, last status
  (even when a bug strikes before its first status call), and its `reply_to` queue.
- A resumed chain whose run already has an outcome repeats that outcome and calls no vendor;
  any other chain never reads the store.
- A call due later than the hold goes round the delay ladder now, due when it was due.
- A held run whose channel closed is dropped, not called and not settled.
- Past its deadline a run is given up (`deadline`, not dead-lettered) with how long it ran and
  its last status.
- A connection no longer configured ends the run as `internal`, dead-lettered.
- A failed status call is retried with the poll's own error budget (`poll.max_errors`) and the
  retry policy's backoff, carrying its error count; a throttled call waits without spending it.
- A final report is recorded and published (succeeded, failed with the vendor's message).
- A changed status is announced once (`progress`, one event id per poll) and checkpointed; so is
  a new cursor and any wait longer than the hold. Only an unchanged run is held on in-process.
- The next call is due on the poll schedule after the call just made, never after the deadline.
- The edges, on a frozen clock: a run is given up at its deadline itself; a call due exactly at
  the hold (or exactly at the smallest tier) is still held here; a call already due is made at
  once, even by a poller that is stopping; a poller built without hold settings holds nothing.
- Past its deadline a run is interrupted at the vendor first where its connection says
  `on_deadline = "interrupt"`, and the failure says what came of it: the vendor's words, its
  refusal, or that the vendor cannot stop runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from contracts import ErrorKind, EventKind, event_id
from tests.conftest import fast_settings
from tests.recording import FakeDelivery, Recorder
from tests.waiting import wait_until
from workers.broker.base import OutgoingMessage
from workers.errors import FlowgateError, Throttled, VendorRejected, VendorUnavailable
from workers.idempotency import MemoryStore
from workers.outcome import Done, Drop, Fail, Later, Settlement
from workers.poller import request as poll_request
from workers.poller import service as poller_service
from workers.poller.request import PollRequest, next_poll_delay, send_poll
from workers.poller.service import Poller
from workers.publisher import DUE_HEADER, Context, Publisher
from workers.registry import Registry
from workers.runtime import Outcomes
from workers.settlement import Answer, Work
from workers.topology import DELAY_EXCHANGE, POLL_QUEUE, RETRY_EXCHANGE
from workers.vendors.base import StatusReport

CID = "0b8e3c1a-5d2f-4e6a-8c3b-9f1e2d3c4b5a"
REF = {"robusta_spid": "SP-1"}
TRACE = Context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v", "old-id")
# The connection's schedule: calls 2 s apart, doubling, at most 30 s; three failed calls end it.
POLL = {"first_delay": 2.0, "factor": 2.0, "max_delay": 30.0, "max_errors": 3}
RETRY = {"first_delay": 1.0, "factor": 2.0, "max_delay": 8.0, "jitter": 0.0, "max_attempts": 9}


def polls(broker: Recorder) -> list[tuple[str, OutgoingMessage, PollRequest]]:
    """(exchange, message, request) of every poll request published."""
    return [
        (exchange, m, PollRequest.model_validate_json(m.body))
        for exchange, key, m in broker.sent
        if key.endswith(f".{POLL_QUEUE}")
    ]


class Vendor:
    """The status calls of one run: each call takes the next report (or raises the error)."""

    can_cancel = False

    def __init__(self, *answers: StatusReport | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        self.calls.append((dict(vendor_ref), dict(cursor)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Stoppable(Vendor):
    """A vendor that can stop a run: `cancel` answers `said`, or raises the error."""

    can_cancel = True

    def __init__(self, *answers: StatusReport | Exception, said: str | Exception) -> None:
        super().__init__(*answers)
        self.said = said
        self.cancelled: list[dict[str, str]] = []

    async def cancel(self, vendor_ref: Mapping[str, str]) -> str:
        self.cancelled.append(dict(vendor_ref))
        if isinstance(self.said, Exception):
            raise self.said
        return self.said


class ScriptedRegistry(Registry):
    """The real connection settings; every handler is the scripted vendor."""

    def __init__(self, vendor: Vendor, **connection: Any) -> None:
        fields = {"poll": POLL, "retry": RETRY, **connection}
        super().__init__(
            fast_settings(
                "amqp://unused/", "http://127.0.0.1:9", connections={"robusta": {"default": fields}}
            )
        )
        self.vendor = vendor
        self.asked: list[tuple[str, str]] = []

    def handler(self, command_type: str, name: str) -> Any:
        self.asked.append((command_type, name))
        return self.vendor


@dataclass
class Kit:
    poller: Poller
    broker: Recorder
    store: MemoryStore
    vendor: Vendor
    registry: ScriptedRegistry

    async def handle(
        self, request: PollRequest | bytes, **delivery: Any
    ) -> tuple[Settlement, Work]:
        body = request if isinstance(request, bytes) else request.model_dump_json().encode()
        work = Work(FakeDelivery(body, **delivery), POLL_QUEUE)
        return await self.poller.handle(work), work


def kit(
    *answers: StatusReport | Exception,
    hold: float = 0.0,
    max_held: int = 8,
    vendor: Vendor | None = None,
    **conn: Any,
) -> Kit:
    vendor = vendor or Vendor(*answers)
    broker = Recorder()
    store = MemoryStore()
    outcomes = Outcomes(store, Publisher(broker))
    registry = ScriptedRegistry(vendor, **conn)
    poller = Poller(registry, outcomes, hold=hold, max_held=max_held)
    return Kit(poller, broker, store, vendor, registry)


def request(**fields: Any) -> PollRequest:
    now = time.time()
    values: dict[str, Any] = {
        "command_id": CID,
        "command_type": "start-process",
        "connection": "default",
        "vendor_ref": REF,
        "started_at": now - 10,
        "deadline": now + 3600,
        "due_at": now - 1,
        "status": "WAITING",
        "polls": 1,
        "traceparent": TRACE.traceparent,
        "tracestate": TRACE.tracestate,
        "replayof": TRACE.replayof,
    }
    return PollRequest(**{**values, **fields})


def running(status: str = "WAITING", cursor: Mapping[str, Any] | None = None) -> StatusReport:
    return StatusReport(state="running", status=status, cursor=cursor or {})


# --- unreadable requests ------------------------------------------------------------------


async def answer_of(raw: object) -> Answer | None:
    k = kit()
    settlement, work = await k.handle(json.dumps(raw).encode())
    assert isinstance(settlement, Fail) and settlement.dead_letter
    assert settlement.error.kind is ErrorKind.INTERNAL
    assert k.vendor.calls == []
    return work.answer


async def test_an_unreadable_request_is_answered_with_what_its_json_still_says() -> None:
    raw = {
        "command_id": "c-1",
        "command_type": "start-process",
        "connection": "eu",
        "vendor_ref": {"robusta_spid": "SP-9"},
    }
    answer = await answer_of(raw)
    assert answer == Answer(
        "c-1", "start-process", "eu", Context(), vendor_ref={"robusta_spid": "SP-9"}
    )


async def test_an_unreadable_request_says_how_many_fields_were_wrong() -> None:
    k = kit()
    settlement, _ = await k.handle(json.dumps({"command_id": "c-1", "polls": "x"}).encode())
    assert isinstance(settlement, Fail)
    # command_type, connection, vendor_ref, started_at, deadline missing; polls not an int.
    assert settlement.error.message == (
        "unreadable poll request (6 validation errors); flowgate stopped following this run"
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ("c-1", None, "default", {})),
        ({"command_type": 7, "connection": ["eu"]}, ("c-1", None, "default", {})),
        ({"vendor_ref": {"spid": 5}}, ("c-1", None, "default", {})),
        ({"vendor_ref": {"spid": "S", "n": 5}}, ("c-1", None, "default", {})),
        ({"vendor_ref": ["SP-1"]}, ("c-1", None, "default", {})),
        ({"vendor_ref": {}}, ("c-1", None, "default", {})),
    ],
    ids=["nothing-else", "wrong-types", "ref-value-int", "ref-mixed", "ref-list", "ref-empty"],
)
async def test_each_unreadable_field_of_an_unreadable_request_falls_back(
    fields: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    answer = await answer_of({"command_id": "c-1", **fields})
    assert answer is not None
    assert (answer.command_id, answer.command_type, answer.connection, answer.vendor_ref) == (
        expected
    )
    assert answer.context == Context()


@pytest.mark.parametrize(
    "raw",
    [b"\xff not json", b"[1, 2]", b'{"command_id": ""}', b'{"command_id": 5}', b"{}"],
    ids=["not-json", "not-an-object", "empty-id", "id-not-a-string", "no-id"],
)
async def test_an_unreadable_request_without_a_usable_id_has_no_one_to_answer(raw: bytes) -> None:
    k = kit()
    settlement, work = await k.handle(raw)
    assert isinstance(settlement, Fail) and settlement.dead_letter
    assert work.answer is None


async def test_a_nested_unreadable_request_is_not_a_crash() -> None:
    k = kit()
    settlement, work = await k.handle(b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(settlement, Fail) and work.answer is None


# --- who a request is about -----------------------------------------------------------------


async def test_a_request_is_answered_as_its_run() -> None:
    k = kit(VendorRejected("gone", http_status=404))
    settlement, work = await k.handle(request(status="RUNNING", errors=2))
    assert isinstance(settlement, Fail)
    assert work.answer == Answer(
        CID, "start-process", "default", TRACE, vendor_ref=REF, status="RUNNING"
    )
    assert work.attempt == 3, "the request's failed calls count as attempts"
    assert work.doing == "following the run"
    assert k.vendor.calls == [(REF, {})]
    assert k.registry.asked == [("start-process", "default")], "the run's own handler"


async def test_a_resumed_chain_of_a_finished_run_repeats_its_outcome_without_a_call() -> None:
    k = kit(running())
    recorded = {
        "kind": "succeeded",
        "data": {
            "command_id": CID,
            "command_type": "start-process",
            "connection": "default",
            "vendor_ref": REF,
            "status": "DONE",
        },
    }
    await k.store.record_outcome(CID, recorded)
    settlement, _ = await k.handle(request(resumed=True))
    assert settlement == Done()
    assert k.vendor.calls == []
    ((key, message_id, event),) = k.broker.events()
    assert key == "start-process.succeeded"
    assert message_id == event_id(CID, EventKind.SUCCEEDED)
    assert (event["data"]["status"], event["traceparent"], event["replayof"]) == (
        "DONE",
        TRACE.traceparent,
        TRACE.replayof,
    )


async def test_a_bug_before_the_first_call_is_answered_with_the_runs_last_status() -> None:
    k = kit(running())

    async def broken(command_id: str) -> dict[str, Any] | None:
        raise RuntimeError("a bug")

    k.store.outcome = broken  # type: ignore[method-assign]
    work = Work(
        FakeDelivery(request(resumed=True, status="RUNNING").model_dump_json().encode()), POLL_QUEUE
    )
    with pytest.raises(RuntimeError):
        await k.poller.handle(work)
    assert work.answer is not None and work.answer.status == "RUNNING"


async def test_a_resumed_chain_of_an_unfinished_run_polls_on() -> None:
    k = kit(StatusReport(state="succeeded", status="DONE"))
    settlement, _ = await k.handle(request(resumed=True))
    assert settlement == Done()
    assert len(k.vendor.calls) == 1


async def test_a_chain_that_was_not_resumed_never_reads_the_recorded_outcome() -> None:
    k = kit(StatusReport(state="succeeded", status="DONE"))

    async def unreadable(command_id: str) -> dict[str, Any] | None:
        raise AssertionError("a poll that was not resumed read the store")

    k.store.outcome = unreadable  # type: ignore[method-assign]
    assert (await k.handle(request(resumed=False)))[0] == Done()
    assert len(k.vendor.calls) == 1


async def test_a_legacy_request_back_early_from_the_ladder_goes_round_again() -> None:
    k = kit(running())
    due = int((time.time() + 30) * 1000)
    settlement, _ = await k.handle(request(due_at=None), headers={DUE_HEADER: due})
    assert isinstance(settlement, Later) and 29 < settlement.delay <= 30
    assert k.vendor.calls == []


async def test_a_legacy_request_that_is_due_is_polled() -> None:
    k = kit(StatusReport(state="succeeded", status="DONE"))
    due = int((time.time() - 1) * 1000)
    settlement, _ = await k.handle(request(due_at=None), headers={DUE_HEADER: due})
    assert settlement == Done() and len(k.vendor.calls) == 1


# --- waiting ----------------------------------------------------------------------------------


async def test_a_call_due_later_than_the_hold_goes_round_the_ladder_due_when_it_was() -> None:
    k = kit(running(), hold=2.0)
    due_at = time.time() + 20
    req = request(due_at=due_at)
    settlement, _ = await k.handle(req)
    assert settlement == Done()
    assert k.vendor.calls == []
    ((exchange, message, sent),) = polls(k.broker)
    assert exchange == DELAY_EXCHANGE
    assert sent == req
    due = message.headers[DUE_HEADER]
    assert isinstance(due, int)
    assert abs(due / 1000 - due_at) < 1


async def test_a_full_poller_holds_no_more_runs() -> None:
    k = kit(running(), hold=2.0, max_held=0)
    settlement, _ = await k.handle(request(due_at=time.time() + 1.0))
    assert settlement == Done() and k.vendor.calls == []
    assert [exchange for exchange, _, _ in polls(k.broker)] == [DELAY_EXCHANGE]


async def test_a_remainder_under_the_smallest_tier_is_waited_out_even_when_full() -> None:
    k = kit(StatusReport(state="succeeded", status="DONE"), hold=0.0, max_held=0)
    settlement, _ = await k.handle(request(due_at=time.time() + 0.02))
    assert settlement == Done()
    assert len(k.vendor.calls) == 1
    assert polls(k.broker) == []


async def held(k: Kit, req: PollRequest) -> tuple[asyncio.Task[Settlement], FakeDelivery]:
    delivery = FakeDelivery(req.model_dump_json().encode())
    task = asyncio.create_task(k.poller.handle(Work(delivery, POLL_QUEUE)))
    await wait_until(lambda: k.poller.held == 1)
    return task, delivery


async def test_a_held_run_is_handed_back_round_the_ladder_when_released() -> None:
    k = kit(running(), hold=5.0)
    task, _ = await held(k, request(due_at=time.time() + 4.0))
    k.poller.release()
    async with asyncio.timeout(1):
        assert await task == Done()
    assert k.poller.held == 0
    assert k.vendor.calls == []
    assert [exchange for exchange, _, _ in polls(k.broker)] == [DELAY_EXCHANGE]
    # Released, it holds nothing new, not even a wait under the smallest tier.
    settlement, _ = await k.handle(request(due_at=time.time() + 0.1))
    assert settlement == Done() and k.vendor.calls == [] and k.poller.held == 0


async def test_release_wakes_every_held_run() -> None:
    k = kit(running(), hold=5.0)
    first, _ = await held(k, request(due_at=time.time() + 4.0))
    second = asyncio.create_task(k.handle(request(due_at=time.time() + 4.5)))
    await wait_until(lambda: k.poller.held == 2)
    k.poller.release()
    async with asyncio.timeout(1):
        assert await first == Done()
        assert (await second)[0] == Done()


async def test_a_held_run_whose_channel_closed_is_dropped_without_a_call() -> None:
    k = kit(running(), hold=5.0)
    task, delivery = await held(k, request(due_at=time.time() + 0.2))
    delivery.lost = True
    async with asyncio.timeout(1):
        assert await task == Drop()
    assert k.vendor.calls == [] and delivery.settlements == []


async def test_a_held_run_is_called_when_due() -> None:
    k = kit(StatusReport(state="succeeded", status="DONE"), hold=5.0)
    task, _ = await held(k, request(due_at=time.time() + 0.05))
    async with asyncio.timeout(2):
        assert await task == Done()
    assert len(k.vendor.calls) == 1 and k.poller.held == 0


# --- one status call ----------------------------------------------------------------------------


async def test_a_run_past_its_deadline_is_given_up_with_its_age_and_last_status() -> None:
    k = kit(running())
    now = time.time()
    settlement, work = await k.handle(request(started_at=now - 120, deadline=now - 1))
    assert isinstance(settlement, Fail) and not settlement.dead_letter
    assert settlement.error.kind is ErrorKind.DEADLINE
    assert settlement.error.message == (
        "run not finished by its deadline (120 s after the trigger, last status WAITING)"
    )
    assert k.vendor.calls == []
    assert work.answer is not None and work.answer.status == "WAITING"


async def test_a_run_given_up_before_any_status_says_unknown() -> None:
    k = kit()
    now = time.time()
    settlement, _ = await k.handle(request(started_at=now - 30, deadline=now, status=None))
    assert isinstance(settlement, Fail)
    assert settlement.error.message.endswith("last status unknown)")


async def test_a_run_on_a_connection_no_longer_configured_ends_internal_dead_lettered() -> None:
    k = kit(running())
    settlement, _ = await k.handle(request(connection="removed"))
    assert isinstance(settlement, Fail) and settlement.dead_letter
    assert settlement.error.kind is ErrorKind.INTERNAL
    assert settlement.error.message == (
        "no robusta connection named 'removed' (configured: default): the connection this run "
        "was started on is no longer configured, so flowgate stopped following it; the vendor "
        "run may still be going"
    )
    assert k.vendor.calls == []


async def test_a_failed_status_call_is_retried_with_its_error_count() -> None:
    k = kit(VendorUnavailable("503", http_status=503))
    before = time.time()
    settlement, _ = await k.handle(request(errors=1, cursor={"page": 2}))
    assert isinstance(settlement, Later)
    # Second failed call in a row: backoff(2) = 1 s x 2.
    assert settlement.delay == 2.0
    assert settlement.headers == {}
    assert settlement.body is not None
    retry = PollRequest.model_validate_json(settlement.body)
    assert retry.errors == 2
    assert before + 2.0 <= (retry.due_at or 0) <= time.time() + 2.0
    assert (retry.cursor, retry.polls, retry.status) == ({"page": 2}, 1, "WAITING")
    assert k.broker.sent == []


async def test_status_calls_fail_for_good_after_the_polls_own_error_budget() -> None:
    # poll.max_errors = 3, though the retry policy would allow 9 attempts.
    k = kit(VendorUnavailable("503", http_status=503))
    settlement, _ = await k.handle(request(errors=2))
    assert isinstance(settlement, Fail) and settlement.dead_letter
    assert settlement.error.kind is ErrorKind.EXHAUSTED
    assert settlement.error.message.startswith("gave up after 3 attempts")


async def test_a_throttled_status_call_waits_without_spending_an_error() -> None:
    k = kit(Throttled("no room", wait=7.5))
    settlement, _ = await k.handle(request(errors=1))
    assert isinstance(settlement, Later) and settlement.delay == 7.5
    assert settlement.body is not None
    assert PollRequest.model_validate_json(settlement.body).errors == 1


async def test_a_vendor_refusal_while_following_fails_the_run() -> None:
    k = kit(VendorRejected("not found", http_status=404))
    settlement, _ = await k.handle(request())
    assert isinstance(settlement, Fail) and settlement.error.kind is ErrorKind.REJECTED


@pytest.mark.parametrize(
    ("report", "kind", "error"),
    [
        (StatusReport(state="succeeded", status="DONE", result={"rows": 3}), "succeeded", None),
        (StatusReport(state="cancelled", status="CANCELLED"), "cancelled", None),
        (
            StatusReport(state="failed", status="ERROR", message="disk full", vendor_code="E7"),
            "failed",
            {"kind": "vendor_failed", "message": "disk full", "vendor_code": "E7"},
        ),
    ],
    ids=["succeeded", "cancelled", "failed"],
)
async def test_a_final_report_is_recorded_and_published(
    report: StatusReport, kind: str, error: dict[str, Any] | None
) -> None:
    k = kit(report)
    assert (await k.handle(request()))[0] == Done()
    ((key, message_id, event),) = k.broker.events()
    assert key == f"start-process.{kind}"
    assert message_id == event_id(CID, EventKind(kind))
    data = event["data"]
    assert (data["command_id"], data["connection"], data["vendor_ref"]) == (CID, "default", REF)
    assert data["status"] == report.status
    assert data["result"] == dict(report.result)
    if error is None:
        assert data.get("error") is None
    else:
        assert {k: data["error"][k] for k in error} == error
    assert event["traceparent"] == TRACE.traceparent
    recorded = await k.store.outcome(CID)
    assert recorded is not None and recorded["kind"] == kind
    assert polls(k.broker) == []


async def test_a_changed_status_is_announced_once_and_checkpointed() -> None:
    k = kit(running("RUNNING", cursor={"seen": 1}), hold=60.0)
    before = time.time()
    assert (await k.handle(request(polls=2, errors=2)))[0] == Done()
    ((key, message_id, event),) = k.broker.events()
    assert key == "start-process.progress"
    assert message_id == event_id(CID, EventKind.PROGRESS, "2")
    assert event["data"]["status"] == "RUNNING"
    ((exchange, _, following),) = polls(k.broker)
    assert exchange == RETRY_EXCHANGE, "due within the hold: straight to the poll queue"
    assert (following.status, following.cursor, following.polls, following.errors) == (
        "RUNNING",
        {"seen": 1},
        3,
        0,
    )
    # The delay after call number 3: 2 s x 2^3 = 16 s (under the 30 s cap).
    assert following.due_at is not None
    assert before + 16.0 <= following.due_at <= time.time() + 16.0


async def test_a_new_cursor_is_checkpointed_without_an_announcement() -> None:
    k = kit(running("WAITING", cursor={"seen": 2}), hold=60.0)
    assert (await k.handle(request(cursor={"seen": 1})))[0] == Done()
    assert k.broker.events() == []
    ((_, _, following),) = polls(k.broker)
    assert following.cursor == {"seen": 2}


async def test_an_unchanged_run_due_after_the_hold_goes_round_the_ladder() -> None:
    k = kit(running("WAITING"), hold=1.0)
    assert (await k.handle(request(polls=1)))[0] == Done()
    assert k.broker.events() == []
    ((exchange, _, following),) = polls(k.broker)
    assert exchange == DELAY_EXCHANGE
    assert following.polls == 2


async def test_an_unchanged_run_within_the_hold_is_polled_again_in_process() -> None:
    # A schedule of 20 ms between calls, a hold of 10 s: nothing is published until the end.
    fast = {"first_delay": 0.02, "factor": 1.0, "max_delay": 0.02, "max_errors": 3}
    done = StatusReport(state="succeeded", status="DONE")
    k = kit(running("WAITING"), running("WAITING"), done, hold=10.0, poll=fast)
    async with asyncio.timeout(2):
        assert (await k.handle(request()))[0] == Done()
    assert len(k.vendor.calls) == 3
    assert polls(k.broker) == []
    ((key, _, _),) = k.broker.events()
    assert key == "start-process.succeeded"


async def test_the_next_call_is_never_due_after_the_deadline() -> None:
    k = kit(running("RUNNING"), hold=60.0)
    deadline = time.time() + 5.0  # the schedule says 16 s after call number 3
    assert (await k.handle(request(polls=2, deadline=deadline)))[0] == Done()
    ((_, _, following),) = polls(k.broker)
    assert following.due_at == pytest.approx(deadline, abs=0.5)
    assert following.due_at is not None and following.due_at <= deadline


async def test_a_bug_in_a_status_call_is_not_swallowed() -> None:
    k = kit(KeyError("bug"))
    with pytest.raises(KeyError):
        await k.handle(request())


async def test_a_flowgate_error_while_following_is_decided_like_any_other() -> None:
    k = kit(FlowgateError("odd"))
    settlement, _ = await k.handle(request())
    assert isinstance(settlement, Fail) and settlement.error.kind is ErrorKind.INTERNAL


# --- request.py ----------------------------------------------------------------------------


def test_a_request_without_a_due_time_is_due_now_and_a_past_one_too() -> None:
    assert request(due_at=None).wait() == 0.0
    assert request(due_at=time.time() - 100).wait() == 0.0
    assert 9 < request(due_at=time.time() + 10).wait() <= 10


def test_the_poll_schedule_starts_at_the_first_delay_and_grows() -> None:
    delays = [next_poll_delay(n, first=1.0, factor=1.5, maximum=3.0) for n in range(5)]
    assert delays == [1.0, 1.5, 2.25, 3.0, 3.0]


async def test_send_poll_within_the_hold_goes_straight_to_the_poll_queue() -> None:
    broker = Recorder()
    req = request(polls=4, due_at=time.time() + 1.0)
    await send_poll(Publisher(broker), req, hold=1.5)
    ((exchange, key, message),) = broker.sent
    assert (exchange, key) == (RETRY_EXCHANGE, f"d0.{POLL_QUEUE}")
    assert message.message_id == f"poll:{CID}:4"
    assert message.content_type == "application/json"
    assert PollRequest.model_validate_json(message.body) == req


async def test_send_poll_beyond_the_hold_goes_round_the_ladder_for_the_wait() -> None:
    broker = Recorder()
    req = request(polls=4, due_at=time.time() + 10.0)
    await send_poll(Publisher(broker), req, hold=1.5)
    ((exchange, key, message),) = broker.sent
    assert exchange == DELAY_EXCHANGE and key.endswith(f".{POLL_QUEUE}")
    assert message.message_id == f"poll:{CID}:4"
    assert message.content_type == "application/json"
    assert PollRequest.model_validate_json(message.body) == req
    due = message.headers[DUE_HEADER]
    assert isinstance(due, int)
    assert abs(due / 1000 - (req.due_at or 0)) < 0.5
    # Exactly at the hold still counts as within it.
    broker.sent.clear()
    await send_poll(Publisher(broker), request(due_at=None), hold=0.0)
    assert [exchange for exchange, _, _ in broker.sent] == [RETRY_EXCHANGE]


# --- the edges, on a frozen clock ----------------------------------------------------------------

NOW = 1_000_000.0


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poller's and the request's wall clock stand still at NOW (asyncio's does not)."""
    clock = SimpleNamespace(time=lambda: NOW)
    monkeypatch.setattr(poller_service, "time", clock)
    monkeypatch.setattr(poll_request, "time", clock)


@pytest.mark.usefixtures("frozen")
async def test_a_run_is_given_up_at_its_deadline_itself() -> None:
    k = kit(running())
    settlement, _ = await k.handle(request(started_at=NOW - 60, deadline=NOW, due_at=NOW))
    assert isinstance(settlement, Fail) and settlement.error.kind is ErrorKind.DEADLINE
    assert k.vendor.calls == []


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize(("hold", "max_held", "wait"), [(2.0, 8, 2.0), (0.0, 0, 0.25)])
async def test_a_call_due_exactly_at_the_limit_is_still_held(
    hold: float, max_held: int, wait: float
) -> None:
    k = kit(running(), hold=hold, max_held=max_held)
    task = asyncio.create_task(
        k.handle(request(started_at=NOW - 1, deadline=NOW + 60, due_at=NOW + wait))
    )
    await wait_until(lambda: k.poller.held == 1)
    k.poller.release()
    async with asyncio.timeout(1):
        assert (await task)[0] == Done()
    assert k.vendor.calls == []


@pytest.mark.usefixtures("frozen")
async def test_a_next_call_due_exactly_at_the_hold_is_held_not_checkpointed() -> None:
    # polls=1: the next call is due 2 s x 2^2 = 8 s after this one, exactly the hold.
    k = kit(running("WAITING"), hold=8.0)
    task = asyncio.create_task(
        k.handle(request(started_at=NOW - 1, deadline=NOW + 60, due_at=NOW, polls=1))
    )
    await wait_until(lambda: k.poller.held == 1)
    assert polls(k.broker) == [], "nothing published while it is held"
    k.poller.release()
    async with asyncio.timeout(1):
        assert (await task)[0] == Done()
    assert [exchange for exchange, _, _ in polls(k.broker)] == [DELAY_EXCHANGE]
    assert len(k.vendor.calls) == 1


async def test_a_call_already_due_is_made_even_by_a_stopping_poller() -> None:
    k = kit(StatusReport(state="succeeded", status="DONE"), hold=2.0)
    k.poller.release()
    assert (await k.handle(request(due_at=None)))[0] == Done()
    assert len(k.vendor.calls) == 1


async def test_a_poller_built_without_hold_settings_holds_nothing() -> None:
    vendor = Vendor(running("RUNNING"))
    broker = Recorder()
    fast = {"first_delay": 0.5, "factor": 1.0, "max_delay": 0.5, "max_errors": 3}
    poller = Poller(ScriptedRegistry(vendor, poll=fast), Outcomes(MemoryStore(), Publisher(broker)))
    work = Work(FakeDelivery(request().model_dump_json().encode()), POLL_QUEUE)
    assert await poller.handle(work) == Done()
    # Announced, and the next call, 0.5 s away, goes round the ladder.
    assert [exchange for exchange, _, _ in polls(broker)] == [DELAY_EXCHANGE]


# --- a deadline that interrupts the run ---------------------------------------------------------


def past_deadline() -> PollRequest:
    now = time.time()
    return request(started_at=now - 120, deadline=now - 1)


GIVEN_UP = "run not finished by its deadline (120 s after the trigger, last status WAITING)"


async def test_a_run_past_its_deadline_is_only_given_up_unless_told_to_interrupt() -> None:
    vendor = Stoppable(said="stopped")
    k = kit(vendor=vendor)
    settlement, _ = await k.handle(past_deadline())
    assert isinstance(settlement, Fail) and settlement.error.message == GIVEN_UP
    assert vendor.cancelled == []


async def test_a_run_past_its_deadline_is_interrupted_where_the_connection_says_so() -> None:
    vendor = Stoppable(said="batch B2001 interrupted")
    k = kit(vendor=vendor, on_deadline="interrupt")
    settlement, _ = await k.handle(past_deadline())
    assert isinstance(settlement, Fail) and not settlement.dead_letter
    assert settlement.error.kind is ErrorKind.DEADLINE
    assert (
        settlement.error.message
        == f"{GIVEN_UP}; interrupted at the vendor: batch B2001 interrupted"
    )
    assert vendor.cancelled == [REF]
    assert k.registry.asked == [("start-process", "default")]
    assert vendor.calls == [], "no status call past the deadline"


async def test_an_interrupt_the_vendor_refuses_is_told_and_the_run_still_given_up() -> None:
    vendor = Stoppable(said=VendorRejected("run already ended", http_status=409))
    k = kit(vendor=vendor, on_deadline="interrupt")
    settlement, _ = await k.handle(past_deadline())
    assert isinstance(settlement, Fail) and settlement.error.kind is ErrorKind.DEADLINE
    assert settlement.error.message == (
        f"{GIVEN_UP}; the interrupt was not taken: run already ended"
    )


async def test_a_run_whose_vendor_cannot_stop_it_is_said_to_go_on() -> None:
    k = kit(on_deadline="interrupt")
    settlement, _ = await k.handle(past_deadline())
    assert isinstance(settlement, Fail)
    assert settlement.error.message == (
        f"{GIVEN_UP}; its vendor offers no way to stop it, so it may still be going"
    )


async def test_a_runs_events_also_go_to_the_commands_reply_to_queue() -> None:
    k = kit(StatusReport(state="succeeded", status="DONE"))
    assert (await k.handle(request(reply_to="client-queue")))[0] == Done()
    ((key, message),) = k.broker.to("")
    assert key == "client-queue"
    ((_, message_id, _),) = k.broker.events()
    assert message.message_id == message_id
