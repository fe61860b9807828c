"""Command data models: what a publisher puts in a command's CloudEvents `data`.

Commands are imperative (`TriggerBatch`); field names are snake_case and mirror the vendor's
own fields. Vendor-defined names inside maps (mapping parameters, `$FICMISDATE$`, process
values) pass through untouched. Each model validates the rules we can check before calling the
vendor, so a bad command fails fast with kind `invalid` instead of costing a vendor call.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.quartz import check_quartz_cron

__all__ = [
    "COMMAND_TYPES",
    "AddPaylink",
    "CancelRun",
    "Command",
    "GroupBatchParams",
    "InterruptBatch",
    "InvitePartners",
    "PartnerInvitation",
    "ProcessSchedule",
    "RerunBatch",
    "RestartBatch",
    "RunJob",
    "RunPartner",
    "StartProcess",
    "TriggerBatch",
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
        InterruptBatch,
        InvitePartners,
        RerunBatch,
        RestartBatch,
        RunJob,
        RunPartner,
        StartProcess,
        TriggerBatch,
    )
}
