"""Informatica B2B Gateway wire shapes (docs/vendors.md, "Informatica B2B Gateway").

Field names are the vendor's own (camelCase). Request models are sent with
`model_dump(exclude_none=True)`; response models keep fields they do not know (`extra="allow"`)
so a whole event can be passed through to events as the run's result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EventStatus",
    "FileEvent",
    "InformaticaError",
    "InformaticaErrorBody",
    "MappingParameters",
    "RunPartnerRequest",
    "RunPartnerResponse",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    # Event ids may come back as numbers: they are handled as strings everywhere in flowgate.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class MappingParameters(_Request):
    """Only the non-empty maps are set; empty ones stay None and are left out of the body."""

    inputParameters: dict[str, str] | None = None
    inOutParameters: dict[str, str] | None = None
    mctAdvSessionProperties: dict[str, str] | None = None

    def is_empty(self) -> bool:
        return not (self.inputParameters or self.inOutParameters or self.mctAdvSessionProperties)


class RunPartnerRequest(_Request):
    """Body of `POST /b2b-gw/api/v1/partner/run`."""

    partnerName: str = Field(min_length=1)
    direction: str
    mappingParameters: MappingParameters | None = None

    def body(self) -> dict[str, object]:
        """The JSON body: None fields and an empty `mappingParameters` are left out."""
        data = self.model_dump(exclude_none=True)
        if self.mappingParameters is not None and self.mappingParameters.is_empty():
            data.pop("mappingParameters", None)
        return data


class RunPartnerResponse(_Response):
    """`200 {"eventId": "7638"}`: the id of the task event the run created."""

    eventId: str = Field(min_length=1)


def _rfc3339(millis: int | None) -> str | None:
    """Epoch milliseconds (`System.currentTimeMillis`) as RFC 3339 UTC, e.g.
    `2026-11-21T05:00:00.123Z`; None stays None."""
    if millis is None:
        return None
    when = datetime.fromtimestamp(millis / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FileEvent(_Response):
    """A file event, in a task event's `files` or read by its own id ("Success response for
    file events" in Informatica's Event Status REST API page)."""

    eventId: str = Field(min_length=1)
    eventStatus: str
    eventType: str | None = None
    isErrorStatus: bool = False
    isFinalStatus: bool = False
    eventCreationTimestamp: int | None = None
    parentEventId: str | None = None
    fileName: str | None = None
    messageType: str | None = None
    ackCode: str | None = None
    ackCodeDescription: str | None = None
    interchangeControlNumber: str | None = None
    groupList: list[Any] | None = None
    transactionList: list[Any] | None = None
    sectionList: list[Any] | None = None
    hasUnidentifiedData: bool | None = None

    def as_json(self) -> dict[str, Any]:
        """The event as the vendor sent it (unknown fields included, absent fields left out),
        its creation time as RFC 3339 for events."""
        data = self.model_dump(mode="json", exclude_unset=True)
        if self.eventCreationTimestamp is not None:
            data["eventCreationTimestamp"] = _rfc3339(self.eventCreationTimestamp)
        return data

    def vendor_json(self) -> dict[str, Any]:
        """Exactly as the vendor sent it, for a cursor that is read back."""
        return self.model_dump(mode="json", exclude_unset=True)


class EventStatus(FileEvent):
    """Answer of `GET /b2b-gw/api/v3/event/status/{eventId}`: a task event, or a file event.

    A task event carries `partnerName`, `partnerNumber`, `partnerFileType`, `direction`, and,
    once final, `files`: the file events the run produced, each with its status at the time.
    Only `eventId` and `eventStatus` are required.
    """

    partnerName: str | None = None
    partnerNumber: str | None = None
    partnerFileType: str | None = None
    direction: str | None = None
    files: list[FileEvent] = Field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = super().as_json()
        data.pop("files", None)  # reported beside it, each as followed to its end
        return data


class InformaticaError(_Response):
    code: str | None = None
    message: str | None = None


class InformaticaErrorBody(_Response):
    """Error answers `{"error": {"code", "message"}}`: the simulator's shape, the seed has none."""

    error: InformaticaError
