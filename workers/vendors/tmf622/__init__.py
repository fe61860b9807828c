"""b2bsoft-ux TMF622 productOrder PATCH (`add-paylink`)."""

from workers.vendors.base import Vendor
from workers.vendors.tmf622.add_paylink import AddPaylinkHandler, patch_body
from workers.vendors.tmf622.client import Tmf622Client
from workers.vendors.tmf622.config import Tmf622Connection
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

VENDOR = Vendor("tmf622", "b2bsoft-ux TMF622 productOrder", Tmf622Connection, Tmf622Client)

__all__ = [
    "VENDOR",
    "AddPaylinkHandler",
    "BillingAccount",
    "Channel",
    "Payment",
    "ProductOrderAnswer",
    "ProductOrderErrors",
    "ProductOrderItem",
    "ProductOrderPatch",
    "Tmf622Client",
    "Tmf622Connection",
    "VendorErrorItem",
    "patch_body",
]
