"""Informatica B2B Gateway: `run-partner`, its client and wire models."""

from workers.vendors.base import Vendor
from workers.vendors.informatica.client import (
    EVENT_STATUS_PATH,
    RUN_PARTNER_PATH,
    InformaticaClient,
)
from workers.vendors.informatica.config import InformaticaConnection
from workers.vendors.informatica.models import (
    EventStatus,
    FileEvent,
    InformaticaError,
    InformaticaErrorBody,
    MappingParameters,
    RunPartnerRequest,
    RunPartnerResponse,
)
from workers.vendors.informatica.run_partner import (
    FILE_EVENT_CONCURRENCY,
    RunPartnerHandler,
    run_partner_request,
)

VENDOR = Vendor("informatica", "Informatica B2B Gateway", InformaticaConnection, InformaticaClient)

__all__ = [
    "EVENT_STATUS_PATH",
    "FILE_EVENT_CONCURRENCY",
    "RUN_PARTNER_PATH",
    "VENDOR",
    "EventStatus",
    "FileEvent",
    "InformaticaClient",
    "InformaticaConnection",
    "InformaticaError",
    "InformaticaErrorBody",
    "MappingParameters",
    "RunPartnerHandler",
    "RunPartnerRequest",
    "RunPartnerResponse",
    "run_partner_request",
]
