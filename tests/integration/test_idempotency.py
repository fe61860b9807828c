"""Idempotent triggers keyed by command id, with the shared Redis store."""

from __future__ import annotations

import asyncio

from contracts import TriggerBatch
from tests.conftest import System, fast_settings, running_system
from workers.simulators import RunningSimulators


def _terminals(system: System, command_id: str) -> list[dict[str, object]]:
    return [
        e
        for e in system.events.by_command.get(command_id, [])
        if e["type"].rsplit(".", 1)[1] in ("succeeded", "failed", "cancelled")
    ]


async def test_republished_command_gets_the_same_outcome_without_a_second_run(
    system: System,
) -> None:
    command_id = await system.publish("trigger-batch", {"batch": "ONCE"})
    first = await system.events.terminal(command_id)
    await system.publish("trigger-batch", {"batch": "ONCE"}, command_id=command_id)
    async with asyncio.timeout(10):
        while len(_terminals(system, command_id)) < 2:
            await asyncio.sleep(0.05)
    again = _terminals(system, command_id)[1]
    assert again["id"] == first["id"] and again["type"] == first["type"]
    assert again["data"] == first["data"]
    assert len(system.sims.ledger.entries("pbsm.trigger")) == 1


async def test_concurrent_duplicates_trigger_once(system: System) -> None:
    command_id = await system.publish(
        "run-partner", {"partner_name": "Twin", "direction": "INBOUND"}
    )
    await system.publish(
        "run-partner", {"partner_name": "Twin", "direction": "INBOUND"}, command_id=command_id
    )
    await system.events.terminal(command_id)
    await asyncio.sleep(1.5)
    assert len(system.sims.ledger.entries("informatica.run")) == 1
    assert {e["type"] for e in _terminals(system, command_id)} == {"flowgate.run-partner.succeeded"}


async def test_redelivered_command_resumes_from_the_recorded_reference(system: System) -> None:
    # A worker triggered the batch and recorded the reference, then died before acking.
    adapter = system.app.registry.handler("trigger-batch", "default")
    command_id = "resume-1"
    await system.app.store.claim(command_id, owner="dead-worker", lease=30)
    triggered = await adapter.trigger(TriggerBatch(batch="RESUME"), command_id=command_id)
    await system.app.store.record_trigger(command_id, dict(triggered.vendor_ref))

    await system.publish("trigger-batch", {"batch": "RESUME"}, command_id=command_id)
    terminal = await system.events.terminal(command_id)
    assert terminal["type"] == "flowgate.trigger-batch.succeeded"
    assert terminal["data"]["vendor_ref"] == dict(triggered.vendor_ref)
    assert system.events.kinds(command_id)[0] == "accepted"
    assert len(system.sims.ledger.entries("pbsm.trigger")) == 1  # only the dead worker's


async def test_lapsed_claim_is_an_unknown_outcome_or_a_retry_by_policy(
    amqp_url: str, sims: RunningSimulators
) -> None:
    settings = fast_settings(
        amqp_url,
        sims.base_url,
        store="redis",
        connections={"tmf622": {"retrying": {"unknown_outcome": "retry"}}},
    )
    async with running_system(settings, sims.sims) as system:
        # A worker claimed each id and died mid-call; its lease has run out.
        ids = ("lapsed-batch", "lapsed-paylink", "lapsed-paylink-retry")
        for command_id in ids:
            await system.app.store.claim(command_id, owner="dead-worker", lease=0.1)
        await asyncio.sleep(0.2)
        await system.publish("trigger-batch", {"batch": "LAPSED"}, command_id="lapsed-batch")
        paylink = {"business_id": "PR", "order_id": "L1", "payment_link": "p"}
        await system.publish("add-paylink", paylink, command_id="lapsed-paylink")
        await system.publish(
            "add-paylink", paylink, command_id="lapsed-paylink-retry", connection="retrying"
        )
        batch = await system.events.terminal("lapsed-batch")
        assert batch["data"]["error"]["kind"] == "unknown_outcome"
        assert system.sims.ledger.entries("pbsm.trigger") == []
        # TMF622's default is `fail` too (its document never says it deduplicates) ...
        paylink_failed = await system.events.terminal("lapsed-paylink")
        assert paylink_failed["data"]["error"]["kind"] == "unknown_outcome"
        # ... and a connection set to `retry` PATCHes again.
        retried = await system.events.terminal("lapsed-paylink-retry")
        assert retried["type"] == "flowgate.add-paylink.succeeded"
        patches = system.sims.ledger.entries("tmf622.patch")
        assert [p.headers["x-correlation-id"] for p in patches] == ["lapsed-paylink-retry"]


async def test_live_claim_makes_a_duplicate_wait_not_trigger(system: System) -> None:
    # Another worker is calling the vendor right now (live lease): the copy must wait for it.
    await system.app.store.claim("busy-1", owner="other-worker", lease=1.0)
    await system.publish("trigger-batch", {"batch": "BUSY"}, command_id="busy-1")
    await asyncio.sleep(0.5)
    assert system.sims.ledger.entries("pbsm.trigger") == []
    terminal = await system.events.terminal("busy-1")  # the lease lapsed with no record
    assert terminal["data"]["error"]["kind"] == "unknown_outcome"
