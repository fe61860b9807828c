"""Wire shapes of Oracle PBSM: the IAM token endpoint, the External Scheduler Interface, the
report, object migration and PAR file APIs.

Field names are the vendor's own (seed 004, docs/vendors.md). Requests refuse unknown fields and
are sent without the optional members left unset; answers accept extra fields. PBSM sends its
codes as JSON strings ("0", "-1"); numbers are accepted too and carried as text. PAR URLs are
`SecretStr`: they grant access to the file by themselves, so no repr or message shows them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

__all__ = [
    "STATUS_CODES",
    "BatchParams",
    "BatchRunRequest",
    "BatchStatus",
    "ErrorAnswer",
    "FileEntry",
    "FileList",
    "GroupBatchParams",
    "MigrationAnswer",
    "ParAnswer",
    "ParPayload",
    "ReportAnswer",
    "ReportRequest",
    "SchedulerAnswer",
    "StatusAnswer",
    "StatusRequest",
    "TaskStatus",
    "TokenAnswer",
    "TriggerRequest",
    "UploadRequest",
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


# --- Generate Report API and its status API (chapters 8 and 9) -----------------------------


class ReportRequest(_Request):
    """Generate Report body. Both members are always sent, "" when not given, as in the
    document's "Request JSON Sample when there is no filter"."""

    filterCriteria: str = ""
    placeholderFilter: str = ""

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# The document spells these members more than one way: `requestInstanceId` (samples),
# `requestInstanceid` (field list), `reportInstanceId` (the FAIL sample), `downloadLink`
# (samples), `downloadlink` (field list). Each is read whatever its case.
_INSTANCE_KEYS = frozenset({"requestinstanceid", "reportinstanceid"})
_LINK_KEYS = frozenset({"downloadlink"})


class ReportAnswer(_Answer):
    """`{"status", "requestInstanceId"}`; `{"status": "FAIL", "reportInstanceId"}`;
    `{"status": "COMPLETE", "requestInstanceId", "downloadLink"}`."""

    status: str | None = None
    instance_id: Code = None
    download_link: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            folded = key.lower() if isinstance(key, str) else key
            if folded in _INSTANCE_KEYS:
                out.setdefault("instance_id", item)
            elif folded in _LINK_KEYS:
                out["download_link"] = item
            elif key not in ("instance_id", "download_link"):
                out[key] = item
        return out


# --- Invoke Export/Import API, Get Export/Import Status API (chapters 4 to 7) --------------


class MigrationAnswer(_Answer):
    """`{"errorMessage", "statusCode", "status"}`: every migration answer, success or not."""

    errorMessage: str | None = None
    statusCode: Code = None
    status: str | None = None


# --- PAR URLs for file operations (chapter 3) ----------------------------------------------


class UploadRequest(_Request):
    """Generate PAR URL for File Upload body (Table 3-1)."""

    fileName: str
    fileSize: int
    mimeType: str


class ParPayload(_Answer):
    """The answer's `payload`: `{"uploadURL", "createUser", "stripeName", "fileId",
    "createDate", "token", "status"}` (upload) or `{"downloadURL"}` (download)."""

    uploadURL: SecretStr | None = None
    downloadURL: SecretStr | None = None
    token: SecretStr | None = None
    fileId: Code = None
    fileName: str | None = None


class ParAnswer(_Answer):
    """`{"payload": {...}}`."""

    payload: ParPayload


class FileEntry(_Answer):
    """One uploaded file of the listing: `{"v_file_name", "n_file_id", "d_upload_date",
    "v_stripe_name"}`."""

    v_file_name: str | None = None
    n_file_id: Code = None
    d_upload_date: str | None = None
    v_stripe_name: str | None = None


class FileList(_Answer):
    """`{"payload": [<file>, ...], "count"}`."""

    payload: list[FileEntry] = Field(default_factory=list)
    count: int | None = None


class ErrorAnswer(_Answer):
    """What an error answer of the report and file APIs may hold (the document gives none):
    the migration APIs' members, and `message`."""

    errorMessage: str | None = None
    message: str | None = None
    statusCode: Code = None
    status: str | None = None

    def text(self) -> str:
        return self.errorMessage or self.message or ""
