"""A command redelivered after its connection was renamed or removed is answered in agreement
with everything else that answers it (found by the cluster chaos run: a run triggered on the
old name got `failed` invalid from the redelivery and `succeeded` from its poll chain)."""

from __future__ import annotations

import uuid

from contracts import EventData, EventKind, encode_command
from tests.conftest import Events, collect_events, fast_settings
from tests.quiet import QuietBroker
from workers.app import Flowgate
from workers.broker.base import OutgoingMessage
from workers.publisher import Context
from workers.simulators import RunningSimulators
from workers.topology import COMMANDS_EXCHANGE


async def _system(sims: RunningSimulators) -> tuple[Flowgate, QuietBroker, Events]:
    broker = QuietBroker()
    app = Flowgate(fast_settings("amqp://unused/", sims.base_url), broker)
    await app.connect()
    events = await collect_events(broker)
    await app.start_worker(["trigger-batch"])
    return app, broker, events


async def _send(broker: QuietBroker, command_id: str) -> None:
    body, content_type = encode_command(
        "trigger-batch", {"batch": "B1"}, command_id=command_id, connection="renamed-away"
    )
    message = OutgoingMessage(body=body, content_type=content_type, message_id=command_id)
    await broker.publish(COMMANDS_EXCHANGE, "trigger-batch", message)


def _terminals(events: Events, command_id: str) -> list[str]:
    return [k for k in events.kinds(command_id) if k in ("succeeded", "failed", "cancelled")]


async def test_a_started_run_gets_one_answer_whoever_answers_first(
    sims: RunningSimulators,
) -> None:
    app, broker, events = await _system(sims)
    try:
        command_id = str(uuid.uuid4())
        run = {"command_type": "trigger-batch", "connection": "renamed-away"}
        await app.store.record_trigger(command_id, {"batch": "B1"}, run=run)
        await _send(broker, command_id)
        await events.terminal(command_id)
        await broker.until_at_rest()
        # The poll chain of that run, on a process that still had the connection, ends it.
        data = EventData(
            command_id=command_id,
            command_type="trigger-batch",
            connection="renamed-away",
            vendor_ref={"batch": "B1"},
            status="COMPLETED",
        )
        await app.outcomes.finish(EventKind.SUCCEEDED, data, Context())
        await broker.until_at_rest()
        assert _terminals(events, command_id) == ["failed", "failed"]
        assert (await app.store.outcome(command_id) or {})["kind"] == "failed"
    finally:
        await app.stop()


async def test_a_finished_run_gets_its_outcome_again(sims: RunningSimulators) -> None:
    app, broker, events = await _system(sims)
    try:
        command_id = str(uuid.uuid4())
        data = EventData(
            command_id=command_id,
            command_type="trigger-batch",
            connection="renamed-away",
            vendor_ref={"batch": "B1"},
            status="COMPLETED",
        )
        await app.store.record_outcome(
            command_id, {"kind": "succeeded", "data": data.model_dump(mode="json")}
        )
        await _send(broker, command_id)
        await events.terminal(command_id)
        await broker.until_at_rest()
        assert _terminals(events, command_id) == ["succeeded"]
    finally:
        await app.stop()


async def test_a_new_command_on_an_unknown_connection_is_invalid_and_not_recorded(
    sims: RunningSimulators,
) -> None:
    app, broker, events = await _system(sims)
    try:
        command_id = str(uuid.uuid4())
        await _send(broker, command_id)
        event = await events.terminal(command_id)
        assert event["data"]["error"]["kind"] == "invalid"
        assert "renamed-away" in event["data"]["error"]["message"]
        assert await app.store.outcome(command_id) is None
    finally:
        await app.stop()
