"""Robusta scheduler connector API: the `start-process` adapter, its client and wire models."""

from workers.vendors.robusta.client import (
    PROCESS_START_PATH,
    PROCESS_STATUS_PATH,
    RobustaClient,
)
from workers.vendors.robusta.config import RobustaConnection
from workers.vendors.robusta.handlers import (
    DATE_FORMAT,
    RobustaAdapter,
    format_date,
    start_process_request,
)
from workers.vendors.robusta.models import (
    OUTPUT_PREFIX,
    ProcessStatusResponse,
    RobustaErrorBody,
    StartProcessRequest,
    StartProcessResponse,
    YesNo,
)

__all__ = [
    "DATE_FORMAT",
    "OUTPUT_PREFIX",
    "PROCESS_START_PATH",
    "PROCESS_STATUS_PATH",
    "ProcessStatusResponse",
    "RobustaAdapter",
    "RobustaClient",
    "RobustaConnection",
    "RobustaErrorBody",
    "StartProcessRequest",
    "StartProcessResponse",
    "YesNo",
    "format_date",
    "start_process_request",
]
