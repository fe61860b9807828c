"""Informatica B2B Gateway: Run Partner (v1) and Event Status (v3), seed 000.

A partner run is a task event that moves Processing/Downloading/Waiting for Acknowledgment ->
final over the first two thirds of ``run_seconds``; its file events appear when it is final
and are themselves final at ``run_seconds``, so a client must follow both levels, as flowgate
does. Statuses are computed from the elapsed time, never from a timer, to stay deterministic.
"""

from __future__ import annotations

import http
import time
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
    utc_iso,
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
        for status in (final_status, file_status):
            if status is not None and status not in FINAL_STATUSES:
                raise ValueError(f"informatica final statuses are {', '.join(FINAL_STATUSES)}")

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
            event = _event(task.event_id, "Task Level Event", status, final, task.created_at)
            event["partnerName"] = task.partner
            event["fileEvents"] = [{"eventId": i} for i in task.file_ids] if final else []
            return json_response(event)
        if event_id in self._files and elapsed >= task_final_at:
            task, index = self._files[event_id]
            final = elapsed >= self.config.run_seconds
            status = (task.outcome.file_status or "Complete") if final else "Processing"
            created = task.created_at + task_final_at
            event = _event(event_id, "File Level Event", status, final, created)
            event["parentEventId"] = task.event_id
            event["fileName"] = f"{task.partner}_{task.direction.lower()}_{index + 1}.dat"
            return json_response(event)
        return _error(404, f"Event {event_id} not found.")

    def _started(self, event_id: str) -> float:
        if event_id in self._tasks:
            return self._tasks[event_id].started
        if event_id in self._files:
            return self._files[event_id][0].started
        return self._clock()


def _event(event_id: str, kind: str, status: str, final: bool, created: float) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "eventType": kind,
        "eventStatus": status,
        "isErrorStatus": status in _ERROR_STATUSES,
        "isFinalStatus": final,
        "eventCreationTimestamp": utc_iso(created),
    }


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
