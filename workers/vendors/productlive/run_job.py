"""`run-job` -> create a Data Factory job execution, then read it until its status is final.

`vendor_ref` is `{"job_execution_id"}` (plus `"result_format": "xml"` when the command asked
for its result in XML, so whichever process follows the run answers in that form). Statuses
("Job executions" page): PENDING, RUNNING (running); COMPLETED (`succeeded`, the job's output
in `result`); USER_ERROR (`failed` kind `rejected`: the input or the account refused it);
FAILED, TIMEDOUT (`failed` kind `vendor_failed`); TERMINATED (`cancelled`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.commands import RunJob
from contracts.events import ErrorKind
from contracts.jsonxml import json_to_xml
from workers.errors import InvalidCommand
from workers.vendors.base import RunState, StatusReport, Triggered
from workers.vendors.productlive.client import ProductLiveClient
from workers.vendors.productlive.models import (
    JOB_STATES,
    JobExecution,
    JobExecutionRequest,
    files_in,
)

__all__ = ["JobFollower", "RunJobHandler", "shaped"]


def shaped(result: dict[str, Any], vendor_ref: Mapping[str, str]) -> dict[str, Any]:
    """`result` as the command asked for it: JSON, or `{"xml": <json-to-xml document>}`."""
    if vendor_ref.get("result_format") == "xml":
        return {"xml": json_to_xml(result)}
    return result


class JobFollower:
    """What every Product-Live command that runs a Data Factory job shares: the connection's
    client, the trigger's `vendor_ref` and the meaning of a job execution's status."""

    def __init__(self, client: ProductLiveClient) -> None:
        self.client = client
        self.connection = client.connection

    def state_of(self, status: str) -> RunState:
        state = JOB_STATES.get(status)
        if state is not None:
            return state
        return "running" if self.connection.unknown_status == "running" else "failed"

    async def start(self, job_id: str, job_input: dict[str, Any], result_format: str) -> Triggered:
        execution = await self.client.create_job_execution(
            JobExecutionRequest(jobId=job_id, input=job_input)
        )
        vendor_ref = {"job_execution_id": execution.id}
        if result_format == "xml":
            vendor_ref["result_format"] = "xml"
        return Triggered(vendor_ref=vendor_ref, status=execution.status)

    @staticmethod
    def ended(
        state: RunState,
        execution: JobExecution,
        result: dict[str, Any],
        vendor_ref: Mapping[str, str],
        *,
        message: str | None = None,
    ) -> StatusReport:
        """The terminal report of an ended job execution."""
        status = execution.status
        if state == "failed" and message is None:
            message = f"Product-Live job execution {execution.id} ended {status}"
            detail = _detail(execution)
            if detail:
                message = f"{message}: {detail}"
        return StatusReport(
            state=state,
            status=status,
            result=shaped(result, vendor_ref),
            message=message if state == "failed" else None,
            vendor_code=status if state == "failed" else None,
            error_kind=ErrorKind.REJECTED if status == "USER_ERROR" else ErrorKind.VENDOR_FAILED,
        )


class RunJobHandler(JobFollower):
    """`run-job`: any Data Factory job, by id or by a job key the connection names."""

    async def trigger(self, command: RunJob, *, command_id: str) -> Triggered:
        job_id = command.job_id
        if job_id is None:
            assert command.job_key is not None  # the model requires one of them
            job_id = self.connection.jobs.get(command.job_key)
            if job_id is None:
                known = ", ".join(sorted(self.connection.jobs)) or "none"
                raise InvalidCommand(
                    f"job_key {command.job_key!r} names no job of this connection (jobs: {known})"
                )
        return await self.start(job_id, dict(command.input), command.result_format)

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        execution = await self.client.job_execution(vendor_ref["job_execution_id"])
        state = self.state_of(execution.status)
        if state == "running":
            return StatusReport(state="running", status=execution.status)
        result = {"output": execution.output, "files": files_in(execution.output)}
        return self.ended(state, execution, result, vendor_ref)


def _detail(execution: JobExecution) -> str:
    """An error text the execution carries, if any (the documents name no such field)."""
    extra = execution.model_extra or {}
    for name in ("error", "message", "errorMessage", "reason"):
        value = extra.get(name)
        if isinstance(value, str) and value:
            return value[:500]
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return str(value["message"])[:500]
    return ""
