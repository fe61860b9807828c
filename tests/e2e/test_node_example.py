"""examples/node, the Node (amqplib) example, against a real flowgate: `flowgate worker` and
`flowgate poller` as processes on RabbitMQ (the session's private vhost), the vendor simulators
on a local port. It publishes one command, prints each of its events, read from its own
reply_to queue, until the terminal one, and its exit code says how the command ended.

Node and the example's node_modules (scripts/install runs `npm ci` for it) are required: without
them the test fails, naming what to run; it never skips."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from contracts import TriggerBatch
from tests.e2e.test_processes import _env, _processes, _wait_consumers
from workers.simulators import RunningSimulators

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "node" / "send-command.js"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the Node example needs Node 20+", pytrace=False)
    if not (EXAMPLE.parent / "node_modules" / "amqplib").is_dir():
        pytest.fail(
            "examples/node/node_modules has no amqplib: run scripts/install (it runs npm ci there)",
            pytrace=False,
        )
    return node


async def _example(*argv: str) -> tuple[int, list[str], str]:
    """(exit code, stdout lines, stderr) of `node examples/node/send-command.js ARGV`."""
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(EXAMPLE),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


async def test_the_node_example_follows_a_command_to_its_end(
    amqp_url: str, sims: RunningSimulators
) -> None:
    vhost = amqp_url.rsplit("/", 1)[1]
    async with _processes(
        ["worker", "--commands", "trigger-batch"], ["poller"], env=_env(amqp_url, sims.base_url)
    ):
        await _wait_consumers(vhost, "flowgate.cmd.trigger-batch", 1)
        await _wait_consumers(vhost, "flowgate.poll", 1)
        (code, lines, err), (refused_code, refused, refused_err) = await asyncio.gather(
            _example(amqp_url, "trigger-batch", json.dumps(TriggerBatch.example)),
            _example(amqp_url, "trigger-batch", '{"batch": ""}', "--timeout", "60"),
        )

    assert code == 0, (lines, err)
    assert re.fullmatch(f"trigger-batch {_UUID}", lines[0]), lines
    kinds = [line.split()[0] for line in lines[1:]]
    assert kinds[0] == "accepted" and kinds[-1] == "succeeded", lines
    assert set(kinds[1:-1]) <= {"progress"}, lines
    assert "batch_run_id=B2001_" in lines[1], "the vendor's reference on accepted"
    assert lines[-1].split() == ["succeeded", "SUCCESSFUL"], lines
    batches = [(e.json or {})["batchName"] for e in sims.sims.ledger.entries("pbsm.trigger")]
    assert batches == ["B2001"], "the vendor triggered once, by the Node example's command"

    assert refused_code == 3, (refused, refused_err)  # failed, as `flowgate send --wait`
    assert [line.split()[0] for line in refused[1:]] == ["failed"], refused
    assert "invalid: " in refused[-1], refused


async def test_the_node_example_refuses_bad_arguments() -> None:
    code, lines, err = await _example("trigger-batch", "{not json")
    assert code == 2 and lines == [], (lines, err)
    assert "DATA_JSON is not JSON" in err and "usage: node send-command.js" in err
