"""The idempotency store's promises, held to by `MemoryStore` and by `RedisStore` alike.

Every test runs against both stores (the real local Redis under a key prefix of its own, whose
keys are deleted afterwards). The rules are those of `workers/idempotency.py`: a claim is
`new`, `busy`, `unknown`, `triggered` or `finished`; a lease that runs out with no recorded
trigger makes the outcome unknown; only the owner releases, and never once a trigger is
recorded; `force` takes a lapsed claim but never a live one; the first outcome recorded stands;
a failure can be forgotten for a replay; everything is forgotten after the retention; a
reachable store answers `ping`; and an unreachable Redis is `StoreUnavailable`, on every call.

The runs' view (`flowgate runs`): a recorded trigger puts the run in the index of runs in
flight with its state and an `accepted` entry; a state change replaces the state and adds its
event; the first outcome takes the run out and ends its history; a change after the outcome,
or for a run nothing is recorded of, changes nothing; the history keeps the last `HISTORY`
events; listings filter by type, connection and stuck, oldest trigger first, thousands at once;
a run forgotten after the retention leaves the index.

Leases and retentions here are fractions of a second, and a test that has to see one run out
polls the store until it has (`poll_until`), with a deadline.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.redis_keys import delete_keys_under
from tests.conftest import REDIS_URL
from tests.waiting import poll_until
from workers.idempotency import (
    HISTORY,
    RECENT,
    Claim,
    IdempotencyStore,
    MemoryStore,
    Record,
    RedisStore,
    RunEvent,
    RunState,
    StoreUnavailable,
)

pytestmark = pytest.mark.integration

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
            await delete_keys_under(REDIS_URL, prefix)


@pytest.fixture
def store(new_store: StoreFactory) -> IdempotencyStore:
    return new_store()


@asynccontextmanager
async def raw_redis_store() -> AsyncIterator[tuple[RedisStore, aioredis.Redis, str]]:
    """A Redis store under a prefix of its own (retention 100 s), a plain client to look at
    its keys, and the prefix; every key under it is deleted afterwards."""
    prefix = f"flowgate-test:{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, retention=100.0, prefix=prefix)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield store, client, prefix
    finally:
        await store.aclose()
        await delete_keys_under(client, prefix)
        await client.aclose()


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


async def test_recent_lists_first_outcomes_newest_first_once_each(
    store: IdempotencyStore,
) -> None:
    first, second = command_id(), command_id()
    failed = outcome(
        "failed",
        command_type="trigger-batch",
        connection="prod",
        error={"kind": "vendor_rejected", "message": "batch unknown"},
    )
    await store.record_outcome(first, failed)
    await store.record_outcome(second, outcome("succeeded", status="DONE"))
    await store.record_outcome(first, outcome("succeeded"))  # not the first: not listed again
    recent = await store.recent()
    assert [e.command_id for e in recent] == [second, first]
    ended = recent[1]
    assert (ended.command_type, ended.connection, ended.kind) == ("trigger-batch", "prod", "failed")
    assert (ended.error_kind, ended.error_message) == ("vendor_rejected", "batch unknown")
    assert recent[0].status == "DONE"
    assert recent[0].at >= ended.at > 0
    assert [e.command_id for e in await store.recent(1)] == [second]
    assert await store.recent(0) == []


async def test_recent_keeps_the_last_outcomes_only(store: IdempotencyStore) -> None:
    ids = [command_id() for _ in range(RECENT + 5)]
    for cid in ids:
        await store.record_outcome(cid, outcome("succeeded"))
    recent = await store.recent(RECENT + 5)
    assert [e.command_id for e in recent] == ids[::-1][:RECENT]


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


# --- runs in flight (flowgate runs) -----------------------------------------------------

PBSM = {"command_type": "trigger-batch", "connection": "default"}
T0 = 1_800_000_000.0  # the trigger, in epoch seconds
SCHEDULE = (1.0, 1.2, 600.0)


def first_state(status: str | None = None, at: float = T0) -> RunState:
    return RunState(status, at, next_poll_at=at + 1, deadline=at + 3600, schedule=SCHEDULE)


def changed(status: str, at: float, polls: int, *, stuck: bool = False) -> RunState:
    return RunState(status, at, next_poll_at=at + 2, polls=polls, stuck=stuck, deadline=T0 + 3600)


async def test_a_recorded_trigger_enters_the_runs_in_flight(store: IdempotencyStore) -> None:
    cid = command_id()
    ref = {"batch_run_id": "B2001_1"}
    await store.claim(cid, owner="a", lease=LONG)
    await store.record_trigger(cid, ref, run=PBSM, state=first_state("NEW"))
    [view] = await store.runs()
    assert (view.command_id, view.command_type, view.connection) == (cid, *PBSM.values())
    assert (view.vendor_ref, view.triggered_at, view.outcome) == (ref, T0, None)
    assert view.state == first_state("NEW")
    assert view.history == (), "a listing leaves the history out"
    shown = await store.run(cid)
    assert shown is not None and shown.command_id == cid
    assert shown.history == (RunEvent("accepted", "NEW", T0),)
    # The view rides along: the idempotency record is what it was.
    assert await store.claim(cid, owner="b", lease=LONG) == Claim("triggered", vendor_ref=ref)


async def test_a_trigger_without_a_state_is_in_flight_from_now(store: IdempotencyStore) -> None:
    cid = command_id()
    before = time.time()
    await store.record_trigger(cid, {"r": "1"})
    [view] = await store.runs()
    assert before <= view.triggered_at <= time.time()
    assert (view.state.status, view.state.since, view.command_type) == (
        None,
        view.triggered_at,
        None,
    )


async def test_a_state_change_replaces_the_state_and_adds_its_event(
    store: IdempotencyStore,
) -> None:
    cid = command_id()
    await store.record_trigger(cid, {"r": "1"}, run=PBSM, state=first_state())
    ongoing = changed("ONGOING", T0 + 5, 3)
    await store.record_status(cid, ongoing, event=RunEvent("progress", "ONGOING", T0 + 5))
    stuck = changed("ONGOING", T0 + 5, 7, stuck=True)
    await store.record_status(cid, stuck, event=RunEvent("progress", "ONGOING", T0 + 65, True))
    [view] = await store.runs()
    assert view.state == stuck
    assert view.triggered_at == T0, "the trigger time stays"
    shown = await store.run(cid)
    assert shown is not None and [e.to_json() for e in shown.history] == [
        {"kind": "accepted", "status": None, "at": T0},
        {"kind": "progress", "status": "ONGOING", "at": T0 + 5},
        {"kind": "progress", "status": "ONGOING", "at": T0 + 65, "stuck": True},
    ]


async def test_the_first_outcome_takes_the_run_out_and_ends_its_history(
    store: IdempotencyStore,
) -> None:
    cid, other = command_id(), command_id()
    for c in (cid, other):
        await store.record_trigger(c, {"r": c}, run=PBSM, state=first_state())
    before = time.time()
    await store.record_outcome(cid, outcome("succeeded", status="SUCCESSFUL"))
    await store.record_outcome(cid, outcome("failed", status="LATE"))  # the first one stands
    assert [v.command_id for v in await store.runs()] == [other]
    shown = await store.run(cid)
    assert shown is not None and shown.outcome == "succeeded"
    assert [(e.kind, e.status) for e in shown.history] == [
        ("accepted", None),
        ("succeeded", "SUCCESSFUL"),
    ]
    assert before <= shown.history[-1].at <= time.time()
    # A change that comes after the outcome (a late poll chain) changes nothing.
    late = changed("ONGOING", T0 + 9, 9)
    await store.record_status(cid, late, event=RunEvent("progress", "ONGOING", T0 + 9))
    assert [v.command_id for v in await store.runs()] == [other]
    again = await store.run(cid)
    assert again is not None and again.history == shown.history and again.state == shown.state


async def test_a_trigger_recorded_after_the_outcome_keeps_the_run_out_of_the_index(
    store: IdempotencyStore,
) -> None:
    """The worker records the trigger together with the first poll request, so a poll chain
    can change and finish the run first: the reference is kept, the run stays finished."""
    cid, other = command_id(), command_id()
    ref = {"batch_run_id": "B2001_1"}
    await store.claim(cid, owner="a", lease=LONG)
    await store.record_trigger(other, {"r": "other"}, run=PBSM, state=first_state())
    early = changed("ONGOING", T0 + 1, 1)
    await store.record_status(cid, early, event=RunEvent("progress", "ONGOING", T0 + 1))
    done = outcome("succeeded", status="SUCCESSFUL")
    assert await store.record_outcome(cid, done) == done
    await store.record_trigger(cid, ref, run=PBSM, state=first_state("NEW"))
    assert [v.command_id for v in await store.runs()] == [other]
    # Neither the trigger's first state nor its `accepted` entry is put on the finished run.
    assert await store.run(cid) is None
    assert await store.lookup(cid) == Record(ref, PBSM, done)
    assert await store.claim(cid, owner="b", lease=LONG) == Claim("finished", ref, done)
    assert await store.record_outcome(cid, outcome("failed")) == done, "the first one stands"
    assert [v.command_id for v in await store.runs()] == [other]


async def test_a_change_recorded_before_its_trigger_is_dropped(store: IdempotencyStore) -> None:
    """The other order of the same race: the change is lost to the view (its event was
    published all the same), the trigger's state stands until the next change."""
    cid = command_id()
    await store.claim(cid, owner="a", lease=LONG)
    early = changed("ONGOING", T0 + 1, 1)
    await store.record_status(cid, early, event=RunEvent("progress", "ONGOING", T0 + 1))
    await store.record_trigger(cid, {"r": "1"}, run=PBSM, state=first_state("NEW"))
    [view] = await store.runs()
    assert (view.command_id, view.state) == (cid, first_state("NEW"))
    later = changed("FINISHING", T0 + 9, 4)
    await store.record_status(cid, later, event=RunEvent("progress", "FINISHING", T0 + 9))
    shown = await store.run(cid)
    assert shown is not None and shown.state == later
    assert [(e.kind, e.status) for e in shown.history] == [
        ("accepted", "NEW"),
        ("progress", "FINISHING"),
    ]


async def test_commands_that_were_never_followed_are_no_runs(store: IdempotencyStore) -> None:
    answered, claimed, unseen = command_id(), command_id(), command_id()
    await store.claim(answered, owner="a", lease=LONG)
    await store.record_outcome(answered, outcome("succeeded"))  # answered at once (add-paylink)
    await store.claim(claimed, owner="a", lease=LONG)
    await store.record_status(unseen, changed("X", T0, 1), event=RunEvent("progress", "X", T0))
    for cid in (answered, claimed, unseen):
        assert await store.run(cid) is None, cid
    assert await store.runs() == []
    assert await store.lookup(unseen) is None, "a change never brings a record into being"


async def test_a_runs_history_keeps_its_last_events(store: IdempotencyStore) -> None:
    cid = command_id()
    await store.record_trigger(cid, {"r": "1"}, run=PBSM, state=first_state())
    for n in range(HISTORY + 10):
        state = changed(f"S{n}", T0 + n, n)
        await store.record_status(cid, state, event=RunEvent("progress", f"S{n}", T0 + n))
    await store.record_outcome(cid, outcome("failed", status="ERROR"))
    shown = await store.run(cid)
    assert shown is not None and len(shown.history) == HISTORY
    assert shown.history[0].status == f"S{11}"
    assert (shown.history[-2].status, shown.history[-1].kind) == (f"S{HISTORY + 9}", "failed")


async def test_runs_are_listed_oldest_first_and_filtered(store: IdempotencyStore) -> None:
    made = {
        "late": ({"command_type": "run-job", "connection": "eu"}, T0 + 30, False),
        "first": (PBSM, T0, True),
        "middle": ({"command_type": "trigger-batch", "connection": "prod"}, T0 + 10, False),
    }
    ids = {name: command_id() for name in made}
    for name, (run, at, stuck) in made.items():
        await store.record_trigger(ids[name], {"r": name}, run=run, state=first_state(at=at))
        if stuck:
            state = changed("NEW", at, 4, stuck=True)
            await store.record_status(ids[name], state, event=RunEvent("progress", "NEW", at))

    async def listed(**filters: Any) -> list[str]:
        names = {cid: name for name, cid in ids.items()}
        return [names[v.command_id] for v in await store.runs(**filters)]

    assert await listed() == ["first", "middle", "late"]
    assert await listed(command_type="trigger-batch") == ["first", "middle"]
    assert await listed(connection="eu") == ["late"]
    assert await listed(command_type="trigger-batch", connection="prod") == ["middle"]
    assert await listed(stuck=True) == ["first"]
    assert await listed(stuck=False) == ["middle", "late"]
    assert await listed(connection="nowhere") == []


async def test_thousands_of_runs_in_flight_are_listed(store: IdempotencyStore) -> None:
    count = 1234  # more than two of RedisStore's batches of 500
    ids = [command_id() for _ in range(count)]
    await asyncio.gather(
        *(
            store.record_trigger(cid, {"r": str(n)}, run=PBSM, state=first_state(at=T0 + n))
            for n, cid in enumerate(ids)
        )
    )
    views = await store.runs()
    assert [v.command_id for v in views] == ids
    assert [v.vendor_ref["r"] for v in views[-3:]] == [
        str(count - 3),
        str(count - 2),
        str(count - 1),
    ]


async def test_a_run_forgotten_after_the_retention_leaves_the_index(
    new_store: StoreFactory,
) -> None:
    store = new_store(retention=0.5)
    cid = command_id()
    await store.record_trigger(cid, {"r": "1"}, run=PBSM, state=first_state())
    assert [v.command_id for v in await store.runs()] == [cid]

    async def look() -> list[str]:
        return [v.command_id for v in await store.runs()]

    await poll_until(look, lambda listed: listed == [])
    assert await store.run(cid) is None


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
        await delete_keys_under(REDIS_URL, prefix)


async def test_redis_keeps_the_runs_view_under_its_prefix_for_the_retention() -> None:
    """The index is one sorted set, `<prefix>runs`, scored by trigger time; a run's history
    is a list, `<prefix>hist:<id>`, that expires with the rest of its keys."""
    async with raw_redis_store() as (store, client, prefix):
        cid = command_id()
        await store.record_trigger(cid, {"r": "1"}, run=PBSM, state=first_state())
        assert await client.zscore(f"{prefix}runs", cid) == T0
        assert await client.llen(f"{prefix}hist:{cid}") == 1
        for key in (f"{prefix}hist:{cid}", f"{prefix}cmd:{cid}"):
            assert 99_000 < await client.pttl(key) <= 100_000, key
        await store.record_outcome(cid, outcome("succeeded"))
        assert await client.zscore(f"{prefix}runs", cid) is None
        assert await client.llen(f"{prefix}hist:{cid}") == 2


async def test_redis_a_trigger_recorded_after_the_outcome_writes_no_index_entry() -> None:
    """What `runs()` would tidy away unseen: no index member and no history for the run."""
    async with raw_redis_store() as (store, client, prefix):
        cid = command_id()
        await store.record_outcome(cid, outcome("succeeded"))
        await store.record_trigger(cid, {"r": "1"}, run=PBSM, state=first_state())
        assert await client.zscore(f"{prefix}runs", cid) is None
        assert await client.exists(f"{prefix}hist:{cid}") == 0
        assert await client.hget(f"{prefix}cmd:{cid}", "state") is None
        assert await client.exists(f"{prefix}claim:{cid}") == 0


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
        "record_status": lambda: store.record_status(
            cid, changed("X", T0, 1), event=RunEvent("progress", "X", T0)
        ),
        "runs": store.runs,
        "run": lambda: store.run(cid),
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


async def test_redis_a_claim_no_replica_acknowledged_is_refused_and_released() -> None:
    """`replicas = 1` on a Redis with no replica (the local one): the claim's WAIT sees 0 of
    1, so the claim is refused as the store being unavailable, saying so, and released in the
    same breath: a later claim (once a replica is back) finds the id new, not `unknown`."""
    prefix = f"flowgate-test:{uuid.uuid4().hex}:"
    waiting = RedisStore(REDIS_URL, prefix=prefix, replicas=1, replica_wait=0.05)
    plain = RedisStore(REDIS_URL, prefix=prefix)
    cid = command_id()
    try:
        with pytest.raises(StoreUnavailable, match=r"reached 0 of 1 Redis replicas within 50 ms"):
            await waiting.claim(cid, owner="a", lease=LONG)
        assert (await plain.claim(cid, owner="b", lease=LONG)).state == "new"
        # Anything but a new claim needs no replica: it changed nothing.
        assert (await waiting.claim(cid, owner="c", lease=LONG)).state == "busy"
    finally:
        await waiting.aclose()
        await plain.aclose()
        await delete_keys_under(REDIS_URL, prefix)
