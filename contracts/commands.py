"""Command data models: what a publisher puts in a command's CloudEvents `data`.

Commands are imperative (`TriggerBatch`); field names are snake_case and mirror the vendor's
own fields. Vendor-defined names inside maps (mapping parameters, `$FICMISDATE$`, process
values) pass through untouched. Each model validates the rules we can check before calling the
vendor, so a bad command fails fast with kind `invalid` instead of costing a vendor call.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.quartz import check_quartz_cron

__all__ = [
    "COMMAND_TYPES",
    "FILE_NAME_MAX",
    "FILE_SIZE_MAX",
    "UPLOAD_MIME_TYPES",
    "AddPaylink",
    "CancelRun",
    "Command",
    "ExportObjects",
    "GenerateReport",
    "GroupBatchParams",
    "ImportObjects",
    "InterruptBatch",
    "InvitePartners",
    "ListFiles",
    "PartnerInvitation",
    "ProcessSchedule",
    "RequestDownloadUrl",
    "RequestUploadUrl",
    "RerunBatch",
    "RestartBatch",
    "RunJob",
    "RunPartner",
    "StartProcess",
    "TriggerBatch",
    "check_file_name",
]


class Command(BaseModel):
    """Base of all command data models: unknown fields are refused, not silently ignored.

    A command type's contract facts are class attributes of its model, so a publisher has them
    without the worker code: `command_type` (the routing key, and `flowgate.<command_type>` as
    the CloudEvents type), `followed` (answered with `accepted`, `progress` and a terminal
    event, or synchronous: the terminal event only) and `example` (valid data, for the demo,
    `flowgate publish --example` and the schemas). Parts of a command (`GroupBatchParams`) set
    none of them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    command_type: ClassVar[str] = ""
    followed: ClassVar[bool] = True
    example: ClassVar[dict[str, Any]] = {}


class RunPartner(Command):
    """Run an Informatica B2B Gateway partner flow, then follow its task and file events."""

    command_type: ClassVar[str] = "run-partner"
    example: ClassVar[dict[str, Any]] = {
        "partner_name": 'ACME "Europe" \\ EDI',
        "direction": "outbound",
        "input_parameters": {"InvoiceNumber": "INV-1001"},
        "in_out_parameters": {"ShipmentNumber": "SHP-77"},
        "session_properties": {"Default buffer block size": "18MB"},
    }

    partner_name: str = Field(min_length=1, max_length=255)
    direction: Literal["INBOUND", "OUTBOUND"]
    input_parameters: dict[str, str] = Field(default_factory=dict)
    in_out_parameters: dict[str, str] = Field(default_factory=dict)
    session_properties: dict[str, str] = Field(
        default_factory=dict, description="Sent as mappingParameters.mctAdvSessionProperties."
    )

    @field_validator("direction", mode="before")
    @classmethod
    def _normalise_direction(cls, value: Any) -> Any:
        # The vendor treats direction case-insensitively; we normalise so events and logs agree.
        return value.upper() if isinstance(value, str) else value

    @field_validator("partner_name")
    @classmethod
    def _no_angle_brackets(cls, value: str) -> str:
        # The seed forbids < and >; backslashes and double quotes are allowed and JSON-escaped.
        if "<" in value or ">" in value:
            raise ValueError("partner_name must not contain '<' or '>'")
        return value


class ProcessSchedule(Command):
    """When Robusta runs a scheduled process. Robusta's document stars `quartzDef`, `startDate`,
    `endDate` and `retryCount` as the fields of a scheduled process: all four are required."""

    quartz_cron: str = Field(
        min_length=1,
        description="Quartz cron expression (seconds first; `?`, `L`, `W`, `#`), checked "
        "before sending; sent as quartzDef.",
    )
    start: AwareDatetime = Field(description="The first run; sent as startDate.")
    end: AwareDatetime = Field(description="No run after this; sent as endDate.")
    retry_count: int = Field(ge=0, description="Sent as retryCount.")

    @field_validator("quartz_cron")
    @classmethod
    def _quartz(cls, value: str) -> str:
        return check_quartz_cron(value)

    @model_validator(mode="after")
    def _start_before_end(self) -> ProcessSchedule:
        if self.end <= self.start:
            raise ValueError("schedule.end must be after schedule.start")
        return self


class StartProcess(Command):
    """Start a Robusta process, then follow its status until it ends."""

    command_type: ClassVar[str] = "start-process"
    example: ClassVar[dict[str, Any]] = {
        "process_name": "OneStepNotepadRunner",
        "values": {"username": "Username", "usersurname": "User Surname"},
    }

    process_name: str = Field(min_length=1, description="Sent as name.")
    values: dict[str, Any] = Field(default_factory=dict)
    worker: str | None = None
    run_once: bool | None = Field(
        default=None,
        description="Sent as runOnce (Y/N). Not given: Y without a schedule, N with one (as in "
        "Robusta's scheduled example).",
    )
    run_immediately: bool | None = Field(
        default=None,
        description="Sent as runImmediately (Y/N). Not given: Y without a schedule, N with one "
        "(as in Robusta's scheduled example).",
    )
    schedule: ProcessSchedule | None = None


class AddPaylink(Command):
    """Add a payment link to a Salesforce order through the TMF622 productOrder PATCH."""

    command_type: ClassVar[str] = "add-paylink"
    followed: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]] = {
        "business_id": "PR",
        "order_id": "801dm00000Km9aVAAR",
        "payment_link": "https://pay.example.com/l/8f2c",
        "external_id": "00163913",
        "billing_account_id": "1234567-123445",
    }

    business_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    order_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    payment_link: str = Field(min_length=1)
    external_id: str | None = None
    billing_account_id: str | None = None
    item_id: str = ""


class GroupBatchParams(Command):
    batch: str = Field(min_length=1)
    params: dict[str, str] = Field(default_factory=dict)


class TriggerBatch(Command):
    """Trigger an Oracle PBSM batch or batch group, then follow its status until it ends."""

    command_type: ClassVar[str] = "trigger-batch"
    example: ClassVar[dict[str, Any]] = {"batch": "B2001", "params": {"$FICMISDATE$": "2026-11-21"}}

    batch: str = Field(min_length=1, description="Sent as batchName.")
    group: bool = Field(default=False, description="batchType 'group' when true, else 'rest'.")
    params: dict[str, str] = Field(default_factory=dict)
    group_params: list[GroupBatchParams] = Field(default_factory=list)
    excluded_tasks: list[str] = Field(default_factory=list)
    held_tasks: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _params_match_kind(self) -> TriggerBatch:
        if self.group and self.params:
            raise ValueError("a batch group takes group_params, not params")
        if not self.group and self.group_params:
            raise ValueError("group_params needs group: true")
        return self


class _BatchRun(Command):
    """An existing PBSM batch or batch group run, named as the External Scheduler's
    interrupt, rerun and restart calls name it."""

    batch: str = Field(min_length=1, description="Sent as batchName.")
    batch_run_id: str = Field(min_length=1, description="Sent as batchRunId.")
    group: bool = Field(
        default=False,
        description="A batch group's run. The vendor's request is the same for both; this "
        "says which one the publisher means, in events and logs.",
    )


class InterruptBatch(_BatchRun):
    """Interrupt a running PBSM batch (or group) run; answered at once with the run's state
    after the interrupt (synchronous: no `accepted`)."""

    command_type: ClassVar[str] = "interrupt-batch"
    followed: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]] = {
        "batch": "B2001",
        "batch_run_id": "B2001_2026-11-21_1653041947296_2",
    }


class RerunBatch(_BatchRun):
    """Run an ended PBSM batch (or group) run again under a new run id, then follow it."""

    command_type: ClassVar[str] = "rerun-batch"
    example: ClassVar[dict[str, Any]] = {
        "batch": "B2001",
        "batch_run_id": "B2001_2026-11-21_1653041947296_1",
    }


class RestartBatch(_BatchRun):
    """Resume a failed, aborted or interrupted PBSM batch (or group) run under a new run id,
    then follow it."""

    command_type: ClassVar[str] = "restart-batch"
    example: ClassVar[dict[str, Any]] = {
        "batch": "B2001",
        "batch_run_id": "B2001_2026-11-21_1653041947296_1",
    }


# Header values PBSM reads (reportcode, reportType, appid, reportDefType): printable ASCII,
# no spaces, so nothing a publisher sends can split or bend a header.
_HEADER_VALUE = r"^[!-~]+$"


class GenerateReport(Command):
    """Generate an Oracle PBSM report (Generate Report API), then follow its status until the
    report is complete (with its PAR download link) or failed."""

    command_type: ClassVar[str] = "generate-report"
    example: ClassVar[dict[str, Any]] = {
        "report_code": "RPT_ACCID_HEALTH_INS",
        "report_type": "CSV",
        "filter_criteria": "FSI_ACCID_HEALTH_INS_CO_CD.CREATED_BY = 'DMIUSER1'",
    }

    report_code: str = Field(
        min_length=1,
        max_length=255,
        pattern=_HEADER_VALUE,
        description="The report's code (its Report Details page); sent as the header reportcode.",
    )
    report_type: str = Field(
        default="CSV",
        min_length=1,
        max_length=64,
        pattern=_HEADER_VALUE,
        description="The report file format; sent as the header reportType.",
    )
    report_def_type: str = Field(
        default="V",
        min_length=1,
        max_length=64,
        pattern=_HEADER_VALUE,
        description="The report definition type; sent as the header reportDefType (V, View, "
        "by default, as the document says).",
    )
    app_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=_HEADER_VALUE,
        description="The cloud service's application id; sent as the header appid. Not "
        "given: the connection's app_id.",
    )
    filter_criteria: str = Field(
        default="",
        max_length=32_000,
        description="Sent as filterCriteria (the report's filter expression; empty: no filter).",
    )
    placeholder_filter: str = Field(
        default="",
        max_length=32_000,
        description="Sent as placeholderFilter (the filter with placeholders; empty: none).",
    )


class _Migration(Command):
    """An object migration of PBSM, named by its migration code."""

    code: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[^/\\?#%\s]+$",
        description="The migration ID (the path's {code}); no '/', '\\', '?', '#', '%' or spaces.",
    )


class ExportObjects(_Migration):
    """Export an Oracle PBSM object migration's definitions (Invoke Export API), then follow
    the Get Export Status API until the export ends."""

    command_type: ClassVar[str] = "export-objects"
    example: ClassVar[dict[str, Any]] = {"code": "MIGR0001"}


class ImportObjects(_Migration):
    """Import an Oracle PBSM object migration's definitions (Invoke Import API), then follow
    the Get Import Status API until the import ends."""

    command_type: ClassVar[str] = "import-objects"
    example: ClassVar[dict[str, Any]] = {"code": "MIGR0001"}


# The PAR file APIs' rules for fileName, fileSize and mimeType (Table 3-1).
FILE_NAME_MAX = 255
FILE_SIZE_MAX = 10 * 2**40  # "less than 10 TB": Object Storage's 10 TiB object limit
UPLOAD_MIME_TYPES = ("text/csv", "text/plain", "dat")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_file_name(value: str) -> str:
    """Table 3-1's fileName rules: starts with a letter or digit; letters, digits, '-', '.',
    '_' only; at most 255 characters. The reason names the rule broken."""
    if not value:
        raise ValueError("file_name must not be empty")
    if len(value) > FILE_NAME_MAX:
        raise ValueError(f"file_name has {len(value)} characters; at most {FILE_NAME_MAX}")
    if _FILE_NAME.match(value[0]) is None:
        raise ValueError("file_name must start with a letter or a digit")
    if _FILE_NAME.fullmatch(value) is None:
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))})
        raise ValueError(
            f"file_name may hold only letters, digits, '-', '.' and '_', not {''.join(bad)!r}"
        )
    return value


class RequestUploadUrl(Command):
    """Ask Oracle PBSM for a PAR URL to upload one file to its Object Store; answered at once
    with the URL and its expiry (synchronous: no `accepted`)."""

    command_type: ClassVar[str] = "request-upload-url"
    followed: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]] = {
        "file_name": "idcs_log1.txt",
        "file_size": 100,
        "mime_type": "text/plain",
    }

    file_name: str = Field(
        description="Sent as fileName: starts with a letter or digit; letters, digits, '-', "
        "'.', '_'; at most 255 characters."
    )
    file_size: int = Field(
        gt=1,
        lt=FILE_SIZE_MAX,
        description="Sent as fileSize, in bytes: greater than 1 byte and less than 10 TB "
        "(multipart upload is recommended past 100 MB).",
    )
    mime_type: str = Field(description="Sent as mimeType: text/csv, text/plain or DAT (any case).")
    prefix: str = Field(default="", max_length=1024, description="Sent as the query's prefix.")

    @field_validator("file_name")
    @classmethod
    def _file_name(cls, value: str) -> str:
        return check_file_name(value)

    @field_validator("mime_type")
    @classmethod
    def _mime_type(cls, value: str) -> str:
        if value.strip().lower() not in UPLOAD_MIME_TYPES:
            raise ValueError("mime_type must be one of Text/CSV, Text/plain, DAT (any case)")
        return value.strip()


class RequestDownloadUrl(Command):
    """Ask Oracle PBSM for a PAR URL to download one uploaded file, by its name or its id;
    answered at once with the URL and its expiry (synchronous: no `accepted`)."""

    command_type: ClassVar[str] = "request-download-url"
    followed: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]] = {"file_name": "Idcs_log3.txt"}

    file_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=FILE_NAME_MAX,
        description="The file's name; sent as the query's fileName.",
    )
    file_id: int | None = Field(
        default=None, ge=1, description="The file's id (fileId); sent in the path instead."
    )
    stripe_name: str = Field(
        default="default",
        min_length=1,
        max_length=255,
        description="With file_name: sent as stripeName.",
    )
    prefix: str = Field(default="", max_length=1024, description="With file_name: prefix.")

    @model_validator(mode="after")
    def _name_or_id(self) -> RequestDownloadUrl:
        if (self.file_name is None) == (self.file_id is None):
            raise ValueError("give exactly one of file_name and file_id")
        if self.file_id is not None and self.model_fields_set & {"stripe_name", "prefix"}:
            raise ValueError("stripe_name and prefix go with file_name, not file_id")
        return self


class ListFiles(Command):
    """List the files uploaded to Oracle PBSM through PAR URLs (synchronous: no `accepted`)."""

    command_type: ClassVar[str] = "list-files"
    followed: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]] = {"stripe_name": "default"}

    stripe_name: str = Field(
        default="default", min_length=1, max_length=255, description="Sent as stripeName."
    )


ResultFormat = Literal["json", "xml"]


class RunJob(Command):
    """Run a Product-Live Data Factory job with a JSON input, then follow its job execution."""

    command_type: ClassVar[str] = "run-job"
    example: ClassVar[dict[str, Any]] = {
        "job_id": "65819ba43ad5b963658ab35d",
        "input": {"someKey": "some data"},
    }

    job_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="Sent as jobId."
    )
    job_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A job named by its key in the connection's `jobs` (key -> job id), "
        "instead of job_id.",
    )
    input: dict[str, Any] = Field(default_factory=dict, description="Sent as input.")
    result_format: ResultFormat = Field(
        default="json",
        description='`xml`: the terminal event\'s result is `{"xml": <the result in the W3C '
        "json-to-xml form>}`.",
    )

    @model_validator(mode="after")
    def _one_job(self) -> RunJob:
        if (self.job_id is None) == (self.job_key is None):
            raise ValueError("give exactly one of job_id and job_key")
        return self


class PartnerInvitation(Command):
    """One operation of `invite-partners`: the invitation of one organisation, under a key."""

    key: str = Field(min_length=1, max_length=255, description="Sent as key; unique.")
    to_account_name: str = Field(min_length=1, description="Sent as element.toAccountName.")
    to_user_email: str = Field(
        min_length=1,
        max_length=320,
        description="Sent as element.toUserEmail; Product-Live checks the address, per key.",
    )
    from_user_id: str | None = Field(
        default=None, min_length=1, description="Sent as element.fromUserId when given."
    )


class InvitePartners(Command):
    """Create Product-Live partner invitations through the connection's Data Factory job
    (task data-partner-invitation-create); one result per key."""

    command_type: ClassVar[str] = "invite-partners"
    example: ClassVar[dict[str, Any]] = {
        "operations": [
            {
                "key": "a",
                "to_account_name": "Supplier A",
                "to_user_email": "contact@supplier-a.com",
            }
        ]
    }

    operations: list[PartnerInvitation] = Field(min_length=1, max_length=1000)
    result_format: ResultFormat = Field(
        default="json",
        description='`xml`: the terminal event\'s result is `{"xml": <the result in the W3C '
        "json-to-xml form>}`.",
    )

    @model_validator(mode="after")
    def _unique_keys(self) -> InvitePartners:
        seen: set[str] = set()
        for operation in self.operations:
            if operation.key in seen:
                raise ValueError(f"operations: the key {operation.key!r} is used twice")
            seen.add(operation.key)
        return self


class CancelRun(Command):
    """Stop a run flowgate is following. Where the vendor can stop runs (PBSM's interrupt),
    flowgate asks it to: the run's own command then ends `cancelled` once the vendor says so,
    and this one `succeeded`. Where it cannot, this one ends `failed` kind `rejected` saying
    so, and the run goes on being followed."""

    command_type: ClassVar[str] = "cancel-run"
    followed: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]] = {"command_id": "2f0c6c1e-6a4e-4b8f-9a57-5b1c3c8d2e10"}

    command_id: str = Field(min_length=1, description="The id of the command whose run to stop.")


COMMAND_TYPES: dict[str, type[Command]] = {
    model.command_type: model
    for model in (
        AddPaylink,
        CancelRun,
        ExportObjects,
        GenerateReport,
        ImportObjects,
        InterruptBatch,
        InvitePartners,
        ListFiles,
        RequestDownloadUrl,
        RequestUploadUrl,
        RerunBatch,
        RestartBatch,
        RunJob,
        RunPartner,
        StartProcess,
        TriggerBatch,
    )
}
