"""What both clients share: the command message, the typed event, the outcome rules, errors.

Nothing here talks to a broker: `flowgate_client.aio` (aio-pika) and `flowgate_client.sync`
(kombu) do, each with the same message on the wire.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from contracts.commands import COMMAND_TYPES, Command
from contracts.envelope import EVENT_CONTENT_TYPE, TYPE_PREFIX, encode_command
from contracts.events import TERMINAL_KINDS, ErrorInfo, ErrorKind, EventData, EventKind

__all__ = [
    "COMMANDS_EXCHANGE",
    "DEFAULT_URL",
    "EVENTS_EXCHANGE",
    "REPLY_QUEUE_PREFIX",
    "CommandCancelled",
    "CommandFailed",
    "CommandNotSucceeded",
    "Event",
    "FlowgateClientError",
    "OutgoingCommand",
    "PublishFailed",
    "ResultTimeout",
    "TopologyMissing",
    "outcome",
    "parse_event",
    "prepare",
    "private_queue",
    "reply_queue_type",
    "url_user",
]

COMMANDS_EXCHANGE = "flowgate.commands"
EVENTS_EXCHANGE = "flowgate.events"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
REPLY_QUEUE_PREFIX = "flowgate.reply."
SUBSCRIBER_QUEUE_PREFIX = "flowgate.subscriber."


def url_user(url: str) -> str | None:
    """The user an AMQP URL logs in as; None when the URL names none (EXTERNAL auth)."""
    user = urlsplit(url.split(";", 1)[0]).username  # the first node's: all nodes share users
    return unquote(user) if user else None


def reply_queue_type(url: str, chosen: str | None) -> str:
    """`classic` on one node; `quorum` when the URL names a cluster (several `;`-separated
    nodes): a classic queue lives on one node, and its events with it when that node dies."""
    if chosen is not None:
        return chosen
    return "quorum" if len([u for u in url.split(";") if u.strip()]) > 1 else "classic"


def private_queue(prefix: str, user: str | None) -> str:
    """A client's own queue: `<prefix><user>.<uuid>`, so RabbitMQ permissions can give each
    publisher its own queues and no one else's (`flowgate declare --permissions publisher`)."""
    return f"{prefix}{user}.{uuid.uuid4()}" if user else f"{prefix}{uuid.uuid4()}"


class FlowgateClientError(Exception):
    """Base of every error the clients raise."""


class TopologyMissing(FlowgateClientError):
    """`flowgate.commands` or `flowgate.events` does not exist on this virtual host: no
    flowgate process has run there yet (`flowgate declare` creates them)."""


class PublishFailed(FlowgateClientError):
    """RabbitMQ did not confirm the command (nacked, or the connection failed meanwhile). It
    may or may not have been routed: send it again with the same id, which is safe."""


class ResultTimeout(FlowgateClientError, TimeoutError):
    """No terminal event within the timeout. The command goes on: wait again, or send a
    `cancel-run`."""


class CommandNotSucceeded(FlowgateClientError):
    """The command ended, but not `succeeded`; `event` is its terminal event."""

    def __init__(self, event: Event) -> None:
        self.event = event
        super().__init__(self._describe())

    def _describe(self) -> str:
        data = self.event.data
        return f"{data.command_type} {data.command_id} ended {self.event.kind.value}"


class CommandFailed(CommandNotSucceeded):
    """The terminal event was `failed`: `error` (kind, message, vendor code...) says why."""

    @property
    def error(self) -> ErrorInfo:
        error = self.event.data.error
        # The contract sets `error` on every failed event; a missing one is flowgate's bug.
        return error or ErrorInfo(kind=ErrorKind.INTERNAL, message="failed without an error")

    @property
    def kind(self) -> ErrorKind:
        return self.error.kind

    def _describe(self) -> str:
        return f"{super()._describe()} ({self.error.kind.value}): {self.error.message}"


class CommandCancelled(CommandNotSucceeded):
    """The terminal event was `cancelled`: the vendor reports the run interrupted."""


@dataclass(frozen=True)
class Event:
    """One flowgate event, typed: `data` is the contract's `EventData`."""

    id: str
    kind: EventKind
    data: EventData
    routing_key: str
    source: str
    time: datetime | None
    replayof: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The whole CloudEvent as received (structured mode)."""

    @property
    def command_id(self) -> str:
        return self.data.command_id

    @property
    def command_type(self) -> str:
        return self.data.command_type

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS


def parse_event(body: bytes, routing_key: str = "") -> Event:
    """An event from its AMQP body (structured CloudEvent); ValueError when it is not one."""
    raw = json.loads(body)
    if not isinstance(raw, dict):
        raise ValueError("an event is a JSON object")
    ce_type = raw.get("type")
    if not isinstance(ce_type, str) or not ce_type.startswith(TYPE_PREFIX) or "." not in ce_type:
        raise ValueError(f"not a flowgate event type: {ce_type!r}")
    kind = EventKind(ce_type.rsplit(".", 1)[1])
    data = EventData.model_validate(raw.get("data"))
    when = raw.get("time")
    return Event(
        id=str(raw["id"]),
        kind=kind,
        data=data,
        routing_key=routing_key or f"{data.command_type}.{kind.value}",
        source=str(raw.get("source", "")),
        time=datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else None,
        replayof=raw.get("replayof"),
        raw=raw,
    )


def outcome(event: Event) -> Event:
    """The terminal event when it is `succeeded`; else the exception saying how it ended."""
    if event.kind is EventKind.FAILED:
        raise CommandFailed(event)
    if event.kind is EventKind.CANCELLED:
        raise CommandCancelled(event)
    return event


@dataclass(frozen=True)
class OutgoingCommand:
    """A command ready to publish: structured CloudEvent body, routed by `command_type`."""

    id: str
    command_type: str
    body: bytes
    content_type: str = EVENT_CONTENT_TYPE


Deadline = datetime | timedelta | None


def prepare(
    command: Command,
    *,
    source: str,
    connection: str | None = None,
    deadline: Deadline = None,
    id: str | None = None,
) -> OutgoingCommand:
    """The message for a command model. The model was validated when it was built; a part of
    a command (`GroupBatchParams`) or a dict is refused here, before anything is sent."""
    command_type = getattr(type(command), "command_type", "")
    if not isinstance(command, Command) or COMMAND_TYPES.get(command_type) is not type(command):
        raise TypeError(
            f"send() takes a command model of contracts.commands (TriggerBatch(...), ...), "
            f"not {type(command).__name__}"
        )
    if isinstance(deadline, timedelta):
        deadline = datetime.now(UTC) + deadline
    elif isinstance(deadline, datetime):
        if deadline.tzinfo is None:
            raise ValueError("deadline must be timezone-aware (or a timedelta from now)")
        deadline = deadline.astimezone(UTC)
    command_id = id or str(uuid.uuid4())
    body, content_type = encode_command(
        command_type,
        command.model_dump(mode="json", exclude_unset=True),
        command_id=command_id,
        source=source,
        connection=connection,
        deadline=deadline,
    )
    return OutgoingCommand(command_id, command_type, body, content_type)
