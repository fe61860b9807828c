"""`flowgate dlq` on RabbitMQ: list / show leave every letter exactly as it was (no delivery
counted, no place changed), replay brings a command back as a new command (`replayof` = the old
id) to the routing key it first came with and removes only it, purge asks first. `run()` is
called in-process with arguments parsed by the real `dlq` parser."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import encode_command
from tests.conftest import System, fast_settings
from tests.waiting import poll_until
from workers import dlq
from workers.broker import OutgoingMessage
from workers.dead_letters import KINDS, LETTER_ID_HEADER, replay_id
from workers.publisher import ROUTING_KEY_HEADER
from workers.simulators import Fault
from workers.topology import DEAD_EXCHANGE, DEAD_LETTER_QUEUE

QUEUE = DEAD_LETTER_QUEUE
COLUMNS = ("POS", "ID", "TYPE", "KIND", "ATTEMPTS", "DEAD AT", "QUEUE", "REASON")


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
    await poll_until(lambda: system.broker.queue_length(QUEUE), lambda n: n == expected, timeout=10)


async def _wait_kind(system: System, command_id: str, kind: str) -> None:
    events = system.events
    async with asyncio.timeout(20), events.changed:
        await events.changed.wait_for(lambda: kind in events.kinds(command_id))


@dataclass
class _Kept:
    """A letter as it was in the queue; `headers` without `x-delivery-count`."""

    body: bytes
    headers: Mapping[str, Any]
    message_id: str | None
    content_type: str | None
    delivery_count: int


async def _drain(system: System) -> list[_Kept]:
    kept = []
    while (delivery := await system.broker.get(QUEUE)) is not None:
        headers = {k: v for k, v in delivery.headers.items() if k != "x-delivery-count"}
        count = delivery.headers.get("x-delivery-count", 0)
        kept.append(
            _Kept(delivery.body, headers, delivery.message_id, delivery.content_type, count)
        )
        await delivery.ack()
    return kept


def _letter_headers(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "x-flowgate-reason": f"synthetic {i}",
        "x-flowgate-error-kind": "invalid",
        "x-flowgate-attempts": 1,
        "x-flowgate-dead-at": datetime.now(UTC).isoformat(),
        "x-flowgate-queue": "flowgate.unrouted",
        ROUTING_KEY_HEADER: "x",
        **extra,
    }


async def _put(
    system: System,
    body: bytes,
    headers: Mapping[str, Any],
    *,
    routing_key: str = "x",
    message_id: str | None = None,
    content_type: str | None = "application/cloudevents+json",
) -> None:
    message = OutgoingMessage(
        body=body, content_type=content_type, headers=dict(headers), message_id=message_id
    )
    await system.broker.publish(DEAD_EXCHANGE, routing_key, message)


async def _synthetic(system: System, n: int, **headers: Any) -> list[bytes]:
    """`n` dead letters as flowgate writes them, for commands nobody will replay here."""
    bodies = []
    for i in range(n):
        body = json.dumps(
            {"specversion": "1.0", "id": f"synthetic-{i}-{uuid.uuid4()}", "type": "flowgate.x"}
        ).encode()
        await _put(system, body, _letter_headers(i, **headers))
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
    assert terminal["data"]["error"]["kind"] == "rejected"
    await _wait_length(system, already + 1)
    return command_id, terminal["data"]["error"]["message"]


def _table(out: str) -> tuple[list[dict[str, str]], list[str]]:
    """The rows of `flowgate dlq list` by column, checking they are aligned under the header;
    and the lines after the table."""
    lines = out.splitlines()
    header = lines[0]
    assert header.split("  ")[0] == "POS"
    offsets = [header.index(name) for name in COLUMNS]
    assert offsets == sorted(offsets)
    rows = []
    rest = []
    for line in lines[1:]:
        if not re.match(r"\d+  ", line):
            rest.append(line)
            continue
        for offset in offsets[1:]:
            # Every cell starts exactly under its heading, after a gap.
            assert line[offset - 2 : offset] == "  " and line[offset] != " ", (line, offset)
        bounds = [*offsets, len(line)]
        rows.append(
            {name: line[bounds[i] : bounds[i + 1]].strip() for i, name in enumerate(COLUMNS)}
        )
    return rows, rest


# ------------------------------------------------------------------------------ replay


async def test_a_replay_runs_under_a_new_id_with_replayof_on_every_event(system: System) -> None:
    system.sims.inject(Fault(route="pbsm.trigger", status=400))
    old = await system.publish("trigger-batch", {"batch": "B-DLQ"})
    failed = await system.events.terminal(old)
    assert failed["data"]["error"]["kind"] == "rejected"
    await _wait_length(system, 1)

    code, out, _ = await _dlq(system, "list")
    assert code == 0
    rows, rest = _table(out)
    assert [(r["POS"], r["ID"], r["TYPE"], r["KIND"], r["ATTEMPTS"]) for r in rows] == [
        ("1", old, "trigger-batch", "rejected", "1")
    ]
    assert rows[0]["QUEUE"] == "flowgate.cmd.trigger-batch"
    assert rest == ["1 dead letter"]

    code, out, _ = await _dlq(system, "show", old)
    assert code == 0
    assert '"batch": "B-DLQ"' in out  # the body, pretty-printed
    assert "routing key: trigger-batch" in out

    system.sims.clear_faults()
    new = replay_id(old)
    assert new != old
    code, out, err = await _dlq(system, "replay", old)
    assert (code, err) == (0, ""), err
    assert f"replayed {old} (trigger-batch) as {new} to flowgate.commands trigger-batch" in out
    assert "replayed 1 of 1 selected; 0 left in the DLQ" in out

    succeeded = await system.events.terminal(new)
    assert succeeded["type"] == "flowgate.trigger-batch.succeeded"
    run = system.events.by_command[new]
    assert {"accepted", "succeeded"} <= set(system.events.kinds(new))
    assert [(e["subject"], e.get("replayof")) for e in run] == [(new, old)] * len(run)
    # The old id keeps the one terminal event it had; the vendor ran once more, for the new id.
    assert system.events.kinds(old) == ["failed"]
    assert len(system.sims.ledger.entries("pbsm.trigger")) == 2
    await _wait_length(system, 0)


async def test_replaying_the_same_letter_twice_triggers_the_vendor_once(system: System) -> None:
    old, _ = await _rejected_command(system)
    # The same command dead-lettered twice: two letters, one body, two letter ids.
    delivery = await system.broker.get(QUEUE)
    assert delivery is not None
    for _ in range(2):
        headers = {**delivery.headers, LETTER_ID_HEADER: str(uuid.uuid4())}
        await _put(system, delivery.body, headers, routing_key=delivery.routing_key)
    await delivery.ack()
    await _wait_length(system, 2)
    system.sims.clear_faults()
    new = replay_id(old)

    code, out, err = await _dlq(system, "replay", "--pos", "1")
    assert code == 0, err
    assert f"as {new}" in out and "1 left in the DLQ" in out
    first = await system.events.terminal(new)
    assert first["type"] == "flowgate.add-paylink.succeeded"

    code, out, err = await _dlq(system, "replay", old)
    assert code == 0, err
    assert f"as {new}" in out and "0 left in the DLQ" in out
    # The worker answers the second replay from the idempotency store: the same event again.
    events = system.events
    async with asyncio.timeout(20), events.changed:
        await events.changed.wait_for(lambda: len(events.by_command[new]) == 2)
    assert [e["id"] for e in events.by_command[new]] == [first["id"], first["id"]]
    assert len(system.sims.ledger.entries("tmf622.patch")) == 2  # the refused call and one run
    assert events.kinds(old) == ["failed"]


async def test_a_mismatch_goes_back_to_its_routing_key_and_is_refused_again(
    system: System,
) -> None:
    old = str(uuid.uuid4())
    body, content_type = encode_command(
        "add-paylink",
        {"business_id": "PR", "order_id": "O-MIS", "payment_link": "p"},
        command_id=old,
    )
    await system.publish_raw("trigger-batch", body, content_type=content_type)
    refused = await system.events.terminal(old)
    assert refused["data"]["error"]["kind"] == "invalid"
    await _wait_length(system, 1)

    # Refused as invalid: only with --force.
    code, out, err = await _dlq(system, "replay", "--all")
    assert code == 1
    assert f"skipped {old}: it was refused as invalid" in err and "--force" in err
    assert "replayed 0 of 1 selected; 1 left in the DLQ" in out
    assert await system.broker.queue_length(QUEUE) == 1

    code, out, err = await _dlq(system, "replay", old, "--force")
    assert (code, err) == (0, ""), err
    new = replay_id(old)
    assert f"as {new} to flowgate.commands trigger-batch" in out
    again = await system.events.terminal(new)
    assert again["data"]["error"]["kind"] == "invalid"
    assert again.get("replayof") == old, "a refused replay still says what it replays"
    assert "does not match routing key 'trigger-batch'" in again["data"]["error"]["message"]
    # Dead-lettered again, as the replay it is, under the same routing key.
    await _wait_length(system, 1)
    [letter] = await _drain(system)
    replayed = json.loads(letter.body)
    assert (replayed["id"], replayed["replayof"]) == (new, old)
    assert {k: v for k, v in replayed.items() if k not in ("id", "replayof")} == {
        k: v for k, v in json.loads(body).items() if k != "id"
    }
    assert letter.headers[ROUTING_KEY_HEADER] == "trigger-batch"
    assert system.sims.ledger.entries("tmf622.patch") == []
    assert system.sims.ledger.entries("pbsm.trigger") == []
    assert system.events.kinds(old) == ["failed"]


async def test_a_poll_request_goes_back_to_the_poll_queue_and_resumes(system: System) -> None:
    command_id = await system.publish("trigger-batch", {"batch": "B-POLL"})
    succeeded = await system.events.terminal(command_id)
    assert succeeded["type"] == "flowgate.trigger-batch.succeeded"
    status_calls = len(system.sims.ledger.entries("pbsm.status"))
    request = {
        "command_id": command_id,
        "command_type": "trigger-batch",
        "connection": "default",
        "vendor_ref": succeeded["data"]["vendor_ref"],
        "started_at": time.time(),
        "deadline": time.time() + 60,
    }
    await _put(
        system,
        json.dumps(request).encode(),
        {
            "x-flowgate-error-kind": "internal",
            "x-flowgate-reason": "stopped following",
            "x-flowgate-queue": "flowgate.poll",
            ROUTING_KEY_HEADER: "d0.flowgate.poll",
        },
        routing_key="d0.flowgate.poll",
        message_id=f"poll:{command_id}:0",
        content_type="application/json",
    )
    await _wait_length(system, 1)

    code, out, err = await _dlq(system, "replay", command_id)
    assert (code, err) == (0, ""), err
    assert (
        f"replayed {command_id} (trigger-batch) (poll request, same command id) to "
        "flowgate.retry d0.flowgate.poll"
    ) in out
    # Resumed: the poller finds the recorded outcome and repeats it (the same event), without
    # another status call.
    events = system.events
    async with asyncio.timeout(20), events.changed:
        await events.changed.wait_for(lambda: events.kinds(command_id).count("succeeded") == 2)
    terminals = [e for e in events.by_command[command_id] if e["type"].endswith(".succeeded")]
    assert {e["id"] for e in terminals} == {succeeded["id"]}
    assert len(system.sims.ledger.entries("pbsm.status")) == status_calls
    await _wait_length(system, 0)


async def test_replay_takes_only_the_selected_and_keeps_the_rest_in_order(system: System) -> None:
    before = await _synthetic(system, 2)
    command_id, _ = await _rejected_command(system, already=2)
    after = await _synthetic(system, 2)
    await _wait_length(system, 5)
    system.sims.clear_faults()

    code, out, err = await _dlq(system, "replay", "--kind", "rejected")
    assert code == 0, err
    assert "replayed 1 of 1 selected; 4 left in the DLQ" in out
    await _wait_kind(system, replay_id(command_id), "succeeded")
    kept = await _drain(system)
    assert [k.body for k in kept] == before + after
    assert [k.delivery_count for k in kept] == [0] * 4


async def test_replay_refuses_unknown_selections_and_bad_usage(system: System) -> None:
    await _synthetic(system, 1)
    await _wait_length(system, 1)
    code, _, err = await _dlq(system, "replay", "no-such-id")
    assert code == 1 and "no dead letter with command id or message id 'no-such-id'" in err
    code, _, err = await _dlq(system, "replay", "--pos", "2")
    assert code == 1 and "no dead letter at position 2; there is 1" in err
    code, _, err = await _dlq(system, "replay")
    assert code == 2 and "--all" in err
    code, _, err = await _dlq(system, "replay", "--all", "--pos", "1")
    assert code == 2
    assert await system.broker.queue_length(QUEUE) == 1


async def test_an_unknown_kind_is_a_usage_error(amqp_url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    settings = fast_settings(amqp_url, "http://127.0.0.1:9")
    code = await dlq.run(_args("replay", "--kind", "nonsense"), settings, out=out, err=err)
    assert code == 2
    assert "unknown kind 'nonsense'" in err.getvalue()
    assert all(kind in err.getvalue() for kind in KINDS)
    assert out.getvalue() == ""


# ------------------------------------------------------------------------- list, show


async def test_looking_leaves_every_letter_exactly_as_it_was(system: System) -> None:
    died = datetime(2026, 11, 22, 5, 42, 10, tzinfo=UTC)
    published: list[tuple[bytes, dict[str, Any], str]] = []
    for i in range(4):
        text = json.dumps({"specversion": "1.0", "id": f"look-{i}", "type": "flowgate.x"})
        headers = _letter_headers(i, **{LETTER_ID_HEADER: str(uuid.uuid4())})
        published.append((text.encode(), headers, f"m-{i}"))
    # One as RabbitMQ dead-letters: x-death, no flowgate headers, no letter id.
    published.insert(
        2,
        (
            json.dumps({"specversion": "1.0", "id": "look-rabbit", "type": "flowgate.y"}).encode(),
            {
                "x-first-death-reason": "delivery_limit",
                "x-first-death-queue": "flowgate.cmd.trigger-batch",
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
            "m-rabbit",
        ),
    )
    for letter, headers, message_id in published:
        await _put(system, letter, headers, message_id=message_id, routing_key="trigger-batch")
    await _wait_length(system, 5)

    code, first, _ = await _dlq(system, "list")
    assert code == 0
    code, second, _ = await _dlq(system, "list")
    assert code == 0
    assert first == second  # same letters, same positions
    rows, rest = _table(first)
    assert [r["ID"] for r in rows] == [json.loads(b)["id"] for b, _, _ in published]
    assert [r["POS"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[2]["KIND"] == "delivery_limit"
    assert rest == ["5 dead letters"]
    code, _, _ = await _dlq(system, "show", "--pos", "3")
    assert code == 0

    kept = await _drain(system)
    assert [k.body for k in kept] == [b for b, _, _ in published]
    for k, (_, headers, message_id) in zip(kept, published, strict=True):
        # Never delivered before (RabbitMQ 3.10 says 0 on a first delivery; a requeue adds 1).
        assert k.delivery_count == 0
        assert (k.message_id, k.content_type) == (message_id, "application/cloudevents+json")
        # Exactly as published; the one without a letter id got one, and its routing key.
        added = {key: v for key, v in k.headers.items() if key not in headers}
        assert {key: k.headers[key] for key in headers} == headers
        if LETTER_ID_HEADER in headers:
            assert added == {}
        else:
            assert set(added) == {LETTER_ID_HEADER, ROUTING_KEY_HEADER}
            assert added[ROUTING_KEY_HEADER] == "trigger-batch"


async def test_list_honours_limit(system: System) -> None:
    bodies = await _synthetic(system, 5)
    await _wait_length(system, 5)
    code, out, _ = await _dlq(system, "list", "--limit", "3")
    assert code == 0
    rows, rest = _table(out)
    assert [r["ID"] for r in rows] == [json.loads(b)["id"] for b in bodies[:3]]
    assert rest == ["5 dead letters (first 3 shown; see --limit)"]
    assert [k.body for k in await _drain(system)] == bodies


async def test_show_cuts_long_bodies_unless_full(system: System) -> None:
    blob = "0123456789" * 1000
    big = json.dumps(
        {"specversion": "1.0", "id": "big", "type": "flowgate.x", "data": {"blob": blob}}
    ).encode()
    await _put(system, big, _letter_headers(0))
    await _synthetic(system, 1)
    await _wait_length(system, 2)

    code, out, _ = await _dlq(system, "show", "big")
    assert code == 0
    assert blob not in out
    printed = out.split("body:\n", 1)[1]
    text, note = printed.rstrip("\n").rsplit("\n", 1)
    assert len(text) == dlq.SHOW_LIMIT
    assert note.startswith("[body cut: ") and "--full shows all" in note
    cut = int(note.split()[2])
    assert cut == len(json.dumps(json.loads(big), indent=2)) - dlq.SHOW_LIMIT

    code, out, _ = await _dlq(system, "show", "big", "--full")
    assert code == 0
    assert blob in out and "body cut" not in out
    code, out, _ = await _dlq(system, "show", "--pos", "2")
    assert code == 0 and "body cut" not in out
    assert [k.body for k in await _drain(system)][:1] == [big]


async def test_a_letter_without_a_readable_id_is_selected_by_position_or_message_id(
    system: System,
) -> None:
    [first] = await _synthetic(system, 1)
    garbage = b"\xff{ not json"
    await _put(system, garbage, _letter_headers(1), message_id="m-garbage")
    [last] = await _synthetic(system, 1)
    await _wait_length(system, 3)

    code, out, _ = await _dlq(system, "list")
    rows, _ = _table(out)
    assert (rows[1]["POS"], rows[1]["ID"]) == ("2", "<no id>")
    for selector in (["--pos", "2"], ["m-garbage"]):
        code, out, err = await _dlq(system, "show", *selector)
        assert (code, err) == (0, ""), selector
        assert "position: 2" in out and "message id: m-garbage" in out
        assert "{ not json" in out
        assert "--- dead letter" not in out  # that one, and only that one
    # It cannot be given a new id, so it is not replayed, even with --force; it stays.
    for force in ([], ["--force"]):
        code, out, err = await _dlq(system, "replay", "--pos", "2", *force)
        assert code == 1
        assert "skipped <no id> (message id m-garbage, #2): it has no id to replace" in err
        assert "--force" not in err
    assert [k.body for k in await _drain(system)] == [first, garbage, last]


async def test_a_duplicate_letter_is_dropped(system: System) -> None:
    letter_id = str(uuid.uuid4())
    [a] = await _synthetic(system, 1, **{LETTER_ID_HEADER: letter_id})
    [b] = await _synthetic(system, 1)
    # A crash between copying `a` and acking it would leave it twice, with one letter id.
    await _put(system, a, _letter_headers(0, **{LETTER_ID_HEADER: letter_id}))
    await _wait_length(system, 3)

    code, out, _ = await _dlq(system, "list")
    assert code == 0
    rows, rest = _table(out)
    assert [r["ID"] for r in rows] == [json.loads(a)["id"], json.loads(b)["id"]]
    assert rest[0] == "2 dead letters"
    assert rest[1].startswith("dropped 1 duplicate ")
    await _wait_length(system, 2)
    code, out, _ = await _dlq(system, "list")
    assert "duplicate" not in out
    assert [k.body for k in await _drain(system)] == [a, b]


# ------------------------------------------------------------------------------ purge


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
    assert await _dlq(system, "list") == (0, "0 dead letters\n", "")


def test_list_rejects_a_bad_limit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args("list", "--limit", "0")
    assert "must be at least 1" in capsys.readouterr().err
