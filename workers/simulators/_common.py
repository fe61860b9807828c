"""What the four vendor modules share: the parsed request, the vendor interface, helpers.

Every vendor handler is a plain function of an already-read request (``Inbound``) returning a
response, so the one request pipeline in ``_app`` can record, delay and fault any of them the
same way, and the handlers stay synchronous and deterministic.
"""

from __future__ import annotations

import base64
import binascii
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from starlette.responses import JSONResponse, Response

__all__ = [
    "ALL_METHODS",
    "Clock",
    "Handler",
    "Inbound",
    "Outcome",
    "Vendor",
    "VendorRoute",
    "basic_credentials",
    "json_response",
    "retry_after_header",
    "utc_iso",
]

ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class Inbound:
    """A received request, body already read: what a vendor handler decides on. ``query``
    keeps the last value of each query parameter."""

    method: str
    path: str
    path_params: dict[str, str]
    headers: dict[str, str]
    body: str
    json: Any | None
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """The scripted final status of a run (and, for Informatica, of its file events)."""

    final_status: str
    file_status: str | None = None


Handler = Callable[[Inbound], Response]


class VendorRoute(NamedTuple):
    """One vendor endpoint: URL path, route name (for faults and ledger), methods, handler."""

    path: str
    name: str
    methods: list[str]
    handler: Handler


class Vendor(ABC):
    """The interface every simulated vendor implements for ``Simulators``."""

    name: str

    @property
    @abstractmethod
    def latency(self) -> float:
        """Seconds added to every answer of this vendor (from its config, read live)."""

    @abstractmethod
    def routes(self) -> list[VendorRoute]:
        """The vendor's endpoints."""

    @abstractmethod
    def error_response(self, status: int) -> Response:
        """The vendor's answer for an injected fault status (429, 500, 502, 503, ...)."""

    @abstractmethod
    def check_outcome(self, final_status: str, file_status: str | None) -> None:
        """Raise ValueError when the vendor cannot end a run with this status."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every run (and token)."""


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON answer with the given status."""
    return JSONResponse(body, status_code=status)


def basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    """The (user, password) of an ``Authorization: Basic`` header, or None."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` delta-seconds; fractions are kept so fast tests can ask for 0.1 s."""
    if math.isclose(seconds, round(seconds)):
        return str(round(seconds))
    return f"{seconds:g}"


def utc_iso(epoch: float) -> str:
    """``2024-05-20T10:15:30.123Z``: a wall-clock time as vendors print it."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
