"""A vendor account's rate limit, shared by every worker and poller: a slot now, or a wait.

A vendor that allows N requests per window per account (Product-Live: 50 a minute) is called
by many processes at once, so the count lives outside them: in Redis (`RedisRateLimiter`), or
in the process for the embedded demo (`MemoryRateLimiter`). Before each call a client asks
`acquire(bucket, limit)`: either it gets a `Slot` and calls, or it is told how long to wait and
raises `workers.errors.Throttled`, so the message waits round the delay queues, never in the
process.

The algorithm is a sliding log: every call is an entry stamped with a time; a call is allowed
when fewer than `requests` entries are younger than `window`. So no window of that length,
wherever it starts, ever holds more than `requests` calls (a fixed window would allow twice as
many across its boundary). Two details make that hold at the vendor's end too:

- `settle(slot)` moves the entry's stamp to when the answer came back. The vendor received the
  request between `acquire` and the answer, so counting it at the answer is never too early,
  however long the call took.
- the stamps of every process come from one clock: Redis's `TIME`, inside the scripts.

`pause(bucket, seconds)` stops the whole bucket (a 429's `Retry-After`): every process waits,
not only the caller that was refused.

Each operation is one Lua script, atomic and one round trip. `limits` (the library) was
compared and not used: its moving window stamps entries with the caller's clock, answers only
yes or no (how long to wait is a second round trip, not atomic with the first), counts whole
seconds, and has no pause; see docs/vendors.md, "Product-Live".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from workers._redis import async_pool, close_sentinels

__all__ = [
    "Decision",
    "LimiterUnavailable",
    "MemoryRateLimiter",
    "RateLimit",
    "RateLimiter",
    "RedisRateLimiter",
    "Slot",
]


class LimiterUnavailable(Exception):
    """The shared count cannot be read (Redis down): nobody can tell whether there is room."""


@dataclass(frozen=True)
class RateLimit:
    """`requests` calls per `window` seconds; `margin` seconds are added to the window."""

    requests: int
    window: float
    margin: float = 0.0

    @property
    def span(self) -> float:
        return self.window + self.margin


@dataclass(frozen=True)
class Slot:
    """Room for one call in `bucket`; `settle` it once the call answered."""

    bucket: str
    token: str
    span: float


@dataclass(frozen=True)
class Decision:
    """`slot` when the call may go now; otherwise `wait` seconds, `paused` when the wait is a
    pause of the whole bucket (a vendor's 429) rather than a full window."""

    slot: Slot | None
    wait: float = 0.0
    paused: bool = False


class RateLimiter(Protocol):
    async def acquire(self, bucket: str, limit: RateLimit) -> Decision: ...

    async def settle(self, slot: Slot) -> None:
        """The call of `slot` answered (or failed): stamp its entry now."""

    async def pause(self, bucket: str, seconds: float) -> None:
        """No call in `bucket` for `seconds` (a longer pause already set stays)."""

    async def aclose(self) -> None: ...


@dataclass
class _Bucket:
    entries: dict[str, float] = field(default_factory=dict)  # token -> stamp
    paused_until: float = 0.0


class MemoryRateLimiter:
    """The same rules in one process: the embedded demo and unit tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    async def acquire(self, bucket: str, limit: RateLimit) -> Decision:
        now = self._clock()
        state = self._buckets.setdefault(bucket, _Bucket())
        if state.paused_until > now:
            return Decision(None, state.paused_until - now, paused=True)
        span = limit.span
        state.entries = {t: s for t, s in state.entries.items() if s > now - span}
        if len(state.entries) < limit.requests:
            token = uuid.uuid4().hex
            state.entries[token] = now
            return Decision(Slot(bucket, token, span))
        return Decision(None, min(state.entries.values()) + span - now)

    async def settle(self, slot: Slot) -> None:
        state = self._buckets.get(slot.bucket)
        if state is not None and slot.token in state.entries:
            state.entries[slot.token] = max(state.entries[slot.token], self._clock())

    async def pause(self, bucket: str, seconds: float) -> None:
        state = self._buckets.setdefault(bucket, _Bucket())
        state.paused_until = max(state.paused_until, self._clock() + seconds)

    async def aclose(self) -> None:
        self._buckets.clear()


# KEYS: the log (sorted set token -> stamp in ms), the pause key. ARGV: requests, span in ms,
# token. Answers {granted 0/1, wait ms, paused 0/1}. Stamps are Redis's own clock.
_ACQUIRE = """
local log, pause = KEYS[1], KEYS[2]
local requests, span, token = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', pause)
if paused > 0 then return {0, paused, 1} end
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - span)
if redis.call('ZCARD', log) < requests then
  redis.call('ZADD', log, now, token)
  redis.call('PEXPIRE', log, span * 2)
  return {1, 0, 0}
end
local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + span - now), 0}
"""

# Re-stamp an entry at the answer's time; XX: never brings back an entry already pruned.
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', 'GT', now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 0
"""

_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 0
"""


class RedisRateLimiter:
    """The shared limiter. Keys: `<prefix>ratelimit:<bucket>` (the log) and `...:pause`."""

    def __init__(self, url: str, *, prefix: str = "flowgate:", max_connections: int = 8) -> None:
        import redis.asyncio as redis

        self._slots = asyncio.Semaphore(max_connections)
        pool = async_pool(
            url,
            max_connections=max_connections,
            decode_responses=True,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
        )
        self._redis = redis.Redis(connection_pool=pool)
        self._prefix = prefix
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._settle = self._redis.register_script(_SETTLE)
        self._pause = self._redis.register_script(_PAUSE)

    def _key(self, bucket: str) -> str:
        return f"{self._prefix}ratelimit:{bucket}"

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        from redis.exceptions import RedisError

        async with self._slots:
            try:
                yield
            except (RedisError, OSError) as exc:
                raise LimiterUnavailable(
                    f"rate limiter unavailable: {type(exc).__name__}"
                ) from None

    async def acquire(self, bucket: str, limit: RateLimit) -> Decision:
        key = self._key(bucket)
        token = uuid.uuid4().hex
        span_ms = max(1, round(limit.span * 1000))
        async with self._guard():
            granted, wait_ms, paused = await self._acquire(
                keys=[key, f"{key}:pause"], args=[limit.requests, span_ms, token]
            )
        if int(granted):
            return Decision(Slot(bucket, token, limit.span))
        return Decision(None, int(wait_ms) / 1000, paused=bool(int(paused)))

    async def settle(self, slot: Slot) -> None:
        async with self._guard():
            await self._settle(
                keys=[self._key(slot.bucket)],
                args=[slot.token, max(1, round(slot.span * 1000))],
            )

    async def pause(self, bucket: str, seconds: float) -> None:
        async with self._guard():
            await self._pause(
                keys=[f"{self._key(bucket)}:pause"], args=[max(1, round(seconds * 1000))]
            )

    async def aclose(self) -> None:
        pool = self._redis.connection_pool
        await self._redis.aclose(close_connection_pool=True)
        await close_sentinels(pool)
