"""Connection settings for Informatica B2B Gateway."""

from __future__ import annotations

from pydantic import Field, SecretStr

from workers.vendors._connection import ConnectionBase

__all__ = ["InformaticaConnection"]


class InformaticaConnection(ConnectionBase):
    username: str = "iics-user"
    password: SecretStr = SecretStr("iics-password")
    final_statuses: list[str] = Field(
        default=["Complete", "Warning", "Reprocessed", "Discarded", "Error", "System Error"],
        description="Event statuses after which the event no longer changes (custom ones too).",
    )
    failure_statuses: list[str] = Field(
        default=["Error", "System Error", "Discarded"],
        description="Final statuses that make the run fail.",
    )
    running_statuses: list[str] = Field(
        default=["Processing", "Downloading", "Waiting for Acknowledgment"],
        description="Statuses that are not final. A status none of the three lists names (a "
        "customer-defined one) follows the vendor's own isFinalStatus / isErrorStatus.",
    )
    fail_on_file_error: bool = Field(
        default=True, description="A file event with isErrorStatus true fails the run."
    )
