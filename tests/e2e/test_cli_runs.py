"""`flowgate runs list|show` as a process, on runs recorded in the real Redis (a key prefix of
this test's own, the way workers and pollers record them): the table, the filters, JSON
lines, one run's details and history, and an unknown id answered in one line with exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from bench.redis_keys import delete_keys_under
from tests.conftest import REDIS_URL
from workers.idempotency import RedisStore, RunEvent, RunState

pytestmark = pytest.mark.e2e

SCHEDULE = (1.0, 1.2, 600.0)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """Two runs in flight (one of them stuck) and one finished, under a prefix of their own."""
    prefix = f"flowgate-test:{uuid.uuid4().hex[:8]}:"
    store = RedisStore(REDIS_URL, prefix=prefix)
    now = time.time()
    batch = {"command_type": "trigger-batch", "connection": "default"}
    job = {"command_type": "run-job", "connection": "eu"}
    try:
        await store.record_trigger(
            "run-stuck",
            {"batch_run_id": "B2001_2026-11-21_1653041947296_1", "batch": "B2001"},
            run=batch,
            state=RunState(None, now - 900, now - 899, schedule=SCHEDULE),
        )
        await store.record_status(
            "run-stuck",
            RunState("NOT_STARTED", now - 898, now + 100, 12, True, now + 3600, SCHEDULE),
            event=RunEvent("progress", "NOT_STARTED", now - 60, True),
        )
        await store.record_trigger(
            "run-going",
            {"job_execution_id": "77"},
            run=job,
            state=RunState("QUEUED", now - 30, now + 10, schedule=SCHEDULE),
        )
        await store.record_trigger("run-done", {"batch_run_id": "R9"}, run=batch)
        await store.record_outcome(
            "run-done", {"kind": "succeeded", "data": {"status": "SUCCESSFUL"}}
        )
        yield prefix
    finally:
        await store.aclose()
        await delete_keys_under(REDIS_URL, prefix)


def flowgate(prefix: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env["FLOWGATE_IDEMPOTENCY__KEY_PREFIX"] = prefix
    env["FLOWGATE_IDEMPOTENCY__REDIS_URL"] = REDIS_URL
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_runs_list_is_a_table_of_the_runs_in_flight(prefix: str) -> None:
    result = flowgate(prefix, "runs", "list")
    assert result.returncode == 0, result.stderr
    header, stuck, going, count = result.stdout.splitlines()
    assert header.startswith("COMMAND ID  TYPE") and header.endswith("STUCK  VENDOR REF")
    assert stuck.split()[:4] == ["run-stuck", "trigger-batch", "default", "NOT_STARTED"]
    assert " yes " in stuck
    assert stuck.endswith("batch=B2001, batch_run_id=B2001_2026-11-21_1653041947296_1")
    assert going.split()[:4] == ["run-going", "run-job", "eu", "QUEUED"]
    assert count == "2 runs in flight, 1 stuck"
    assert "run-done" not in result.stdout


def test_runs_list_filters_and_speaks_json(prefix: str) -> None:
    result = flowgate(prefix, "runs", "list", "--stuck", "--json")
    assert result.returncode == 0, result.stderr
    [run] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (run["command_id"], run["status"], run["stuck"], run["polls"]) == (
        "run-stuck",
        "NOT_STARTED",
        True,
        12,
    )
    # Global options after the sub-command, as everywhere.
    result = flowgate(prefix, "runs", "list", "--connection", "eu", "--log-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1 run in flight (connection eu)"


def test_runs_show_has_a_runs_details_and_history(prefix: str) -> None:
    result = flowgate(prefix, "runs", "show", "run-stuck")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "status      NOT_STARTED, since " in result.stdout
    assert "stuck       yes" in lines and "polls       12" in lines
    assert [line.split()[1:] for line in lines[-2:]] == [
        ["accepted"],
        ["progress", "NOT_STARTED", "(stuck)"],
    ]
    done = flowgate(prefix, "runs", "show", "run-done", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["outcome"] == "succeeded"
    assert [(e["kind"], e["status"]) for e in shown["history"]] == [
        ("accepted", None),
        ("succeeded", "SUCCESSFUL"),
    ]


def test_runs_show_of_an_unknown_id_is_one_line_and_exit_1(prefix: str) -> None:
    result = flowgate(prefix, "runs", "show", "no-such-command")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "no run with command id 'no-such-command'" in result.stderr
