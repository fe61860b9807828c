"""Typed errors raised by handlers, vendor clients and the envelope decoder.

Handlers never ack, nack or publish on failure themselves: they raise one of these and
`workers.outcome` (the only place that does) turns it into an event, a retry or a dead letter.

    FlowgateError
    ├── InvalidCommand         malformed, or breaks a rule    -> failed(invalid) + dead letter
    │   └── UnknownConnection  no such named connection       -> failed(invalid) + dead letter
    ├── VendorError            the vendor answered, not with success
    │   ├── VendorRejected     a final 4xx or request code    -> failed(rejected) + dead letter
    │   ├── VendorFailed       the run ran and failed         -> failed(vendor_failed)
    │   └── VendorUnavailable  429/502/503, timeout, network  -> retry, then failed(exhausted)
    ├── Throttled              a shared rate limit says wait  -> later, not an attempt
    ├── Refused                flowgate cannot carry it out   -> failed(rejected) + dead letter
    └── UnknownOutcome         trigger may or may not be done -> failed(unknown_outcome) + DLQ

Messages must never contain secrets: clients build them from status codes and vendor error
texts, never from request headers or bodies.
"""

from __future__ import annotations

__all__ = [
    "FlowgateError",
    "InvalidCommand",
    "Refused",
    "Throttled",
    "UnknownConnection",
    "UnknownOutcome",
    "VendorError",
    "VendorFailed",
    "VendorRejected",
    "VendorUnavailable",
]


class FlowgateError(Exception):
    """Base of every error flowgate turns into an outcome."""

    kind: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCommand(FlowgateError):
    """The command cannot be parsed, validated, or breaks a vendor rule we check up front."""

    kind = "invalid"


class UnknownConnection(InvalidCommand):
    """The command's `connection` attribute names no configured connection for its vendor."""


class VendorError(FlowgateError):
    """The vendor answered, and not with success."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        vendor_code: str | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.vendor_code = vendor_code
        self.status = status


class VendorRejected(VendorError):
    """A final refusal: the request is wrong for the vendor and repeating it will not help."""

    kind = "rejected"


class VendorFailed(VendorError):
    """The vendor accepted the work and later reported that it failed."""

    kind = "vendor_failed"


class VendorUnavailable(VendorError):
    """A passing condition (429, 502, 503, timeout, connection error): worth retrying later.

    `retry_after` is the vendor's `Retry-After` in seconds when it sent one. `maybe_sent` is
    true when the vendor may have acted on the request anyway (a read timeout, a dropped
    connection after sending, 502/504): for a trigger that must never run twice, that is an
    unknown outcome, not a safe retry. `cause` names the condition in a word, for the retry
    metric and log line: `http_<status>`, or what `workers.vendors._http.call` saw
    (`connect_error`, `timeout`, `transport_error`).
    """

    kind = "exhausted"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        vendor_code: str | None = None,
        status: str | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        cause: str | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status, vendor_code=vendor_code, status=status)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        self.cause = cause or (f"http_{http_status}" if http_status else "unavailable")


class Refused(FlowgateError):
    """flowgate refuses a well-formed command it cannot carry out (cancelling a run that
    already ended, or one whose vendor has no way to stop it); the message says why."""

    kind = "rejected"


class Throttled(FlowgateError):
    """The vendor account's rate limit (shared by every process) has no room now: come back in
    `wait` seconds. Waiting is not failing: it spends no attempt and never ends in a dead
    letter, and the message waits in the delay queues, not in the process."""

    kind = "throttled"

    def __init__(self, message: str, *, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class UnknownOutcome(FlowgateError):
    """A crash left it unknown whether the vendor ran a trigger, and a blind retry is forbidden."""

    kind = "unknown_outcome"
