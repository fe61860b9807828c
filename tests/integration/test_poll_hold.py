"""On RabbitMQ: a stop hands held runs back at once, and another poller finishes them."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import fast_settings, running_system
from workers.demo import SAMPLE_COMMANDS
from workers.simulators import RunningSimulators


async def test_stop_hands_held_runs_back_and_the_next_poller_finishes_them(
    amqp_url: str, sims: RunningSimulators
) -> None:
    sims.sims.config.robusta.run_seconds = 4.0
    # Polls 3 s apart, held (hold 5 s): without the hand-back a stop would wait ~3 s per run.
    slow_polls = {"poll": {"first_delay": 3.0, "factor": 1.0, "max_delay": 3.0}}
    settings = fast_settings(
        amqp_url,
        sims.base_url,
        store="redis",
        connections={"robusta": {"default": slow_polls}},
        poller={"hold": 5.0},
    )
    async with running_system(settings, sims.sims) as system:
        ids = [
            await system.publish("start-process", SAMPLE_COMMANDS["start-process"])
            for _ in range(5)
        ]
        async with asyncio.timeout(10):
            while system.app.poller.held < 5:
                await asyncio.sleep(0.05)
        started = time.monotonic()
        await system.app.stop()
        assert time.monotonic() - started < 1.5, "stop waited out the held runs"
    assert sims.sims.ledger.entries("robusta.status") == [], "nothing was due yet"
    async with running_system(settings, sims.sims, purge=False) as system:
        for command_id in ids:
            event = await system.events.terminal(command_id, timeout=20)
            assert event["type"] == "flowgate.start-process.succeeded"
        await asyncio.sleep(0.5)
        for command_id in ids:
            assert system.events.kinds(command_id).count("succeeded") == 1
    assert len(sims.sims.ledger.entries("robusta.start")) == 5, "no run was triggered twice"
