"""flowgate's client SDKs: send typed commands, wait for their outcome, subscribe to events.

- `flowgate_client.aio.Client`: asyncio, on aio-pika.
- `flowgate_client.sync.Client`: blocking, on kombu (Django, Flask, Celery code bases).

Both take the command models of `contracts` (`TriggerBatch(batch="B2001")`, validated when
built), publish with confirms and read every event of their commands from one reply queue of
their own (the command's AMQP `reply_to`). This package imports neither `workers` nor the
worker's dependencies; importing it does not import aio-pika or kombu either (each client
module imports its own). See docs/client.md.
"""

from contracts import TERMINAL_KINDS, ErrorInfo, ErrorKind, EventData, EventKind
from flowgate_client._common import (
    CommandCancelled,
    CommandFailed,
    CommandNotSucceeded,
    Event,
    FlowgateClientError,
    PublishFailed,
    ResultTimeout,
    TopologyMissing,
    parse_event,
)

__all__ = [
    "TERMINAL_KINDS",
    "CommandCancelled",
    "CommandFailed",
    "CommandNotSucceeded",
    "ErrorInfo",
    "ErrorKind",
    "Event",
    "EventData",
    "EventKind",
    "FlowgateClientError",
    "PublishFailed",
    "ResultTimeout",
    "TopologyMissing",
    "parse_event",
]
