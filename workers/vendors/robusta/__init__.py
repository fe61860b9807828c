"""Robusta scheduler connector API: `start-process`, its client and wire models."""

from workers.vendors.base import Vendor
from workers.vendors.robusta.client import (
    PROCESS_START_PATH,
    PROCESS_STATUS_PATH,
    RobustaClient,
)
from workers.vendors.robusta.config import RobustaConnection
from workers.vendors.robusta.models import (
    OUTPUT_PREFIX,
    ProcessStatusResponse,
    RobustaErrorBody,
    StartProcessRequest,
    StartProcessResponse,
    YesNo,
)
from workers.vendors.robusta.start_process import (
    DATE_FORMAT,
    StartProcessHandler,
    format_date,
    runs_immediately,
    start_process_request,
    starts_at,
)

VENDOR = Vendor("robusta", "Robusta scheduler", RobustaConnection, RobustaClient)

__all__ = [
    "DATE_FORMAT",
    "OUTPUT_PREFIX",
    "PROCESS_START_PATH",
    "PROCESS_STATUS_PATH",
    "VENDOR",
    "ProcessStatusResponse",
    "RobustaClient",
    "RobustaConnection",
    "RobustaErrorBody",
    "StartProcessHandler",
    "StartProcessRequest",
    "StartProcessResponse",
    "YesNo",
    "format_date",
    "runs_immediately",
    "start_process_request",
    "starts_at",
]
