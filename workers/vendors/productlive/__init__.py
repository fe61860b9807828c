"""Product-Live: Data Factory job executions (`run-job`) and partner invitations through the
Data Factory task data-partner-invitation-create (`invite-partners`), every call paced by the
account's rate limit, shared by every process."""

import httpx

from workers.vendors.base import Resources, Vendor
from workers.vendors.productlive.client import (
    INVITATION_PATH,
    JOB_EXECUTIONS_PATH,
    ProductLiveClient,
)
from workers.vendors.productlive.config import ProductLiveConnection, RateLimitPolicy
from workers.vendors.productlive.invite_partners import (
    ACCEPTED,
    InvitePartnersHandler,
    operation_wire,
    per_key,
)
from workers.vendors.productlive.models import (
    FILE_OBJECT,
    INVITATION_OBJECT,
    JOB_STATES,
    ErrorBody,
    JobExecution,
    JobExecutionRequest,
    PartnerInvitation,
    files_in,
)
from workers.vendors.productlive.run_job import JobFollower, RunJobHandler, shaped


def open_client(http: httpx.AsyncClient, connection: ProductLiveConnection) -> ProductLiveClient:
    """A client whose rate limit is counted in this process only (no shared resources)."""
    return ProductLiveClient(http, connection)


def open_shared_client(
    http: httpx.AsyncClient, connection: ProductLiveConnection, resources: Resources
) -> ProductLiveClient:
    """The client every Product-Live command type of one connection shares, its account's
    rate limit counted with every other process's calls (`Resources.limiter`)."""
    return ProductLiveClient(http, connection, resources.limiter)


VENDOR = Vendor(
    "productlive", "Product-Live", ProductLiveConnection, open_client, open_shared_client
)

__all__ = [
    "ACCEPTED",
    "FILE_OBJECT",
    "INVITATION_OBJECT",
    "INVITATION_PATH",
    "JOB_EXECUTIONS_PATH",
    "JOB_STATES",
    "VENDOR",
    "ErrorBody",
    "InvitePartnersHandler",
    "JobExecution",
    "JobExecutionRequest",
    "JobFollower",
    "PartnerInvitation",
    "ProductLiveClient",
    "ProductLiveConnection",
    "RateLimitPolicy",
    "RunJobHandler",
    "files_in",
    "open_client",
    "open_shared_client",
    "operation_wire",
    "per_key",
    "shaped",
]
