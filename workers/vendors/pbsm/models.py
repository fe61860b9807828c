"""Wire shapes of Oracle PBSM: the IAM token endpoint and the External Scheduler Interface.

Field names are the vendor's own (seed 004, docs/vendors.md). Requests refuse unknown fields and
are sent without the optional members left unset; answers accept extra fields. PBSM sends its
codes as JSON strings ("0", "-1"); numbers are accepted too and carried as text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

__all__ = [
    "STATUS_CODES",
    "BatchParams",
    "BatchRunRequest",
    "BatchStatus",
    "GroupBatchParams",
    "SchedulerAnswer",
    "StatusAnswer",
    "StatusRequest",
    "TaskStatus",
    "TokenAnswer",
    "TriggerRequest",
    "describe_code",
]

# Table 10-1 "Status Codes": request codes (statusCode) and run states (batchStatusCode).
STATUS_CODES: dict[str, str] = {
    "0": "Success",
    "-1": "Failure",
    "-2": "Interrupted",
    "1": "Not Started",
    "2": "Ongoing",
    "3": "Aborted",
    "4": "Excluded",
    "5": "Held",
    "-3": "Object does not exist",
    "-4": "Invalid arguments passed in request/not enough params in Request body",
    "-5": "Invalid request headers/request headers missing",
    "-6": "No executable job is present",
    "-7": "Job is already interrupted",
    "-8": "Job is not ongoing/aborted",
}


def describe_code(code: str | None) -> str:
    """Table 10-1's meaning of a code, or 'unknown status code'."""
    return STATUS_CODES.get((code or "").strip(), "unknown status code")


def _as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Code = Annotated[str | None, BeforeValidator(_as_text)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- IAM token -------------------------------------------------------------------------------


class TokenAnswer(_Answer):
    """`{"access_token", "token_type": "Bearer", "expires_in", "refresh_token"}`; secrets hidden."""

    access_token: SecretStr
    token_type: str | None = None
    expires_in: float | None = None
    refresh_token: SecretStr | None = None


# --- External Scheduler Interface: requests ------------------------------------------------


class BatchParams(_Request):
    """A batch's `dynamicParamList`: `{"batchParams": {"$FICMISDATE$": "2022-10-23"}}`."""

    batchParams: dict[str, str]


class GroupBatchParams(_Request):
    """One entry of a group's `dynamicParamList`: `{"batchName", "batchParams"}`."""

    batchName: str
    batchParams: dict[str, str] = Field(default_factory=dict)


class TriggerRequest(_Request):
    """Execution API body. `dynamicParamList` is an object for `rest`, a list for `group`."""

    batchName: str
    batchType: Literal["rest", "group"] = "rest"
    dynamicParamList: BatchParams | list[GroupBatchParams] | None = None
    excludedTasks: list[str] | None = None
    heldTasks: list[str] | None = None


class StatusRequest(_Request):
    """Execution Status API body `{"batchRunId"}`; `tasks` (task codes) only when given."""

    batchRunId: str
    tasks: list[str] | None = None


class BatchRunRequest(_Request):
    """Interrupt, Rerun and Restart body `{"batchName", "batchRunId"}`."""

    batchName: str
    batchRunId: str


# --- External Scheduler Interface: answers -------------------------------------------------


class SchedulerAnswer(_Answer):
    """`{"severity", "summary", "batchRunId", "details", "statusCode", "status"}`."""

    severity: str | None = None
    summary: str | None = None
    batchRunId: str | None = None
    details: str | None = None
    statusCode: Code = None
    status: str | None = None


class TaskStatus(_Answer):
    taskCode: str | None = None
    taskStatus: str | None = None
    statusCode: Code = None


class BatchStatus(_Answer):
    batchRunId: str | None = None
    batchStatusCode: Code = None
    batchStatus: str | None = None


class StatusAnswer(SchedulerAnswer):
    """Status answer: `taskStatusList` (a batch) or `batchList` (a group) and the run's state."""

    taskStatusList: list[TaskStatus] | None = None
    batchList: list[BatchStatus] | None = None
    batchStatusCode: Code = None
    batchStatus: str | None = None
