"""b2bsoft-ux TMF622 productOrder PATCH (`add-paylink`)."""

from workers.vendors.tmf622.client import Tmf622Client
from workers.vendors.tmf622.config import Tmf622Connection
from workers.vendors.tmf622.handlers import Tmf622Adapter, patch_body
from workers.vendors.tmf622.models import (
    BillingAccount,
    Channel,
    Payment,
    ProductOrderAnswer,
    ProductOrderErrors,
    ProductOrderItem,
    ProductOrderPatch,
    VendorErrorItem,
)

__all__ = [
    "BillingAccount",
    "Channel",
    "Payment",
    "ProductOrderAnswer",
    "ProductOrderErrors",
    "ProductOrderItem",
    "ProductOrderPatch",
    "Tmf622Adapter",
    "Tmf622Client",
    "Tmf622Connection",
    "VendorErrorItem",
    "patch_body",
]
