"""The idempotency store: what happened to each command id, shared by all workers and pollers.

Per command id it keeps a claim (who is calling the trigger right now, with a lease), the vendor
reference once the trigger answered, and the terminal outcome once there is one. With it:

- a redelivered command whose trigger is recorded resumes from the vendor reference and never
  calls the trigger again;
- a command re-published by its sender with the same id gets the recorded outcome again;
- a claim whose lease ran out with no recorded trigger means a process died between calling the
  vendor and recording its answer: the outcome is unknown, and the connection's policy decides;
- the first terminal outcome recorded wins, so two poll chains for one run (after a redelivery)
  can never publish two different terminal events.

`RedisStore` (default) is shared by every process; `MemoryStore` serves the embedded mode.
Entries expire after the configured retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "Claim",
    "IdempotencyStore",
    "MemoryStore",
    "Record",
    "RedisStore",
    "StoreUnavailable",
]


class StoreUnavailable(Exception):
    """The store cannot be reached: the message is parked and tried again, never given up."""


ClaimState = Literal["new", "busy", "unknown", "triggered", "finished"]


@dataclass(frozen=True)
class Claim:
    """`new`: ours, call the trigger. `busy`: another process holds a live claim.
    `unknown`: an earlier claim lapsed without a recorded trigger. `triggered`: resume from
    `vendor_ref`. `finished`: answer `outcome` again."""

    state: ClaimState
    vendor_ref: dict[str, str] | None = None
    outcome: dict[str, Any] | None = None
    lease_left: float = 0.0


@dataclass(frozen=True)
class Record:
    """What the store knows of a command id (`cancel-run` reads it): the vendor reference once
    triggered, what the run is (`command_type`, `connection`), the outcome once there is one."""

    vendor_ref: dict[str, str] | None
    run: dict[str, str]
    outcome: dict[str, Any] | None


class IdempotencyStore(Protocol):
    async def claim(
        self, command_id: str, *, owner: str, lease: float, force: bool = False
    ) -> Claim: ...

    async def release(self, command_id: str, *, owner: str) -> None:
        """Drop our claim: the trigger certainly did not happen (refused, never sent)."""

    async def record_trigger(
        self, command_id: str, vendor_ref: dict[str, str], *, run: dict[str, str] | None = None
    ) -> None:
        """The trigger happened: its vendor reference, and (`run`) what the run is."""

    async def lookup(self, command_id: str) -> Record | None:
        """What is known of `command_id`; None when nothing (never seen, or expired)."""

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        """Record the terminal outcome unless one exists; return the one that stands."""

    async def outcome(self, command_id: str) -> dict[str, Any] | None: ...

    async def forget_outcome(self, command_id: str) -> None:
        """Drop a recorded failure so a replayed dead letter runs again (`flowgate dlq replay`)."""

    async def ping(self) -> None:
        """Return when the store answers; `StoreUnavailable` when it does not (readiness)."""

    async def aclose(self) -> None: ...


@dataclass
class _Entry:
    expires: float
    owner: str | None = None
    lease_until: float = 0.0
    claimed: bool = False
    vendor_ref: dict[str, str] | None = None
    outcome: dict[str, Any] | None = None
    run: dict[str, str] | None = None


class MemoryStore:
    """In-process store for the embedded mode and unit tests; same rules as `RedisStore`."""

    def __init__(self, *, retention: float = 7 * 86400.0) -> None:
        self._retention = retention
        self._entries: dict[str, _Entry] = {}

    def _entry(self, command_id: str) -> _Entry | None:
        entry = self._entries.get(command_id)
        if entry is not None and entry.expires <= time.monotonic():
            del self._entries[command_id]
            return None
        return entry

    async def claim(
        self, command_id: str, *, owner: str, lease: float, force: bool = False
    ) -> Claim:
        now = time.monotonic()
        entry = self._entry(command_id)
        if entry is not None:
            if entry.outcome is not None:
                return Claim("finished", entry.vendor_ref, entry.outcome)
            if entry.vendor_ref is not None:
                return Claim("triggered", entry.vendor_ref)
            if entry.lease_until > now and entry.owner != owner:
                return Claim("busy", lease_left=entry.lease_until - now)
            if entry.claimed and not force:
                return Claim("unknown")
        entry = entry or _Entry(expires=now + self._retention)
        entry.owner, entry.lease_until, entry.claimed = owner, now + lease, True
        self._entries[command_id] = entry
        return Claim("new")

    async def release(self, command_id: str, *, owner: str) -> None:
        entry = self._entry(command_id)
        if entry is not None and entry.owner == owner and entry.vendor_ref is None:
            entry.claimed, entry.owner, entry.lease_until = False, None, 0.0

    async def record_trigger(
        self, command_id: str, vendor_ref: dict[str, str], *, run: dict[str, str] | None = None
    ) -> None:
        entry = self._entry(command_id) or _Entry(expires=time.monotonic() + self._retention)
        entry.vendor_ref, entry.lease_until = dict(vendor_ref), 0.0
        if run is not None:
            entry.run = dict(run)
        self._entries[command_id] = entry

    async def lookup(self, command_id: str) -> Record | None:
        entry = self._entry(command_id)
        if entry is None:
            return None
        return Record(entry.vendor_ref, dict(entry.run or {}), entry.outcome)

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        entry = self._entry(command_id) or _Entry(expires=time.monotonic() + self._retention)
        if entry.outcome is None:
            entry.outcome = outcome
        self._entries[command_id] = entry
        return entry.outcome

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        entry = self._entry(command_id)
        return None if entry is None else entry.outcome

    async def forget_outcome(self, command_id: str) -> None:
        entry = self._entry(command_id)
        if entry is not None:
            entry.outcome = None

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._entries.clear()


# One round trip, atomic: the whole claim decision happens inside Redis.
_CLAIM = """
local key, claim_key = KEYS[1], KEYS[2]
local owner, lease_ms, retention_ms, force = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local outcome = redis.call('HGET', key, 'outcome')
local ref = redis.call('HGET', key, 'vendor_ref')
if outcome then return {'finished', ref or '', outcome, 0} end
if ref then return {'triggered', ref, '', 0} end
local holder = redis.call('GET', claim_key)
if holder and holder ~= owner then
  return {'busy', '', '', redis.call('PTTL', claim_key)}
end
if redis.call('HEXISTS', key, 'claimed') == 1 and force ~= '1' and not holder then
  return {'unknown', '', '', 0}
end
redis.call('SET', claim_key, owner, 'PX', lease_ms)
redis.call('HSET', key, 'claimed', owner)
redis.call('PEXPIRE', key, retention_ms)
return {'new', '', '', 0}
"""


# The owner's release also counts when its lease already lapsed (a refused call that outlived
# the lease): nobody else claimed since, so the trigger certainly did not happen.
_RELEASE = """
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then
  redis.call('DEL', KEYS[2])
  holder = false
end
if not holder and redis.call('HGET', KEYS[1], 'claimed') == ARGV[1]
    and redis.call('HEXISTS', KEYS[1], 'vendor_ref') == 0 then
  redis.call('HDEL', KEYS[1], 'claimed')
end
return 0
"""


# Scripts rather than MULTI pipelines: one command and one reply each, and much less client work.
_RECORD_TRIGGER = """
redis.call('HSET', KEYS[1], 'vendor_ref', ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'run', ARGV[3]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 0
"""


_RECORD_OUTCOME = """
redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'outcome')
"""


class RedisStore:
    """The shared store. Keys: `<prefix>cmd:<id>` (hash) and `<prefix>claim:<id>` (lease)."""

    def __init__(
        self,
        url: str,
        *,
        retention: float = 7 * 86400.0,
        prefix: str = "flowgate:",
        max_connections: int = 64,
    ) -> None:
        import redis.asyncio as redis

        # At most `max_connections` calls at once, the rest wait here. Not redis-py's
        # BlockingConnectionPool: its condition and timeout cost ~40 us a call (see
        # BENCHMARKS.md); and not its plain pool alone, which raises past its size and parked
        # good work (found by scripts/bench: 1,460 of 5,000 commands came round again).
        self._slots = asyncio.Semaphore(max_connections)
        pool = redis.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            decode_responses=True,
            # A hung Redis must surface as StoreUnavailable (the message is parked), not hang.
            socket_timeout=10.0,
            socket_connect_timeout=5.0,
        )
        self._redis = redis.Redis(connection_pool=pool)
        self._retention_ms = int(retention * 1000)
        self._prefix = prefix
        self._claim_script = self._redis.register_script(_CLAIM)
        self._release_script = self._redis.register_script(_RELEASE)
        self._record_trigger_script = self._redis.register_script(_RECORD_TRIGGER)
        self._record_outcome_script = self._redis.register_script(_RECORD_OUTCOME)

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        from redis.exceptions import RedisError

        async with self._slots:
            try:
                yield
            except (RedisError, OSError) as exc:
                raise StoreUnavailable(
                    f"idempotency store unavailable: {type(exc).__name__}"
                ) from None

    def _keys(self, command_id: str) -> tuple[str, str]:
        return f"{self._prefix}cmd:{command_id}", f"{self._prefix}claim:{command_id}"

    async def claim(
        self, command_id: str, *, owner: str, lease: float, force: bool = False
    ) -> Claim:
        async with self._guard():
            return await self._claim(command_id, owner=owner, lease=lease, force=force)

    async def _claim(self, command_id: str, *, owner: str, lease: float, force: bool) -> Claim:
        state, ref, outcome, ttl = await self._claim_script(
            keys=list(self._keys(command_id)),
            args=[owner, int(lease * 1000), self._retention_ms, "1" if force else "0"],
        )
        return Claim(
            state,
            json.loads(ref) if ref else None,
            json.loads(outcome) if outcome else None,
            max(0.0, int(ttl) / 1000),
        )

    async def release(self, command_id: str, *, owner: str) -> None:
        async with self._guard():
            await self._release_script(keys=list(self._keys(command_id)), args=[owner])

    async def record_trigger(
        self, command_id: str, vendor_ref: dict[str, str], *, run: dict[str, str] | None = None
    ) -> None:
        about = "" if run is None else json.dumps(run, sort_keys=True)
        async with self._guard():
            await self._record_trigger_script(
                keys=list(self._keys(command_id)),
                args=[json.dumps(vendor_ref, sort_keys=True), self._retention_ms, about],
            )

    async def lookup(self, command_id: str) -> Record | None:
        key, _ = self._keys(command_id)
        async with self._guard():
            ref, run, outcome, claimed = await self._redis.hmget(
                key, ["vendor_ref", "run", "outcome", "claimed"]
            )
        if ref is None and run is None and outcome is None and claimed is None:
            return None
        return Record(
            json.loads(ref) if ref else None,
            json.loads(run) if run else {},
            json.loads(outcome) if outcome else None,
        )

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        key, _ = self._keys(command_id)
        async with self._guard():
            stored = await self._record_outcome_script(
                keys=[key], args=[json.dumps(outcome, sort_keys=True), self._retention_ms]
            )
        result: dict[str, Any] = json.loads(stored)
        return result

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        key, _ = self._keys(command_id)
        async with self._guard():
            stored = await self._redis.hget(key, "outcome")
        return None if stored is None else dict(json.loads(stored))

    async def forget_outcome(self, command_id: str) -> None:
        key, _ = self._keys(command_id)
        async with self._guard():
            await self._redis.hdel(key, "outcome")

    async def ping(self) -> None:
        async with self._guard():
            await self._redis.ping()

    async def aclose(self) -> None:
        # The pool was passed in, so redis-py would leave it open: close it explicitly.
        await self._redis.aclose(close_connection_pool=True)
