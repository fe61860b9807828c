"""Settings of the vendor simulators: credentials, run durations and answer latencies.

The defaults are what `flowgate simulate` and the tests use, so a connection configured with
the documented example credentials talks to the simulators without any extra setup. Each
vendor has its own section so one vendor can be made slow (``latency``) or long-running
(``run_seconds``) without touching the others.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "CustomStatus",
    "InformaticaConfig",
    "PbsmConfig",
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
    """Robusta scheduler connector: Basic credentials and how a process run unfolds."""

    username: str = "robusta-user"
    password: str = "robusta-password"
    run_seconds: float = Field(default=_RUN_SECONDS, ge=0)
    latency: float = Field(default=0.0, ge=0)


class Tmf622Config(BaseModel):
    """b2bsoft-ux TMF622: static client credentials and the accepted business ids."""

    client_id: str = "b2bsoft-client"
    client_secret: str = "b2bsoft-secret"
    business_ids: list[str] = Field(default_factory=lambda: ["JM", "PA", "PR", "CR"])
    payment_names: list[str] = Field(default_factory=lambda: ["PayLink", "Paylink"])
    run_seconds: float = Field(default=_RUN_SECONDS, ge=0)  # unused: the PATCH is synchronous
    latency: float = Field(default=0.0, ge=0)


class PbsmConfig(BaseModel):
    """Oracle PBSM: OAuth client and user, token lifetime and how a batch run unfolds.

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
        default_factory=lambda: {"B2001_2026-11-21_1653041947296_1": "-1"},
        description="Runs that ended before the simulator started: run id (`<batch>_...`) -> "
        "final statusCode, so rerun and restart have something to act on.",
    )


class SimulatorConfig(BaseModel):
    """All four vendors, plus the seed of the random source behind probabilistic faults."""

    informatica: InformaticaConfig = Field(default_factory=InformaticaConfig)
    robusta: RobustaConfig = Field(default_factory=RobustaConfig)
    tmf622: Tmf622Config = Field(default_factory=Tmf622Config)
    pbsm: PbsmConfig = Field(default_factory=PbsmConfig)
    seed: int | None = 0
