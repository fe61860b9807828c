"""The `run-partner` handler: run a partner flow, then follow its task and file events.

`trigger` calls Run Partner and returns `vendor_ref={"event_id": <task event id>}`.
`status` follows the task event until it is final. A final task event lists in `files` the
file events the run produced, each with its status at the time; every one not final yet is
then read by its own id (Event Status, concurrently, at most `FILE_EVENT_CONCURRENCY` at a
time) until it is. "Processing is complete when all task and file events are in a final
status" (Informatica's Event Status REST API page). The progress travels in the report's
`cursor`:

    {"task_event": <final task event JSON>,
     "files": [{"event_id": "7640", "event": <latest file event JSON>}, ...]}

An empty or unreadable cursor starts again from the task event.

Rules (connection settings; a status no list names falls back on the vendor's own flags):
- final: `eventStatus` in `final_statuses` or `failure_statuses`; not final: in
  `running_statuses`; any other (a customer-defined status): the event's `isFinalStatus`.
- in error: `eventStatus` in `failure_statuses`; a status no list names: `isErrorStatus`; a
  file event in another final status (Warning, ...): `isErrorStatus` when
  `fail_on_file_error`.
- A task event in error fails the run at once (its files as listed with it). Otherwise the run
  ends when every file event is final: `failed` kind `vendor_failed` naming each file in
  error, or `succeeded`. Either way the result lists the task event and every file event, with
  `eventCreationTimestamp` as RFC 3339.
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
    FileEvent,
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
    event: FileEvent


class _Progress(BaseModel):
    task_event: EventStatus
    files: list[_File]

    def cursor(self) -> dict[str, Any]:
        return {
            "task_event": self.task_event.vendor_json(),
            "files": [{"event_id": f.event_id, "event": f.event.vendor_json()} for f in self.files],
        }


class RunPartnerHandler:
    """`run-partner` on one Informatica connection."""

    def __init__(self, client: InformaticaClient) -> None:
        self.client = client
        self.connection = connection = client.connection
        self._failure = frozenset(connection.failure_statuses)
        self._final = frozenset(connection.final_statuses) | self._failure
        self._running = frozenset(connection.running_statuses)

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
            if not self.is_final(task):
                return StatusReport(state="running", status=task.eventStatus)
            listed = list({f.eventId: f for f in task.files}.values())
            if self.in_error(task, file=False):
                message = f"task event {task.eventId} ended with status {task.eventStatus}"
                return self._report("failed", task, listed, message=message)
            progress = _Progress(
                task_event=task, files=[_File(event_id=f.eventId, event=f) for f in listed]
            )

        pending = [f for f in progress.files if not self.is_final(f.event)]
        if pending:
            events = await self._file_statuses([f.event_id for f in pending])
            for file, event in zip(pending, events, strict=True):
                file.event = event
        task = progress.task_event
        if any(not self.is_final(f.event) for f in progress.files):
            return StatusReport(state="running", status=task.eventStatus, cursor=progress.cursor())
        files = [f.event for f in progress.files]
        failures = [_failure_text(event) for event in files if self.in_error(event, file=True)]
        if failures:
            return self._report("failed", task, files, message="; ".join(failures))
        return self._report("succeeded", task, files)

    def is_final(self, event: FileEvent) -> bool:
        status = event.eventStatus
        if status in self._final:
            return True
        if status in self._running:
            return False
        return event.isFinalStatus  # a status the connection's lists do not name

    def in_error(self, event: FileEvent, *, file: bool) -> bool:
        """Whether a final event counts as failed."""
        status = event.eventStatus
        if status in self._failure:
            return True
        if status in self._final:
            return file and self.connection.fail_on_file_error and event.isErrorStatus
        return event.isErrorStatus

    async def _file_statuses(self, event_ids: list[str]) -> list[FileEvent]:
        limit = asyncio.Semaphore(FILE_EVENT_CONCURRENCY)

        async def one(event_id: str) -> FileEvent:
            async with limit:
                return await self.client.event_status(event_id)

        results = await asyncio.gather(*(one(i) for i in event_ids), return_exceptions=True)
        events: list[FileEvent] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            events.append(result)
        return events

    @staticmethod
    def _report(
        state: Literal["succeeded", "failed"],
        task: EventStatus,
        files: list[FileEvent],
        *,
        message: str | None = None,
    ) -> StatusReport:
        return StatusReport(
            state=state,
            status=task.eventStatus,
            result={"task_event": task.as_json(), "file_events": [f.as_json() for f in files]},
            message=message,
        )


def _failure_text(event: FileEvent) -> str:
    name = f" ({event.fileName})" if event.fileName else ""
    return f"file event {event.eventId}{name} ended in {event.eventStatus}"


def _load(cursor: Mapping[str, Any]) -> _Progress | None:
    if not cursor:
        return None
    try:
        return _Progress.model_validate(cursor)
    except ValidationError:
        return None
