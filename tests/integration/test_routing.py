"""The same routing scenarios against RabbitMQ and MemoryBroker.

MemoryBroker promises to route, expire and dead-letter exactly like RabbitMQ; running one module
over both is what keeps that promise checked. The RabbitMQ variant fails (never skips) when the
server is unreachable, so a broken environment cannot pass as green.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from workers.broker import (
    AmqpBroker,
    Binding,
    Delivery,
    Exchange,
    MemoryBroker,
    OutgoingMessage,
    PublishNotConfirmed,
    Queue,
    Topology,
    TopologyError,
)

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"

pytestmark = pytest.mark.integration


class Env:
    """One broker plus unique names; remembers what it declared so teardown can delete it."""

    def __init__(self, broker: AmqpBroker | MemoryBroker) -> None:
        self.broker = broker
        self.suffix = uuid.uuid4().hex[:10]
        self.declared: list[Topology] = []

    def name(self, base: str) -> str:
        return f"test.routing.{base}.{self.suffix}"

    async def declare(self, topology: Topology) -> None:
        self.declared.append(topology)
        await self.broker.declare(topology)

    async def publish(self, exchange: str, key: str, body: bytes = b"x", **kw: Any) -> None:
        await self.broker.publish(exchange, key, OutgoingMessage(body=body, **kw))

    async def get(self, queue: str, within: float = 0.0) -> Delivery | None:
        """basic.get, retried until `within` seconds passed (for TTL-driven arrivals)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            delivery = await self.broker.get(queue)
            if delivery is not None or loop.time() >= deadline:
                return delivery
            await asyncio.sleep(0.02)

    async def length(self, queue: str) -> int:
        result = self.broker.queue_length(queue)  # sync on MemoryBroker, async on AmqpBroker
        return await result if inspect.isawaitable(result) else result


@pytest.fixture(params=["memory", "rabbitmq"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    broker: AmqpBroker | MemoryBroker
    if request.param == "memory":
        broker = MemoryBroker()
    else:
        broker = AmqpBroker(RABBITMQ_URL, publish_timeout=5.0)
    try:
        await asyncio.wait_for(broker.connect(), timeout=10)
    except Exception as exc:
        pytest.fail(f"RabbitMQ at {RABBITMQ_URL} is unreachable: {exc!r}")
    e = Env(broker)
    try:
        yield e
    finally:
        await broker.cancel_consumers()
        for topology in reversed(e.declared):
            await broker.delete(topology)
        await broker.close()


def _bind(ex: str, q: str, key: str) -> Binding:
    return Binding(exchange=ex, queue=q, routing_key=key)


TOPIC_CASES = [
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#", "", True),
    ("*", "", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("a.*", "a.b", True),
    ("a.*", "a", False),
    ("a.*", "a.b.c", False),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a", "a.b", False),
    ("a", "a", True),
    ("#.b", "b", True),
    ("#.b", "a.x.b", True),
    ("#.b", "a.b.c", False),
    ("*.b.#", "a.b", True),
    ("*.b.#", "a.b.c.d", True),
    ("*.b.#", "b.c", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("*.*", "a.b", True),
    ("*.*", "a", False),
]


@pytest.mark.parametrize(("pattern", "key", "routed"), TOPIC_CASES)
async def test_topic_patterns(env: Env, pattern: str, key: str, routed: bool) -> None:
    ex, q = env.name("topic"), env.name("q")
    await env.declare(
        Topology(exchanges=(Exchange(ex),), queues=(Queue(q),), bindings=(_bind(ex, q, pattern),))
    )
    await env.publish(ex, key)  # unroutable + no alternate exchange: dropped, not an error
    delivery = await env.get(q)
    assert (delivery is not None) == routed
    if delivery is not None:
        assert delivery.routing_key == key
        assert delivery.exchange == ex
        await delivery.ack()


async def test_direct_and_fanout(env: Env) -> None:
    direct, fanout = env.name("direct"), env.name("fanout")
    q1, q2 = env.name("q1"), env.name("q2")
    await env.declare(
        Topology(
            exchanges=(Exchange(direct, type="direct"), Exchange(fanout, type="fanout")),
            queues=(Queue(q1), Queue(q2)),
            bindings=(_bind(direct, q1, "a.*"), _bind(fanout, q1, "x"), _bind(fanout, q2, "y")),
        )
    )
    await env.publish(direct, "a.b")  # direct does not interpret wildcards
    assert await env.get(q1) is None
    await env.publish(direct, "a.*")
    await env.publish(fanout, "whatever")
    for q, expected in ((q1, 2), (q2, 1)):
        assert await env.length(q) == expected


async def test_alternate_exchange_catches_unroutable(env: Env) -> None:
    main, ae = env.name("main"), env.name("ae")
    q_main, q_unrouted = env.name("main"), env.name("unrouted")
    await env.declare(
        Topology(
            exchanges=(Exchange(ae, type="fanout"), Exchange(main, alternate_exchange=ae)),
            queues=(Queue(q_main), Queue(q_unrouted)),
            bindings=(_bind(main, q_main, "cmd.*"), _bind(ae, q_unrouted, "")),
        )
    )
    await env.publish(main, "cmd.pay", b"routed")
    await env.publish(main, "nobody.listens", b"lost")
    routed, unrouted = await env.get(q_main), await env.get(q_unrouted)
    assert routed is not None and routed.body == b"routed"
    assert unrouted is not None and unrouted.body == b"lost"
    assert unrouted.routing_key == "nobody.listens"
    assert unrouted.exchange == main  # the exchange it was published to, not the AE
    assert await env.get(q_main) is None and await env.get(q_unrouted) is None
    await routed.ack()
    await unrouted.ack()


async def test_default_exchange_routes_by_queue_name(env: Env) -> None:
    q = env.name("direct-to-queue")
    await env.declare(Topology(queues=(Queue(q),)))
    await env.publish("", q, b"hello")
    await env.publish("", env.name("no-such-queue"), b"dropped")
    delivery = await env.get(q)
    assert delivery is not None and delivery.body == b"hello" and delivery.routing_key == q
    await delivery.ack()
    assert await env.get(q) is None


async def test_publish_to_missing_exchange_is_not_confirmed(env: Env) -> None:
    with pytest.raises(PublishNotConfirmed):
        await env.publish(env.name("missing"), "k")
    q = env.name("after")  # the broker stays usable afterwards
    await env.declare(Topology(queues=(Queue(q),)))
    await env.publish("", q)
    assert await env.get(q, within=2) is not None


async def test_redeclare_with_other_arguments_fails(env: Env) -> None:
    q = env.name("redeclare")
    await env.declare(Topology(queues=(Queue(q, arguments={"x-message-ttl": 1000}),)))
    await env.declare(Topology(queues=(Queue(q, arguments={"x-message-ttl": 1000}),)))
    with pytest.raises(TopologyError):
        await env.broker.declare(Topology(queues=(Queue(q, arguments={"x-message-ttl": 5}),)))


def _dead_letter_topology(env: Env, **work_args: Any) -> tuple[Topology, str, str, str]:
    """ingress --orders.*--> work --(dlx, topic, '#')--> dead."""
    ingress, dlx = env.name("ingress"), env.name("dlx")
    work, dead = env.name("work"), env.name("dead")
    topology = Topology(
        exchanges=(Exchange(ingress), Exchange(dlx)),
        queues=(Queue(work, arguments={"x-dead-letter-exchange": dlx, **work_args}), Queue(dead)),
        bindings=(_bind(ingress, work, "orders.*"), _bind(dlx, dead, "#")),
    )
    return topology, ingress, work, dead


async def test_queue_ttl_dead_letters_with_original_routing_key(env: Env) -> None:
    topology, ingress, work, dead = _dead_letter_topology(env, **{"x-message-ttl": 200})
    await env.declare(topology)
    await env.publish(ingress, "orders.created", b"late")
    assert await env.get(dead) is None  # not before the TTL
    delivery = await env.get(dead, within=3)
    assert delivery is not None and delivery.body == b"late"
    assert delivery.routing_key == "orders.created"
    assert delivery.headers["x-first-death-reason"] == "expired"
    assert delivery.headers["x-first-death-queue"] == work
    death = delivery.headers["x-death"][0]
    assert (death["queue"], death["reason"], death["count"]) == (work, "expired", 1)
    assert death["exchange"] == ingress and list(death["routing-keys"]) == ["orders.created"]
    await delivery.ack()
    assert await env.get(work) is None


async def test_per_message_expiration_dead_letters(env: Env) -> None:
    topology, ingress, _work, dead = _dead_letter_topology(env)
    await env.declare(topology)
    await env.publish(ingress, "orders.slow", b"a", expiration_ms=150)
    await env.publish(ingress, "orders.fast", b"b", expiration_ms=50)
    first = await env.get(dead, within=3)
    second = await env.get(dead, within=3)
    assert first is not None and second is not None
    # No order asserted: RabbitMQ only expires messages at the head of the queue (so `b` waits
    # for `a`), MemoryBroker expires each at its own time. Both end up dead-lettered.
    assert sorted([first.body, second.body]) == [b"a", b"b"]
    assert {first.headers["x-first-death-reason"], second.headers["x-first-death-reason"]} == {
        "expired"
    }
    assert first.headers["x-death"][0]["original-expiration"] in {"50", "150"}
    await first.ack()
    await second.ack()


async def test_dead_letter_routing_key_override(env: Env) -> None:
    dlx, work, dead = env.name("dlx"), env.name("work"), env.name("dead")
    await env.declare(
        Topology(
            exchanges=(Exchange(dlx, type="direct"),),
            queues=(
                Queue(
                    work,
                    arguments={
                        "x-dead-letter-exchange": dlx,
                        "x-dead-letter-routing-key": "retry.later",
                    },
                ),
                Queue(dead),
            ),
            bindings=(_bind(dlx, dead, "retry.later"),),
        )
    )
    await env.publish("", work, b"again")
    taken = await env.get(work)
    assert taken is not None
    await taken.reject()
    delivery = await env.get(dead, within=2)
    assert delivery is not None and delivery.routing_key == "retry.later"
    assert list(delivery.headers["x-death"][0]["routing-keys"]) == [work]
    await delivery.ack()


async def test_reject_dead_letters(env: Env) -> None:
    topology, ingress, work, dead = _dead_letter_topology(env)
    await env.declare(topology)
    await env.publish(ingress, "orders.bad", b"poison")
    taken = await env.get(work)
    assert taken is not None and not taken.redelivered
    await taken.reject()
    delivery = await env.get(dead, within=2)
    assert delivery is not None and delivery.body == b"poison"
    assert delivery.routing_key == "orders.bad"
    assert delivery.headers["x-first-death-reason"] == "rejected"
    assert delivery.headers["x-first-death-queue"] == work
    assert delivery.headers["x-death"][0]["reason"] == "rejected"
    await delivery.ack()
    assert await env.get(work) is None


async def test_dead_letter_cycles(env: Env) -> None:
    """An all-automatic loop (expire back into the same queue) is dropped; a retry loop whose
    cycle contains a rejection (work --reject--> delay --expire--> work) keeps going."""
    looping, work, delay = env.name("loop"), env.name("work"), env.name("delay")
    ttl_back = {"x-message-ttl": 50, "x-dead-letter-exchange": ""}
    await env.declare(
        Topology(
            queues=(
                Queue(looping, arguments=ttl_back),
                Queue(
                    work,
                    arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": delay},
                ),
                Queue(delay, arguments={**ttl_back, "x-dead-letter-routing-key": work}),
            )
        )
    )
    await env.publish("", looping, b"spin")
    await env.publish("", work, b"retry")
    for attempt in (1, 2):
        taken = await env.get(work, within=2)
        assert taken is not None and taken.body == b"retry"
        if attempt == 2:
            deaths = {(d["queue"], d["reason"]): d["count"] for d in taken.headers["x-death"]}
            assert deaths == {(work, "rejected"): 1, (delay, "expired"): 1}
        await taken.reject()
    assert await env.get(looping, within=0.2) is None
    back = await env.get(work, within=2)
    assert back is not None
    deaths = {(d["queue"], d["reason"]): d["count"] for d in back.headers["x-death"]}
    assert deaths == {(work, "rejected"): 2, (delay, "expired"): 2}
    assert back.headers["x-first-death-reason"] == "rejected"
    await back.ack()


async def test_reject_without_dlx_drops(env: Env) -> None:
    q = env.name("plain")
    await env.declare(Topology(queues=(Queue(q),)))
    await env.publish("", q)
    taken = await env.get(q)
    assert taken is not None
    await taken.reject()
    assert await env.get(q) is None


async def test_quorum_delivery_limit_dead_letters_after_requeues(env: Env) -> None:
    topology, ingress, work, dead = _dead_letter_topology(
        env, **{"x-queue-type": "quorum", "x-delivery-limit": 1}
    )
    await env.declare(topology)
    await env.publish(ingress, "orders.flaky", b"flaky")
    first = await env.get(work, within=2)
    assert first is not None and first.delivery_count == 0 and not first.redelivered
    await first.requeue()
    second = await env.get(work, within=2)
    assert second is not None and second.delivery_count == 1 and second.redelivered
    assert second.headers["x-delivery-count"] == 1
    await second.requeue()  # returned more often than the limit: dead-lettered, not redelivered
    delivery = await env.get(dead, within=2)
    assert delivery is not None and delivery.body == b"flaky"
    assert delivery.headers["x-first-death-reason"] == "delivery_limit"
    assert delivery.routing_key == "orders.flaky"
    await delivery.ack()
    assert await env.get(work) is None


async def test_competing_consumers_share_the_queue(env: Env) -> None:
    q = env.name("shared")
    await env.declare(Topology(queues=(Queue(q),)))
    seen: dict[str, list[bytes]] = {"a": [], "b": []}
    done = asyncio.Event()

    def handler(name: str) -> Any:
        async def handle(delivery: Delivery) -> None:
            await asyncio.sleep(0.01)  # hold the prefetch slot so the other consumer gets a turn
            seen[name].append(delivery.body)
            await delivery.ack()
            if sum(map(len, seen.values())) >= 20:
                done.set()

        return handle

    await env.broker.consume(q, handler("a"), prefetch=1)
    await env.broker.consume(q, handler("b"), prefetch=1)
    expected = [str(i).encode() for i in range(20)]
    for body in expected:
        await env.publish("", q, body)
    await asyncio.wait_for(done.wait(), timeout=5)
    await asyncio.sleep(0.05)  # nothing extra should trickle in
    assert seen["a"] and seen["b"]
    assert sorted(seen["a"] + seen["b"]) == sorted(expected)
    assert await env.length(q) == 0


async def test_many_concurrent_publishes_are_all_confirmed(env: Env) -> None:
    q = env.name("burst")
    await env.declare(Topology(queues=(Queue(q),)))
    await asyncio.gather(*(env.publish("", q, str(i).encode()) for i in range(300)))
    assert await env.length(q) == 300


async def test_failing_handler_requeues_and_consumer_survives(env: Env) -> None:
    q = env.name("flaky-handler")
    await env.declare(Topology(queues=(Queue(q),)))
    attempts: list[bool] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.redelivered)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        await delivery.ack()
        done.set()

    await env.broker.consume(q, handle, prefetch=1)
    await env.publish("", q)
    await asyncio.wait_for(done.wait(), timeout=5)
    assert attempts == [False, True]


async def test_headers_and_content_type_round_trip(env: Env) -> None:
    q = env.name("props")
    await env.declare(Topology(queues=(Queue(q),)))
    headers = {"trace-id": "abc-123", "attempt": 3, "urgent": True}
    await env.publish(
        "", q, b'{"ok": true}', content_type="application/json", headers=headers, message_id="m-1"
    )
    delivery = await env.get(q)
    assert delivery is not None
    assert delivery.body == b'{"ok": true}'
    assert delivery.content_type == "application/json"
    assert delivery.message_id == "m-1"
    assert dict(delivery.headers) == headers
    assert delivery.delivery_count == 0
    await delivery.ack()
