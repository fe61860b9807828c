"""Informatica B2B Gateway: Run Partner (v1) and Event Status (v3).

Shapes as Informatica's Event Status REST API page documents them. A partner run is a task
event that moves Processing/Downloading/Waiting for Acknowledgment -> final over the first two
thirds of ``run_seconds``. Once final, the task event lists its file events in ``files`` (each
with its status at that moment); the file events are themselves final at ``run_seconds``, so a
client must read each by its own id until it is, as the page says. Times are epoch
milliseconds (``eventCreationTimestamp``, ``System.currentTimeMillis``). Customer-defined
statuses (``custom_statuses``) carry the final and error flags configured for them. Statuses
are computed from the elapsed time, never from a timer, to stay deterministic.
"""

from __future__ import annotations

import http
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from ._common import (
    Clock,
    Inbound,
    Outcome,
    Vendor,
    VendorRoute,
    basic_credentials,
    json_response,
)
from ._config import InformaticaConfig

__all__ = ["FINAL_STATUSES", "InformaticaSim"]

FINAL_STATUSES = ("Complete", "Warning", "Reprocessed", "Discarded", "Error", "System Error")
_ERROR_STATUSES = ("Error", "System Error")
_RUNNING = {
    "INBOUND": ("Downloading", "Processing"),
    "OUTBOUND": ("Processing", "Waiting for Acknowledgment"),
}
_MAPPING_KEYS = ("inputParameters", "inOutParameters", "mctAdvSessionProperties")
_FIRST_EVENT_ID = 7638


@dataclass
class _Task:
    event_id: str
    partner: str
    direction: str
    started: float
    created_at: float
    outcome: Outcome
    file_ids: list[str] = field(default_factory=list)


def _error(status: int, message: str) -> Response:
    """Our error body (the seed gives none): ``{"error": {"code", "message"}}``."""
    code = http.HTTPStatus(status).name
    return json_response({"error": {"code": code, "message": message}}, status)


class InformaticaSim(Vendor):
    """The partner runs and their events; ``outcomes`` is keyed by partner name."""

    name = "informatica"

    def __init__(self, config: InformaticaConfig, outcomes: dict[str, Outcome], clock: Clock):
        self.config = config
        self._outcomes = outcomes
        self._clock = clock
        self._tasks: dict[str, _Task] = {}
        self._files: dict[str, tuple[_Task, int]] = {}
        self._next_id = _FIRST_EVENT_ID

    @property
    def latency(self) -> float:
        return self.config.latency

    def routes(self) -> list[VendorRoute]:
        return [
            VendorRoute("/b2b-gw/api/v1/partner/run", "informatica.run", ["POST"], self.run),
            VendorRoute(
                "/b2b-gw/api/v3/event/status/{eventId}", "informatica.status", ["GET"], self.status
            ),
        ]

    def error_response(self, status: int) -> Response:
        return _error(status, http.HTTPStatus(status).phrase)

    def check_outcome(self, final_status: str, file_status: str | None) -> None:
        known = (*FINAL_STATUSES, *self.config.custom_statuses)
        for status in (final_status, file_status):
            if status is not None and status not in known:
                raise ValueError(f"informatica final statuses are {', '.join(known)}")

    def reset(self) -> None:
        self._tasks.clear()
        self._files.clear()
        self._next_id = _FIRST_EVENT_ID

    def _authorized(self, request: Inbound) -> bool:
        return basic_credentials(request.headers) == (self.config.username, self.config.password)

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id - 1)

    def run(self, request: Inbound) -> Response:
        """``POST /b2b-gw/api/v1/partner/run``: validate, start a task event, answer its id."""
        if not self._authorized(request):
            return _error(401, "Invalid username or password.")
        body = request.json
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        partner = body.get("partnerName")
        if not isinstance(partner, str) or not partner:
            return _error(400, "partnerName is required.")
        if "<" in partner or ">" in partner:
            return _error(400, "partnerName must not contain angled brackets (<>).")
        direction = body.get("direction")
        if not isinstance(direction, str) or direction.upper() not in _RUNNING:
            return _error(400, "direction must be INBOUND or OUTBOUND.")
        problem = _mapping_problem(body.get("mappingParameters"))
        if problem:
            return _error(400, problem)
        task = _Task(
            event_id=self._new_id(),
            partner=partner,
            direction=direction.upper(),
            started=self._clock(),
            created_at=time.time(),
            outcome=self._outcomes.get(partner, Outcome("Complete")),
        )
        for index in range(self.config.file_events):
            task.file_ids.append(self._new_id())
            self._files[task.file_ids[-1]] = (task, index)
        self._tasks[task.event_id] = task
        return json_response({"eventId": task.event_id})

    def status(self, request: Inbound) -> Response:
        """``GET /b2b-gw/api/v3/event/status/{eventId}``: a task event or a file event."""
        if not self._authorized(request):
            return _error(401, "Invalid username or password.")
        event_id = request.path_params["eventId"]
        elapsed = self._clock() - self._started(event_id)
        task_final_at = self.config.run_seconds * 2 / 3
        if event_id in self._tasks:
            task = self._tasks[event_id]
            final = elapsed >= task_final_at
            if final:
                status = task.outcome.final_status
            else:
                status = _RUNNING[task.direction][int(2 * elapsed / task_final_at)]
            event = self._event(task.event_id, "Task Level Event", status, final, task.created_at)
            event |= {
                "partnerName": task.partner,
                "partnerNumber": f"P{zlib.crc32(task.partner.encode()) % 100000:05d}",
                "partnerFileType": "Custom",
                "direction": task.direction.capitalize(),
            }
            if final:
                event["files"] = [self._file_event(i, elapsed) for i in task.file_ids]
            return json_response(event)
        if event_id in self._files and elapsed >= task_final_at:
            return json_response(self._file_event(event_id, elapsed))
        return _error(404, f"Event {event_id} not found.")

    def _file_event(self, event_id: str, elapsed: float) -> dict[str, Any]:
        task, index = self._files[event_id]
        final = elapsed >= self.config.run_seconds
        status = (task.outcome.file_status or "Complete") if final else "Processing"
        created = task.created_at + self.config.run_seconds * 2 / 3
        event = self._event(event_id, "File Level Event", status, final, created)
        event |= {
            "parentEventId": task.event_id,
            "fileName": f"{task.partner}_{task.direction.lower()}_{index + 1}.dat",
            "messageType": "Custom",
            "ackCode": "",
            "ackCodeDescription": "",
            "interchangeControlNumber": f"{int(event_id):09d}",
        }
        return event

    def _event(
        self, event_id: str, kind: str, status: str, final: bool, created: float
    ) -> dict[str, Any]:
        custom = self.config.custom_statuses.get(status)
        return {
            "eventId": event_id,
            "eventType": kind,
            "eventStatus": status,
            "isErrorStatus": custom.error if custom else status in _ERROR_STATUSES,
            "isFinalStatus": custom.final if custom else final,
            "eventCreationTimestamp": int(created * 1000),
        }

    def _started(self, event_id: str) -> float:
        if event_id in self._tasks:
            return self._tasks[event_id].started
        if event_id in self._files:
            return self._files[event_id][0].started
        return self._clock()


def _mapping_problem(mapping: Any) -> str | None:
    """Why ``mappingParameters`` is malformed, or None when it is absent or well formed."""
    if mapping is None:
        return None
    if not isinstance(mapping, dict):
        return "mappingParameters must be a JSON object."
    for key, value in mapping.items():
        if key not in _MAPPING_KEYS:
            return f"mappingParameters.{key} is not a known parameter category."
        if not isinstance(value, dict):
            return f"mappingParameters.{key} must be a JSON object."
    return None
