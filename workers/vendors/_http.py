"""One way for every vendor client to call HTTP and turn failures into typed errors.

Transport failures and 429/502/503/504 become `VendorUnavailable` (retried through delay
queues); other non-2xx answers become `VendorRejected` unless the caller handles them first.
Messages carry the method, path and status, never headers or bodies we sent (they hold secrets).

`call` is also where every vendor call is measured: a log line, the call metrics (by vendor
and operation, which `Calling` sets around each handler call), and a span that sends its
`traceparent` to the vendor when tracing is on.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, Protocol

import httpx
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import SecretStr

from workers import logs, tracing
from workers.errors import VendorRejected, VendorUnavailable
from workers.metrics import current as current_metrics
from workers.metrics import http_status_label

__all__ = [
    "RETRIABLE_STATUSES",
    "BasicAuthConnection",
    "Calling",
    "basic_auth",
    "basic_json",
    "call",
    "error_for",
    "json_or_none",
    "parse_retry_after",
]

RETRIABLE_STATUSES = frozenset({429, 502, 503, 504})

log = logging.getLogger("flowgate.vendor")

# (vendor, operation) of the calls being made; a client used outside a handler is unknown.
_CALLING: ContextVar[tuple[str, str]] = ContextVar(
    "flowgate_vendor_call", default=("unknown", "other")
)


class Calling:
    """Vendor calls inside the block are `operation` (trigger, status, cancel, token) of
    `vendor`: their metrics' labels and their spans' names."""

    __slots__ = ("_token", "_value")

    def __init__(self, vendor: str, operation: str) -> None:
        self._value = (vendor, operation)
        self._token: Token[tuple[str, str]] | None = None

    def __enter__(self) -> None:
        self._token = _CALLING.set(self._value)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _CALLING.reset(self._token)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for(
    response: httpx.Response, *, what: str, vendor_code: str | None = None, message: str = ""
) -> VendorRejected | VendorUnavailable:
    """The typed error for a non-success answer; `what` names the call, e.g. 'Run Partner'."""
    text = f"{what}: HTTP {response.status_code}"
    if message:
        text = f"{text}: {message}"
    if response.status_code in RETRIABLE_STATUSES:
        return VendorUnavailable(
            text,
            http_status=response.status_code,
            vendor_code=vendor_code,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            # A gateway error may come after the backend acted; 429 and 503 are refusals.
            maybe_sent=response.status_code in (502, 504),
        )
    return VendorRejected(text, http_status=response.status_code, vendor_code=vendor_code)


async def call(client: httpx.AsyncClient, request: httpx.Request, *, what: str) -> httpx.Response:
    """Send `request`; transport errors and timeouts become `VendorUnavailable`."""
    vendor, operation = _CALLING.get()
    with tracing.span(
        f"{vendor} {operation}",
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": request.method,
            "server.address": request.url.host,
            "flowgate.vendor": vendor,
        },
    ) as span:
        if span is not None:
            traceparent, tracestate = tracing.carried(None, None)
            if traceparent:
                request.headers["traceparent"] = traceparent
            if tracestate:
                request.headers["tracestate"] = tracestate
        started = time.perf_counter()
        try:
            response = await client.send(request)
        except httpx.TransportError as exc:
            error = _transport_error(exc, what)
            _measured(what, vendor, operation, error.cause, started)
            if span is not None:
                span.set_status(StatusCode.ERROR, error.cause)
            raise error from None
        status = response.status_code
        _measured(what, vendor, operation, http_status_label(status), started)
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_status(StatusCode.ERROR, str(status))
    return response


def _transport_error(exc: httpx.TransportError, what: str) -> VendorUnavailable:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # Nothing reached the vendor: always safe to retry.
        return VendorUnavailable(
            f"{what}: could not connect ({type(exc).__name__})", cause="connect_error"
        )
    if isinstance(exc, httpx.TimeoutException):
        return VendorUnavailable(
            f"{what}: timed out ({type(exc).__name__})", maybe_sent=True, cause="timeout"
        )
    return VendorUnavailable(
        f"{what}: connection failed ({type(exc).__name__})",
        maybe_sent=True,
        cause="transport_error",
    )


def _measured(what: str, vendor: str, operation: str, status: str, started: float) -> None:
    seconds = time.perf_counter() - started
    current_metrics().vendor_call(vendor, operation, status, seconds)
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "%s: %s in %.3f s",
        what,
        f"HTTP {status}" if status.isdigit() else status,
        seconds,
        extra=logs.fields(
            event="vendor_call",
            vendor=vendor,
            operation=operation,
            http_status=status,
            duration=round(seconds, 6),
        ),
    )


class BasicAuthConnection(Protocol):
    """A connection whose vendor takes HTTP Basic auth (Informatica, Robusta)."""

    base_url: str
    username: str
    password: SecretStr
    timeout: float


async def basic_json(
    client: httpx.AsyncClient,
    connection: BasicAuthConnection,
    method: str,
    path: str,
    *,
    what: str,
    vendor_error: Callable[[httpx.Response], tuple[str | None, str]],
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    """A Basic-auth JSON call on `connection`: the 2xx response, or the typed error for the
    answer with the vendor's own code and message read by `vendor_error`."""
    headers = {
        "Authorization": basic_auth(connection.username, connection.password),
        "Accept": "application/json",
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = client.build_request(
        method,
        connection.base_url.rstrip("/") + path,
        headers=headers,
        json=body,
        timeout=connection.timeout,
    )
    response = await call(client, request, what=what)
    if not response.is_success:
        code, message = vendor_error(response)
        raise error_for(response, what=what, vendor_code=code, message=message)
    return response


def basic_auth(username: str, password: SecretStr) -> str:
    """An `Authorization: Basic` value; built per request so the secret is never stored."""
    pair = f"{username}:{password.get_secret_value()}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
