"""The idempotency store on a replicated Redis watched by Sentinel: a primary, a replica and
three sentinels on this machine. Claims wait for the replica (`replicas = 1`), so the primary
killed right after a claim does not lose it: after the failover the command is still claimed,
and a redelivery cannot trigger the vendor again."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rabbit_node import free_port
from workers.idempotency import RedisStore, StoreUnavailable

pytestmark = pytest.mark.e2e

SERVICE = "flowgate-test"


@dataclass
class Replicated:
    url: str
    primary: subprocess.Popen[bytes]
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]


def _redis(directory: Path, name: str, lines: list[str], sentinel: bool = False) -> list[str]:
    config = directory / f"{name}.conf"
    config.write_text("\n".join([*lines, f"dir {directory}", ""]))
    return ["redis-server", str(config), *(["--sentinel"] if sentinel else [])]


def _wait_ping(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=10
        )
        if done.stdout.strip() == "PONG":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis on {port} did not answer")
        time.sleep(0.1)


def _wait_synced(replica_port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        info = subprocess.run(
            ["redis-cli", "-p", str(replica_port), "info", "replication"],
            capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        if "master_link_status:up" in info:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the replica did not sync with the primary")
        time.sleep(0.1)


def _primary_port(sentinel_port: int) -> int | None:
    out = subprocess.run(
        ["redis-cli", "-p", str(sentinel_port), "sentinel", "get-master-addr-by-name", SERVICE],
        capture_output=True, text=True, timeout=10,
    ).stdout.split()  # fmt: skip
    return int(out[1]) if len(out) == 2 else None


@pytest.fixture
def replicated() -> Iterator[Replicated]:
    directory = Path(tempfile.mkdtemp(prefix="flowgate-sentinel-"))
    procs: list[subprocess.Popen[bytes]] = []
    primary_port, replica_port = free_port(), free_port()
    sentinel_ports = [free_port() for _ in range(3)]

    def start(argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    try:
        base = ["bind 127.0.0.1", 'save ""', "appendonly no", "protected-mode no"]
        primary = start(_redis(directory, "primary", [*base, f"port {primary_port}"]))
        start(
            _redis(
                directory,
                "replica",
                [*base, f"port {replica_port}", f"replicaof 127.0.0.1 {primary_port}"],
            )
        )
        for port in (primary_port, replica_port):
            _wait_ping(port)
        _wait_synced(replica_port)
        for n, port in enumerate(sentinel_ports):
            start(
                _redis(
                    directory,
                    f"sentinel-{n}",
                    [
                        "bind 127.0.0.1",
                        f"port {port}",
                        f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2",
                        f"sentinel down-after-milliseconds {SERVICE} 1000",
                        f"sentinel failover-timeout {SERVICE} 5000",
                    ],
                    sentinel=True,
                )
            )
            _wait_ping(port)
        hosts = ",".join(f"127.0.0.1:{p}" for p in sentinel_ports)
        yield Replicated(
            f"redis+sentinel://{hosts}/{SERVICE}/0",
            primary,
            primary_port,
            replica_port,
            sentinel_ports,
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_claim_survives_the_primary_dying_right_after_it(replicated: Replicated) -> None:
    store = RedisStore(replicated.url, prefix="flowgate-test:", replicas=1, replica_wait=2.0)
    try:
        assert (await store.claim("c1", owner="first", lease=60)).state == "new"
        # The primary dies at once; the sentinels promote the replica.
        replicated.primary.send_signal(signal.SIGKILL)
        replicated.primary.wait()

        async def promoted() -> bool:
            port = await asyncio.to_thread(_primary_port, replicated.sentinel_ports[0])
            return port == replicated.replica_port

        async with asyncio.timeout(60):
            while not await promoted():
                await asyncio.sleep(0.2)
        # The claim is on the new primary: a redelivery finds it held, not new.
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(StoreUnavailable):
                    again = await store.claim("c1", owner="second", lease=60)
                    break
                await asyncio.sleep(0.2)
        assert again.state == "busy"
        # And the store goes on working on the new primary, with no replica left to wait for
        # (WAIT times out: a claim short of its replicas is released and refused).
        with pytest.raises(StoreUnavailable, match="0 of 1 Redis replicas"):
            await store.claim("c2", owner="first", lease=60)
    finally:
        await store.aclose()
    plain = RedisStore(replicated.url, prefix="flowgate-test:")
    try:
        # The refused claim was released: the command can be claimed again.
        assert (await plain.claim("c2", owner="other", lease=60)).state == "new"
    finally:
        await plain.aclose()
