"""`MemoryStore` on a clock the test moves (`workers/idempotency.py`): the edges of leases and
retention, which the store contract (tests/integration/test_store_contract.py) can only wait out.

Found by the mutation run (scripts/mutation, TESTING.md):

- A lease ends at its end: a claim at exactly that moment is no longer `busy`.
- An entry is forgotten at exactly its retention.
- A released claim frees the id at once, wherever the clock started (a monotonic clock's zero
  is arbitrary).
- A trigger can be recorded for an id with no live entry (its claim forgotten), and it is kept
  for the whole retention; recording it never drops an outcome already recorded.
- `lease_left` of a busy claim is what is left of the lease.
- What `lookup` knows of an id is forgotten with the rest at the retention.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workers import idempotency
from workers.idempotency import Claim, MemoryStore

CID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """`workers.idempotency`'s monotonic clock, at 0 until the test moves it."""
    fake = Clock()
    monkeypatch.setattr(idempotency, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


async def test_a_lease_ends_at_its_end(clock: Clock) -> None:
    store = MemoryStore()
    assert await store.claim(CID, owner="a", lease=10.0) == Claim("new")
    clock.now = 9.5
    busy = await store.claim(CID, owner="b", lease=10.0)
    assert busy == Claim("busy", lease_left=0.5)
    clock.now = 10.0
    assert await store.claim(CID, owner="b", lease=10.0) == Claim("unknown")


async def test_an_entry_is_forgotten_at_exactly_its_retention(clock: Clock) -> None:
    store = MemoryStore(retention=100.0)
    await store.claim(CID, owner="a", lease=1.0)
    await store.record_trigger(CID, {"run": "R1"})
    await store.record_outcome(CID, {"kind": "succeeded"})
    clock.now = 99.9
    assert await store.outcome(CID) == {"kind": "succeeded"}
    clock.now = 100.0
    assert await store.outcome(CID) is None
    assert await store.claim(CID, owner="b", lease=1.0) == Claim("new")


@pytest.mark.parametrize("start", [0.0, 0.5, 10_000.0])
async def test_a_released_claim_frees_the_id_at_once(clock: Clock, start: float) -> None:
    clock.now = start
    store = MemoryStore()
    await store.claim(CID, owner="a", lease=5.0)
    await store.release(CID, owner="a")
    assert await store.claim(CID, owner="b", lease=5.0) == Claim("new")


async def test_a_trigger_recorded_after_its_claim_was_forgotten_is_kept(clock: Clock) -> None:
    store = MemoryStore(retention=100.0)
    await store.claim(CID, owner="a", lease=1.0)
    clock.now = 150.0  # the claim (and its entry) are gone
    await store.record_trigger(CID, {"run": "R1"})
    clock.now = 249.0
    assert await store.claim(CID, owner="b", lease=1.0) == Claim("triggered", {"run": "R1"})
    clock.now = 250.0
    assert await store.claim(CID, owner="b", lease=1.0) == Claim("new")


async def test_a_trigger_for_an_unseen_id_is_kept(clock: Clock) -> None:
    store = MemoryStore()
    await store.record_trigger(CID, {"run": "R1"})
    assert await store.claim(CID, owner="b", lease=1.0) == Claim("triggered", {"run": "R1"})


async def test_recording_a_trigger_never_drops_the_recorded_outcome(clock: Clock) -> None:
    store = MemoryStore(retention=100.0)
    await store.claim(CID, owner="a", lease=1.0)
    await store.record_outcome(CID, {"kind": "failed"})
    clock.now = 60.0
    await store.record_trigger(CID, {"run": "R1"})
    assert await store.outcome(CID) == {"kind": "failed"}
    # ...and the retention still counts from the first record.
    clock.now = 100.0
    assert await store.outcome(CID) is None


async def test_lookup_forgets_with_the_retention(clock: Clock) -> None:
    store = MemoryStore(retention=100.0)
    await store.record_trigger(CID, {"run": "R1"}, run={"command_type": "trigger-batch"})
    clock.now = 99.0
    found = await store.lookup(CID)
    assert found is not None and found.run == {"command_type": "trigger-batch"}
    clock.now = 100.0
    assert await store.lookup(CID) is None
