"""`RedisStore` on the local Redis: what the store contract (test_store_contract.py) leaves open,
found by the mutation run (scripts/mutation, TESTING.md).

- Keys are where the class says: `<prefix>cmd:<id>` (a hash) and `<prefix>claim:<id>` (the
  lease), the prefix `flowgate:` unless one is given.
- Entries expire after the retention, not a moment later.
- `lease_left` of a busy claim is what is left of the lease, in seconds.
- `lookup` (both stores): nothing for an unseen id; else the reference, what the run is (kept
  until a trigger names another) and the outcome, as recorded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bench.redis_keys import delete_keys_under
from tests.conftest import REDIS_URL
from workers.idempotency import (
    IdempotencyStore,
    MemoryStore,
    Record,
    RedisStore,
    RunEvent,
    RunState,
)

pytestmark = pytest.mark.integration


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


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, client: aioredis.Redis
) -> AsyncIterator[IdempotencyStore]:
    prefix = f"flowgate-test:{uuid.uuid4().hex}:"
    made: IdempotencyStore = (
        MemoryStore() if request.param == "memory" else RedisStore(REDIS_URL, prefix=prefix)
    )
    try:
        yield made
    finally:
        await made.aclose()
        await delete_keys_under(client, prefix)


RUN = {"command_type": "trigger-batch", "connection": "pbsm-prod"}


async def test_lookup_of_an_unseen_id_is_none(store: IdempotencyStore) -> None:
    assert await store.lookup("unseen") is None


async def test_lookup_tells_what_is_recorded_as_it_is_recorded(store: IdempotencyStore) -> None:
    await store.claim("c", owner="a", lease=30.0)
    assert await store.lookup("c") == Record(None, {}, None)
    await store.record_trigger("c", {"run": "R1"}, run=RUN)
    assert await store.lookup("c") == Record({"run": "R1"}, RUN, None)
    await store.record_outcome("c", {"kind": "succeeded"})
    assert await store.lookup("c") == Record({"run": "R1"}, RUN, {"kind": "succeeded"})


async def test_a_trigger_that_names_no_run_keeps_the_one_recorded(store: IdempotencyStore) -> None:
    await store.record_trigger("c", {"run": "R1"}, run=RUN)
    await store.record_trigger("c", {"run": "R2"})
    assert await store.lookup("c") == Record({"run": "R2"}, RUN, None)
    other = {"command_type": "trigger-batch", "connection": "eu"}
    await store.record_trigger("c", {"run": "R3"}, run=other)
    found = await store.lookup("c")
    assert found is not None and found.run == other
    # What lookup hands out is a copy: changing it changes nothing stored.
    found.run["connection"] = "changed"
    assert await store.lookup("c") == Record({"run": "R3"}, other, None)


async def test_a_run_recorded_before_the_index_joins_it_as_of_its_next_change(
    client: aioredis.Redis,
) -> None:
    """An older flowgate recorded the reference only: no trigger time, not in the index."""
    prefix = f"flowgate-test:{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, prefix=prefix)
    try:
        await client.hset(f"{prefix}cmd:c", mapping={"vendor_ref": '{"run": "R1"}'})
        assert await store.runs() == []
        before = time.time()
        state = RunState("ONGOING", before)
        await store.record_status("c", state, event=RunEvent("progress", "ONGOING", before))
        [view] = await store.runs()
        assert before <= view.triggered_at <= time.time()
        assert view.state == state
    finally:
        await store.aclose()
        await delete_keys_under(client, prefix)
