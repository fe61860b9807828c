"""The CI variants of the chaos run (N=2000 on the shared node; N=1500 on a three-node cluster;
N=600 on the cluster with Redis failovers): `pytest -m chaos` (see tests/chaos/conftest.py)."""

from __future__ import annotations

import os

import pytest

from tests.chaos.harness import ChaosConfig, ChaosResult, run_chaos


async def held(config: ChaosConfig, capsys: pytest.CaptureFixture[str]) -> ChaosResult:
    """The run (on the cluster, taken down after it when `config.cluster`), its summary line
    printed, and what every variant asserts: nothing lost, doubled or wrong, all published."""
    try:
        result = await run_chaos(config)
    finally:
        if config.cluster:
            from tests import cluster

            cluster.down()
    with capsys.disabled():
        print(f"\n{result.summary()}")
    assert result.ok, f"{result.summary()}\n{result.details()}"
    assert not result.wrong_outcome, result.details()
    assert result.published == config.n
    return result


@pytest.mark.chaos
@pytest.mark.timeout(900)
async def test_chaos_ci_variant(capsys: pytest.CaptureFixture[str]) -> None:
    config = ChaosConfig(
        n=int(os.environ.get("FLOWGATE_CHAOS_N", "2000")),
        seed=int(os.environ.get("FLOWGATE_CHAOS_SEED", "1")),
        rate=25.0,  # publishing spans ~80 s, so kills and the restart land mid-stream
        timeout=300.0,
    )
    result = await held(config, capsys)
    assert result.unexpected_events == 0


@pytest.mark.chaos
@pytest.mark.timeout(900)
async def test_chaos_cluster_ci_variant(capsys: pytest.CaptureFixture[str]) -> None:
    """On scripts/cluster's three nodes, a node killed (-9) every ~14 s: the one a process is
    on, a command queue's leader, the poll queue's leader, by turns."""
    config = ChaosConfig(
        # 60 s of publishing: three rounds of node kills (wait 2-6 s, down 2-6 s, a start of
        # a few seconds) fit in it, so every kind of node is killed, however the dice fall.
        n=int(os.environ.get("FLOWGATE_CHAOS_CLUSTER_N", "1500")),
        seed=int(os.environ.get("FLOWGATE_CHAOS_SEED", "1")),
        rate=25.0,
        timeout=300.0,
        cluster=True,
        node_kill_every=4.0,  # a kill, 2-6 s down and a restart: about one every 12 s
    )
    result = await held(config, capsys)
    assert set(result.node_kills) == {"connected", "command-leader", "poll-leader"}


@pytest.mark.chaos
@pytest.mark.timeout(600)
async def test_chaos_redis_failover_ci_variant(capsys: pytest.CaptureFixture[str]) -> None:
    """On a Redis of its own (a primary, a replica, three sentinels), its primary SIGKILLed
    every ~8 s and replaced by the replica, claims waiting for that replica
    (idempotency.replicas = 1); on scripts/cluster's nodes, so the shared one is not touched.
    No command may be triggered twice or lost.

    Only Redis fails here: the variants above kill processes and nodes. A cancel-run whose
    attempt is killed waits out its 65 s claim before it is answered, which would put the run
    past its 90 s; a failover's store errors are what must not open a second trigger."""
    config = ChaosConfig(
        n=int(os.environ.get("FLOWGATE_CHAOS_REDIS_N", "600")),
        seed=int(os.environ.get("FLOWGATE_CHAOS_SEED", "1")),
        rate=25.0,  # ~24 s of publishing: the first failovers land mid-stream
        timeout=300.0,
        cluster=True,
        kill_every=0,
        node_kill_every=0,
        rename=False,
        redis_failover=True,
        redis_failover_every=8.0,
        redis_replicas=1,
    )
    result = await held(config, capsys)
    assert not result.lost and not result.duplicate_triggers, result.details()
    assert result.redis_failovers, "no Redis failover happened"
