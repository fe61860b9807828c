"""`decide` and `backoff`: every error type's outcome, retries, Retry-After and jitter."""

from __future__ import annotations

import random

import pytest

from contracts import ContractError, ErrorKind
from workers.errors import (
    FlowgateError,
    InvalidCommand,
    Throttled,
    UnknownConnection,
    UnknownOutcome,
    VendorFailed,
    VendorRejected,
    VendorUnavailable,
)
from workers.outcome import Fail, Later, backoff, decide
from workers.poller.request import next_poll_delay
from workers.vendors._connection import RetryPolicy

POLICY = RetryPolicy(max_attempts=4, first_delay=1.0, factor=2.0, max_delay=5.0, jitter=0.0)


@pytest.mark.parametrize(
    ("exc", "kind", "dead_letter"),
    [
        (ContractError("bad body", command_id="c1"), ErrorKind.INVALID, True),
        (InvalidCommand("bad rule"), ErrorKind.INVALID, True),
        (UnknownConnection("no such connection"), ErrorKind.INVALID, True),
        (VendorRejected("400 nope", http_status=400, vendor_code="E1"), ErrorKind.REJECTED, True),
        (VendorFailed("run failed", status="Error"), ErrorKind.VENDOR_FAILED, False),
        (UnknownOutcome("crashed mid-trigger"), ErrorKind.UNKNOWN_OUTCOME, True),
        (FlowgateError("something else"), ErrorKind.INTERNAL, True),
    ],
)
def test_final_errors(exc: Exception, kind: ErrorKind, dead_letter: bool) -> None:
    decision = decide(exc, attempt=1, policy=POLICY)
    assert isinstance(decision, Fail)
    assert decision.error.kind is kind
    assert decision.dead_letter is dead_letter
    assert decision.error.message == str(exc)
    assert decision.error.retriable is False


def test_vendor_details_carried_into_error_info() -> None:
    exc = VendorRejected("order not found", http_status=404, vendor_code="ORD-404")
    decision = decide(exc, attempt=1, policy=POLICY)
    assert isinstance(decision, Fail)
    error = decision.error
    assert (error.http_status, error.vendor_code) == (404, "ORD-404")


def test_unavailable_retries_until_max_attempts_then_exhausted() -> None:
    exc = VendorUnavailable("503 Service Unavailable", http_status=503)
    for attempt in range(1, POLICY.max_attempts):
        decision = decide(exc, attempt=attempt, policy=POLICY)
        assert decision == Later(min(2.0 ** (attempt - 1), POLICY.max_delay), retry=True)
    final = decide(exc, attempt=POLICY.max_attempts, policy=POLICY)
    assert isinstance(final, Fail) and final.dead_letter
    assert final.error.kind is ErrorKind.EXHAUSTED
    assert final.error.retriable is True
    assert final.error.http_status == 503
    assert f"after {POLICY.max_attempts} attempts" in final.error.message
    assert "503 Service Unavailable" in final.error.message


def test_retry_after_respected_and_capped() -> None:
    policy = POLICY.model_copy(update={"max_retry_after": 60.0})
    longer = VendorUnavailable("429", http_status=429, retry_after=30.0)
    assert decide(longer, attempt=1, policy=policy) == Later(30.0, retry=True)
    huge = VendorUnavailable("429", http_status=429, retry_after=86_400.0)
    assert decide(huge, attempt=1, policy=policy) == Later(60.0, retry=True)
    # A Retry-After shorter than our own backoff does not shorten the backoff.
    short = VendorUnavailable("429", http_status=429, retry_after=0.1)
    assert decide(short, attempt=3, policy=policy) == Later(4.0, retry=True)


def test_retry_after_does_not_extend_attempts() -> None:
    exc = VendorUnavailable("429", retry_after=5.0)
    decision = decide(exc, attempt=POLICY.max_attempts, policy=POLICY)
    assert isinstance(decision, Fail) and decision.dead_letter


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(first_delay=0.5, factor=3.0, max_delay=20.0, jitter=0.0)
    delays = [backoff(n, policy) for n in range(1, 7)]
    assert delays == [0.5, 1.5, 4.5, 13.5, 20.0, 20.0]


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_backoff_jitter_within_fraction(seed: int) -> None:
    policy = RetryPolicy(first_delay=10.0, factor=2.0, max_delay=1000.0, jitter=0.25)
    rng = random.Random(seed)
    for attempt in (1, 2, 3):
        base = 10.0 * 2 ** (attempt - 1)
        samples = [backoff(attempt, policy, rng) for _ in range(300)]
        assert all(base * 0.75 <= s <= base * 1.25 for s in samples)
        # Jitter really spreads: both sides of the base are used.
        assert min(samples) < base * 0.9 and max(samples) > base * 1.1
    again = random.Random(seed)
    assert backoff(1, policy, again) == backoff(1, policy, random.Random(seed))


def test_backoff_jitter_capped_delay_still_bounded() -> None:
    policy = RetryPolicy(first_delay=1.0, factor=10.0, max_delay=5.0, jitter=0.5)
    rng = random.Random(7)
    samples = [backoff(9, policy, rng) for _ in range(200)]
    assert all(2.5 <= s <= 7.5 for s in samples)


@pytest.mark.parametrize("n", [1_100, 2_000, 100_000])
def test_retry_backoff_stays_capped_for_any_attempt(n: int) -> None:
    # max_attempts has no upper bound; `factor ** (attempt - 1)` must not overflow the cap.
    policy = RetryPolicy(max_attempts=n + 1, max_delay=30.0, jitter=0.0)
    assert backoff(n, policy) == 30.0
    assert decide(VendorUnavailable("503"), attempt=n, policy=policy) == Later(30.0, retry=True)


@pytest.mark.parametrize("polls", [1_800, 2_880, 100_000])
def test_poll_delay_stays_capped_for_any_poll_count(polls: int) -> None:
    # A run is polled until poll.max_duration (24 h by default): with poll.max_delay 30 s that
    # is ~2,900 polls, and 1.5 ** 1751 already overflows a float.
    assert next_poll_delay(polls, first=1.0, factor=1.5, maximum=30.0) == 30.0


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyError("k"), RuntimeError("x")])
def test_a_bug_is_an_internal_failure_that_tells_only_its_type(exc: Exception) -> None:
    decision = decide(exc, attempt=1, policy=POLICY, doing="calling the vendor")
    assert isinstance(decision, Fail) and decision.dead_letter
    assert decision.error.kind is ErrorKind.INTERNAL
    assert type(exc).__name__ in decision.error.message
    assert "calling the vendor" in decision.error.message
    # The exception's text may quote anything (a URL, a header): it stays in the log.
    assert str(exc) not in decision.error.message


def test_throttled_waits_without_spending_an_attempt_or_ever_giving_up() -> None:
    """A shared rate limit with no room is a wait, not a failure: even on the last attempt."""
    exc = Throttled("account limit: no room for 12.5 s", wait=12.5)
    for attempt in (1, POLICY.max_attempts, POLICY.max_attempts + 10):
        assert decide(exc, attempt=attempt, policy=POLICY) == Later(12.5, retry=False)
