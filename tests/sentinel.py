"""A replicated Redis on this machine: a primary, a replica and three sentinels, each a
`redis-server` on a free port (never 6379), with its files in a temporary directory and no
persistence. tests/e2e/test_sentinel.py and the chaos run's `--redis-failover` use it.

    with replicated() as redis:
        url = redis.url                  # redis+sentinel://127.0.0.1:p1,...:p3/flowgate-test/0
        failover = redis.fail_over()     # SIGKILL the primary; a sentinel promotes the replica;
                                         # the killed server comes back as the new replica

The killed server is started again only once the replica was promoted, and as a replica of
the new primary: started as it was configured, empty (no persistence) and a primary, it could
be taken for the primary before the sentinels noticed, and its replica would copy its empty
data set.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis

from tests.rabbit_node import free_port

__all__ = ["SERVICE", "Failover", "Replicated", "replicated"]

SERVICE = "flowgate-test"
T = TypeVar("T")

_BASE = [
    "bind 127.0.0.1",
    'save ""',
    "appendonly no",
    "protected-mode no",
    # A replica that (re)joins is sent the data set at once, not after waiting 5 s for others.
    "repl-diskless-sync-delay 0",
]


@dataclass(frozen=True)
class Failover:
    killed: int  # the port of the primary that was killed
    promoted: int  # the port of the replica the sentinels promoted
    to_promote: float  # seconds from the kill until the sentinels named the new primary
    to_replicate: float  # seconds from the kill until the new primary had a synced replica
    to_recover: float  # seconds from the kill until every sentinel knew that replica


def _ask(port: int, *command: str) -> Any:
    """One command to the server or sentinel on `port`; None when it does not answer."""
    client = redis.Redis(
        port=port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
    )
    try:
        return client.execute_command(*command)  # type: ignore[no-untyped-call]
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def _until(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Poll `probe` until it returns something other than None; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def _fields(raw: Any) -> dict[str, str]:
    """A sentinel's flat [name, value, name, value, ...] reply as a dict."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    items = [str(v) for v in raw]
    return dict(zip(items[::2], items[1::2], strict=True))


class Replicated:
    """The five processes and what is known of them; `start()`, then `stop()` (`replicated()`
    does both)."""

    def __init__(self, *, service: str = SERVICE, down_after_ms: int = 2000) -> None:
        self.service = service
        self.down_after_ms = down_after_ms
        self.directory = Path(tempfile.mkdtemp(prefix="flowgate-sentinel-"))
        self.ports = (free_port(), free_port())  # the first starts as the primary
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.servers: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def _spawn(self, name: str, lines: list[str], *, sentinel: bool = False) -> Any:
        config = self.directory / f"{name}.conf"
        config.write_text("\n".join([*lines, f"dir {self.directory}", ""]))
        argv = ["redis-server", str(config), *(["--sentinel"] if sentinel else [])]
        with open(self.directory / f"{name}.log", "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=log)

    def _start_server(self, port: int, replica_of: int | None) -> None:
        # Each server its own file, which a replica writes when it syncs and reads at start:
        # removed first, so a server started again comes back empty, as with no persistence.
        rdb = f"redis-{port}.rdb"
        (self.directory / rdb).unlink(missing_ok=True)
        lines = [*_BASE, f"port {port}", f"dbfilename {rdb}"]
        if replica_of is not None:
            lines.append(f"replicaof 127.0.0.1 {replica_of}")
        self.servers[port] = self._spawn(f"redis-{port}", lines)
        _until(f"redis on {port} answering", lambda: _ask(port, "PING") or None, 30)

    def start(self) -> None:
        primary, replica = self.ports
        self._start_server(primary, None)
        self._start_server(replica, primary)
        self._wait_synced(replica)
        for n, port in enumerate(self.sentinel_ports):
            lines = [
                "bind 127.0.0.1",
                f"port {port}",
                f"sentinel monitor {self.service} 127.0.0.1 {primary} 2",
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                f"sentinel failover-timeout {self.service} 2000",
            ]
            self.sentinels.append(self._spawn(f"sentinel-{n}", lines, sentinel=True))
        self.wait_replicating(replica)

    def stop(self) -> None:
        for proc in [*self.servers.values(), *self.sentinels]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def primary(self, sentinel: int = 0) -> int | None:
        """The primary's port, as sentinel `sentinel` names it; None when it does not answer."""
        found = _ask(
            self.sentinel_ports[sentinel], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
        )
        return int(found[1]) if found else None

    def holds(self, port: int, key: str) -> bool:
        """Whether the server on `port` has `key` (a replica is read directly)."""
        return bool(_ask(port, "EXISTS", key))

    def cut_replication(self, primary: int, replica: int) -> None:
        """Cut the replica off its primary, as a network partition would: from here on what
        the primary acknowledges is on the primary alone. (The replica is given a password
        the primary does not have, so it cannot sync again; once promoted it needs none.)"""
        _ask(replica, "CONFIG", "SET", "masterauth", "not-the-primarys")
        _ask(primary, "CLIENT", "KILL", "TYPE", "replica")

        def cut_off() -> bool | None:
            role = _ask(primary, "ROLE")  # ["master", offset, [replicas]]
            return True if role and not role[2] else None

        _until(f"the replica on {replica} cut off", cut_off, 10)

    def kill(self, port: int) -> None:
        """SIGKILL the server on `port`, as a crashed host."""
        proc = self.servers[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def wait_promoted(self, other_than: int, timeout: float = 60) -> int:
        """The port of the new primary once every sentinel names one other than `other_than`,
        and it answers as a primary."""

        def promoted() -> int | None:
            named = {self.primary(n) for n in range(len(self.sentinel_ports))}
            if len(named) != 1:
                return None
            port = named.pop()
            if port is None or port == other_than:
                return None
            role = _ask(port, "ROLE")
            return port if role and role[0] == "master" else None

        return _until("a replica promoted by the sentinels", promoted, timeout)

    def _wait_synced(self, port: int, timeout: float = 30) -> None:
        def synced() -> bool | None:
            info = _ask(port, "INFO", "replication")
            return True if info and info.get("master_link_status") == "up" else None

        _until(f"the replica on {port} synced", synced, timeout)

    def wait_replicating(self, port: int, timeout: float = 60) -> None:
        """Until the server on `port` is a synced replica every sentinel knows as healthy:
        from then on the sentinels can promote it."""
        self._wait_synced(port, timeout)

        def known() -> bool | None:
            for sentinel in self.sentinel_ports:
                replicas = _ask(sentinel, "SENTINEL", "REPLICAS", self.service) or []
                healthy = [
                    r
                    for r in map(_fields, replicas)
                    if r.get("port") == str(port)
                    and r.get("flags") == "slave"
                    and r.get("master-link-status") == "ok"
                ]
                if not healthy:
                    return None
            return True

        _until(f"every sentinel knowing the replica on {port}", known, timeout)

    def fail_over(self, timeout: float = 60) -> Failover:
        """SIGKILL the primary; once a sentinel promoted the replica, start the killed server
        again as the new primary's replica and wait until the sentinels know it."""
        killed = _until("the sentinels naming a primary", self.primary, timeout)
        began = time.monotonic()
        self.kill(killed)
        promoted = self.wait_promoted(killed, timeout)
        to_promote = time.monotonic() - began
        self._start_server(killed, promoted)
        self._wait_synced(killed, timeout)
        to_replicate = time.monotonic() - began
        self.wait_replicating(killed, timeout)
        return Failover(killed, promoted, to_promote, to_replicate, time.monotonic() - began)


@contextlib.contextmanager
def replicated(*, service: str = SERVICE, down_after_ms: int = 2000) -> Iterator[Replicated]:
    """A started `Replicated`, stopped and removed on the way out."""
    servers = Replicated(service=service, down_after_ms=down_after_ms)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()
