"""Dead letters read, copied and turned into replays (`workers.dead_letters`), and one
`flowgate dlq` pass on the in-memory broker: a copy is confirmed before its original is acked,
and a copy that fails loses nothing."""

from __future__ import annotations

import argparse
import io
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import ErrorKind
from workers import dlq
from workers.broker.base import OutgoingMessage, PublishNotConfirmed
from workers.broker.memory import MemoryBroker
from workers.commands import COMMANDS
from workers.dead_letters import (
    KINDS,
    LETTER_ID_HEADER,
    REPLAY_NAMESPACE,
    DeadLetter,
    NotReplayable,
    replay_id,
)
from workers.publisher import ROUTING_KEY_HEADER, Publisher
from workers.topology import DEAD_EXCHANGE, DEAD_LETTER_QUEUE, build_topology

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class _Delivery:
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = "application/cloudevents+json"
    routing_key: str = "add-paylink"
    exchange: str = "flowgate.dead"
    message_id: str | None = "m-1"
    reply_to: str | None = None
    user_id: str | None = None
    redelivered: bool = False
    delivery_count: int = 0
    settled: bool = False
    lost: bool = False

    async def ack(self) -> None: ...

    async def requeue(self) -> None: ...

    async def reject(self) -> None: ...


def _flowgate_headers(**extra: Any) -> dict[str, Any]:
    return {
        "x-flowgate-error-kind": "rejected",
        "x-flowgate-reason": "refused",
        "x-flowgate-attempts": 1,
        "x-flowgate-dead-at": "2026-11-22T05:42:10.120931+00:00",
        "x-flowgate-queue": "flowgate.cmd.add-paylink",
        **extra,
    }


def _structured(command_id: str = "c-1", type_: str = "flowgate.add-paylink") -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": command_id,
            "source": "urn:test",
            "type": type_,
            "traceparent": TRACEPARENT,
            "data": {"business_id": "PR", "order_id": "O", "payment_link": "p"},
        }
    ).encode()


def _poll_request_body(command_id: str) -> bytes:
    return json.dumps(
        {
            "command_id": command_id,
            "command_type": "run-partner",
            "connection": "default",
            "vendor_ref": {"runId": "7"},
            "started_at": 0.0,
            "deadline": 60.0,
        }
    ).encode()


def _death(queue: str, reason: str, key: str, at: datetime) -> dict[str, Any]:
    return {
        "count": 1,
        "reason": reason,
        "queue": queue,
        "time": at,
        "exchange": "",
        "routing-keys": [key],
    }


@pytest.mark.parametrize("last_death_headers", [False, True], ids=["rabbitmq-3.12", "3.13+"])
def test_the_latest_death_says_why_a_letter_is_here_not_the_first(
    last_death_headers: bool,
) -> None:
    """A poll request that waited on the delay ladder (its first death: `expired` in
    flowgate.delay.500) and was then handed back past the poll queue's delivery limit. Read by
    its first death it had no command id (a poll request is not a CloudEvent) and nobody
    answered it: the soak of 2026-11-25 logged exactly that."""
    first = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    last = datetime(2026, 11, 25, 12, 1, tzinfo=UTC)
    headers: dict[str, Any] = {
        "x-first-death-reason": "expired",
        "x-first-death-queue": "flowgate.delay.500",
        "x-first-death-exchange": "flowgate.delay",
        # RabbitMQ puts the latest death first.
        "x-death": [
            _death("flowgate.poll", "delivery_limit", "d500.flowgate.poll", last),
            _death("flowgate.delay.500", "expired", "d500.flowgate.poll", first),
        ],
    }
    if last_death_headers:
        headers |= {"x-last-death-reason": "delivery_limit", "x-last-death-queue": "flowgate.poll"}
    letter = DeadLetter.from_delivery(
        _Delivery(
            body=_poll_request_body("c-9"),
            content_type="application/json",
            routing_key="d500.flowgate.poll",
            headers=headers,
        )
    )
    assert letter.by_rabbitmq and letter.is_poll
    assert (letter.command_id, letter.command_type) == ("c-9", "run-partner")
    assert (letter.source_queue, letter.error_kind) == ("flowgate.poll", "delivery_limit")
    assert letter.dead_at == last.isoformat()


def test_a_rabbitmq_dead_letter_is_read_from_x_death_and_replayed_in_binary_mode() -> None:
    died = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    letter = DeadLetter.from_delivery(
        _Delivery(
            body=b"{}",
            content_type="application/json",
            routing_key="trigger-batch",
            headers={
                "ce-id": "c-1",
                "ce-type": "flowgate.trigger-batch",
                "ce-specversion": "1.0",
                "traceparent": TRACEPARENT,
                "x-delivery-count": 6,
                "x-first-death-reason": "delivery_limit",
                "x-first-death-queue": "flowgate.cmd.trigger-batch",
                "x-first-death-exchange": "flowgate.commands",
                "x-death": [
                    {
                        "count": 1,
                        "reason": "delivery_limit",
                        "queue": "flowgate.cmd.trigger-batch",
                        "time": died,
                        "exchange": "flowgate.commands",
                        "routing-keys": ["trigger-batch"],
                    }
                ],
            },
        )
    )
    assert (letter.command_id, letter.command_type, letter.error_kind) == (
        "c-1",
        "trigger-batch",
        "delivery_limit",
    )
    assert letter.by_rabbitmq and letter.attempts is None
    assert letter.dead_at == died.isoformat()
    assert letter.source_queue == "flowgate.cmd.trigger-batch"
    assert letter.routing_key == "trigger-batch"

    replay = letter.replay()
    new_id = str(uuid.uuid5(REPLAY_NAMESPACE, "c-1"))
    assert (replay.exchange, replay.routing_key, replay.command_id) == (
        "flowgate.commands",
        "trigger-batch",
        new_id,
    )
    assert dict(replay.message.headers) == {
        "ce-id": new_id,
        "ce-replayof": "c-1",
        "ce-type": "flowgate.trigger-batch",
        "ce-specversion": "1.0",
        "traceparent": TRACEPARENT,
    }
    assert (replay.message.body, replay.message.content_type, replay.message.message_id) == (
        b"{}",
        "application/json",
        new_id,
    )


def test_a_structured_replay_gets_a_new_deterministic_id_and_replayof_and_keeps_the_rest() -> None:
    body = _structured("c-1")
    letter = DeadLetter.from_delivery(_Delivery(body=body, headers=_flowgate_headers()))
    first, second = letter.replay(), letter.replay()
    assert first == second  # the same letter is always the same new command
    assert first.command_id == replay_id("c-1") != "c-1"
    rewritten = json.loads(first.message.body)
    original = json.loads(body)
    assert list(rewritten) == [*original, "replayof"]  # key order kept, replayof added
    assert rewritten == {**original, "id": first.command_id, "replayof": "c-1"}
    assert first.message.message_id == first.command_id
    assert first.message.content_type == "application/cloudevents+json"
    assert "ce-id" not in first.message.headers


def test_a_replay_goes_to_the_original_routing_key_never_the_type_in_the_body() -> None:
    # Refused for a type / routing-key mismatch: it goes back to the key it came with.
    mismatch = DeadLetter.from_delivery(
        _Delivery(
            body=_structured("c-2", "flowgate.add-paylink"),
            routing_key="trigger-batch",
            headers=_flowgate_headers(
                **{
                    "x-flowgate-error-kind": "invalid",
                    "x-flowgate-queue": "flowgate.cmd.trigger-batch",
                    ROUTING_KEY_HEADER: "trigger-batch",
                }
            ),
        )
    )
    assert mismatch.command_type == "add-paylink"
    assert mismatch.replay().routing_key == "trigger-batch"

    # The header wins over x-death and the letter's own key; a delay-ladder key maps back.
    laddered = DeadLetter.from_delivery(
        _Delivery(
            body=_structured("c-3", "flowgate.run-partner"),
            routing_key="d250.flowgate.cmd.run-partner",
            headers={
                "x-first-death-reason": "delivery_limit",
                "x-death": [
                    {
                        "reason": "delivery_limit",
                        "queue": "flowgate.cmd.run-partner",
                        "routing-keys": ["d250.flowgate.cmd.run-partner"],
                    },
                    {
                        "reason": "expired",
                        "queue": "flowgate.delay.250",
                        "routing-keys": ["d250.flowgate.cmd.start-process"],
                    },
                ],
            },
        )
    )
    # The oldest death's first routing key, read back through the ladder.
    assert laddered.routing_key == "start-process"
    with_header = DeadLetter.from_delivery(
        _Delivery(
            body=_structured("c-3"),
            routing_key="d500.flowgate.cmd.run-partner",
            headers={ROUTING_KEY_HEADER: "d500.flowgate.cmd.add-paylink"},
        )
    )
    assert with_header.routing_key == "add-paylink"
    # A ladder key of another queue says nothing; an unknown key is kept as it is.
    unrouted = DeadLetter.from_delivery(
        _Delivery(
            body=_structured("c-4"),
            routing_key="launch-rocket",
            headers={ROUTING_KEY_HEADER: "d250.flowgate.unrouted"},
        )
    )
    assert unrouted.routing_key == "launch-rocket"
    assert unrouted.replay().routing_key == "launch-rocket"


def test_a_letter_without_an_original_routing_key_or_an_id_is_not_replayable() -> None:
    # A copy made by `flowgate dlq` came through the default exchange under the queue's name.
    keyless = DeadLetter.from_delivery(
        _Delivery(body=_structured(), exchange="", routing_key=DEAD_LETTER_QUEUE, headers={})
    )
    assert keyless.routing_key is None
    with pytest.raises(NotReplayable, match="routing key"):
        keyless.replay()

    for body, content_type in [
        (b"\xff{", "application/cloudevents+json"),
        (b'{"specversion": "1.0"}', "application/cloudevents+json"),
        (b'{"id": 5}', "application/cloudevents+json"),
        (b"[1]", "application/json"),  # binary mode without a ce-id header
    ]:
        letter = DeadLetter.from_delivery(
            _Delivery(body=body, content_type=content_type, headers=_flowgate_headers())
        )
        assert letter.command_id is None
        with pytest.raises(NotReplayable, match="no id to replace"):
            letter.replay()


def test_a_poll_request_goes_back_to_the_poll_queue_resumed_under_its_own_id() -> None:
    body = {"command_id": "c-5", "command_type": "run-partner", "polls": 3, "resumed": False}
    poll = DeadLetter.from_delivery(
        _Delivery(
            body=json.dumps(body).encode(),
            content_type="application/json",
            message_id="poll:c-5:3",
            routing_key="d0.flowgate.poll",
            headers={
                "x-flowgate-error-kind": "deadline",
                "x-flowgate-queue": "flowgate.poll",
                ROUTING_KEY_HEADER: "d0.flowgate.poll",
            },
        )
    )
    assert (poll.command_id, poll.command_type) == ("c-5", "run-partner")
    replay = poll.replay()
    assert (replay.exchange, replay.routing_key, replay.command_id) == (
        "flowgate.retry",
        "d0.flowgate.poll",
        "c-5",
    )
    assert json.loads(replay.message.body) == {**body, "resumed": True}
    assert replay.message.message_id == "poll:c-5:3"
    assert poll.copy().headers[ROUTING_KEY_HEADER] == "d0.flowgate.poll"  # as it was


def test_a_copy_is_the_letter_without_its_delivery_count_and_with_an_id() -> None:
    headers = _flowgate_headers(**{"x-delivery-count": 3, "x-custom": "kept"})
    delivery = _Delivery(body=_structured(), headers=headers, message_id="m-9")
    letter = DeadLetter.from_delivery(delivery)
    copy = letter.copy()
    assert (copy.body, copy.content_type, copy.message_id) == (
        delivery.body,
        delivery.content_type,
        "m-9",
    )
    expected = {k: v for k, v in headers.items() if k != "x-delivery-count"}
    assert dict(copy.headers) == {
        **expected,
        LETTER_ID_HEADER: letter.letter_id,
        ROUTING_KEY_HEADER: "add-paylink",
    }
    # The derived id ignores the delivery count (a letter given back derives the same id) ...
    again = DeadLetter.from_delivery(
        _Delivery(
            body=delivery.body,
            headers={**headers, "x-delivery-count": 7},
            message_id="m-9",
        )
    )
    assert again.letter_id == letter.letter_id
    # ... and the copy, read back, keeps it.
    read_back = DeadLetter.from_delivery(
        _Delivery(
            body=copy.body,
            headers=copy.headers,
            message_id="m-9",
            exchange="",
            routing_key=DEAD_LETTER_QUEUE,
        )
    )
    assert (read_back.letter_id, read_back.routing_key) == (letter.letter_id, "add-paylink")
    # Another letter of the same command (another death) is another letter.
    other = DeadLetter.from_delivery(
        _Delivery(
            body=delivery.body,
            headers={**headers, "x-flowgate-dead-at": "2026-11-22T06:00:00+00:00"},
            message_id="m-9",
        )
    )
    assert other.letter_id != letter.letter_id


def test_every_kind_is_known() -> None:
    assert set(KINDS) == {k.value for k in ErrorKind} | {
        "delivery_limit",
        "rejected",
        "expired",
        "maxlen",
        "unknown",
    }
    assert len(KINDS) == len(set(KINDS))


@dataclass
class _Recorder:
    published: list[tuple[str, str, OutgoingMessage]] = field(default_factory=list)

    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        self.published.append((exchange, routing_key, message))


async def test_publisher_gives_each_dead_letter_a_letter_id_of_its_own() -> None:
    broker = _Recorder()
    publisher = Publisher(broker)  # type: ignore[arg-type]
    delivery = _Delivery(body=b"{}", headers={LETTER_ID_HEADER: "stale"})
    for _ in range(2):
        await publisher.dead_letter(
            delivery,
            queue="flowgate.cmd.add-paylink",
            reason="r",
            error_kind="rejected",
            attempts=1,
        )
    ids = [message.headers[LETTER_ID_HEADER] for _, _, message in broker.published]
    assert len(set(ids)) == 2 and "stale" not in ids
    for letter_id in ids:
        assert isinstance(letter_id, str) and uuid.UUID(letter_id).version == 4


# ------------------------------------------------------------------ a pass, in memory


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flowgate")
    sub = parser.add_subparsers(dest="command", required=True)
    dlq.add_parser(sub)
    return parser.parse_args(["dlq", *argv])


class _FlakyBroker(MemoryBroker):
    """Fails the `fail_at`-th copy back to the DLQ; records publishes and acks in order."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.copies = 0
        self.log: list[str] = []

    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        if exchange == "" and routing_key == DEAD_LETTER_QUEUE:
            self.copies += 1
            if self.copies == self.fail_at:
                raise PublishNotConfirmed("nacked")
            self.log.append(f"copy {json.loads(message.body)['id']}")
        await super().publish(exchange, routing_key, message)

    async def get(self, queue: str) -> Any:
        delivery = await super().get(queue)
        if delivery is None:
            return None
        ack, log, name = delivery.ack, self.log, json.loads(delivery.body)["id"]

        async def logged_ack() -> None:
            log.append(f"ack {name}")
            await ack()

        delivery.ack = logged_ack  # type: ignore[method-assign]
        return delivery


async def _letters(broker: MemoryBroker, n: int) -> list[bytes]:
    await broker.declare(build_topology(COMMANDS))
    bodies = [_structured(f"c-{i}") for i in range(n)]
    for body in bodies:
        await broker.publish(
            DEAD_EXCHANGE,
            "add-paylink",
            OutgoingMessage(body=body, content_type="application/cloudevents+json", headers={}),
        )
    return bodies


async def _queued(broker: MemoryBroker) -> list[tuple[bytes, Mapping[str, Any]]]:
    out = []
    while (delivery := await broker.get(DEAD_LETTER_QUEUE)) is not None:
        out.append((delivery.body, delivery.headers))
        await delivery.ack()
    return out


async def test_each_copy_is_confirmed_before_its_original_is_acked() -> None:
    broker = _FlakyBroker()
    bodies = await _letters(broker, 3)
    out, err = io.StringIO(), io.StringIO()
    assert await dlq.run_on(broker, _args("list"), out=out, err=err) == 0
    assert broker.log == ["copy c-0", "ack c-0", "copy c-1", "ack c-1", "copy c-2", "ack c-2"]
    queued = await _queued(broker)
    assert [body for body, _ in queued] == bodies
    assert all("x-delivery-count" not in headers for _, headers in queued)


async def test_a_copy_that_fails_loses_nothing() -> None:
    broker = _FlakyBroker(fail_at=2)
    bodies = await _letters(broker, 3)
    out, err = io.StringIO(), io.StringIO()
    assert await dlq.run_on(broker, _args("list"), out=out, err=err) == 1
    assert "could not be copied back" in err.getvalue()
    assert broker.log == ["copy c-0", "ack c-0"]
    # The first was copied, the other two given back: all three are there, once each.
    assert sorted(body for body, _ in await _queued(broker)) == sorted(bodies)


async def test_unknown_kind_and_missing_selectors_are_usage_errors() -> None:
    broker = MemoryBroker()
    await _letters(broker, 1)
    for argv in (["replay", "--kind", "nonsense"], ["show"], ["replay"], ["replay", "x", "--all"]):
        out, err = io.StringIO(), io.StringIO()
        assert await dlq.run_on(broker, _args(*argv), out=out, err=err) == 2, argv
    assert len(await _queued(broker)) == 1


def test_every_subcommand_has_a_description_and_an_example() -> None:
    parser = argparse.ArgumentParser(prog="flowgate")
    sub = parser.add_subparsers(dest="command")
    dlq.add_parser(sub)
    dlq_parser = sub.choices["dlq"]
    actions = next(a for a in dlq_parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(actions.choices) == {"list", "show", "replay", "purge"}
    for name, action in [("dlq", dlq_parser), *actions.choices.items()]:
        text = action.format_help()
        assert action.description, name
        assert "example" in text and "flowgate dlq" in text.split("example", 1)[1], name
