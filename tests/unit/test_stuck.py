"""Stuck runs and the runs' view, one status call at a time (`workers/poller/service.py`).

The scripted vendor and recording broker of `test_mutants_poller`; the run is triggered in the
kit's store first, as the worker does, so what the poller records can be read back.

- A run whose status stayed the same for `poll.stuck_after` is announced once: a `progress`
  event with `stuck: true` (an event id of its own), checkpointed; the calls after it say
  nothing more while the status holds.
- The first change after that says `stuck: false`; any other change carries no `stuck` at all.
- Off (None or 0) it never announces; before the threshold the next call is scheduled for the
  moment the run would turn stuck, not later.
- Each announcement records the run's state and event in the store (what `flowgate runs`
  reads); an unchanged call records nothing. A stuck announcement counts once in
  `flowgate_runs_stuck_total`.
- A poll request written before these fields existed still reads; the README's example of the
  setting is a working connection.
"""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from contracts import EventKind, event_id
from tests.unit.test_metrics import value
from tests.unit.test_mutants_poller import CID, POLL, REF, Kit, kit, polls, request, running
from workers.idempotency import RunState
from workers.metrics import Metrics, installed
from workers.outcome import Done
from workers.poller.request import PollRequest
from workers.settings import Settings


def stuck_kit(*statuses: str, stuck_after: float | None = 30.0, hold: float = 0.0) -> Kit:
    return kit(
        *(running(s) for s in statuses),
        hold=hold,
        poll={**POLL, "stuck_after": stuck_after},
    )


async def triggered(k: Kit, status: str | None = "WAITING") -> None:
    run = {"command_type": "start-process", "connection": "default"}
    await k.store.record_trigger(CID, REF, run=run, state=RunState(status, time.time() - 100))


def progress(k: Kit) -> list[dict[str, Any]]:
    return [event["data"] for key, _, event in k.broker.events() if key.endswith(".progress")]


async def test_a_run_unchanged_past_stuck_after_is_announced_once() -> None:
    k = stuck_kit("WAITING")
    await triggered(k)
    since = time.time() - 31
    assert (await k.handle(request(polls=5, status_since=since)))[0] == Done()
    ((key, message_id, event),) = k.broker.events()
    assert key == "start-process.progress"
    assert message_id == event_id(CID, EventKind.PROGRESS, "5:stuck")
    assert (event["data"]["status"], event["data"]["stuck"]) == ("WAITING", True)
    ((_, _, following),) = polls(k.broker)  # checkpointed: a replay never announces it again
    assert (following.stuck, following.status_since, following.polls) == (True, since, 6)
    view = await k.store.run(CID)
    assert view is not None and view.state.stuck and view.state.since == since
    assert (view.state.polls, view.state.next_poll_at) == (6, following.due_at)
    assert view.state.schedule == (POLL["first_delay"], POLL["factor"], POLL["max_delay"])
    assert [(e.kind, e.status, e.stuck) for e in view.history] == [
        ("accepted", "WAITING", None),
        ("progress", "WAITING", True),
    ]


async def test_each_stuck_announcement_counts_once_in_the_metric() -> None:
    with installed(Metrics()) as metrics:
        k = stuck_kit("WAITING", "WAITING")
        since = time.time() - 31
        await k.handle(request(status_since=since))
        ((_, _, following),) = polls(k.broker)
        await k.handle(following.model_copy(update={"due_at": None}))
    labels = {"command_type": "start-process", "vendor": "robusta"}
    assert value(metrics, "flowgate_runs_stuck_total", **labels) == 1


async def test_the_calls_after_the_announcement_say_nothing_more() -> None:
    k = stuck_kit("WAITING")
    await triggered(k)
    settled = await k.handle(request(status_since=time.time() - 300, stuck=True))
    assert settled[0] == Done()
    assert k.broker.events() == []
    ((_, _, following),) = polls(k.broker)
    assert following.stuck
    view = await k.store.run(CID)
    assert view is not None and len(view.history) == 1, "an unchanged call records nothing"


async def test_the_change_that_ends_a_stuck_period_says_stuck_false() -> None:
    k = stuck_kit("RUNNING")
    await triggered(k)
    before = time.time()
    await k.handle(request(status_since=before - 300, stuck=True))
    [data] = progress(k)
    assert (data["status"], data["stuck"]) == ("RUNNING", False)
    ((_, _, following),) = polls(k.broker)
    assert not following.stuck
    assert following.status_since is not None and following.status_since >= before
    view = await k.store.run(CID)
    assert view is not None and not view.state.stuck and view.state.status == "RUNNING"
    assert view.history[-1].stuck is False


async def test_a_change_without_a_stuck_period_carries_no_stuck() -> None:
    k = stuck_kit("RUNNING")
    await k.handle(request())
    [data] = progress(k)
    assert "stuck" not in data, "absent, not null: older consumers read it as before"


@pytest.mark.parametrize("off", [None, 0.0])
async def test_stuck_detection_is_off_without_a_threshold(off: float | None) -> None:
    k = stuck_kit("WAITING", stuck_after=off)
    await k.handle(request(status_since=time.time() - 10 * 86400))
    assert k.broker.events() == []
    ((_, _, following),) = polls(k.broker)
    assert not following.stuck


async def test_the_next_call_comes_when_the_run_would_turn_stuck() -> None:
    k = stuck_kit("WAITING", stuck_after=30.0)
    # Unchanged for 25 s of 30: the schedule says 16 s after call number 3; 5 s is sooner.
    since = time.time() - 25
    await k.handle(request(polls=2, status_since=since))
    assert k.broker.events() == []
    ((_, _, following),) = polls(k.broker)
    assert following.due_at == pytest.approx(since + 30, abs=0.5)


async def test_a_change_records_the_runs_state_once() -> None:
    k = stuck_kit("RUNNING", stuck_after=None)
    await triggered(k, status=None)
    await k.handle(request(status=None, polls=0))
    view = await k.store.run(CID)
    assert view is not None
    assert (view.state.status, view.state.polls, view.state.stuck) == ("RUNNING", 1, False)
    assert [(e.kind, e.status) for e in view.history] == [
        ("accepted", None),
        ("progress", "RUNNING"),
    ]


def test_a_poll_request_from_before_stuck_detection_still_reads() -> None:
    old = request().model_dump(mode="json")
    del old["status_since"], old["stuck"]
    read = PollRequest.model_validate(old)
    assert (read.status_since, read.stuck, read.since()) == (None, False, read.started_at)


def test_the_readme_stuck_example_is_a_working_connection() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    [block] = [b for b in blocks if "stuck_after" in b]
    settings = Settings(pbsm=tomllib.loads(block)["pbsm"], default_connections={"pbsm": "prod"})
    assert settings.connections("pbsm")["prod"].poll.stuck_after == 1800


def test_a_poll_request_from_a_newer_flowgate_is_still_read() -> None:
    """Rolling upgrades: a field this version does not know is ignored, not refused."""
    from workers.poller.request import PollRequest

    body = {
        "command_id": "c1",
        "command_type": "trigger-batch",
        "connection": "default",
        "vendor_ref": {"batch": "B1"},
        "started_at": 1.0,
        "deadline": 2.0,
        "a_field_of_a_later_version": {"x": 1},
    }
    request = PollRequest.model_validate(body)
    assert request.command_id == "c1"
    assert "a_field_of_a_later_version" not in request.model_dump()


async def test_a_stuck_run_is_one_warning_naming_it_and_its_state_keeps_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    k = stuck_kit("WAITING")
    await triggered(k)
    since = time.time() - 31
    before = time.time()
    with caplog.at_level("WARNING", logger="flowgate.poller"):
        await k.handle(request(polls=5, status_since=since, deadline=before + 3600))
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "run_stuck"]
    message = record.getMessage()
    assert message.startswith(f"run {CID} (start-process, default) stuck: status WAITING")
    unchanged = float(message.rsplit("unchanged for ", 1)[1].split()[0])
    assert 31 <= unchanged < 40
    unchanged_for = getattr(record, "unchanged_for", None)
    assert isinstance(unchanged_for, float) and 31.0 <= unchanged_for < 40.0
    assert unchanged_for == round(unchanged_for, 1)
    view = await k.store.run(CID)
    assert view is not None and view.state.deadline == before + 3600
    assert before <= view.history[-1].at <= time.time()
