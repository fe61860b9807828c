"""Oracle PBSM Cloud: IAM tokens and the External Scheduler Interface (`trigger-batch`)."""

import httpx

from workers.vendors.base import Vendor
from workers.vendors.pbsm.client import SCHEDULER_PATH, PbsmClient
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.interrupt_batch import InterruptBatchHandler
from workers.vendors.pbsm.models import (
    STATUS_CODES,
    BatchParams,
    BatchRunRequest,
    BatchStatus,
    GroupBatchParams,
    SchedulerAnswer,
    StatusAnswer,
    StatusRequest,
    TaskStatus,
    TokenAnswer,
    TriggerRequest,
    describe_code,
)
from workers.vendors.pbsm.rerun_batch import RerunBatchHandler
from workers.vendors.pbsm.restart_batch import RestartBatchHandler
from workers.vendors.pbsm.tokens import TokenManager
from workers.vendors.pbsm.trigger_batch import (
    BATCH_STATES,
    FollowedRun,
    TriggerBatchHandler,
    report_for,
    trigger_request,
)


def open_client(http: httpx.AsyncClient, connection: PbsmConnection) -> PbsmClient:
    """The client every PBSM command type of one connection shares: one token, one refresh
    at a time for all of them."""
    return PbsmClient(http, connection, TokenManager(http, connection))


VENDOR = Vendor("pbsm", "Oracle PBSM Cloud", PbsmConnection, open_client)

__all__ = [
    "BATCH_STATES",
    "SCHEDULER_PATH",
    "STATUS_CODES",
    "VENDOR",
    "BatchParams",
    "BatchRunRequest",
    "BatchStatus",
    "FollowedRun",
    "GroupBatchParams",
    "InterruptBatchHandler",
    "PbsmClient",
    "PbsmConnection",
    "RerunBatchHandler",
    "RestartBatchHandler",
    "SchedulerAnswer",
    "StatusAnswer",
    "StatusRequest",
    "TaskStatus",
    "TokenAnswer",
    "TokenManager",
    "TriggerBatchHandler",
    "TriggerRequest",
    "describe_code",
    "open_client",
    "report_for",
    "trigger_request",
]
