"""The shared rate limiter: a sliding log per bucket, re-stamped at the answer, with a pause
for a vendor's 429; the same rules in memory and in Redis (several limiters, one count)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from workers.ratelimit import (
    LimiterUnavailable,
    MemoryRateLimiter,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_grants_the_limit_then_says_when_the_oldest_leaves() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(3, 10.0)
    for _ in range(3):
        assert (await limiter.acquire("acct", limit)).slot is not None
        clock.now += 1
    refused = await limiter.acquire("acct", limit)
    assert refused.slot is None and not refused.paused
    assert refused.wait == pytest.approx(7.0)  # the first call, at 1000, leaves at 1010
    clock.now = 1010.0
    assert (await limiter.acquire("acct", limit)).slot is not None
    assert (await limiter.acquire("other", limit)).slot is not None  # buckets are apart


async def test_memory_settle_counts_a_call_from_its_answer() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(1, 10.0)
    decision = await limiter.acquire("acct", limit)
    assert decision.slot is not None
    clock.now += 4  # a slow call: the vendor may have received it just now
    await limiter.settle(decision.slot)
    refused = await limiter.acquire("acct", limit)
    assert refused.wait == pytest.approx(10.0)


async def test_memory_pause_stops_the_bucket_and_a_shorter_pause_does_not_shorten_it() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(50, 60.0)
    await limiter.pause("acct", 30)
    await limiter.pause("acct", 5)
    paused = await limiter.acquire("acct", limit)
    assert paused.slot is None and paused.paused and paused.wait == pytest.approx(30)
    clock.now += 30
    assert (await limiter.acquire("acct", limit)).slot is not None


@pytest.fixture
async def redis_limiters() -> AsyncIterator[Callable[[], RedisRateLimiter]]:
    prefix = f"flowgate-test:{uuid.uuid4().hex[:8]}:"
    made: list[RedisRateLimiter] = []

    def make() -> RedisRateLimiter:
        limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


async def test_redis_counts_across_limiters_and_never_over_the_limit(
    redis_limiters: Callable[[], RedisRateLimiter],
) -> None:
    """Three "processes" hammer one bucket: in any window at most `requests` slots."""
    limiters = [redis_limiters() for _ in range(3)]
    limit = RateLimit(5, 0.5)
    granted: list[float] = []

    async def caller(limiter: RateLimiter) -> None:
        deadline = time.monotonic() + 1.6
        while time.monotonic() < deadline:
            decision = await limiter.acquire("acct", limit)
            if decision.slot is not None:
                granted.append(time.monotonic())
                await limiter.settle(decision.slot)
            else:
                assert 0 < decision.wait <= 0.5 + 0.01
                await asyncio.sleep(min(decision.wait, 0.05))

    await asyncio.gather(*(caller(limiters[i % 3]) for i in range(9)))
    granted.sort()
    assert len(granted) >= 10  # the limit was used, not starved
    for i in range(len(granted) - limit.requests):
        # the 6th call after any call comes at least a window later (1 ms of clock slack)
        assert granted[i + limit.requests] - granted[i] >= limit.window - 0.002


async def test_redis_pause_is_seen_by_every_limiter(
    redis_limiters: Callable[[], RedisRateLimiter],
) -> None:
    first, second = redis_limiters(), redis_limiters()
    await first.pause("acct", 0.4)
    paused = await second.acquire("acct", RateLimit(50, 60))
    assert paused.slot is None and paused.paused and 0.2 < paused.wait <= 0.4
    await asyncio.sleep(paused.wait + 0.02)
    assert (await second.acquire("acct", RateLimit(50, 60))).slot is not None


async def test_redis_settle_restamps_the_entry(
    redis_limiters: Callable[[], RedisRateLimiter],
) -> None:
    limiter = redis_limiters()
    limit = RateLimit(1, 0.3)
    decision = await limiter.acquire("acct", limit)
    assert decision.slot is not None
    await asyncio.sleep(0.2)
    await limiter.settle(decision.slot)
    refused = await limiter.acquire("acct", limit)
    assert refused.slot is None and refused.wait > 0.25  # counted from the settle, not before


async def test_an_unreachable_redis_is_limiter_unavailable() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter.acquire("acct", RateLimit(1, 1))
    finally:
        await limiter.aclose()
