"""Informatica B2B Gateway: the `run-partner` adapter, its client and wire models."""

from workers.vendors.informatica.client import (
    EVENT_STATUS_PATH,
    RUN_PARTNER_PATH,
    InformaticaClient,
)
from workers.vendors.informatica.config import InformaticaConnection
from workers.vendors.informatica.handlers import (
    FILE_EVENT_CONCURRENCY,
    InformaticaAdapter,
    run_partner_request,
)
from workers.vendors.informatica.models import (
    EventRef,
    EventStatus,
    InformaticaError,
    InformaticaErrorBody,
    MappingParameters,
    RunPartnerRequest,
    RunPartnerResponse,
)

__all__ = [
    "EVENT_STATUS_PATH",
    "FILE_EVENT_CONCURRENCY",
    "RUN_PARTNER_PATH",
    "EventRef",
    "EventStatus",
    "InformaticaAdapter",
    "InformaticaClient",
    "InformaticaConnection",
    "InformaticaError",
    "InformaticaErrorBody",
    "MappingParameters",
    "RunPartnerRequest",
    "RunPartnerResponse",
    "run_partner_request",
]
