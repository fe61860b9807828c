"""`python -m bench.micro`: client CPU per operation, each variant beside the one it replaced.

Two hot paths the profile of the fast burst pointed at, measured in one run so machine noise
hits both sides alike:

- the idempotency store: claim + record_trigger + record_outcome per command, as the old code
  did it (MULTI pipelines on redis-py's BlockingConnectionPool) and as `RedisStore` does now
  (Lua scripts behind a semaphore);
- a confirmed persistent publish: aio-pika's `Exchange.publish` and aiormq's `basic_publish`,
  which `AmqpBroker.publish` uses.

Needs Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672 (scripts/services starts them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import redis.asyncio as redis
import uvloop
from pamqp.commands import Basic

from bench.redis_keys import delete_keys_under
from workers.idempotency import RedisStore

__all__ = ["main"]

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
RETENTION_MS = 86_400_000


async def _cpu_per_op(op: Callable[[int], Awaitable[None]], n: int, concurrency: int) -> float:
    """Microseconds of this process's CPU per call of `op`, `concurrency` calls at a time."""
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await op(i)

    await asyncio.gather(*(one(-i - 1) for i in range(min(n, 500))))  # warm up
    started = time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    return (time.process_time() - started) / n * 1e6


class _PipelineStore:
    """The store's three calls as they were before: MULTI pipelines, blocking pool."""

    def __init__(self, prefix: str) -> None:
        pool = redis.BlockingConnectionPool.from_url(
            REDIS_URL, max_connections=64, timeout=10, decode_responses=True
        )
        self.redis = redis.Redis(connection_pool=pool)
        self.prefix = prefix
        self.claim = self.redis.register_script(
            "redis.call('SET', KEYS[2], ARGV[1], 'PX', 60000) "
            "redis.call('HSET', KEYS[1], 'claimed', ARGV[1]) return 0"
        )

    async def command(self, i: int) -> None:
        key, claim_key = f"{self.prefix}cmd:{i}", f"{self.prefix}claim:{i}"
        await self.claim(keys=[key, claim_key], args=["owner"])
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "vendor_ref", json.dumps({"ref": str(i)}))
            pipe.pexpire(key, RETENTION_MS)
            pipe.delete(claim_key)
            await pipe.execute()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "outcome", json.dumps({"kind": "succeeded", "data": {}}))
            pipe.pexpire(key, RETENTION_MS)
            pipe.hget(key, "outcome")
            await pipe.execute()


async def redis_store(n: int, concurrency: int) -> list[tuple[str, float]]:
    prefix = f"flowgate-micro:{uuid.uuid4().hex[:8]}:"
    before = _PipelineStore(prefix + "a:")
    now = RedisStore(REDIS_URL, prefix=prefix + "b:", retention=RETENTION_MS / 1000)

    async def current(i: int) -> None:
        command_id = str(i)
        await now.claim(command_id, owner="owner", lease=60)
        await now.record_trigger(command_id, {"ref": command_id})
        await now.record_outcome(command_id, {"kind": "succeeded", "data": {}})

    rows = []
    for _ in range(2):
        rows.append(
            ("store, pipelines + blocking pool", await _cpu_per_op(before.command, n, concurrency))
        )
        rows.append(
            ("store, scripts + semaphore (now)", await _cpu_per_op(current, n, concurrency))
        )
    await delete_keys_under(before.redis, prefix)
    await before.redis.aclose(close_connection_pool=True)
    await now.aclose()
    return rows


async def amqp_publish(n: int, concurrency: int) -> list[tuple[str, float]]:
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(
        f"flowgate-micro-{uuid.uuid4().hex[:6]}", "topic", auto_delete=True
    )
    queue = await channel.declare_queue("", exclusive=True)
    await queue.bind(exchange, "#")
    body = json.dumps({"data": "x" * 120}).encode()
    # As flowgate's poll requests and traced events carry them.
    headers: dict[str, Any] = {
        "x-flowgate-due": int(time.time() * 1000),
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    }

    async def via_aio_pika(i: int) -> None:
        target = await channel.get_exchange(exchange.name, ensure=False)
        message = aio_pika.Message(
            body,
            content_type="application/json",
            headers=headers,
            message_id=str(i),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await target.publish(message, "k", mandatory=False, timeout=30)

    async def via_aiormq(i: int) -> None:
        underlay = await channel.get_underlay_channel()
        properties = Basic.Properties(
            content_type="application/json",
            headers=dict(headers),
            message_id=str(i),
            delivery_mode=2,
        )
        await underlay.basic_publish(
            body, exchange=exchange.name, routing_key="k", properties=properties, timeout=30
        )

    rows = []
    for _ in range(2):
        rows.append(
            ("publish, aio-pika Exchange.publish", await _cpu_per_op(via_aio_pika, n, concurrency))
        )
        await queue.purge()
        rows.append(
            ("publish, aiormq basic_publish (now)", await _cpu_per_op(via_aiormq, n, concurrency))
        )
        await queue.purge()
    await connection.close()
    return rows


async def _main(n: int, concurrency: int) -> None:
    rows = await redis_store(n, concurrency) + await amqp_publish(n, concurrency)
    print(f"| operation ({n:,} each, {concurrency} at once, uvloop) | client CPU per op |")
    print("|---|---|")
    for name, micros in rows:
        print(f"| {name} | {micros:.0f} us |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("-n", type=int, default=10_000, help="operations per variant and round")
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    uvloop.run(_main(args.n, args.concurrency))


if __name__ == "__main__":
    main()
