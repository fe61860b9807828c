"""flowgate on a three-node RabbitMQ cluster (`scripts/cluster`): quorum queues with a member on
every node, and a worker, a poller and a client that fail over when the node they are on is
killed (SIGKILL), re-establish every consumer on another node, and answer every command."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from contracts import EventKind, TriggerBatch
from flowgate_client.aio import Client
from tests import cluster
from tests.conftest import fast_settings
from tests.rabbit_node import kill_node
from tests.waiting import poll_until
from workers.app import Flowgate, make_broker
from workers.simulators import RunningSimulators
from workers.topology import GIVEN_UP_QUEUE, POLL_QUEUE, UNROUTED_QUEUE, command_queue

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rabbit_cluster() -> Iterator[str]:
    cluster.down()  # whatever an earlier run left
    cluster.up()
    try:
        yield cluster.cluster_url()
    finally:
        cluster.down()


def _consumed_queues(n: int) -> set[str]:
    """The queues with a consumer, as node `n` sees the cluster."""
    out = cluster.node(n).ctl("list_consumers", "queue_name")
    return set(out.split()[1:])  # under the column header


async def test_workers_pollers_and_clients_fail_over_to_another_node(
    rabbit_cluster: str, sims: RunningSimulators
) -> None:
    settings = fast_settings(rabbit_cluster, sims.base_url, store="redis")
    app = Flowgate(settings, make_broker(settings))
    await app.start_worker(["trigger-batch"])
    await app.start_poller()
    wanted = {command_queue("trigger-batch"), POLL_QUEUE, UNROUTED_QUEUE, GIVEN_UP_QUEUE}
    try:
        # Every quorum queue has a member on each node.
        members = await asyncio.to_thread(
            cluster.node(2).ctl, "list_queues", "name", "members", "--no-table-headers"
        )
        poll_row = next(line for line in members.splitlines() if line.startswith(POLL_QUEUE))
        assert all(cluster.node(n).name in poll_row for n in (1, 2, 3)), poll_row

        async with Client(rabbit_cluster) as client:
            before = await client.send(TriggerBatch(batch="B2001"))
            # Both connections are on the first node of the URL: kill it.
            await asyncio.to_thread(kill_node, cluster.node(1))

            async def consumed() -> set[str]:
                return await asyncio.to_thread(_consumed_queues, 2)

            await poll_until(consumed, lambda queues: wanted <= queues, timeout=90, interval=0.5)
            # A command sent before the kill and one sent after both end.
            assert (await before.result(timeout=90)).kind is EventKind.SUCCEEDED
            after = await client.send(TriggerBatch(batch="B2002"))
            assert (await after.result(timeout=90)).kind is EventKind.SUCCEEDED
    finally:
        await app.stop()
        await asyncio.to_thread(cluster.start, 1)
