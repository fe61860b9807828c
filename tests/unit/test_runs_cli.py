"""`flowgate runs list|show` on an in-memory store (`workers/runs.py`): the table and its
projection of status calls, JSON lines, one run's details and history, and one-line errors.

The poller records a run only when something changes, so the status calls made since and the
next one are projected on the poll schedule recorded with the run, marked `~`: each call due
by now counts as made, the delays growing as the poller's own (`next_poll_delay`), never past
the deadline.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import time

import pytest
from pydantic import SecretStr

from tests.conftest import fast_settings
from workers import runs
from workers.cli import _parser
from workers.idempotency import MemoryStore, RunEvent, RunState
from workers.runs import Projection, project
from workers.settings import IdempotencySettings

NOW = 1_800_000_000.0
SCHEDULE = (1.0, 2.0, 30.0)


def args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["runs", *argv])


async def listed(store: MemoryStore, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await runs.run_on(store, args(*argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# --- projection ---------------------------------------------------------------------------


def test_a_call_not_yet_due_is_shown_as_recorded() -> None:
    state = RunState("ONGOING", NOW - 5, next_poll_at=NOW + 3, polls=4, schedule=SCHEDULE)
    assert project(state, NOW) == Projection(4, NOW + 3, False)


def test_calls_due_since_the_last_change_are_counted_on_the_schedule() -> None:
    # Recorded after call 2, call 3 due at NOW - 10; the delay after call n is 1 s x 2^n:
    # call 4 at NOW - 2 (8 s after), call 5 at NOW + 14 (16 s after). Two made, one next.
    state = RunState("ONGOING", NOW - 20, next_poll_at=NOW - 10, polls=2, schedule=SCHEDULE)
    assert project(state, NOW) == Projection(4, NOW + 14, True)


def test_the_projection_stops_at_the_deadline() -> None:
    state = RunState(
        "ONGOING", NOW - 50, next_poll_at=NOW - 40, polls=1, deadline=NOW - 30, schedule=SCHEDULE
    )
    projection = project(state, NOW)
    assert projection.next_poll_at == NOW - 30 and projection.estimated


def test_without_a_schedule_nothing_is_projected() -> None:
    state = RunState("ONGOING", NOW - 50, next_poll_at=NOW - 40, polls=1)
    assert project(state, NOW) == Projection(1, NOW - 40, False)


# --- list and show ------------------------------------------------------------------------

BATCH = {"command_type": "trigger-batch", "connection": "default"}
JOB = {"command_type": "run-job", "connection": "eu"}


async def two_runs() -> MemoryStore:
    store = MemoryStore()
    now = time.time()
    await store.record_trigger(
        "cmd-batch",
        {"batch_run_id": "B2001_2026-11-21_1653041947296_1", "batch": "B2001"},
        run=BATCH,
        state=RunState(None, now - 600, next_poll_at=now - 599, schedule=SCHEDULE),
    )
    stuck = RunState(
        "NOT_STARTED", now - 590, next_poll_at=now + 20, polls=9, stuck=True, schedule=SCHEDULE
    )
    await store.record_status(
        "cmd-batch", stuck, event=RunEvent("progress", "NOT_STARTED", now - 5, True)
    )
    await store.record_trigger(
        "cmd-job",
        {"job_execution_id": "42"},
        run=JOB,
        state=RunState("QUEUED", now - 60, next_poll_at=now + 5, deadline=now + 3600),
    )
    return store


async def test_list_is_a_table_oldest_first_with_a_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = await listed(await two_runs(), "list")
    assert (code, err) == (0, "")
    header, batch, job, count = out.splitlines()
    assert header.split() == [
        "COMMAND",
        "ID",
        "TYPE",
        "CONNECTION",
        "STATUS",
        "STATUS",
        "SINCE",
        "NEXT",
        "POLL",
        "POLLS",
        "STUCK",
        "VENDOR",
        "REF",
    ]
    assert batch.split()[:5] == ["cmd-batch", "trigger-batch", "default", "NOT_STARTED", "9m50s"]
    assert "in 20s" in batch and " yes " in batch and "batch=B2001, batch_run_id=B2001_" in batch
    assert job.split()[:4] == ["cmd-job", "run-job", "eu", "QUEUED"]
    assert "in 5s" in job and "job_execution_id=42" in job
    # Columns line up under the header.
    assert batch.index("NOT_STARTED") == job.index("QUEUED") == header.index("STATUS")
    assert count == "2 runs in flight, 1 stuck"


async def test_the_vendor_ref_is_cut_to_fit_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "130")
    _, out, _ = await listed(await two_runs(), "list")
    header, batch, _, _ = out.splitlines()
    assert len(batch) == 130 and batch.endswith("…")
    assert batch.index("batch=B2001") == header.index("VENDOR REF")


async def test_list_filters_and_says_what_it_narrowed() -> None:
    store = await two_runs()
    code, out, _ = await listed(store, "list", "--stuck")
    assert code == 0 and out.splitlines()[-1] == "1 stuck run in flight"
    assert "cmd-batch" in out and "cmd-job" not in out
    _, out, _ = await listed(store, "list", "--type", "run-job", "--connection", "eu")
    assert out.splitlines()[-1] == "1 run in flight (type run-job, connection eu)"
    _, out, _ = await listed(store, "list", "--connection", "nowhere")
    assert out == "0 runs in flight (connection nowhere)\n", "no header over nothing"


async def test_list_json_is_one_object_per_run() -> None:
    _, out, _ = await listed(await two_runs(), "list", "--json")
    first, second = (json.loads(line) for line in out.splitlines())
    assert (first["command_id"], second["command_id"]) == ("cmd-batch", "cmd-job")
    assert first["vendor_ref"]["batch"] == "B2001"
    assert (first["status"], first["stuck"], first["polls"], first["outcome"]) == (
        "NOT_STARTED",
        True,
        9,
        None,
    )
    assert first["status_since"].endswith("Z") and "history" not in first
    assert first["estimated"]["polls"] == 9


async def test_show_has_the_details_and_the_history() -> None:
    store = await two_runs()
    await store.record_outcome(
        "cmd-job", {"kind": "failed", "data": {"status": "ERROR", "command_id": "cmd-job"}}
    )
    code, out, _ = await listed(store, "show", "cmd-batch")
    assert code == 0
    assert "stuck       yes" in out and "outcome     none yet: in flight" in out
    assert "vendor ref  batch=B2001, batch_run_id=B2001_2026-11-21_1653041947296_1" in out
    events = out.split("history (oldest first; the last 50 events are kept):\n")[1]
    assert [line.split()[1:] for line in events.splitlines()] == [
        ["accepted"],
        ["progress", "NOT_STARTED", "(stuck)"],
    ]
    _, out, _ = await listed(store, "show", "cmd-job")
    assert "outcome     failed" in out
    assert out.splitlines()[-1].split()[1:] == ["failed", "ERROR"]
    _, out, _ = await listed(store, "show", "cmd-job", "--json")
    shown = json.loads(out)
    assert shown["outcome"] == "failed"
    assert [e["kind"] for e in shown["history"]] == ["accepted", "failed"]


async def test_show_of_an_unknown_id_is_one_line_and_exit_1() -> None:
    code, out, err = await listed(await two_runs(), "show", "nope")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "no run with command id 'nope'" in err


# --- where the runs are -------------------------------------------------------------------


async def test_an_in_memory_store_is_refused_in_one_line() -> None:
    settings = fast_settings("amqp://unused/", "http://127.0.0.1:9", store="memory")
    err = io.StringIO()
    assert await runs.run(args("list"), settings, out=io.StringIO(), err=err) == 1
    assert "idempotency.store is memory" in err.getvalue()


async def test_an_unreachable_store_is_one_line_without_its_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redis = IdempotencySettings(redis_url=SecretStr(f"redis://:s3cret@127.0.0.1:{port}/0"))
    settings = fast_settings("amqp://unused/", "http://127.0.0.1:9").model_copy(
        update={"idempotency": redis}
    )
    err = io.StringIO()
    assert await runs.run(args("list"), settings, out=io.StringIO(), err=err) == 1
    text = err.getvalue()
    assert text.count("\n") == 1 and f"redis://127.0.0.1:{port}/0" in text
    assert "s3cret" not in text


@pytest.mark.parametrize("argv", [["list", "--type", "add-paylink"], ["show"]])
def test_bad_usage_is_refused_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        args(*argv)
    assert done.value.code == 2
