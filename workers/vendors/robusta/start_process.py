"""The `start-process` adapter: start a Robusta process, then follow its status until it ends.

`trigger` calls process start and returns `vendor_ref={"robusta_spid": <robustaSpid>}`.
`status` asks process status once per call (no `cursor` is needed; it is always `{}`) and maps
the vendor's status with the connection's lists: `success_statuses` → succeeded,
`running_statuses` → running, anything else → `unknown_status` (failed by default).
`result` is the `__out_*` outputs without their prefix; `message` is the vendor's message.

Schedule dates are sent as `yyyy-MM-dd HH:mm:ss` in the connection's `timezone`: an aware
datetime is converted to that zone, a naive one is taken as already in it.

`runOnce` and `runImmediately` the command does not give are `Y` without a schedule and `N`
with one, as Robusta's scheduled example sends them. A scheduled process that does not run
immediately runs first at its `startDate` ("The first date the process will run"): when that is
still ahead, `Triggered.starts_at` says so and the poller first looks at it then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts.commands import StartProcess
from workers.vendors.base import RunState, StatusReport, Triggered
from workers.vendors.robusta.client import RobustaClient
from workers.vendors.robusta.models import StartProcessRequest, YesNo

__all__ = [
    "DATE_FORMAT",
    "StartProcessHandler",
    "format_date",
    "runs_immediately",
    "start_process_request",
    "starts_at",
]

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def format_date(value: datetime, zone: ZoneInfo) -> str:
    """`yyyy-MM-dd HH:mm:ss` in `zone`; a naive datetime is taken as already in `zone`."""
    if value.tzinfo is not None:
        value = value.astimezone(zone)
    return value.strftime(DATE_FORMAT)


def _flag(value: bool | None, *, scheduled: bool) -> YesNo:
    """Y/N for a flag; one the command does not give is N when scheduled (Robusta's scheduled
    example sends `"runOnce": "N"` and `runImmediately` `"N"`), else Y."""
    if value is None:
        value = not scheduled
    return "Y" if value else "N"


def runs_immediately(command: StartProcess) -> bool:
    """Whether the process is asked to run now (`runImmediately` Y)."""
    return _flag(command.run_immediately, scheduled=command.schedule is not None) == "Y"


def start_process_request(command: StartProcess, zone: ZoneInfo) -> StartProcessRequest:
    """The process start body for a command, dates in `zone`."""
    schedule = command.schedule
    scheduled = schedule is not None
    return StartProcessRequest(
        values=dict(command.values),
        name=command.process_name,
        worker=command.worker or None,
        runOnce=_flag(command.run_once, scheduled=scheduled),
        runImmediately=_flag(command.run_immediately, scheduled=scheduled),
        quartzDef=schedule.quartz_cron if schedule else None,
        startDate=format_date(schedule.start, zone) if schedule else None,
        endDate=format_date(schedule.end, zone) if schedule else None,
        retryCount=str(schedule.retry_count) if schedule else None,
    )


def starts_at(command: StartProcess, now: float) -> float | None:
    """When a scheduled process first runs, if that is after `now` (epoch seconds), else None.

    Robusta's document: `startDate` is "The first date the process will run". A process asked
    to run immediately, or whose start has passed, is looked at straight away."""
    schedule = command.schedule
    if schedule is None or runs_immediately(command):
        return None
    start = schedule.start.timestamp()
    return start if start > now else None


class StartProcessHandler:
    """`start-process` on one Robusta connection."""

    def __init__(self, client: RobustaClient, *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.connection = connection = client.connection
        # Resolved here so a wrong zone name fails at bootstrap, not on the first command.
        self.zone = ZoneInfo(connection.timezone)
        self._clock = clock

    async def trigger(self, command: StartProcess, *, command_id: str) -> Triggered:
        """Start the process. `command_id` is unused: the vendor has no idempotency key."""
        answer = await self.client.start_process(start_process_request(command, self.zone))
        return Triggered(
            vendor_ref={"robusta_spid": answer.robustaSpid},
            starts_at=starts_at(command, self._clock()),
        )

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        robusta_spid = vendor_ref["robusta_spid"]
        answer = await self.client.process_status(robusta_spid)
        state = self.state_of(answer.status)
        message = answer.message
        if state == "failed" and not message:
            message = f"process {robusta_spid} ended with status {answer.status}"
        return StatusReport(
            state=state, status=answer.status, result=answer.outputs(), message=message
        )

    def state_of(self, status: str) -> RunState:
        """The run state a vendor status means on this connection."""
        if status in self.connection.success_statuses:
            return "succeeded"
        if status in self.connection.running_statuses:
            return "running"
        return self.connection.unknown_status
