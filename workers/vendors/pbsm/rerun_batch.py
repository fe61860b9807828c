"""`rerun-batch` → PBSM Rerun API (a new run of an ended execution), then followed like a
trigger: the answer's new `batchRunId` is the run's `vendor_ref`."""

from __future__ import annotations

from contracts.commands import RerunBatch
from workers.vendors.base import Triggered
from workers.vendors.pbsm.trigger_batch import FollowedRun

__all__ = ["RerunBatchHandler"]


class RerunBatchHandler(FollowedRun):
    async def trigger(self, command: RerunBatch, *, command_id: str) -> Triggered:
        answer = await self.client.rerun(command.batch, command.batch_run_id)
        return self.triggered(answer, "rerun", command.batch)
