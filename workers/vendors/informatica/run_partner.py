"""The `run-partner` handler: run a partner flow, then follow its task and file events.

`trigger` calls Run Partner and returns `vendor_ref={"event_id": <task event id>}`.
`status` follows the task event until its `eventStatus` is final, then every file event the
task lists in `fileEvents` until each is final (all pending file events are asked concurrently,
at most `FILE_EVENT_CONCURRENCY` at a time). The progress travels in the report's `cursor`:

    {"task_event": <final task event JSON>,
     "files": [{"event_id": "7640", "event": <latest file event JSON> | None}, ...]}

An empty or unreadable cursor starts again from the task event.

Rules (connection settings):
- final: `eventStatus` in `final_statuses` or in `failure_statuses`.
- failed: the task's status is in `failure_statuses` (reported at once, its file events are not
  followed), or a final file event's status is in `failure_statuses`, or — with
  `fail_on_file_error` — a final file event has `isErrorStatus` true. A failed file event fails
  the run at once, without waiting for the other file events.
- succeeded: the task and every file event final, none failed. The vendor's `isFinalStatus`
  is not used: the connection's lists decide, so custom statuses can be configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from contracts.commands import RunPartner
from workers.vendors.base import StatusReport, Triggered
from workers.vendors.informatica.client import InformaticaClient
from workers.vendors.informatica.models import (
    EventStatus,
    MappingParameters,
    RunPartnerRequest,
)

__all__ = ["FILE_EVENT_CONCURRENCY", "RunPartnerHandler", "run_partner_request"]

FILE_EVENT_CONCURRENCY = 8


def run_partner_request(command: RunPartner) -> RunPartnerRequest:
    """The Run Partner body for a command; `mappingParameters` holds only the non-empty maps."""
    mapping = MappingParameters(
        inputParameters=dict(command.input_parameters) or None,
        inOutParameters=dict(command.in_out_parameters) or None,
        mctAdvSessionProperties=dict(command.session_properties) or None,
    )
    return RunPartnerRequest(
        partnerName=command.partner_name,
        direction=command.direction.upper(),
        mappingParameters=None if mapping.is_empty() else mapping,
    )


class _File(BaseModel):
    event_id: str
    event: EventStatus | None = None


class _Progress(BaseModel):
    task_event: EventStatus
    files: list[_File]

    def cursor(self) -> dict[str, Any]:
        return {
            "task_event": self.task_event.as_json(),
            "files": [
                {"event_id": f.event_id, "event": f.event.as_json() if f.event else None}
                for f in self.files
            ],
        }


class RunPartnerHandler:
    """`run-partner` on one Informatica connection."""

    def __init__(self, client: InformaticaClient) -> None:
        self.client = client
        self.connection = connection = client.connection
        self._final = frozenset(connection.final_statuses) | frozenset(connection.failure_statuses)
        self._failure = frozenset(connection.failure_statuses)

    async def trigger(self, command: RunPartner, *, command_id: str) -> Triggered:
        """Run the partner flow. `command_id` is unused: the vendor has no idempotency key."""
        answer = await self.client.run_partner(run_partner_request(command))
        return Triggered(vendor_ref={"event_id": answer.eventId})

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        progress = _load(cursor)
        if progress is None:
            task = await self.client.event_status(vendor_ref["event_id"])
            if task.eventStatus not in self._final:
                return StatusReport(state="running", status=task.eventStatus)
            if task.eventStatus in self._failure:
                message = f"task event {task.eventId} ended with status {task.eventStatus}"
                return self._report("failed", task, [], message=message)
            ids = list(dict.fromkeys(ref.eventId for ref in task.fileEvents))
            progress = _Progress(task_event=task, files=[_File(event_id=i) for i in ids])

        pending = [f for f in progress.files if not self._is_final(f.event)]
        if pending:
            events = await self._file_statuses([f.event_id for f in pending])
            for file, event in zip(pending, events, strict=True):
                file.event = event

        seen = [f.event for f in progress.files if f.event is not None]
        failures = [self._failure_text(event) for event in seen if self._failed(event)]
        if failures:
            return self._report("failed", progress.task_event, seen, message="; ".join(failures))
        if any(not self._is_final(f.event) for f in progress.files):
            return StatusReport(
                state="running", status=progress.task_event.eventStatus, cursor=progress.cursor()
            )
        return self._report("succeeded", progress.task_event, seen)

    async def _file_statuses(self, event_ids: list[str]) -> list[EventStatus]:
        limit = asyncio.Semaphore(FILE_EVENT_CONCURRENCY)

        async def one(event_id: str) -> EventStatus:
            async with limit:
                return await self.client.event_status(event_id)

        results = await asyncio.gather(*(one(i) for i in event_ids), return_exceptions=True)
        events: list[EventStatus] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            events.append(result)
        return events

    def _is_final(self, event: EventStatus | None) -> bool:
        return event is not None and event.eventStatus in self._final

    def _failed(self, event: EventStatus) -> bool:
        if not self._is_final(event):
            return False
        if event.eventStatus in self._failure:
            return True
        return self.connection.fail_on_file_error and event.isErrorStatus

    def _failure_text(self, event: EventStatus) -> str:
        name = f" ({event.fileName})" if event.fileName else ""
        if event.eventStatus in self._failure:
            return f"file event {event.eventId}{name} ended with status {event.eventStatus}"
        return f"file event {event.eventId}{name} ended in error status {event.eventStatus}"

    @staticmethod
    def _report(
        state: Literal["succeeded", "failed"],
        task: EventStatus,
        files: list[EventStatus],
        *,
        message: str | None = None,
    ) -> StatusReport:
        return StatusReport(
            state=state,
            status=task.eventStatus,
            result={"task_event": task.as_json(), "file_events": [f.as_json() for f in files]},
            message=message,
        )


def _load(cursor: Mapping[str, Any]) -> _Progress | None:
    if not cursor:
        return None
    try:
        return _Progress.model_validate(cursor)
    except ValidationError:
        return None
