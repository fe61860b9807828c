"""What to do with a message, decided without doing it: the settlements and `decide`.

A handler returns a settlement (`Done`, `Later`, `Fail`, `Park`, `Drop`) or raises; `decide`
turns whatever it raised into one. `workers.settlement` is the one place that carries them out.
Pure functions and values, so every rule here is unit-tested without a broker.

    exception raised                  settlement
    ContractError, InvalidCommand     Fail(invalid), dead letter
    VendorUnavailable                 Later(backoff, at least Retry-After) until max_attempts,
                                      then Fail(exhausted), dead letter
    Throttled                         Later(its wait), no attempt spent
    VendorRejected, Refused           Fail(rejected), dead letter
    VendorFailed                      Fail(vendor_failed)
    UnknownOutcome                    Fail(unknown_outcome), dead letter
    any other FlowgateError           Fail(internal, its message), dead letter
    anything else (a bug)             Fail(internal, the exception's type), dead letter
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts import ContractError, ErrorInfo, ErrorKind
from workers.errors import (
    FlowgateError,
    InvalidCommand,
    Refused,
    Throttled,
    UnknownOutcome,
    VendorFailed,
    VendorRejected,
    VendorUnavailable,
)
from workers.vendors._connection import RetryPolicy

__all__ = [
    "Done",
    "Drop",
    "Fail",
    "Later",
    "Park",
    "Settlement",
    "backoff",
    "capped_growth",
    "decide",
    "internal_error",
]


@dataclass(frozen=True)
class Done:
    """Everything the message produced (events, the next poll request) is confirmed: ack it."""


@dataclass(frozen=True)
class Later:
    """Handle it again after `delay` seconds, round the delay queues; then ack this copy.

    `body` and `headers` replace the delivered ones when set (a poll request carrying its
    error count, a command carrying its attempt number).
    """

    delay: float
    body: bytes | None = None
    headers: Mapping[str, Any] | None = None
    # A retry of a failed call: it spends an attempt (the next one carries attempt + 1).
    retry: bool = False
    # Why, in a word (`http_503`, `timeout`, `rate_limited`, ...): the retry metric's label.
    # Empty for a message that only waits its turn (back early from the delay ladder). Not
    # part of what the settlement does, so not compared.
    reason: str = field(default="", compare=False)


@dataclass(frozen=True)
class Fail:
    """Answer `failed` with `error` (when the command id is known) and ack; keep the input in
    the dead-letter queue with the reason first when `dead_letter`."""

    error: ErrorInfo
    dead_letter: bool = False


@dataclass(frozen=True)
class Park:
    """A dependency (Redis, a publish confirm) is down: try the message again later, as long
    as the outage lasts, without spending its delivery limit."""

    reason: str
    # Which dependency, in a word (`store_unavailable`, `publish_unconfirmed`): the retry
    # metric's label.
    cause: str = field(default="dependency", compare=False)


@dataclass(frozen=True)
class Drop:
    """Leave it unsettled: its channel is gone and the broker already has it again."""


Settlement = Done | Later | Fail | Park | Drop


def capped_growth(steps: int, first: float, factor: float, maximum: float) -> float:
    """`first * factor**steps`, capped at `maximum`, without overflow for any `steps`."""
    if factor > 1 and first > 0 and steps > math.log(maximum / first, factor):
        return maximum
    return float(min(first * factor**steps, maximum))


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1-based): exponential, capped, with ± jitter."""
    base = capped_growth(attempt - 1, policy.first_delay, policy.factor, policy.max_delay)
    spread = base * policy.jitter
    return max(0.0, base + (rng or random).uniform(-spread, spread))


def _info(kind: ErrorKind, exc: Exception, *, retriable: bool = False) -> ErrorInfo:
    http_status = getattr(exc, "http_status", None)
    vendor_code = getattr(exc, "vendor_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return ErrorInfo(
        kind=kind,
        message=message,
        http_status=http_status,
        vendor_code=vendor_code,
        retriable=retriable,
    )


def internal_error(exc: BaseException, doing: str) -> ErrorInfo:
    """`failed` kind `internal`: flowgate itself broke. Only the exception's type is told:
    its text may quote anything (a URL, a header), and the log has the traceback."""
    return ErrorInfo(
        kind=ErrorKind.INTERNAL,
        message=f"flowgate failed while {doing} ({type(exc).__name__}); see its log",
    )


def decide(
    exc: Exception, *, attempt: int, policy: RetryPolicy, doing: str = "handling it"
) -> Later | Fail:
    """What to do about `exc`, raised on call number `attempt` (1-based) of this work."""
    if isinstance(exc, ContractError | InvalidCommand):
        return Fail(_info(ErrorKind.INVALID, exc), dead_letter=True)
    if isinstance(exc, VendorUnavailable):
        if attempt < policy.max_attempts:
            delay = backoff(attempt, policy)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, policy.max_retry_after))
            return Later(delay, retry=True, reason=exc.cause)
        info = _info(ErrorKind.EXHAUSTED, exc, retriable=True)
        message = f"gave up after {attempt} attempts: {info.message}"
        return Fail(info.model_copy(update={"message": message}), dead_letter=True)
    if isinstance(exc, Throttled):
        return Later(max(0.0, exc.wait), reason="rate_limited")
    if isinstance(exc, VendorRejected | Refused):
        return Fail(_info(ErrorKind.REJECTED, exc), dead_letter=True)
    if isinstance(exc, VendorFailed):
        return Fail(_info(ErrorKind.VENDOR_FAILED, exc))
    if isinstance(exc, UnknownOutcome):
        return Fail(_info(ErrorKind.UNKNOWN_OUTCOME, exc), dead_letter=True)
    if isinstance(exc, FlowgateError):
        return Fail(_info(ErrorKind.INTERNAL, exc), dead_letter=True)
    return Fail(internal_error(exc, doing), dead_letter=True)
