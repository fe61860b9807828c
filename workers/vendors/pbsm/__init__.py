"""Oracle PBSM Cloud: IAM tokens and the External Scheduler Interface (`trigger-batch`)."""

from workers.vendors.pbsm.client import SCHEDULER_PATH, PbsmClient
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.handlers import BATCH_STATES, PbsmAdapter, report_for, trigger_request
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
from workers.vendors.pbsm.tokens import TokenManager

__all__ = [
    "BATCH_STATES",
    "SCHEDULER_PATH",
    "STATUS_CODES",
    "BatchParams",
    "BatchRunRequest",
    "BatchStatus",
    "GroupBatchParams",
    "PbsmAdapter",
    "PbsmClient",
    "PbsmConnection",
    "SchedulerAnswer",
    "StatusAnswer",
    "StatusRequest",
    "TaskStatus",
    "TokenAnswer",
    "TokenManager",
    "TriggerRequest",
    "describe_code",
    "report_for",
    "trigger_request",
]
