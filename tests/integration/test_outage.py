"""A Redis outage parks work instead of dead-lettering it; it completes once Redis is back."""

from __future__ import annotations

import asyncio

from tests.conftest import fast_settings, running_system
from workers.simulators import RunningSimulators


async def test_store_outage_parks_commands_until_it_is_back(
    amqp_url: str, sims: RunningSimulators
) -> None:
    settings = fast_settings(amqp_url, sims.base_url, store="redis")
    # An unreachable Redis: nothing listens on port 1.
    settings.idempotency.redis_url = type(settings.idempotency.redis_url)("redis://127.0.0.1:1/0")
    async with running_system(settings, sims.sims) as system:
        command_id = await system.publish("trigger-batch", {"batch": "OUTAGE"})
        await asyncio.sleep(2.5)  # several parked rounds, more than the delivery limit allows
        assert system.events.kinds(command_id) == []
        assert await system.broker.get("flowgate.dead-letters") is None
        assert system.sims.ledger.entries("pbsm.trigger") == []
    # Redis is back (the real one): the parked command comes round and completes.
    settings = fast_settings(amqp_url, sims.base_url, store="redis")
    async with running_system(settings, sims.sims, purge=False) as system:
        terminal = await system.events.terminal(command_id, timeout=30)
        assert terminal["type"] == "flowgate.trigger-batch.succeeded"
