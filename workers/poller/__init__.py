"""The status poller: follows each run with durable, backed-off status calls."""

from workers.poller.request import PollRequest, next_poll_delay
from workers.poller.service import Poller

__all__ = ["PollRequest", "Poller", "next_poll_delay"]
