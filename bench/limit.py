"""`python -m bench.limit`: the limit — the smallest aio-pika + httpx loop doing flowgate's work.

Per command: consume from the same `flowgate.cmd.<type>` queue, trigger the vendor, sleep
through flowgate's poll schedule in-process, make the same status calls, publish the terminal
event to `flowgate.events` with a publisher confirm, then ack. No validation, no retries, no
durable poll state, no framework: what is left is the unavoidable broker and HTTP work.
Vendor base URLs come from the same `FLOWGATE_<VENDOR>__DEFAULT__BASE_URL` variables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import httpx
import uvloop
from httpx_aiohttp import AiohttpTransport

from bench.vendors import PLANS, Call, pbsm_token_call
from bench.workload import MIX, VENDORS, poll_delay

__all__ = ["main"]


class Limit:
    def __init__(self, transport: str) -> None:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.http: dict[str, httpx.AsyncClient] = {}
        self.base: dict[str, str] = {}
        for vendor in VENDORS:
            self.base[vendor] = os.environ[f"FLOWGATE_{vendor.upper()}__DEFAULT__BASE_URL"]
            if transport == "aiohttp":
                self.http[vendor] = httpx.AsyncClient(
                    transport=AiohttpTransport(limits=limits), timeout=30.0
                )
            else:
                self.http[vendor] = httpx.AsyncClient(limits=limits, timeout=30.0)
        self.token: str | None = None
        self.token_lock = asyncio.Lock()
        self.events: Any = None
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # a test's clock

    async def send(self, call: Call) -> Any:
        headers = call.headers
        if call.needs_token:
            async with self.token_lock:
                if self.token is None:
                    self.token = (await self.send(pbsm_token_call()))["access_token"]
            headers = {**headers, "Authorization": f"Bearer {self.token}"}
        response = await self.http[call.vendor].request(
            call.method,
            self.base[call.vendor] + call.path,
            headers=headers,
            json=call.json,
            content=call.content,
        )
        response.raise_for_status()
        return response.json()

    async def follow(
        self, command_type: str, data: dict[str, Any], command_id: str
    ) -> tuple[str, int]:
        """Trigger the command's vendor and follow the run to its end: (state, status polls)."""
        plan = PLANS[command_type]
        step = plan.triggered(await self.send(plan.trigger(data, command_id)), data)
        polls = 0
        while step.state == "running":
            await self.sleep(poll_delay(polls))
            polls += 1
            step = plan.status(step.ref, await self._round(plan.status_calls(step.ref)))
            while step.state == "more":
                step = plan.status(step.ref, await self._round(plan.status_calls(step.ref)))
        return step.state, polls

    async def handle(self, message: Any) -> None:
        try:
            event = json.loads(message.body)
            command_type = event["type"].removeprefix("flowgate.")
            state, polls = await self.follow(command_type, event["data"], event["id"])
            data = {"command_id": event["id"], "command_type": command_type}
            body = {"type": f"{event['type']}.{state}", "data": data | {"polls": polls}}
            await self.events.publish(
                aio_pika.Message(
                    json.dumps(body).encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=f"{command_type}.{state}",
            )
            await message.ack()
        except Exception:
            await message.nack(requeue=True)
            raise

    async def _round(self, calls: list[Call]) -> list[Any]:
        return list(await asyncio.gather(*(self.send(c) for c in calls)))


async def run(url: str, prefetch: int, transport: str) -> None:
    limit = Limit(transport)
    connection = await aio_pika.connect_robust(url)
    publishing = await connection.channel(publisher_confirms=True)
    limit.events = await publishing.get_exchange("flowgate.events", ensure=False)
    for command_type in MIX:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(f"flowgate.cmd.{command_type}", passive=True)
        await queue.consume(limit.handle)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await connection.close()
    for client in limit.http.values():
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.limit")
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--prefetch", type=int, default=2048, help="per command queue")
    parser.add_argument("--transport", choices=("aiohttp", "httpx"), default="aiohttp")
    args = parser.parse_args()
    # The same event loop flowgate runs on, so the comparison is of the code, not the loop.
    uvloop.run(run(args.amqp_url, args.prefetch, args.transport))


if __name__ == "__main__":
    main()
