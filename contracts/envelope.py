"""CloudEvents 1.0 envelope over RabbitMQ, through the `cloudevents` SDK's RabbitMQ binding.

Commands are accepted in structured mode (`application/cloudevents+json`) and binary mode
(`ce-` headers, body = data). Events are always written in structured mode. Decoding never
raises anything but `ContractError`, which carries the command id whenever it could be read,
so the caller can answer the sender with a `failed` event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import rabbitmq
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from contracts.commands import COMMAND_TYPES, Command
from contracts.events import EventData, EventKind
from contracts.jsonxml import XmlError, xml_to_json

__all__ = [
    "EVENT_CONTENT_TYPE",
    "TYPE_PREFIX",
    "CommandEnvelope",
    "ContractError",
    "InputLimits",
    "decode_command",
    "encode_command",
    "encode_event",
    "event_id",
]

TYPE_PREFIX = "flowgate."
EVENT_CONTENT_TYPE = "application/cloudevents+json"
_FORMAT = JSONFormat()
_EVENT_NS = uuid.UUID("6f1c3c2e-3d1b-4e0a-9a57-0c0f1a7e5d10")


class ContractError(ValueError):
    """The message is not a valid flowgate command; `command_id` is set when it could be read."""

    def __init__(
        self, message: str, *, command_id: str | None = None, command_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.command_id = command_id
        self.command_type = command_type
        # The dead letter a refused replay replays, when the envelope said so.
        self.replayof: str | None = None


@dataclass(frozen=True)
class InputLimits:
    max_bytes: int = 1024 * 1024
    max_depth: int = 32


@dataclass(frozen=True)
class CommandEnvelope:
    """A decoded command. `connection` is None when the command names none: the vendor's
    default connection (a setting of the worker) serves it. `replayof` is the id of the dead
    letter this command replays (`flowgate dlq replay`), carried onto every event."""

    id: str
    type: str
    source: str
    connection: str | None
    data: Command
    deadline: datetime | None = None
    time: datetime | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    replayof: str | None = None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, iteratively so hostile input cannot blow the stack."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def _peek(
    body: bytes, headers: Mapping[str, str], structured: bool, message_id: str | None
) -> tuple[str | None, bool, bool]:
    """(an id to answer to, whether the id is where the mode puts it, whether specversion is).

    The answer id falls back to a `ce-id` header, then to the AMQP `message_id`, so a sender
    whose body cannot be read (or who mixed the modes up) still hears back; the message is
    refused all the same.
    """
    header_id = headers.get("ce-id") or message_id or None
    if not structured:
        if not headers.get("ce-id"):
            # Likely a structured event sent with the wrong content type: answer its id.
            return _body_id(body) or header_id, False, False
        return header_id, True, bool(headers.get("ce-specversion"))
    try:
        parsed = json.loads(body)
    except RecursionError:
        raise ContractError("body is nested too deeply", command_id=header_id) from None
    except ValueError as exc:
        reason = str(exc).splitlines()[0][:200]
        raise ContractError(f"body is not valid JSON ({reason})", command_id=header_id) from None
    if not isinstance(parsed, dict):
        raise ContractError("a structured-mode command must be a JSON object", command_id=header_id)
    found = parsed.get("id")
    body_id = str(found) if isinstance(found, str) and found else None
    return body_id or header_id, body_id is not None, bool(parsed.get("specversion"))


def _body_id(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    found = parsed.get("id") if isinstance(parsed, dict) else None
    return found if isinstance(found, str) and found else None


def _summarise(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in item["loc"])
        # A rule across fields (a model validator) has no location: it is about the data.
        parts.append(f"{'data.' + where if where else 'data'}: {item['msg']}")
    return "; ".join(parts)


def _parse_time(value: Any, name: str, command_id: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        # RFC 3339 allows a lower-case `t` and `z`; fromisoformat reads only upper case.
        parsed = datetime.fromisoformat(_text(value).upper())
    except ValueError:
        raise ContractError(f"{name} is not an RFC 3339 time", command_id=command_id) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def decode_command(
    body: bytes,
    *,
    content_type: str | None,
    headers: Mapping[str, Any],
    routing_key: str,
    limits: InputLimits = InputLimits(),
    message_id: str | None = None,
) -> CommandEnvelope:
    """Parse and validate one command message; raise `ContractError` saying what is wrong.

    `message_id` (the AMQP property) is only a fallback id to answer to when the body cannot
    be read: the command id is the CloudEvents `id`. An error names the command type of the
    routing key when the message itself could not say.
    """
    try:
        return _decode(body, content_type, headers, routing_key, limits, message_id)
    except ContractError as exc:
        if exc.command_type is None and routing_key in COMMAND_TYPES:
            exc.command_type = routing_key
        raise


def _decode(
    body: bytes,
    content_type: str | None,
    headers: Mapping[str, Any],
    routing_key: str,
    limits: InputLimits,
    message_id: str | None,
) -> CommandEnvelope:
    text_headers = {k.lower(): _text(v) for k, v in headers.items() if v is not None}
    if len(body) > limits.max_bytes:
        # Not parsed: an id from the headers or properties is all there is to answer to.
        raise ContractError(
            f"message is {len(body)} bytes, over the {limits.max_bytes}-byte limit",
            command_id=text_headers.get("ce-id") or message_id or None,
        )
    structured = (content_type or "").lower().startswith("application/cloudevents")
    command_id, has_id, has_specversion = _peek(body, text_headers, structured, message_id)
    # The SDK invents an id (and a specversion) when they are missing; an invented id would
    # differ on every redelivery and defeat idempotency, so both must really be there.
    if not has_id:
        raise ContractError(
            "missing id: structured mode needs an `id` attribute, binary mode a `ce-id` header",
            command_id=command_id,
        )
    if not has_specversion:
        raise ContractError(
            "missing specversion (structured mode needs content type "
            "application/cloudevents+json and a `specversion` attribute; binary mode a "
            "`ce-specversion` header)",
            command_id=command_id,
        )
    message = rabbitmq.RabbitMQMessage(
        headers={k: v for k, v in text_headers.items() if k.startswith("ce-")},
        content_type=content_type,
        body=body,
    )
    try:
        event = rabbitmq.from_rabbitmq(message, _FORMAT, CloudEvent)
    except RecursionError:
        raise ContractError("body is nested too deeply", command_id=command_id) from None
    except Exception as exc:  # the SDK raises many types; all mean "not a CloudEvent"
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ContractError(f"not a valid CloudEvent: {reason}", command_id=command_id) from None
    try:
        return _validated(event, text_headers, routing_key, limits)
    except ContractError as exc:
        exc.replayof = _opt(event.get_extension("replayof"))
        raise


def _validated(
    event: BaseCloudEvent, text_headers: Mapping[str, str], routing_key: str, limits: InputLimits
) -> CommandEnvelope:
    command_id = event.get_id()
    ce_type = event.get_type()
    if not ce_type.startswith(TYPE_PREFIX) or ce_type[len(TYPE_PREFIX) :] not in COMMAND_TYPES:
        raise ContractError(f"unknown command type {ce_type!r}", command_id=command_id)
    command_type = ce_type[len(TYPE_PREFIX) :]
    if command_type != routing_key:
        raise ContractError(
            f"type {ce_type!r} does not match routing key {routing_key!r}",
            command_id=command_id,
            command_type=command_type,
        )
    data = event.get_data()
    if isinstance(data, bytes | str) and _is_xml(event.get_datacontenttype()):
        # The W3C json-to-xml form (contracts.jsonxml): read hardened, then the same checks.
        try:
            data = xml_to_json(data, max_bytes=limits.max_bytes, max_depth=limits.max_depth)
        except XmlError as exc:
            raise ContractError(
                f"data: {exc}", command_id=command_id, command_type=command_type
            ) from None
    if isinstance(data, bytes | str):
        raise ContractError(
            "data must be a JSON object (binary mode needs content type application/json, "
            "or application/xml for the json-to-xml form)",
            command_id=command_id,
            command_type=command_type,
        )
    if not isinstance(data, dict):
        raise ContractError(
            "data must be a JSON object", command_id=command_id, command_type=command_type
        )
    if _depth(data, limits.max_depth) > limits.max_depth:
        raise ContractError(
            f"data is nested deeper than {limits.max_depth} levels",
            command_id=command_id,
            command_type=command_type,
        )
    try:
        model = COMMAND_TYPES[command_type].model_validate(data)
    except ValidationError as exc:
        raise ContractError(
            _summarise(exc), command_id=command_id, command_type=command_type
        ) from None
    connection = event.get_extension("connection")
    return CommandEnvelope(
        id=command_id,
        type=command_type,
        source=event.get_source(),
        connection=_text(connection) if connection else None,
        data=model,
        deadline=_parse_time(event.get_extension("deadline"), "deadline", command_id),
        time=event.get_time(),
        traceparent=text_headers.get("traceparent") or _opt(event.get_extension("traceparent")),
        tracestate=text_headers.get("tracestate") or _opt(event.get_extension("tracestate")),
        replayof=_opt(event.get_extension("replayof")),
    )


def _is_xml(content_type: str | None) -> bool:
    """`application/xml`, `text/xml` or any `+xml` type, parameters ignored."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("application/xml", "text/xml") or media.endswith("+xml")


def _opt(value: Any) -> str | None:
    return None if value is None else _text(value)


def encode_command(
    command_type: str,
    data: Mapping[str, Any],
    *,
    command_id: str | None = None,
    source: str = "urn:flowgate:cli",
    connection: str | None = None,
    deadline: datetime | None = None,
    replayof: str | None = None,
) -> tuple[bytes, str]:
    """A structured-mode command, as any publisher would write it (used by the CLI and tests)."""
    attributes: dict[str, Any] = {
        "id": command_id or str(uuid.uuid4()),
        "source": source,
        "type": f"{TYPE_PREFIX}{command_type}",
        "time": datetime.now(UTC),
        "datacontenttype": "application/json",
    }
    if connection:
        attributes["connection"] = connection
    if deadline:
        attributes["deadline"] = deadline.isoformat().replace("+00:00", "Z")
    if replayof:
        attributes["replayof"] = replayof
    message = rabbitmq.to_structured(CloudEvent(attributes, dict(data)), _FORMAT)
    return message.body, EVENT_CONTENT_TYPE


def event_id(command_id: str, kind: EventKind, discriminator: str = "") -> str:
    """Deterministic, so a redelivered command republishes its events with the same ids."""
    return str(uuid.uuid5(_EVENT_NS, f"{command_id}/{kind.value}/{discriminator}"))


def encode_event(
    kind: EventKind,
    data: EventData,
    *,
    discriminator: str = "",
    traceparent: str | None = None,
    tracestate: str | None = None,
    replayof: str | None = None,
) -> bytes:
    """A structured-mode event body; the content type is `EVENT_CONTENT_TYPE`."""
    attributes: dict[str, Any] = {
        "id": event_id(data.command_id, kind, discriminator),
        "source": f"urn:flowgate:{data.connection}",
        "type": f"{TYPE_PREFIX}{data.command_type}.{kind.value}",
        "subject": data.command_id,
        "time": datetime.now(UTC),
        "datacontenttype": "application/json",
    }
    if traceparent:
        attributes["traceparent"] = traceparent
    if tracestate:
        attributes["tracestate"] = tracestate
    if replayof:
        attributes["replayof"] = replayof
    event = CloudEvent(attributes, data.model_dump(mode="json"))
    return rabbitmq.to_structured(event, _FORMAT).body
