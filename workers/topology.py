"""Every exchange and queue name, and the topology both brokers declare.

Like dramatiq's `common.py`, queue names and their delay and dead-letter siblings come from
the helpers here and nowhere else.

Delays (retries and polls) use a fixed ladder of TTL queues shared by all targets:
a message for queue Q, due in d ms, is published to `flowgate.delay` with routing key
`d<tier>.<Q>`; the tier queue `flowgate.delay.<tier>` holds it `tier` ms, then dead-letters it,
keeping the routing key, to `flowgate.retry`, where Q is bound as `*.<Q>`. The tier is the
largest one not over d; a message that comes back early carries `x-flowgate-due` and is sent
round again for the rest, so any delay costs at most a few hops and never holds a consumer.
"""

from __future__ import annotations

from collections.abc import Iterable

from workers.broker.base import Binding, Exchange, Queue, Topology

__all__ = [
    "COMMANDS_EXCHANGE",
    "DEAD_EXCHANGE",
    "DEAD_LETTER_QUEUE",
    "DEFAULT_DELIVERY_LIMIT",
    "DELAY_EXCHANGE",
    "DELAY_TIERS_MS",
    "EVENTS_EXCHANGE",
    "GIVEN_UP_QUEUE",
    "POLL_QUEUE",
    "RETRY_EXCHANGE",
    "UNROUTED_EXCHANGE",
    "UNROUTED_QUEUE",
    "build_topology",
    "command_queue",
    "delay_queue",
    "delay_routing_key",
    "delay_tier",
    "event_routing_key",
]

COMMANDS_EXCHANGE = "flowgate.commands"
EVENTS_EXCHANGE = "flowgate.events"
UNROUTED_EXCHANGE = "flowgate.commands.unrouted"
DELAY_EXCHANGE = "flowgate.delay"
RETRY_EXCHANGE = "flowgate.retry"
DEAD_EXCHANGE = "flowgate.dead"

UNROUTED_QUEUE = "flowgate.unrouted"
POLL_QUEUE = "flowgate.poll"
DEAD_LETTER_QUEUE = "flowgate.dead-letters"
# A copy of every dead letter, for the workers: the ones RabbitMQ itself wrote (a delivery limit
# reached) were never answered, and a worker answers them from here.
GIVEN_UP_QUEUE = "flowgate.given-up"

# RabbitMQ 4.0's default for quorum queues. Quorum queues count a message handed back by a
# consumer that died as a delivery, so this is also how many crashes in a row a held message
# survives: 5 lost commands in a 10,000-command run with a worker killed every 4 s (2026-11-25).
DEFAULT_DELIVERY_LIMIT = 20

DELAY_TIERS_MS: tuple[int, ...] = tuple(250 * 2**i for i in range(15))  # 250 ms … ~68 min


def command_queue(command_type: str) -> str:
    return f"flowgate.cmd.{command_type}"


def delay_queue(tier_ms: int) -> str:
    return f"{DELAY_EXCHANGE}.{tier_ms}"


def delay_tier(delay_ms: float) -> int:
    """The largest tier not over `delay_ms` (the smallest tier for shorter delays)."""
    chosen = DELAY_TIERS_MS[0]
    for tier in DELAY_TIERS_MS:
        if tier <= delay_ms:
            chosen = tier
    return chosen


def delay_routing_key(tier_ms: int, target_queue: str) -> str:
    return f"d{tier_ms}.{target_queue}"


def event_routing_key(command_type: str, kind: str) -> str:
    return f"{command_type}.{kind}"


def _quorum(name: str, *, delivery_limit: int, **extra: object) -> Queue:
    arguments: dict[str, object] = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_EXCHANGE,
        "x-delivery-limit": delivery_limit,
        # A poison message past its delivery limit must reach the dead-letter queue, not vanish
        # if that queue is briefly unavailable (RabbitMQ requires reject-publish for this).
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    arguments.update(extra)
    return Queue(name, arguments=arguments)


def build_topology(
    command_types: Iterable[str], *, delivery_limit: int = DEFAULT_DELIVERY_LIMIT
) -> Topology:
    """The whole topology; declaring it again is a no-op (every process does so at start)."""
    types = sorted(command_types)
    exchanges = (
        Exchange(COMMANDS_EXCHANGE, "topic", alternate_exchange=UNROUTED_EXCHANGE),
        Exchange(UNROUTED_EXCHANGE, "fanout"),
        Exchange(EVENTS_EXCHANGE, "topic"),
        Exchange(DELAY_EXCHANGE, "topic"),
        Exchange(RETRY_EXCHANGE, "topic"),
        Exchange(DEAD_EXCHANGE, "topic"),
    )
    work = [command_queue(t) for t in types] + [POLL_QUEUE, UNROUTED_QUEUE]
    queues = [_quorum(name, delivery_limit=delivery_limit) for name in work]
    queues.append(Queue(DEAD_LETTER_QUEUE, arguments={"x-queue-type": "quorum"}))
    # No dead-letter exchange of its own: a copy that keeps failing must not come back here
    # through flowgate.dead. Past its limit it is dropped; the letter itself stays in
    # flowgate.dead-letters.
    queues.append(
        Queue(
            GIVEN_UP_QUEUE,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": delivery_limit},
        )
    )
    bindings = [Binding(COMMANDS_EXCHANGE, command_queue(t), t) for t in types]
    bindings.append(Binding(UNROUTED_EXCHANGE, UNROUTED_QUEUE, ""))
    bindings.extend(Binding(RETRY_EXCHANGE, name, f"*.{name}") for name in work)
    bindings.append(Binding(DEAD_EXCHANGE, DEAD_LETTER_QUEUE, "#"))
    bindings.append(Binding(DEAD_EXCHANGE, GIVEN_UP_QUEUE, "#"))
    for tier in DELAY_TIERS_MS:
        queues.append(
            Queue(
                delay_queue(tier),
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": tier,
                    "x-dead-letter-exchange": RETRY_EXCHANGE,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
        )
        bindings.append(Binding(DELAY_EXCHANGE, delay_queue(tier), f"d{tier}.#"))
    return Topology(tuple(exchanges), tuple(queues), tuple(bindings))
