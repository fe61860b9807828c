"""`scripts/cluster`: a three-node RabbitMQ cluster on this machine, beside the shared node.

    scripts/cluster up            start rabbit-1..3 (AMQP 5681-5683) and cluster them
    scripts/cluster status        each node: running or not, its AMQP port
    scripts/cluster url           the `;`-separated amqp_url of the three nodes
    scripts/cluster kill NODE     SIGKILL a node (rabbit-2, or 2), as a crashed host
    scripts/cluster start NODE    start a killed node again; it rejoins with its data
    scripts/cluster down          stop every node and remove their data

Each node has its own name (`flowgate-rabbit-N@localhost`), AMQP and distribution ports and data
directory under /tmp/flowgate-cluster; the installed `rabbitmq-server` runs them. They form one
cluster at first start through classic peer discovery, so flowgate's quorum queues, declared
once all three are up, have a member on each.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tests.rabbit_node import Node, kill_node, node_pid, start_node, stop_node

__all__ = ["BASE", "NODES", "cluster_url", "down", "main", "node", "start", "up"]

BASE = Path("/tmp/flowgate-cluster")
NODES = 3
FIRST_PORT = 5681

CONFIG = """
listeners.tcp.default = {{port}}
loopback_users = none
cluster_formation.peer_discovery_backend = classic_config
{peers}
cluster_formation.randomized_startup_delay_range.min = 0
cluster_formation.randomized_startup_delay_range.max = 1
"""


def node(n: int) -> Node:
    return Node(f"flowgate-rabbit-{n}@localhost", FIRST_PORT + n - 1, BASE / f"rabbit-{n}")


def cluster_url(user: str = "guest", password: str = "guest", vhost: str = "") -> str:
    return ";".join(
        f"amqp://{user}:{password}@localhost:{node(n).port}/{vhost}" for n in range(1, NODES + 1)
    )


def _config() -> str:
    peers = "\n".join(
        f"cluster_formation.classic_config.nodes.{n} = {node(n).name}" for n in range(1, NODES + 1)
    )
    return CONFIG.format(peers=peers)


def up() -> None:
    for n in range(1, NODES + 1):
        if node_pid(node(n)) is None:
            print(f"cluster: starting {node(n).name} on port {node(n).port}", file=sys.stderr)
            start_node(node(n), _config(), dist_port=25680 + n)
    # Peer discovery joins the later nodes to the first; wait until all three are members.
    node(1).ctl("await_online_nodes", str(NODES), timeout=120)
    print(f"cluster: {NODES} nodes running; amqp_url: {cluster_url()}", file=sys.stderr)


def down() -> None:
    for n in range(1, NODES + 1):
        stop_node(node(n))
    shutil.rmtree(BASE, ignore_errors=True)


def start(n: int) -> None:
    """Start node `n` again (after a kill); it rejoins the cluster with its data."""
    start_node(node(n), _config())


def _which(name: str) -> Node:
    digits = name.rsplit("-", 1)[-1]
    if not digits.isdigit() or not 1 <= int(digits) <= NODES:
        raise SystemExit(f"scripts/cluster: no node {name!r}: rabbit-1 .. rabbit-{NODES}")
    return node(int(digits))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  scripts/cluster up && scripts/cluster kill rabbit-2",
    )
    parser.add_argument("action", choices=["up", "down", "status", "url", "kill", "start"])
    parser.add_argument("node", nargs="?", help="rabbit-1 .. rabbit-3 (kill, start)")
    args = parser.parse_args(argv)
    if args.action in ("kill", "start") and not args.node:
        parser.error(f"{args.action} takes a node: rabbit-1 .. rabbit-{NODES}")
    if args.action == "up":
        up()
    elif args.action == "down":
        down()
    elif args.action == "url":
        print(cluster_url())
    elif args.action == "status":
        for n in range(1, NODES + 1):
            state = "running" if node_pid(node(n)) is not None else "down"
            print(f"rabbit-{n}  {node(n).name}  port {node(n).port}  {state}")
    elif args.action == "kill":
        kill_node(_which(args.node))
    else:
        target = _which(args.node)
        if not (target.directory / "rabbitmq.conf").exists():
            raise SystemExit("scripts/cluster: the cluster was never up: scripts/cluster up")
        start_node(target, _config())
    return 0


if __name__ == "__main__":
    sys.exit(main())
