"""What every vendor folder provides: an adapter that triggers a command and reports status.

A vendor folder holds the same files: `models.py` (the vendor's wire shapes), `client.py` (an
httpx client over an injected `httpx.AsyncClient`), `handlers.py` (the `VendorAdapter` that maps
a flowgate command to client calls and vendor answers to `Triggered` / `StatusReport`).
Adapters raise the typed errors of `workers.errors`; they never publish or ack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

__all__ = ["RunState", "StatusReport", "Triggered", "VendorAdapter"]

RunState = Literal["running", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True)
class StatusReport:
    """One look at a run. `status` is the vendor's own status text, passed through to events."""

    state: RunState
    status: str
    result: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None
    vendor_code: str | None = None
    # Vendor state the next status call needs (e.g. which file events are left to follow).
    cursor: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Triggered:
    """The vendor took the trigger. `vendor_ref` identifies the run (e.g. {"event_id": "7638"}).

    `report` is set when the answer is already final (synchronous vendors such as TMF622):
    then no `accepted` event and no polling follow, only the terminal event.
    """

    vendor_ref: Mapping[str, str]
    status: str | None = None
    report: StatusReport | None = None


class VendorAdapter(Protocol):
    """Registered per command type at bootstrap; one instance per (command type, connection)."""

    async def trigger(self, command: BaseModel, *, command_id: str) -> Triggered: ...

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport: ...
