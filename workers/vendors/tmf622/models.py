"""Wire shapes of the b2bsoft-ux TMF622 productOrder PATCH (seed 003, docs/vendors.md).

Field names are the vendor's own. Requests refuse unknown fields and are sent without the
optional members left unset; answers accept extra fields so a richer vendor answer still parses.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "BillingAccount",
    "Channel",
    "Payment",
    "ProductOrderAnswer",
    "ProductOrderErrors",
    "ProductOrderItem",
    "ProductOrderPatch",
    "VendorErrorItem",
]


def _as_text(value: Any) -> Any:
    # The seed's error codes are JSON numbers (400); flowgate carries vendor codes as text.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Channel(_Request):
    id: str = "sourceSystem"
    name: str


class BillingAccount(_Request):
    id: str
    name: str = "billingAccountNumber"


class Payment(_Request):
    id: str = Field(description="The payment link.")
    name: str = "PayLink"


class ProductOrderItem(_Request):
    id: str = ""
    action: Literal["add"] = "add"
    payment: list[Payment]


class ProductOrderPatch(_Request):
    """The PATCH body. Dump with `wire()`: `externalId` and `billingAccount` only when set."""

    externalId: str | None = None
    channel: list[Channel]
    billingAccount: BillingAccount | None = None
    productOrderItem: list[ProductOrderItem]

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ProductOrderAnswer(_Answer):
    """200 `{"description", "productOrderItem": [{"id", "action"}]}`; both optional per the seed."""

    description: str | None = None
    productOrderItem: list[dict[str, Any]] = Field(default_factory=list)


class VendorErrorItem(_Answer):
    code: Annotated[str | None, BeforeValidator(_as_text)] = None
    message: str | None = None
    description: str | None = None


class ProductOrderErrors(_Answer):
    """Error body `{"errors": [{"code", "message", "description"}]}`."""

    errors: list[VendorErrorItem] = Field(default_factory=list)
