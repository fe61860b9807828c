"""Oracle PBSM Cloud: IAM tokens, the External Scheduler Interface (`trigger-batch` and batch
control), reports (`generate-report`), object migrations (`export-objects`,
`import-objects`) and PAR URLs for files (`request-upload-url`, `request-download-url`,
`list-files`)."""

import httpx

from workers.vendors.base import Vendor
from workers.vendors.pbsm.client import MIGRATE_PATH, REPORT_PATH, SCHEDULER_PATH, PbsmClient
from workers.vendors.pbsm.config import PbsmConnection
from workers.vendors.pbsm.files import (
    ListFilesHandler,
    RequestDownloadUrlHandler,
    RequestUploadUrlHandler,
)
from workers.vendors.pbsm.generate_report import REPORT_STATES, GenerateReportHandler
from workers.vendors.pbsm.interrupt_batch import InterruptBatchHandler
from workers.vendors.pbsm.migrate_objects import ExportObjectsHandler, ImportObjectsHandler
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
    "MIGRATE_PATH",
    "REPORT_PATH",
    "REPORT_STATES",
    "SCHEDULER_PATH",
    "STATUS_CODES",
    "VENDOR",
    "BatchParams",
    "BatchRunRequest",
    "BatchStatus",
    "ExportObjectsHandler",
    "FollowedRun",
    "GenerateReportHandler",
    "GroupBatchParams",
    "ImportObjectsHandler",
    "InterruptBatchHandler",
    "ListFilesHandler",
    "PbsmClient",
    "PbsmConnection",
    "RequestDownloadUrlHandler",
    "RequestUploadUrlHandler",
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
