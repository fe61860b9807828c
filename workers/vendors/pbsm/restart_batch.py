"""`restart-batch` → PBSM Restart API (resume a failed, aborted or interrupted execution),
then followed like a trigger: the answer's new `batchRunId` is the run's `vendor_ref`."""

from __future__ import annotations

from contracts.commands import RestartBatch
from workers.vendors.base import Triggered
from workers.vendors.pbsm.trigger_batch import FollowedRun

__all__ = ["RestartBatchHandler"]


class RestartBatchHandler(FollowedRun):
    async def trigger(self, command: RestartBatch, *, command_id: str) -> Triggered:
        answer = await self.client.restart(command.batch, command.batch_run_id)
        return self.triggered(answer, "restart", command.batch)
