"""Connection settings for Product-Live (Data Factory job executions, partner invitations)."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from workers.ratelimit import RateLimit
from workers.vendors._connection import ConnectionBase

__all__ = ["ProductLiveConnection", "RateLimitPolicy"]


class RateLimitPolicy(BaseModel):
    """Product-Live's documented limit: 50 requests per minute per account, every API."""

    model_config = ConfigDict(extra="forbid")

    requests: int = Field(default=50, ge=1, description="Calls allowed per window.")
    window: float = Field(default=60.0, gt=0, description="Seconds.")
    margin: float = Field(
        default=0.5,
        ge=0,
        description="Seconds added to the window: room for a request that reaches the vendor "
        "late after its slot was taken, when the process dies before its answer.",
    )

    def limit(self) -> RateLimit:
        return RateLimit(self.requests, self.window, self.margin)


class ProductLiveConnection(ConnectionBase):
    api_key: SecretStr = SecretStr("productlive-api-key")
    account: str | None = Field(
        default=None,
        description="The Product-Live account this key belongs to: the rate limit is counted "
        "per account, across every process and every connection naming the same account. "
        "Default: one account per API key.",
    )
    rate_limit: RateLimitPolicy = Field(default_factory=RateLimitPolicy)
    jobs: dict[str, str] = Field(
        default_factory=dict,
        description="Job keys a `run-job` command may name instead of a job id: key -> job id.",
    )
    invitation_job_id: str = Field(
        default="6601c0ffee0000000000000a",
        min_length=1,
        description="The Data Factory job that wraps the data-partner-invitation-create task "
        "(`invite-partners`).",
    )
    invitation_input_key: str | None = Field(
        default=None,
        description="Where the job reads the task's request in its input: None sends the "
        'request as the input itself ({"operations": [...]}); a name sends {name: request}.',
    )
    invitation_results: str = Field(
        default="result.json",
        min_length=1,
        description="Dotted path of the task's per-key results (the seed's INLINE JSON output, "
        "`result.<outputKey>`) in the job execution's output.",
    )
    follow_invitations: bool = Field(
        default=False,
        description="After the job: read each created invitation until it is ACCEPTED or "
        "`follow_invitations_for` passes, with `progress` on each change.",
    )
    follow_invitations_for: float = Field(default=3600.0, gt=0, description="Seconds.")
    follow_batch: int = Field(
        default=10, ge=1, le=1000, description="Invitations read per status call, at most."
    )
    unknown_status: Literal["failed", "running"] = Field(
        default="failed",
        description="What a job execution status outside Product-Live's documented list means.",
    )

    @property
    def bucket(self) -> str:
        """The rate-limit bucket: the account, or a digest of the key (never the key)."""
        if self.account:
            return f"productlive:{self.account}"
        digest = hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest()[:16]
        return f"productlive:key-{digest}"
