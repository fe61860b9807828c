"""`flowgate runs` on real RabbitMQ and Redis against the simulators: a slow run is listed in
flight with its vendor status while it goes on and is gone once its terminal event is out; a
run that stays in one status past its connection's `poll.stuck_after` gets exactly one
`progress` event with `stuck: true` and shows in `flowgate runs list --stuck`.

The store is counted round trip by round trip: a followed command costs what it cost before
the runs' view (claim, trigger, outcome) plus one call per change of its vendor status, and
nothing for the status calls that saw no change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import System, fast_settings, running_system
from tests.waiting import poll_until
from workers import runs
from workers.cli import _parser
from workers.idempotency import RedisStore, RunEvent, RunState
from workers.settings import Settings
from workers.simulators import RunningSimulators

pytestmark = pytest.mark.integration


class CountingStore(RedisStore):
    """The Redis store, counting each call per command id and every round trip to Redis."""

    def __init__(self, settings: Settings) -> None:
        config = settings.idempotency
        super().__init__(
            config.redis_url.get_secret_value(),
            retention=config.retention,
            prefix=config.key_prefix,
        )
        self.calls: Counter[tuple[str, str]] = Counter()
        self.round_trips = 0

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        self.round_trips += 1
        async with super()._guard():
            yield

    async def claim(self, command_id: str, **kwargs: Any) -> Any:
        self.calls[command_id, "claim"] += 1
        return await super().claim(command_id, **kwargs)

    async def record_trigger(self, command_id: str, *args: Any, **kwargs: Any) -> None:
        self.calls[command_id, "record_trigger"] += 1
        await super().record_trigger(command_id, *args, **kwargs)

    async def record_status(self, command_id: str, state: RunState, *, event: RunEvent) -> None:
        self.calls[command_id, "record_status"] += 1
        await super().record_status(command_id, state, event=event)

    async def record_outcome(self, command_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        self.calls[command_id, "record_outcome"] += 1
        return await super().record_outcome(command_id, outcome)

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        self.calls[command_id, "outcome"] += 1
        return await super().outcome(command_id)

    def of(self, command_id: str) -> dict[str, int]:
        return {method: n for (cid, method), n in self.calls.items() if cid == command_id}


def _args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["runs", *argv])


async def flowgate_runs(settings: Settings, *argv: str) -> tuple[int, str, str]:
    """`flowgate runs ARGV` as the command runs it (a store of its own, from the settings)."""
    out, err = io.StringIO(), io.StringIO()
    code = await runs.run(_args(*argv), settings, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def listed(settings: Settings, *argv: str) -> dict[str, dict[str, Any]]:
    code, out, err = await flowgate_runs(settings, "list", "--json", *argv)
    assert code == 0, err
    return {run["command_id"]: run for run in map(json.loads, out.splitlines())}


def progress(system: System, command_id: str) -> list[dict[str, Any]]:
    return [
        event["data"]
        for event in system.events.by_command.get(command_id, [])
        if event["type"].endswith(".progress")
    ]


async def test_a_slow_run_is_listed_while_in_flight_and_gone_after_its_terminal(
    amqp_url: str, sims: RunningSimulators
) -> None:
    sims.sims.config.pbsm.run_seconds = 3.0  # NOT_STARTED, ONGOING from 0.75 s, ends at 3 s
    settings = fast_settings(amqp_url, sims.base_url, store="redis")
    store = CountingStore(settings)
    async with running_system(settings, sims.sims, store=store) as system:
        cid = await system.publish("trigger-batch", {"batch": "RUNS1"})

        async def ongoing() -> dict[str, Any] | None:
            return (await listed(settings)).get(cid)

        run = await poll_until(
            ongoing, lambda r: r is not None and r["status"] == "ONGOING", timeout=10
        )
        assert run is not None
        assert (run["command_type"], run["connection"], run["outcome"]) == (
            "trigger-batch",
            "default",
            None,
        )
        assert run["vendor_ref"]["batch"] == "RUNS1" and run["stuck"] is False
        assert run["polls"] >= 1 and run["next_poll_at"].endswith("Z")
        code, table, _ = await flowgate_runs(settings, "list", "--type", "trigger-batch")
        [row] = [line for line in table.splitlines() if line.startswith(cid)]
        assert row.split()[1:4] == ["trigger-batch", "default", "ONGOING"]
        assert table.splitlines()[-1] == "1 run in flight (type trigger-batch)"

        terminal = await system.events.terminal(cid)
        assert terminal["type"] == "flowgate.trigger-batch.succeeded"
        # Recorded before it was published: gone from the list by the time it is seen.
        assert cid not in await listed(settings)
        code, shown, _ = await flowgate_runs(settings, "show", cid, "--json")
        assert code == 0
        history = json.loads(shown)["history"]
        kinds = system.events.kinds(cid)
        assert (
            [e["kind"] for e in history]
            == kinds
            == ["accepted", "progress", "progress", "succeeded"]
        )
        seen = [d["status"] for d in progress(system, cid)]
        assert [e["status"] for e in history if e["kind"] == "progress"] == seen
        assert history[-1]["status"] == terminal["data"]["status"]

        # What following the run cost the store: one call per status change on top of the
        # claim, the trigger and the outcome; the unchanged status calls cost nothing.
        changes = len(seen)
        assert store.of(cid) == {
            "claim": 1,
            "record_trigger": 1,
            "record_status": changes,
            "record_outcome": 1,
        }
        assert store.round_trips == 3 + changes
        status_calls = len(system.sims.ledger.entries("pbsm.status"))
        assert status_calls > changes + 1, "some status calls saw no change"


async def test_a_run_stuck_in_one_status_is_announced_once_and_listed(
    amqp_url: str, sims: RunningSimulators
) -> None:
    sims.sims.config.pbsm.run_seconds = 60.0  # NOT_STARTED for its first 15 s
    poll = {"first_delay": 0.25, "factor": 1.5, "max_delay": 1.0, "max_duration": 60}
    settings = fast_settings(
        amqp_url,
        sims.base_url,
        store="redis",
        connections={"pbsm": {"default": {"poll": {**poll, "stuck_after": 0.8}}}},
    )
    async with running_system(settings, sims.sims) as system:
        cid = await system.publish("trigger-batch", {"batch": "STUCK1"})
        async with asyncio.timeout(10), system.events.changed:
            await system.events.changed.wait_for(
                lambda: any(d.get("stuck") for d in progress(system, cid))
            )
        [first, announced] = progress(system, cid)
        assert (first["status"], "stuck" in first) == ("NOT_STARTED", False)
        assert (announced["status"], announced["stuck"]) == ("NOT_STARTED", True)

        async def stuck() -> dict[str, dict[str, Any]]:
            return await listed(settings, "--stuck")

        found = await poll_until(stuck, lambda r: cid in r)
        assert found[cid]["status"] == "NOT_STARTED" and found[cid]["stuck"] is True
        assert cid in (await listed(settings)), "a stuck run is in flight all the same"
        code, table, _ = await flowgate_runs(settings, "list", "--stuck")
        [row] = [line for line in table.splitlines() if line.startswith(cid)]
        assert " yes " in row and table.splitlines()[-1] == "1 stuck run in flight"

        # The status holds: the poller goes on calling, and says nothing more.
        calls = len(system.sims.ledger.entries("pbsm.status"))

        async def status_calls() -> int:
            return len(system.sims.ledger.entries("pbsm.status"))

        await poll_until(status_calls, lambda n: n >= calls + 3, timeout=10)
        assert progress(system, cid) == [first, announced]

        code, shown, _ = await flowgate_runs(settings, "show", cid)
        assert code == 0 and "stuck       yes" in shown
        assert shown.splitlines()[-1].split()[1:] == ["progress", "NOT_STARTED", "(stuck)"]

        # Stopped: it leaves the list, stuck or not.
        cancel = await system.publish("cancel-run", {"command_id": cid})
        await system.events.terminal(cancel)
        ended = await system.events.terminal(cid)
        assert ended["type"] == "flowgate.trigger-batch.cancelled"
        assert await listed(settings) == {} and await listed(settings, "--stuck") == {}
