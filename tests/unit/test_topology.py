"""Names, the delay ladder and the topology both brokers declare."""

from __future__ import annotations

import pytest

from contracts import COMMAND_TYPES
from workers.broker.base import Binding, Queue
from workers.broker.memory import topic_matches
from workers.topology import (
    COMMANDS_EXCHANGE,
    DEAD_EXCHANGE,
    DELAY_EXCHANGE,
    DELAY_TIERS_MS,
    POLL_QUEUE,
    RETRY_EXCHANGE,
    UNROUTED_QUEUE,
    build_topology,
    command_queue,
    delay_queue,
    delay_routing_key,
    delay_tier,
)

TOPOLOGY = build_topology(COMMAND_TYPES, delivery_limit=7)
QUEUES = {q.name: q for q in TOPOLOGY.queues}
WORK = [command_queue(t) for t in COMMAND_TYPES] + [POLL_QUEUE, UNROUTED_QUEUE]


def bound(exchange: str) -> list[Binding]:
    return [b for b in TOPOLOGY.bindings if b.exchange == exchange]


def routed(exchange: str, routing_key: str) -> set[str]:
    return {b.queue for b in bound(exchange) if topic_matches(b.routing_key, routing_key)}


def test_tiers_are_increasing_and_unique() -> None:
    assert list(DELAY_TIERS_MS) == sorted(set(DELAY_TIERS_MS))
    assert DELAY_TIERS_MS[0] == 250


@pytest.mark.parametrize("delay", [0, 1, 100, 249.9])
def test_tiny_delay_uses_smallest_tier(delay: float) -> None:
    assert delay_tier(delay) == DELAY_TIERS_MS[0]


@pytest.mark.parametrize(
    ("delay", "tier"),
    [(250, 250), (499, 250), (500, 500), (1999, 1000), (2000, 2000), (3000, 2000)],
)
def test_delay_tier_is_largest_not_over(delay: float, tier: int) -> None:
    assert delay_tier(delay) == tier


def test_delay_tier_every_tier_and_beyond() -> None:
    for i, tier in enumerate(DELAY_TIERS_MS):
        assert delay_tier(tier) == tier
        assert delay_tier(tier + 0.5) == tier
        if i:
            assert delay_tier(tier - 0.5) == DELAY_TIERS_MS[i - 1]
    assert delay_tier(10 * DELAY_TIERS_MS[-1]) == DELAY_TIERS_MS[-1]


def test_each_command_type_routes_to_its_queue_only() -> None:
    for command_type in COMMAND_TYPES:
        assert routed(COMMANDS_EXCHANGE, command_type) == {command_queue(command_type)}


def test_every_work_queue_bound_on_retry_exchange() -> None:
    keys = {(b.queue, b.routing_key) for b in bound(RETRY_EXCHANGE)}
    assert keys == {(q, f"*.{q}") for q in WORK}


def test_delay_keys_reach_exactly_one_tier_then_exactly_the_target() -> None:
    for target in WORK:
        for tier in DELAY_TIERS_MS:
            key = delay_routing_key(tier, target)
            assert key == f"d{tier}.{target}"
            assert routed(DELAY_EXCHANGE, key) == {delay_queue(tier)}
            tier_queue = QUEUES[delay_queue(tier)]
            # Dead-lettered with the same routing key (no x-dead-letter-routing-key).
            assert tier_queue.arguments["x-dead-letter-exchange"] == RETRY_EXCHANGE
            assert "x-dead-letter-routing-key" not in tier_queue.arguments
            assert routed(RETRY_EXCHANGE, key) == {target}


def test_command_and_work_queues_are_quorum_with_limit_and_dlx() -> None:
    for name in WORK:
        args = QUEUES[name].arguments
        assert args["x-queue-type"] == "quorum"
        assert args["x-delivery-limit"] == 7
        assert args["x-dead-letter-exchange"] == DEAD_EXCHANGE
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"
        assert QUEUES[name].durable


def test_delay_queues_dead_letter_at_least_once_and_reject_publish() -> None:
    for tier in DELAY_TIERS_MS:
        args = QUEUES[delay_queue(tier)].arguments
        assert args["x-queue-type"] == "quorum"
        assert args["x-message-ttl"] == tier
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"


def test_dead_letters_collected_and_names_unique() -> None:
    assert len(QUEUES) == len(TOPOLOGY.queues)
    # Every dead letter is kept, and copied to the workers that answer RabbitMQ's own.
    assert {(b.queue, b.routing_key) for b in bound(DEAD_EXCHANGE)} == {
        ("flowgate.dead-letters", "#"),
        ("flowgate.given-up", "#"),
    }
    for name in ("flowgate.dead-letters", "flowgate.given-up"):
        # No loop back into itself.
        assert "x-dead-letter-exchange" not in QUEUES[name].arguments
    assert QUEUES["flowgate.given-up"].arguments["x-delivery-limit"] == 7
    declared = {e.name for e in TOPOLOGY.exchanges}
    assert all(b.exchange in declared and b.queue in QUEUES for b in TOPOLOGY.bindings)


def test_topology_independent_of_type_order() -> None:
    assert build_topology(["trigger-batch", "add-paylink"]) == build_topology(
        ["add-paylink", "trigger-batch"]
    )
    assert isinstance(TOPOLOGY.queues[0], Queue)
