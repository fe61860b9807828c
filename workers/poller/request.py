"""A pending run, as a durable message: everything the poller needs for the next status call.

Nothing about a run lives in a process: the poll request goes round the delay ladder until its
next call is due, so a poller restart or crash loses nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers.outcome import capped_growth

__all__ = ["PollRequest", "next_poll_delay"]


class PollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_id: str
    command_type: str
    connection: str
    vendor_ref: dict[str, str]
    started_at: float = Field(description="Epoch seconds of the trigger.")
    deadline: float = Field(description="Epoch seconds after which the run is given up.")
    status: str | None = Field(default=None, description="Last vendor status seen.")
    cursor: dict[str, Any] = Field(default_factory=dict)
    polls: int = 0
    errors: int = Field(default=0, description="Consecutive failed status calls.")
    resumed: bool = Field(
        default=False,
        description="Started again after a redelivery: another chain may follow the same run.",
    )
    traceparent: str | None = None
    tracestate: str | None = None


def next_poll_delay(polls: int, *, first: float, factor: float, maximum: float) -> float:
    """Delay before status call number `polls + 1`: grows geometrically up to `maximum`."""
    return capped_growth(polls, first, factor, maximum)
