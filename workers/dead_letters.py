"""A dead letter, read: flowgate's own (`x-flowgate-*` headers) or RabbitMQ's (`x-death`).

`DeadLetter.from_delivery` reads either into one shape, and knows where a replay goes and what
it carries: the original body and content type, the `ce-*` and trace headers, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts import COMMAND_TYPES
from contracts.envelope import TYPE_PREFIX
from workers.broker.base import Delivery, HeaderValue, OutgoingMessage
from workers.publisher import (
    ATTEMPTS_HEADER,
    DEAD_AT_HEADER,
    ERROR_KIND_HEADER,
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
)
from workers.topology import COMMANDS_EXCHANGE, POLL_QUEUE

__all__ = ["DeadLetter"]

_COMMAND_QUEUE_PREFIX = "flowgate.cmd."
# Headers a replay carries over from the dead letter; everything else (x-flowgate-*, x-death,
# x-first-death-*, x-delivery-count, the retry ladder's x-flowgate-attempt/-due) is dropped.
_KEPT_HEADERS = ("traceparent", "tracestate")
_KEPT_PREFIX = "ce-"
_REASON_WIDTH = 60


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text or None


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    """The oldest `x-death` entry RabbitMQ added (it prepends; the first death is last)."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[-1], Mapping):
        return deaths[-1]
    return {}


def _body_json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class DeadLetter:
    """One message of `flowgate.dead-letters`, whoever dead-lettered it.

    `command_id` / `command_type` are None when the message does not say (a malformed body);
    `error_kind` is flowgate's error kind, or RabbitMQ's reason (`delivery_limit`, `rejected`,
    `expired`) for a message RabbitMQ dead-lettered; `attempts` is None when unknown.
    """

    command_id: str | None
    command_type: str | None
    error_kind: str
    attempts: int | None
    dead_at: str | None
    source_queue: str | None
    reason: str
    by_rabbitmq: bool
    body: bytes = field(repr=False)
    content_type: str | None
    headers: Mapping[str, Any] = field(repr=False)
    message_id: str | None
    routing_key: str

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> DeadLetter:
        headers = dict(delivery.headers)
        body = _body_json(delivery.body)
        death = _first_death(headers)
        by_rabbitmq = ERROR_KIND_HEADER not in headers and (
            bool(death) or "x-first-death-reason" in headers
        )
        source_queue = _text(
            headers.get(SOURCE_QUEUE_HEADER)
            or headers.get("x-first-death-queue")
            or death.get("queue")
        )
        command_id = _text(headers.get("ce-id")) or _text(body.get("id"))
        ce_type = _text(headers.get("ce-type")) or _text(body.get("type"))
        command_type: str | None = None
        if ce_type is not None and ce_type.startswith(TYPE_PREFIX):
            command_type = ce_type[len(TYPE_PREFIX) :]
        if source_queue == POLL_QUEUE:
            # A poll request is not a CloudEvent: it names its command in its own fields.
            command_id = command_id or _text(body.get("command_id"))
            command_type = _text(body.get("command_type")) or command_type
        if command_type is None and source_queue and source_queue.startswith(_COMMAND_QUEUE_PREFIX):
            command_type = source_queue[len(_COMMAND_QUEUE_PREFIX) :]
        if by_rabbitmq:
            rabbit_reason = _text(headers.get("x-first-death-reason") or death.get("reason"))
            error_kind = rabbit_reason or "unknown"
            reason = f"dead-lettered by RabbitMQ ({error_kind}) from {source_queue or '?'}"
            dead_at = _text(death.get("time"))
        else:
            error_kind = _text(headers.get(ERROR_KIND_HEADER)) or "unknown"
            reason = _text(headers.get(REASON_HEADER)) or ""
            dead_at = _text(headers.get(DEAD_AT_HEADER))
        attempts_value = headers.get(ATTEMPTS_HEADER)
        attempts = int(attempts_value) if isinstance(attempts_value, int | str) else None
        return cls(
            command_id=command_id,
            command_type=command_type,
            error_kind=error_kind,
            attempts=attempts,
            dead_at=dead_at,
            source_queue=source_queue,
            reason=reason,
            by_rabbitmq=by_rabbitmq,
            body=delivery.body,
            content_type=delivery.content_type,
            headers=headers,
            message_id=delivery.message_id,
            routing_key=delivery.routing_key,
        )

    def replay_target(self) -> tuple[str, str]:
        """(exchange, routing key) to re-publish to; ValueError saying why when there is none."""
        if self.source_queue == POLL_QUEUE:
            return "", POLL_QUEUE
        if self.command_type is None:
            raise ValueError("its command type cannot be read (no CloudEvents type, no source)")
        if self.command_type not in COMMAND_TYPES:
            raise ValueError(f"command type {self.command_type!r} is not one flowgate handles")
        return COMMANDS_EXCHANGE, self.command_type

    def replay_message(self) -> OutgoingMessage:
        """The original message: same body, content type, message id, ce-* and trace headers."""
        headers: dict[str, HeaderValue] = {
            k: v
            for k, v in self.headers.items()
            if (k.startswith(_KEPT_PREFIX) or k in _KEPT_HEADERS)
            and isinstance(v, str | int | float | bool)
        }
        return OutgoingMessage(
            body=self.body,
            content_type=self.content_type,
            headers=headers,
            message_id=self.message_id,
        )

    def summary(self) -> str:
        reason = " ".join(self.reason.split())
        if len(reason) > _REASON_WIDTH:
            reason = reason[: _REASON_WIDTH - 1] + "…"
        attempts = "-" if self.attempts is None else str(self.attempts)
        return "  ".join(
            [
                self.command_id or "<no id>",
                self.command_type or "<no type>",
                self.error_kind,
                f"attempts={attempts}",
                self.dead_at or "-",
                self.source_queue or "-",
                reason,
            ]
        )
