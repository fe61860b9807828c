"""`cancel-run` on real RabbitMQ against the simulators: a PBSM run is interrupted and its
command ends `cancelled` exactly once; vendors that cannot stop runs refuse with the reason
and the run goes on; a cancel racing the run's own end still gives one terminal event each."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import System, fast_settings, running_system
from tests.waiting import poll_until
from workers.commands import COMMANDS
from workers.simulators import RunningSimulators
from workers.topology import DEAD_LETTER_QUEUE, build_topology


async def _quiet(system: System) -> None:
    """Until nothing is in progress and no flowgate queue holds a message (twice in a row):
    a run still followed would have a poll request somewhere."""

    async def depth() -> int:
        total = system.app._in_flight
        for queue in build_topology(COMMANDS).queues:
            if queue.name != DEAD_LETTER_QUEUE:
                total += await system.broker.queue_length(queue.name)
        return total

    for _ in range(2):
        await poll_until(depth, lambda n: n == 0, timeout=20, interval=0.1)


def _terminals(system: System, command_id: str) -> list[str]:
    return [k for k in system.events.kinds(command_id) if k in ("succeeded", "failed", "cancelled")]


async def _accepted(system: System, command_id: str) -> dict[str, Any]:
    async with asyncio.timeout(10), system.events.changed:
        await system.events.changed.wait_for(lambda: "accepted" in system.events.kinds(command_id))
    return system.events.by_command[command_id][0]


async def test_cancel_run_interrupts_a_pbsm_run_which_ends_cancelled_once(system: System) -> None:
    system.sims.config.pbsm.run_seconds = 60  # still going when the cancel comes
    target = await system.publish("trigger-batch", {"batch": "CANCEL1"})
    accepted = await _accepted(system, target)
    cancel = await system.publish("cancel-run", {"command_id": target})

    answered = await system.events.terminal(cancel)
    assert answered["type"] == "flowgate.cancel-run.succeeded"
    assert answered["data"]["result"]["command_id"] == target
    ended = await system.events.terminal(target)
    assert ended["type"] == "flowgate.trigger-batch.cancelled"
    assert ended["data"]["status"] == "INTERRUPTED", "the vendor's final state"
    run_id = accepted["data"]["vendor_ref"]["batch_run_id"]
    interrupts = [e.json for e in system.sims.ledger.entries("pbsm.interrupt")]
    assert interrupts == [{"batchName": "CANCEL1", "batchRunId": run_id}]
    # The poller stopped following it: no status call after the terminal event.
    calls = len(system.sims.ledger.entries("pbsm.status"))
    await _quiet(system)
    assert len(system.sims.ledger.entries("pbsm.status")) == calls
    assert _terminals(system, target) == ["cancelled"]


async def test_vendors_that_cannot_stop_a_run_refuse_and_the_run_goes_on(system: System) -> None:
    for vendor in ("informatica", "robusta"):
        getattr(system.sims.config, vendor).run_seconds = 1.5
    samples = {
        "run-partner": ({"partner_name": "P1", "direction": "INBOUND"}, "Informatica"),
        "start-process": ({"process_name": "Proc1"}, "Robusta"),
    }
    for command_type, (data, vendor) in samples.items():
        target = await system.publish(command_type, data)
        await _accepted(system, target)
        cancel = await system.publish("cancel-run", {"command_id": target})
        refused = await system.events.terminal(cancel)
        assert refused["type"] == "flowgate.cancel-run.failed"
        error = refused["data"]["error"]
        assert error["kind"] == "rejected"
        assert f"{vendor}" in error["message"] and "offers no way to stop" in error["message"]
        ended = await system.events.terminal(target)
        assert ended["type"] == f"flowgate.{command_type}.succeeded"


async def test_cancelling_an_ended_or_unknown_command_is_rejected(system: System) -> None:
    done = await system.publish("add-paylink", {"business_id": "PR", "order_id": "O9",
                                                "payment_link": "https://p/9"})  # fmt: skip
    await system.events.terminal(done)
    for target, says in ((done, "already ended (succeeded)"), ("never-seen", "follows no run")):
        cancel = await system.publish("cancel-run", {"command_id": target})
        refused = await system.events.terminal(cancel)
        error = refused["data"]["error"]
        assert error["kind"] == "rejected" and says in error["message"], error


async def test_a_cancel_racing_the_runs_own_end_gives_one_terminal_event_each(
    amqp_url: str, sims: RunningSimulators
) -> None:
    sims.sims.config.pbsm.run_seconds = 0.6
    settings = fast_settings(amqp_url, sims.base_url, store="redis")
    async with running_system(settings, sims.sims) as system:
        rng = random.Random(7)
        pairs: list[tuple[str, str]] = []

        async def one(i: int) -> None:
            target = await system.publish("trigger-batch", {"batch": f"RACE{i}"})
            await _accepted(system, target)
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # around the run's own end (0.6 s)
            pairs.append((target, await system.publish("cancel-run", {"command_id": target})))

        await asyncio.gather(*(one(i) for i in range(30)))
        outcomes = set()
        for target, cancel in pairs:
            ended = (await system.events.terminal(target))["type"].rsplit(".", 1)[1]
            answered = (await system.events.terminal(cancel))["type"].rsplit(".", 1)[1]
            outcomes.add((ended, answered))
            # A run cancelled was cancelled by this cancel-run, which says it succeeded.
            assert ended in ("succeeded", "cancelled")
            assert ended != "cancelled" or answered == "succeeded"
        await _quiet(system)
        for target, cancel in pairs:
            assert len(_terminals(system, target)) == 1, system.events.kinds(target)
            assert len(_terminals(system, cancel)) == 1, system.events.kinds(cancel)
        assert ("cancelled", "succeeded") in outcomes, "some cancels came in time"


async def test_on_deadline_interrupt_stops_the_vendors_run(
    amqp_url: str, sims: RunningSimulators
) -> None:
    sims.sims.config.pbsm.run_seconds = 60
    settings = fast_settings(
        amqp_url,
        sims.base_url,
        store="redis",
        connections={"pbsm": {"default": {"on_deadline": "interrupt"}}},
    )
    async with running_system(settings, sims.sims) as system:
        deadline = datetime.now(UTC) + timedelta(seconds=1)
        target = await system.publish("trigger-batch", {"batch": "LATE1"}, deadline=deadline)
        ended = await system.events.terminal(target)
        assert ended["type"] == "flowgate.trigger-batch.failed"
        error = ended["data"]["error"]
        assert error["kind"] == "deadline" and "interrupted at the vendor" in error["message"]
        assert [
            (e.json or {})["batchName"] for e in sims.sims.ledger.entries("pbsm.interrupt")
        ] == ["LATE1"]
