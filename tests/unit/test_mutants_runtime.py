"""`workers/runtime.py`: promises the mutation run (scripts/mutation, TESTING.md) found untested
(test_runtime.py has the others).

- A message back from the delay ladder within 50 ms of its due time is handled at once; one due
  within the smallest tier (250 ms) is waited out here, for exactly the rest; from 250 ms on it
  goes round the ladder again. The clock is frozen here, and the wait recorded, not slept.
- A recorded outcome is plain JSON, as Redis would keep it, whatever the vendor's result held.
- A final report becomes its terminal event: succeeded, cancelled, or failed with the vendor's
  message (or, without one, its status) and code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

import pytest

from contracts import ErrorKind, EventData, EventKind
from tests.recording import FakeDelivery, Recorder
from workers import runtime
from workers.idempotency import MemoryStore
from workers.outcome import Later
from workers.publisher import DUE_HEADER, Context, Publisher
from workers.runtime import Outcomes, redelay_if_early, terminal_event
from workers.topology import RETRY_EXCHANGE
from workers.vendors.base import StatusReport

CID = "2c9d7e1f-8a3b-4f5c-9d0e-1f2a3b4c5d6e"
NOW = 0.0  # the frozen clock, in epoch seconds: 0, so that due / 1000 - NOW is exact


@dataclass
class Waits:
    seconds: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Waits:
    """Freeze `workers.runtime`'s clock at NOW and record its waits instead of sleeping."""
    recorded = Waits()
    monkeypatch.setattr(runtime, "time", SimpleNamespace(time=lambda: NOW))
    monkeypatch.setattr(runtime, "asyncio", SimpleNamespace(sleep=recorded.sleep))
    return recorded


def due_in(ms: float) -> FakeDelivery:
    """A command back from the ladder, due `ms` after NOW."""
    return FakeDelivery(
        b"{}", headers={DUE_HEADER: NOW * 1000 + ms, "keep": "me"}, exchange=RETRY_EXCHANGE
    )


@pytest.mark.parametrize("ms", [50, 20, 0, -500])
async def test_a_message_due_within_the_tolerance_is_handled_at_once(
    waits: Waits, ms: float
) -> None:
    assert await redelay_if_early(due_in(ms)) is None
    assert waits.seconds == []


@pytest.mark.parametrize("ms", [60, 100, 249.9])
async def test_a_message_due_within_the_smallest_tier_is_waited_out_here(
    waits: Waits, ms: float
) -> None:
    assert await redelay_if_early(due_in(ms)) is None
    assert waits.seconds == [pytest.approx(ms / 1000, abs=1e-6)]


@pytest.mark.parametrize("ms", [250, 300, 600, 30_000])
async def test_a_message_due_later_goes_round_the_ladder_for_the_rest(
    waits: Waits, ms: float
) -> None:
    early = await redelay_if_early(due_in(ms))
    assert isinstance(early, Later)
    assert early.delay == pytest.approx(ms / 1000, abs=1e-6)
    assert (early.body, early.headers, early.retry) == (None, {"keep": "me"}, False)
    assert waits.seconds == []


async def test_a_recorded_outcome_is_plain_json() -> None:
    store = MemoryStore()
    outcomes = Outcomes(store, Publisher(Recorder()))
    data = EventData(
        command_id=CID,
        command_type="trigger-batch",
        connection="prod",
        result={"amount": Decimal("1.50")},
    )
    await outcomes.finish(EventKind.SUCCEEDED, data, Context())
    recorded = await store.outcome(CID)
    assert recorded == {"kind": "succeeded", "data": data.model_dump(mode="json")}
    assert recorded is not None and recorded["data"]["result"] == {"amount": "1.50"}


@pytest.mark.parametrize(
    ("report", "kind", "error"),
    [
        (StatusReport(state="succeeded", status="OK"), EventKind.SUCCEEDED, None),
        (StatusReport(state="cancelled", status="STOPPED"), EventKind.CANCELLED, None),
        (
            StatusReport(state="failed", status="ERROR", message="disk full", vendor_code="E7"),
            EventKind.FAILED,
            ("disk full", "E7"),
        ),
        (
            StatusReport(state="failed", status="ABORTED"),
            EventKind.FAILED,
            ("the vendor reported ABORTED", None),
        ),
    ],
    ids=["succeeded", "cancelled", "failed", "failed-without-message"],
)
def test_a_final_report_becomes_its_terminal_event(
    report: StatusReport, kind: EventKind, error: tuple[str, str | None] | None
) -> None:
    found, info = terminal_event(report)
    assert found is kind
    if error is None:
        assert info is None
    else:
        assert info is not None
        assert info.kind is ErrorKind.VENDOR_FAILED
        assert (info.message, info.vendor_code) == error
