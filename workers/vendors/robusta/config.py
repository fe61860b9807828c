"""Connection settings for the Robusta scheduler connector API."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from workers.vendors._connection import ConnectionBase

__all__ = ["RobustaConnection"]


class RobustaConnection(ConnectionBase):
    username: str = "robusta-user"
    password: SecretStr = SecretStr("robusta-password")
    running_statuses: list[str] = ["WAITING", "RUNNING"]
    success_statuses: list[str] = ["SUCCEEDED"]
    unknown_status: Literal["failed", "running"] = Field(
        default="failed",
        description="What a status outside the known lists means; the seed documents none.",
    )
    timezone: str = Field(default="UTC", description="Zone for startDate/endDate.")
