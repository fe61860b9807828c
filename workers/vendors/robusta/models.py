"""Robusta scheduler connector API wire shapes (docs/vendors.md, "Robusta").

Field names are the vendor's own (camelCase). Request models are sent with
`model_dump(exclude_none=True)`; response models keep fields they do not know
(`extra="allow"`), which is where the `__out_<name>` outputs of a process land.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "OUTPUT_PREFIX",
    "ProcessStatusResponse",
    "RobustaErrorBody",
    "StartProcessRequest",
    "StartProcessResponse",
    "YesNo",
]

OUTPUT_PREFIX = "__out_"

YesNo = Literal["Y", "N"]


class StartProcessRequest(BaseModel):
    """Body of `POST /scheduler/connector-API/process/start`.

    `worker` only when set; `quartzDef`, `startDate`, `endDate` and `retryCount` only for a
    scheduled run. Dates are `yyyy-MM-dd HH:mm:ss`; `retryCount` is a string, as in the seed.
    """

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] = Field(default_factory=dict)
    name: str = Field(min_length=1)
    worker: str | None = None
    runOnce: YesNo
    runImmediately: YesNo
    quartzDef: str | None = None
    startDate: str | None = None
    endDate: str | None = None
    retryCount: str | None = None

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class StartProcessResponse(_Response):
    """`200 {"robustaSpid": "<uuid>", "message": "Process saved"}`."""

    robustaSpid: str = Field(min_length=1)
    message: str | None = None


class ProcessStatusResponse(_Response):
    """`200 {"status", "message", "__out_<name>": ...}`."""

    status: str = Field(min_length=1)
    message: str | None = None

    def outputs(self) -> dict[str, Any]:
        """The `__out_*` fields, keyed by their names without the `__out_` prefix."""
        extra = self.model_extra or {}
        return {
            key[len(OUTPUT_PREFIX) :]: value
            for key, value in extra.items()
            if key.startswith(OUTPUT_PREFIX)
        }


class RobustaErrorBody(_Response):
    """Error answers `{"message"}` (the simulator's shape; the seed documents none)."""

    message: str | None = None
