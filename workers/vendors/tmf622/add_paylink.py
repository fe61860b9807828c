"""`add-paylink` → one synchronous TMF622 PATCH; its 200 is already the final answer."""

from __future__ import annotations

from contracts.commands import AddPaylink
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

__all__ = ["AddPaylinkHandler", "patch_body"]


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


class AddPaylinkHandler:
    """`add-paylink` on one TMF622 connection. Synchronous: `trigger` returns the final report."""

    def __init__(self, client: Tmf622Client) -> None:
        self._connection = client.connection
        self._client = client

    @property
    def client(self) -> Tmf622Client:
        return self._client

    async def trigger(self, command: AddPaylink, *, command_id: str) -> Triggered:
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
