"""Robusta scheduler connector API: process start and process status, seed 002.

A started process is WAITING for the first third of ``run_seconds``, RUNNING until
``run_seconds``, then ends with its scripted status (SUCCEEDED by default). Only a SUCCEEDED
process carries its output parameters: ``__out_x`` (the input values joined with a space,
the seed's "Username Surname" example) and ``__out_<key>`` echoing each input value.

A scheduled process (``startDate`` given, ``runImmediately`` not ``Y``) starts that run at its
``startDate`` (the seed: "The first date the process will run"), read in the configured
``timezone``; before then its status is ``before_start_status`` (WAITING). A start date in the
past starts it at once. The simulator runs a scheduled process once: what the status of a
recurring process reads between its runs is not in the seed.
"""

from __future__ import annotations

import http
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import Response

from ._common import Clock, Inbound, Outcome, Vendor, VendorRoute, basic_credentials, json_response
from ._config import RobustaConfig

__all__ = ["RobustaSim"]

_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_MESSAGES = {
    "WAITING": "Your transaction is waiting to start.",
    "RUNNING": "Your transaction is running.",
    "SUCCEEDED": "Your transaction has ended.",
}


@dataclass(frozen=True)
class _Process:
    spid: str
    name: str
    values: dict[str, Any]
    started: float
    outcome: Outcome


def _error(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


class RobustaSim(Vendor):
    """The started processes; ``outcomes`` is keyed by process (model) name."""

    name = "robusta"

    def __init__(self, config: RobustaConfig, outcomes: dict[str, Outcome], clock: Clock):
        self.config = config
        self._outcomes = outcomes
        self._clock = clock
        self._processes: dict[str, _Process] = {}

    @property
    def latency(self) -> float:
        return self.config.latency

    def routes(self) -> list[VendorRoute]:
        return [
            VendorRoute(
                "/scheduler/connector-API/process/start", "robusta.start", ["POST"], self.start
            ),
            VendorRoute(
                "/scheduler/connector-api/process/status/{robustaSpid}",
                "robusta.status",
                ["GET"],
                self.status,
            ),
        ]

    def error_response(self, status: int) -> Response:
        return _error(status, http.HTTPStatus(status).phrase)

    def check_outcome(self, final_status: str, file_status: str | None) -> None:
        if final_status in ("WAITING", "RUNNING") or not final_status:
            raise ValueError("robusta final status must not be WAITING, RUNNING or empty")
        if file_status is not None:
            raise ValueError("robusta has no file status")

    def reset(self) -> None:
        self._processes.clear()

    def _authorized(self, request: Inbound) -> bool:
        return basic_credentials(request.headers) == (self.config.username, self.config.password)

    def start(self, request: Inbound) -> Response:
        """``POST .../process/start``: validate, save the process, answer its robustaSpid."""
        if not self._authorized(request):
            return _error(401, "Unauthorized")
        body = request.json
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        problem = _problem(body)
        if problem:
            return _error(400, problem)
        process = _Process(
            spid=str(uuid.uuid4()),
            name=body["name"],
            values=body.get("values") or {},
            started=self._clock() + self._wait(body),
            outcome=self._outcomes.get(body["name"], Outcome("SUCCEEDED")),
        )
        self._processes[process.spid] = process
        return json_response({"robustaSpid": process.spid, "message": "Process saved"})

    def _wait(self, body: dict[str, Any]) -> float:
        """Seconds until a scheduled process first runs: 0 unless it has a future startDate
        and is not asked to run immediately."""
        if body.get("runImmediately") == "Y" or "startDate" not in body:
            return 0.0
        start = datetime.strptime(str(body["startDate"]), _DATE_FORMAT)
        at = start.replace(tzinfo=ZoneInfo(self.config.timezone)).timestamp()
        return max(0.0, at - time.time())

    def status(self, request: Inbound) -> Response:
        """``GET .../process/status/{robustaSpid}``: the status now, outputs once SUCCEEDED."""
        if not self._authorized(request):
            return _error(401, "Unauthorized")
        spid = request.path_params["robustaSpid"]
        process = self._processes.get(spid)
        if process is None:
            return _error(404, f"Process {spid} not found.")
        elapsed = self._clock() - process.started
        run_seconds = self.config.run_seconds
        if elapsed < 0:
            status = self.config.before_start_status
        elif elapsed >= run_seconds:
            status = process.outcome.final_status
        else:
            status = "WAITING" if elapsed < run_seconds / 3 else "RUNNING"
        answer: dict[str, Any] = {
            "status": status,
            "message": _MESSAGES.get(status, "Your transaction has failed."),
        }
        if status == "SUCCEEDED":
            answer["__out_x"] = " ".join(str(v) for v in process.values.values())
            answer.update({f"__out_{k}": v for k, v in process.values.items()})
        return json_response(answer)


def _problem(body: dict[str, Any]) -> str | None:
    """Why a start body is invalid, or None."""
    name = body.get("name")
    if not isinstance(name, str) or not name:
        return "name is required."
    if not isinstance(body.get("values", {}), dict):
        return "values must be a JSON object."
    for flag in ("runOnce", "runImmediately"):
        if flag in body and body[flag] not in ("Y", "N"):
            return f"{flag} must be Y or N."
    dates: dict[str, datetime] = {}
    for key in ("startDate", "endDate"):
        if key in body:
            try:
                dates[key] = datetime.strptime(str(body[key]), _DATE_FORMAT)
            except ValueError:
                return f"{key} must be formatted yyyy-MM-dd HH:mm:ss."
    if len(dates) == 2 and dates["endDate"] < dates["startDate"]:
        return "endDate must not be before startDate."
    retry = body.get("retryCount")
    if retry is not None and not str(retry).isdigit():
        return "retryCount must be a non-negative number."
    for key in ("quartzDef", "worker"):
        if key in body and not isinstance(body[key], str | int):
            return f"{key} must be a string."
    return None
