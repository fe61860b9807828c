"""PBSM reports (seed 004, chapters 8 and 9) and object migrations (chapters 4 to 7).

A report is PENDING for the first quarter of ``report_seconds``, RUNNING until it, then
COMPLETE (with a ``downloadLink``, a PAR URL on a small CSV served by the simulator) or FAIL,
as scripted for its report code (``set_outcome("pbsm", <report code>, "FAIL")``; COMPLETED
and FAILED are answered as written, the seed spells both). The FAIL answer names the instance
``reportInstanceId``, the others ``requestInstanceId``, as the seed's samples do.

A migration (export or import, one per code and direction) runs ``migration_seconds``, then
ends SUCCESS, or FAILED when scripted for its code. Triggering one that runs is answered
``<DIR>_INPROGRESS``, one that ended well ``<DIR>_ALREADY_COMPLETE``, a code starting with
``MISSING`` ``INVALID_INPUT`` ("Code does not exist"), all HTTP 400 as in the seed; a failed
one may be triggered again. The status paths are the seed's: ``/Public/status/export/{code}``
and ``/public/status/import/{code}``.

Bodies the seed does not give are ours: a report error ``{"status": "FAILED",
"errorMessage"}``; a migration that failed ``EXPORT_FAILED`` / ``IMPORT_FAILED``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from ._common import Clock, Inbound, Outcome, VendorRoute, json_response
from ._config import PbsmConfig
from ._oauth import TokenStore
from ._pbsm_files import ObjectStore, StoredObject
from ._pbsm_rules import MIGRATION_HEADERS, REPORT_HEADERS, REPORT_STATUS_HEADERS, missing

__all__ = ["PbsmMigrations", "PbsmReports"]

_REPORTS = "/aai-dmi-service/vw/v1/"
_FAILED_WORDS = ("FAIL", "FAILED", "ABORTED", "INTERRUPTED")


@dataclass
class _Report:
    code: str
    instance: str
    tenant: str
    started: float
    end: str  # COMPLETE, COMPLETED, FAIL or FAILED
    link: str | None = None


@dataclass
class _Migration:
    started: float
    fails: bool


def _invalid_token() -> Response:
    return json_response({"error": "invalid_token"}, 401)


class PbsmReports:
    """Generate Report API and Get Report Generation Status and PAR URL Link API."""

    def __init__(
        self,
        config: PbsmConfig,
        tokens: TokenStore,
        outcomes: dict[str, Outcome],
        clock: Clock,
        store: ObjectStore,
    ):
        self.config = config
        self.tokens = tokens
        self._outcomes = outcomes
        self._clock = clock
        self._store = store
        self._reports: dict[str, _Report] = {}
        self._next = 100  # the seed's sample requestInstanceId

    def reset(self) -> None:
        self._reports.clear()
        self._next = 100

    def routes(self) -> list[VendorRoute]:
        return [
            VendorRoute(_REPORTS + "repgen", "pbsm.repgen", ["POST"], self.generate),
            VendorRoute(_REPORTS + "repgenstatus", "pbsm.repgenstatus", ["POST"], self.status),
        ]

    def _end(self, code: str) -> str:
        scripted = self._outcomes.get(code)
        word = scripted.final_status.upper() if scripted is not None else ""
        if word in ("COMPLETE", "COMPLETED", "FAIL", "FAILED"):
            return word
        if word in _FAILED_WORDS:
            return self.config.report_failed_status
        return self.config.report_complete_status

    def generate(self, request: Inbound) -> Response:
        if not self.tokens.valid(request.headers):
            return _invalid_token()
        if absent := missing(request.headers, REPORT_HEADERS):
            return _error(f"request headers missing: {', '.join(absent)}")
        body = request.json
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k, ""), str) for k in ("filterCriteria", "placeholderFilter")
        ):
            return _error("the body is {filterCriteria, placeholderFilter}, strings")
        code = request.headers["reportcode"]
        if code.startswith("MISSING"):
            return _error("Report does not exist")
        instance = str(self._next)
        self._next += 1
        tenant = request.headers.get("ofs_tenant_id") or "tenant"
        self._reports[instance] = _Report(code, instance, tenant, self._clock(), self._end(code))
        return json_response({"status": "PENDING", "requestInstanceId": instance})

    def status(self, request: Inbound) -> Response:
        if not self.tokens.valid(request.headers):
            return _invalid_token()
        if absent := missing(request.headers, REPORT_STATUS_HEADERS):
            return _error(f"request headers missing: {', '.join(absent)}")
        report = self._reports.get(request.headers["reportinstanceid"])
        if report is None or report.code != request.headers["reportcode"]:
            return _error("Report instance does not exist")
        total = self.config.report_seconds
        total = self.config.run_seconds if total is None else total
        elapsed = self._clock() - report.started
        if elapsed < total:
            status = "PENDING" if elapsed < total / 4 else "RUNNING"
            return json_response({"status": status, "requestInstanceId": report.instance})
        if report.end.startswith("FAIL"):
            return json_response({"status": report.end, "reportInstanceId": report.instance})
        if report.link is None:
            csv = f"REPORT_CODE,INSTANCE\n{report.code},{report.instance}\n".encode()
            obj = StoredObject(f"reports/{report.instance}.csv", csv, "text/csv")
            name = f"{report.code}_{report.instance}.csv"
            host = request.headers.get("host") or "127.0.0.1:8700"
            report.link = self._store.par_url(host, report.tenant, obj, write=False, filename=name)
        answer = {"requestInstanceId": report.instance, "downloadLink": report.link}
        return json_response(answer | {"status": report.end})


def _error(message: str) -> Response:
    return json_response({"status": "FAILED", "errorMessage": message}, 400)


class PbsmMigrations:
    """Invoke Export/Import API and Get Export/Import Status API."""

    def __init__(
        self, config: PbsmConfig, tokens: TokenStore, outcomes: dict[str, Outcome], clock: Clock
    ):
        self.config = config
        self.tokens = tokens
        self._outcomes = outcomes
        self._clock = clock
        self._runs: dict[tuple[str, str], _Migration] = {}

    def reset(self) -> None:
        self._runs.clear()

    def routes(self) -> list[VendorRoute]:
        routes = []
        for direction, status_path in (
            ("export", "/Public/status/export/{code}"),
            ("import", "/public/status/import/{code}"),
        ):
            routes.append(
                VendorRoute(
                    f"/public/migrate/{direction}/{{code}}",
                    f"pbsm.{direction}",
                    ["POST"],
                    self._trigger(direction),
                )
            )
            routes.append(
                VendorRoute(
                    status_path, f"pbsm.{direction}_status", ["GET"], self._status(direction)
                )
            )
        return routes

    def _state(self, run: _Migration) -> str:
        total = self.config.migration_seconds
        total = self.config.run_seconds if total is None else total
        if self._clock() - run.started < total:
            return "INPROGRESS"
        return "FAILED" if run.fails else "SUCCESS"

    def _refused(self, request: Inbound) -> Response | None:
        if not self.tokens.valid(request.headers):
            return _invalid_token()
        if absent := missing(request.headers, MIGRATION_HEADERS):
            return _answer(f"request headers missing: {', '.join(absent)}", "INVALID_INPUT", 400)
        if request.path_params.get("code", "").startswith("MISSING"):
            return _answer("Code does not exist", "INVALID_INPUT", 400)
        return None

    def _trigger(self, direction: str) -> Any:
        word = direction.capitalize()

        def trigger(request: Inbound) -> Response:
            if (refused := self._refused(request)) is not None:
                return refused
            code = request.path_params["code"]
            run = self._runs.get((direction, code))
            state = None if run is None else self._state(run)
            if state == "INPROGRESS":
                return _answer(f"{word} in progress", f"{direction.upper()}_INPROGRESS", 400)
            if state == "SUCCESS":
                message = f"{word} already completed"
                return _answer(message, f"{direction.upper()}_ALREADY_COMPLETE", 400)
            scripted = self._outcomes.get(code)
            fails = scripted is not None and scripted.final_status.upper() in _FAILED_WORDS
            self._runs[(direction, code)] = _Migration(self._clock(), fails)
            return _answer("Object Migration Triggered", "TRIGGERED_SUCCESS", 200)

        return trigger

    def _status(self, direction: str) -> Any:
        word = direction.capitalize()

        def status(request: Inbound) -> Response:
            if (refused := self._refused(request)) is not None:
                return refused
            run = self._runs.get((direction, request.path_params["code"]))
            if run is None:
                return _answer("Code does not exist", "INVALID_INPUT", 400)
            state = self._state(run)
            if state == "INPROGRESS":
                return _answer(f"{word} in progress", f"{direction.upper()}_INPROGRESS", 200)
            if state == "FAILED":
                return _answer(f"{word} failed", f"{direction.upper()}_FAILED", 200)
            return _answer("Status fetched Successfully", "SUCCESS", 200)

        return status


def _answer(message: str, code: str, http_status: int) -> Response:
    """The seed's migration answer; `status` follows from the code as in its samples."""
    if code.endswith("_INPROGRESS"):
        status = "INPROGRESS"
    elif code in ("TRIGGERED_SUCCESS", "SUCCESS"):
        status = "SUCCESS"
    else:
        status = "FAILED"
    body = {"errorMessage": message, "statusCode": code, "status": status}
    return json_response(body, http_status)
