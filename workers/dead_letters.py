"""A dead letter, read: flowgate's own (`x-flowgate-*` headers) or RabbitMQ's (`x-death`).

`DeadLetter.from_delivery` reads either into one shape, and knows the two messages `flowgate dlq`
makes of it:

- `copy()`: the letter itself again, for putting it back in the queue without requeueing it
  (same body, content type, message id and headers, minus `x-delivery-count`, plus a letter id
  and the original routing key when it had none);
- `replay()`: where a replay goes and what it carries. A command is re-published to
  `flowgate.commands` under the routing key it first came with, as a new command: its id is
  `replay_id(old id)` and its `replayof` attribute the old id. A poll request goes back to the
  poll queue under its own command id, marked `resumed`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from contracts import ErrorKind
from contracts.envelope import TYPE_PREFIX
from workers.broker.base import Delivery, HeaderValue, OutgoingMessage
from workers.publisher import (
    ATTEMPTS_HEADER,
    DEAD_AT_HEADER,
    ERROR_KIND_HEADER,
    LETTER_ID_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    SOURCE_QUEUE_HEADER,
)
from workers.topology import COMMANDS_EXCHANGE, POLL_QUEUE, RETRY_EXCHANGE, delay_routing_key

__all__ = [
    "DELIVERY_COUNT_HEADER",
    "KINDS",
    "LETTER_ID_HEADER",
    "RABBITMQ_REASONS",
    "REPLAY_NAMESPACE",
    "DeadLetter",
    "NotReplayable",
    "Replay",
    "replay_id",
]

# Every dead letter's own id: `Publisher.dead_letter` writes a uuid4 (the header name is spelt
# out there too; a unit test holds the two together), `flowgate dlq` adds one derived from the
# letter's content on its first copy of a letter without one. Two letters with one letter id
# in the queue are a letter and its duplicate (left by a crash between copying and acking).

# Quorum queues count deliveries here; a copy starts again without it.
DELIVERY_COUNT_HEADER = "x-delivery-count"
# The replay of dead letter X is command uuid5(REPLAY_NAMESPACE, X): the same letter replayed
# twice is the same command, so the idempotency store answers the second from the first.
REPLAY_NAMESPACE = uuid.UUID("941c19b3-ccea-416d-b347-34c667424389")
_LETTER_NAMESPACE = uuid.UUID("de0af992-4eb9-4157-8829-36537dc43880")

# Why RabbitMQ itself dead-letters a message (`x-death` reason).
RABBITMQ_REASONS = ("delivery_limit", "rejected", "expired", "maxlen")
# Every error kind a dead letter can have: flowgate's, RabbitMQ's, and `unknown` (neither said).
KINDS: tuple[str, ...] = tuple(
    dict.fromkeys([*(kind.value for kind in ErrorKind), *RABBITMQ_REASONS, "unknown"])
)

_STRUCTURED = "application/cloudevents"
_COMMAND_QUEUE_PREFIX = "flowgate.cmd."
# `d<tier>.<queue>`: a routing key the delay ladder gave a message (workers/topology.py).
_DELAY_KEY = re.compile(r"d\d+\.(?P<queue>.+)")
# Headers a replay carries over from the dead letter; everything else (x-flowgate-*, x-death,
# x-first-death-*, x-delivery-count, the retry ladder's x-flowgate-attempt/-due) is dropped.
_KEPT_HEADERS = ("traceparent", "tracestate")
_KEPT_PREFIX = "ce-"


class NotReplayable(ValueError):
    """This dead letter cannot be replayed; the message says why."""


@dataclass(frozen=True)
class Replay:
    """Where a replay is published, and what."""

    exchange: str
    routing_key: str
    message: OutgoingMessage
    command_id: str  # the id the replay runs under (new for a command, the same for a poll)


def replay_id(old_id: str) -> str:
    """The command id a replay of dead letter `old_id` runs under; the same on every replay."""
    return str(uuid.uuid5(REPLAY_NAMESPACE, old_id))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text or None


def _id(value: Any) -> str | None:
    """An id as the worker reads one: a non-empty string."""
    return value if isinstance(value, str) and value else None


def _deaths(headers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """`x-death` entries, oldest first (RabbitMQ prepends each new one)."""
    deaths = headers.get("x-death")
    if not isinstance(deaths, list | tuple):
        return []
    return [d for d in reversed(deaths) if isinstance(d, Mapping)]


def _body_json(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _undelayed(routing_key: str) -> str | None:
    """The command routing key behind a delay-ladder key (`d250.flowgate.cmd.X` is `X`); None
    for a ladder key of another queue (the poll queue, the unrouted queue), which says nothing
    of the key the command first came with. Any other key is itself."""
    match = _DELAY_KEY.fullmatch(routing_key)
    if match is None:
        return routing_key
    queue = match["queue"]
    if queue.startswith(_COMMAND_QUEUE_PREFIX):
        return queue[len(_COMMAND_QUEUE_PREFIX) :] or None
    return None


def _original_routing_key(headers: Mapping[str, Any], delivery: Delivery) -> str | None:
    """The routing key the message first came with: flowgate's header, else the first routing
    key of RabbitMQ's oldest `x-death`, else the letter's own routing key when it came to the
    queue through a dead-letter exchange (a copy made by `flowgate dlq` comes through the
    default exchange, under the queue's name, and carries the header instead)."""
    candidates = [headers.get(ROUTING_KEY_HEADER)]
    for death in _deaths(headers):
        keys = death.get("routing-keys")
        if isinstance(keys, list | tuple) and keys:
            candidates.append(keys[0])
    if delivery.exchange:
        candidates.append(delivery.routing_key)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            key = _undelayed(candidate)
            if key:
                return key
    return None


def _derived_letter_id(delivery: Delivery) -> str:
    """A letter id for a letter without one, from everything it holds but its delivery count:
    the same letter given back to the queue (a crash before its ack) derives the same id."""
    digest = hashlib.sha256(delivery.body)
    meta = {
        "content_type": delivery.content_type,
        "message_id": delivery.message_id,
        "headers": {k: v for k, v in delivery.headers.items() if k != DELIVERY_COUNT_HEADER},
    }
    digest.update(b"\0" + json.dumps(meta, sort_keys=True, default=repr).encode())
    return str(uuid.uuid5(_LETTER_NAMESPACE, digest.hexdigest()))


def _amqp_table(headers: Mapping[str, Any]) -> Mapping[str, HeaderValue]:
    # A dead letter's headers are an AMQP table as it came (x-death holds a list of tables
    # with timestamps); the broker passes them through as they are.
    return cast("Mapping[str, HeaderValue]", headers)


@dataclass(frozen=True)
class DeadLetter:
    """One message of `flowgate.dead-letters`, whoever dead-lettered it.

    `command_id` / `command_type` are None when the message does not say (a malformed body);
    `error_kind` is flowgate's error kind, or RabbitMQ's reason (`delivery_limit`, `rejected`,
    `expired`, `maxlen`) for a message RabbitMQ dead-lettered; `attempts` is None when unknown.
    `routing_key` is the one the message first came with (None when nothing says).
    """

    command_id: str | None
    command_type: str | None
    error_kind: str
    attempts: int | None
    dead_at: str | None
    source_queue: str | None
    reason: str
    by_rabbitmq: bool
    letter_id: str
    body: bytes = field(repr=False)
    content_type: str | None
    headers: Mapping[str, Any] = field(repr=False)
    message_id: str | None
    routing_key: str | None

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> DeadLetter:
        headers = dict(delivery.headers)
        body = _body_json(delivery.body) or {}
        deaths = _deaths(headers)
        # The latest death says why the message is here: one that went round the delay ladder
        # first died there `expired`, then again in its work queue (`delivery_limit`).
        # RabbitMQ 3.13+ also writes it as x-last-death-*; older ones only keep x-death.
        death = deaths[-1] if deaths else {}
        by_rabbitmq = ERROR_KIND_HEADER not in headers and (
            bool(death) or "x-first-death-reason" in headers
        )
        source_queue = _text(
            headers.get(SOURCE_QUEUE_HEADER)
            or headers.get("x-last-death-queue")
            or death.get("queue")
            or headers.get("x-first-death-queue")
        )
        # Where the worker reads it: the body in structured mode, the ce-id header in binary.
        header_id, body_id = _id(headers.get("ce-id")), _id(body.get("id"))
        structured = (delivery.content_type or "").lower().startswith(_STRUCTURED)
        command_id = (body_id or header_id) if structured else (header_id or body_id)
        ce_type = _text(headers.get("ce-type")) or _text(body.get("type"))
        command_type: str | None = None
        if ce_type is not None and ce_type.startswith(TYPE_PREFIX):
            command_type = ce_type[len(TYPE_PREFIX) :]
        if source_queue == POLL_QUEUE:
            # A poll request is not a CloudEvent: it names its command in its own fields.
            command_id = command_id or _id(body.get("command_id"))
            command_type = _text(body.get("command_type")) or command_type
        if command_type is None and source_queue and source_queue.startswith(_COMMAND_QUEUE_PREFIX):
            command_type = source_queue[len(_COMMAND_QUEUE_PREFIX) :]
        if by_rabbitmq:
            rabbit_reason = _text(
                headers.get("x-last-death-reason")
                or death.get("reason")
                or headers.get("x-first-death-reason")
            )
            error_kind = rabbit_reason or "unknown"
            reason = f"dead-lettered by RabbitMQ ({error_kind}) from {source_queue or '?'}"
            dead_at = _text(death.get("time"))
        else:
            error_kind = _text(headers.get(ERROR_KIND_HEADER)) or "unknown"
            reason = _text(headers.get(REASON_HEADER)) or ""
            dead_at = _text(headers.get(DEAD_AT_HEADER))
        attempts_value = headers.get(ATTEMPTS_HEADER)
        attempts: int | None = None
        if isinstance(attempts_value, int | str):
            try:
                attempts = int(attempts_value)
            except ValueError:
                attempts = None
        return cls(
            command_id=command_id,
            command_type=command_type,
            error_kind=error_kind,
            attempts=attempts,
            dead_at=dead_at,
            source_queue=source_queue,
            reason=reason,
            by_rabbitmq=by_rabbitmq,
            letter_id=_id(headers.get(LETTER_ID_HEADER)) or _derived_letter_id(delivery),
            body=delivery.body,
            content_type=delivery.content_type,
            headers=headers,
            message_id=delivery.message_id,
            routing_key=_original_routing_key(headers, delivery),
        )

    @property
    def is_poll(self) -> bool:
        return self.source_queue == POLL_QUEUE

    def copy(self) -> OutgoingMessage:
        """This letter again, to be put back in the queue in place of the one taken: the same
        body, content type, message id and headers, without `x-delivery-count`, with its
        letter id and the routing key it first came with (a copy's own routing key is the
        queue's name) added when missing."""
        headers = {k: v for k, v in self.headers.items() if k != DELIVERY_COUNT_HEADER}
        headers.setdefault(LETTER_ID_HEADER, self.letter_id)
        if self.routing_key is not None and not self.is_poll:
            headers.setdefault(ROUTING_KEY_HEADER, self.routing_key)
        return OutgoingMessage(
            body=self.body,
            content_type=self.content_type,
            headers=_amqp_table(headers),
            message_id=self.message_id,
        )

    def replay(self) -> Replay:
        """What to publish to replay this letter; `NotReplayable` saying why when it cannot be.

        A command goes to `flowgate.commands` under the routing key it first came with (never
        the type its body names: a command refused for a type / routing-key mismatch is
        refused again), as command `replay_id(old id)` with `replayof` = the old id. A poll
        request goes back to the poll queue with its own command id and `"resumed": true`, so
        the poller first looks for an outcome recorded meanwhile.
        """
        if self.is_poll:
            return self._replay_poll()
        if self.routing_key is None:
            raise NotReplayable(
                "the routing key it first came with is unknown (no x-flowgate-routing-key "
                "header, no x-death)"
            )
        headers: dict[str, HeaderValue] = {
            k: v
            for k, v in self.headers.items()
            if (k.startswith(_KEPT_PREFIX) or k in _KEPT_HEADERS)
            and isinstance(v, str | int | float | bool)
        }
        structured = (self.content_type or "").lower().startswith(_STRUCTURED)
        header_id = _id(headers.get("ce-id"))
        body = self.body
        if structured or header_id is None:
            # The id is the body's `id` attribute (binary mode without a ce-id header was
            # refused; its body may still be a structured event sent with the wrong type).
            parsed = _body_json(body)
            old_id = _id(parsed.get("id")) if parsed is not None else None
            if parsed is None or old_id is None:
                raise NotReplayable(
                    "it has no id to replace: its body is not a JSON object with a string "
                    "`id`, so it cannot be replayed as a new command"
                )
            new_id = replay_id(old_id)
            rewritten = {**parsed, "id": new_id}
            rewritten["replayof"] = old_id
            body = json.dumps(rewritten, ensure_ascii=False, separators=(",", ":")).encode()
            headers.pop("ce-id", None)
            headers.pop("ce-replayof", None)
        else:
            old_id = header_id
            new_id = replay_id(old_id)
            headers["ce-id"] = new_id
            headers["ce-replayof"] = old_id
        return Replay(
            exchange=COMMANDS_EXCHANGE,
            routing_key=self.routing_key,
            message=OutgoingMessage(
                body=body, content_type=self.content_type, headers=headers, message_id=new_id
            ),
            command_id=new_id,
        )

    def _replay_poll(self) -> Replay:
        parsed = _body_json(self.body)
        command_id = _id(parsed.get("command_id")) if parsed is not None else None
        if parsed is None or command_id is None:
            raise NotReplayable(
                "it is a poll request whose body is not a JSON object with a command_id"
            )
        parsed["resumed"] = True
        body = json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode()
        return Replay(
            exchange=RETRY_EXCHANGE,
            routing_key=delay_routing_key(0, POLL_QUEUE),
            message=OutgoingMessage(
                body=body, content_type=self.content_type, message_id=self.message_id
            ),
            command_id=command_id,
        )
