"""`flowgate demo`: the whole system in one process, one sample command of each type.

Embedded by default (in-memory broker + simulators on a local port); with `--amqp-url` (or the
settings) the same demo runs through RabbitMQ. Prints each event as it arrives.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any, TextIO

from contracts import TERMINAL_KINDS, EventKind, encode_command
from workers.app import Flowgate, make_broker
from workers.broker.base import Binding, Delivery, OutgoingMessage, Queue, Topology
from workers.commands import COMMANDS
from workers.settings import Settings
from workers.settlement import consumed
from workers.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE
from workers.vendors.pbsm import PbsmConnection

__all__ = ["SAMPLE_COMMANDS", "run_demo"]

# One sample command of each vendor command type, from the command table (the ones flowgate
# answers itself, such as cancel-run, name another command).
SAMPLE_COMMANDS: dict[str, dict[str, Any]] = {
    t: r.example for t, r in COMMANDS.items() if r.vendor is not None
}


def _point_connections_at(settings: Settings, base_url: str) -> None:
    for vendor in COMMANDS.vendors:
        for connection in settings.connections(vendor.name).values():
            connection.base_url = base_url
            if isinstance(connection, PbsmConnection):
                connection.token_url = None


async def run_demo(
    settings: Settings, *, memory: bool, wait: float = 60.0, out: TextIO = sys.stdout
) -> int:
    """Run the demo; 0 when every command got its terminal event within `wait` seconds."""
    from workers.simulators import SimulatorConfig, Simulators, serve

    sims = Simulators(SimulatorConfig())
    async with serve(sims) as server:
        _point_connections_at(settings, server.base_url)
        if memory:
            settings.idempotency.store = "memory"
        broker = make_broker(settings, memory=memory)
        app = Flowgate(settings, broker)
        started = time.monotonic()
        try:
            await app.start_worker(sorted(SAMPLE_COMMANDS))
            await app.start_poller()
            watch = f"flowgate.demo.{uuid.uuid4().hex[:8]}"
            await broker.declare(
                Topology(
                    queues=(Queue(watch, durable=False, arguments={"x-expires": 120_000}),),
                    bindings=(Binding(EVENTS_EXCHANGE, watch, "#"),),
                )
            )
            pending: dict[str, str] = {}
            done = asyncio.Event()

            async def on_event(delivery: Delivery) -> None:
                event = json.loads(delivery.body)
                data = event["data"]
                kind = event["type"].rsplit(".", 1)[-1]
                if data["command_id"] in pending:
                    elapsed = time.monotonic() - started
                    detail = data.get("status") or ""
                    if data.get("error"):
                        detail = f"{data['error']['kind']}: {data['error']['message']}"
                    print(
                        f"{elapsed:6.2f}s  {data['command_type']:<20} {kind:<10} {detail}",
                        file=out,
                        flush=True,
                    )
                    if EventKind(kind) in TERMINAL_KINDS:
                        pending.pop(data["command_id"])
                        if not pending:
                            done.set()
                await consumed(delivery)

            await broker.consume(watch, on_event, prefetch=64)
            for command_type, data in SAMPLE_COMMANDS.items():
                command_id = str(uuid.uuid4())
                pending[command_id] = command_type
                body, content_type = encode_command(
                    command_type, data, command_id=command_id, source="urn:flowgate:demo"
                )
                await broker.publish(
                    COMMANDS_EXCHANGE,
                    command_type,
                    OutgoingMessage(body=body, content_type=content_type, message_id=command_id),
                )
                print(f"  0.00s  {command_type:<20} published  {command_id}", file=out)
            try:
                await asyncio.wait_for(done.wait(), wait)
            except TimeoutError:
                print(
                    f"demo: no terminal event within {wait:.0f} s for "
                    f"{', '.join(sorted(pending.values()))}",
                    file=sys.stderr,
                )
                return 1
            print(f"demo: all {len(SAMPLE_COMMANDS)} commands finished", file=out)
            return 0
        finally:
            await app.stop()
