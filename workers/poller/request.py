"""A pending run, as a durable message: everything the poller needs for the next status call.

Nothing about a run lives only in a process. A call due soon (within `poller.hold`) goes straight
to the poll queue and the poller waits for it with the message unacked, so a crash gives the run
back to the queue; a call due later goes round the delay ladder.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers.outcome import capped_growth
from workers.publisher import Publisher
from workers.topology import POLL_QUEUE

__all__ = ["PollRequest", "next_poll_delay", "send_poll"]


class PollRequest(BaseModel):
    # Fields a newer flowgate adds are ignored, not refused: during a rolling upgrade a poller
    # not yet upgraded still follows the runs a newer worker hands it (and loses only what the
    # new fields add). Pollers of before this rule refuse them: upgrade those first.
    model_config = ConfigDict(extra="ignore")

    command_id: str
    command_type: str
    connection: str
    vendor_ref: dict[str, str]
    started_at: float = Field(description="Epoch seconds of the trigger.")
    deadline: float = Field(description="Epoch seconds after which the run is given up.")
    due_at: float | None = Field(
        default=None, description="Epoch seconds of the next status call; None: on arrival."
    )
    status: str | None = Field(default=None, description="Last vendor status seen.")
    status_since: float | None = Field(
        default=None,
        description="Epoch seconds the status last changed; None: unchanged since the trigger.",
    )
    stuck: bool = Field(
        default=False,
        description="The run was announced stuck (its `progress` event with `stuck: true` is "
        "out) and its status has not changed since.",
    )
    cursor: dict[str, Any] = Field(default_factory=dict)
    polls: int = 0
    errors: int = Field(default=0, description="Consecutive failed status calls.")
    resumed: bool = Field(
        default=False,
        description="Started again after a redelivery: another chain may follow the same run.",
    )
    traceparent: str | None = None
    tracestate: str | None = None
    replayof: str | None = None
    reply_to: str | None = Field(
        default=None, description="The command's AMQP reply_to: its events also go there."
    )

    def wait(self) -> float:
        """Seconds until the next status call is due (0 when it is)."""
        return 0.0 if self.due_at is None else max(0.0, self.due_at - time.time())

    def since(self) -> float:
        """Epoch seconds the current status was first seen (the trigger, before any change)."""
        return self.started_at if self.status_since is None else self.status_since


def next_poll_delay(polls: int, *, first: float, factor: float, maximum: float) -> float:
    """Delay before status call number `polls + 1`: grows geometrically up to `maximum`."""
    return capped_growth(polls, first, factor, maximum)


async def send_poll(publisher: Publisher, request: PollRequest, *, hold: float) -> None:
    """Publish `request`: straight to the poll queue when its call is due within `hold` (the
    poller waits out the rest), otherwise round the delay ladder."""
    body = request.model_dump_json().encode()
    message_id = f"poll:{request.command_id}:{request.polls}"
    wait = request.wait()
    if wait <= hold:
        await publisher.direct(
            POLL_QUEUE, body, content_type="application/json", message_id=message_id
        )
        return
    await publisher.delayed(
        POLL_QUEUE,
        body,
        delay=wait,
        content_type="application/json",
        headers={},
        message_id=message_id,
    )
