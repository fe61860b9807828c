"""An in-memory broker that can tell when the system has come to rest.

"Wait for the terminal event, then a little longer in case a duplicate follows" proves only
that none came within the grace. At rest, nothing can come any more: no handler is running
(a poller holding a run is inside its handler) and no message waits where something would move
it on, in a queue with a consumer or a TTL (the delay ladder). Messages in a queue nobody
consumes (the dead letters, a poll queue with no poller) stay where they are and do not count.
"""

from __future__ import annotations

import asyncio

from tests.waiting import poll_until
from workers.broker.base import Delivery, Handler, Topology
from workers.broker.memory import MemoryBroker

__all__ = ["QuietBroker"]


class QuietBroker(MemoryBroker):
    def __init__(self) -> None:
        super().__init__()
        self._moving: set[str] = set()  # queues whose messages move on by themselves
        self._handling = 0

    async def declare(self, topology: Topology) -> None:
        await super().declare(topology)
        self._moving.update(q.name for q in topology.queues if "x-message-ttl" in q.arguments)

    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> None:
        async def counted(delivery: Delivery) -> None:
            self._handling += 1
            try:
                await handler(delivery)
            finally:
                self._handling -= 1

        self._moving.add(queue)
        await super().consume(queue, counted, prefetch=prefetch)

    async def at_rest(self) -> bool:
        if self._handling:
            return False
        for queue in self._moving:
            if await self.queue_length(queue):
                return False
        return True

    async def until_at_rest(self, timeout: float = 10.0) -> None:
        """Wait until nothing more can happen; fails after `timeout` seconds."""

        async def look() -> bool:
            if not await self.at_rest():
                return False
            # A message just taken off its queue reaches its handler one turn of the loop
            # later: look again after that turn, so it cannot slip between the two.
            await asyncio.sleep(0)
            return await self.at_rest()

        await poll_until(look, bool, timeout=timeout)
