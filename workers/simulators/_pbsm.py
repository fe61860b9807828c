"""Oracle PBSM: the IAM token endpoint, the External Scheduler (trigger, status, interrupt,
rerun, restart), and through ``_pbsm_reports`` and ``_pbsm_files`` the report, object
migration and PAR file APIs (seed 004), all behind the same Bearer tokens.

Request-level problems answer HTTP 200 with a negative ``statusCode`` (Table 10-1), as the
seed's APIs do; only a missing or dead bearer token is an HTTP 401. A run is NOT_STARTED (1)
for its first quarter of ``run_seconds``, ONGOING (2) until ``run_seconds``, then ends with
its scripted code. Its tasks (a batch) or member batches (a group) go ongoing one after the
other over the ongoing window, so a status poll always shows a plausible picture.
"""

from __future__ import annotations

import http
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from ._common import Clock, Inbound, Outcome, Vendor, VendorRoute, json_response
from ._config import PbsmConfig
from ._oauth import TokenStore
from ._pbsm_files import ObjectStore, PbsmFiles
from ._pbsm_reports import PbsmMigrations, PbsmReports
from ._pbsm_rules import (
    FINAL_CODES,
    OFS_HEADERS,
    REQUEST_ERRORS,
    STATUS_NAMES,
    SUCCESS,
    TASKS,
    RequestError,
    batch_code,
    check_trigger,
    first_open,
    task_override,
    triggered,
)

__all__ = ["PbsmSim"]

_BASE = "/SchedulerService/rest-api/v1/external/"
# Scripted outcomes: a batch run's final states, a report's (both spellings), a migration's.
OUTCOMES = (*FINAL_CODES, "COMPLETE", "COMPLETED", "FAIL", "SUCCESS")


@dataclass
class _Run:
    run_id: str
    batch_name: str
    batch_type: str
    body: dict[str, Any]
    started: float
    final_code: str
    members: list[str] = field(default_factory=list)
    interrupted_at: float | None = None
    # A seeded run that stays in its code (ongoing, held) until it is interrupted.
    endless: bool = False


class PbsmSim(Vendor):
    """Tokens, runs, reports, migrations and files; ``outcomes`` is keyed by batch (or batch
    group) name, report code or migration code."""

    name = "pbsm"

    def __init__(self, config: PbsmConfig, outcomes: dict[str, Outcome], clock: Clock):
        self.config = config
        self.tokens = TokenStore(config, clock)
        self._outcomes = outcomes
        self._clock = clock
        self._runs: dict[str, _Run] = {}
        self._last_ms = 0
        self._seed_history()
        self.store = ObjectStore(config, clock)
        self.files = PbsmFiles(config, self.tokens, self.store)
        self.reports = PbsmReports(config, self.tokens, outcomes, clock, self.store)
        self.migrations = PbsmMigrations(config, self.tokens, outcomes, clock)

    def _seed_history(self) -> None:
        ended = self._clock() - self.config.run_seconds - 1.0
        for run_id, code in self.config.history.items():
            name = run_id.split("_", 1)[0]
            body = {"batchName": name, "batchType": "rest"}
            endless = code not in FINAL_CODES.values()
            self._runs[run_id] = _Run(run_id, name, "rest", body, ended, code, endless=endless)

    @property
    def latency(self) -> float:
        return self.config.latency

    def routes(self) -> list[VendorRoute]:
        ops = {"trigger": self.trigger, "status": self.status, "interrupt": self.interrupt}
        ops |= {"rerun": self.rerun, "restart": self.restart}
        routes = [VendorRoute("/oauth2/v1/token", "pbsm.token", ["POST"], self.tokens.token)]
        for op, handler in ops.items():
            routes.append(VendorRoute(_BASE + op, f"pbsm.{op}", ["POST"], self._guarded(handler)))
        routes += self.reports.routes() + self.migrations.routes() + self.files.routes()
        return routes

    def error_response(self, status: int) -> Response:
        phrase = http.HTTPStatus(status)
        return json_response(
            {"error": phrase.name.lower(), "error_description": phrase.phrase}, status
        )

    def check_outcome(self, final_status: str, file_status: str | None) -> None:
        if final_status not in OUTCOMES:
            raise ValueError(f"pbsm final statuses are {', '.join(OUTCOMES)}")
        if file_status is not None:
            raise ValueError("pbsm has no file status")

    def reset(self) -> None:
        self.tokens.reset()
        self._runs.clear()
        self._seed_history()
        for part in (self.store, self.files, self.reports, self.migrations):
            part.reset()

    def _guarded(self, handler: Any) -> Any:
        """Bearer check (HTTP 401), then headers (-5), then the handler's own codes."""

        def guarded(request: Inbound) -> Response:
            if not self.tokens.valid(request.headers):
                return json_response({"error": "invalid_token"}, 401)
            try:
                if any(not request.headers.get(h) for h in OFS_HEADERS):
                    raise RequestError("-5")
                if not isinstance(request.json, dict):
                    raise RequestError("-4")
                answer: dict[str, Any] = handler(request.json)
            except RequestError as error:
                details = REQUEST_ERRORS[error.code]
                answer = {"severity": "error", "summary": details, "details": details}
                answer |= {"statusCode": error.code, "status": "failure"}
            return json_response(answer)

        return guarded

    # --- runs ---------------------------------------------------------------------------

    def _new_run(self, body: dict[str, Any]) -> _Run:
        name = body["batchName"]
        ms = self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        run = _Run(
            run_id=f"{name}_{day}_{ms}_1",
            batch_name=name,
            batch_type=body["batchType"],
            body=body,
            started=self._clock(),
            final_code=batch_code(self._outcomes.get(name, Outcome("SUCCESSFUL")).final_status),
        )
        if run.batch_type == "group":
            for member in body.get("dynamicParamList") or []:
                self._last_ms += 1
                run.members.append(f"{member['batchName']}_{day}_{self._last_ms}_1")
        self._runs[run.run_id] = run
        return run

    def _code(self, run: _Run, now: float) -> str:
        if run.interrupted_at is not None:
            return "-2"
        if run.endless:
            return run.final_code
        elapsed, total = now - run.started, self.config.run_seconds
        if elapsed >= total:
            return run.final_code
        return "1" if elapsed < total / 4 else "2"

    def _part_codes(self, run: _Run, parts: int, now: float) -> list[str]:
        """Codes of a run's tasks or member batches, which run one after the other."""
        code = self._code(run, now)
        if code not in ("1", "2", "-2"):
            return [code] * parts if code in ("0", "4") else ["0"] * (parts - 1) + [code][:parts]
        at = run.interrupted_at if run.interrupted_at is not None else now
        total = self.config.run_seconds
        progress = (at - run.started) / total if total > 0 else 1.0
        codes = []
        for i in range(parts):
            start, end = 0.25 + 0.75 * i / parts, 0.25 + 0.75 * (i + 1) / parts
            codes.append("1" if progress < start else "2" if progress < end else "0")
        stopped = first_open(codes)
        if code == "-2" and stopped >= 0:
            codes[stopped] = "-2"
        return codes

    def _find(self, body: dict[str, Any], *, need_name: bool) -> _Run:
        run_id = body.get("batchRunId")
        if not isinstance(run_id, str) or not run_id:
            raise RequestError("-4")
        if need_name and not isinstance(body.get("batchName"), str):
            raise RequestError("-4")
        run = self._runs.get(run_id)
        if run is None or (need_name and body["batchName"] != run.batch_name):
            raise RequestError("-3")
        return run

    # --- handlers -----------------------------------------------------------------------

    def trigger(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a batch (``rest``) or batch group (``group``)."""
        check_trigger(body)
        run = self._new_run(body)
        return triggered(run.run_id, "")

    def status(self, body: dict[str, Any]) -> dict[str, Any]:
        """The run's code, with its tasks (batch) or member batches (group)."""
        run = self._find(body, need_name=False)
        now = self._clock()
        code = self._code(run, now)
        answer: dict[str, Any] = {"severity": "info", "batchRunId": run.run_id}
        if run.batch_type == "group":
            codes = self._part_codes(run, len(run.members), now)
            answer["batchStatusCode"] = code
            answer["batchList"] = [
                {"batchRunId": m, "batchStatusCode": c, "batchStatus": STATUS_NAMES[c]}
                for m, c in zip(run.members, codes, strict=True)
            ]
        else:
            wanted = body.get("tasks") or list(TASKS)
            codes = self._part_codes(run, len(TASKS), now)
            for i, task in enumerate(TASKS):
                codes[i] = task_override(run.body, task) or codes[i]
            answer["taskStatusList"] = [
                {"taskCode": t, "taskStatus": STATUS_NAMES[c], "statusCode": c}
                for t, c in zip(TASKS, codes, strict=True)
                if t in wanted
            ]
            answer["batchStatusCode"] = code
            answer["batchList"] = []
        return answer | {"batchStatus": STATUS_NAMES[code], "status": "success", "statusCode": "0"}

    def interrupt(self, body: dict[str, Any]) -> dict[str, Any]:
        """Stop a run that has not ended: -7 when already interrupted, -8 when it has ended."""
        run = self._find(body, need_name=True)
        code = self._code(run, self._clock())
        if code == "-2":
            raise RequestError("-7")
        if code not in ("1", "2", "5"):
            raise RequestError("-8")
        run.interrupted_at = self._clock()
        details = "Execution interrupted successfully."
        return {"severity": "info", "batchRunId": run.run_id, "details": details} | SUCCESS

    def rerun(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run an ended execution again under a new run id (-6 while it still runs)."""
        return self._again(body, "rerun", ("0", "-1", "-2", "3", "4"))

    def restart(self, body: dict[str, Any]) -> dict[str, Any]:
        """Resume a failed, aborted or interrupted execution under a new run id."""
        return self._again(body, "restart", ("-1", "-2", "3"))

    def _again(self, body: dict[str, Any], verb: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        old = self._find(body, need_name=True)
        if self._code(old, self._clock()) not in allowed:
            raise RequestError("-6")
        return triggered(self._new_run(old.body).run_id, f" for {verb}")
