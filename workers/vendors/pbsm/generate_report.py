"""`generate-report` → PBSM Generate Report API (chapter 8), then the Get Report Generation
Status and PAR URL Link API (chapter 9) until the report is complete or failed.

The status API answers PENDING, RUNNING, then COMPLETE or FAIL; the chapter's list spells
them COMPLETED and FAILED: both spellings are read. A complete report's `downloadLink` is a PAR
URL (a secret): it is carried only in the command's terminal event, as `result.url`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.commands import GenerateReport
from workers.errors import UnknownOutcome
from workers.vendors.base import RunState, StatusReport, Triggered
from workers.vendors.pbsm.client import PbsmClient
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.files import expires_at
from workers.vendors.pbsm.models import ReportAnswer, ReportRequest

__all__ = ["REPORT_STATES", "GenerateReportHandler", "report_status"]

REPORT_STATES: dict[str, RunState] = {
    "PENDING": "running",
    "RUNNING": "running",
    "COMPLETE": "succeeded",
    "COMPLETED": "succeeded",
    "FAIL": "failed",
    "FAILED": "failed",
}


class GenerateReportHandler:
    """vendor_ref: `{"report_code", "report_instance_id"}`, what the status call's headers
    name (`reportcode`, `reportInstanceID`)."""

    def __init__(self, client: PbsmClient) -> None:
        self._client = client

    @property
    def client(self) -> PbsmClient:
        return self._client

    async def trigger(self, command: GenerateReport, *, command_id: str) -> Triggered:
        client = self._client
        answer = await client.generate_report(
            ReportRequest(
                filterCriteria=command.filter_criteria,
                placeholderFilter=command.placeholder_filter,
            ),
            report_code=command.report_code,
            report_type=command.report_type,
            report_def_type=command.report_def_type,
            app_id=command.app_id or client.connection.app_id,
        )
        if not answer.instance_id:
            raise UnknownOutcome(
                f"PBSM repgen: status {answer.status} but no requestInstanceId to follow"
            )
        vendor_ref = {"report_code": command.report_code, "report_instance_id": answer.instance_id}
        report = report_status(answer, vendor_ref, client.connection)
        # A report already ended in the first answer needs no status call.
        return Triggered(
            vendor_ref=vendor_ref,
            status=answer.status,
            report=None if report.state == "running" else report,
        )

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        answer = await self._client.report_status(
            vendor_ref["report_code"], vendor_ref["report_instance_id"]
        )
        return report_status(answer, vendor_ref, self._client.connection)


def report_status(
    answer: ReportAnswer, vendor_ref: Mapping[str, str], connection: PbsmConnection
) -> StatusReport:
    """Map a report status; a status the document does not name follows `unknown_status`."""
    status = (answer.status or "").strip()
    state: RunState = REPORT_STATES.get(status.upper(), connection.unknown_status)
    instance = answer.instance_id or vendor_ref["report_instance_id"]
    what = f"PBSM report {vendor_ref['report_code']} (instance {instance})"
    result: dict[str, Any] = {"requestInstanceId": instance, "status": status}
    message: str | None = None
    if state == "succeeded":
        link = answer.download_link
        if link is None or not link.get_secret_value():
            state, message = "failed", f"{what}: {status or '?'} but the answer has no downloadLink"
        else:
            result |= {"url": link.get_secret_value(), "expires_at": expires_at(connection)}
    elif state == "failed":
        known = status.upper() in REPORT_STATES
        message = f"{what}: {status or 'no status'}" + ("" if known else " (unknown status)")
    return StatusReport(state=state, status=status or "?", result=result, message=message)
