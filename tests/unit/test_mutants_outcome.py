"""`workers/outcome.py`: promises the mutation run (scripts/mutation) found untested.

- A growth factor of 1 (allowed by `RetryPolicy` and `PollPolicy`) is a constant delay, for
  any number of steps, not a crash.
- An injected random source decides the jitter: what it draws is added to the base delay, so a
  seeded or fake source reproduces a delay exactly.
- A failure's message is never empty: an error raised without text is named by its type.
- A bug raised where the caller did not say what it was doing still reads as a sentence.
- A throttled call waits what the shared rate limit says (never a negative delay) and spends
  no attempt.
"""

from __future__ import annotations

import random

import pytest

from workers.errors import FlowgateError, InvalidCommand, Throttled, VendorRejected
from workers.outcome import Fail, Later, backoff, capped_growth, decide
from workers.poller.request import next_poll_delay
from workers.vendors._connection import RetryPolicy

POLICY = RetryPolicy(max_attempts=4, first_delay=1.0, factor=2.0, max_delay=5.0, jitter=0.0)


class Edge(random.Random):
    """A random source that always draws one end of the range it is asked for."""

    def __init__(self, end: str) -> None:
        super().__init__(0)
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return b if self.end == "top" else a


@pytest.mark.parametrize("steps", [0, 1, 5, 2_000, 100_000])
def test_a_factor_of_one_is_a_constant_delay(steps: int) -> None:
    assert capped_growth(steps, 2.0, 1.0, 300.0) == 2.0
    policy = RetryPolicy(first_delay=3.0, factor=1.0, max_delay=300.0, jitter=0.0)
    assert backoff(steps + 1, policy) == 3.0
    assert next_poll_delay(steps, first=1.5, factor=1.0, maximum=600.0) == 1.5


def test_a_zero_start_stays_zero_whatever_the_factor() -> None:
    assert capped_growth(3, 0.0, 2.0, 10.0) == 0.0
    assert capped_growth(0, 0.0, 1.5, 10.0) == 0.0


def test_the_injected_random_draw_is_added_to_the_base_delay() -> None:
    policy = RetryPolicy(first_delay=10.0, factor=2.0, max_delay=1000.0, jitter=0.25)
    # Attempt 2: base 20 s, jitter +-5 s.
    assert backoff(2, policy, Edge("top")) == 25.0
    assert backoff(2, policy, Edge("bottom")) == 15.0


def test_full_jitter_never_makes_a_delay_negative() -> None:
    policy = RetryPolicy(first_delay=4.0, factor=2.0, max_delay=100.0, jitter=1.0)
    assert backoff(1, policy, Edge("bottom")) == 0.0
    assert backoff(1, policy, Edge("top")) == 8.0


@pytest.mark.parametrize(
    "exc",
    [FlowgateError(""), InvalidCommand(""), VendorRejected("", http_status=400)],
    ids=lambda exc: type(exc).__name__,
)
def test_an_error_raised_without_text_is_named_by_its_type(exc: FlowgateError) -> None:
    decision = decide(exc, attempt=1, policy=POLICY)
    assert isinstance(decision, Fail)
    assert decision.error.message == type(exc).__name__


def test_a_bug_raised_where_nothing_was_said_still_reads_as_a_sentence() -> None:
    decision = decide(ValueError("quotes a URL"), attempt=1, policy=POLICY)
    assert isinstance(decision, Fail)
    assert decision.error.message == "flowgate failed while handling it (ValueError); see its log"


@pytest.mark.parametrize(("wait", "delay"), [(0.2, 0.2), (12.5, 12.5), (-3.0, 0.0)])
def test_a_throttled_call_waits_what_the_rate_limit_says_and_never_less_than_nothing(
    wait: float, delay: float
) -> None:
    decision = decide(Throttled("no room", wait=wait), attempt=POLICY.max_attempts, policy=POLICY)
    assert decision == Later(delay), "a wait spends no attempt: never exhausted"
