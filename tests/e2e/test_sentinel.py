"""The idempotency store on a replicated Redis watched by Sentinel: a primary, a replica and
three sentinels on this machine (tests/sentinel.py). Claims wait for the replica
(`replicas = 1`), so the primary killed right after a claim does not lose it: after the
failover the command is still claimed, and a redelivery cannot trigger the vendor again.
Without the wait, a claim the replica had not got yet is lost with the primary."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from tests.sentinel import Replicated, replicated
from tests.waiting import poll_until
from workers.idempotency import Claim, RedisStore, StoreUnavailable

pytestmark = pytest.mark.e2e


@pytest.fixture
def servers() -> Iterator[Replicated]:
    with replicated() as started:
        yield started


async def claim_once_up(store: RedisStore, command_id: str, *, owner: str) -> Claim:
    """The claim, as soon as the store answers again (a failover in progress refuses it)."""

    async def claim() -> Claim | None:
        with contextlib.suppress(StoreUnavailable):
            return await store.claim(command_id, owner=owner, lease=60)
        return None

    found = await poll_until(claim, lambda c: c is not None, timeout=30, interval=0.2)
    assert found is not None
    return found


async def test_a_claim_survives_the_primary_dying_right_after_it(servers: Replicated) -> None:
    store = RedisStore(servers.url, prefix="flowgate-test:", replicas=1, replica_wait=2.0)
    try:
        assert (await store.claim("c1", owner="first", lease=60)).state == "new"
        # The primary dies at once; the sentinels promote the replica.
        primary, replica = servers.ports
        servers.kill(primary)
        assert await asyncio.to_thread(servers.wait_promoted, primary) == replica

        # The claim is on the new primary: a redelivery finds it held, not new.
        again = await claim_once_up(store, "c1", owner="second")
        assert again.state == "busy"
        # And the store goes on working on the new primary, with no replica left to wait for
        # (WAIT times out: a claim short of its replicas is released and refused).
        with pytest.raises(StoreUnavailable, match="0 of 1 Redis replicas"):
            await store.claim("c2", owner="first", lease=60)
    finally:
        await store.aclose()
    plain = RedisStore(servers.url, prefix="flowgate-test:")
    try:
        # The refused claim was released: the command can be claimed again.
        assert (await plain.claim("c2", owner="other", lease=60)).state == "new"
    finally:
        await plain.aclose()


@pytest.mark.parametrize("replicas", [0, 1])
async def test_a_claim_its_replica_missed_is_lost_unless_claims_wait(
    servers: Replicated, replicas: int
) -> None:
    """The window `replicas` closes: the primary acknowledges a claim its replica never gets
    (cut off, as in a partition, so the test does not depend on catching the replication
    stream in flight), and dies. With `replicas = 0` the claim was granted and is gone after
    the failover: a redelivery claims the command anew and the vendor is called twice. With
    `replicas = 1` the claim was refused, the vendor never called: claiming anew is right."""
    primary, replica = servers.ports
    store = RedisStore(servers.url, prefix="flowgate-test:", replicas=replicas, replica_wait=0.2)
    try:
        await asyncio.to_thread(servers.cut_replication, primary, replica)
        try:
            granted = (await store.claim("c1", owner="first", lease=60)).state == "new"
        except StoreUnavailable:
            granted = False
        assert granted == (replicas == 0)
        assert not await asyncio.to_thread(servers.holds, replica, "flowgate-test:cmd:c1")
        servers.kill(primary)
        assert await asyncio.to_thread(servers.wait_promoted, primary) == replica
    finally:
        await store.aclose()
    plain = RedisStore(servers.url, prefix="flowgate-test:")
    try:
        again = await claim_once_up(plain, "c1", owner="second")
        # Granted and lost (a second trigger), or never granted (the first one's only).
        assert again.state == "new"
    finally:
        await plain.aclose()
