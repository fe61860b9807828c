"""flowgate's roles as real processes: the demo, competing workers, the CLI, a plain AMQP client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from contracts import COMMAND_TYPES, encode_command
from tests.conftest import Events, collect_events
from workers.broker import AmqpBroker, OutgoingMessage
from workers.demo import SAMPLE_COMMANDS
from workers.simulators import RunningSimulators
from workers.topology import COMMANDS_EXCHANGE, build_topology

FLOWGATE = [sys.executable, "-m", "workers.cli"]


def _env(amqp_url: str, base_url: str) -> dict[str, str]:
    env = dict(os.environ, FLOWGATE_AMQP_URL=amqp_url, PYTHONUNBUFFERED="1")
    for vendor in ("INFORMATICA", "ROBUSTA", "TMF622", "PBSM"):
        env[f"FLOWGATE_{vendor}__DEFAULT__BASE_URL"] = base_url
        env[f"FLOWGATE_{vendor}__DEFAULT__POLL__FIRST_DELAY"] = "0.25"
        env[f"FLOWGATE_{vendor}__DEFAULT__POLL__MAX_DELAY"] = "0.5"
    return env


@asynccontextmanager
async def _processes(
    *argvs: list[str], env: dict[str, str]
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs = [
        await asyncio.create_subprocess_exec(
            *FLOWGATE,
            *argv,
            env=env,
            # Nobody reads their output: a pipe would fill up and stop the process mid-write.
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for argv in argvs
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@asynccontextmanager
async def _watch_events(amqp_url: str) -> AsyncIterator[tuple[Events, AmqpBroker]]:
    broker = AmqpBroker(amqp_url)
    await broker.connect()
    await broker.declare(build_topology(COMMAND_TYPES))
    events = await collect_events(broker)
    try:
        yield events, broker
    finally:
        await broker.close()


def _consumers(vhost: str, queue: str) -> int:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_consumers", "-p", vhost, "queue_name"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    return out.count(queue)


async def _wait_consumers(vhost: str, queue: str, count: int) -> None:
    async with asyncio.timeout(30):
        while await asyncio.to_thread(_consumers, vhost, queue) < count:
            await asyncio.sleep(0.5)


def test_demo_exits_zero_with_a_terminal_event_per_command_type() -> None:
    result = subprocess.run(
        [*FLOWGATE, "demo", "--timeout", "60"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    terminal = [
        line
        for line in result.stdout.splitlines()
        if line.split()[2:3] in (["succeeded"], ["failed"])
    ]
    # One of each vendor command type (cancel-run names another command: not in the demo).
    assert sorted(line.split()[1] for line in terminal) == sorted(SAMPLE_COMMANDS)
    assert all(line.split()[2] == "succeeded" for line in terminal), terminal
    assert "accepted" in result.stdout


async def test_two_workers_handle_every_command_once(
    amqp_url: str, sims: RunningSimulators
) -> None:
    env = _env(amqp_url, sims.base_url)
    vhost = amqp_url.rsplit("/", 1)[1]
    async with (
        _watch_events(amqp_url) as (events, events_broker),
        _processes(
            ["worker", "--commands", "add-paylink,trigger-batch"],
            ["worker", "--commands", "add-paylink,trigger-batch"],
            ["poller"],
            env=env,
        ),
    ):
        await _wait_consumers(vhost, "flowgate.cmd.add-paylink", 2)
        await _wait_consumers(vhost, "flowgate.poll", 1)
        published = []
        for i in range(40):
            command_type, data = (
                ("add-paylink", {"business_id": "PR", "order_id": f"O{i}", "payment_link": "p"})
                if i % 2
                else ("trigger-batch", {"batch": f"B{i}"})
            )
            body, content_type = encode_command(command_type, data)
            await events_broker.publish(
                COMMANDS_EXCHANGE,
                command_type,
                OutgoingMessage(body=body, content_type=content_type),
            )
            published.append(json.loads(body)["id"])
        for command_id in published:
            terminal = await events.terminal(command_id, timeout=60)
            assert terminal["type"].endswith(".succeeded"), terminal
        await asyncio.sleep(0.5)
    for command_id in published:
        assert [e["type"].rsplit(".", 1)[1] for e in events.by_command[command_id]].count(
            "succeeded"
        ) == 1
    patches = [e.headers["x-correlation-id"] for e in sims.sims.ledger.entries("tmf622.patch")]
    assert sorted(patches) == sorted(published[1::2])
    triggers = [(e.json or {})["batchName"] for e in sims.sims.ledger.entries("pbsm.trigger")]
    assert sorted(triggers) == sorted(f"B{i}" for i in range(0, 40, 2))


async def test_plain_amqp_client_publish_is_answered(
    amqp_url: str, sims: RunningSimulators
) -> None:
    amqp_publish = shutil.which("amqp-publish")
    assert amqp_publish, "amqp-publish (Debian amqp-tools) is needed: apt-get install amqp-tools"
    env = _env(amqp_url, sims.base_url)
    vhost = amqp_url.rsplit("/", 1)[1]
    command_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": command_id,
            "source": "urn:example:billing-service",
            "type": "flowgate.trigger-batch",
            "datacontenttype": "application/json",
            "data": {"batch": "B2001", "params": {"$FICMISDATE$": "2026-11-21"}},
        }
    )
    async with _watch_events(amqp_url) as (events, _), _processes(["worker"], ["poller"], env=env):
        await _wait_consumers(vhost, "flowgate.cmd.trigger-batch", 1)
        await asyncio.to_thread(
            subprocess.run,
            [
                amqp_publish,
                "--url",
                amqp_url,
                "-e",
                "flowgate.commands",
                "-r",
                "trigger-batch",
                "-C",
                "application/cloudevents+json",
                "-b",
                body,
            ],
            check=True,
            timeout=30,
        )
        terminal = await events.terminal(command_id, timeout=30)
        cli = await asyncio.create_subprocess_exec(
            *FLOWGATE,
            "publish",
            "add-paylink",
            "--data",
            json.dumps({"business_id": "PR", "order_id": "O1", "payment_link": "p"}),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await cli.communicate()
        assert cli.returncode == 0
        by_cli = await events.terminal(out.decode().strip(), timeout=30)
    assert terminal["type"] == "flowgate.trigger-batch.succeeded"
    assert events.kinds(command_id)[0] == "accepted"
    assert by_cli["type"] == "flowgate.add-paylink.succeeded"


def test_declare_is_idempotent_and_help_everywhere(amqp_url: str) -> None:
    env = dict(os.environ, FLOWGATE_AMQP_URL=amqp_url)
    for _ in range(2):
        result = subprocess.run(
            [*FLOWGATE, "declare"], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    for sub in ("demo", "worker", "poller", "simulate", "declare", "publish"):
        result = subprocess.run(
            [*FLOWGATE, sub, "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and "usage:" in result.stdout


def test_unreachable_broker_is_explained() -> None:
    env = dict(os.environ, FLOWGATE_AMQP_URL="amqp://guest:guest@127.0.0.1:1/")
    result = subprocess.run(
        [*FLOWGATE, "declare"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "flowgate declare: cannot reach RabbitMQ at amqp://guest@127.0.0.1:1/: "
        "[Errno 111] Connection refused. Is it running there?"
    ], "one line, naming the cause"
    assert "guest:guest" not in result.stderr


def test_a_port_already_taken_is_explained_not_blamed_on_rabbitmq(amqp_url: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for setting, env in (
            ("health_port", {"FLOWGATE_HEALTH_PORT": port}),
            (
                "operator.port",
                {"FLOWGATE_OPERATOR__PORT": port, "FLOWGATE_OPERATOR__TOKEN": "t" * 16},
            ),
        ):
            result = subprocess.run(
                [*FLOWGATE, "poller"],
                env=dict(os.environ, FLOWGATE_AMQP_URL=amqp_url, **env),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 2, result.stderr
            last = result.stderr.strip().splitlines()[-1]
            assert last == (
                f"flowgate poller: cannot listen on 127.0.0.1 for {setting}: Address already "
                f"in use; give {setting} a port no other process uses (each process on a "
                "host needs its own)"
            )


async def test_worker_and_poller_answer_readyz_once_consuming(
    amqp_url: str, sims: RunningSimulators
) -> None:
    """`health_port` set: /healthz answers, and /readyz turns 200 once the process is
    connected to RabbitMQ and Redis and consuming every queue it should."""
    import httpx

    from tests.chaos.procs import free_port

    ports = {"worker": free_port(), "poller": free_port()}
    envs = {
        role: dict(_env(amqp_url, sims.base_url), FLOWGATE_HEALTH_PORT=str(port))
        for role, port in ports.items()
    }
    async with (
        _processes(["worker", "--commands", "add-paylink"], env=envs["worker"]),
        _processes(["poller"], env=envs["poller"]),
        httpx.AsyncClient(timeout=5) as http,
    ):
        for role, port in ports.items():
            body: dict[str, object] = {}
            async with asyncio.timeout(30):
                while True:
                    try:
                        answer = await http.get(f"http://127.0.0.1:{port}/readyz")
                    except httpx.TransportError:
                        answer = None  # not listening yet
                    if answer is not None and answer.status_code == 200:
                        body = answer.json()
                        break
                    await asyncio.sleep(0.1)
            assert body["ready"] is True
            checks = body["checks"]
            assert isinstance(checks, dict)
            assert checks["rabbitmq"] == "ok" and checks["store"] == "ok"
            want = (
                ["flowgate.cmd.add-paylink", "flowgate.given-up", "flowgate.unrouted"]
                if role == "worker"
                else ["flowgate.poll"]
            )
            assert checks["consuming"] == want
            alive = await http.get(f"http://127.0.0.1:{port}/healthz")
            assert alive.status_code == 200
            # The same port serves the process's metrics.
            scraped = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert scraped.status_code == 200
            assert "# TYPE flowgate_commands_total counter" in scraped.text


async def test_readyz_turns_not_ready_while_rabbitmq_is_stopped(sims: RunningSimulators) -> None:
    """On a RabbitMQ node of the test's own (the shared one serves the other tests): /readyz
    is 200, then 503 naming rabbitmq while the node's app is stopped, then 200 again once it
    is started and the worker has re-established its consumers."""
    import httpx

    from tests.chaos.procs import free_port
    from tests.rabbit_node import rabbit_node

    config = "listeners.tcp.default = {port}\n"
    port = free_port()

    async def readiness(http: httpx.AsyncClient) -> int | None:
        try:
            return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code
        except httpx.TransportError:
            return None  # not listening yet

    async def until(http: httpx.AsyncClient, status: int) -> None:
        async with asyncio.timeout(90):
            while await readiness(http) != status:
                await asyncio.sleep(0.2)

    with rabbit_node(config) as node:
        url = f"amqp://guest:guest@127.0.0.1:{node.port}/"
        env = dict(_env(url, sims.base_url), FLOWGATE_HEALTH_PORT=str(port))
        async with (
            _processes(["worker", "--commands", "add-paylink"], env=env),
            httpx.AsyncClient(timeout=10) as http,
        ):
            await until(http, 200)
            await asyncio.to_thread(node.ctl, "stop_app")
            await until(http, 503)
            body = (await http.get(f"http://127.0.0.1:{port}/readyz")).json()
            assert body["ready"] is False, body
            assert body["checks"]["rabbitmq"].startswith("unavailable"), body
            assert body["checks"]["store"] == "ok", body
            await asyncio.to_thread(node.ctl, "start_app")
            await until(http, 200)
