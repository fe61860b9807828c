"""Bad input never crashes a worker: it is answered `failed` (kind `invalid`) when its id can be
read, and dead-lettered with the reason; the worker then goes on serving good commands."""

from __future__ import annotations

import asyncio
import json
import uuid

from tests.conftest import System


async def _dead_letters(system: System, expected: int) -> list[tuple[dict[str, object], bytes]]:
    """Take dead letters until `expected` arrived (they are confirmed just after the event)."""
    out: list[tuple[dict[str, object], bytes]] = []
    async with asyncio.timeout(10):
        while len(out) < expected:
            delivery = await system.broker.get("flowgate.dead-letters")
            if delivery is None:
                await asyncio.sleep(0.05)
                continue
            out.append((dict(delivery.headers), delivery.body))
            await delivery.ack()
    await asyncio.sleep(0.2)
    assert await system.broker.get("flowgate.dead-letters") is None, (
        "more dead letters than expected"
    )
    return out


async def test_malformed_bodies_are_dead_lettered_and_the_worker_lives(system: System) -> None:
    known_id = str(uuid.uuid4())
    bad: list[tuple[str, bytes, str | None, dict[str, object]]] = [
        ("trigger-batch", b"\xff\xfe not utf-8", "application/cloudevents+json", {}),
        ("trigger-batch", b"{not json", "application/cloudevents+json", {}),
        ("trigger-batch", b'{"specversion": "1.0"}', "application/cloudevents+json", {}),
        (
            "trigger-batch",
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": known_id,
                    "source": "urn:test",
                    "type": "flowgate.add-paylink",
                    "data": {},
                }
            ).encode(),
            "application/cloudevents+json",
            {},
        ),
        ("trigger-batch", b"[" * 100_000, "application/cloudevents+json", {}),
    ]
    for routing_key, body, content_type, headers in bad:
        await system.publish_raw(routing_key, body, content_type=content_type, headers=headers)
    missing_id = await system.publish("add-paylink", {"business_id": "PR"})
    bad_rule_id = await system.publish(
        "run-partner", {"partner_name": "<script>", "direction": "sideways"}
    )

    mismatch = await system.events.terminal(known_id)
    assert mismatch["type"] == "flowgate.add-paylink.failed"
    assert mismatch["data"]["error"]["kind"] == "invalid"
    assert "does not match routing key" in mismatch["data"]["error"]["message"]

    missing = await system.events.terminal(missing_id)
    message = missing["data"]["error"]["message"]
    assert "order_id" in message and "payment_link" in message

    rule = await system.events.terminal(bad_rule_id)
    assert "partner_name" in rule["data"]["error"]["message"]
    assert "direction" in rule["data"]["error"]["message"]

    # The worker is alive: a good command still goes through.
    good = await system.publish(
        "add-paylink", {"business_id": "PR", "order_id": "O", "payment_link": "p"}
    )
    assert (await system.events.terminal(good))["type"] == "flowgate.add-paylink.succeeded"

    dead = await _dead_letters(system, len(bad) + 2)
    for headers, _body in dead:
        assert headers["x-flowgate-error-kind"] == "invalid"
        assert headers["x-flowgate-reason"]
        assert headers["x-flowgate-dead-at"]
    assert {body for _h, body in dead} >= {body for _rk, body, _ct, _h in bad}


async def test_binary_mode_command_is_accepted(system: System) -> None:
    command_id = str(uuid.uuid4())
    await system.publish_raw(
        "add-paylink",
        json.dumps({"business_id": "PR", "order_id": "O2", "payment_link": "p"}).encode(),
        content_type="application/json",
        headers={
            "ce-specversion": "1.0",
            "ce-id": command_id,
            "ce-type": "flowgate.add-paylink",
            "ce-source": "urn:test:binary",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
    )
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.add-paylink.succeeded"
    assert terminal["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_unknown_routing_key_is_kept_and_answered(system: System) -> None:
    command_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": command_id,
            "source": "urn:test",
            "type": "flowgate.launch-rocket",
            "data": {"target": "moon"},
        }
    ).encode()
    await system.publish_raw("launch-rocket", body)
    terminal = await system.events.terminal(command_id)
    assert terminal["_routing_key"] == "unknown.failed"
    assert terminal["data"]["error"]["kind"] == "invalid"
    assert "launch-rocket" in terminal["data"]["error"]["message"]
    [(headers, kept)] = await _dead_letters(system, 1)
    assert kept == body
    assert headers["x-flowgate-queue"] == "flowgate.unrouted"


async def test_unknown_connection_is_invalid(system: System) -> None:
    command_id = await system.publish("trigger-batch", {"batch": "B1"}, connection="pbsm-nowhere")
    terminal = await system.events.terminal(command_id)
    assert terminal["data"]["error"]["kind"] == "invalid"
    assert "pbsm-nowhere" in terminal["data"]["error"]["message"]
    assert system.sims.ledger.entries("pbsm.trigger") == []
