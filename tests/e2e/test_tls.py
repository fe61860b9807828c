"""TLS for real: a RabbitMQ node with a TLS listener only, a CA made by the test, and a command
run end to end over amqps:// with certificate verification on; a wrong CA is refused with one
line that says what to set."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts import EventKind, TriggerBatch
from flowgate_client.aio import Client
from tests.conftest import fast_settings
from tests.rabbit_node import Node, rabbit_node, tls_files
from workers.app import Flowgate, make_broker
from workers.simulators import RunningSimulators

pytestmark = pytest.mark.e2e

CONFIG = """
listeners.tcp = none
listeners.ssl.default = {{port}}
ssl_options.cacertfile = {ca}
ssl_options.certfile = {server}
ssl_options.keyfile = {server_key}
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
"""


@dataclass(frozen=True)
class TlsBroker:
    node: Node
    ca: Path
    other_ca: Path

    @property
    def url(self) -> str:
        # By name: the certificate is for localhost (and 127.0.0.1), verified either way.
        return f"amqps://guest:guest@localhost:{self.node.port}/"


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[TlsBroker]:
    with tempfile.TemporaryDirectory(prefix="flowgate-tls-") as tmp:
        files = tls_files(Path(tmp))
        # The node runs as the rabbitmq user: it must be able to read them.
        Path(tmp).chmod(0o755)
        for path in files.values():
            path.chmod(0o644)
        config = CONFIG.format(**{name: path for name, path in files.items()})
        with rabbit_node(config) as node:
            yield TlsBroker(node, files["ca"], files["other_ca"])


async def test_a_command_end_to_end_over_verified_tls(
    tls_broker: TlsBroker, sims: RunningSimulators
) -> None:
    settings = fast_settings(
        tls_broker.url, sims.base_url, store="redis", amqp_ca_file=tls_broker.ca
    )
    app = Flowgate(settings, make_broker(settings))
    await app.start_worker(["trigger-batch"])
    await app.start_poller()
    try:
        context = ssl.create_default_context(cafile=str(tls_broker.ca))
        async with Client(tls_broker.url, ssl_context=context) as client:
            handle = await client.send(TriggerBatch(batch="B2001"))
            assert (await handle.result(timeout=60)).kind is EventKind.SUCCEEDED
        # Over the TLS listener: the node has no other.
        connections = await asyncio.to_thread(tls_broker.node.ctl, "list_connections", "ssl")
        rows = connections.split()[1:]  # under the column header
        assert rows and set(rows) == {"true"}
    finally:
        await app.stop()


def test_a_wrong_ca_is_refused_with_what_to_set(tls_broker: TlsBroker) -> None:
    env = {**os.environ, "FLOWGATE_AMQP_CA_FILE": str(tls_broker.other_ca)}
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "declare", "--amqp-url", tls_broker.url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "presented a certificate this machine does not trust" in result.stderr
    assert "set amqp_ca_file (FLOWGATE_AMQP_CA_FILE)" in result.stderr
    assert "guest:guest" not in result.stderr  # the password stays out of it
