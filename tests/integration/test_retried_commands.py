"""A command that goes round the delay ladder (a vendor's 503, a claim still held, a store
outage) keeps who sent it and who waits for it: its events still reach the client's reply
queue, and a connection's `allowed_publishers` still knows its sender. Before, the copy lost
both: the client waited for an event that only went to `flowgate.events`, and a restricted
connection refused its own publisher's command on the second attempt."""

from __future__ import annotations

import uuid

from contracts import EventKind, TriggerBatch, encode_command
from flowgate_client.aio import Client
from tests.conftest import collect_events, fast_settings, private_vhost
from workers.app import Flowgate, make_broker
from workers.broker.base import OutgoingMessage
from workers.publisher import SENDER_HEADER
from workers.simulators import Fault, RunningSimulators
from workers.topology import COMMANDS_EXCHANGE

RESTRICTED = {"pbsm": {"default": {"allowed_publishers": ["guest"]}}}


async def test_a_retried_command_answers_its_client_and_keeps_its_sender(
    sims: RunningSimulators,
) -> None:
    async with private_vhost("retried") as url:
        settings = fast_settings(url, sims.base_url, store="redis", connections=RESTRICTED)
        app = Flowgate(settings, make_broker(settings))
        await app.start_worker(["trigger-batch"])
        await app.start_poller()
        try:
            sims.sims.inject(Fault(route="pbsm.trigger", status=503, times=1))
            async with Client(url) as client:
                handle = await client.send(TriggerBatch(batch="B2001"))
                event = await handle.result(timeout=60)
            assert event.kind is EventKind.SUCCEEDED
            statuses = [e.status for e in sims.sims.ledger.entries("pbsm.trigger")]
            assert statuses == [503, 200], "retried once, through the delay ladder"
        finally:
            await app.stop()


async def test_a_sender_header_from_a_publisher_proves_nothing(sims: RunningSimulators) -> None:
    async with private_vhost("forged-sender") as url:
        settings = fast_settings(url, sims.base_url, store="redis", connections=RESTRICTED)
        broker = make_broker(settings)
        app = Flowgate(settings, broker)
        await app.connect()
        events = await collect_events(broker)
        await app.start_worker(["trigger-batch"])
        try:
            command_id = str(uuid.uuid4())
            body, content_type = encode_command(
                "trigger-batch", {"batch": "B2001"}, command_id=command_id
            )
            forged = OutgoingMessage(
                body=body,
                content_type=content_type,
                message_id=command_id,
                headers={SENDER_HEADER: "guest"},  # and no user_id
            )
            await broker.publish(COMMANDS_EXCHANGE, "trigger-batch", forged)
            event = await events.terminal(command_id)
            assert event["type"] == "flowgate.trigger-batch.failed"
            assert event["data"]["error"]["kind"] == "rejected"
            assert sims.sims.ledger.entries("pbsm.trigger") == []
        finally:
            await app.stop()
