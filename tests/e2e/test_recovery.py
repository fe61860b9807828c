"""After a broker restart every process re-establishes its consumers (checked with
`rabbitmqctl list_consumers`, not the logs) and work goes on."""

from __future__ import annotations

import asyncio
import json
import subprocess

from contracts import encode_command
from tests.e2e.test_processes import _consumers, _env, _processes, _wait_consumers, _watch_events
from workers.broker import OutgoingMessage
from workers.simulators import RunningSimulators
from workers.topology import COMMANDS_EXCHANGE

WORK_QUEUES = [
    "flowgate.cmd.add-paylink",
    "flowgate.cmd.run-partner",
    "flowgate.cmd.start-process",
    "flowgate.cmd.trigger-batch",
    "flowgate.unrouted",
    "flowgate.poll",
]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


async def test_consumers_come_back_after_a_broker_restart(
    amqp_url: str, sims: RunningSimulators
) -> None:
    env = _env(amqp_url, sims.base_url)
    vhost = amqp_url.rsplit("/", 1)[1]
    async with _processes(["worker"], ["poller"], env=env) as procs:
        for queue in WORK_QUEUES:
            await _wait_consumers(vhost, queue, 1)
        await asyncio.to_thread(_rabbitmqctl, "stop_app")
        try:
            await asyncio.sleep(2)
        finally:
            await asyncio.to_thread(_rabbitmqctl, "start_app")
            await asyncio.to_thread(_rabbitmqctl, "await_startup")
        for queue in WORK_QUEUES:
            await _wait_consumers(vhost, queue, 1)
        assert all(p.returncode is None for p in procs), "a process died with the broker"
        async with _watch_events(amqp_url) as (events, broker):
            body, content_type = encode_command("trigger-batch", {"batch": "AFTER"})
            await broker.publish(
                COMMANDS_EXCHANGE,
                "trigger-batch",
                OutgoingMessage(body=body, content_type=content_type),
            )
            terminal = await events.terminal(json.loads(body)["id"], timeout=60)
        assert terminal["type"] == "flowgate.trigger-batch.succeeded"
        # Exactly one consumer per queue: the restart did not leave duplicates behind.
        for queue in WORK_QUEUES:
            assert await asyncio.to_thread(_consumers, vhost, queue) == 1
