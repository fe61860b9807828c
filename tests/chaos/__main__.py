"""`scripts/chaos` / `python -m tests.chaos`: the chaos run; prints one summary line on stdout
and exits 0 only when nothing was lost, no `fail`-policy command was triggered twice, no command
got two different terminal events, and the work queues ended empty."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tests.chaos.harness import ChaosConfig, run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="commands to publish (10000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pollers", type=int, default=1)
    parser.add_argument(
        "--kill-every", type=float, default=3.0, help="mean seconds between kills (0: none)"
    )
    parser.add_argument("--no-broker-restart", action="store_true")
    parser.add_argument(
        "--no-rename",
        action="store_true",
        help="keep the connection `moving` (no rename mid-run, which restarts every process)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for terminal events"
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="commands/s to publish (0: unthrottled)"
    )
    parser.add_argument("--prefetch", type=int, default=None, help="worker/poller prefetch")
    parser.add_argument("--log-dir", type=Path, default=None)
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on scripts/cluster's three nodes (started if down), killing nodes instead of "
        "restarting the broker",
    )
    parser.add_argument(
        "--node-kill-every",
        type=float,
        default=30.0,
        help="seconds between node kills, on average (uniform, 0.5 to 1.5 times it; 0: none)",
    )
    parser.add_argument(
        "--redis-failover",
        action="store_true",
        help="on a Redis of the run's own (a primary, a replica, three sentinels), whose "
        "primary is SIGKILLed every --redis-failover-every s and replaced by the replica",
    )
    parser.add_argument(
        "--redis-failover-every",
        type=float,
        default=6.0,
        help="seconds between a Redis failover and the next kill, on average (uniform, 0.5 "
        "to 1.5 times it); a failover itself takes ~3-4 s, so a 1000-command run sees 2 or more",
    )
    parser.add_argument(
        "--redis-replicas",
        type=int,
        default=1,
        help="with --redis-failover: idempotency.replicas, the replicas a claim waits for (1)",
    )
    args = parser.parse_args(argv)
    if args.redis_replicas < 0:
        parser.error("--redis-replicas: 0 (no wait) or more")
    config = ChaosConfig(
        n=args.n,
        seed=args.seed,
        workers=args.workers,
        pollers=args.pollers,
        kill_every=args.kill_every,
        broker_restart=not args.no_broker_restart,
        rename=not args.no_rename,
        timeout=args.timeout,
        rate=args.rate,
        prefetch=args.prefetch,
        log_dir=args.log_dir,
        cluster=args.cluster,
        node_kill_every=args.node_kill_every,
        redis_failover=args.redis_failover,
        redis_failover_every=args.redis_failover_every,
        redis_replicas=args.redis_replicas,
    )
    result = asyncio.run(run_chaos(config))
    if not result.ok or result.wrong_outcome:
        print(result.details(), file=sys.stderr)
    print(result.summary(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
