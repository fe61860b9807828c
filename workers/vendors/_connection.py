"""Settings every vendor connection shares: where it is, how long to wait, how to retry and poll."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["ConnectionBase", "PollPolicy", "RetryPolicy"]


class RetryPolicy(BaseModel):
    """Retries of 429, 502, 503, timeouts and connection errors, through delay queues."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=6, ge=1, description="Vendor calls before `exhausted`.")
    first_delay: float = Field(default=1.0, gt=0, description="Seconds before the first retry.")
    factor: float = Field(default=2.0, ge=1.0)
    max_delay: float = Field(default=300.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1, description="± fraction of each delay.")
    max_retry_after: float = Field(
        default=3600.0, gt=0, description="Cap on a vendor's Retry-After, in seconds."
    )


class PollPolicy(BaseModel):
    """Delays between status calls: first_delay, growing by factor, capped at max_delay.

    With a factor f, the lag between a run ending and the poll that sees it stays under
    (f - 1) x the run's length + first_delay; the defaults (1 s, x1.2, 600 s cap) keep it under
    20 % of the run + 1 s, and take 15 status calls to see a 1-minute run finished and 37 for a
    1-hour run (calls at 1, 2.2, 3.64 … s; BENCHMARKS.md, "Poll efficiency").
    """

    model_config = ConfigDict(extra="forbid")

    first_delay: float = Field(default=1.0, gt=0)
    factor: float = Field(default=1.2, ge=1.0)
    max_delay: float = Field(default=600.0, gt=0)
    max_duration: float = Field(
        default=24 * 3600.0, gt=0, description="Follow a run at most this long without a deadline."
    )
    max_errors: int = Field(
        default=20,
        ge=1,
        description="Consecutive failed status calls before `exhausted`. Status calls only "
        "read, so they may be retried longer than triggers.",
    )
    stuck_after: float | None = Field(
        default=None,
        ge=0,
        description="Seconds a run's vendor status may stay the same before the run counts as "
        "stuck: one `progress` event with `stuck: true`, `flowgate runs list --stuck`. Off "
        "(None or 0) by default: how long a status may last is the job's, not the vendor's.",
    )


class ConnectionBase(BaseModel):
    """A named vendor connection. Any secret `x` may be given as `x_file` (a path to read)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, values: Any) -> Any:
        # Container secrets arrive as files; reading them here keeps them out of env listings.
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for key in [k for k in values if isinstance(k, str) and k.endswith("_file")]:
            name = key[: -len("_file")]
            field = cls.model_fields.get(name)
            if field is None or field.annotation is not SecretStr:
                raise ValueError(f"{key}: {name!r} is not a secret of this connection")
            path = Path(str(values.pop(key)))
            try:
                values[name] = path.read_text().strip()
            except OSError as exc:
                raise ValueError(f"{key}: cannot read {path}: {exc.strerror}") from None
        return values

    base_url: str = "http://127.0.0.1:8700"
    timeout: float = Field(default=30.0, gt=0, description="Seconds for one vendor call.")
    verify: bool | str = Field(
        default=True, description="Verify TLS certificates; a path selects a CA bundle."
    )
    max_connections: int = Field(default=256, ge=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    poll: PollPolicy = Field(default_factory=PollPolicy)
    on_deadline: Literal["stop", "interrupt"] = Field(
        default="stop",
        description="When a run passes its deadline: `stop` following it (failed/deadline), or "
        "also `interrupt` it at the vendor first, where the vendor can stop runs (PBSM).",
    )
    unknown_outcome: Literal["retry", "fail"] = Field(
        default="fail",
        description="When a trigger may or may not have reached the vendor (a crash before its "
        "answer was recorded, a read timeout, 502/504): `fail` answers failed(unknown_outcome) "
        "and never risks a second run; `retry` calls again, for vendors that deduplicate.",
    )
    allowed_publishers: list[str] | None = Field(
        default=None,
        description="AMQP users allowed to send commands on this connection (the message's "
        "`user_id`, which RabbitMQ checks against the user it authenticated); a command from "
        "anyone else is failed(rejected). None: anyone who may publish to flowgate.commands.",
    )

    @property
    def trigger_lease(self) -> float:
        """How long a claim protects a trigger in flight: longer than any one call can take."""
        return self.timeout * 2 + 5.0
