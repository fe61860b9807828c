"""`interrupt-batch` → PBSM Interrupt API; answered at once: the interrupt's answer and the
run's state after it (one Execution Status read). The document's request errors (-3 unknown
run, -7 already interrupted, -8 not ongoing, ...) are `failed` kind `rejected` with the code."""

from __future__ import annotations

from contracts.commands import InterruptBatch
from workers.errors import VendorError
from workers.vendors.base import StatusReport, Triggered
from workers.vendors.pbsm.client import PbsmClient
from workers.vendors.pbsm.trigger_batch import report_for

__all__ = ["InterruptBatchHandler"]


class InterruptBatchHandler:
    def __init__(self, client: PbsmClient) -> None:
        self._client = client

    @property
    def client(self) -> PbsmClient:
        return self._client

    async def trigger(self, command: InterruptBatch, *, command_id: str) -> Triggered:
        batch_run_id = command.batch_run_id
        answer = await self._client.interrupt(command.batch, batch_run_id)
        result: dict[str, object] = {"details": answer.details, "statusCode": answer.statusCode}
        status = answer.status or "success"
        try:
            # The run's state after the interrupt; the interrupt itself stands whatever this
            # read does (repeating the interrupt would only be refused as -7).
            run = report_for(await self._client.status(batch_run_id), batch_run_id)
        except VendorError as exc:
            result["run_status_unavailable"] = exc.message
        else:
            status = run.status
            result |= dict(run.result)
        return Triggered(
            vendor_ref={"batch_run_id": batch_run_id, "batch": command.batch},
            status=answer.status,
            report=StatusReport(state="succeeded", status=status, result=result),
        )
