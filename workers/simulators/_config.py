"""Settings of the vendor simulators: credentials, run durations and answer latencies.

The defaults are what `flowgate simulate` and the tests use, so a connection configured with
the documented example credentials talks to the simulators without any extra setup. Each
vendor has its own section so one vendor can be made slow (``latency``) or long-running
(``run_seconds``) without touching the others.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "CustomStatus",
    "InformaticaConfig",
    "PbsmConfig",
    "ProductLiveConfig",
    "RobustaConfig",
    "SimulatorConfig",
    "Tmf622Config",
]

_RUN_SECONDS = 0.6


class CustomStatus(BaseModel):
    """A customer-defined event status: its state is final or not, in error or not."""

    final: bool = True
    error: bool = False


class InformaticaConfig(BaseModel):
    """Informatica B2B Gateway: Basic credentials and how a partner run unfolds."""

    username: str = "iics-user"
    password: str = "iics-password"
    run_seconds: float = Field(default=_RUN_SECONDS, ge=0)
    latency: float = Field(default=0.0, ge=0)
    file_events: int = Field(default=2, ge=0)
    custom_statuses: dict[str, CustomStatus] = Field(
        default_factory=lambda: {
            "Rejected by Partner": CustomStatus(final=True, error=True),
            "Archived": CustomStatus(final=True, error=False),
        },
        description="Statuses a customer defined (Informatica lets them mark each final or "
        "error); a run's outcome may end in one.",
    )


class RobustaConfig(BaseModel):
    """Robusta scheduler connector: Basic credentials and how a process run unfolds.

    A scheduled process (``startDate`` given, ``runImmediately`` not ``Y``) first runs at its
    ``startDate``, read in ``timezone``; until then its status is ``before_start_status``
    (Robusta's document names no status for a process not yet started: WAITING is ours).
    """

    username: str = "robusta-user"
    password: str = "robusta-password"
    run_seconds: float = Field(default=_RUN_SECONDS, ge=0)
    latency: float = Field(default=0.0, ge=0)
    timezone: str = Field(default="UTC", description="Zone of startDate/endDate.")
    before_start_status: str = Field(default="WAITING", min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Tmf622Config(BaseModel):
    """b2bsoft-ux TMF622: static client credentials and the accepted business ids."""

    client_id: str = "b2bsoft-client"
    client_secret: str = "b2bsoft-secret"
    business_ids: list[str] = Field(default_factory=lambda: ["JM", "PA", "PR", "CR"])
    payment_names: list[str] = Field(default_factory=lambda: ["PayLink", "Paylink"])
    run_seconds: float = Field(default=_RUN_SECONDS, ge=0)  # unused: the PATCH is synchronous
    latency: float = Field(default=0.0, ge=0)


class PbsmConfig(BaseModel):
    """Oracle PBSM: OAuth client and user, token lifetime, how a batch run, a report and an
    object migration unfold, PAR URLs' lifetime and the files already uploaded.

    The ``ofs_*`` and ``locale`` headers are only checked for presence, as their values are
    tenant-specific and the seed gives no rule for them.
    """

    client_id: str = "pbsm-client"
    client_secret: str = "pbsm-client-secret"
    username: str = "pbsm-user"
    password: str = "pbsm-password"
    expires_in: int = Field(default=3600, ge=1)
    run_seconds: float = Field(default=_RUN_SECONDS, ge=0)
    latency: float = Field(default=0.0, ge=0)
    history: dict[str, str] = Field(
        default_factory=lambda: {
            "B2001_2026-11-21_1653041947296_1": "-1",
            "B2001_2026-11-21_1653041947296_2": "2",
        },
        description="Runs that exist when the simulator starts: run id (`<batch>_...`) -> "
        "statusCode. A final code is a run that ended (rerun and restart act on it); 1, 2 or "
        "5 is a run that stays so until it is interrupted.",
    )
    report_seconds: float | None = Field(
        default=None,
        ge=0,
        description="How long a report takes (PENDING for its first quarter, then RUNNING); "
        "None: run_seconds.",
    )
    report_complete_status: Literal["COMPLETE", "COMPLETED"] = Field(
        default="COMPLETE",
        description="How a report's end is spelled (the seed spells both); a scripted "
        "outcome of COMPLETE/COMPLETED/FAIL/FAILED for a report code is answered as given.",
    )
    report_failed_status: Literal["FAIL", "FAILED"] = "FAIL"
    migration_seconds: float | None = Field(
        default=None, ge=0, description="How long an export or import runs; None: run_seconds."
    )
    par_seconds: float = Field(
        default=900.0, gt=0, description="How long a PAR URL the simulator issues works."
    )
    files: dict[str, str] = Field(
        default_factory=lambda: {
            "Idcs_log3.txt": "line 1 of Idcs_log3\n",
            "Idcs_log4.txt": "line 1 of Idcs_log4\n",
        },
        description="Files uploaded (stripe `default`) when the simulator starts: name -> "
        "content; their ids are 9916, 9917, ... (the seed's listing).",
    )


JobKind = Literal["echo", "partner-invitations"]
_JOBS: dict[str, JobKind] = {
    "65819ba43ad5b963658ab35d": "echo",  # the job id of Product-Live's own example
    "6601c0ffee0000000000000a": "partner-invitations",
}


class ProductLiveConfig(BaseModel):
    """Product-Live: API keys (each of one account), the jobs the account has, the account's
    rate limit, how a job execution unfolds and when an invitation is accepted.

    A job is `echo` (its output holds its input and a `data_factory_file`) or
    `partner-invitations` (it runs the task data-partner-invitation-create over its input,
    read at `invitation_input_key`, as `{"operations": [...]}` when None).
    """

    api_keys: dict[str, str] = Field(
        default_factory=lambda: {"productlive-api-key": "4203"},
        description="X-Api-Key -> account id.",
    )
    jobs: dict[str, JobKind] = Field(default_factory=lambda: dict(_JOBS))
    invitation_input_key: str | None = None
    rate_limit: int = Field(default=50, ge=1, description="Requests per window per account.")
    rate_window: float = Field(default=60.0, gt=0, description="Seconds.")
    run_seconds: float = Field(default=_RUN_SECONDS, ge=0)
    latency: float = Field(default=0.0, ge=0)
    accept_after: float | None = Field(
        default=2.0,
        ge=0,
        description="Seconds until a created invitation is ACCEPTED (None: never).",
    )


class SimulatorConfig(BaseModel):
    """All four vendors, plus the seed of the random source behind probabilistic faults."""

    informatica: InformaticaConfig = Field(default_factory=InformaticaConfig)
    robusta: RobustaConfig = Field(default_factory=RobustaConfig)
    tmf622: Tmf622Config = Field(default_factory=Tmf622Config)
    pbsm: PbsmConfig = Field(default_factory=PbsmConfig)
    productlive: ProductLiveConfig = Field(default_factory=ProductLiveConfig)
    seed: int | None = 0
