"""An extra RabbitMQ node on this machine, for the tests that need a broker set up otherwise
than the shared one (a TLS listener): its own node name, ports, data and log directories and
configuration file, run by the installed `rabbitmq-server`, stopped and removed afterwards.

The node runs as the `rabbitmq` user (the package's wrapper switches to it), so it shares the
shared node's Erlang cookie and `rabbitmqctl -n NODE` reaches it; its files are made readable
to that user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Node",
    "free_port",
    "kill_node",
    "node_pid",
    "rabbit_node",
    "start_node",
    "stop_node",
    "tls_files",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Node:
    name: str
    port: int
    directory: Path

    def ctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.name, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout


def tls_files(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate it signed for localhost and 127.0.0.1, and a second CA that
    signed nothing here (what a wrong `amqp_ca_file` looks like)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    files = {
        name: directory / f"{name}.pem"
        for name in ("ca", "ca_key", "server", "server_key", "other_ca", "other_ca_key")
    }
    csr, ext = directory / "server.csr", directory / "ext.cnf"
    for ca, key, cn in (
        (files["ca"], files["ca_key"], "flowgate-test-ca"),
        (files["other_ca"], files["other_ca_key"], "some-other-ca"),
    ):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(files["server_key"]), "-out", str(csr))  # fmt: skip
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca"]),
            "-CAkey", str(files["ca_key"]), "-CAcreateserial", "-days", "1",
            "-extfile", str(ext), "-out", str(files["server"]))  # fmt: skip
    return files


def _wait_for_port(port: int, deadline: float) -> None:
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no listener on port {port}")
        time.sleep(0.2)


def start_node(node: Node, config: str, *, dist_port: int | None = None) -> None:
    """Start `node` in its directory (made if missing; its data is kept there, so a node
    started again after a kill comes back as itself), with `config` as its `rabbitmq.conf`
    (`{dir}` and `{port}` replaced), and wait until it accepts AMQP connections."""
    directory = node.directory
    first = not (directory / "rabbitmq.conf").exists()
    if first:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "rabbitmq.conf").write_text(config.format(dir=directory, port=node.port))
        (directory / "enabled_plugins").write_text("[].\n")
        for sub in ("mnesia", "log"):
            (directory / sub).mkdir(exist_ok=True)
        (directory / "dist_port").write_text(str(dist_port or free_port()))
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(directory)], check=True)
        directory.chmod(0o755)
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node.name,
        "RABBITMQ_NODE_PORT": str(node.port),
        "RABBITMQ_DIST_PORT": (directory / "dist_port").read_text().strip(),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(directory / "pid"),
    }
    subprocess.run(
        ["rabbitmq-server", "-detached"], env=env, check=True, capture_output=True, timeout=60
    )
    _wait_for_port(node.port, time.monotonic() + 120)


def node_pid(node: Node) -> int | None:
    """The node's Erlang VM process, from its pid file; None when it is not running."""
    try:
        pid = int((node.directory / "pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def kill_node(node: Node) -> None:
    """SIGKILL the node's VM, as a crashed host would stop it."""
    pid = node_pid(node)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while node_pid(node) is not None and time.monotonic() < deadline:
            time.sleep(0.1)


def stop_node(node: Node) -> None:
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        node.ctl("stop", timeout=60)
    kill_node(node)  # when `stop` could not reach it


@contextlib.contextmanager
def rabbit_node(config: str, *, port: int | None = None) -> Iterator[Node]:
    """Start a node whose `rabbitmq.conf` is `config` (with `{dir}` replaced by the node's
    directory and `{port}` by its AMQP port), wait until it accepts connections, and stop it
    and remove its directory on exit."""
    directory = Path(tempfile.mkdtemp(prefix="flowgate-rabbit-")) / "node"
    directory.parent.chmod(0o755)  # the node runs as the rabbitmq user
    node = Node(f"flowgate-test-{uuid.uuid4().hex[:8]}@localhost", port or free_port(), directory)
    try:
        start_node(node, config)
        yield node
    finally:
        stop_node(node)
        shutil.rmtree(directory.parent, ignore_errors=True)
