"""The idempotency store's promises, held to by `MemoryStore` and by `RedisStore` alike.

Every test runs against both stores (the real local Redis under a key prefix of its own, whose
keys are deleted afterwards). The rules are those of `workers/idempotency.py`: a claim is
`new`, `busy`, `unknown`, `triggered` or `finished`; a lease that runs out with no recorded
trigger makes the outcome unknown; only the owner releases, and never once a trigger is
recorded; `force` takes a lapsed claim but never a live one; the first outcome recorded stands;
a failure can be forgotten for a replay; everything is forgotten after the retention; a
reachable store answers `ping`; and an unreachable Redis is `StoreUnavailable`, on every call.

Leases and retentions here are fractions of a second, and a test that has to see one run out
polls the store until it has (`poll_until`), with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.waiting import poll_until
from workers.idempotency import (
    Claim,
    IdempotencyStore,
    MemoryStore,
    RedisStore,
    StoreUnavailable,
)

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("FLOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LONG = 30.0  # a lease no test outlives
SHORT = 0.2  # a lease a test waits out

StoreFactory = Callable[..., IdempotencyStore]


@pytest.fixture(params=["memory", "redis"])
async def new_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Makes stores of one kind; the Redis ones share a key prefix of this test's own."""
    prefix = f"flowgate-test:{uuid.uuid4().hex}:"
    made: list[IdempotencyStore] = []

    def make(*, retention: float = 3600.0) -> IdempotencyStore:
        store: IdempotencyStore
        if request.param == "memory":
            store = MemoryStore(retention=retention)
        else:
            store = RedisStore(REDIS_URL, retention=retention, prefix=prefix)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.aclose()
        if request.param == "redis":
            client = aioredis.Redis.from_url(REDIS_URL)
            try:
                keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()


@pytest.fixture
def store(new_store: StoreFactory) -> IdempotencyStore:
    return new_store()


def command_id() -> str:
    return str(uuid.uuid4())


def outcome(kind: str, **data: Any) -> dict[str, Any]:
    return {"kind": kind, "data": {"command_id": "c", "result": {"rows": [1, "two", None]}, **data}}


async def lapsed(store: IdempotencyStore, cid: str, *, owner: str = "watcher") -> Claim:
    """The first claim by `owner` that is no longer `busy`: looking while the lease is live
    changes nothing, so this only waits for it to run out."""

    async def look() -> Claim:
        return await store.claim(cid, owner=owner, lease=LONG)

    return await poll_until(look, lambda claim: claim.state != "busy")


# --- claim states -----------------------------------------------------------------------


async def test_first_claim_is_new(store: IdempotencyStore) -> None:
    claim = await store.claim(command_id(), owner="a", lease=LONG)
    assert claim == Claim("new")


async def test_live_claim_is_busy_for_every_other_owner_even_with_force(
    store: IdempotencyStore,
) -> None:
    cid = command_id()
    assert (await store.claim(cid, owner="a", lease=LONG)).state == "new"
    busy = await store.claim(cid, owner="b", lease=LONG)
    assert busy.state == "busy"
    assert 0 < busy.lease_left <= LONG
    assert busy.vendor_ref is None and busy.outcome is None
    forced = await store.claim(cid, owner="b", lease=LONG, force=True)
    assert forced.state == "busy", "force never takes a live claim"
    assert (await store.claim(cid, owner="c", lease=LONG)).state == "busy", "a still holds it"


async def test_concurrent_claims_make_exactly_one_owner(store: IdempotencyStore) -> None:
    cid = command_id()
    claims = await asyncio.gather(
        *(store.claim(cid, owner=f"worker-{i}", lease=LONG) for i in range(20))
    )
    assert sorted(c.state for c in claims) == ["busy"] * 19 + ["new"]


async def test_claim_lapsed_without_a_trigger_is_unknown_and_stays_unknown(
    store: IdempotencyStore,
) -> None:
    cid = command_id()
    assert (await store.claim(cid, owner="dead-worker", lease=SHORT)).state == "new"
    assert await lapsed(store, cid) == Claim("unknown")
    # Answering `unknown` takes nothing: everyone keeps getting it, the last owner too.
    assert (await store.claim(cid, owner="b", lease=LONG)).state == "unknown"
    assert (await store.claim(cid, owner="dead-worker", lease=LONG)).state == "unknown"


async def test_force_takes_a_lapsed_claim_and_then_holds_it(store: IdempotencyStore) -> None:
    cid = command_id()
    await store.claim(cid, owner="dead-worker", lease=SHORT)
    assert (await lapsed(store, cid)).state == "unknown"
    assert (await store.claim(cid, owner="b", lease=LONG, force=True)) == Claim("new")
    assert (await store.claim(cid, owner="c", lease=LONG)).state == "busy"
    assert (await store.claim(cid, owner="c", lease=LONG, force=True)).state == "busy"


async def test_force_on_an_unseen_id_is_a_plain_new_claim(store: IdempotencyStore) -> None:
    cid = command_id()
    assert (await store.claim(cid, owner="a", lease=LONG, force=True)) == Claim("new")
    assert (await store.claim(cid, owner="b", lease=LONG)).state == "busy"


async def test_recorded_trigger_is_resumed_by_everyone(store: IdempotencyStore) -> None:
    cid = command_id()
    ref = {"batch_run_id": "B2001_1", "other": "x"}
    await store.claim(cid, owner="a", lease=LONG)
    await store.record_trigger(cid, ref)
    for owner, force in (("b", False), ("b", True), ("a", False)):
        claim = await store.claim(cid, owner=owner, lease=LONG, force=force)
        assert claim == Claim("triggered", vendor_ref=ref), (owner, force)


async def test_finished_answers_the_outcome_and_the_reference(store: IdempotencyStore) -> None:
    cid = command_id()
    ref = {"event_id": "42"}
    done = outcome("succeeded", vendor_ref=ref)
    await store.claim(cid, owner="a", lease=LONG)
    await store.record_trigger(cid, ref)
    assert await store.record_outcome(cid, done) == done
    for owner, force in (("b", False), ("b", True), ("a", False)):
        claim = await store.claim(cid, owner=owner, lease=LONG, force=force)
        assert claim == Claim("finished", vendor_ref=ref, outcome=done), (owner, force)


async def test_finished_without_a_trigger_has_no_reference(store: IdempotencyStore) -> None:
    cid = command_id()
    failed = outcome("failed", error={"kind": "rejected", "message": "400"})
    await store.claim(cid, owner="a", lease=LONG)
    await store.record_outcome(cid, failed)
    assert (await store.claim(cid, owner="b", lease=LONG)) == Claim("finished", outcome=failed)


# --- release ----------------------------------------------------------------------------


async def test_release_by_the_owner_frees_the_id(store: IdempotencyStore) -> None:
    cid = command_id()
    await store.claim(cid, owner="a", lease=LONG)
    await store.release(cid, owner="a")
    # Not `busy` (the lease is gone) and not `unknown` (the trigger certainly did not happen).
    assert (await store.claim(cid, owner="b", lease=LONG)) == Claim("new")


async def test_release_by_another_owner_leaves_a_live_claim(store: IdempotencyStore) -> None:
    cid = command_id()
    await store.claim(cid, owner="a", lease=LONG)
    await store.release(cid, owner="b")
    assert (await store.claim(cid, owner="c", lease=LONG)).state == "busy"


async def test_release_by_another_owner_leaves_a_lapsed_claim_unknown(
    store: IdempotencyStore,
) -> None:
    cid = command_id()
    await store.claim(cid, owner="a", lease=SHORT)
    await store.release(cid, owner="b")
    assert (await lapsed(store, cid)).state == "unknown"


async def test_release_of_a_lapsed_claim_never_drops_the_next_owners(
    store: IdempotencyStore,
) -> None:
    cid = command_id()
    await store.claim(cid, owner="a", lease=SHORT)
    await lapsed(store, cid)
    await store.claim(cid, owner="b", lease=LONG, force=True)
    await store.release(cid, owner="a")  # a slow first owner gives up late
    assert (await store.claim(cid, owner="c", lease=LONG)).state == "busy"


async def test_the_owners_release_counts_after_its_own_lease_lapsed(
    store: IdempotencyStore,
) -> None:
    """A refused trigger call that outlived the lease: nobody claimed since, the owner knows
    the vendor refused, so the next delivery may call again (`new`, not `unknown`)."""
    cid = command_id()
    await store.claim(cid, owner="a", lease=SHORT)
    assert (await lapsed(store, cid)).state == "unknown"
    await store.release(cid, owner="a")
    assert (await store.claim(cid, owner="b", lease=LONG)) == Claim("new")


async def test_release_after_a_recorded_trigger_does_nothing(store: IdempotencyStore) -> None:
    cid = command_id()
    await store.claim(cid, owner="a", lease=LONG)
    await store.record_trigger(cid, {"batch_run_id": "R1"})
    await store.release(cid, owner="a")
    assert (await store.claim(cid, owner="b", lease=LONG)) == Claim(
        "triggered", vendor_ref={"batch_run_id": "R1"}
    )


async def test_release_of_an_unseen_id_does_nothing(store: IdempotencyStore) -> None:
    cid = command_id()
    await store.release(cid, owner="a")
    assert (await store.claim(cid, owner="a", lease=LONG)) == Claim("new")


# --- outcomes ---------------------------------------------------------------------------


async def test_first_outcome_recorded_wins_and_is_returned(store: IdempotencyStore) -> None:
    cid = command_id()
    first = outcome("succeeded", status="SUCCESSFUL")
    second = outcome("failed", error={"kind": "vendor_failed", "message": "no"})
    assert await store.record_outcome(cid, first) == first
    assert await store.record_outcome(cid, second) == first
    assert await store.outcome(cid) == first


async def test_concurrent_outcomes_leave_one_standing(store: IdempotencyStore) -> None:
    cid = command_id()
    candidates = [outcome("succeeded", status=f"chain-{i}") for i in range(10)]
    standing = await asyncio.gather(*(store.record_outcome(cid, o) for o in candidates))
    assert standing[0] in candidates
    assert all(s == standing[0] for s in standing)
    assert await store.outcome(cid) == standing[0]


async def test_outcome_of_an_id_without_one_is_none(store: IdempotencyStore) -> None:
    cid = command_id()
    assert await store.outcome(cid) is None
    await store.claim(cid, owner="a", lease=LONG)
    await store.record_trigger(cid, {"batch_run_id": "R1"})
    assert await store.outcome(cid) is None


async def test_forgotten_failure_lets_a_replay_run_again(store: IdempotencyStore) -> None:
    cid = command_id()
    failed = outcome("failed", error={"kind": "rejected", "message": "400"})
    await store.claim(cid, owner="a", lease=LONG)
    await store.release(cid, owner="a")  # refused: never triggered
    await store.record_outcome(cid, failed)
    await store.forget_outcome(cid)
    assert await store.outcome(cid) is None
    assert (await store.claim(cid, owner="replay", lease=LONG)) == Claim("new")
    succeeded = outcome("succeeded")
    assert await store.record_outcome(cid, succeeded) == succeeded, "a new outcome may stand"


async def test_forgetting_an_outcome_keeps_the_recorded_trigger(store: IdempotencyStore) -> None:
    cid = command_id()
    await store.claim(cid, owner="a", lease=LONG)
    await store.record_trigger(cid, {"batch_run_id": "R1"})
    await store.record_outcome(cid, outcome("failed", error={"kind": "vendor_failed"}))
    await store.forget_outcome(cid)
    assert (await store.claim(cid, owner="replay", lease=LONG)) == Claim(
        "triggered", vendor_ref={"batch_run_id": "R1"}
    )


async def test_forgetting_an_unseen_id_does_nothing(store: IdempotencyStore) -> None:
    cid = command_id()
    await store.forget_outcome(cid)
    assert await store.outcome(cid) is None
    assert (await store.claim(cid, owner="a", lease=LONG)) == Claim("new")


# --- retention --------------------------------------------------------------------------


async def test_everything_about_an_id_is_forgotten_after_the_retention(
    new_store: StoreFactory,
) -> None:
    store = new_store(retention=1.0)  # long enough to see it recorded first, on a busy machine
    cid = command_id()
    done = outcome("succeeded")
    await store.claim(cid, owner="a", lease=0.1)
    await store.record_trigger(cid, {"batch_run_id": "R1"})
    await store.record_outcome(cid, done)
    assert await store.outcome(cid) == done

    async def look() -> dict[str, Any] | None:
        return await store.outcome(cid)

    await poll_until(look, lambda recorded: recorded is None)
    assert (await store.claim(cid, owner="b", lease=LONG)) == Claim("new")


async def test_a_lapsed_claim_is_forgotten_after_the_retention(new_store: StoreFactory) -> None:
    store = new_store(retention=0.5)
    cid = command_id()
    await store.claim(cid, owner="dead-worker", lease=0.1)

    async def look() -> Claim:
        return await store.claim(cid, owner="b", lease=LONG)

    # busy, then unknown (neither takes anything), then forgotten: a plain new claim.
    claim = await poll_until(look, lambda c: c.state not in ("busy", "unknown"))
    assert claim == Claim("new")


# --- readiness --------------------------------------------------------------------------


async def test_a_reachable_store_answers_ping(store: IdempotencyStore) -> None:
    async with asyncio.timeout(5):
        await store.ping()  # returns: the store answers (StoreUnavailable when it does not)


# --- Redis only -------------------------------------------------------------------------


async def test_redis_stores_share_one_truth_between_processes() -> None:
    prefix = f"flowgate-test:{uuid.uuid4().hex}:"
    one, two = RedisStore(REDIS_URL, prefix=prefix), RedisStore(REDIS_URL, prefix=prefix)
    cid = command_id()
    try:
        assert (await one.claim(cid, owner="a", lease=LONG)).state == "new"
        assert (await two.claim(cid, owner="b", lease=LONG)).state == "busy"
        await one.record_trigger(cid, {"batch_run_id": "R1"})
        assert (await two.claim(cid, owner="b", lease=LONG)).state == "triggered"
        assert await two.record_outcome(cid, outcome("succeeded")) == outcome("succeeded")
        assert await one.record_outcome(cid, outcome("failed")) == outcome("succeeded")
    finally:
        await one.aclose()
        await two.aclose()
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there now


async def test_unreachable_redis_is_store_unavailable_on_every_call() -> None:
    secret = "s3cret-redis-password"
    store = RedisStore(f"redis://:{secret}@127.0.0.1:{_closed_port()}/0")
    cid = command_id()
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "claim": lambda: store.claim(cid, owner="a", lease=LONG),
        "release": lambda: store.release(cid, owner="a"),
        "record_trigger": lambda: store.record_trigger(cid, {"batch_run_id": "R1"}),
        "record_outcome": lambda: store.record_outcome(cid, outcome("succeeded")),
        "outcome": lambda: store.outcome(cid),
        "forget_outcome": lambda: store.forget_outcome(cid),
        "ping": store.ping,
    }
    try:
        for name, call in calls.items():
            with pytest.raises(StoreUnavailable) as caught:
                await call()
            # It is logged and carried in no event; still, no URL and no secret in it.
            assert secret not in str(caught.value) and secret not in repr(caught.value), name
            assert caught.value.__cause__ is None and caught.value.__suppress_context__, name
    finally:
        await store.aclose()
