"""Test doubles that record instead of deliver: a broker that keeps every publish, a delivery
that remembers how it was settled.

For unit tests of one handler or the settler: what was published (exchange, routing key,
message) is there to read at once, with nothing routed and no consumer to wait for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.broker.base import OutgoingMessage, PublishNotConfirmed
from workers.broker.memory import MemoryBroker
from workers.topology import EVENTS_EXCHANGE, RETRY_EXCHANGE

__all__ = ["FakeDelivery", "Recorder"]


class Recorder(MemoryBroker):
    """Keeps every publish instead of routing it; `refuse` makes chosen publishes unconfirmed."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, OutgoingMessage]] = []
        self.refuse: Callable[[str, str], bool] = lambda exchange, routing_key: False

    async def publish(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        if self.refuse(exchange, routing_key):
            raise PublishNotConfirmed(f"{exchange} nacked it")
        self.sent.append((exchange, routing_key, message))

    def to(self, exchange: str) -> list[tuple[str, OutgoingMessage]]:
        """(routing key, message) of every publish to `exchange`."""
        return [(key, message) for ex, key, message in self.sent if ex == exchange]

    def events(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        """(routing key, message id, CloudEvent) of every event published."""
        return [(key, m.message_id, json.loads(m.body)) for key, m in self.to(EVENTS_EXCHANGE)]


@dataclass
class FakeDelivery:
    """A delivery as a handler sees it; `settlements` lists how it was settled."""

    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    exchange: str = RETRY_EXCHANGE
    routing_key: str = "d0.flowgate.poll"
    content_type: str | None = "application/json"
    message_id: str | None = None
    reply_to: str | None = None
    user_id: str | None = None
    redelivered: bool = False
    delivery_count: int = 0
    lost: bool = False
    settlements: list[str] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return bool(self.settlements)

    async def ack(self) -> None:
        self.settlements.append("ack")

    async def requeue(self) -> None:
        self.settlements.append("requeue")

    async def reject(self) -> None:
        self.settlements.append("reject")
