"""`flowgate dlq` on RabbitMQ: list / show leave the DLQ as it was, replay brings a command back
with its id and removes only it, purge asks first. `run()` is called in-process with arguments
parsed by the real `dlq` parser."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import System
from workers import dlq
from workers.broker import OutgoingMessage
from workers.simulators import Fault
from workers.topology import DEAD_EXCHANGE, DEAD_LETTER_QUEUE

QUEUE = DEAD_LETTER_QUEUE


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flowgate")
    sub = parser.add_subparsers(dest="command", required=True)
    dlq.add_parser(sub)
    return parser.parse_args(["dlq", *argv])


async def _dlq(system: System, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await dlq.run(_args(*argv), system.settings, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def _wait_length(system: System, expected: int) -> None:
    async with asyncio.timeout(10):
        while await system.broker.queue_length(QUEUE) != expected:
            await asyncio.sleep(0.05)


async def _wait_kind(system: System, command_id: str, kind: str) -> None:
    events = system.events
    async with asyncio.timeout(20), events.changed:
        await events.changed.wait_for(lambda: kind in events.kinds(command_id))


async def _drain(system: System) -> list[bytes]:
    bodies = []
    while (delivery := await system.broker.get(QUEUE)) is not None:
        bodies.append(delivery.body)
        await delivery.ack()
    return bodies


async def _synthetic(system: System, n: int, **headers: Any) -> list[bytes]:
    """`n` dead letters as flowgate writes them, for commands nobody will replay here."""
    bodies = []
    for i in range(n):
        body = json.dumps(
            {"specversion": "1.0", "id": f"synthetic-{i}-{uuid.uuid4()}", "type": "flowgate.x"}
        ).encode()
        await system.broker.publish(
            DEAD_EXCHANGE,
            "x",
            OutgoingMessage(
                body=body,
                content_type="application/cloudevents+json",
                headers={
                    "x-flowgate-reason": f"synthetic {i}",
                    "x-flowgate-error-kind": "invalid",
                    "x-flowgate-attempts": 1,
                    "x-flowgate-dead-at": datetime.now(UTC).isoformat(),
                    "x-flowgate-queue": "flowgate.unrouted",
                    **headers,
                },
            ),
        )
        bodies.append(body)
    return bodies


async def _rejected_command(system: System, already: int = 0) -> tuple[str, str]:
    """A real dead letter: add-paylink answered 400 by the vendor. Its id and failure message."""
    system.sims.inject(Fault(route="tmf622.patch", status=400))
    command_id = await system.publish(
        "add-paylink",
        {"business_id": "PR", "order_id": "O-DLQ", "payment_link": "https://p/dlq"},
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.add-paylink.failed"
    await _wait_length(system, already + 1)
    return command_id, terminal["data"]["error"]["message"]


async def test_rejected_command_is_listed_shown_and_replayed_with_its_id(system: System) -> None:
    command_id, message = await _rejected_command(system)

    code, out, _ = await _dlq(system, "list")
    assert code == 0
    [line, count] = out.splitlines()
    assert line.split()[:5] == [
        command_id,
        "add-paylink",
        "rejected",
        "attempts=1",
        line.split()[4],
    ]
    assert "flowgate.cmd.add-paylink" in line
    assert count == "1 dead letter"
    assert await system.broker.queue_length(QUEUE) == 1

    code, out, _ = await _dlq(system, "show", command_id)
    assert code == 0
    assert f"x-flowgate-reason: {json.dumps(message[:1000])}" in out
    assert '"order_id": "O-DLQ"' in out  # the body, pretty-printed
    assert await system.broker.queue_length(QUEUE) == 1

    system.sims.clear_faults()
    code, out, err = await _dlq(system, "replay", command_id)
    assert (code, err) == (0, ""), err
    assert f"replayed {command_id} (add-paylink) to flowgate.commands add-paylink" in out
    await _wait_kind(system, command_id, "succeeded")
    assert system.events.kinds(command_id) == ["failed", "succeeded"]
    assert len(system.sims.ledger.entries("tmf622.patch")) == 2
    await asyncio.sleep(0.2)
    assert await system.broker.queue_length(QUEUE) == 0


async def test_list_keeps_every_message_in_order_and_honours_limit(system: System) -> None:
    bodies = await _synthetic(system, 5)
    await _wait_length(system, 5)
    code, out, _ = await _dlq(system, "list", "--limit", "3")
    assert code == 0
    lines = out.splitlines()
    assert [json.loads(b)["id"] for b in bodies[:3]] == [ln.split()[0] for ln in lines[:3]]
    assert lines[3] == "5 dead letters (first 3 shown; see --limit)"
    code, out, _ = await _dlq(system, "list")
    assert len(out.splitlines()) == 6
    assert await system.broker.queue_length(QUEUE) == 5
    assert await _drain(system) == bodies


async def test_replay_takes_only_the_selected_and_keeps_the_rest_in_order(system: System) -> None:
    before = await _synthetic(system, 2)
    command_id, _ = await _rejected_command(system, already=2)
    after = await _synthetic(system, 2)
    await _wait_length(system, 5)
    system.sims.clear_faults()

    code, out, err = await _dlq(system, "replay", "--kind", "rejected")
    assert code == 0, err
    assert "replayed 1 of 1 selected; 4 left in the DLQ" in out
    await _wait_kind(system, command_id, "succeeded")
    assert await _drain(system) == before + after


async def test_replay_refuses_unknown_ids_and_bad_usage(system: System) -> None:
    await _synthetic(system, 1)
    await _wait_length(system, 1)
    code, _, err = await _dlq(system, "replay", "no-such-id")
    assert code == 1 and "no dead letter with command id 'no-such-id'" in err
    code, _, err = await _dlq(system, "replay")
    assert code == 2 and "--all" in err
    # An unknown command type cannot be routed: it is reported and stays.
    code, _, err = await _dlq(system, "replay", "--all")
    assert code == 1 and "'x' is not one flowgate handles" in err
    assert await system.broker.queue_length(QUEUE) == 1


async def test_purge_asks_first(system: System) -> None:
    await _synthetic(system, 3)
    await _wait_length(system, 3)
    code, out, err = await _dlq(system, "purge")
    assert code == 1 and out == ""
    assert "would drop 3 dead letters" in err and "--yes" in err
    assert await system.broker.queue_length(QUEUE) == 3
    code, out, _ = await _dlq(system, "purge", "--yes")
    assert (code, out) == (0, "purged 3 dead letters\n")
    assert await system.broker.queue_length(QUEUE) == 0


def test_list_rejects_a_bad_limit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args("list", "--limit", "0")
    assert "must be at least 1" in capsys.readouterr().err


# ------------------------------------------------------------- DeadLetter, from a Delivery


@dataclass
class _Delivery:
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = "application/cloudevents+json"
    routing_key: str = "add-paylink"
    exchange: str = "flowgate.dead"
    message_id: str | None = "m-1"
    redelivered: bool = False
    delivery_count: int = 0

    async def ack(self) -> None: ...

    async def requeue(self) -> None: ...

    async def reject(self) -> None: ...


def test_a_rabbitmq_dead_letter_is_read_from_x_death() -> None:
    died = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    letter = dlq.DeadLetter.from_delivery(
        _Delivery(
            body=b"{}",
            content_type="application/json",
            headers={
                "ce-id": "c-1",
                "ce-type": "flowgate.trigger-batch",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
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
    assert letter.replay_target() == ("flowgate.commands", "trigger-batch")
    message = letter.replay_message()
    assert dict(message.headers) == {
        "ce-id": "c-1",
        "ce-type": "flowgate.trigger-batch",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    assert (message.body, message.content_type, message.message_id) == (
        b"{}",
        "application/json",
        "m-1",
    )


def test_type_comes_from_the_source_queue_and_poll_requests_go_back_to_the_poll_queue() -> None:
    no_type = dlq.DeadLetter.from_delivery(
        _Delivery(
            body=b'{"id": "c-2"}',
            headers={
                "x-flowgate-error-kind": "invalid",
                "x-flowgate-reason": "bad\n  data " + "y" * 200,
                "x-flowgate-attempts": 3,
                "x-flowgate-queue": "flowgate.cmd.run-partner",
                "x-flowgate-attempt": 3,
                "x-first-death-reason": "expired",  # from the delay ladder, not the death
            },
        )
    )
    assert not no_type.by_rabbitmq
    assert (no_type.command_type, no_type.error_kind, no_type.attempts) == (
        "run-partner",
        "invalid",
        3,
    )
    assert no_type.replay_target() == ("flowgate.commands", "run-partner")
    assert dict(no_type.replay_message().headers) == {}
    assert len(no_type.summary()) < 200 and "bad data" in no_type.summary()

    poll = dlq.DeadLetter.from_delivery(
        _Delivery(
            body=json.dumps({"command_id": "c-3", "command_type": "run-partner"}).encode(),
            content_type="application/json",
            headers={"x-flowgate-error-kind": "deadline", "x-flowgate-queue": "flowgate.poll"},
        )
    )
    assert (poll.command_id, poll.command_type) == ("c-3", "run-partner")
    assert poll.replay_target() == ("", "flowgate.poll")

    garbage = dlq.DeadLetter.from_delivery(_Delivery(body=b"\xff{", headers={}))
    assert garbage.command_id is None
    with pytest.raises(ValueError, match="cannot be read"):
        garbage.replay_target()
