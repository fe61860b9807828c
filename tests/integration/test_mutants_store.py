"""`RedisStore` on the local Redis: what the store contract (test_store_contract.py) leaves open,
found by the mutation run (scripts/mutation, TESTING.md).

- Keys are where the class says: `<prefix>cmd:<id>` (a hash) and `<prefix>claim:<id>` (the
  lease), the prefix `flowgate:` unless one is given.
- Entries expire after the retention, not a moment later.
- `lease_left` of a busy claim is what is left of the lease, in seconds.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from workers.idempotency import RedisStore

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("FLOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_keys_are_prefixed_flowgate_unless_told_otherwise(client: aioredis.Redis) -> None:
    cid = f"mutants-{uuid.uuid4()}"
    store = RedisStore(REDIS_URL)
    try:
        await store.claim(cid, owner="a", lease=30.0)
        assert await client.hget(f"flowgate:cmd:{cid}", "claimed") == "a"
        assert await client.get(f"flowgate:claim:{cid}") == "a"
    finally:
        await store.aclose()
        await client.delete(f"flowgate:cmd:{cid}", f"flowgate:claim:{cid}")


async def test_entries_expire_after_the_retention_not_later(client: aioredis.Redis) -> None:
    prefix = f"flowgate-test:{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, retention=100.0, prefix=prefix)
    try:
        await store.claim("c", owner="a", lease=30.0)
        await store.record_trigger("c", {"run": "R1"})
        await store.record_outcome("c", {"kind": "succeeded"})
        ttl = await client.pttl(f"{prefix}cmd:c")
        assert 99_000 < ttl <= 100_000
    finally:
        await store.aclose()
        await client.delete(f"{prefix}cmd:c", f"{prefix}claim:c")


async def test_a_busy_claim_tells_what_is_left_of_the_lease(client: aioredis.Redis) -> None:
    prefix = f"flowgate-test:{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, prefix=prefix)
    try:
        await store.claim("c", owner="a", lease=1000.0)
        busy = await store.claim("c", owner="b", lease=1000.0)
        assert busy.state == "busy"
        assert 999.0 < busy.lease_left <= 1000.0
        assert busy.lease_left > 999.5, "seconds, not a fraction off"
    finally:
        await store.aclose()
        await client.delete(f"{prefix}cmd:c", f"{prefix}claim:c")
