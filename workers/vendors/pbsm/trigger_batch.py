"""`trigger-batch` → PBSM Execution API, then Execution Status calls until the run ends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.commands import TriggerBatch
from workers.errors import UnknownOutcome, VendorRejected
from workers.vendors.base import RunState, StatusReport, Triggered
from workers.vendors.pbsm.client import PbsmClient
from workers.vendors.pbsm.models import (
    BatchParams,
    GroupBatchParams,
    SchedulerAnswer,
    StatusAnswer,
    TriggerRequest,
    describe_code,
)

__all__ = ["BATCH_STATES", "FollowedRun", "TriggerBatchHandler", "report_for", "trigger_request"]

# batchStatusCode (Table 10-1) → flowgate run state, as docs/vendors.md sets it.
BATCH_STATES: dict[str, RunState] = {
    "1": "running",  # Not Started
    "2": "running",  # Ongoing
    "5": "running",  # Held
    "0": "succeeded",  # Success
    "4": "succeeded",  # Excluded
    "-1": "failed",  # Failure
    "3": "failed",  # Aborted
    "-2": "cancelled",  # Interrupted
}


def trigger_request(command: TriggerBatch) -> TriggerRequest:
    """Execution API body; `dynamicParamList`, `excludedTasks`, `heldTasks` only when given."""
    params: BatchParams | list[GroupBatchParams] | None = None
    if command.group and command.group_params:
        params = [
            GroupBatchParams(batchName=entry.batch, batchParams=dict(entry.params))
            for entry in command.group_params
        ]
    elif not command.group and command.params:
        params = BatchParams(batchParams=dict(command.params))
    return TriggerRequest(
        batchName=command.batch,
        batchType="group" if command.group else "rest",
        dynamicParamList=params,
        excludedTasks=list(command.excluded_tasks) or None,
        heldTasks=list(command.held_tasks) or None,
    )


class FollowedRun:
    """Follows a batch run by its `batch_run_id` with Execution Status calls: the status half
    of every PBSM command whose answer is a run (trigger, rerun, restart). The client (and its
    token) is the one every PBSM command type of the connection shares."""

    def __init__(self, client: PbsmClient) -> None:
        self._client = client

    @property
    def client(self) -> PbsmClient:
        return self._client

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        batch_run_id = vendor_ref["batch_run_id"]
        return report_for(await self._client.status(batch_run_id), batch_run_id)

    async def cancel(self, vendor_ref: Mapping[str, str]) -> str:
        """Interrupt the run (`cancel-run`); the vendor's words. A run already interrupted
        counts as done (-7); one that already ended is refused (-8, `VendorRejected`)."""
        batch_run_id = vendor_ref["batch_run_id"]
        try:
            answer = await self._client.interrupt(vendor_ref["batch"], batch_run_id)
        except VendorRejected as exc:
            if exc.vendor_code == "-7":
                return f"batch run {batch_run_id} was already interrupted"
            raise
        return answer.details or f"batch run {batch_run_id} interrupted"

    @staticmethod
    def triggered(answer: SchedulerAnswer, what: str, batch: str) -> Triggered:
        """The run a 200 answer names; without a run id there is nothing to follow. The
        batch (or group) name rides along: interrupting the run needs it."""
        if not answer.batchRunId:
            raise UnknownOutcome(
                f"PBSM {what}: statusCode {answer.statusCode} but no batchRunId to follow"
            )
        return Triggered(
            vendor_ref={"batch_run_id": answer.batchRunId, "batch": batch},
            status=answer.status or answer.statusCode,
        )


class TriggerBatchHandler(FollowedRun):
    """`trigger-batch`: vendor_ref is `{"batch_run_id": ...}`."""

    async def trigger(self, command: TriggerBatch, *, command_id: str) -> Triggered:
        answer = await self._client.trigger(trigger_request(command))
        return self.triggered(answer, "trigger", command.batch)


def report_for(answer: StatusAnswer, batch_run_id: str) -> StatusReport:
    """Map a status answer's `batchStatusCode`; an unknown or missing code is a failure."""
    code = (answer.batchStatusCode or "").strip()
    meaning = describe_code(code)
    state: RunState = BATCH_STATES.get(code, "failed")
    result: dict[str, Any] = {"batchStatusCode": code}
    tasks = answer.taskStatusList
    batches = answer.batchList
    if tasks is not None and (tasks or not batches):
        result["taskStatusList"] = [item.model_dump(exclude_none=True) for item in tasks]
    if batches is not None and (batches or tasks is None):
        result["batchList"] = [item.model_dump(exclude_none=True) for item in batches]
    message = None
    if state != "running" and state != "succeeded":
        message = f"PBSM batch run {batch_run_id}: batchStatusCode {code or '?'} ({meaning})"
    return StatusReport(
        state=state,
        status=answer.batchStatus or meaning,
        result=result,
        message=message,
        vendor_code=code or None,
    )
