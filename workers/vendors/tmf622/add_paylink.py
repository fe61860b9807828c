"""`add-paylink` → one synchronous TMF622 PATCH; its 200 is already the final answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel

from contracts.commands import AddPaylink
from workers.errors import InvalidCommand
from workers.vendors.base import StatusReport, Triggered
from workers.vendors.tmf622.client import Tmf622Client
from workers.vendors.tmf622.config import Tmf622Connection
from workers.vendors.tmf622.models import (
    BillingAccount,
    Channel,
    Payment,
    ProductOrderItem,
    ProductOrderPatch,
)

__all__ = ["Tmf622Adapter", "patch_body"]


def patch_body(command: AddPaylink, connection: Tmf622Connection) -> ProductOrderPatch:
    """The seed's body: `externalId` and `billingAccount` only when the command gives them."""
    return ProductOrderPatch(
        externalId=command.external_id,
        channel=[Channel(id="sourceSystem", name=connection.channel_name)],
        billingAccount=(
            BillingAccount(id=command.billing_account_id, name="billingAccountNumber")
            if command.billing_account_id is not None
            else None
        ),
        productOrderItem=[
            ProductOrderItem(
                id=command.item_id,
                action="add",
                payment=[Payment(id=command.payment_link, name=connection.payment_name)],
            )
        ],
    )


class Tmf622Adapter:
    """`VendorAdapter` for `add-paylink`. Synchronous vendor: `trigger` returns the final report."""

    def __init__(self, http: httpx.AsyncClient, connection: Tmf622Connection) -> None:
        self._connection = connection
        self._client = Tmf622Client(http, connection)

    @property
    def client(self) -> Tmf622Client:
        return self._client

    async def trigger(self, command: BaseModel, *, command_id: str) -> Triggered:
        if not isinstance(command, AddPaylink):
            raise InvalidCommand(f"TMF622 adapter takes add-paylink, not {type(command).__name__}")
        http_status, answer = await self._client.patch_product_order(
            business_id=command.business_id,
            order_id=command.order_id,
            body=patch_body(command, self._connection),
            correlation_id=command_id,
        )
        description = answer.description or str(http_status)
        return Triggered(
            vendor_ref={"order_id": command.order_id, "business_id": command.business_id},
            status=str(http_status),
            report=StatusReport(
                state="succeeded",
                status=description,
                result={
                    "description": answer.description,
                    "productOrderItem": answer.productOrderItem,
                },
            ),
        )

    async def status(
        self, vendor_ref: Mapping[str, str], *, cursor: Mapping[str, Any]
    ) -> StatusReport:
        raise RuntimeError("TMF622 add-paylink is synchronous: trigger's answer is final")
