"""A worker's connection to RabbitMQ lost while a vendor call is in flight: the call's answer
is still recorded, and the command comes again and is followed to its end, triggered once.

aiormq cancels a consumer's tasks when their channel closes. Cancelled there, the handling
stopped between the vendor's answer and its record, and the command came back to a claim
with no run recorded: `unknown_outcome`, though the vendor had started the run.
"""

from __future__ import annotations

import asyncio

from contracts import TriggerBatch
from flowgate_client.aio import Client
from tests.conftest import _rabbitmqctl, fast_settings, private_vhost
from tests.waiting import poll_until
from workers.app import Flowgate, make_broker
from workers.simulators import Fault, RunningSimulators

SLOW_TRIGGER = 1.5  # seconds the vendor takes to answer the trigger


async def test_a_trigger_answered_after_the_connection_was_lost_is_followed_not_lost(
    sims: RunningSimulators,
) -> None:
    async with private_vhost("connection-lost") as url:
        settings = fast_settings(url, sims.base_url, store="redis")
        app = Flowgate(settings, make_broker(settings))
        await app.start_worker(["trigger-batch"])
        await app.start_poller()
        try:
            async with Client(url) as client:
                sims.sims.inject(Fault(route="pbsm.trigger", latency=SLOW_TRIGGER, times=1))
                handle = await client.send(TriggerBatch(batch="B2001"))

                async def in_flight() -> bool:  # the slow trigger has reached the vendor
                    return not sims.sims.faults.active()

                await poll_until(in_flight, bool, timeout=30, interval=0.02)
                vhost = url.rsplit("/", 1)[1]
                await asyncio.to_thread(
                    _rabbitmqctl, "close_all_connections", "--vhost", vhost, "test"
                )
                event = await handle.result(timeout=60)
            assert event.kind.value == "succeeded"
            triggers = sims.sims.ledger.entries("pbsm.trigger")
            assert len(triggers) == 1, "triggered once"
        finally:
            await app.stop()
