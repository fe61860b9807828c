"""The one place that decides what an error means: retry later, answer `failed`, dead-letter.

Handlers and vendor clients raise typed errors (`workers.errors`, `contracts.ContractError`);
`decide` turns one into a `Decision`, and the consumer and the poller carry it out the same way.
Pure functions, so every rule here is unit-tested without a broker.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from contracts import ContractError, ErrorInfo, ErrorKind
from workers.errors import (
    FlowgateError,
    InvalidCommand,
    UnknownOutcome,
    VendorFailed,
    VendorRejected,
    VendorUnavailable,
)
from workers.vendors._connection import RetryPolicy

__all__ = ["Decision", "backoff", "capped_growth", "decide"]


def capped_growth(steps: int, first: float, factor: float, maximum: float) -> float:
    """`first * factor**steps`, capped at `maximum`, without overflow for any `steps`."""
    if factor > 1 and first > 0 and steps > math.log(maximum / first, factor):
        return maximum
    return float(min(first * factor**steps, maximum))


@dataclass(frozen=True)
class Decision:
    """`retry_in` set: try again after that many seconds. Else answer `error` (a `failed` event)
    and, when `dead_letter`, keep the input in the dead-letter queue with the reason."""

    error: ErrorInfo | None = None
    retry_in: float | None = None
    dead_letter: bool = False


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


def decide(exc: Exception, *, attempt: int, policy: RetryPolicy) -> Decision:
    """What to do about `exc`, raised on call number `attempt` (1-based) of this work."""
    if isinstance(exc, ContractError | InvalidCommand):
        return Decision(_info(ErrorKind.INVALID, exc), dead_letter=True)
    if isinstance(exc, VendorUnavailable):
        if attempt < policy.max_attempts:
            delay = backoff(attempt, policy)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, policy.max_retry_after))
            return Decision(retry_in=delay)
        info = _info(ErrorKind.EXHAUSTED, exc, retriable=True)
        message = f"gave up after {attempt} attempts: {info.message}"
        return Decision(info.model_copy(update={"message": message}), dead_letter=True)
    if isinstance(exc, VendorRejected):
        return Decision(_info(ErrorKind.REJECTED, exc), dead_letter=True)
    if isinstance(exc, VendorFailed):
        return Decision(_info(ErrorKind.VENDOR_FAILED, exc))
    if isinstance(exc, UnknownOutcome):
        return Decision(_info(ErrorKind.UNKNOWN_OUTCOME, exc), dead_letter=True)
    if isinstance(exc, FlowgateError):
        return Decision(_info(ErrorKind.REJECTED, exc), dead_letter=True)
    raise TypeError(f"not a flowgate error: {type(exc).__name__}")  # bugs go to the caller
