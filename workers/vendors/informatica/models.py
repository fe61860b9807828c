"""Informatica B2B Gateway wire shapes (docs/vendors.md, "Informatica B2B Gateway").

Field names are the vendor's own (camelCase). Request models are sent with
`model_dump(exclude_none=True)`; response models keep fields they do not know (`extra="allow"`)
so a whole event can be passed through to events as the run's result.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EventRef",
    "EventStatus",
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


class EventRef(_Response):
    """An entry of a task event's `fileEvents`."""

    eventId: str = Field(min_length=1)


class EventStatus(_Response):
    """Answer of `GET /b2b-gw/api/v3/event/status/{eventId}`: a task or a file event.

    Task events carry `partnerName` and, once final, `fileEvents`; file events carry
    `parentEventId` and `fileName`. Only `eventId` and `eventStatus` are required.
    """

    eventId: str = Field(min_length=1)
    eventStatus: str
    eventType: str | None = None
    isErrorStatus: bool = False
    isFinalStatus: bool = False
    eventCreationTimestamp: str | None = None
    partnerName: str | None = None
    fileEvents: list[EventRef] = Field(default_factory=list)
    parentEventId: str | None = None
    fileName: str | None = None

    def as_json(self) -> dict[str, object]:
        """The event as the vendor sent it (unknown fields included, absent fields left out)."""
        return self.model_dump(mode="json", exclude_unset=True)


class InformaticaError(_Response):
    code: str | None = None
    message: str | None = None


class InformaticaErrorBody(_Response):
    """Error answers `{"error": {"code", "message"}}`: the simulator's shape, the seed has none."""

    error: InformaticaError
