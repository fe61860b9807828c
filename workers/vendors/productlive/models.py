"""Product-Live wire shapes (docs/vendors.md, "Product-Live").

Field names are the vendor's own. Answers accept fields they do not name (`extra="allow"`):
the documents show examples, not complete schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers.vendors.base import RunState

__all__ = [
    "FILE_OBJECT",
    "INVITATION_OBJECT",
    "JOB_STATES",
    "ErrorBody",
    "JobExecution",
    "JobExecutionRequest",
    "PartnerInvitation",
    "files_in",
]

# Job execution statuses ("Job executions" page) -> flowgate run state.
JOB_STATES: dict[str, RunState] = {
    "PENDING": "running",
    "RUNNING": "running",
    "COMPLETED": "succeeded",
    "USER_ERROR": "failed",  # answered `rejected`: the input or the account refused it
    "FAILED": "failed",  # technical: `vendor_failed`
    "TIMEDOUT": "failed",  # `vendor_failed`
    "TERMINATED": "cancelled",
}
FILE_OBJECT = "data_factory_file"
INVITATION_OBJECT = "partner_invitation"


class JobExecutionRequest(BaseModel):
    """`POST /v1/data_factory/job_executions` body: `{"jobId", "input"}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobId: str
    input: dict[str, Any] = Field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class JobExecution(_Answer):
    """A job execution: `{"object": "job_execution", "id", "jobId", "status", "payload",
    "output", ...}`; `output` once the job ended."""

    object: str | None = None
    id: str = Field(min_length=1)
    jobId: str | None = None
    status: str = Field(min_length=1)
    payload: Any = None
    output: Any = None


class PartnerInvitation(_Answer):
    """`{"object": "partner_invitation", "id", "createdAt", "updatedAt", "accountId",
    "fromUserId", "toAccountName", "toUserEmail", "status"}`."""

    object: str | None = None
    id: str = Field(min_length=1)
    status: str = Field(min_length=1)


class ErrorBody(_Answer):
    """An error answer; Product-Live documents none: `message`, `error`, `statusCode` read
    when present."""

    message: Any = None
    error: Any = None
    statusCode: str | None = None


def files_in(value: Any) -> list[dict[str, Any]]:
    """Every `data_factory_file` object anywhere in `value` (its `url` is the download URL)."""
    found: list[dict[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("object") == FILE_OBJECT:
                found.append(item)
                continue
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found
