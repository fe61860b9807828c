"""Event data models: what flowgate publishes on `flowgate.events`.

Events are past tense: a command was accepted, progressed, succeeded, failed or was cancelled.
One model, `EventData`, carries all kinds so consumers parse one shape; the kind is in the
CloudEvents `type` (`flowgate.<command-type>.<kind>`) and in the routing key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

__all__ = ["TERMINAL_KINDS", "ErrorInfo", "ErrorKind", "EventData", "EventKind"]


class EventKind(StrEnum):
    ACCEPTED = "accepted"
    PROGRESS = "progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_KINDS = frozenset({EventKind.SUCCEEDED, EventKind.FAILED, EventKind.CANCELLED})


class ErrorKind(StrEnum):
    INVALID = "invalid"
    REJECTED = "rejected"
    VENDOR_FAILED = "vendor_failed"
    EXHAUSTED = "exhausted"
    DEADLINE = "deadline"
    UNKNOWN_OUTCOME = "unknown_outcome"
    INTERNAL = "internal"


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ErrorKind
    message: str = Field(description="What went wrong, for a human; never holds secrets.")
    http_status: int | None = None
    vendor_code: str | None = None
    retriable: bool = False


class EventData(BaseModel):
    """The `data` of every flowgate event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command_id: str
    command_type: str
    connection: str
    vendor_ref: dict[str, str] = Field(default_factory=dict)
    status: str | None = Field(default=None, description="The vendor's own status text.")
    result: dict[str, Any] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    stuck: bool | None = Field(
        default=None,
        description="On `progress` only: true when the run's status has not changed for longer "
        "than its connection's `poll.stuck_after` (once per such period); false on the first "
        "change after that. Left out of the event otherwise.",
    )

    @model_serializer(mode="wrap")
    def _leave_out_unset_stuck(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Absent rather than null: events without it read exactly as before it existed, so a
        # consumer on an older model (extra fields forbidden) still reads every one of them.
        data: dict[str, Any] = handler(self)
        if data.get("stuck", True) is None:
            del data["stuck"]
        return data
